package report

import (
	"fmt"
	"github.com/conclave/conclave/eventlog"
	"strconv"
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
func listFaults(ix *index) []*fault {
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
					f.Peers = append(f.Peers, p)
					f.Ref = t
					continue
				}
			}
			faults = append(faults, &fault{Kind: kind, Step: step, Peers: []int{p},
				At: t, Ref: t, convergence: convergence{Leader: noLeader}})
		case eventlog.Converged:
			if n := len(faults); n > 0 && !faults[n-1].RepOK {
				f := faults[n-1]
				f.RepOK = true
				f.RepText = fmt.Sprintf("leader %s after %s ms", fieldStr(e, eventlog.FieldLeader), fieldStr(e, eventlog.FieldAfterMS))
				if s := e.Str(eventlog.FieldStep); s != "" {
					f.RepText += fmt.Sprintf(" (step %q)", clip(s, labelMax))
				}
			}
		}
	}
	for k, f := range faults {
		ps := make([]string, len(f.Peers))
		for j, p := range f.Peers {
			ps[j] = "?"
			if p >= 0 {
				ps[j] = strconv.Itoa(p)
			}
		}
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

// change is one leader_change event, with its cause and latency.
type change struct {
	T        float64
	Node     string
	Prev     string
	Leader   string
	Alive    string
	Cause    string
	HasLat   bool
	LatMS    float64
	Since    string
	LeaderID int
}

// leaderChanges lists leader_change events with their cause and their
// latency from the most recent control event before them, or from the next
// one if that was logged less than leadTolerance after the change and the
// one before is older than that.
func leaderChanges(ix *index) []change {
	var changes []change
	var faults []int
	for i, e := range ix.ev {
		if e.Node == eventlog.Control && isProc(e.Ev) {
			faults = append(faults, i)
		}
	}
	cause := map[string]string{}
	lastInc := map[string]uint64{}
	next := 0 // faults[next] is the first fault after event i
	for i, e := range ix.ev {
		for next < len(faults) && faults[next] <= i {
			next++
		}
		if e.Node == eventlog.Control {
			continue
		}
		t := ix.rel[i]
		if inc, ok := lastInc[e.Node]; ok && inc != e.Inc {
			cause[e.Node] = ""
		}
		lastInc[e.Node] = e.Inc
		switch e.Ev {
		case eventlog.Start:
			cause[e.Node] = ""
		case eventlog.PeerDown:
			cause[e.Node] = downText(e)
		case eventlog.PeerUp:
			cause[e.Node] = "peer " + intStr(e, eventlog.FieldPeer) + " up"
		case eventlog.ElectionOpen:
			cause[e.Node] = "election opened"
		case eventlog.LeaderChange:
			c := change{T: t, Node: e.Node,
				Prev: leaderStr(e, eventlog.FieldPrev), Leader: leaderStr(e, eventlog.FieldLeader),
				Alive: listStr(e.Fields[eventlog.FieldAlive]), Cause: cause[e.Node], LeaderID: -2}
			if l, ok := e.Int(eventlog.FieldLeader); ok {
				c.LeaderID = l
			}
			if c.Cause == "" {
				c.Cause = "—"
			}
			f := -1
			switch {
			case next < len(faults) && ix.rel[faults[next]]-t <= leadTolerance &&
				(next == 0 || t-ix.rel[faults[next-1]] > leadTolerance):
				f = faults[next]
			case next > 0:
				f = faults[next-1]
			}
			if f >= 0 {
				fe := ix.ev[f]
				c.HasLat, c.LatMS = true, (t-ix.rel[f])*1000
				c.Since = strings.TrimPrefix(fe.Ev, "proc_") + " " + intStr(fe, eventlog.FieldPeer)
			}
			changes = append(changes, c)
		}
	}
	return changes
}
