package report

import (
	"fmt"
	"math"
	"strings"

	"github.com/conclave/conclave/eventlog"
)

const (
	maxZooms = 40    // close-ups drawn at most
	minZoom  = 0.020 // narrowest close-up window, in seconds
	maxReact = 10.0  // longest a fault's panel follows the reactions to it, in seconds
	procLead = 0.002 // how long before its control event a process's reaction to a fault may be logged, in seconds
)

// faultRow is one row of the table of faults.
type faultRow struct {
	N         int
	ID        string // the id of its panel
	At        string
	Label     string
	Kind      string
	Step      string
	Conv      bool
	Early     bool // converged before the fault was logged
	ConvMS    string
	Leader    int
	NotConv   string
	Reported  string
	ZoomID    string
	LeaderStr string
	Outcome   string // how the processes that are not peers settled
}

// faultPanel tells one fault's story: what was done, when each process
// detected it and how, when each converged and on what, and a close-up.
type faultPanel struct {
	faultRow
	Heading string
	Ctrl    []anchorText
	Rows    []panelRow
	Changes []change
	SVG     *svgView
	PSVG    *procView
	Window  string
}

type anchorText struct{ Text, Anchor string }

// panelRow is what one process did after a fault.
type panelRow struct {
	Proc      string
	State     string
	Detected  string // ms after the fault
	How       string
	DetAnchor string
	Changes   string
	Converged string
}

// faultTable lays out the table of faults, a panel per fault with a
// close-up of the lanes from just before the fault to just after the
// processes settled, for the first maxZooms; note says if some have none.
func (r *run) faultTable() (rows []faultRow, panels []faultPanel, note string) {
	win := (2*r.suspect() + 200) / 1000
	for k, f := range r.faults {
		row := faultRow{N: k + 1, ID: fmt.Sprintf("fault-%d", k+1), At: fmtS(f.At), Label: f.Label, Kind: f.Kind,
			Step: f.Step, Conv: f.Conv, Leader: f.Leader, LeaderStr: leaderLabel(f.Leader), Reported: f.RepText}
		if f.Kind == "initial" {
			row.Label += " (first start)"
		}
		hasPeers := len(r.lanes) > 0
		switch {
		case !hasPeers:
		case f.Conv:
			row.ConvMS = fmtMS(f.ConvMS)
			if f.ConvMS < 0 {
				row.Early = true
			}
		case f.NoneUp:
			row.NotConv = "no peer left running"
		case f.HasNext:
			row.NotConv = fmt.Sprintf("not before the next fault (%s ms later)", fmtMS((f.End-f.Ref)*1000))
		default:
			row.NotConv = "not by the end of the run"
		}
		p := faultPanel{faultRow: row}
		for _, i := range f.Idx {
			p.Ctrl = append(p.Ctrl, anchorText{Text: fmtS(r.rel[i]) + " s " + eventlog.Format(r.ev[i]), Anchor: logAnchor(i)})
		}
		settled := math.NaN()
		if hasPeers {
			p.Rows = append(p.Rows, r.peerRows(f, k+1)...)
			if f.Conv {
				settled = f.Ref + math.Max(f.ConvMS, 0)/1000
			}
		}
		prow, last, outcome := r.procRows(f)
		p.Rows = append(p.Rows, prow...)
		p.Outcome = outcome
		p.faultRow.Outcome = outcome
		if !math.IsNaN(last) && (math.IsNaN(settled) || last > settled) {
			settled = last
		}
		for _, c := range r.changes {
			if c.Fault == k+1 {
				p.Changes = append(p.Changes, c)
			}
		}
		h := fmt.Sprintf("#%d %s at %s s", k+1, row.Label, row.At)
		if f.Step != "" {
			h += fmt.Sprintf(" (step %q)", clip(f.Step, labelMax))
		}
		p.Heading = h
		if k < maxZooms && (hasPeers || len(r.procs) > 0) {
			var to float64
			if math.IsNaN(settled) {
				to = math.Min(f.Ref+win, f.End)
			} else {
				to = settled + math.Max(0.15*(settled-f.At), 0.005)
			}
			to = math.Max(math.Min(to, r.end), f.Ref+minZoom)
			from := f.At - math.Max(0.08*(to-f.At), 0.003)
			p.ZoomID = fmt.Sprintf("zoom-%d", k+1)
			p.faultRow.ZoomID = p.ZoomID
			row.ZoomID = p.ZoomID
			p.Window = fmt.Sprintf("%s to %s s", fmtS(math.Max(from, 0)), fmtS(to))
			if hasPeers {
				p.SVG = r.view(p.ZoomID, from, to, true, f.At)
			}
			if len(r.procs) > 0 {
				p.PSVG = r.procsView(p.ZoomID+"-p", from, to, true, f.At)
			}
		}
		rows = append(rows, row)
		panels = append(panels, p)
	}
	if len(r.faults) > maxZooms {
		note = fmt.Sprintf("Close-ups are drawn for the first %d of %d faults.", maxZooms, len(r.faults))
	}
	return rows, panels, note
}

// faultVerb says what a fault of each kind did to its process.
var faultVerb = map[string]string{"initial": "started", "start": "started", "kill": "killed", "stop": "hung (SIGSTOP)", "cont": "resumed (SIGCONT)", "term": "stopped (SIGTERM)"}

// reactsTo reports whether a peer_down or peer_up of peer p explains a
// fault of kind on it.
func reactsTo(ev, kind string) bool {
	switch kind {
	case "kill", "stop", "term":
		return ev == eventlog.PeerDown
	case "start", "initial", "cont":
		return ev == eventlog.PeerUp
	}
	return false
}

// peerRows says, for each peer, what it did after fault f (number n).
func (r *run) peerRows(f *fault, n int) []panelRow {
	faulted := map[int]bool{}
	for _, p := range f.Peers {
		faulted[p] = true
	}
	lo, hi := f.At-leadTolerance, f.End
	var rows []panelRow
	for _, p := range r.lanes {
		row := panelRow{Proc: fmt.Sprintf("peer %d", p), State: stateName[r.states.at(p, f.Ref+1e-9)]}
		if faulted[p] {
			row.State = faultVerb[f.Kind]
		}
		for _, i := range r.byPeer[p] {
			t := r.rel[i]
			if t < lo || t >= hi {
				continue
			}
			e := r.ev[i]
			q, ok := e.Int(eventlog.FieldPeer)
			switch {
			case ok && faulted[q] && reactsTo(e.Ev, f.Kind):
				row.Detected = fmtDelta((t - f.At) * 1000)
				if e.Ev == eventlog.PeerDown {
					row.How = downText(e)
				} else {
					row.How = "peer " + intStr(e, eventlog.FieldPeer) + " up (its first heartbeat)"
				}
				row.DetAnchor = logAnchor(i)
			case faulted[p] && e.Ev == eventlog.Paused:
				row.Detected = fmtDelta((t - f.At) * 1000)
				row.How = "noticed it had been paused for " + msField(e, eventlog.FieldForMS) + " ms"
				row.DetAnchor = logAnchor(i)
			case faulted[p] && e.Ev == eventlog.ElectionOpen && (f.Kind == "start" || f.Kind == "initial") && t >= f.At:
				row.Detected = fmtDelta((t - f.At) * 1000)
				row.How = "opened its elections"
				row.DetAnchor = logAnchor(i)
			default:
				continue
			}
			break
		}
		var cs []string
		for _, c := range r.changes {
			if c.Fault == n && c.Node == eventlog.PeerName(p) {
				cs = append(cs, fmt.Sprintf("%s → %s at %s", c.Prev, c.Leader, fmtDelta((c.T-f.At)*1000)))
			}
		}
		row.Changes = strings.Join(cs, "; ")
		if f.Conv && r.states.at(p, f.Ref+f.ConvMS/1000) == stRunning {
			ct := f.Ref + f.ConvMS/1000
			for _, s := range r.beliefs[p] {
				if s.From <= ct && ct < s.To {
					if s.From >= lo {
						row.Converged = fmt.Sprintf("on %s at %s", leaderLabel(s.Leader), fmtDelta((s.From-f.At)*1000))
					} else {
						row.Converged = "kept " + leaderLabel(s.Leader)
					}
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// procRows says, for each process that is not a peer, how it reacted to
// fault f: suspicions, views, directory roles. last is when the last of
// them happened (NaN if none); outcome sums up how they settled.
func (r *run) procRows(f *fault) (rows []panelRow, last float64, outcome string) {
	last = math.NaN()
	// These processes log when they react, not when the peers' sockets
	// do: a reaction precedes the control event by little if at all.
	lo, hi := f.At-procLead, math.Min(f.End, f.Ref+maxReact)
	faulted := map[*proc]bool{}
	var names []string
	for _, n := range f.Peers {
		if p := r.procOf[n]; p != nil {
			faulted[p] = true
			names = append(names, p.Node)
		}
	}
	done := faultVerb[f.Kind]
	gone := f.Kind == "kill" || f.Kind == "stop" || f.Kind == "term"
	if len(names) > 0 {
		outcome = strings.Join(names, ", ") + " " + done + ". "
	}
	note := func(t float64) {
		if math.IsNaN(last) || t > last {
			last = t
		}
	}
	finalView := map[string]string{} // member → its last view
	var members []string
	var dirOut []string
	for _, p := range r.procs {
		row := panelRow{Proc: p.Node + " (" + p.Kind + ")"}
		if faulted[p] {
			row.State = done
		}
		for _, s := range p.susp {
			if s.T >= lo && s.T < hi && suspectOf(s.Kind, names) {
				row.Detected = fmtDelta((s.T - f.At) * 1000)
				row.How = s.Title
				row.DetAnchor = logAnchor(s.I)
				note(s.T)
				break
			}
		}
		var cs []string
		for _, v := range p.views {
			if v.T < lo || v.T >= hi {
				continue
			}
			note(v.T)
			seq, _, _ := strings.Cut(v.View, "@")
			s := fmt.Sprintf("view %s (%s) at %s", seq, plural(v.Members, "member", "members"), fmtDelta((v.T-f.At)*1000))
			if v.Group != "" {
				s = v.Group + " " + s
			}
			cs = append(cs, s)
			if p.Kind == kindMember {
				finalView[p.Node] = v.View
			}
		}
		for _, ro := range p.roles {
			if ro.T < lo || ro.T >= hi {
				continue
			}
			note(ro.T)
			cs = append(cs, fmt.Sprintf("%s t%d at %s", ro.Role, ro.Term, fmtDelta((ro.T-f.At)*1000)))
			if ro.Role == "leader" {
				dirOut = append(dirOut, fmt.Sprintf("%s became the directory's leader in term %d at %s ms", p.Node, ro.Term, fmtDelta((ro.T-f.At)*1000)))
			}
		}
		if len(cs) > 6 {
			cs = append(cs[:3], fmt.Sprintf("… %d more …", len(cs)-5), cs[len(cs)-2], cs[len(cs)-1])
		}
		row.Changes = strings.Join(cs, "; ")
		if p.Kind == kindMember && !(gone && faulted[p]) && finalView[p.Node] != "" {
			members = append(members, p.Node)
			row.Converged = "view " + finalView[p.Node]
		}
		if row.State != "" || row.Detected != "" || row.Changes != "" {
			rows = append(rows, row)
		}
	}
	if len(members) > 0 {
		v0, same := finalView[members[0]], true
		for _, m := range members[1:] {
			same = same && finalView[m] == v0
		}
		if same {
			outcome += fmt.Sprintf("%s settled on view %s", strings.Join(members, ", "), v0)
			if !math.IsNaN(last) {
				outcome += fmt.Sprintf(" at %s ms", fmtDelta((last-f.At)*1000))
			}
			outcome += "."
		} else {
			outcome += "The members ended this stretch in different views."
		}
	}
	if len(dirOut) > 0 {
		outcome += " " + strings.Join(dirOut, "; ") + "."
	}
	return rows, last, strings.TrimSpace(outcome)
}

// suspectOf reports whether member id of is that of one of the named
// processes (member ids are <name>.<incarnation>).
func suspectOf(of string, names []string) bool {
	for _, n := range names {
		if of == n || strings.HasPrefix(of, n+".") {
			return true
		}
	}
	return false
}
