package check

import (
	"fmt"
	"slices"
	"time"

	"github.com/conclave/conclave/eventlog"
)

const none = -1

// LeaderRule checks that every peer's reported leader follows from its own
// view at every step: none (-1) before its election_open; with quorum, none
// while it sees at most half of the N peers up, itself included; otherwise
// the lowest id it sees up, itself included. The view is what the peer
// logged: its peer_up and peer_down events since its start. The leader must
// follow at once: when a step changes the view, the leader_change it calls
// for comes before any other event of the peer (a peer killed in between is
// excused: SIGKILL may fall between two lines). The alive list of each
// leader_change must match the view. Incarnations whose start is not in h
// are skipped.
//
// This is the local half of quorum safety: a peer recognises a leader only
// while it sees a majority. QuorumIsolation adds what the network allows
// it to see.
func LeaderRule(h []eventlog.Event, o Options) []Violation {
	type view struct {
		inc    uint64
		known  bool
		quorum bool
		open   bool
		up     map[int]bool
		leader int
		dirty  bool // the view changed since the leader was last checked
	}
	views := map[int]*view{}
	expect := func(v *view, id int) (int, []int) {
		alive := []int{id}
		for k := range v.up {
			alive = append(alive, k)
		}
		slices.Sort(alive)
		switch {
		case !v.open:
			return none, alive
		case v.quorum && 2*len(alive) <= o.N:
			return none, alive
		}
		return alive[0], alive
	}
	var out []Violation
	settle := func(v *view, id int, e eventlog.Event) {
		if !v.dirty {
			return
		}
		v.dirty = false
		if want, alive := expect(v, id); v.leader != want {
			out = append(out, Violation{"leader-rule", e, fmt.Sprintf("peer %d kept leader %d when its view (alive %v, elections open %v) calls for %d", id, v.leader, alive, v.open, want)})
		}
	}
	for _, e := range h {
		if e.Node == eventlog.Control && e.Ev == eventlog.ProcKill {
			if v := views[intField(e, eventlog.FieldPeer)]; v != nil {
				v.dirty = false
			}
		}
		id := PeerID(e.Node)
		if id < 0 {
			continue
		}
		v := views[id]
		if v == nil || v.inc != e.Inc {
			v = &view{inc: e.Inc, up: map[int]bool{}, leader: none}
			if e.Ev == eventlog.Start {
				v.known, v.quorum = true, startSettings(e).quorum
			}
			views[id] = v
		}
		if !v.known {
			continue
		}
		switch e.Ev {
		case eventlog.PeerUp:
			v.up[intField(e, eventlog.FieldPeer)] = true
			v.dirty = true
		case eventlog.PeerDown:
			delete(v.up, intField(e, eventlog.FieldPeer))
			v.dirty = true
		case eventlog.ElectionOpen:
			v.open = true
			v.dirty = true
		case eventlog.LeaderChange:
			v.leader = intField(e, eventlog.FieldLeader)
			want, alive := expect(v, id)
			if v.leader != want {
				out = append(out, Violation{"leader-rule", e, fmt.Sprintf("peer %d chose leader %d; its view (alive %v, elections open %v) calls for %d", id, v.leader, alive, v.open, want)})
			}
			if got := ints(e.Fields[eventlog.FieldAlive]); !slices.Equal(got, alive) {
				out = append(out, Violation{"leader-rule", e, fmt.Sprintf("peer %d logged alive %v; its peer_up and peer_down events say %v", id, got, alive)})
			}
			v.dirty = false
		default:
			settle(v, id, e)
		}
	}
	if len(h) > 0 {
		ids := make([]int, 0, len(views))
		for id := range views {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if v := views[id]; v.known {
				settle(v, id, h[len(h)-1])
			}
		}
	}
	return out
}

// detectionBound is how long after a peer k stopped being reachable from p
// (k's process gone, or the pair cut apart) p may still consider k correct,
// counted in p's own running time: the last heartbeat sent before may
// arrive up to one message delay later, traffic held by a cut that heals
// may bring a last heartbeat (and then the end of the connection) one
// delay after that, and silence is declared after suspect-after.
func detectionBound(s settings, o Options, nw *network) time.Duration {
	return s.suspectAfter + 2*(o.MaxDelay+nw.maxExtra)
}

// BeliefBound checks that a peer p considers a peer k correct at time t only
// if, at some moment of the last D of p's running time before t, k's
// process existed (running or hung) and the network joined p and k. D is
// suspect-after plus two one-way message delays (o.MaxDelay plus the largest
// delay injected so far). Time p spent hung does not count: a hung process
// cannot watch, and does not hold the silence of that time against others.
// It needs o.MaxDelay (the simulator's delays are known; a real network's
// are not), and is skipped without it.
func BeliefBound(h []eventlog.Event, o Options) []Violation {
	b, _ := reachChecks(h, o)
	return b
}

// QuorumIsolation checks the quorum property a peer can guarantee on its
// own: in quorum mode, a peer p recognises a leader at time t only if more
// than N/2 peers, p included, were each reachable from p at some moment of
// the last D of p's running time (reachable: its process existed and the
// network joined it to p; D as in BeliefBound). So a peer cut off with a
// minority, by a partition, cuts or a bridge, recognises no leader once
// the cut has lasted D.
//
// Nothing stronger holds at every instant. Two peers may recognise
// different leaders at the same instant: while a cut is not a clean
// partition (a one-way cut, a bridge) for as long as it lasts, since each
// peer elects the lowest id of its own majority; and for a moment after any
// change even on a clean partition or a healthy network, since the peers
// notice the change one by one. StableAgreement checks what holds once a
// clean partition has settled. Needs o.MaxDelay, like BeliefBound.
func QuorumIsolation(h []eventlog.Event, o Options) []Violation {
	_, q := reachChecks(h, o)
	return q
}

// reachChecks runs BeliefBound and QuorumIsolation in one pass.
func reachChecks(h []eventlog.Event, o Options) (belief, quorum []Violation) {
	s, ok := runSettings(h)
	if !ok || o.MaxDelay <= 0 || o.N <= 0 {
		return nil, nil
	}
	n := o.N
	type view struct {
		inc      uint64
		quorum   bool
		up       map[int]bool
		leader   int
		reported bool // the current leader was reported
	}
	views := make([]*view, n)
	clocks := make([]runClock, n)
	ever := make([][]bool, n)               // [p][k]: k was ever reachable from p
	lastReach := make([][]time.Duration, n) // [p][k], in p's run time
	reported := make([][]bool, n)           // [p][k]: a stale belief was reported
	for i := range n {
		ever[i], lastReach[i], reported[i] = make([]bool, n), make([]time.Duration, n), make([]bool, n)
	}
	p := newProcs(h)
	nw := newNetwork(n)
	reachable := func(a, k int) bool {
		return a == k || (p.state[k] != notRunning && nw.linked(a, k))
	}
	// stale returns how long k has been out of a's reach, in a's run time.
	stale := func(a, k int, t time.Time) (time.Duration, bool) {
		switch {
		case reachable(a, k):
			return 0, true
		case !ever[a][k]:
			return 0, false
		}
		return clocks[a].now(t) - lastReach[a][k], true
	}
	within := func(a, k int, t time.Time) bool {
		d, ok := stale(a, k, t)
		return ok && d <= detectionBound(s, o, nw)
	}
	checkBelief := func(a, k int, t time.Time, e eventlog.Event) {
		if within(a, k, t) || reported[a][k] {
			return
		}
		reported[a][k] = true
		msg := fmt.Sprintf("peer %d still considers peer %d correct although it has been out of reach for longer than %v of peer %d's running time", a, k, detectionBound(s, o, nw), a)
		if d, ok := stale(a, k, t); ok {
			msg += fmt.Sprintf(" (%v)", d)
		} else {
			msg = fmt.Sprintf("peer %d considers peer %d correct although it was never reachable", a, k)
		}
		belief = append(belief, Violation{"belief-bound", e, msg})
	}
	checkLeader := func(a int, t time.Time, e eventlog.Event) {
		v := views[a]
		if v == nil || !v.quorum || v.leader == none || v.reported {
			return
		}
		var near []int
		for k := range n {
			if within(a, k, t) {
				near = append(near, k)
			}
		}
		if 2*len(near) <= n {
			v.reported = true
			quorum = append(quorum, Violation{"quorum-isolation", e, fmt.Sprintf("peer %d recognises leader %d although only peers %v (of %d) were reachable from it in the last %v of its running time", a, v.leader, near, n, detectionBound(s, o, nw))})
		}
	}
	checkAll := func(t time.Time, e eventlog.Event) {
		for a, v := range views {
			if v == nil {
				continue
			}
			for _, k := range sortedKeys(v.up) {
				checkBelief(a, k, t, e)
			}
			checkLeader(a, t, e)
		}
	}
	var now time.Time
	for _, e := range h {
		if e.TS.After(now) {
			now = e.TS
		}
		// Only control events, and without them starts and stops, change
		// who can reach whom.
		change := e.Node == eventlog.Control || e.Ev == eventlog.Start || e.Ev == eventlog.Stop
		if change {
			checkAll(now, e)
			for a := range n {
				for k := range n {
					if reachable(a, k) {
						ever[a][k], lastReach[a][k] = true, clocks[a].now(now)
					}
				}
			}
		}
		p.apply(e)
		nw.apply(e)
		for a := 0; change && a < n; a++ {
			if run := p.state[a] == running; run != clocks[a].running {
				clocks[a].set(now, run)
			}
			if p.state[a] == notRunning && views[a] != nil && e.Node == eventlog.Control {
				views[a] = nil // the process is gone, and its beliefs with it
			}
			for k := range n {
				if reachable(a, k) {
					ever[a][k], reported[a][k] = true, false
				}
			}
		}
		a := PeerID(e.Node)
		if a < 0 || a >= n {
			continue
		}
		v := views[a]
		if v == nil || v.inc != e.Inc {
			v = &view{inc: e.Inc, up: map[int]bool{}, leader: none}
			if e.Ev == eventlog.Start {
				v.quorum = startSettings(e).quorum
			}
			views[a] = v
		}
		switch e.Ev {
		case eventlog.PeerUp:
			k := intField(e, eventlog.FieldPeer)
			if k >= 0 && k < n {
				v.up[k] = true
				checkBelief(a, k, now, e)
			}
		case eventlog.PeerDown:
			k := intField(e, eventlog.FieldPeer)
			if k >= 0 && k < n {
				checkBelief(a, k, now, e)
				delete(v.up, k)
				reported[a][k] = false
			}
		case eventlog.LeaderChange:
			checkLeader(a, now, e)
			v.leader, v.reported = intField(e, eventlog.FieldLeader), false
			checkLeader(a, now, e)
		case eventlog.Stop:
			views[a] = nil
		}
	}
	if len(h) > 0 {
		checkAll(now, h[len(h)-1])
	}
	return belief, quorum
}

func sortedKeys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// StableAgreement checks the agreement that holds once the network has
// settled: when it has been a clean partition (the peers split into sides,
// perhaps one, each fully connected inside, no one-way cut or bridge) with
// every injected delay below the settings (see NoFalseSuspicion), and no
// control event (fault, start) has happened for o.ConvergeWithin plus three
// injected delays (a dial, its answer and the first heartbeat; a delay
// lifted counts until a round trip begun before it was lifted is over),
// then no two
// running, unhung peers recognise different leaders: in quorum mode none at
// all (the majority side elects its lowest live id, the others recognise
// none); without quorum none on the same side. It needs o.ConvergeWithin
// and o.MaxDelay, and is skipped without them.
//
// With quorum this is the issue's "no two peers recognise different
// leaders while their sides are partitioned", made exact: it holds from a
// bound after the partition on, not during the moments in which the peers
// notice the change one by one, and not while the network is cut in a
// shape that is no partition.
func StableAgreement(h []eventlog.Event, o Options) []Violation {
	s, ok := runSettings(h)
	if !ok || o.MaxDelay <= 0 || o.ConvergeWithin <= 0 || len(h) == 0 || o.N <= 0 {
		return nil
	}
	p := newProcs(h)
	nw := newNetwork(o.N)
	leaders := map[int]int{}
	var (
		out      []Violation
		since    = h[0].TS // the last control event
		settled  = since.Add(o.ConvergeWithin)
		stable   = true
		inWindow bool
		reported bool
	)
	evaluate := func(e eventlog.Event, at time.Time) {
		if reported {
			return
		}
		var ids []int
		for id, l := range leaders {
			if l != none && p.state[id] == running {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		for i, a := range ids {
			for _, b := range ids[i+1:] {
				if leaders[a] == leaders[b] || (!s.quorum && !nw.linked(a, b)) {
					continue
				}
				reported = true
				out = append(out, Violation{"stable-agreement", e, fmt.Sprintf("peers %d and %d recognise leaders %d and %d at %v, %v after the last control event, on a network that has been a clean partition since", a, b, leaders[a], leaders[b], at.Sub(h[0].TS), at.Sub(since))})
				return
			}
		}
	}
	for _, e := range h {
		if stable && !inWindow && !e.TS.Before(settled) {
			inWindow = true
			evaluate(e, settled)
		}
		p.apply(e)
		if e.Node == eventlog.Control && e.Ev != eventlog.Step && e.Ev != eventlog.Converged {
			nw.apply(e)
			since, inWindow, reported = e.TS, false, false
			settled = since
			if nw.lateUntil.After(settled) {
				settled = nw.lateUntil
			}
			settled = settled.Add(o.ConvergeWithin + 3*nw.delays())
			stable = nw.clean() && smallDelays(nw, s, o)
			continue
		}
		id := PeerID(e.Node)
		switch e.Ev {
		case eventlog.Start:
			leaders[id] = none
		case eventlog.LeaderChange:
			leaders[id] = intField(e, eventlog.FieldLeader)
			if inWindow {
				evaluate(e, e.TS)
			}
		}
	}
	return out
}

// smallDelays reports whether every delay injected now is below the
// settings: a heartbeat interval plus the delay plus the jitter of the
// network stays under suspect-after.
func smallDelays(nw *network, s settings, o Options) bool {
	return nw.delays()+o.MaxDelay < s.suspectAfter-s.heartbeat
}
