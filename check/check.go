// Package check holds property checkers over recorded histories: the event
// logs of a simulated run (package sim) or of real processes (their merged
// logs), in the same format, with faults recorded under node "control".
//
// Each checker returns the violations it finds; an empty result means the
// property held on that history. The properties are those of the peer core
// (docs/peer-core.md):
//
//   - ElectionGate: no peer reports a leader before it has accounted for
//     every peer (election_open), a peer that opened by itself had heard
//     every peer at some time, and the first leader reported in a run is
//     0 unless its reporter had seen 0 go down.
//   - Convergence: at the end of the run every running, unpaused peer
//     reports the same leader, the lowest id among them, and reached it
//     within a bound after the last fault.
//   - DetectionCause: a killed peer is detected by its connection closing, a
//     hung one by silence, never the other way.
//   - NoHeartbeatAfterClose: no heartbeat on a connection after its closure
//     was detected (needs every hb_sent logged).
//   - UrgentNotices: every leader change is announced with an urgent notice
//     to every peer connected at that moment, in the step of the change or,
//     with a notice delay, within it unless undone first.
//   - NoFalseSuspicion: without faults, or with only delays below the
//     settings and process faults, nobody correct is declared down.
//   - LeaderRule: each peer's leader follows from its own view at once
//     (with quorum: none unless it sees a majority).
//   - BeliefBound: a peer considers another correct only if it could
//     reach it within the detection bound.
//   - QuorumIsolation: with quorum, a peer recognises a leader only if a
//     majority could reach it within the detection bound; a minority side
//     recognises none once a cut has lasted that long.
//   - StableAgreement: once the network has settled as a clean partition,
//     no two peers recognise different leaders (with quorum), or no two on
//     one side (without).
//
// Group checks the properties of groups (group.go); Directory checks the
// logs of directory replicas for Raft's safety (one leader per term, the
// same command at each index everywhere), and Linearizable checks the
// operations its clients saw against the directory's sequential
// specification, with porcupine. PubSub checks the logs of publish/
// subscribe clients end to end: topic isolation, no duplicates, each
// publisher's order without gaps, one order per total order topic, view
// synchrony, and no acknowledged event lost (pubsub.go).
package check

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// Violation is one breach of a property.
type Violation struct {
	Rule  string
	Event eventlog.Event // where it was found
	Msg   string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: %s (at %s)", v.Rule, v.Msg, eventlog.Format(v.Event))
}

// Options describe the run being checked.
type Options struct {
	// N is the number of peers.
	N int
	// ConvergeWithin bounds the time from the last fault to the last
	// leader change; zero skips that bound.
	ConvergeWithin time.Duration
	// AllHeartbeats says every heartbeat was logged, so
	// NoHeartbeatAfterClose can run.
	AllHeartbeats bool
	// MaxDelay bounds the one-way delay of a message apart from delays
	// injected with net_delay, and says the network's timing is known (in
	// the simulator it is Config.MaxDelay). The checkers that rest on
	// timing run only when it is set: BeliefBound, QuorumIsolation,
	// StableAgreement, and NoFalseSuspicion beyond the first fault.
	MaxDelay time.Duration
}

// Peer runs every peer-core checker that applies.
func Peer(h []eventlog.Event, o Options) []Violation {
	var v []Violation
	v = append(v, ElectionGate(h, o)...)
	v = append(v, Convergence(h, o)...)
	v = append(v, DetectionCause(h)...)
	v = append(v, UrgentNotices(h)...)
	v = append(v, NoFalseSuspicion(h, o)...)
	v = append(v, LeaderRule(h, o)...)
	b, q := reachChecks(h, o)
	v = append(v, b...)
	v = append(v, q...)
	v = append(v, StableAgreement(h, o)...)
	if o.AllHeartbeats {
		v = append(v, NoHeartbeatAfterClose(h)...)
	}
	return v
}

// PeerID returns the id of a node named "peer-<id>", or -1.
func PeerID(node string) int { return eventlog.PeerID(node) }

func intField(e eventlog.Event, k string) int {
	v, ok := e.Int(k)
	if !ok {
		return -2
	}
	return v
}

// ElectionGate checks that no incarnation reports a leader before its
// election_open; that an election_open with via -1 came after peer_up of
// every other peer at some time in that incarnation (the assignment's rule:
// a heartbeat received from each, not all up at once); and that the first
// leader reported in the history is 0, unless the peer reporting it had
// seen 0 up and then down (0 was no longer up when its elections opened).
func ElectionGate(h []eventlog.Event, o Options) []Violation {
	var out []Violation
	type state struct {
		inc   uint64
		open  bool
		heard map[int]bool // peer_up at some time
		up    map[int]bool // up now
	}
	st := map[string]*state{}
	first := true
	for _, e := range h {
		id := PeerID(e.Node)
		if id < 0 {
			continue
		}
		s := st[e.Node]
		if s == nil || s.inc != e.Inc {
			s = &state{inc: e.Inc, heard: map[int]bool{}, up: map[int]bool{}}
			st[e.Node] = s
		}
		switch e.Ev {
		case eventlog.PeerUp:
			s.heard[intField(e, eventlog.FieldPeer)] = true
			s.up[intField(e, eventlog.FieldPeer)] = true
		case eventlog.PeerDown:
			delete(s.up, intField(e, eventlog.FieldPeer))
		case eventlog.ElectionOpen:
			s.open = true
			if via, _ := e.Int(eventlog.FieldVia); via < 0 && len(s.heard) != o.N-1 {
				out = append(out, Violation{"election-gate", e, fmt.Sprintf("opened elections having heard %d of the %d other peers", len(s.heard), o.N-1)})
			}
		case eventlog.LeaderChange:
			l := intField(e, eventlog.FieldLeader)
			if l < 0 {
				continue
			}
			if !s.open {
				out = append(out, Violation{"election-gate", e, "reported a leader before accounting for every peer"})
			}
			if first && l != 0 && (id == 0 || !s.heard[0] || s.up[0]) {
				out = append(out, Violation{"election-gate", e, fmt.Sprintf("first leader of the run is %d, not 0, though peer %d had not seen 0 go down", l, id)})
			}
			first = false
		}
	}
	return out
}

// procState is what the control events say about one peer's process.
type procState int

const (
	notRunning procState = iota
	running
	paused
	hungThenKilled
)

// procs replays control events (and, for runs without them, the peers'
// own start and stop events) up to each point of the history.
type procs struct {
	state   map[int]procState
	control bool // the history has control events
}

func newProcs(h []eventlog.Event) *procs {
	p := &procs{state: map[int]procState{}}
	p.control = slices.ContainsFunc(h, func(e eventlog.Event) bool { return e.Node == eventlog.Control && strings.HasPrefix(e.Ev, "proc_") })
	return p
}

// apply updates the states with e and reports whether e was a fault.
func (p *procs) apply(e eventlog.Event) (fault bool) {
	if e.Node == eventlog.Control {
		peer := intField(e, eventlog.FieldPeer)
		switch e.Ev {
		case eventlog.ProcStart:
			p.state[peer] = running
		case eventlog.ProcKill, eventlog.ProcTerm:
			p.state[peer] = notRunning
		case eventlog.ProcStop:
			p.state[peer] = paused
		case eventlog.ProcCont:
			p.state[peer] = running
		}
		return e.Ev != eventlog.Step && e.Ev != eventlog.Converged
	}
	if !p.control {
		switch e.Ev {
		case eventlog.Start:
			p.state[PeerID(e.Node)] = running
		case eventlog.Stop:
			p.state[PeerID(e.Node)] = notRunning
		}
	}
	return false
}

// Convergence checks the end of the run: every running, unpaused peer's
// last reported leader is the lowest id among them, and (with
// ConvergeWithin) its last leader change came within the bound after the
// last fault, plus three times the delay still injected at the end (a
// connection needs three messages to bring its first heartbeat); a delay
// lifted shortly before the end counts from when the answer to the last
// message sent before it was lifted was due. Runs whose network is still cut at the end, or still
// slowed beyond the settings (see NoFalseSuspicion), are not checked.
func Convergence(h []eventlog.Event, o Options) []Violation {
	if len(h) == 0 {
		return nil
	}
	p := newProcs(h)
	nw := newNetwork(o.N)
	leader := map[int]eventlog.Event{}
	var lastFault time.Time
	for _, e := range h {
		if p.apply(e) {
			lastFault = e.TS
			nw.apply(e)
		}
		if e.Ev == eventlog.LeaderChange {
			leader[PeerID(e.Node)] = e
		}
		if e.Ev == eventlog.Start {
			delete(leader, PeerID(e.Node))
		}
	}
	if len(nw.blocked) > 0 {
		return nil
	}
	if st, ok := runSettings(h); ok && nw.delays() > 0 && !smallDelays(nw, st, o) {
		return nil
	}
	from := lastFault
	if nw.lateUntil.After(from) {
		from = nw.lateUntil
	}
	deadline := from.Add(o.ConvergeWithin + 3*nw.delays())
	var live []int
	for id, s := range p.state {
		if s == running {
			live = append(live, id)
		}
	}
	if len(live) == 0 {
		return nil
	}
	slices.Sort(live)
	var out []Violation
	end := h[len(h)-1]
	for _, id := range live {
		e, ok := leader[id]
		if !ok {
			out = append(out, Violation{"convergence", end, fmt.Sprintf("peer %d never reported a leader (lowest live id is %d)", id, live[0])})
			continue
		}
		if l := intField(e, eventlog.FieldLeader); l != live[0] {
			out = append(out, Violation{"convergence", e, fmt.Sprintf("peer %d ends with leader %d, lowest live id is %d", id, l, live[0])})
		}
		if o.ConvergeWithin > 0 && !lastFault.IsZero() && e.TS.After(deadline) {
			out = append(out, Violation{"convergence", e, fmt.Sprintf("peer %d settled %v after the last fault, bound %v", id, e.TS.Sub(lastFault), deadline.Sub(lastFault))})
		}
	}
	return out
}

// DetectionCause checks that while a peer is killed every peer_down about
// it says conn_closed, and while it is paused every one says silence. A
// detection by a peer that was itself paused since the fault, or across a
// network fault, is not judged.
func DetectionCause(h []eventlog.Event) []Violation {
	var out []Violation
	fault := map[int]procState{} // peers killed or paused, and how
	observerPaused := map[int]bool{}
	netFault := false
	for _, e := range h {
		if e.Node == eventlog.Control {
			peer := intField(e, eventlog.FieldPeer)
			if isFault(e) && e.Ev != eventlog.ProcCont {
				// A peer that was paused before an earlier fault is
				// judged again from a new fault on.
				for id := range observerPaused {
					if fault[id] != paused {
						delete(observerPaused, id)
					}
				}
			}
			switch e.Ev {
			case eventlog.ProcKill:
				if fault[peer] == paused {
					// Hung, then killed: its silence had begun, so
					// either detector may fire first.
					fault[peer] = hungThenKilled
				} else {
					fault[peer] = notRunning
				}
			case eventlog.ProcStop:
				fault[peer] = paused
				observerPaused[peer] = true
			case eventlog.ProcStart, eventlog.ProcCont, eventlog.ProcTerm:
				delete(fault, peer)
			case eventlog.NetPartition, eventlog.NetCut, eventlog.NetBridge, eventlog.NetReset, eventlog.NetDelay:
				netFault = true
			}
			continue
		}
		if e.Ev != eventlog.PeerDown || netFault || observerPaused[PeerID(e.Node)] {
			continue
		}
		peer := intField(e, eventlog.FieldPeer)
		st, ok := fault[peer]
		switch {
		case !ok:
		case st == notRunning && e.Str(eventlog.FieldCause) != eventlog.CauseConnClosed:
			out = append(out, Violation{"detection-cause", e, fmt.Sprintf("killed peer %d detected by %s", peer, e.Str(eventlog.FieldCause))})
		case st == paused && e.Str(eventlog.FieldCause) != eventlog.CauseSilence:
			out = append(out, Violation{"detection-cause", e, fmt.Sprintf("hung peer %d detected by %s", peer, e.Str(eventlog.FieldCause))})
		}
	}
	return out
}

// NoHeartbeatAfterClose checks that no incarnation sends a heartbeat to a
// peer whose connection it has seen close, until a new one is admitted.
func NoHeartbeatAfterClose(h []eventlog.Event) []Violation {
	var out []Violation
	type key struct {
		node string
		inc  uint64
		peer int
	}
	open := map[key]bool{}
	for _, e := range h {
		switch e.Ev {
		case eventlog.ConnUp:
			open[key{e.Node, e.Inc, intField(e, eventlog.FieldPeer)}] = true
		case eventlog.ConnDown, eventlog.PeerDown:
			open[key{e.Node, e.Inc, intField(e, eventlog.FieldPeer)}] = false
		case eventlog.HBSent:
			if !open[key{e.Node, e.Inc, intField(e, eventlog.FieldTo)}] {
				out = append(out, Violation{"no-heartbeat-after-close", e, "heartbeat sent on a closed connection"})
			}
		}
	}
	return out
}

// UrgentNotices checks the urgent notices of leader changes. The notices a
// process sends in one step (consecutive urgent_sent events) go to every
// peer it has an admitted connection with, and name one leader.
//
// A process whose start event says notice_delay_ms 0 (or says nothing of
// it) sends them in the step of each leader_change, before any other event
// of its own, naming the new leader. With a delay, they name the leader of
// that moment, which differs from the one the process announced before,
// and a change is announced unless it is undone: a process whose leader
// differs from the one it announced, with connections admitted, announces
// it within the delay plus announceSlack of the change (or of the first
// connection since, or of its last paused event); no event of its own, and
// not the end of the history, may come later than that before it does.
//
// A process killed is excused for the notices it had not sent: SIGKILL may
// land between the log line of the change and those of the notices; so is
// one that stopped cleanly, and one hung (SIGSTOP) when the history ends.
func UrgentNotices(h []eventlog.Event) []Violation {
	var out []Violation
	type key struct {
		node string
		inc  uint64
	}
	type group struct {
		ev      eventlog.Event
		leader  int
		missing map[int]bool
	}
	type proc struct {
		conns   map[int]bool
		delay   time.Duration
		leader  int
		told    int
		group   *group         // the notices of the step under way
		pending eventlog.Event // what left a change to announce: a change, or a connection since
		gone    bool           // killed or stopped
		hung    bool           // SIGSTOPped, not yet continued
	}
	procs := map[key]*proc{}
	var order []key
	var end time.Time
	flush := func(p *proc) {
		g := p.group
		if g == nil {
			return
		}
		p.group = nil
		if len(g.missing) > 0 {
			var ids []int
			for id := range g.missing {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			out = append(out, Violation{"urgent-notices", g.ev, fmt.Sprintf("no urgent notice of leader %d to connected peers %v", g.leader, ids)})
		}
		p.told = g.leader
		if p.told == p.leader {
			p.pending = eventlog.Event{}
		}
	}
	// overdue reports a change p has left unannounced for longer than its
	// delay and the slack, at time at.
	overdue := func(p *proc, at time.Time) {
		if p.delay > 0 && p.leader != p.told && len(p.conns) > 0 && p.pending.Ev != "" && p.pending.TS.Add(p.delay+announceSlack).Before(at) {
			out = append(out, Violation{"urgent-notices", p.pending, fmt.Sprintf("leader %d was not announced within the notice delay (%v)", p.leader, p.delay)})
			p.pending = eventlog.Event{}
		}
	}
	newGroup := func(p *proc, e eventlog.Event, leader int) *group {
		g := &group{ev: e, leader: leader, missing: map[int]bool{}}
		for id := range p.conns {
			g.missing[id] = true
		}
		return g
	}
	for _, e := range h {
		if e.TS.After(end) {
			end = e.TS
		}
		if e.Node == eventlog.Control && (e.Ev == eventlog.ProcKill || e.Ev == eventlog.ProcStop || e.Ev == eventlog.ProcCont) {
			node := eventlog.PeerName(intField(e, eventlog.FieldPeer))
			for k, p := range procs {
				if k.node != node {
					continue
				}
				switch e.Ev {
				case eventlog.ProcKill:
					p.group, p.gone = nil, true
				case eventlog.ProcStop:
					p.hung = true
				case eventlog.ProcCont:
					p.hung = false
					if p.pending.Ev != "" {
						p.pending.TS = e.TS // its timers could not fire
					}
				}
			}
		}
		if PeerID(e.Node) < 0 {
			continue
		}
		k := key{e.Node, e.Inc}
		p := procs[k]
		if p == nil {
			p = &proc{conns: map[int]bool{}, leader: -1, told: -1}
			procs[k] = p
			order = append(order, k)
		}
		if p.gone {
			continue
		}
		if e.Ev != eventlog.UrgentSent {
			// Any other event of this process means the step is over.
			flush(p)
			if e.Ev == eventlog.Paused && p.pending.Ev != "" {
				p.pending.TS = e.TS // its timers could not fire
			}
			overdue(p, e.TS)
		}
		switch e.Ev {
		case eventlog.Start:
			p.delay = msField(e, eventlog.FieldNoticeDelayMS)
		case eventlog.Stop:
			p.gone = true
		case eventlog.ConnUp:
			if p.leader != p.told && (p.pending.Ev == "" || len(p.conns) == 0) {
				p.pending = e // the change waited for a connection
			}
			p.conns[intField(e, eventlog.FieldPeer)] = true
		case eventlog.ConnDown, eventlog.PeerDown:
			delete(p.conns, intField(e, eventlog.FieldPeer))
		case eventlog.LeaderChange:
			p.leader = intField(e, eventlog.FieldLeader)
			switch {
			case p.delay == 0:
				p.group = newGroup(p, e, p.leader)
			case p.leader == p.told:
				p.pending = eventlog.Event{}
			case p.pending.Ev == "":
				p.pending = e
			}
		case eventlog.UrgentSent:
			l := intField(e, eventlog.FieldLeader)
			if p.group == nil {
				p.group = newGroup(p, e, l)
				switch {
				case l != p.leader:
					out = append(out, Violation{"urgent-notices", e, fmt.Sprintf("an urgent notice names leader %d, but this peer's leader is %d", l, p.leader)})
				case p.delay > 0 && l == p.told:
					out = append(out, Violation{"urgent-notices", e, fmt.Sprintf("an urgent notice repeats leader %d, announced before", l)})
				}
			}
			if l == p.group.leader {
				delete(p.group.missing, intField(e, eventlog.FieldTo))
			}
		}
	}
	for _, k := range order {
		if p := procs[k]; !p.gone {
			flush(p)
			if !p.hung {
				overdue(p, end)
			}
		}
	}
	slices.SortFunc(out, func(a, b Violation) int { return a.Event.TS.Compare(b.Event.TS) })
	return out
}

// announceSlack is how late after its notice delay UrgentNotices lets a
// process announce a change: timers of loaded processes fire late.
const announceSlack = 2 * time.Second

// NoFalseSuspicion checks that nobody is declared down without a fault.
// It judges the history up to the first fault (histories with no control
// events at all, up to the first stop). With o.MaxDelay set it judges on,
// through the faults that must not cause a suspicion of anyone else:
//
//   - a delay injected with net_delay that stays below the settings: the
//     delay plus o.MaxDelay (the network's own jitter) is less than
//     suspect-after minus the heartbeat interval, so consecutive
//     heartbeats never arrive further apart than suspect-after;
//   - a process fault (kill, clean stop, hang, resume). A peer_down by p
//     of k is excused if k is not running unhung at that moment, or if k
//     was killed, stopped, hung or resumed since a round trip before p
//     admitted the connection that ended (the handshake was under way
//     then). A fault of p itself in that time excuses only a closed
//     connection (its peer gave up on it while it was hung), never a
//     silence: a peer must not hold the time it was hung itself against
//     others.
//
// Any other fault (a cut, a partition, a reset, a longer delay) ends the
// judged stretch.
func NoFalseSuspicion(h []eventlog.Event, o Options) []Violation {
	var out []Violation
	s, ok := runSettings(h)
	onward := ok && o.MaxDelay > 0
	nw := newNetwork(max(o.N, 1))
	procs := newProcs(h)
	faultAt := map[int]time.Time{}   // peer -> its last process fault
	connAt := map[[2]int]time.Time{} // (p, k) -> p's last conn_up of k
	excused := func(p, k int, cause string) bool {
		since := connAt[[2]int{p, k}].Add(-2 * (o.MaxDelay + nw.maxExtra))
		own := cause != eventlog.CauseSilence && !faultAt[p].Before(since)
		return procs.state[k] != running || own || !faultAt[k].Before(since)
	}
judged:
	for _, e := range h {
		procs.apply(e)
		if e.Ev == eventlog.Stop && PeerID(e.Node) >= 0 {
			if !onward {
				break
			}
			faultAt[PeerID(e.Node)] = e.TS
		}
		if isFault(e) {
			if !onward {
				break
			}
			switch e.Ev {
			case eventlog.ProcKill, eventlog.ProcTerm, eventlog.ProcStop, eventlog.ProcCont:
				faultAt[intField(e, eventlog.FieldPeer)] = e.TS
			case eventlog.NetDelay:
				if nw.apply(e); !smallDelays(nw, s, o) {
					break judged
				}
			default:
				break judged
			}
			continue
		}
		p := PeerID(e.Node)
		switch e.Ev {
		case eventlog.ConnUp:
			connAt[[2]int{p, intField(e, eventlog.FieldPeer)}] = e.TS
		case eventlog.PeerDown:
			k := intField(e, eventlog.FieldPeer)
			msg := "peer declared down with no fault injected"
			if onward {
				if excused(p, k, e.Str(eventlog.FieldCause)) {
					continue
				}
				msg = fmt.Sprintf("peer %d declared %d down although neither failed since it admitted the connection, and the network was only slowed below the settings", p, k)
			}
			out = append(out, Violation{"no-false-suspicion", e, msg})
		}
	}
	return out
}

// isFault reports whether e is a control event that injects a fault.
func isFault(e eventlog.Event) bool {
	return e.Node == eventlog.Control && e.Ev != eventlog.ProcStart && e.Ev != eventlog.Step && e.Ev != eventlog.Converged
}
