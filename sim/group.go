package sim

import (
	"cmp"
	"fmt"
	"maps"
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
}

// GroupSim is a simulated group: member processes running stacks on a
// simulated network of FIFO connections between processes. It records
// views, sends, acknowledgements and deliveries for the checkers.
//
// The network is TCP-like, as in the peer simulator: a connection is
// reliable and FIFO in each direction; when one end closes it or its
// process dies, the other end learns it (stack.Lost) after the data in
// flight (a crash loses what was in flight); a partition holds traffic,
// closes included, until it heals, and a connection attempt across it
// times out after DialTimeout. A one-way cut blocks both directions of the
// pair, since TCP's acknowledgements cannot return. A reset breaks a
// connection at both ends at once. One connection per pair of processes
// stands for the group runtime's two (one per direction): they carry the
// same traffic and end together.
type GroupSim struct {
	engine
	cfg     GroupConfig
	members []*gmember
	history []eventlog.Event
	ctrl    eventlog.Clock
	sent    int
	blocked map[[2]int]bool // unordered pair (lo, hi) → cut
	pipes   map[[2]int]*pipe
}

// DialTimeout is how long a simulated connection attempt across a
// partition takes to fail, as the group runtime's dial timeout.
const DialTimeout = time.Second

// gconn is a connection between two processes; side 0 dialed.
type gconn struct {
	ends   [2]int
	gens   [2]int
	ids    [2]string // the member at each end
	open   [2]bool   // side i has not closed it nor learnt that it ended
	broken bool      // reset: nothing more gets through
}

// far returns the member id at the end of c that is not slot.
func (c *gconn) far(slot int) string {
	return c.ids[1-c.side(slot)]
}

func (c *gconn) side(slot int) int {
	if c.ends[0] == slot {
		return 0
	}
	return 1
}

// pipe is one direction between two processes: what it carries arrives in
// order, and waits while the pair is cut.
type pipe struct {
	last time.Duration // the last scheduled arrival
	held []func()
}

type gmember struct {
	slot    int
	addr    string
	id      string // of the current incarnation
	inc     uint64
	gen     int
	running bool
	paused  bool
	left    bool
	st      *stack.Stack
	backlog []stack.Event
	timer   uint64
	clock   eventlog.Clock
	links   map[int]*gconn // slot → the connection this member uses with it
	view    stack.View
	inView  bool
	viewID  stack.ViewID // the view named by viewStr
	viewStr string
	count   int // messages sent
	tokens  map[uint64]string
	batch   bool // effects are due (GroupConfig.Batch)
}

// NewGroup returns a simulated group of cfg.N member slots, none started.
func NewGroup(cfg GroupConfig) *GroupSim {
	if cfg.MinDelay == 0 {
		cfg.MinDelay = 50 * time.Microsecond
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = 2 * time.Millisecond
	}
	s := &GroupSim{cfg: cfg, engine: newEngine(cfg.Seed, cfg.MinDelay, cfg.MaxDelay),
		blocked: map[[2]int]bool{}, pipes: map[[2]int]*pipe{}}
	for i := range cfg.N {
		s.members = append(s.members, &gmember{slot: i, addr: Addr(i), id: memberID(i, 0)})
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
func (s *GroupSim) Member(i int) string { return s.members[i].id }

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
	m.batch = false
	m.links = map[int]*gconn{}
	m.tokens = map[uint64]string{}
	m.clock = eventlog.Clock{}
	s.control("proc_start", "peer", i)
	m.id = memberID(i, m.inc)
	me := stack.Member{ID: m.id, Addr: m.addr}
	m.st = s.cfg.Stack(me)
	var contacts []string
	for j := range s.cfg.N {
		contacts = append(contacts, Addr(j))
	}
	s.step(m, stack.Start{})
	s.step(m, stack.Join{Contacts: contacts})
}

// Crash kills slot i: its connections end, which the far ends learn once
// the network lets them.
func (s *GroupSim) Crash(i int) {
	m := s.members[i]
	if !m.running {
		return
	}
	s.control("proc_kill", "peer", i)
	m.running = false
	for _, c := range m.links {
		c.broken = true // what it sent last may not have left
	}
	s.closeAll(m)
}

// stopLeft ends a member that left the group: its connections close after
// what it sent, as the group runtime closes them.
func (s *GroupSim) stopLeft(m *gmember) {
	if !m.running || !m.left {
		return
	}
	m.running = false
	s.closeAll(m)
}

// closeAll closes every connection of a process that ends.
func (s *GroupSim) closeAll(m *gmember) {
	for _, j := range slices.Sorted(maps.Keys(m.links)) {
		s.closeConn(m, m.links[j], "eof")
	}
	m.links = map[int]*gconn{}
	m.gen++
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
	for _, in := range backlog {
		if m.gen != gen || m.paused {
			break
		}
		s.step(m, in)
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
	id := m.id + ":" + strconv.Itoa(m.count)
	m.tokens[uint64(m.count)] = id
	s.log(m, "send", "msg", id)
	s.step(m, stack.Send{Msg: stack.Msg{Data: []byte(id)}, Token: uint64(m.count)})
}

// closeConn closes c at m's end: the far end learns it after what m sent
// before, once the network lets it through.
func (s *GroupSim) closeConn(m *gmember, c *gconn, reason string) {
	me := c.side(m.slot)
	if !c.open[me] {
		return
	}
	c.open[me] = false
	if m.links[c.ends[1-me]] == c {
		delete(m.links, c.ends[1-me])
	}
	id := c.far(c.ends[1-me])
	s.send(m.slot, c.ends[1-me], func() { s.ended(c, 1-me, id, reason) })
}

// ended tells side of c that the connection is over, if it still is the
// same process and has not closed c itself.
func (s *GroupSim) ended(c *gconn, side int, id, reason string) {
	o := s.members[c.ends[side]]
	if !c.open[side] || o.gen != c.gens[side] {
		return
	}
	c.open[side] = false
	if o.links[c.ends[1-side]] == c {
		delete(o.links, c.ends[1-side])
	}
	s.input(o, c.gens[side], stack.Lost{ID: id, Addr: s.members[c.ends[1-side]].addr, Reason: reason})
}

// send carries f from slot a to slot b in order after what a sent before,
// holding it while the pair is cut.
func (s *GroupSim) send(a, b int, f func()) {
	p := s.pipes[[2]int{a, b}]
	if p == nil {
		p = &pipe{}
		s.pipes[[2]int{a, b}] = p
	}
	if s.blocked[pair(a, b)] {
		p.held = append(p.held, f)
		return
	}
	at := max(s.now+s.delay(), p.last)
	p.last = at
	s.at(at, f)
}

// Partition splits the slots into groups that cannot reach each other;
// slots in no group reach nobody. It replaces any earlier partition or
// cut.
func (s *GroupSim) Partition(groups ...[]int) {
	side := map[int]int{}
	for g, ids := range groups {
		for _, i := range ids {
			side[i] = g + 1
		}
	}
	blocked := map[[2]int]bool{}
	for a := range s.cfg.N {
		for b := a + 1; b < s.cfg.N; b++ {
			if side[a] == 0 || side[a] != side[b] {
				blocked[[2]int{a, b}] = true
			}
		}
	}
	s.control("net_partition", "groups", groups)
	s.setBlocked(blocked)
}

// Cut blocks traffic from a to b, in addition to earlier cuts. Over TCP
// that stops both directions of the pair.
func (s *GroupSim) Cut(a, b int) {
	s.control("net_cut", "from", a, "to", b)
	blocked := maps.Clone(s.blocked)
	blocked[pair(a, b)] = true
	s.setBlocked(blocked)
}

// Heal removes every partition and cut; held traffic flows again.
func (s *GroupSim) Heal() {
	s.control("net_heal")
	s.setBlocked(map[[2]int]bool{})
}

// Reset resets the connection between a and b, if there is one: both ends
// see it end at once, and what was in flight is lost.
func (s *GroupSim) Reset(a, b int) {
	c := s.members[a].links[b]
	if c == nil {
		c = s.members[b].links[a]
	}
	if c == nil {
		return
	}
	s.control("net_reset", "a", a, "b", b)
	c.broken = true
	for side := range 2 {
		s.after(s.delay(), func() { s.ended(c, side, c.far(c.ends[side]), "reset") })
	}
}

// Blocked reports whether traffic between slots a and b is cut.
func (s *GroupSim) Blocked(a, b int) bool { return s.blocked[pair(a, b)] }

func (s *GroupSim) setBlocked(b map[[2]int]bool) {
	s.blocked = b
	for _, k := range slices.SortedFunc(maps.Keys(s.pipes), func(x, y [2]int) int {
		return cmp.Or(cmp.Compare(x[0], y[0]), cmp.Compare(x[1], y[1]))
	}) {
		p := s.pipes[k]
		if len(p.held) == 0 || s.blocked[pair(k[0], k[1])] {
			continue
		}
		held := p.held
		p.held = nil
		for _, f := range held {
			s.send(k[0], k[1], f)
		}
	}
}

func (s *GroupSim) delay() time.Duration { return s.jitter() }

// input steps in into m if it is still the same process, queueing it
// while m is paused.
func (s *GroupSim) input(m *gmember, gen int, in stack.Event) {
	if !m.running || m.gen != gen {
		return
	}
	if m.paused {
		m.backlog = append(m.backlog, in)
		return
	}
	s.step(m, in)
}

func (s *GroupSim) step(m *gmember, in stack.Event) {
	if s.cfg.Trace != nil {
		s.cfg.Trace(m.slot, m.inc, s.now, in)
	}
	if err := m.st.Step(s.now, in); err != nil {
		panic(err)
	}
	if s.cfg.Batch <= 0 {
		s.effects(m)
		return
	}
	if m.batch {
		return
	}
	m.batch = true
	gen := m.gen
	s.after(s.cfg.Batch, func() {
		if !m.running || m.gen != gen || !m.batch {
			return
		}
		m.batch = false
		if !m.paused { // else the first step after Resume collects them
			s.effects(m)
		}
	})
}

func (s *GroupSim) effects(m *gmember) {
	for _, e := range m.st.Ready() {
		switch e := e.(type) {
		case stack.Out:
			s.transmit(m, e)
		case stack.Close:
			if j := slotOf(strings.SplitN(e.ID, ".", 2)[0]); j >= 0 && j < s.cfg.N {
				if c := m.links[j]; c != nil && c.far(m.slot) == e.ID {
					s.closeConn(m, c, "eof")
				}
			}
		case stack.Deliver:
			if e.View != m.viewID || m.viewStr == "" {
				m.viewID, m.viewStr = e.View, e.View.String()
			}
			s.log(m, "deliver", "view", m.viewStr, "from", e.From, "seq", e.Seq, "order", e.Order, "msg", string(e.Msg.Data))
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
	if j < 0 || j >= s.cfg.N || j == m.slot {
		return
	}
	o := s.members[j]
	gen := m.gen
	lost := func(after time.Duration, reason string) {
		s.after(after, func() {
			s.input(m, gen, stack.Lost{ID: e.To.ID, Addr: e.To.Addr, Reason: reason})
		})
	}
	c := m.links[j]
	if c != nil && e.To.ID != "" && e.To.ID != c.far(m.slot) {
		c = nil // meant for another incarnation than the one connected
	}
	if c == nil {
		switch {
		case s.blocked[pair(m.slot, j)]:
			lost(DialTimeout, "timeout")
			return
		case !o.running:
			lost(s.delay(), "refused")
			return
		case e.To.ID != "" && e.To.ID != o.id:
			lost(s.delay(), "gone") // a new incarnation answers at that address
			return
		}
		c = &gconn{ends: [2]int{m.slot, j}, gens: [2]int{m.gen, o.gen}, ids: [2]string{m.id, o.id}, open: [2]bool{true, true}}
		m.links[j] = c
		o.links[m.slot] = c
	}
	from := stack.Member{ID: m.id, Addr: m.addr}
	msg := e.Msg // no copy: a message is never written to once made (Push copies)
	me := c.side(m.slot)
	s.send(m.slot, j, func() {
		if c.broken || !c.open[1-me] || o.gen != c.gens[1-me] {
			return // the connection ended meanwhile
		}
		s.input(o, c.gens[1-me], stack.Recv{From: from, Msg: msg})
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
		s.input(m, gen, stack.Tick{})
	})
}

// Apply performs one fault of a group schedule now: crash, start, pause,
// resume or leave slot i; reset (i's connection with the next slot), cut
// (i's link to the next slot), isolate (i from the rest), split (slots up
// to i | the rest) or heal.
func (s *GroupSim) Apply(op string, i int) {
	n := s.cfg.N
	next := (i + 1) % n
	switch op {
	case "crash":
		s.Crash(i)
	case "start":
		s.Start(i)
	case "pause":
		s.Pause(i)
	case "resume":
		s.Resume(i)
	case "leave":
		s.Leave(i)
	case "reset":
		s.Reset(i, next)
	case "cut":
		s.Cut(i, next)
	case "isolate":
		var rest []int
		for j := range n {
			if j != i {
				rest = append(rest, j)
			}
		}
		s.Partition([]int{i}, rest)
	case "split":
		var a, b []int
		for j := range n {
			if j <= i {
				a = append(a, j)
			} else {
				b = append(b, j)
			}
		}
		s.Partition(a, b)
	case "heal":
		s.Heal()
	default:
		panic("sim: unknown group fault " + op)
	}
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
	f["member"] = m.id
	t := s.wall()
	s.history = append(s.history, eventlog.Event{TS: t, Node: m.addr, Inc: m.inc, LC: m.clock.Tick(t), Ev: ev, Fields: f})
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
