package report

import (
	"math"
	"sort"
	"strings"
	"time"

	"github.com/conclave/conclave/eventlog"
	peercore "github.com/conclave/conclave/peer"
)

// index is the event log read once: when each event happened, what the
// peers' start events say, and the lanes with the events that belong to
// each. The other stages read it and never change it.
type index struct {
	ev []eventlog.Event
	runTimes
	startInfo
	laneIndex
}

// readIndex reads events, in causal order, into an index.
func readIndex(events []eventlog.Event) *index {
	info := readStarts(events)
	return &index{
		ev:        events,
		runTimes:  readTimes(events),
		startInfo: info,
		laneIndex: findLanes(events, info.n),
	}
}

// runTimes places the events in time.
type runTimes struct {
	rel     []float64 // event time in seconds from t0
	t0, t1  time.Time
	hasTime bool
	dur     float64 // t1 - t0 in seconds
	end     float64 // right edge of the timeline, > 0
}

func readTimes(events []eventlog.Event) runTimes {
	var r runTimes
	for _, e := range events {
		if e.TS.IsZero() {
			continue
		}
		if !r.hasTime || e.TS.Before(r.t0) {
			r.t0 = e.TS
		}
		if !r.hasTime || e.TS.After(r.t1) {
			r.t1 = e.TS
		}
		r.hasTime = true
	}
	r.dur = r.t1.Sub(r.t0).Seconds()
	r.end = r.dur
	if !(r.end > 0) {
		r.end = 1
	}
	r.rel = make([]float64, len(events))
	for i, e := range events {
		if !e.TS.IsZero() {
			r.rel[i] = e.TS.Sub(r.t0).Seconds()
		}
	}
	return r
}

// startInfo is what the peers' start events say.
type startInfo struct {
	n         int                 // the largest n
	settings  map[string][]string // the values of each of settingKeys, sorted
	suspectMS float64             // the largest suspect_after_ms
}

// settingKeys are the start-event fields shown in the header.
var settingKeys = []string{eventlog.FieldHeartbeatMS, eventlog.FieldSuspectAfterMS, eventlog.FieldNoticeDelayMS, eventlog.FieldQuorum}

func readStarts(events []eventlog.Event) startInfo {
	s := startInfo{settings: map[string][]string{}}
	seen := map[string]map[string]bool{}
	for _, e := range events {
		if e.Ev != eventlog.Start {
			continue
		}
		if _, ok := peerID(e.Node); !ok {
			continue
		}
		if n, ok := e.Int(eventlog.FieldN); ok && n > s.n {
			s.n = n
		}
		if v, ok := num(e, eventlog.FieldSuspectAfterMS); ok && v > s.suspectMS {
			s.suspectMS = v
		}
		for _, k := range settingKeys {
			if _, ok := e.Fields[k]; !ok {
				continue
			}
			v := fieldStr(e, k)
			if seen[k] == nil {
				seen[k] = map[string]bool{}
			}
			if !seen[k][v] {
				seen[k][v] = true
				s.settings[k] = append(s.settings[k], v)
			}
		}
	}
	for _, v := range s.settings {
		sort.Strings(v)
	}
	return s
}

// suspect is the peers' suspect-after in milliseconds: the start events'
// largest, or the peer's default if none says.
func (s startInfo) suspect() float64 {
	if s.suspectMS > 0 && !math.IsInf(s.suspectMS, 0) {
		return s.suspectMS
	}
	return float64(peercore.DefaultSuspectAfter) / float64(time.Millisecond)
}

// laneIndex says which peers get a lane and which events are whose.
type laneIndex struct {
	lanes    []int         // peer ids drawn, sorted
	lane     map[int]int   // peer id → its lane's position in lanes
	byPeer   map[int][]int // event indices of each peer's own events
	ctrlBy   map[int][]int // control proc_* events naming each peer
	hasCtrl  bool          // the log has control proc_* events
	droppedL int           // lanes not drawn
}

// findLanes gives a lane to every peer that logged or was named by a
// control event, and to 0..n-1 when the start events say n.
func findLanes(events []eventlog.Event, n int) laneIndex {
	l := laneIndex{lane: map[int]int{}, byPeer: map[int][]int{}, ctrlBy: map[int][]int{}}
	ids := map[int]bool{}
	ctrlIDs := map[int]bool{}
	others := false // processes that are not peers logged
	named := false  // control events named a peer by its node name
	for i, e := range events {
		if p, ok := peerID(e.Node); ok {
			ids[p] = true
			l.byPeer[p] = append(l.byPeer[p], i)
			continue
		}
		if e.Node != eventlog.Control {
			others = true
			continue
		}
		if name := ctlProc(e); name != "" && strings.HasPrefix(e.Ev, "proc_") {
			// The event says which process it is about: a peer, or not.
			if p := eventlog.PeerID(name); p >= 0 {
				named = true
				ids[p] = true
				l.ctrlBy[p] = append(l.ctrlBy[p], i)
			}
			continue
		}
		if strings.HasPrefix(e.Ev, "proc_") {
			l.hasCtrl = true
			if p, ok := e.Int(eventlog.FieldPeer); ok && p >= 0 {
				ctrlIDs[p] = true
				l.ctrlBy[p] = append(l.ctrlBy[p], i)
			}
		}
	}
	// Control events name peers when peers logged, or nobody else did;
	// else they name the other processes (group members, clients).
	if len(ids) > 0 || !others {
		for p := range ctrlIDs {
			ids[p] = true
		}
	} else {
		l.hasCtrl = false
	}
	l.hasCtrl = l.hasCtrl || named
	if n > 0 && n <= maxLanesFromN {
		for p := range n {
			ids[p] = true
		}
	}
	for p := range ids {
		l.lanes = append(l.lanes, p)
	}
	sort.Ints(l.lanes)
	if len(l.lanes) > maxLanes {
		l.droppedL = len(l.lanes) - maxLanes
		l.lanes = l.lanes[:maxLanes]
	}
	for k, p := range l.lanes {
		l.lane[p] = k
	}
	return l
}
