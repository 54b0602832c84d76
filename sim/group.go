package sim

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/stack"
)

// GroupConfig configures a simulated group.
type GroupConfig struct {
	// N is the number of member slots (processes m0..mN-1).
	N int
	// Seed decides every delay and random choice.
	Seed uint64
	// Stack builds a member's stack.
	Stack func(me stack.Member) *stack.Stack
	// MinDelay and MaxDelay bound one-way delays (defaults 50µs and 2ms).
	MinDelay, MaxDelay time.Duration
	// Trace, if set, sees every input stepped into a member's stack, as
	// the stack sees it: the slot, its incarnation, the time and the input.
	// It must not keep in.Msg's memory beyond the call.
	Trace func(slot int, inc uint64, now time.Duration, in stack.Event)
	// Batch, if positive, has members collect their stacks' effects (and
	// so end a batch, stack.Batcher) only Batch after the first input of a
	// batch, as the group runtime does when inputs queue up, instead of
	// after every input.
	Batch time.Duration
	// Name, if set, names the group, one of several on a Net: every
	// member event carries it (field group), and a member joins only when
	// asked (JoinVia), not when its process starts. Its member id then
	// counts the joins in the process's incarnation too, those of every
	// group's member: m<slot>.<incarnation>.<join>, unique over the groups
	// of a Net as a real member's is.
	Name string
	// MsgName, if set, names a message in send and deliver events from
	// its data (the data itself, as a string, otherwise).
	MsgName func(data []byte) string
	// OnInstall, OnDeliver and OnLeft, if set, see a slot's member
	// install a view (through a flush if e.Contribs is not nil, as
	// group.Group.Flushed says), deliver a message and leave the group,
	// once the event is recorded; OnAcked sees it learn that every member
	// of the view has message msg, or that it may be lost.
	OnInstall func(slot int, e stack.Install)
	OnDeliver func(slot int, d stack.Deliver)
	OnLeft    func(slot int)
	OnAcked   func(slot int, msg string, a stack.Acked)
}

// GroupSim is a simulated group: process i of its Net hosts the member of
// slot i, running a stack. It records views, sends, acknowledgements and
// deliveries for the checkers.
//
// Members connect as the group runtime does: one connection per direction,
// made by the sender; the acceptor only reads from it. A member learns
// that a connection ended, its own or one from another member, with
// stack.Lost. A member that leaves ends its process, as the runtime does.
type GroupSim struct {
	*Net
	cfg     GroupConfig
	members []*member
	sent    int
}

// DialTimeout is how long a group member's connection attempt may take,
// the connect and again the handshake, as the group runtime's.
const DialTimeout = time.Second

// member is the machine of a group member in its process.
type member struct {
	g       *GroupSim
	p       *proc
	slot    int
	addr    string
	id      string       // of the current incarnation
	me      stack.Member // id and addr
	active  bool         // running: started, neither ended nor gone with its process
	left    bool
	st      *stack.Stack
	timer   timer
	clock   eventlog.Clock
	out     map[string]*outConn // by member id, or "@addr" when only the address is known
	in      map[string][]*conn  // connections from other members, by their id
	view    stack.View
	inView  bool
	viewID  stack.ViewID // the view named by viewStr
	viewStr string
	count   int // messages sent
	tokens  map[uint64]string
	batch   bool // effects are due (GroupConfig.Batch)
	burst   bool // SendBurst is stepping sends: effects after the last
}

// NewGroup returns a simulated group of cfg.N member slots, none started.
// It panics if cfg's delays are inconsistent.
func NewGroup(cfg GroupConfig) *GroupSim {
	net, err := NewNet(NetConfig{N: cfg.N, Seed: cfg.Seed, MinDelay: cfg.MinDelay, MaxDelay: cfg.MaxDelay})
	if err != nil {
		panic(err)
	}
	return NewGroupOn(net, cfg)
}

// NewGroupOn puts a member of a group on each process of net: slot i in
// process i. cfg.N, Seed, MinDelay and MaxDelay are the net's.
func NewGroupOn(net *Net, cfg GroupConfig) *GroupSim {
	cfg.N, cfg.Seed, cfg.MinDelay, cfg.MaxDelay = net.N(), net.cfg.Seed, net.cfg.MinDelay, net.cfg.MaxDelay
	s := &GroupSim{Net: net, cfg: cfg}
	for i := range cfg.N {
		m := &member{g: s, p: net.procs[i], slot: i, addr: Addr(i), id: memberID(i, 0)}
		s.members = append(s.members, m)
		net.host(i, m)
	}
	return s
}

// Addr returns the address of slot i, which is also its member's node
// name in events (eventlog.MemberName).
func Addr(i int) string { return eventlog.MemberName(i) }

// slotOf returns the slot of address addr (the inverse of Addr), or -1.
func slotOf(addr string) int {
	i, err := strconv.Atoi(strings.TrimPrefix(addr, "m"))
	if err != nil || !strings.HasPrefix(addr, "m") {
		return -1
	}
	return i
}

func memberID(slot int, inc uint64) string {
	return eventlog.MemberName(slot) + "." + strconv.FormatUint(inc, 10)
}

// Running reports whether slot i's member runs and is not paused.
func (s *GroupSim) Running(i int) bool {
	m := s.members[i]
	return m.active && m.p.running && !m.p.paused
}

// View returns slot i's current view and whether it is in one.
func (s *GroupSim) View(i int) (stack.View, bool) { return s.members[i].view, s.members[i].inView }

// Member returns the member id of slot i's current incarnation.
func (s *GroupSim) Member(i int) string { return s.members[i].id }

// Sent returns how many messages the workload sent.
func (s *GroupSim) Sent() int { return s.sent }

// Leave asks slot i to leave the group. With GroupConfig.Name set, the
// leave is the member's own (a client's), and not recorded as a fault.
func (s *GroupSim) Leave(i int) {
	if m := s.members[i]; m.active && m.p.running && !m.p.paused {
		if s.cfg.Name == "" {
			s.control(eventlog.ProcLeave, eventlog.FieldPeer, i)
		}
		m.step(stack.Leave{})
	}
}

// AddContacts gives slot i's member more contacts, as
// group.Group.AddContacts does.
func (s *GroupSim) AddContacts(i int, addrs []string) {
	if m := s.members[i]; m.active && m.p.running && !m.p.paused {
		m.step(stack.Contacts{Addrs: slices.Clone(addrs)})
	}
}

// JoinVia has slot i's member join the group through contacts, founding
// it if none answers, as group.Join with Found does. It reports false if
// the process does not run or its member is running already. Only for a
// group with GroupConfig.Name set.
func (s *GroupSim) JoinVia(i int, contacts []string) bool {
	m := s.members[i]
	if s.cfg.Name == "" || !m.p.running || m.p.paused || m.active {
		return false
	}
	m.p.joins++
	m.begin(memberID(m.slot, m.p.inc)+"."+strconv.Itoa(m.p.joins), contacts)
	return true
}

// Close ends slot i's member at once, without leaving, as group.Close
// does.
func (s *GroupSim) Close(i int) {
	if m := s.members[i]; m.active && m.p.running {
		m.halt()
	}
}

// Active reports whether slot i's member runs: joined or joining, and
// not left.
func (s *GroupSim) Active(i int) bool {
	m := s.members[i]
	return m.active && m.p.running && !m.left
}

// Send has slot i multicast one message, named after the member and a
// counter so the checkers can follow it, and returns the name, or "" if
// the member cannot send.
func (s *GroupSim) Send(i int) string {
	return s.SendAs(i, func(id string) []byte { return []byte(id) })
}

// SendAs has slot i multicast one message whose data wrap makes from the
// message's name (the member's id and a counter); it returns the name,
// or "" if the member cannot send.
func (s *GroupSim) SendAs(i int, wrap func(id string) []byte) string {
	m := s.members[i]
	if !m.active || !m.p.running || m.p.paused || m.left {
		return ""
	}
	m.count++
	s.sent++
	id := m.id + ":" + strconv.Itoa(m.count)
	m.tokens[uint64(m.count)] = id
	m.log(eventlog.Send, eventlog.FieldMsg, id)
	m.step(stack.Send{Msg: stack.Msg{Data: wrap(id)}, Token: uint64(m.count)})
	return id
}

// SendBurst has slot i multicast k messages at once, as the runtime's
// loop steps the sends queued together before it collects their effects
// (so they may travel in one bundle).
func (s *GroupSim) SendBurst(i, k int) {
	m := s.members[i]
	m.burst = true
	stepped := false
	for range k {
		stepped = s.Send(i) != "" || stepped
	}
	m.burst = false
	if stepped && s.cfg.Batch <= 0 {
		m.effects()
	}
}

// Apply performs one fault now: leave (slot f.Peer leaves the group) or
// any fault of Net.Apply.
func (s *GroupSim) Apply(f Fault) {
	if f.Op == "leave" {
		s.Leave(f.Peer)
		return
	}
	s.Net.Apply(f)
}

// Agreed reports whether every running member is in the same view, with
// every running member in it.
func (s *GroupSim) Agreed() bool {
	var v *stack.View
	n := 0
	for _, m := range s.members {
		if !m.active || !m.p.running || m.left {
			continue
		}
		if m.p.paused || !m.inView {
			return false
		}
		n++
		if v == nil {
			v = &m.view
		} else if m.view.ID != v.ID {
			return false
		}
	}
	return v == nil || len(v.Members) == n
}

// start starts the member as a new incarnation that joins through every
// slot's address.
func (m *member) start() {
	g := m.g
	m.clock = eventlog.Clock{}
	if g.cfg.Name != "" {
		m.active, m.left, m.inView, m.batch = false, false, false, false
		return
	}
	contacts := make([]string, 0, len(g.members))
	for j := range g.members {
		contacts = append(contacts, Addr(j))
	}
	m.begin(memberID(m.slot, m.p.inc), contacts)
}

// begin starts the member as id, joining through contacts.
func (m *member) begin(id string, contacts []string) {
	m.active, m.left, m.inView = true, false, false
	m.batch = false
	m.out, m.in = map[string]*outConn{}, map[string][]*conn{}
	m.tokens = map[uint64]string{}
	m.id = id
	m.me = stack.Member{ID: m.id, Addr: m.addr}
	m.st = m.g.cfg.Stack(m.me)
	m.step(stack.Start{})
	m.step(stack.Join{Contacts: contacts})
}

func (m *member) tick() {
	if m.active {
		m.step(stack.Tick{})
	}
}

// stop ends the member at once, without leaving.
func (m *member) stop() { m.halt() }

func (m *member) down() {
	m.active, m.batch = false, false
	m.out, m.in = nil, nil
}

func (m *member) done() bool { return !m.active }

func (m *member) step(in stack.Event) {
	g := m.g
	if g.cfg.Trace != nil {
		g.cfg.Trace(m.slot, m.p.inc, g.now, in)
	}
	if err := m.st.Step(g.now, in); err != nil {
		panic(err)
	}
	if g.cfg.Batch <= 0 {
		if !m.burst {
			m.effects()
		}
		return
	}
	if m.batch {
		return
	}
	m.batch = true
	gen := m.p.gen
	g.after(g.cfg.Batch, func() {
		if !m.p.running || m.p.gen != gen || !m.batch || !m.active {
			return
		}
		m.batch = false
		if !m.p.paused { // else the first step after Resume collects them
			m.effects()
		}
	})
}

func (m *member) effects() {
	g := m.g
	for _, e := range m.st.Ready() {
		switch e := e.(type) {
		case stack.Out:
			m.send(e)
		case stack.Multicast:
			for _, to := range e.To {
				m.send(stack.Out{To: to, Msg: e.Msg})
			}
		case stack.Close:
			m.closeMember(e.ID, e.KeepIn)
		case stack.Deliver:
			if e.View != m.viewID || m.viewStr == "" {
				m.viewID, m.viewStr = e.View, e.View.String()
			}
			name := string(e.Msg.Data)
			if g.cfg.MsgName != nil {
				name = g.cfg.MsgName(e.Msg.Data)
			}
			m.log(eventlog.Deliver, eventlog.FieldView, m.viewStr, eventlog.FieldFrom, e.From, eventlog.FieldSeq, e.Seq,
				eventlog.FieldOrder, e.Order, eventlog.FieldMsg, name)
			if g.cfg.OnDeliver != nil {
				g.cfg.OnDeliver(m.slot, e)
			}
		case stack.Install:
			m.view, m.inView = e.View, true
			m.log(eventlog.View, eventlog.FieldView, e.View.ID.String(), eventlog.FieldPrev, e.Prev.String(),
				eventlog.FieldMembers, e.View.IDs(), eventlog.FieldFlushed, e.Contribs != nil)
			if g.cfg.OnInstall != nil {
				g.cfg.OnInstall(m.slot, e)
			}
		case stack.Acked:
			msg := m.tokens[e.Token]
			m.log(eventlog.Acked, eventlog.FieldMsg, msg, eventlog.FieldLost, e.Lost)
			delete(m.tokens, e.Token)
			if g.cfg.OnAcked != nil {
				g.cfg.OnAcked(m.slot, msg, e)
			}
		case stack.Left:
			m.left, m.inView = true, false
			m.log(eventlog.Left, eventlog.FieldReason, e.Reason)
			if g.cfg.OnLeft != nil {
				g.cfg.OnLeft(m.slot)
			}
			// The member ends, and with it its process, as the group
			// runtime's.
			gen := m.p.gen
			g.after(0, func() {
				if m.p.gen == gen && m.active {
					m.halt()
					g.exitIfDone(m.p)
				}
			})
		case stack.Log:
			kv := make([]any, 0, 2*len(e.Fields)+2)
			for k, v := range e.Fields {
				kv = append(kv, k, v)
			}
			m.log(e.Ev, kv...)
		}
	}
	g.arm(m.p, &m.timer, m.st.Deadline(), m.tick)
}

func (m *member) log(ev string, kv ...any) {
	f := fields(kv)
	f[eventlog.FieldMember] = m.id
	if m.g.cfg.Name != "" {
		f[eventlog.FieldGroup] = m.g.cfg.Name
	}
	t := m.g.wall()
	m.g.record(eventlog.Event{TS: t, Node: m.addr, Inc: m.p.inc, LC: m.clock.Tick(t), Ev: ev, Fields: f})
}
