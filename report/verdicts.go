package report

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
)

// maxShown is the most violations of one property the page lists.
const maxShown = 20

// linTimeout bounds the linearizability check of each topic's history.
const linTimeout = 10 * time.Second

// verdict is the outcome of one property checker on the run.
type verdict struct {
	Scope   string // peer, group, directory, pub/sub
	Name    string // the checker
	What    string // the property, in a sentence
	Checked bool   // it ran; else Why says why not
	Why     string
	Pass    bool
	Count   int // violations
	Shown   []violationView
}

// violationView is one violation, linked to the event that shows it.
type violationView struct {
	Msg    string
	Event  string // the event, formatted
	Anchor string // id of its line in the merged log, or ""
}

// checker is one property checker and when it applies.
type checker struct {
	scope, name, what string
	run               func(h []eventlog.Event) []check.Violation
	why               string // when set, the checker does not run on this log, for this reason
}

// runKinds says which kinds of process a log holds.
type runKinds struct {
	peers, groups, dirs, pubsub bool
	dirOps                      int // directory operations of clients logged (dir_call of announces, subscribes, lookups)
	dirClients                  map[string]bool
	control                     bool // the orchestrator logged the faults it injected
	n                           int
	total                       bool // a group member runs the total stack
}

func kindsOf(events []eventlog.Event, n int) runKinds {
	k := runKinds{n: n, dirClients: map[string]bool{}}
	for _, e := range events {
		switch {
		case e.Ev == eventlog.DirCall || e.Ev == eventlog.DirReturn:
			if op := e.Str(eventlog.FieldOp); e.Ev == eventlog.DirCall && (op == "announce" || op == "subscribe" || op == "lookup") {
				k.dirOps++
				k.dirClients[e.Node+" "+e.Str(eventlog.FieldClient)] = true
			}
		case e.Node == eventlog.Control:
			k.control = k.control || isProc(e.Ev)
		case eventlog.PeerID(e.Node) >= 0:
			k.peers = true
		case strings.HasPrefix(e.Ev, "ps_"):
			k.pubsub = true
		case strings.HasPrefix(e.Ev, "dir_"):
			k.dirs = true
		case e.Str(eventlog.FieldMember) != "" && e.Node != eventlog.Control:
			k.groups = true
			if e.Ev == eventlog.Start && strings.Contains(e.Str(eventlog.FieldStack), "total") {
				k.total = true
			}
		}
	}
	return k
}

// checkers lists the checkers that apply to a log of these kinds.
func (k runKinds) checkers() []checker {
	var cs []checker
	if k.peers {
		o := check.Options{N: k.n}
		timing := "needs the network's delay bound, known in the simulator only"
		noControl := ""
		if !k.control {
			noControl = "the log has no control events: faults injected by hand cannot be told from the peers' mistakes"
		}
		cs = append(cs,
			checker{scope: "peer", name: "ElectionGate", what: "no peer names a leader before it has accounted for every peer; the first leader is 0",
				run: func(h []eventlog.Event) []check.Violation { return check.ElectionGate(h, o) }},
			checker{scope: "peer", name: "Convergence", what: "at the end every running peer names the same leader, the lowest id running",
				run: func(h []eventlog.Event) []check.Violation { return check.Convergence(h, o) }},
			checker{scope: "peer", name: "DetectionCause", what: "a killed peer is detected by its connection closing, a hung one by silence",
				run: check.DetectionCause, why: noControl},
			checker{scope: "peer", name: "UrgentNotices", what: "every leader change is announced with an urgent notice to every connected peer, within the notice delay, unless undone first",
				run: check.UrgentNotices},
			checker{scope: "peer", name: "NoFalseSuspicion", what: "nobody correct is declared down before the first fault",
				run: func(h []eventlog.Event) []check.Violation { return check.NoFalseSuspicion(h, o) }, why: noControl},
			checker{scope: "peer", name: "LeaderRule", what: "each peer's leader follows at once from its own view of who is up",
				run: func(h []eventlog.Event) []check.Violation { return check.LeaderRule(h, o) }},
			checker{scope: "peer", name: "BeliefBound", what: "a peer considers another correct only if it could reach it within the detection bound", why: timing},
			checker{scope: "peer", name: "QuorumIsolation", what: "with quorum, a minority side recognises no leader", why: timing},
			checker{scope: "peer", name: "StableAgreement", what: "once a partition has settled, no two peers recognise different leaders", why: timing},
			checker{scope: "peer", name: "NoHeartbeatAfterClose", what: "no heartbeat on a connection after its closure was detected", why: "needs every heartbeat logged (--log-heartbeats)"},
		)
	}
	if k.groups {
		cs = append(cs,
			checker{scope: "group", name: "ViewAgreement", what: "members installing the same view id install the same members", run: check.ViewAgreement},
			checker{scope: "group", name: "ViewOrder", what: "each member installs views in increasing order", run: check.ViewOrder},
			checker{scope: "group", name: "ViewSynchrony", what: "members passing together from a view to the next delivered the same messages in it", run: check.ViewSynchrony},
			checker{scope: "group", name: "SenderFIFO", what: "each sender's messages are delivered in the order sent, without gaps", run: check.SenderFIFO},
		)
		if k.total {
			cs = append(cs, checker{scope: "group", name: "TotalOrder", what: "members deliver the messages of a view in one order", run: check.TotalOrder})
		} else {
			cs = append(cs, checker{scope: "group", name: "TotalOrder", what: "members deliver the messages of a view in one order", why: "no member runs the total stack"})
		}
		cs = append(cs, checker{scope: "group", name: "AckedDelivered", what: "an acknowledged message reaches every member of its view that stays in it",
			run: func(h []eventlog.Event) []check.Violation { return check.AckedDelivered(h, false) }})
	}
	if k.dirs {
		cs = append(cs,
			checker{scope: "directory", name: "Directory", what: "one leader per term; every replica applies the same command at each index, in order", run: check.Directory})
	}
	if k.dirs || k.dirOps > 0 {
		lin := checker{scope: "directory", name: "Linearizable",
			what: "the operations clients saw form a linearizable history of the directory",
			why:  "the log holds no client operation history (dir_call, dir_return): its clients did not log their operations"}
		if k.dirOps > 0 {
			lin.what = fmt.Sprintf("the %s of %s on the directory (announces, subscriptions, lookups; dir_call to dir_return, "+
				"timed by the clocks of the processes that logged them) form a linearizable history, topic by topic",
				plural(k.dirOps, "operation", "operations"), plural(len(k.dirClients), "client", "clients"))
			lin.run = func(h []eventlog.Event) []check.Violation { return check.DirLinearizable(h, linTimeout) }
			lin.why = ""
		}
		cs = append(cs, lin)
	}
	if k.pubsub {
		cs = append(cs, checker{scope: "pub/sub", name: "PubSub",
			what: "topic isolation, no duplicates, each publisher's order without gaps, one order per total topic, view synchrony, no acknowledged event lost",
			run:  func(h []eventlog.Event) []check.Violation { return check.PubSub(h, check.PubSubOptions{}) }})
	}
	return cs
}

// evKey identifies an event of the log.
type evKey struct {
	node    string
	inc, lc uint64
	ev      string
	ts      int64
}

func keyOf(e eventlog.Event) evKey {
	return evKey{e.Node, e.Inc, e.LC, e.Ev, e.TS.UnixNano()}
}

// logAnchor is the id of event i's line in the merged log.
func logAnchor(i int) string {
	if i < 0 || i >= MaxLogLines {
		return ""
	}
	return "e" + strconv.Itoa(i)
}

// verdicts runs every checker that applies to events.
func verdicts(events []eventlog.Event, n int) []verdict {
	at := map[evKey]int{}
	for i, e := range events {
		if _, ok := at[keyOf(e)]; !ok {
			at[keyOf(e)] = i
		}
	}
	var out []verdict
	for _, c := range kindsOf(events, n).checkers() {
		v := verdict{Scope: c.scope, Name: c.name, What: c.what, Why: c.why}
		if c.run != nil && c.why == "" {
			v.Checked = true
			vs := c.run(events)
			v.Count, v.Pass = len(vs), len(vs) == 0
			for _, x := range vs {
				if len(v.Shown) == maxShown {
					break
				}
				i, ok := at[keyOf(x.Event)]
				if !ok {
					i = -1
				}
				v.Shown = append(v.Shown, violationView{Msg: x.Rule + ": " + x.Msg, Event: eventlog.Format(x.Event), Anchor: logAnchor(i)})
			}
		}
		out = append(out, v)
	}
	return out
}
