package report

import (
	"compress/gzip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/conclave/conclave/eventlog"
)

// The recorded runs in testdata are merged logs (run.jsonl) of real runs:
//
//	demo.jsonl.gz    conclave demo --out DIR (4 peers, --pace 400ms)
//	demo-unpaced.jsonl.gz  the same before --pace: each step fired as soon
//	                 as the last converged, so "cont 1" came 6 ms after
//	                 the hang's failover
//	group.jsonl.gz   four "conclave group" members (total) under traffic,
//	                 through launch: kill m3, kill m0 (the coordinator),
//	                 restart m3, stop
//	pubsub.jsonl.gz  conclave demo pubsub --out DIR --pace 300ms, before the
//	                 control events named their processes and the clients
//	                 logged their counts and directory operations
//	pubsub-ops.jsonl.gz  the same, after (evidence_test.go)

// recorded reads a recorded merged log.
func recorded(t *testing.T, name string) []eventlog.Event {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), eventlog.RunJSONL)
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.ReadFrom(z); err != nil {
		t.Fatal(err)
	}
	out.Close()
	ev, _, err := eventlog.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	eventlog.Sort(ev)
	return ev
}

// verdictsOf returns name → pass, fail or n/a, as the page shows them.
func verdictsOf(html string) map[string]string {
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`<tr class="verdict" data-scope="[^"]*" data-name="([^"]*)" data-verdict="([^"]*)">`).FindAllStringSubmatch(html, -1) {
		out[m[1]] = m[2]
	}
	return out
}

func wantVerdicts(t *testing.T, html string, want map[string]string) {
	t.Helper()
	got := verdictsOf(html)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("verdict of %s = %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("verdicts %v, want %v", got, want)
	}
}

// TestRecordedDemo renders the report of a real conclave demo: the peer
// checkers pass, and every failover is tied to the fault it follows from,
// the hang's about suspect-after (500 ms) after "stop 1", not before "cont 1".
func TestRecordedDemo(t *testing.T) {
	ev := recorded(t, "demo")
	html := render(t, "demo", ev)
	wantVerdicts(t, html, map[string]string{
		"ElectionGate": "pass", "Convergence": "pass", "DetectionCause": "pass", "UrgentNotices": "pass",
		"NoFalseSuspicion": "pass", "LeaderRule": "pass",
		"BeliefBound": "n/a", "QuorumIsolation": "n/a", "StableAgreement": "n/a", "NoHeartbeatAfterClose": "n/a",
	})
	if !strings.Contains(html, `All 6 properties checked <b>hold</b>`) {
		t.Errorf("no overall verdict")
	}
	if p, v := strings.Index(html, `id="properties"`), strings.Index(html, "<h2>Timeline</h2>"); p < 0 || p > v {
		t.Errorf("the properties do not come first")
	}

	r := analyze(ev)
	checkAttribution(t, r)
	// The page says so in the table of leader changes.
	if !regexp.MustCompile(`data-prev="1" data-leader="2" data-latency="(4|5|6)\d\d\.\d" data-since="stop 1" data-fault="3"`).MatchString(html) {
		t.Errorf("the hang failover is not shown about 500 ms after stop 1")
	}

	// The hang's panel: peers 2 and 3 detect peer 1 by silence, converge on 2.
	panel := section(t, html, `<div class="panel" id="fault-3"`, `<div class="scroll">`)
	for _, w := range []string{"peer 1 down: silence", "The peers converged on leader", "1 → 2 at &#43;4", "on 2 at &#43;4", "<td>peer 1</td><td>hung (SIGSTOP)</td>"} {
		if !strings.Contains(panel, w) {
			t.Errorf("panel of the hang lacks %q", w)
		}
	}
	if strings.Count(panel, "peer 1 down: silence") != 2 {
		t.Errorf("panel of the hang: want 2 detections by silence")
	}
	// Its close-up ends just after the convergence, not at a fixed width.
	f := r.faults[2]
	z := svgByID(t, html, "zoom-3")
	if !strings.Contains(z, `<g class="lane"`) {
		t.Errorf("close-up without lanes")
	}
	_, panels, _ := r.faultTable()
	if w := panels[2].Window; w == "" {
		t.Errorf("no close-up window")
	}
	if f.ConvMS < 400 {
		t.Errorf("hang converged after %.1f ms", f.ConvMS)
	}
	// One number format: durations to a tenth of a millisecond.
	if regexp.MustCompile(`after \d+\.\d{2,} ms`).MatchString(html) {
		t.Errorf("a duration with more than one decimal")
	}
	// The merged log can be filtered by process and event.
	for _, w := range []string{`<select id="f-node"`, `<option>peer-3</option>`, `<select id="f-ev"`, `<option>leader_change</option>`, `data-n="peer-1" data-e="leader_change"`} {
		if !strings.Contains(html, w) {
			t.Errorf("log filters: no %s", w)
		}
	}
}

// TestRecordedDemoUnpaced checks the attribution of failovers on a demo
// whose faults came right after one another: the hang's failover came 6 ms
// before "cont 1", and follows from "stop 1" nonetheless.
func TestRecordedDemoUnpaced(t *testing.T) {
	ev := recorded(t, "demo-unpaced")
	checkAttribution(t, analyze(ev))
	html := render(t, "demo", ev)
	if !regexp.MustCompile(`data-prev="1" data-leader="2" data-latency="(4|5|6)\d\d\.\d" data-since="stop 1" data-fault="3"`).MatchString(html) {
		t.Errorf("the hang failover is not shown about 500 ms after stop 1")
	}
	if len(verdictsOf(html)) != 10 {
		t.Errorf("verdicts %v", verdictsOf(html))
	}
}

// checkAttribution checks the faults of a conclave demo and that each
// leader change follows from the fault that caused it.
func checkAttribution(t *testing.T, r *run) {
	t.Helper()
	wantFaults := []string{"start 0,1,2,3", "kill 0", "stop 1", "cont 1", "start 0", "term 0,1,2,3"}
	var got []string
	for _, f := range r.faults {
		got = append(got, f.Label)
	}
	if strings.Join(got, "|") != strings.Join(wantFaults, "|") {
		t.Fatalf("faults %v, want %v", got, wantFaults)
	}
	// Leader changes: to the fault that caused them.
	want := map[string]string{"none→0": "start", "0→1": "kill 0", "1→2": "stop 1", "2→1": "cont 1", "1→0": "start 0"}
	wantN := map[string]int{"0→1": 2, "1→2": 3, "2→1": 4, "1→0": 5}
	seen := map[string]int{}
	for _, c := range r.changes {
		k := c.Prev + "→" + c.Leader
		if c.Fault == 6 { // the clean stop at the end
			if !strings.HasPrefix(c.Since, "term ") || c.LatMS < 0 || c.LatMS > 50 {
				t.Errorf("%s on %s: after %q %.1f ms, want a term just before", k, c.Node, c.Since, c.LatMS)
			}
			continue
		}
		seen[k]++
		w, ok := want[k]
		if !ok {
			t.Errorf("unexpected leader change %s on %s", k, c.Node)
			continue
		}
		if !strings.HasPrefix(c.Since, w) {
			t.Errorf("%s on %s follows %q, want %q", k, c.Node, c.Since, w)
		}
		if n, ok := wantN[k]; ok && c.Fault != n {
			t.Errorf("%s on %s tied to fault #%d, want #%d", k, c.Node, c.Fault, n)
		}
		if c.LatMS < 0 {
			t.Errorf("%s on %s: %.1f ms after %s", k, c.Node, c.LatMS, c.Since)
		}
		if k == "1→2" && (c.LatMS < 400 || c.LatMS > 700) {
			t.Errorf("hang failover on %s %.1f ms after %s, want about suspect-after (500 ms)", c.Node, c.LatMS, c.Since)
		}
	}
	if seen["1→2"] != 2 || seen["0→1"] != 3 {
		t.Errorf("leader changes %v", seen)
	}
}

// section returns html from the first from to the first to after it.
func section(t *testing.T, html, from, to string) string {
	t.Helper()
	i := strings.Index(html, from)
	if i < 0 {
		t.Fatalf("no %s", from)
	}
	j := strings.Index(html[i:], to)
	if j < 0 {
		t.Fatalf("no end of %s", from)
	}
	return html[i : i+j]
}

// TestRecordedGroup renders the report of real group members: the group
// checkers pass (with total order), the members get lanes with their
// views, flushes and deliveries, and each kill's panel shows the
// survivors suspecting the member and settling on a view without it.
func TestRecordedGroup(t *testing.T) {
	ev := recorded(t, "group")
	html := render(t, "group", ev)
	wantVerdicts(t, html, map[string]string{
		"ViewAgreement": "pass", "ViewOrder": "pass", "ViewSynchrony": "pass", "SenderFIFO": "pass",
		"TotalOrder": "pass", "AckedDelivered": "pass",
	})
	if strings.Contains(html, "No lanes to draw") || strings.Contains(html, `<g class="lane"`) {
		t.Errorf("group run: want member lanes and no peer lanes")
	}
	lanes := svgByID(t, html, "processes")
	for _, m := range []string{"m0", "m1", "m2", "m3"} {
		if !strings.Contains(lanes, `data-node="`+m+`" data-kind="group member"`) {
			t.Errorf("no lane for %s", m)
		}
	}
	for _, w := range []string{">view 4 · 4</text>", `class="pm-flush"`, `class="pm-down"`, "number 1 of the view"} {
		if !strings.Contains(lanes, w) {
			t.Errorf("member lanes lack %s", w)
		}
	}
	// Total order visible: the busiest view's deliveries side by side.
	if !regexp.MustCompile(`<table class="order" data-view="[^"]*" data-same="true"><tr><th colspan="3">view \S+ \(total order\): one order`).MatchString(html) {
		t.Errorf("no delivery order table")
	}
	kill3 := section(t, html, `<div class="panel" id="fault-2"`, `<div class="panel" id="fault-3"`)
	for _, w := range []string{"m3 killed", "suspects m3.", "m0, m1, m2 settled on view", "view 5 (3 members)"} {
		if !strings.Contains(kill3, w) {
			t.Errorf("panel of kill m3 lacks %q", w)
		}
	}
	if !strings.Contains(kill3, `<svg id="zoom-2-p"`) {
		t.Errorf("no close-up of the members")
	}
}

// TestRecordedPubSub renders the report of a real conclave demo pubsub:
// the directory and pub/sub checkers pass, every replica and client gets
// a lane (roles and terms, announces, subscriptions, moves, deliveries),
// and the faults name the processes the story says.
func TestRecordedPubSub(t *testing.T) {
	ev := recorded(t, "pubsub")
	html := render(t, "pubsub", ev)
	wantVerdicts(t, html, map[string]string{"Directory": "pass", "Linearizable": "n/a", "PubSub": "pass"})
	lanes := svgByID(t, html, "processes")
	for _, n := range []string{"dir-0", "dir-1", "dir-2", "pub-orders", "pub-news", "pub-prices", "sub-eu", "sub-us", "sub-desk", "sub-quant", "sub-late"} {
		if !strings.Contains(lanes, `data-node="`+n+`"`) {
			t.Errorf("no lane for %s", n)
		}
	}
	for _, w := range []string{">leader t1</text>", `class="ps-announce"`, `class="ps-subscribe"`, `class="ps-move"`, `class="ps-unsubscribe"`} {
		if !strings.Contains(lanes, w) {
			t.Errorf("lanes lack %s", w)
		}
	}
	r := analyze(ev)
	for n, w := range map[int]string{0: "dir-0", 1: "dir-1", 2: "dir-2", 3: "pub-orders", 4: "pub-news", 5: "pub-prices",
		6: "sub-eu", 7: "sub-us", 8: "sub-desk", 9: "sub-quant", 10: "sub-late"} {
		if p := r.procOf[n]; p == nil || p.Node != w {
			t.Errorf("control's process %d taken for %v, want %s", n, p, w)
		}
	}
	// The directory leader's kill: another replica leads a higher term.
	var leaderKill string
	for k, f := range r.faults {
		if f.Kind == "kill" && f.Peers[0] == 2 {
			_, panels, _ := r.faultTable()
			leaderKill = panels[k].Outcome
		}
	}
	if !regexp.MustCompile(`^dir-2 killed\. .*dir-[01] became the directory's leader in term \d+`).MatchString(leaderKill) {
		t.Errorf("directory leader's kill: %q", leaderKill)
	}
	tt := r.topicTable()
	if tt == nil || len(tt.Topics) != 12 {
		t.Fatalf("topic table %+v", tt)
	}
	for _, row := range tt.Rows {
		if strings.HasPrefix(row.Client, "sub-") && row.Filtered == 0 {
			t.Errorf("%s filtered nothing", row.Client)
		}
		if row.Source != countsEstimated {
			t.Errorf("%s: counts %s in a log without ps_stats, want them estimated", row.Client, row.Source)
		}
	}
	if !strings.Contains(html, "Some control events name processes by number only") {
		t.Errorf("the report does not say it inferred which process each control event names")
	}
}

// TestViolationLinked breaks a recorded run (the killed leader is seen
// down by silence, not by its connection closing) and checks the page
// says so first, linking the verdict to the event in the merged log.
func TestViolationLinked(t *testing.T) {
	ev := recorded(t, "demo")
	bad := -1
	killed := false
	for i, e := range ev {
		if e.Node == eventlog.Control && e.Ev == eventlog.ProcKill {
			killed = true
		}
		if killed && e.Ev == eventlog.PeerDown && e.Str(eventlog.FieldCause) == eventlog.CauseConnClosed {
			e.Fields[eventlog.FieldCause] = eventlog.CauseSilence
			bad = i
			break
		}
	}
	if bad < 0 {
		t.Fatal("no peer_down after the kill")
	}
	html := render(t, "broken", ev)
	if verdictsOf(html)["DetectionCause"] != "fail" {
		t.Fatalf("DetectionCause does not fail")
	}
	if !strings.Contains(html, `1 of the 6 properties checked <b>fail</b>`) {
		t.Errorf("no overall failure")
	}
	id := logAnchor(bad)
	if !strings.Contains(html, `<a href="#`+id+`">detection-cause: killed peer 0 detected by silence</a>`) {
		t.Errorf("violation not linked to #%s", id)
	}
	if !strings.Contains(html, `<div id="`+id+`" data-n="`+ev[bad].Node+`" data-e="peer_down" class="bad">`) {
		t.Errorf("line %s not marked", id)
	}
}

// TestAttributionByCause: a failover logged after a later fault on another
// peer follows from the fault on the peer its cause names.
func TestAttributionByCause(t *testing.T) {
	b := &runBuilder{hbSeq: map[[2]int]int{}}
	for i := range 4 {
		b.add(float64(i), "control", 0, "proc_start", "peer", i)
		b.add(5+float64(i), peer(i), 1, "start", "id", i, "n", 4)
	}
	for i := range 4 {
		b.add(20, peer(i), 1, "election_open", "via", -1)
		b.add(20, peer(i), 1, "leader_change", "leader", 0, "prev", -1)
	}
	b.add(1000, "control", 0, "proc_kill", "peer", 0)
	b.add(1001, "control", 0, "proc_stop", "peer", 3)
	b.add(1003, peer(1), 1, "peer_down", "peer", 0, "cause", "conn_closed", "reason", "EOF")
	b.add(1003, peer(1), 1, "leader_change", "leader", 1, "prev", 0)
	b.add(1600, peer(1), 1, "peer_down", "peer", 3, "cause", "silence")
	b.add(1600, peer(1), 1, "leader_change", "leader", 1, "prev", 1)
	eventlog.Sort(b.ev)
	r := analyze(b.ev)
	var got []string
	for _, c := range r.changes {
		if c.Node == peer(1) && c.Prev != "none" {
			got = append(got, c.Since+"@"+fmtMS(c.LatMS))
		}
	}
	if want := "kill 0@3.0 stop 3@599.0"; strings.Join(got, " ") != want {
		t.Errorf("peer 1's changes follow %v, want %s", got, want)
	}
}

// TestNoControlEvents: peers run by hand, faults injected by hand, no
// control events: the checkers that need to know the faults do not run
// (a kill would pass for a false suspicion); the others do.
func TestNoControlEvents(t *testing.T) {
	var ev []eventlog.Event
	for _, e := range recorded(t, "demo") {
		if e.Node != eventlog.Control {
			ev = append(ev, e)
		}
	}
	wantVerdicts(t, render(t, "by hand", ev), map[string]string{
		"ElectionGate": "pass", "Convergence": "pass", "DetectionCause": "n/a", "UrgentNotices": "pass",
		"NoFalseSuspicion": "n/a", "LeaderRule": "pass",
		"BeliefBound": "n/a", "QuorumIsolation": "n/a", "StableAgreement": "n/a", "NoHeartbeatAfterClose": "n/a",
	})
}
