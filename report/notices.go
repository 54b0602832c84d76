package report

import (
	"github.com/conclave/conclave/eventlog"
	"math"
	"sort"
)

// link is an urgent notice from one peer to another, sent at T1 and
// received at T2; T2 is NaN if never received.
type link struct {
	From, To int
	T1, T2   float64
	Leader   int
}

// hb is a heartbeat received by Peer.
type hb struct {
	Peer int
	T    float64
}

// notices are the messages drawn between and on the lanes.
type notices struct {
	urgent []link
	unsent []link // urgent notices without a matching receipt
	hbs    []hb   // heartbeat receipts
}

type linkKey struct{ from, to, leader int }

// readNotices matches urgent notices to their receipts (a notice sent by i
// to j announcing L goes with the next unmatched urgent_recv on j from i
// announcing L), and collects heartbeat receipts.
func readNotices(ix *index) notices {
	var r notices
	pend := map[linkKey][]int{}
	for i, e := range ix.ev {
		me, ok := peerID(e.Node)
		if !ok {
			continue
		}
		switch e.Ev {
		case eventlog.HBRecv:
			r.hbs = append(r.hbs, hb{Peer: me, T: ix.rel[i]})
		case eventlog.UrgentSent:
			to, ok1 := e.Int(eventlog.FieldTo)
			l, ok2 := e.Int(eventlog.FieldLeader)
			if ok1 && ok2 {
				k := linkKey{me, to, l}
				pend[k] = append(pend[k], i)
			}
		case eventlog.UrgentRecv:
			from, ok1 := e.Int(eventlog.FieldFrom)
			l, ok2 := e.Int(eventlog.FieldLeader)
			if !ok1 || !ok2 {
				continue
			}
			k := linkKey{from, me, l}
			q := pend[k]
			if len(q) == 0 {
				continue
			}
			s := q[0]
			pend[k] = q[1:]
			r.urgent = append(r.urgent, link{From: from, To: me, T1: ix.rel[s], T2: ix.rel[i], Leader: l})
		}
	}
	var left []int
	for _, q := range pend {
		left = append(left, q...)
	}
	sort.Ints(left)
	for _, i := range left {
		e := ix.ev[i]
		from, _ := peerID(e.Node)
		to, _ := e.Int(eventlog.FieldTo)
		l, _ := e.Int(eventlog.FieldLeader)
		r.unsent = append(r.unsent, link{From: from, To: to, T1: ix.rel[i], T2: math.NaN(), Leader: l})
	}
	return r
}
