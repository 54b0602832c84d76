package report

import (
	"fmt"
	"github.com/conclave/conclave/eventlog"
	"strings"
)

// mark is a control event drawn as a vertical marker.
type mark struct {
	T     float64
	Kind  string // kill, stop, cont, start, term, step
	Peer  string // for control events
	Who   string // for control events: the process, as labels name it
	Label string
	Title string
}

// pmark is a point event on a peer's lane (peer_down, paused).
type pmark struct {
	Peer  int
	T     float64
	Kind  string
	Title string
}

// readMarks collects the control events drawn as vertical markers (process
// signals and steps) and the peer events drawn as points on their lanes.
func readMarks(ix *index, names namer) (marks []mark, pmarks []pmark) {
	for i, e := range ix.ev {
		t := ix.rel[i]
		if e.Node == eventlog.Control {
			switch e.Ev {
			case eventlog.ProcStart, eventlog.ProcKill, eventlog.ProcStop, eventlog.ProcCont, eventlog.ProcTerm:
				kind := strings.TrimPrefix(e.Ev, "proc_")
				who := names.name(e)
				lbl := kind + " " + who
				marks = append(marks, mark{T: t, Kind: kind, Peer: intStr(e, eventlog.FieldPeer), Who: who, Label: lbl,
					Title: fmt.Sprintf("%s at %.3f s (pid %s)", lbl, t, fieldStr(e, eventlog.FieldPID))})
			case eventlog.Step:
				name := clip(e.Str(eventlog.FieldName), labelMax)
				marks = append(marks, mark{T: t, Kind: "step", Label: name,
					Title: fmt.Sprintf("step %q at %.3f s", e.Str(eventlog.FieldName), t)})
			}
			continue
		}
		p, ok := peerID(e.Node)
		if !ok {
			continue
		}
		switch e.Ev {
		case eventlog.PeerDown:
			pmarks = append(pmarks, pmark{Peer: p, T: t, Kind: "down",
				Title: fmt.Sprintf("%.3f s: peer %d saw %s", t, p, downText(e))})
		case eventlog.Paused:
			pmarks = append(pmarks, pmark{Peer: p, T: t, Kind: "paused",
				Title: fmt.Sprintf("%.3f s: peer %d noticed it had been paused for %s ms", t, p, msField(e, eventlog.FieldForMS))})
		}
	}
	return marks, pmarks
}
