package report

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// Process states of a peer lane.
const (
	stNotStarted = "notstarted"
	stRunning    = "running"
	stHung       = "hung"
	stDown       = "down"
	stStopped    = "stopped"
)

const (
	maxLanes      = 64   // lanes drawn at most
	maxLanesFromN = 64   // 0..n-1 get lanes only up to this n
	noLeader      = -1   // leader value meaning none
	labelMax      = 48   // longest label or reason shown in full
	defSuspectMS  = 1000 // suspect_after_ms when no start event says
)

// span is a stretch of one process state, in seconds from run start.
type span struct {
	From, To float64
	State    string
}

// seg is a stretch during which a peer believed in one leader.
type seg struct {
	From, To float64
	Leader   int
}

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

// mark is a control event drawn as a vertical marker.
type mark struct {
	T     float64
	Kind  string // kill, stop, cont, start, term, step
	Peer  string // for control events
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

// fault is a control fault event, or a group of them (see buildFaults).
type fault struct {
	Kind    string
	Label   string
	Step    string
	Peers   []int
	At, Ref float64 // first and last event of the group
	End     float64 // next fault, or end of run
	HasNext bool

	Conv    bool
	NoneUp  bool // not converged: no peer left running
	ConvMS  float64
	Leader  int
	RepOK   bool
	RepText string
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

// run is everything the report needs, derived from the event log.
type run struct {
	ev      []eventlog.Event
	rel     []float64 // event time in seconds from t0
	t0, t1  time.Time
	hasTime bool
	dur     float64 // t1 - t0 in seconds
	end     float64 // right edge of the timeline, > 0

	n         int
	settings  map[string][]string
	suspectMS float64

	lanes    []int
	lane     map[int]int
	byPeer   map[int][]int // event indices of each peer's own events
	ctrlBy   map[int][]int // control proc_* events naming each peer
	ctrl     map[int]bool  // lane's life comes from control events
	states   map[int][]span
	beliefs  map[int][]seg
	urgent   []link
	unsent   []link // urgent notices without a matching receipt
	hbs      []hb   // heartbeat receipts
	marks    []mark
	pmarks   []pmark
	faults   []*fault
	changes  []change
	leaders  []int // leader values believed, sorted
	hasCtrl  bool
	droppedL int // lanes not drawn
}

func analyze(events []eventlog.Event) *run {
	r := &run{
		ev:       events,
		settings: map[string][]string{},
		lane:     map[int]int{},
		byPeer:   map[int][]int{},
		ctrlBy:   map[int][]int{},
		ctrl:     map[int]bool{},
		states:   map[int][]span{},
		beliefs:  map[int][]seg{},
	}
	r.times()
	r.readSettings()
	r.findLanes()
	r.buildStates()
	r.buildBeliefs()
	r.buildLinks()
	r.buildMarks()
	r.buildFaults()
	r.buildChanges()
	return r
}

func (r *run) times() {
	for _, e := range r.ev {
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
	r.rel = make([]float64, len(r.ev))
	for i, e := range r.ev {
		if !e.TS.IsZero() {
			r.rel[i] = e.TS.Sub(r.t0).Seconds()
		}
	}
}

// settingKeys are the start-event fields shown in the header.
var settingKeys = []string{"heartbeat_ms", "suspect_after_ms", "quorum"}

func (r *run) readSettings() {
	seen := map[string]map[string]bool{}
	for _, e := range r.ev {
		if e.Ev != "start" {
			continue
		}
		if _, ok := peerID(e.Node); !ok {
			continue
		}
		if n, ok := e.Int("n"); ok && n > r.n {
			r.n = n
		}
		if v, ok := num(e, "suspect_after_ms"); ok && v > r.suspectMS {
			r.suspectMS = v
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
				r.settings[k] = append(r.settings[k], v)
			}
		}
	}
	for _, v := range r.settings {
		sort.Strings(v)
	}
}

func (r *run) findLanes() {
	ids := map[int]bool{}
	for i, e := range r.ev {
		if p, ok := peerID(e.Node); ok {
			ids[p] = true
			r.byPeer[p] = append(r.byPeer[p], i)
			continue
		}
		if e.Node == "control" && strings.HasPrefix(e.Ev, "proc_") {
			r.hasCtrl = true
			if p, ok := e.Int("peer"); ok && p >= 0 {
				ids[p] = true
				r.ctrlBy[p] = append(r.ctrlBy[p], i)
			}
		}
	}
	if r.n > 0 && r.n <= maxLanesFromN {
		for p := range r.n {
			ids[p] = true
		}
	}
	for p := range ids {
		r.lanes = append(r.lanes, p)
	}
	sort.Ints(r.lanes)
	if len(r.lanes) > maxLanes {
		r.droppedL = len(r.lanes) - maxLanes
		r.lanes = r.lanes[:maxLanes]
	}
	for k, p := range r.lanes {
		r.lane[p] = k
	}
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

func (r *run) buildStates() {
	for _, p := range r.lanes {
		if len(r.ctrlBy[p]) > 0 {
			r.ctrl[p] = true
			r.states[p] = r.controlStates(p)
		} else {
			r.states[p] = r.inferStates(p)
		}
	}
}

// controlStates follows the orchestrator's proc_* events for peer p.
func (r *run) controlStates(p int) []span {
	cur := stNotStarted
	var tr []trans
	for _, i := range r.ctrlBy[p] {
		next := cur
		switch r.ev[i].Ev {
		case "proc_start":
			next = stRunning
		case "proc_kill":
			next = stDown
		case "proc_stop":
			if cur == stRunning {
				next = stHung
			}
		case "proc_cont":
			if cur == stHung {
				next = stRunning
			}
		case "proc_term":
			if cur == stRunning || cur == stHung {
				next = stStopped
			}
		}
		if next != cur {
			tr = append(tr, trans{r.rel[i], next})
			cur = next
		}
	}
	return mkSpans(stNotStarted, tr, r.end)
}

// inferStates derives peer p's process life from its own events and what
// the others saw: each incarnation runs from its first event to its stop
// (stopped cleanly), or until another peer saw it go down after its last
// event (down). An incarnation that nobody saw go down runs until the next
// one starts (down from its last event) or, the last one, to the end.
func (r *run) inferStates(p int) []span {
	type life struct {
		first, last   float64
		firstI, lastI int
		stop          bool
	}
	var lives []*life
	byInc := map[uint64]*life{}
	var pauses [][2]float64
	for _, i := range r.byPeer[p] {
		e := r.ev[i]
		t := r.rel[i]
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
		case "stop":
			l.stop = true
		case "paused":
			if ms, ok := num(e, "for_ms"); ok && ms > 0 {
				pauses = append(pauses, [2]float64{t - ms/1000, t})
			}
		}
	}
	if len(lives) == 0 {
		return mkSpans(stNotStarted, nil, r.end)
	}
	var tr []trans
	for k, l := range lives {
		tr = append(tr, trans{l.first, stRunning})
		if l.stop {
			tr = append(tr, trans{l.last, stStopped})
			continue
		}
		until := len(r.ev)
		if k+1 < len(lives) {
			until = lives[k+1].firstI
		}
		if t, ok := r.seenDown(p, l.lastI, until); ok {
			tr = append(tr, trans{math.Max(t, l.last), stDown})
		} else if k+1 < len(lives) {
			tr = append(tr, trans{l.last, stDown})
		}
	}
	spans := mkSpans(stNotStarted, tr, r.end)
	for _, pz := range pauses {
		spans = overlay(spans, pz[0], pz[1], stHung, stRunning)
	}
	return spans
}

// seenDown returns when p went down as the other peers saw it between events
// from and until (exclusive): the first peer_down not followed by a peer_up,
// less the silence it took to notice for cause silence.
func (r *run) seenDown(p, from, until int) (float64, bool) {
	t, down := 0.0, false
	for i := from + 1; i < until && i < len(r.ev); i++ {
		e := r.ev[i]
		if q, ok := peerID(e.Node); !ok || q == p {
			continue
		}
		if x, ok := e.Int("peer"); !ok || x != p {
			continue
		}
		switch e.Ev {
		case "peer_down":
			if !down {
				t, down = r.rel[i], true
				if e.Str("cause") == "silence" {
					t -= r.suspect() / 1000
				}
			}
		case "peer_up":
			down = false
		}
	}
	return t, down
}

func (r *run) suspect() float64 {
	if r.suspectMS > 0 && !math.IsInf(r.suspectMS, 0) {
		return r.suspectMS
	}
	return defSuspectMS
}

func alive(st string) bool { return st == stRunning || st == stHung }

// lifeEnd is when the process of peer p alive at t stops being alive.
func (r *run) lifeEnd(p int, t float64) float64 {
	for _, s := range r.states[p] {
		if s.From > t && !alive(s.State) {
			return s.From
		}
	}
	return r.end
}

func (r *run) stateAt(p int, t float64) string {
	ss := r.states[p]
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

func (r *run) beliefAt(p int, t float64) (int, bool) {
	ss := r.beliefs[p]
	k := sort.Search(len(ss), func(i int) bool { return ss[i].From > t }) - 1
	if k >= 0 && t < ss[k].To {
		return ss[k].Leader, true
	}
	return 0, false
}

// buildBeliefs turns each peer's leader_change events into segments, from
// its start (none) to the end of its process life.
func (r *run) buildBeliefs() {
	leaders := map[int]bool{}
	for _, p := range r.lanes {
		var segs []seg
		var cur seg
		open, seen := false, false
		var inc uint64
		closeAt := func(t float64) {
			if !open {
				return
			}
			open = false
			end := math.Min(t, r.lifeEnd(p, cur.From))
			if end > cur.From {
				cur.To = end
				segs = append(segs, cur)
				leaders[cur.Leader] = true
			}
		}
		openAt := func(t float64, l int) {
			cur = seg{From: t, Leader: l}
			open = true
		}
		for _, i := range r.byPeer[p] {
			e, t := r.ev[i], r.rel[i]
			if seen && e.Inc != inc {
				closeAt(t)
			}
			seen, inc = true, e.Inc
			switch e.Ev {
			case "start":
				closeAt(t)
				openAt(t, noLeader)
			case "leader_change":
				l, ok := e.Int("leader")
				if !ok {
					continue
				}
				closeAt(t)
				openAt(t, l)
			case "stop":
				closeAt(t)
			}
		}
		closeAt(math.Inf(1))
		sort.SliceStable(segs, func(i, j int) bool { return segs[i].From < segs[j].From })
		r.beliefs[p] = segs
	}
	for l := range leaders {
		r.leaders = append(r.leaders, l)
	}
	sort.Ints(r.leaders)
}

type linkKey struct{ from, to, leader int }

// buildLinks matches urgent notices to their receipts (a notice sent by i
// to j announcing L goes with the next unmatched urgent_recv on j from i
// announcing L), and collects heartbeat receipts.
func (r *run) buildLinks() {
	pend := map[linkKey][]int{}
	for i, e := range r.ev {
		me, ok := peerID(e.Node)
		if !ok {
			continue
		}
		switch e.Ev {
		case "hb_recv":
			r.hbs = append(r.hbs, hb{Peer: me, T: r.rel[i]})
		case "urgent_sent":
			to, ok1 := e.Int("to")
			l, ok2 := e.Int("leader")
			if ok1 && ok2 {
				k := linkKey{me, to, l}
				pend[k] = append(pend[k], i)
			}
		case "urgent_recv":
			from, ok1 := e.Int("from")
			l, ok2 := e.Int("leader")
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
			r.urgent = append(r.urgent, link{From: from, To: me, T1: r.rel[s], T2: r.rel[i], Leader: l})
		}
	}
	var left []int
	for _, q := range pend {
		left = append(left, q...)
	}
	sort.Ints(left)
	for _, i := range left {
		e := r.ev[i]
		from, _ := peerID(e.Node)
		to, _ := e.Int("to")
		l, _ := e.Int("leader")
		r.unsent = append(r.unsent, link{From: from, To: to, T1: r.rel[i], T2: math.NaN(), Leader: l})
	}
}

func (r *run) buildMarks() {
	for i, e := range r.ev {
		t := r.rel[i]
		if e.Node == "control" {
			switch e.Ev {
			case "proc_start", "proc_kill", "proc_stop", "proc_cont", "proc_term":
				kind := strings.TrimPrefix(e.Ev, "proc_")
				lbl := kind + " " + intStr(e, "peer")
				r.marks = append(r.marks, mark{T: t, Kind: kind, Peer: intStr(e, "peer"), Label: lbl,
					Title: fmt.Sprintf("%s at %.3f s (pid %s)", lbl, t, fieldStr(e, "pid"))})
			case "step":
				name := clip(e.Str("name"), labelMax)
				r.marks = append(r.marks, mark{T: t, Kind: "step", Label: name,
					Title: fmt.Sprintf("step %q at %.3f s", e.Str("name"), t)})
			}
			continue
		}
		p, ok := peerID(e.Node)
		if !ok {
			continue
		}
		switch e.Ev {
		case "peer_down":
			r.pmarks = append(r.pmarks, pmark{Peer: p, T: t, Kind: "down",
				Title: fmt.Sprintf("%.3f s: peer %d saw %s", t, p, downText(e))})
		case "paused":
			r.pmarks = append(r.pmarks, pmark{Peer: p, T: t, Kind: "paused",
				Title: fmt.Sprintf("%.3f s: peer %d noticed it had been paused for %s ms", t, p, fieldStr(e, "for_ms"))})
		}
	}
}

func downText(e eventlog.Event) string {
	s := "peer " + intStr(e, "peer") + " down"
	if c := e.Str("cause"); c != "" {
		s += ": " + c
	}
	if rs := e.Str("reason"); rs != "" {
		s += " (" + clip(rs, 80) + ")"
	}
	return s
}

// buildFaults lists control fault events and computes when the peers
// converged after each. Faults of one kind in one step with no other fault
// between are grouped: first starts always, others when under groupGap
// apart (a script that kills two peers at once, or stops them all).
func (r *run) buildFaults() {
	step := ""
	started := map[int]bool{}
	for i, e := range r.ev {
		if e.Node != "control" {
			continue
		}
		switch e.Ev {
		case "step":
			step = e.Str("name")
		case "proc_start", "proc_kill", "proc_stop", "proc_cont", "proc_term":
			kind := strings.TrimPrefix(e.Ev, "proc_")
			p, ok := e.Int("peer")
			if !ok {
				p = -1
			}
			if kind == "start" && ok && !started[p] {
				kind = "initial"
			}
			if kind == "start" || kind == "initial" {
				started[p] = true
			}
			t := r.rel[i]
			if n := len(r.faults); n > 0 {
				f := r.faults[n-1]
				if f.Kind == kind && f.Step == step && (kind == "initial" || t-f.Ref < groupGap) {
					f.Peers = append(f.Peers, p)
					f.Ref = t
					continue
				}
			}
			r.faults = append(r.faults, &fault{Kind: kind, Step: step, Peers: []int{p},
				At: t, Ref: t, Leader: noLeader})
		case "converged":
			if n := len(r.faults); n > 0 && !r.faults[n-1].RepOK {
				f := r.faults[n-1]
				f.RepOK = true
				f.RepText = fmt.Sprintf("leader %s after %s ms", fieldStr(e, "leader"), fieldStr(e, "after_ms"))
				if s := e.Str("step"); s != "" {
					f.RepText += fmt.Sprintf(" (step %q)", clip(s, labelMax))
				}
			}
		}
	}
	for k, f := range r.faults {
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
		f.End = r.end
		if k+1 < len(r.faults) {
			f.End, f.HasNext = r.faults[k+1].At, true
		}
	}
	r.converge()
}

// Timing tolerances, in seconds.
const (
	// leadTolerance is how long before its control event a fault's effects
	// may be logged: the orchestrator logs a signal after sending it, and a
	// SIGKILL can close the victim's connections first.
	leadTolerance = 0.020
	// groupGap is the longest gap between faults of one kind grouped as one.
	groupGap = 0.100
)

// converge finds, for each fault, the first moment from it (and before the
// next fault) when every running peer believed in the same leader, itself
// running. If they already agreed when the fault was logged, and had come to
// agree (without the faulted peers) less than leadTolerance before, that
// earlier moment counts, giving a negative time.
func (r *run) converge() {
	var bounds []float64
	for _, p := range r.lanes {
		for _, s := range r.states[p] {
			bounds = append(bounds, s.From, s.To)
		}
		for _, s := range r.beliefs[p] {
			bounds = append(bounds, s.From, s.To)
		}
	}
	sort.Float64s(bounds)
	prevRef := math.Inf(-1)
	for _, f := range r.faults {
		lo := math.Max(f.Ref-leadTolerance, prevRef)
		prevRef = f.Ref
		if l, ok := r.agreed(f.Ref, nil); ok {
			f.Conv, f.Leader = true, l
			skip := map[int]bool{}
			if f.Kind == "kill" || f.Kind == "stop" || f.Kind == "term" {
				for _, p := range f.Peers {
					skip[p] = true
				}
			}
			if l0, ok := r.agreed(lo, skip); ok && l0 == l {
				continue // undisturbed
			}
			// Walk back over the boundaries while the agreement holds.
			k := sort.SearchFloat64s(bounds, f.Ref)
			for k--; k >= 0 && bounds[k] > lo; k-- {
				if l1, ok := r.agreed(bounds[k], skip); !ok || l1 != l {
					break
				}
				f.ConvMS = (bounds[k] - f.Ref) * 1000
			}
			continue
		}
		for k := sort.SearchFloat64s(bounds, f.Ref); k < len(bounds) && bounds[k] < f.End; k++ {
			if bounds[k] <= f.Ref || (k > 0 && bounds[k] == bounds[k-1]) {
				continue
			}
			if l, ok := r.agreed(bounds[k], nil); ok {
				f.Conv, f.ConvMS, f.Leader = true, (bounds[k]-f.Ref)*1000, l
				break
			}
		}
		if !f.Conv {
			f.NoneUp = !r.anyRunning(math.Max(f.Ref, math.Nextafter(f.End, math.Inf(-1))))
		}
	}
}

func (r *run) anyRunning(t float64) bool {
	for _, p := range r.lanes {
		if r.stateAt(p, t) == stRunning {
			return true
		}
	}
	return false
}

// agreed reports the leader every running peer (but those in skip)
// believes in at t, if they agree on one that is itself running.
func (r *run) agreed(t float64, skip map[int]bool) (int, bool) {
	leader, found := noLeader, false
	for _, p := range r.lanes {
		if skip[p] || r.stateAt(p, t) != stRunning {
			continue
		}
		b, ok := r.beliefAt(p, t)
		if !ok || b < 0 || (found && b != leader) {
			return 0, false
		}
		leader, found = b, true
	}
	if !found || skip[leader] {
		return 0, false
	}
	if _, ok := r.lane[leader]; !ok || r.stateAt(leader, t) != stRunning {
		return 0, false
	}
	return leader, true
}

// buildChanges lists leader_change events with their cause and their
// latency from the most recent control event before them, or from the next
// one if that was logged less than leadTolerance after the change and the
// one before is older than that.
func (r *run) buildChanges() {
	var faults []int
	for i, e := range r.ev {
		if e.Node == "control" && isProc(e.Ev) {
			faults = append(faults, i)
		}
	}
	cause := map[string]string{}
	lastInc := map[string]uint64{}
	next := 0 // faults[next] is the first fault after event i
	for i, e := range r.ev {
		for next < len(faults) && faults[next] <= i {
			next++
		}
		if e.Node == "control" {
			continue
		}
		t := r.rel[i]
		if inc, ok := lastInc[e.Node]; ok && inc != e.Inc {
			cause[e.Node] = ""
		}
		lastInc[e.Node] = e.Inc
		switch e.Ev {
		case "start":
			cause[e.Node] = ""
		case "peer_down":
			cause[e.Node] = downText(e)
		case "peer_up":
			cause[e.Node] = "peer " + intStr(e, "peer") + " up"
		case "election_open":
			cause[e.Node] = "election opened"
		case "leader_change":
			c := change{T: t, Node: e.Node,
				Prev: leaderStr(e, "prev"), Leader: leaderStr(e, "leader"),
				Alive: listStr(e.Fields["alive"]), Cause: cause[e.Node], LeaderID: -2}
			if l, ok := e.Int("leader"); ok {
				c.LeaderID = l
			}
			if c.Cause == "" {
				c.Cause = "—"
			}
			f := -1
			switch {
			case next < len(faults) && r.rel[faults[next]]-t <= leadTolerance &&
				(next == 0 || t-r.rel[faults[next-1]] > leadTolerance):
				f = faults[next]
			case next > 0:
				f = faults[next-1]
			}
			if f >= 0 {
				fe := r.ev[f]
				c.HasLat, c.LatMS = true, (t-r.rel[f])*1000
				c.Since = strings.TrimPrefix(fe.Ev, "proc_") + " " + intStr(fe, "peer")
			}
			r.changes = append(r.changes, c)
		}
	}
}

func isProc(ev string) bool {
	switch ev {
	case "proc_start", "proc_kill", "proc_stop", "proc_cont", "proc_term":
		return true
	}
	return false
}

// peerID parses a node name "peer-<id>".
func peerID(node string) (int, bool) {
	s, ok := strings.CutPrefix(node, "peer-")
	if !ok || s == "" || len(s) > 9 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	p, err := strconv.Atoi(s)
	return p, err == nil
}

// num returns a numeric field as a finite float64.
func num(e eventlog.Event, k string) (float64, bool) {
	var v float64
	switch x := e.Fields[k].(type) {
	case int:
		v = float64(x)
	case int64:
		v = float64(x)
	case uint64:
		v = float64(x)
	case float64:
		v = x
	default:
		return 0, false
	}
	return v, !math.IsNaN(v) && !math.IsInf(v, 0)
}

// fieldStr renders a field value compactly; "?" if missing.
func fieldStr(e eventlog.Event, k string) string {
	v, ok := e.Fields[k]
	if !ok || v == nil {
		return "?"
	}
	switch x := v.(type) {
	case string:
		return clip(x, labelMax)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool, int, int64, uint64:
		return fmt.Sprint(x)
	}
	return listStr(v)
}

func intStr(e eventlog.Event, k string) string {
	if v, ok := e.Int(k); ok {
		return strconv.Itoa(v)
	}
	return "?"
}

func leaderStr(e eventlog.Event, k string) string {
	v, ok := e.Int(k)
	switch {
	case !ok:
		return "?"
	case v == noLeader:
		return "none"
	}
	return strconv.Itoa(v)
}

func listStr(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return clip(string(b), 200)
}

// clip shortens s to at most n runes.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	rs := []rune(s)
	if len(rs) <= n {
		return s
	}
	return string(rs[:n-1]) + "…"
}
