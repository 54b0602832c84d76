package sim

import (
	"fmt"
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
}

// GroupSim is a simulated group: member processes running stacks on a
// simulated network of FIFO connections, one per direction between two
// processes, as the group runtime uses them. It records views, sends,
// acknowledgements and deliveries for the checkers.
type GroupSim struct {
	engine
	cfg     GroupConfig
	members []*gmember
	history []eventlog.Event
	ctrl    eventlog.Clock
	sent    int
}

type gmember struct {
	slot    int
	inc     uint64
	gen     int
	running bool
	paused  bool
	left    bool
	st      *stack.Stack
	backlog []func()
	timer   uint64
	clock   eventlog.Clock
	links   map[int]int // slot → gen of the far end this member has a connection with
	last    map[int]time.Duration
	view    stack.View
	inView  bool
	count   int // messages sent
	tokens  map[uint64]string
}

// NewGroup returns a simulated group of cfg.N member slots, none started.
func NewGroup(cfg GroupConfig) *GroupSim {
	if cfg.MinDelay == 0 {
		cfg.MinDelay = 50 * time.Microsecond
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = 2 * time.Millisecond
	}
	s := &GroupSim{cfg: cfg, engine: newEngine(cfg.Seed, cfg.MinDelay, cfg.MaxDelay)}
	for i := range cfg.N {
		s.members = append(s.members, &gmember{slot: i})
	}
	return s
}

// Addr returns the address of slot i.
func Addr(i int) string { return fmt.Sprintf("m%d", i) }

func slotOf(addr string) int {
	i, err := strconv.Atoi(strings.TrimPrefix(addr, "m"))
	if err != nil || !strings.HasPrefix(addr, "m") {
		return -1
	}
	return i
}

// History returns the recorded events.
func (s *GroupSim) History() []eventlog.Event { return s.history }

// Running reports whether slot i runs and is not paused.
func (s *GroupSim) Running(i int) bool { return s.members[i].running && !s.members[i].paused }

// View returns slot i's current view and whether it is in one.
func (s *GroupSim) View(i int) (stack.View, bool) { return s.members[i].view, s.members[i].inView }

// Member returns the member id of slot i's current incarnation.
func (s *GroupSim) Member(i int) string { return memberID(i, s.members[i].inc) }

func memberID(slot int, inc uint64) string { return fmt.Sprintf("m%d.%d", slot, inc) }

// Start starts slot i as a new incarnation that joins through every
// slot's address.
func (s *GroupSim) Start(i int) {
	m := s.members[i]
	if m.running {
		return
	}
	m.inc++
	m.gen++
	m.running, m.paused, m.left, m.inView = true, false, false, false
	m.backlog = nil
	m.links = map[int]int{}
	m.last = map[int]time.Duration{}
	m.tokens = map[uint64]string{}
	m.clock = eventlog.Clock{}
	s.control("proc_start", "peer", i)
	me := stack.Member{ID: memberID(i, m.inc), Addr: Addr(i)}
	m.st = s.cfg.Stack(me)
	var contacts []string
	for j := range s.cfg.N {
		contacts = append(contacts, Addr(j))
	}
	s.step(m, stack.Start{})
	s.step(m, stack.Join{Contacts: contacts})
}

// Crash kills slot i: its connections break.
func (s *GroupSim) Crash(i int) {
	m := s.members[i]
	if !m.running {
		return
	}
	s.control("proc_kill", "peer", i)
	m.running = false
	m.gen++
	for j := range m.links {
		s.breakLink(i, j)
	}
	for _, o := range s.members {
		if _, ok := o.links[i]; ok {
			s.breakLink(o.slot, i)
		}
	}
}

// stopLeft ends a member that left the group: its connections close.
func (s *GroupSim) stopLeft(m *gmember) {
	if !m.running || !m.left {
		return
	}
	m.running = false
	m.gen++
	for _, o := range s.members {
		if _, ok := o.links[m.slot]; ok {
			s.breakLink(o.slot, m.slot)
		}
	}
	m.links = map[int]int{}
}

// Pause stops slot i without closing anything, like SIGSTOP.
func (s *GroupSim) Pause(i int) {
	m := s.members[i]
	if m.running && !m.paused {
		s.control("proc_stop", "peer", i)
		m.paused = true
	}
}

// Resume continues a paused slot: what arrived meanwhile is handled, then
// its timers.
func (s *GroupSim) Resume(i int) {
	m := s.members[i]
	if !m.running || !m.paused {
		return
	}
	s.control("proc_cont", "peer", i)
	m.paused = false
	backlog := m.backlog
	m.backlog = nil
	gen := m.gen
	for _, f := range backlog {
		if m.gen != gen || m.paused {
			break
		}
		f()
	}
	if m.gen == gen && !m.paused {
		s.step(m, stack.Tick{})
	}
}

// Leave asks slot i to leave the group.
func (s *GroupSim) Leave(i int) {
	m := s.members[i]
	if m.running && !m.paused {
		s.control("proc_leave", "peer", i)
		s.step(m, stack.Leave{})
	}
}

// Send has slot i multicast one message, named after the member and a
// counter so the checkers can follow it.
func (s *GroupSim) Send(i int) {
	m := s.members[i]
	if !m.running || m.paused || m.left {
		return
	}
	m.count++
	s.sent++
	id := fmt.Sprintf("%s:%d", memberID(i, m.inc), m.count)
	m.tokens[uint64(m.count)] = id
	s.log(m, "send", "msg", id)
	s.step(m, stack.Send{Msg: stack.Msg{Data: []byte(id)}, Token: uint64(m.count)})
}

// breakLink closes the connections between a and b as seen from a: a
// learns that b is lost, after a delay.
func (s *GroupSim) breakLink(a, b int) {
	m := s.members[a]
	delete(m.links, b)
	if !m.running {
		return
	}
	id := memberID(b, s.members[b].inc)
	gen := m.gen
	s.after(s.delay(), func() { s.input(m, gen, func() { s.step(m, stack.Lost{ID: id, Addr: Addr(b), Reason: "eof"}) }) })
}

func (s *GroupSim) delay() time.Duration { return s.jitter() }

func (s *GroupSim) input(m *gmember, gen int, f func()) {
	if !m.running || m.gen != gen {
		return
	}
	if m.paused {
		m.backlog = append(m.backlog, f)
		return
	}
	f()
}

func (s *GroupSim) step(m *gmember, in stack.Event) {
	if s.cfg.Trace != nil {
		s.cfg.Trace(m.slot, m.inc, s.now, in)
	}
	if err := m.st.Step(s.now, in); err != nil {
		panic(err)
	}
	s.effects(m)
}

func (s *GroupSim) effects(m *gmember) {
	for _, e := range m.st.Ready() {
		switch e := e.(type) {
		case stack.Out:
			s.transmit(m, e)
		case stack.Close:
			if j := slotOf(strings.SplitN(e.ID, ".", 2)[0]); j >= 0 && j < s.cfg.N {
				if _, ok := m.links[j]; ok {
					delete(m.links, j)
					// The far end sees its connections to m end.
					o := s.members[j]
					if _, ok := o.links[m.slot]; ok {
						s.breakLink(j, m.slot)
					}
				}
			}
		case stack.Deliver:
			s.log(m, "deliver", "view", e.View.String(), "from", e.From, "seq", e.Seq, "order", e.Order, "msg", string(e.Msg.Data))
		case stack.Install:
			m.view, m.inView = e.View, true
			s.log(m, "view", "view", e.View.ID.String(), "prev", e.Prev.String(), "members", e.View.IDs(), "flushed", e.Contribs != nil)
		case stack.Acked:
			s.log(m, "acked", "msg", m.tokens[e.Token], "lost", e.Lost)
			delete(m.tokens, e.Token)
		case stack.Left:
			m.left, m.inView = true, false
			s.log(m, "left", "reason", e.Reason)
			// The process ends, as the group runtime does.
			s.after(0, func() { s.stopLeft(m) })
		case stack.Log:
			if e.Ev == "view" {
				continue // the Install above records it
			}
			kv := make([]any, 0, 2*len(e.Fields)+2)
			for k, v := range e.Fields {
				kv = append(kv, k, v)
			}
			s.log(m, e.Ev, kv...)
		}
	}
	s.arm(m)
}

// transmit carries one message from m over its connection to the slot at
// e.To.Addr, connecting first.
func (s *GroupSim) transmit(m *gmember, e stack.Out) {
	j := slotOf(e.To.Addr)
	if j < 0 || j >= s.cfg.N {
		return
	}
	o := s.members[j]
	gen := m.gen
	lost := func(reason string) {
		s.after(s.delay(), func() {
			s.input(m, gen, func() { s.step(m, stack.Lost{ID: e.To.ID, Addr: e.To.Addr, Reason: reason}) })
		})
	}
	if j == m.slot {
		return
	}
	if !o.running {
		lost("refused")
		return
	}
	if e.To.ID != "" && e.To.ID != memberID(j, o.inc) {
		lost("gone") // a new incarnation answers at that address
		return
	}
	if og, ok := m.links[j]; !ok || og != o.gen {
		m.links[j] = o.gen
		o.links[m.slot] = m.gen
	}
	from := stack.Member{ID: memberID(m.slot, m.inc), Addr: Addr(m.slot)}
	msg := stack.Msg{Hdrs: append([][]byte(nil), e.Msg.Hdrs...), Data: e.Msg.Data}
	at := max(s.now+s.delay(), m.last[j])
	m.last[j] = at
	ogen, mgen := o.gen, m.gen
	s.at(at, func() {
		if m.gen != mgen || m.links[j] != ogen {
			return // the connection broke meanwhile
		}
		s.input(o, ogen, func() { s.step(o, stack.Recv{From: from, Msg: msg}) })
	})
}

// arm schedules m's next tick.
func (s *GroupSim) arm(m *gmember) {
	d := m.st.Deadline()
	if d == stack.Never {
		return
	}
	m.timer++
	t, gen := m.timer, m.gen
	s.at(max(d, s.now), func() {
		if m.timer != t {
			return
		}
		s.input(m, gen, func() { s.step(m, stack.Tick{}) })
	})
}

// Agreed reports whether every running member is in the same view, with
// every running member in it.
func (s *GroupSim) Agreed() bool {
	var v *stack.View
	n := 0
	for _, m := range s.members {
		if !m.running || m.left {
			continue
		}
		if m.paused || !m.inView {
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

func (s *GroupSim) wall() time.Time { return Epoch.Add(s.now) }

func (s *GroupSim) log(m *gmember, ev string, kv ...any) {
	f := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	f["member"] = memberID(m.slot, m.inc)
	t := s.wall()
	s.history = append(s.history, eventlog.Event{TS: t, Node: Addr(m.slot), Inc: m.inc, LC: m.clock.Tick(t), Ev: ev, Fields: f})
}

func (s *GroupSim) control(ev string, kv ...any) {
	f := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	t := s.wall()
	s.history = append(s.history, eventlog.Event{TS: t, Node: "control", LC: s.ctrl.Tick(t), Ev: ev, Fields: f})
}

// Sent returns how many messages the workload sent.
func (s *GroupSim) Sent() int { return s.sent }
