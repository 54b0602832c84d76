// Package sim runs peer cores on a simulated clock and network, driven by
// one seed: every delay and every random choice comes from it, so a run is
// replayed exactly by running the same seed again.
//
// The network is TCP-like: connections are reliable and FIFO in each
// direction; a closed or crashed end makes the other end see end-of-stream;
// a partition holds traffic (TCP retransmits) until it heals, and a
// connection attempt across it times out. Faults: crash and restart (a new
// incarnation), pause and resume (a hung process whose kernel still queues
// what arrives), connection reset, partitions of any shape, and extra delay
// on a link. A one-way cut blocks both directions of the pair, as it does to
// TCP on a real network (ACKs cannot return), see
// ../shared/reference/fault-injection.md.
//
// Everything that happens is recorded as eventlog.Events: the cores' own
// events under node "peer-<id>", and the faults under node "control" with
// the same names the real launcher uses (proc_kill, proc_stop, ...), so the
// same checkers read both.
package sim

import (
	"fmt"
	"sort"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/peer"
	"github.com/conclave/conclave/wire"
)

// Epoch is the wall-clock time of simulated time zero in recorded events.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Config configures a simulation.
type Config struct {
	// N is the number of peers.
	N int
	// Seed decides every delay and random choice.
	Seed uint64
	// Peer is the peers' configuration; ID and N are set per peer.
	Peer peer.Config
	// MinDelay and MaxDelay bound the one-way delay of a message
	// (defaults 50µs and 2ms).
	MinDelay, MaxDelay time.Duration
	// LogHeartbeats records hb_sent and hb_recv events (default off: they
	// dominate the history). LogSentHeartbeats records hb_sent only, all
	// that check.NoHeartbeatAfterClose needs, at half the cost.
	LogHeartbeats, LogSentHeartbeats bool
}

// Sim is one simulated cluster.
type Sim struct {
	engine
	cfg     Config
	nodes   []*node
	blocked map[[2]int]bool          // unordered pair (lo, hi) -> cut
	extra   map[[2]int]time.Duration // unordered pair -> added delay
	conns   []*conn
	nextCID uint64
	history []eventlog.Event
	ctrl    eventlog.Clock
}

type node struct {
	id      int
	name    string // "peer-<id>"
	core    *peer.Core
	running bool
	paused  bool
	inc     uint64
	gen     int    // changes on crash and restart
	timer   uint64 // the pending timer's number; older ones are void
	// armed says a timer is pending, at armedAt, for generation armedG:
	// arm need not queue another for the same deadline.
	armed   bool
	armedAt time.Duration
	armedG  int
	backlog []func()
	conns   map[peer.ConnID]*conn
	clock   eventlog.Clock
}

// conn is one TCP connection; side 0 dialed, side 1 accepted.
type conn struct {
	ends   [2]int
	gens   [2]int
	id     peer.ConnID // the same id on both sides: ids are unique per sim
	closed [2]bool
	last   [2]time.Duration // last scheduled delivery from side i
	held   [2][]func()      // held by a partition, from side i
}

// New returns a simulation of cfg.N peers, none started.
func New(cfg Config) (*Sim, error) {
	if cfg.MinDelay == 0 {
		cfg.MinDelay = 50 * time.Microsecond
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = 2 * time.Millisecond
	}
	if cfg.MaxDelay < cfg.MinDelay {
		return nil, fmt.Errorf("sim: MaxDelay %v < MinDelay %v", cfg.MaxDelay, cfg.MinDelay)
	}
	pc := cfg.Peer
	pc.N = cfg.N
	if err := pc.Validate(); err != nil {
		return nil, err
	}
	cfg.Peer = pc
	s := &Sim{
		cfg:     cfg,
		engine:  newEngine(cfg.Seed, cfg.MinDelay, cfg.MaxDelay),
		blocked: map[[2]int]bool{},
		extra:   map[[2]int]time.Duration{},
	}
	for i := 0; i < cfg.N; i++ {
		s.nodes = append(s.nodes, &node{id: i, name: nodeName(i)})
	}
	return s, nil
}

// Config returns the configuration with defaults filled in.
func (s *Sim) Config() Config { return s.cfg }

// History returns every recorded event so far, in order.
func (s *Sim) History() []eventlog.Event { return s.history }

// Leader returns what peer i reports as leader, or peer.None if it is not
// running.
func (s *Sim) Leader(i int) int {
	if n := s.nodes[i]; n.running {
		return n.core.Leader()
	}
	return peer.None
}

// Status returns peer i's status; ok is false if it is not running.
func (s *Sim) Status(i int) (st peer.Status, ok bool) {
	if n := s.nodes[i]; n.running {
		return n.core.Status(), true
	}
	return st, false
}

// Running reports whether peer i's process exists (it may be paused).
func (s *Sim) Running(i int) bool { return s.nodes[i].running }

// Paused reports whether peer i is paused.
func (s *Sim) Paused(i int) bool { return s.nodes[i].paused }

// Start starts peer i (a new incarnation if it ran before).
func (s *Sim) Start(i int) {
	n := s.nodes[i]
	if n.running {
		return
	}
	pc := s.cfg.Peer
	pc.ID = i
	core, err := peer.New(pc)
	if err != nil {
		panic(err) // validated in New
	}
	n.core, n.running, n.paused = core, true, false
	n.inc++
	n.gen++
	n.backlog = nil
	n.conns = map[peer.ConnID]*conn{}
	n.clock = eventlog.Clock{}
	s.control("proc_start", "peer", i)
	s.step(n, peer.Start{})
}

// StartAll starts every peer.
func (s *Sim) StartAll() {
	for i := range s.nodes {
		s.Start(i)
	}
}

// Crash kills peer i: its connections close as the kernel would close them.
func (s *Sim) Crash(i int) {
	n := s.nodes[i]
	if !n.running {
		return
	}
	s.control("proc_kill", "peer", i)
	n.running, n.paused = false, false
	n.gen++
	for _, c := range sortedConns(n.conns) {
		s.closeSide(c, c.side(i), "eof")
	}
	n.conns = nil
	n.backlog = nil
}

// Pause hangs peer i: it runs nothing, while what arrives for it queues up.
func (s *Sim) Pause(i int) {
	if n := s.nodes[i]; n.running && !n.paused {
		s.control("proc_stop", "peer", i)
		n.paused = true
	}
}

// Resume lets a paused peer i run again. Whether its timer or its queued
// input comes first is chosen by the seed, as the race it is.
func (s *Sim) Resume(i int) {
	n := s.nodes[i]
	if !n.running || !n.paused {
		return
	}
	s.control("proc_cont", "peer", i)
	n.paused = false
	backlog := n.backlog
	n.backlog = nil
	gen := n.gen
	tickFirst := s.rng.IntN(2) == 0
	if tickFirst {
		s.step(n, peer.Tick{})
	}
	for _, f := range backlog {
		if n.gen != gen || n.paused {
			break
		}
		f()
	}
	if !tickFirst && n.gen == gen && !n.paused {
		s.step(n, peer.Tick{})
	}
}

// Stop stops peer i cleanly (SIGTERM): it says goodbye and exits.
func (s *Sim) Stop(i int) {
	n := s.nodes[i]
	if !n.running || n.paused {
		return
	}
	s.control("proc_term", "peer", i)
	s.step(n, peer.Stop{})
	n.running = false
	n.gen++
	n.conns = nil
}

// Partition splits the peers into groups that cannot reach each other;
// peers in no group can reach nobody. It replaces any earlier partition.
func (s *Sim) Partition(groups ...[]int) {
	side := map[int]int{}
	for g, ids := range groups {
		for _, i := range ids {
			side[i] = g + 1
		}
	}
	blocked := map[[2]int]bool{}
	for a := 0; a < s.cfg.N; a++ {
		for b := a + 1; b < s.cfg.N; b++ {
			if side[a] == 0 || side[a] != side[b] {
				blocked[[2]int{a, b}] = true
			}
		}
	}
	s.control("net_partition", "groups", groups)
	s.setBlocked(blocked)
}

// Bridge splits the peers into halves a and b that cannot reach each other
// while bridge reaches both.
func (s *Sim) Bridge(a, b []int, bridge int) {
	blocked := map[[2]int]bool{}
	for _, x := range a {
		for _, y := range b {
			blocked[pair(x, y)] = true
		}
	}
	s.control("net_bridge", "a", a, "b", b, "bridge", bridge)
	s.setBlocked(blocked)
}

// Cut blocks traffic from a to b. Over TCP that stops both directions of
// the pair, since acknowledgements cannot return.
func (s *Sim) Cut(a, b int) {
	s.control("net_cut", "from", a, "to", b)
	blocked := map[[2]int]bool{}
	for k := range s.blocked {
		blocked[k] = true
	}
	blocked[pair(a, b)] = true
	s.setBlocked(blocked)
}

// Heal removes every partition and cut; held traffic flows again.
func (s *Sim) Heal() {
	s.control("net_heal")
	s.setBlocked(map[[2]int]bool{})
}

// Delay adds d to every message between a and b (0 removes it).
func (s *Sim) Delay(a, b int, d time.Duration) {
	s.control("net_delay", "a", a, "b", b, "ms", float64(d)/float64(time.Millisecond))
	if d == 0 {
		delete(s.extra, pair(a, b))
	} else {
		s.extra[pair(a, b)] = d
	}
}

// Reset resets the connection between a and b, if there is one: both ends
// see a reset.
func (s *Sim) Reset(a, b int) {
	for _, c := range s.conns {
		if c.closed[0] && c.closed[1] {
			continue
		}
		if (c.ends[0] == a && c.ends[1] == b) || (c.ends[0] == b && c.ends[1] == a) {
			s.control("net_reset", "a", a, "b", b)
			for side := 0; side < 2; side++ {
				if !c.closed[side] {
					c.closed[side] = true
					s.deliverClosed(c, side, "reset", s.delay(a, b))
				}
			}
		}
	}
}

// Blocked reports whether traffic between a and b is cut.
func (s *Sim) Blocked(a, b int) bool { return s.blocked[pair(a, b)] }

func (s *Sim) setBlocked(b map[[2]int]bool) {
	s.blocked = b
	for _, c := range s.conns {
		if s.blocked[pair(c.ends[0], c.ends[1])] {
			continue
		}
		for side := 0; side < 2; side++ {
			held := c.held[side]
			c.held[side] = nil
			for _, f := range held {
				s.transmit(c, side, f)
			}
		}
	}
}

// Converged reports whether every running, unpaused peer reports the same
// leader, and returns it.
func (s *Sim) Converged() (int, bool) {
	leader, seen := peer.None, false
	for _, n := range s.nodes {
		if !n.running || n.paused {
			continue
		}
		l := n.core.Leader()
		if seen && l != leader {
			return peer.None, false
		}
		leader, seen = l, true
	}
	return leader, seen
}

func (s *Sim) delay(a, b int) time.Duration {
	return s.jitter() + s.extra[pair(a, b)]
}

// input hands f to node n if it is still the same process, queueing it
// while n is paused.
func (s *Sim) input(n *node, gen int, f func()) {
	if !n.running || n.gen != gen {
		return
	}
	if n.paused {
		n.backlog = append(n.backlog, f)
		return
	}
	f()
}

// step feeds one input to a node's core and carries out the effects.
func (s *Sim) step(n *node, in peer.Input) error {
	err := n.core.Step(s.now, in)
	s.effects(n)
	return err
}

func (s *Sim) effects(n *node) {
	for _, e := range n.core.Ready() {
		switch e := e.(type) {
		case peer.Send:
			if c := n.conns[e.Conn]; c != nil {
				s.sendFrame(c, c.side(n.id), e.Frame, n.clock.Tick(s.wall()))
				if e.Urgent {
					s.sendFrame(c, c.side(n.id), wire.Hint{}, 0)
				}
			}
		case peer.Close:
			if c := n.conns[e.Conn]; c != nil {
				delete(n.conns, e.Conn)
				s.closeSide(c, c.side(n.id), "eof")
			}
		case peer.Dial:
			s.dial(n, e.Peer)
		case peer.Log:
			if !s.cfg.LogHeartbeats && (e.Ev == "hb_recv" || e.Ev == "hb_sent" && !s.cfg.LogSentHeartbeats) {
				continue
			}
			s.record(eventlog.Event{TS: s.wall(), Node: n.name, Inc: n.inc,
				LC: n.clock.Tick(s.wall()), Ev: e.Ev, Fields: e.Fields})
		}
	}
	s.arm(n)
}

// arm schedules the node's timer at its core's deadline, unless the timer
// pending is already set for it.
func (s *Sim) arm(n *node) {
	if !n.running {
		return
	}
	at := n.core.Deadline()
	if n.armed && n.armedAt == at && n.armedG == n.gen {
		return
	}
	n.timer++
	n.armed = false
	if at == peer.Never {
		return
	}
	t, gen := n.timer, n.gen
	n.armed, n.armedAt, n.armedG = true, at, gen
	s.after(max(at-s.now, 0), func() {
		if n.timer != t {
			return
		}
		n.armed = false
		if n.gen == gen && n.running && !n.paused {
			s.step(n, peer.Tick{})
		}
	})
}

func (s *Sim) dial(n *node, to int) {
	gen, target := n.gen, s.nodes[to]
	fail := func(d time.Duration, why string) {
		s.after(d, func() { s.input(n, gen, func() { s.step(n, peer.DialFailed{Peer: to, Err: why}) }) })
	}
	switch {
	case s.blocked[pair(n.id, to)]:
		fail(s.cfg.Peer.SuspectAfter, "timeout")
		return
	case !target.running:
		fail(2*s.delay(n.id, to), "connection refused")
		return
	case target.paused:
		// The kernel accepts, the process never answers.
		fail(s.cfg.Peer.SuspectAfter, "timeout")
		return
	}
	inc := n.inc
	s.after(s.delay(n.id, to), func() {
		if !target.running || target.paused || s.blocked[pair(n.id, to)] {
			fail(s.cfg.Peer.SuspectAfter, "timeout")
			return
		}
		s.nextCID++
		c := &conn{ends: [2]int{n.id, to}, gens: [2]int{gen, target.gen}, id: peer.ConnID(s.nextCID)}
		err := target.core.Step(s.now, peer.Handshake{Peer: n.id, Conn: c.id, Incarnation: inc, Addr: n.name})
		if err != nil {
			s.effects(target)
			fail(s.delay(to, n.id), "rejected: "+err.Error())
			return
		}
		s.conns = append(s.conns, c)
		target.conns[c.id] = c
		// The acceptor's Hello goes first, then whatever admission sent.
		tinc := target.inc
		s.send(c, 1, func() {
			n.conns[c.id] = c
			if err := s.step(n, peer.Handshake{Peer: to, Conn: c.id, Incarnation: tinc, Dialed: true, Addr: target.name}); err != nil {
				delete(n.conns, c.id)
				s.closeSide(c, 0, "eof")
			}
		})
		s.effects(target)
	})
}

// send schedules f at the other end of c, from side, in FIFO order; f runs
// only if that end is still the same process, else the sender gets a reset.
func (s *Sim) send(c *conn, side int, f func()) {
	if c.closed[side] {
		return
	}
	if s.blocked[pair(c.ends[0], c.ends[1])] {
		c.held[side] = append(c.held[side], f)
		return
	}
	s.transmit(c, side, f)
}

func (s *Sim) transmit(c *conn, side int, f func()) {
	other := 1 - side
	at := max(s.now+s.delay(c.ends[side], c.ends[other]), c.last[side])
	c.last[side] = at
	dst := s.nodes[c.ends[other]]
	gen := c.gens[other]
	s.after(at-s.now, func() {
		if !dst.running || dst.gen != gen {
			// Nobody there: the kernel answers with a reset.
			c.closed[other] = true
			if !c.closed[side] {
				c.closed[side] = true
				s.deliverClosed(c, side, "reset", s.delay(c.ends[other], c.ends[side]))
			}
			return
		}
		s.input(dst, gen, f)
	})
}

func (s *Sim) sendFrame(c *conn, side int, f wire.Frame, lc uint64) {
	f = wire.Stamp(f, lc)
	dst := s.nodes[c.ends[1-side]]
	from := c.ends[side]
	s.send(c, side, func() {
		if c.closed[1-side] {
			return
		}
		if lc != 0 {
			dst.clock.Witness(lc, s.wall())
		}
		s.step(dst, peer.Recv{Peer: from, Conn: c.id, Frame: f})
	})
}

// closeSide closes c from side: the other end sees reason after the data in
// flight.
func (s *Sim) closeSide(c *conn, side int, reason string) {
	if c.closed[side] {
		return
	}
	s.send(c, side, func() {
		other := 1 - side
		if c.closed[other] {
			return
		}
		c.closed[other] = true
		dst := s.nodes[c.ends[other]]
		delete(dst.conns, c.id)
		s.step(dst, peer.Closed{Peer: c.ends[side], Conn: c.id, Reason: reason})
	})
	c.closed[side] = true
}

// deliverClosed tells side that c is gone, after d.
func (s *Sim) deliverClosed(c *conn, side int, reason string, d time.Duration) {
	dst := s.nodes[c.ends[side]]
	gen := c.gens[side]
	from := c.ends[1-side]
	s.after(d, func() {
		s.input(dst, gen, func() {
			if dst.conns[c.id] == nil {
				return
			}
			delete(dst.conns, c.id)
			s.step(dst, peer.Closed{Peer: from, Conn: c.id, Reason: reason})
		})
	})
}

func (c *conn) side(id int) int {
	if c.ends[0] == id {
		return 0
	}
	return 1
}

func (s *Sim) wall() time.Time { return Epoch.Add(s.now) }

func (s *Sim) record(e eventlog.Event) { s.history = append(s.history, e) }

// control records a fault or action under node "control".
func (s *Sim) control(ev string, kv ...any) {
	f := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	s.record(eventlog.Event{TS: s.wall(), Node: "control", LC: s.ctrl.Tick(s.wall()), Ev: ev, Fields: f})
}

func nodeName(id int) string { return fmt.Sprintf("peer-%d", id) }

func pair(a, b int) [2]int {
	if a > b {
		a, b = b, a
	}
	return [2]int{a, b}
}

func sortedConns(m map[peer.ConnID]*conn) []*conn {
	out := make([]*conn, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
