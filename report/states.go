package report

import (
	"github.com/conclave/conclave/eventlog"
	"math"
	"sort"
)

// Process states of a peer lane.
const (
	stNotStarted = "notstarted"
	stRunning    = "running"
	stHung       = "hung"
	stDown       = "down"
	stStopped    = "stopped"
)

// span is a stretch of one process state, in seconds from run start.
type span struct {
	From, To float64
	State    string
}

// laneStates holds each lane's process life: spans in time order, covering
// [0, end] without gaps.
type laneStates map[int][]span

// processStates finds each lane's process life: from the orchestrator's
// control events where the log has them for that peer, else inferred from
// the peers' own events. ctrl says which lanes came from control events.
func processStates(ix *index) (states laneStates, ctrl map[int]bool) {
	states, ctrl = laneStates{}, map[int]bool{}
	for _, p := range ix.lanes {
		if len(ix.ctrlBy[p]) > 0 {
			ctrl[p] = true
			states[p] = ix.controlStates(p)
		} else {
			states[p] = ix.inferStates(p)
		}
	}
	return states, ctrl
}

// at is peer p's process state at t; "" if p has no lane.
func (ls laneStates) at(p int, t float64) string {
	ss := ls[p]
	if len(ss) == 0 {
		return ""
	}
	// Spans are in time order and contiguous: take the last that starts by t.
	k := sort.Search(len(ss), func(i int) bool { return ss[i].From > t }) - 1
	if k < 0 {
		k = 0
	}
	return ss[k].State
}

func alive(st string) bool { return st == stRunning || st == stHung }

// lifeEnd is when the process of peer p alive at t stops being alive; end
// if it still is at the end of the run.
func (ls laneStates) lifeEnd(p int, t, end float64) float64 {
	for _, s := range ls[p] {
		if s.From > t && !alive(s.State) {
			return s.From
		}
	}
	return end
}

type trans struct {
	T     float64
	State string
}

// mkSpans turns state transitions into spans covering [0, end].
func mkSpans(initial string, tr []trans, end float64) []span {
	var out []span
	add := func(s span) {
		if n := len(out); n > 0 && out[n-1].State == s.State {
			out[n-1].To = s.To
			return
		}
		out = append(out, s)
	}
	cur, from := initial, 0.0
	for _, x := range tr {
		t := math.Min(math.Max(x.T, from), end)
		if x.State == cur {
			continue
		}
		if t > from {
			add(span{from, t, cur})
		}
		cur, from = x.State, t
	}
	add(span{from, math.Max(end, from), cur})
	return out
}

// overlay paints state over the parts of spans in [a, b] that are in state over.
func overlay(spans []span, a, b float64, state, over string) []span {
	var out []span
	add := func(s span) {
		if s.To <= s.From {
			return
		}
		if n := len(out); n > 0 && out[n-1].State == s.State && out[n-1].To == s.From {
			out[n-1].To = s.To
			return
		}
		out = append(out, s)
	}
	for _, s := range spans {
		if s.State != over || b <= s.From || a >= s.To {
			add(s)
			continue
		}
		lo, hi := math.Max(a, s.From), math.Min(b, s.To)
		add(span{s.From, lo, s.State})
		add(span{lo, hi, state})
		add(span{hi, s.To, s.State})
	}
	return out
}

// controlStates follows the orchestrator's proc_* events for peer p.
func (ix *index) controlStates(p int) []span {
	cur := stNotStarted
	var tr []trans
	for _, i := range ix.ctrlBy[p] {
		next := cur
		switch ix.ev[i].Ev {
		case eventlog.ProcStart:
			next = stRunning
		case eventlog.ProcKill:
			next = stDown
		case eventlog.ProcStop:
			if cur == stRunning {
				next = stHung
			}
		case eventlog.ProcCont:
			if cur == stHung {
				next = stRunning
			}
		case eventlog.ProcTerm:
			if cur == stRunning || cur == stHung {
				next = stStopped
			}
		}
		if next != cur {
			tr = append(tr, trans{ix.rel[i], next})
			cur = next
		}
	}
	return mkSpans(stNotStarted, tr, ix.end)
}

// inferStates derives peer p's process life from its own events and what
// the others saw: each incarnation runs from its first event to its stop
// (stopped cleanly), or until another peer saw it go down after its last
// event (down). An incarnation that nobody saw go down runs until the next
// one starts (down from its last event) or, the last one, to the end.
func (ix *index) inferStates(p int) []span {
	type life struct {
		first, last   float64
		firstI, lastI int
		stop          bool
	}
	var lives []*life
	byInc := map[uint64]*life{}
	var pauses [][2]float64
	for _, i := range ix.byPeer[p] {
		e := ix.ev[i]
		t := ix.rel[i]
		l := byInc[e.Inc]
		if l == nil {
			l = &life{first: t, last: t, firstI: i, lastI: i}
			byInc[e.Inc] = l
			lives = append(lives, l)
		}
		l.first = math.Min(l.first, t)
		l.last = math.Max(l.last, t)
		l.lastI = i
		switch e.Ev {
		case eventlog.Stop:
			l.stop = true
		case eventlog.Paused:
			if ms, ok := num(e, eventlog.FieldForMS); ok && ms > 0 {
				pauses = append(pauses, [2]float64{t - ms/1000, t})
			}
		}
	}
	if len(lives) == 0 {
		return mkSpans(stNotStarted, nil, ix.end)
	}
	var tr []trans
	for k, l := range lives {
		tr = append(tr, trans{l.first, stRunning})
		if l.stop {
			tr = append(tr, trans{l.last, stStopped})
			continue
		}
		until := len(ix.ev)
		if k+1 < len(lives) {
			until = lives[k+1].firstI
		}
		if t, ok := ix.seenDown(p, l.lastI, until); ok {
			tr = append(tr, trans{math.Max(t, l.last), stDown})
		} else if k+1 < len(lives) {
			tr = append(tr, trans{l.last, stDown})
		}
	}
	spans := mkSpans(stNotStarted, tr, ix.end)
	for _, pz := range pauses {
		spans = overlay(spans, pz[0], pz[1], stHung, stRunning)
	}
	return spans
}

// seenDown returns when p went down as the other peers saw it between events
// from and until (exclusive): the first peer_down not followed by a peer_up,
// less the silence it took to notice for cause silence.
func (ix *index) seenDown(p, from, until int) (float64, bool) {
	t, down := 0.0, false
	for i := from + 1; i < until && i < len(ix.ev); i++ {
		e := ix.ev[i]
		if q, ok := peerID(e.Node); !ok || q == p {
			continue
		}
		if x, ok := e.Int(eventlog.FieldPeer); !ok || x != p {
			continue
		}
		switch e.Ev {
		case eventlog.PeerDown:
			if !down {
				t, down = ix.rel[i], true
				if e.Str(eventlog.FieldCause) == eventlog.CauseSilence {
					t -= ix.suspect() / 1000
				}
			}
		case eventlog.PeerUp:
			down = false
		}
	}
	return t, down
}
