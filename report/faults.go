package report

import (
	"fmt"
	"github.com/conclave/conclave/eventlog"
	"strings"
)

// Timing tolerances, in seconds.
const (
	// leadTolerance is how long before its control event a fault's effects
	// may be logged: the orchestrator logs a signal after sending it, and a
	// SIGKILL can close the victim's connections first.
	leadTolerance = 0.020
	// groupGap is the longest gap between faults of one kind grouped as one.
	groupGap = 0.100
)

// fault is a control fault event, or a group of them (see listFaults).
type fault struct {
	Kind    string
	Label   string
	Idx     []int // its control events, indices into the log
	Step    string
	Peers   []int
	At, Ref float64 // first and last event of the group
	End     float64 // next fault, or end of run
	HasNext bool

	convergence // filled in by converge

	RepOK   bool   // the orchestrator reported a convergence
	RepText string // what it reported
}

// listFaults lists control fault events, with the convergence the
// orchestrator reported after each. Faults of one kind in one step with no
// other fault between are grouped: first starts always, others when under
// groupGap apart (a script that kills two peers at once, or stops them
// all). When the peers converged is left to converge.
func listFaults(ix *index, names namer) []*fault {
	var labels [][]string // each fault's processes, named
	var faults []*fault
	step := ""
	started := map[int]bool{}
	for i, e := range ix.ev {
		if e.Node != eventlog.Control {
			continue
		}
		switch e.Ev {
		case eventlog.Step:
			step = e.Str(eventlog.FieldName)
		case eventlog.ProcStart, eventlog.ProcKill, eventlog.ProcStop, eventlog.ProcCont, eventlog.ProcTerm:
			kind := strings.TrimPrefix(e.Ev, "proc_")
			p, ok := e.Int(eventlog.FieldPeer)
			if !ok {
				p = -1
			}
			if kind == "start" && ok && !started[p] {
				kind = "initial"
			}
			if kind == "start" || kind == "initial" {
				started[p] = true
			}
			t := ix.rel[i]
			if n := len(faults); n > 0 {
				f := faults[n-1]
				if f.Kind == kind && f.Step == step && (kind == "initial" || t-f.Ref < groupGap) {
					labels[n-1] = append(labels[n-1], names.name(e))
					f.Peers = append(f.Peers, p)
					f.Idx = append(f.Idx, i)
					f.Ref = t
					continue
				}
			}
			labels = append(labels, []string{names.name(e)})
			faults = append(faults, &fault{Kind: kind, Step: step, Peers: []int{p}, Idx: []int{i},
				At: t, Ref: t, convergence: convergence{Leader: noLeader}})
		case eventlog.Converged:
			if n := len(faults); n > 0 && !faults[n-1].RepOK {
				f := faults[n-1]
				f.RepOK = true
				after := "?"
				if v, ok := num(e, eventlog.FieldAfterMS); ok {
					after = fmtMS(v)
				}
				f.RepText = fmt.Sprintf("leader %s after %s ms", fieldStr(e, eventlog.FieldLeader), after)
				if s := e.Str(eventlog.FieldStep); s != "" {
					f.RepText += fmt.Sprintf(" (step %q)", clip(s, labelMax))
				}
			}
		}
	}
	for k, f := range faults {
		ps := labels[k]
		kind := f.Kind
		if kind == "initial" {
			kind = "start"
		}
		f.Label = kind + " " + strings.Join(ps, ",")
		f.End = ix.end
		if k+1 < len(faults) {
			f.End, f.HasNext = faults[k+1].At, true
		}
	}
	return faults
}

// change is one leader_change event, with its cause and the fault it
// follows from.
type change struct {
	T        float64
	I        int // index of the event
	Node     string
	Prev     string
	Leader   string
	Alive    string
	Cause    string
	HasLat   bool
	LatMS    float64 // since the fault's control event
	Since    string  // the fault's control event, "kill 0"
	Fault    int     // the fault's number (from 1) in the table of faults; 0 if none
	LeaderID int
}

// causeOf is what last changed a peer's view before a leader change.
type causeOf struct {
	text    string
	t       float64
	subject int  // the peer it is about; -1 for the peer itself
	up      bool // it says the subject came up
}

// leaderChanges lists leader_change events with their cause and the fault
// each follows from (attribute).
func leaderChanges(ix *index, faults []*fault) []change {
	var procs []int
	for i, e := range ix.ev {
		if e.Node == eventlog.Control && isProc(e.Ev) {
			procs = append(procs, i)
		}
	}
	faultOf := map[int]int{}
	for k, f := range faults {
		for _, i := range f.Idx {
			faultOf[i] = k + 1
		}
	}
	cause := map[string]causeOf{}
	lastInc := map[string]uint64{}
	var changes []change
	for i, e := range ix.ev {
		self, ok := peerID(e.Node)
		if !ok {
			continue
		}
		t := ix.rel[i]
		if inc, ok := lastInc[e.Node]; ok && inc != e.Inc {
			delete(cause, e.Node)
		}
		lastInc[e.Node] = e.Inc
		switch e.Ev {
		case eventlog.Start:
			cause[e.Node] = causeOf{text: "", t: t, subject: -1, up: true}
		case eventlog.PeerDown, eventlog.PeerUp:
			p, ok := e.Int(eventlog.FieldPeer)
			if !ok {
				p = -2
			}
			c := causeOf{t: t, subject: p, up: e.Ev == eventlog.PeerUp}
			if c.up {
				c.text = "peer " + intStr(e, eventlog.FieldPeer) + " up"
			} else {
				c.text = downText(e)
			}
			cause[e.Node] = c
		case eventlog.ElectionOpen:
			cause[e.Node] = causeOf{text: "election opened", t: t, subject: -1, up: true}
		case eventlog.LeaderChange:
			cs, known := cause[e.Node]
			c := change{T: t, I: i, Node: e.Node,
				Prev: leaderStr(e, eventlog.FieldPrev), Leader: leaderStr(e, eventlog.FieldLeader),
				Alive: listStr(e.Fields[eventlog.FieldAlive]), Cause: cs.text, LeaderID: -2}
			if l, ok := e.Int(eventlog.FieldLeader); ok {
				c.LeaderID = l
			}
			if c.Cause == "" {
				c.Cause = "—"
			}
			if !known {
				cs = causeOf{t: t, subject: -1}
			}
			if f := ix.attribute(procs, self, cs, t); f >= 0 {
				fe := ix.ev[f]
				c.HasLat, c.LatMS = true, (t-ix.rel[f])*1000
				c.Since = strings.TrimPrefix(fe.Ev, "proc_") + " " + intStr(fe, eventlog.FieldPeer)
				c.Fault = faultOf[f]
			}
			changes = append(changes, c)
		}
	}
	return changes
}

// attribute finds the control event (an index into ix.ev, or -1) that a
// leader change of peer self at t follows from, given its cause: the last
// fault of the peer the cause is about, of a kind that explains it (kill,
// stop or term for a peer down; start or cont for one up), logged before
// the cause or less than leadTolerance after it (the orchestrator logs a
// signal after sending it). Failing that, the last fault of self itself
// (it was started or resumed, and rebuilt its view), then the last fault
// before the change.
func (ix *index) attribute(procs []int, self int, c causeOf, t float64) int {
	last := func(ok func(e eventlog.Event) bool, by float64) int {
		for k := len(procs) - 1; k >= 0; k-- {
			i := procs[k]
			if ix.rel[i] <= by && ok(ix.ev[i]) {
				return i
			}
		}
		return -1
	}
	on := func(p int, kinds ...string) func(e eventlog.Event) bool {
		return func(e eventlog.Event) bool {
			q, ok := e.Int(eventlog.FieldPeer)
			if !ok || q != p {
				return false
			}
			for _, k := range kinds {
				if e.Ev == k {
					return true
				}
			}
			return false
		}
	}
	if c.subject >= 0 {
		kinds := []string{eventlog.ProcKill, eventlog.ProcStop, eventlog.ProcTerm}
		if c.up {
			kinds = []string{eventlog.ProcStart, eventlog.ProcCont}
		}
		if f := last(on(c.subject, kinds...), c.t+leadTolerance); f >= 0 {
			// Unless self was itself started or resumed since: then its
			// own fault is what it is recovering from.
			if g := last(on(self, eventlog.ProcStart, eventlog.ProcCont), t+leadTolerance); g < 0 || g < f {
				return f
			}
		}
	}
	if f := last(on(self, eventlog.ProcStart, eventlog.ProcCont), t+leadTolerance); f >= 0 {
		return f
	}
	return last(func(e eventlog.Event) bool { return true }, t)
}
