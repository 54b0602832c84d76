package report

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/conclave/conclave/eventlog"
)

// Kinds of the processes that are not peers.
const (
	kindDir    = "directory replica"
	kindMember = "group member"
	kindClient = "pub/sub client"
	kindOther  = "process"
)

// proc is a process that is not a peer: a group member, a pub/sub client
// or a directory replica, and what it did, read from its own events.
type proc struct {
	Node  string
	Kind  string
	lives []life
	evs   []int // its events, indices into the log

	views   []viewAt     // views installed (view, ps_view)
	pubs    []delivery   // events published (ps_publish ok)
	flushes []pointAt    // flushes it began as coordinator
	susp    []pointAt    // suspicions
	dels    []delivery   // deliveries (deliver, ps_deliver)
	psmarks []pointAt    // announces, subscriptions, moves
	roles   []roleAt     // directory roles
	hung    [][2]float64 // stretches it was hung (SIGSTOP)
	counts  []countsOf   // per incarnation, the last counts it logged (ps_stats)
}

// settleLives ends each life of the processes named by control events
// when the orchestrator killed or stopped it, rather than at its last
// event, and runs the last to the end of the run if nothing ended it; a
// life whose last event was its leaving is clean. It notes when each
// process hung.
func settleLives(ix *index, procs []*proc, of map[int]*proc) {
	ctl := map[*proc][]int{}
	for i, e := range ix.ev {
		if e.Node != eventlog.Control || !isProc(e.Ev) {
			continue
		}
		if n, ok := e.Int(eventlog.FieldPeer); ok && of[n] != nil {
			ctl[of[n]] = append(ctl[of[n]], i)
		}
	}
	for _, p := range procs {
		var stopAt float64 = -1
		for _, i := range ctl[p] {
			switch ix.ev[i].Ev {
			case eventlog.ProcStop:
				stopAt = ix.rel[i]
			case eventlog.ProcCont, eventlog.ProcKill, eventlog.ProcTerm:
				if stopAt >= 0 {
					p.hung = append(p.hung, [2]float64{stopAt, ix.rel[i]})
					stopAt = -1
				}
			}
		}
		if stopAt >= 0 {
			p.hung = append(p.hung, [2]float64{stopAt, ix.end})
		}
		for k := range p.lives {
			l := &p.lives[k]
			if l.lastEv == eventlog.PSLeave || l.lastEv == eventlog.Left {
				l.Clean = true
			}
			if l.Clean {
				continue
			}
			next := ix.end
			if k+1 < len(p.lives) {
				next = p.lives[k+1].From
			}
			ended := false
			for _, i := range ctl[p] {
				ev, t := ix.ev[i].Ev, ix.rel[i]
				if t < l.From || t > next || (ev != eventlog.ProcKill && ev != eventlog.ProcTerm) {
					continue
				}
				l.To, ended = math.Max(l.To, t), true
				l.Clean = ev == eventlog.ProcTerm
				break
			}
			if !ended && k+1 == len(p.lives) && len(ctl[p]) > 0 {
				l.To = ix.end
			}
		}
	}
}

// life is one incarnation: from its first event to its last.
type life struct {
	From, To float64
	Inc      uint64
	Clean    bool // it logged its stop, or was stopped cleanly
	lastEv   string
}

type viewAt struct {
	T       float64
	I       int
	Group   string
	View    string
	Members int
	Flushed bool
}

type pointAt struct {
	T     float64
	I     int
	Kind  string // for psmarks: announce, subscribe, unsubscribe, move; for susp: the member suspected
	Title string
}

type delivery struct {
	T           float64
	From        string // sender's member id
	Order, Seq  int
	Topic, Msg  string
	Group, View string
}

type roleAt struct {
	T          float64
	I          int
	Role       string
	Term       uint64
	Leader     int
	HasLeader  bool
	Incarnated uint64
}

// readProcs reads the processes that are not peers, in lane order:
// directory replicas, then group members, then pub/sub clients (publishers
// before subscribers, by name).
func readProcs(ix *index) []*proc {
	by := map[string]*proc{}
	var order []string
	for i, e := range ix.ev {
		if e.Node == eventlog.Control || eventlog.PeerID(e.Node) >= 0 || e.Node == "" {
			continue
		}
		p := by[e.Node]
		if p == nil {
			p = &proc{Node: e.Node, Kind: kindOther}
			by[e.Node] = p
			order = append(order, e.Node)
		}
		t := ix.rel[i]
		p.evs = append(p.evs, i)
		if n := len(p.lives); n == 0 || p.lives[n-1].Inc != e.Inc || p.lives[n-1].Clean {
			p.lives = append(p.lives, life{From: t, To: t, Inc: e.Inc})
		}
		l := &p.lives[len(p.lives)-1]
		l.To, l.lastEv = t, e.Ev
		switch {
		case e.Ev == eventlog.DirCall || e.Ev == eventlog.DirReturn:
			// A directory client's operations: any process may log them.
		case strings.HasPrefix(e.Ev, "dir_"):
			p.Kind = kindDir
		case strings.HasPrefix(e.Ev, "ps_"):
			p.Kind = kindClient
		case p.Kind == kindOther && e.Str(eventlog.FieldMember) != "":
			p.Kind = kindMember
		}
		switch e.Ev {
		case eventlog.Stop, eventlog.DirStop:
			l.Clean = true
		case eventlog.View, eventlog.PSView:
			v := viewAt{T: t, I: i, Group: e.Str(eventlog.FieldGroup), View: e.Str(eventlog.FieldView)}
			if ms, ok := e.Fields[eventlog.FieldMembers].([]any); ok {
				v.Members = len(ms)
			}
			v.Flushed, _ = e.Fields[eventlog.FieldFlushed].(bool)
			p.views = append(p.views, v)
		case eventlog.Flush:
			p.flushes = append(p.flushes, pointAt{T: t, I: i, Kind: "flush", Title: "began a flush of view " + e.Str(eventlog.FieldView)})
		case eventlog.Suspect:
			p.susp = append(p.susp, pointAt{T: t, I: i, Kind: e.Str(eventlog.FieldOf),
				Title: "suspects " + e.Str(eventlog.FieldOf) + " (" + e.Str(eventlog.FieldCause) + ")"})
		case eventlog.Deliver, eventlog.PSDeliver:
			o, _ := e.Int(eventlog.FieldOrder)
			sq, _ := e.Int(eventlog.FieldSeq)
			p.dels = append(p.dels, delivery{T: t, From: e.Str(eventlog.FieldFrom), Order: o, Seq: sq, Topic: e.Str(eventlog.FieldTopic),
				Msg: e.Str(eventlog.FieldMsg), Group: e.Str(eventlog.FieldGroup), View: e.Str(eventlog.FieldView)})
		case eventlog.PSAnnounce, eventlog.PSSubscribe, eventlog.PSUnsub, eventlog.PSMove:
			k := strings.TrimPrefix(e.Ev, "ps_")
			title := k + " " + e.Str(eventlog.FieldTopic)
			switch e.Ev {
			case eventlog.PSMove:
				title += " from " + e.Str(eventlog.FieldPrev) + " to " + e.Str(eventlog.FieldGroup) + " (" + e.Str(eventlog.FieldKind) + ")"
				if r := e.Str(eventlog.FieldResult); r != "" && r != "ok" {
					title += ": " + r
				}
			default:
				title += " in " + e.Str(eventlog.FieldGroup)
				if q := e.Str(eventlog.FieldQoS); q != "" {
					title += " (" + q + ")"
				}
			}
			p.psmarks = append(p.psmarks, pointAt{T: t, I: i, Kind: k, Title: title})
		case eventlog.PSPublish:
			if e.Str(eventlog.FieldResult) == "ok" {
				sq, _ := e.Int(eventlog.FieldSeq)
				p.pubs = append(p.pubs, delivery{T: t, From: e.Str(eventlog.FieldFrom), Seq: sq, Topic: e.Str(eventlog.FieldTopic),
					Group: e.Str(eventlog.FieldGroup), View: e.Str(eventlog.FieldView)})
			}
		case eventlog.PSStats:
			p.logCounts(e, t)
		case eventlog.DirRole:
			r := roleAt{T: t, I: i, Role: e.Str(eventlog.FieldRole), Incarnated: e.Inc}
			if v, ok := num(e, eventlog.FieldTerm); ok && v >= 0 {
				r.Term = uint64(v)
			}
			r.Leader, r.HasLeader = e.Int(eventlog.FieldLeader)
			p.roles = append(p.roles, r)
		}
	}
	rank := map[string]int{kindDir: 0, kindMember: 1, kindClient: 2, kindOther: 3}
	var out []*proc
	for _, n := range order {
		out = append(out, by[n])
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if rank[a.Kind] != rank[b.Kind] {
			return rank[a.Kind] < rank[b.Kind]
		}
		if a.Kind == kindClient {
			pa, pb := strings.HasPrefix(a.Node, "pub"), strings.HasPrefix(b.Node, "pub")
			if pa != pb {
				return pa
			}
		}
		return natLess(a.Node, b.Node)
	})
	if len(out) > maxLanes {
		out = out[:maxLanes]
	}
	return out
}

// natLess orders names with numbers by their value: m2 before m10.
func natLess(a, b string) bool {
	ta, na := splitNum(a)
	tb, nb := splitNum(b)
	if ta != tb || na < 0 || nb < 0 {
		return a < b
	}
	return na < nb
}

func splitNum(s string) (string, int) {
	k := len(s)
	for k > 0 && s[k-1] >= '0' && s[k-1] <= '9' {
		k--
	}
	n, err := strconv.Atoi(s[k:])
	if err != nil {
		return s, -1
	}
	return s[:k], n
}

// procOf maps the peer numbers of control events to the processes they
// name: as the events say (proc). Where they do not (logs written before
// launch wrote proc), the evidence is weighed in this order:
// the name (group member m<n>, directory replica dir-<n>); a story step
// naming exactly one process, followed by one control event; a kill or
// hang after which exactly one unnamed process, running until then, logs
// nothing more; a clean stop after which an unnamed process ends first;
// and, for the rest, the order in which processes first
// logged after each proc_start.
func procOf(ix *index, procs []*proc) map[int]*proc {
	out := map[int]*proc{}
	taken := map[*proc]bool{}
	by := map[string]*proc{}
	for _, p := range procs {
		by[p.Node] = p
	}
	set := func(n int, p *proc) {
		if p != nil && out[n] == nil && !taken[p] {
			out[n], taken[p] = p, true
		}
	}
	type ctl struct {
		i, n int
		step string
		name string // the process's node name, as the event gives it
	}
	var ctls []ctl
	step, stepUsed := "", false
	for i, e := range ix.ev {
		if e.Node != eventlog.Control {
			continue
		}
		if e.Ev == eventlog.Step {
			step, stepUsed = e.Str(eventlog.FieldName), false
			continue
		}
		if n, ok := e.Int(eventlog.FieldPeer); ok && isProc(e.Ev) {
			c := ctl{i: i, n: n, name: ctlProc(e)}
			if !stepUsed {
				c.step, stepUsed = step, true
			} else {
				// A step with several control events names none of them.
				for k := len(ctls) - 1; k >= 0 && ctls[k].step == step && step != ""; k-- {
					ctls[k].step = ""
				}
			}
			ctls = append(ctls, c)
		}
	}
	// The events that name their process say; the others are weighed.
	for _, c := range ctls {
		set(c.n, by[c.name])
	}
	ctls = slices.DeleteFunc(ctls, func(c ctl) bool { return c.name != "" })
	for _, c := range ctls {
		set(c.n, by[eventlog.MemberName(c.n)])
		set(c.n, by["dir-"+strconv.Itoa(c.n)])
	}
	for _, c := range ctls {
		if c.step == "" || out[c.n] != nil {
			continue
		}
		var named []*proc
		for _, p := range procs {
			if !taken[p] && strings.Contains(c.step, p.Node) {
				named = append(named, p)
			}
		}
		if len(named) == 1 {
			set(c.n, named[0])
		}
	}
	for _, c := range ctls {
		e := ix.ev[c.i]
		if out[c.n] != nil || (e.Ev != eventlog.ProcKill && e.Ev != eventlog.ProcStop) {
			continue
		}
		t := ix.rel[c.i]
		var fit []*proc
		for _, p := range procs {
			if taken[p] {
				continue
			}
			for _, l := range p.lives {
				if l.From < t && !l.Clean && l.To <= t+leadTolerance && !p.logsIn(l, t+leadTolerance) {
					fit = append(fit, p)
					break
				}
			}
		}
		if len(fit) == 1 {
			set(c.n, fit[0])
		}
	}
	// A clean stop: the first unnamed process running then to end after it.
	for _, c := range ctls {
		if out[c.n] != nil || ix.ev[c.i].Ev != eventlog.ProcTerm {
			continue
		}
		t := ix.rel[c.i]
		var best *proc
		bestT := 0.0
		for _, p := range procs {
			if taken[p] {
				continue
			}
			for _, l := range p.lives {
				if l.From < t && l.To >= t && (best == nil || l.To < bestT) {
					best, bestT = p, l.To
				}
			}
		}
		set(c.n, best)
	}
	for _, c := range ctls {
		if out[c.n] != nil || ix.ev[c.i].Ev != eventlog.ProcStart {
			continue
		}
		var best *proc
		bestT := 0.0
		for _, p := range procs {
			if taken[p] || len(p.lives) == 0 {
				continue
			}
			if t := p.lives[0].From; t+leadTolerance >= ix.rel[c.i] && (best == nil || t < bestT) {
				best, bestT = p, t
			}
		}
		set(c.n, best)
	}
	return out
}

// logsIn reports whether p logged in its incarnation of l after t: it was
// running then.
func (p *proc) logsIn(l life, t float64) bool { return l.To > t }
