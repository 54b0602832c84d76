package report

import (
	"strconv"

	"github.com/conclave/conclave/eventlog"
)

// Control events name their process by proc, the node name of its own
// log; logs written before launch wrote proc name it by its launch slot
// alone (peer), and procOf infers which process that is.

// ctlProc is the node name control event e gives its process, "" if it
// gives none.
func ctlProc(e eventlog.Event) string { return e.Str(eventlog.FieldProc) }

// namer names the process of a control event in labels: a peer by its id,
// another process by its node name (given by the event, or inferred), and
// failing both by its slot.
type namer map[int]*proc

func (of namer) name(e eventlog.Event) string {
	if n := ctlProc(e); n != "" {
		if id := eventlog.PeerID(n); id >= 0 {
			return strconv.Itoa(id)
		}
		return n
	}
	if n, ok := e.Int(eventlog.FieldPeer); ok && of[n] != nil {
		return of[n].Node
	}
	return intStr(e, eventlog.FieldPeer)
}
