package sim

import (
	"cmp"
	"maps"
	"slices"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// The fault vocabulary: each applies to a process, or to the network
// between processes, whatever machines they host. Faults are recorded
// under node "control" with the names the real launcher uses (proc_kill,
// proc_stop, net_cut, ...), so the same checkers read both.

// Start starts process i and every machine it hosts: a new incarnation
// if it ran before.
func (n *Net) Start(i int) {
	p := n.procs[i]
	if p.running {
		return
	}
	p.running, p.paused = true, false
	p.inc++
	p.joins = 0
	p.gen++
	p.backlog = nil
	p.conns = map[uint64]*conn{}
	n.control(eventlog.ProcStart, eventlog.FieldPeer, i)
	for _, m := range p.machines {
		m.start()
	}
}

// StartAll starts every process.
func (n *Net) StartAll() {
	for i := range n.procs {
		n.Start(i)
	}
}

// Crash kills process i: its connections close as the kernel closes them
// (the far ends see end-of-stream after what was in flight), every machine
// it hosts is gone, and its disk keeps only what was synced.
func (n *Net) Crash(i int) {
	p := n.procs[i]
	if !p.running {
		return
	}
	n.control(eventlog.ProcKill, eventlog.FieldPeer, i)
	n.end(p)
	if p.disk != nil {
		p.disk.crash()
	}
}

// end ends process p: its connections close, its machines are gone.
func (n *Net) end(p *proc) {
	p.running, p.paused = false, false
	p.gen++
	for _, id := range slices.Sorted(maps.Keys(p.conns)) {
		c := p.conns[id]
		n.close(c, c.side(p.id))
	}
	p.conns = nil
	p.backlog = nil
	for _, m := range p.machines {
		m.down()
	}
}

// Stop stops process i cleanly (SIGTERM): each machine says goodbye as it
// does, then the process exits.
func (n *Net) Stop(i int) {
	p := n.procs[i]
	if !p.running || p.paused {
		return
	}
	n.control(eventlog.ProcTerm, eventlog.FieldPeer, i)
	gen := p.gen
	for _, m := range p.machines {
		if p.gen == gen {
			m.stop()
		}
	}
	if p.gen == gen {
		n.end(p)
	}
}

// Running reports whether process i exists (it may be paused).
func (n *Net) Running(i int) bool { return n.procs[i].running }

// Paused reports whether process i is paused.
func (n *Net) Paused(i int) bool { return n.procs[i].paused }

// Pause hangs process i (SIGSTOP): it runs nothing, while what arrives for
// it queues up and its connections stay open.
func (n *Net) Pause(i int) {
	if p := n.procs[i]; p.running && !p.paused {
		n.control(eventlog.ProcStop, eventlog.FieldPeer, i)
		p.paused = true
	}
}

// Resume lets a paused process i run again. Whether its machines' timers
// or its queued input come first is chosen by the seed, as the race it is.
func (n *Net) Resume(i int) {
	p := n.procs[i]
	if !p.running || !p.paused {
		return
	}
	n.control(eventlog.ProcCont, eventlog.FieldPeer, i)
	p.paused = false
	backlog := p.backlog
	p.backlog = nil
	gen := p.gen
	live := func() bool { return p.gen == gen && !p.paused }
	tick := func() {
		for _, m := range p.machines {
			if live() {
				m.tick()
			}
		}
	}
	tickFirst := n.rng.IntN(2) == 0
	if tickFirst {
		tick()
	}
	for _, f := range backlog {
		if !live() {
			break
		}
		f()
	}
	if !tickFirst {
		tick()
	}
}

// Partition splits the processes into groups that cannot reach each
// other; processes in no group reach nobody. It replaces any earlier
// partition, bridge or cut.
func (n *Net) Partition(groups ...[]int) {
	side := map[int]int{}
	for g, ids := range groups {
		for _, i := range ids {
			side[i] = g + 1
		}
	}
	blocked := map[[2]int]bool{}
	for a := range n.procs {
		for b := a + 1; b < len(n.procs); b++ {
			if side[a] == 0 || side[a] != side[b] {
				blocked[[2]int{a, b}] = true
			}
		}
	}
	n.control(eventlog.NetPartition, eventlog.FieldGroups, groups)
	n.setBlocked(blocked)
}

// Bridge splits the processes into halves a and b that cannot reach each
// other while bridge reaches both. It replaces any earlier partition,
// bridge or cut.
func (n *Net) Bridge(a, b []int, bridge int) {
	blocked := map[[2]int]bool{}
	for _, x := range a {
		for _, y := range b {
			blocked[pair(x, y)] = true
		}
	}
	n.control(eventlog.NetBridge, eventlog.FieldA, a, eventlog.FieldB, b, eventlog.FieldBridge, bridge)
	n.setBlocked(blocked)
}

// Cut blocks traffic from a to b, in addition to earlier cuts. Over TCP
// that stops both directions of the pair, since acknowledgements cannot
// return.
func (n *Net) Cut(a, b int) {
	n.control(eventlog.NetCut, eventlog.FieldFrom, a, eventlog.FieldTo, b)
	blocked := maps.Clone(n.blocked)
	blocked[pair(a, b)] = true
	n.setBlocked(blocked)
}

// Heal removes every partition and cut; held traffic flows again.
func (n *Net) Heal() {
	n.control(eventlog.NetHeal)
	n.setBlocked(map[[2]int]bool{})
}

// Blocked reports whether traffic between a and b is cut.
func (n *Net) Blocked(a, b int) bool { return n.blocked[pair(a, b)] }

// Delay adds d to every message between a and b (0 removes it).
func (n *Net) Delay(a, b int, d time.Duration) {
	n.control(eventlog.NetDelay, eventlog.FieldA, a, eventlog.FieldB, b, eventlog.FieldMS, float64(d)/float64(time.Millisecond))
	if d == 0 {
		delete(n.extra, pair(a, b))
	} else {
		n.extra[pair(a, b)] = d
	}
}

// undelay lifts every injected delay, in a fixed order.
func (n *Net) undelay() {
	keys := slices.Collect(maps.Keys(n.extra))
	slices.SortFunc(keys, func(a, b [2]int) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	for _, k := range keys {
		n.Delay(k[0], k[1], 0)
	}
}

// Reset resets every connection between a and b (peers have one, group
// members one per direction): both ends of each see a reset, what was in
// flight is lost, and an attempt still in its handshake fails.
func (n *Net) Reset(a, b int) {
	logged := false
	for _, c := range n.conns {
		if c.closed[0] && c.closed[1] || pair(c.ends[0], c.ends[1]) != pair(a, b) {
			continue
		}
		if !logged {
			n.control(eventlog.NetReset, eventlog.FieldA, a, eventlog.FieldB, b)
			logged = true
		}
		for side := range 2 {
			if !c.closed[side] {
				c.closed[side] = true
				n.resetEnd(c, side, n.delay(a, b))
			}
		}
	}
}

// Apply performs one fault now: crash, start, pause or resume process
// f.Peer; reset (its connections with the next process), cut (its link to
// the next process), isolate (it from the rest), split (processes up to it
// | the rest), bridge (it bridges the lower and the higher ids), delay
// (f.D on its link to the next process; 0 lifts it), undelay (lift every
// delay) or heal (every cut and delay).
func (n *Net) Apply(f Fault) {
	nn := len(n.procs)
	next := (f.Peer + 1) % nn
	switch f.Op {
	case "crash":
		n.Crash(f.Peer)
	case "start":
		n.Start(f.Peer)
	case "pause":
		n.Pause(f.Peer)
	case "resume":
		n.Resume(f.Peer)
	case "reset":
		n.Reset(f.Peer, next)
	case "split":
		var a, b []int
		for i := range nn {
			if i <= f.Peer {
				a = append(a, i)
			} else {
				b = append(b, i)
			}
		}
		n.Partition(a, b)
	case "isolate":
		var rest []int
		for i := range nn {
			if i != f.Peer {
				rest = append(rest, i)
			}
		}
		n.Partition([]int{f.Peer}, rest)
	case "cut":
		n.Cut(f.Peer, next)
	case "bridge":
		a, b := bridgeHalves(nn, f.Peer)
		n.Bridge(a, b, f.Peer)
	case "delay":
		n.Delay(f.Peer, next, f.D)
	case "undelay":
		n.undelay()
	case "heal":
		n.Heal()
		n.undelay()
	default:
		panic("sim: unknown fault " + f.Op)
	}
}

// bridgeHalves splits processes 0..n-1 other than bridge into the two
// halves that a "bridge" fault cuts apart: those below bridge (and 1 when
// bridge is 0), and the rest.
func bridgeHalves(n, bridge int) (a, b []int) {
	for i := range n {
		switch {
		case i == bridge:
		case i < bridge || (bridge == 0 && i == 1):
			a = append(a, i)
		default:
			b = append(b, i)
		}
	}
	return a, b
}
