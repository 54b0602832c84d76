package sim

import (
	"fmt"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// Net is a simulated network of processes 0..N-1, driven by one seed.
// A process has one address and hosts any number of machines (a peer
// core, group members); faults hit processes, and so every machine a
// process hosts, whatever its kind (see faults.go).
//
// Connections are TCP-like: reliable and FIFO in each direction; a closed
// or crashed end makes the other end see end-of-stream after the data in
// flight; data that reaches a process that is gone is answered with a
// reset; a partition holds traffic until it heals, and a connection
// attempt across it times out. A one-way cut blocks both directions of the
// pair, as it does to TCP (acknowledgements cannot return).
type Net struct {
	engine
	procs   []*proc
	blocked map[[2]int]bool          // unordered pair (lo, hi) → cut
	extra   map[[2]int]time.Duration // unordered pair → added delay
	conns   []*conn                  // connections that may still carry something, oldest first
	nextCID uint64
	cfg     NetConfig
	history []eventlog.Event
	ctrl    eventlog.Clock
}

// NetConfig configures a simulated network.
type NetConfig struct {
	// N is the number of processes.
	N int
	// Seed decides every delay and random choice.
	Seed uint64
	// MinDelay and MaxDelay bound the one-way delay of a message
	// (defaults 50µs and 2ms).
	MinDelay, MaxDelay time.Duration
	// MinSync and MaxSync bound how long a disk sync takes (defaults
	// 100µs and 5ms).
	MinSync, MaxSync time.Duration
}

// NewNet returns a network of cfg.N processes, none started and hosting
// nothing yet (see NewOn and NewGroupOn).
func NewNet(cfg NetConfig) (*Net, error) {
	if cfg.MinDelay == 0 {
		cfg.MinDelay = 50 * time.Microsecond
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = defaultMaxDelay
	}
	if cfg.MinSync == 0 {
		cfg.MinSync = 100 * time.Microsecond
	}
	if cfg.MaxSync == 0 {
		cfg.MaxSync = 5 * time.Millisecond
	}
	if cfg.MaxDelay < cfg.MinDelay {
		return nil, fmt.Errorf("sim: MaxDelay %v < MinDelay %v", cfg.MaxDelay, cfg.MinDelay)
	}
	if cfg.MaxSync < cfg.MinSync {
		return nil, fmt.Errorf("sim: MaxSync %v < MinSync %v", cfg.MaxSync, cfg.MinSync)
	}
	if cfg.N < 1 {
		return nil, fmt.Errorf("sim: N is %d, want at least 1", cfg.N)
	}
	n := &Net{engine: newEngine(cfg.Seed, cfg.MinDelay, cfg.MaxDelay), cfg: cfg,
		blocked: map[[2]int]bool{}, extra: map[[2]int]time.Duration{}}
	for i := range cfg.N {
		n.procs = append(n.procs, &proc{id: i})
	}
	return n, nil
}

// N returns the number of processes.
func (n *Net) N() int { return len(n.procs) }

// History returns every recorded event so far, in order: the machines'
// and the faults'.
func (n *Net) History() []eventlog.Event { return n.history }

// never is the deadline of a machine with nothing to do (peer.Never,
// stack.Never).
const never = time.Duration(1<<63 - 1)

// proc is a simulated process.
type proc struct {
	id      int
	running bool
	paused  bool
	inc     uint64 // incarnation: counts starts
	joins   int    // the joins of its members in this incarnation, over every group (GroupConfig.Name)
	gen     int    // changes whenever the process starts or ends
	backlog []func()
	// conns are the connection ends its machines know, by id.
	conns    map[uint64]*conn
	machines []machine
	disk     *Disk // nil until asked for
}

// machine is a state machine a process hosts.
type machine interface {
	// start runs it anew in the process's new incarnation.
	start()
	// tick lets it see the time after a pause: its timer may have passed.
	tick()
	// stop asks it to end cleanly (SIGTERM).
	stop()
	// down tells it the process has ended: it forgets its state.
	down()
	// done reports whether it has ended on its own (a member that left).
	done() bool
}

// host adds m to process i's machines.
func (n *Net) host(i int, m machine) { n.procs[i].machines = append(n.procs[i].machines, m) }

// exitIfDone ends process p once every machine it hosts has ended on its
// own, as a runtime process exits then.
func (n *Net) exitIfDone(p *proc) {
	for _, m := range p.machines {
		if !m.done() {
			return
		}
	}
	if p.running {
		n.end(p)
	}
}

// input runs f in process p if it is still incarnation gen, queueing it
// while p is paused.
func (n *Net) input(p *proc, gen int, f func()) {
	if !p.running || p.gen != gen {
		return
	}
	if p.paused {
		p.backlog = append(p.backlog, f)
		return
	}
	f()
}

// timer is a machine's one pending wake-up.
type timer struct {
	n     uint64 // the pending one's number; older ones are void
	armed bool   // one is pending, at at, for process generation gen
	at    time.Duration
	gen   int
}

// arm sets t to call fire at time at (never: not at all) while p runs
// unpaused as the same incarnation; a wake-up that comes while p is
// paused is dropped (resuming ticks every machine).
func (n *Net) arm(p *proc, t *timer, at time.Duration, fire func()) {
	if !p.running {
		return
	}
	if t.armed && t.at == at && t.gen == p.gen {
		return
	}
	t.n++
	t.armed = false
	if at == never {
		return
	}
	k, gen := t.n, p.gen
	t.armed, t.at, t.gen = true, at, gen
	n.after(max(at-n.now, 0), func() {
		if t.n != k {
			return
		}
		t.armed = false
		if p.gen == gen && p.running && !p.paused {
			fire()
		}
	})
}

// setBlocked replaces the cut pairs; traffic held between pairs no longer
// cut flows again, connection by connection, oldest first.
func (n *Net) setBlocked(b map[[2]int]bool) {
	n.blocked = b
	live := n.conns[:0]
	for _, c := range n.conns {
		if c.closed[0] && c.closed[1] && len(c.held[0])+len(c.held[1]) == 0 {
			continue // over: nothing more will go on it
		}
		live = append(live, c)
		if n.blocked[pair(c.ends[0], c.ends[1])] {
			continue
		}
		for side := range 2 {
			held := c.held[side]
			c.held[side] = nil
			for _, f := range held {
				n.transmit(c, side, f)
			}
		}
	}
	clear(n.conns[len(live):])
	n.conns = live
}

func (n *Net) wall() time.Time { return Epoch.Add(n.now) }

func (n *Net) record(e eventlog.Event) { n.history = append(n.history, e) }

// control records a fault or action under node eventlog.Control.
func (n *Net) control(ev string, kv ...any) {
	n.record(eventlog.Event{TS: n.wall(), Node: eventlog.Control, LC: n.ctrl.Tick(n.wall()), Ev: ev, Fields: fields(kv)})
}

func fields(kv []any) map[string]any {
	f := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	return f
}

func pair(a, b int) [2]int {
	if a > b {
		a, b = b, a
	}
	return [2]int{a, b}
}
