package report

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
	peercore "github.com/conclave/conclave/peer"
)

var base = time.Date(2026, 11, 23, 18, 40, 0, 0, time.UTC)

// runBuilder builds a synthetic event log; times are in ms from base.
type runBuilder struct {
	ev     []eventlog.Event
	pairs  []string // expected urgent arrows "from>to:leader"
	seq    uint64
	hbSeq  map[[2]int]int
	nUnrcv int // urgent notices sent and never received
}

func (b *runBuilder) add(ms float64, node string, inc uint64, ev string, kv ...any) {
	f := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	ts := base.Add(time.Duration(ms * float64(time.Millisecond)))
	b.seq++
	b.ev = append(b.ev, eventlog.Event{TS: ts, Node: node, Inc: inc, LC: uint64(ts.Sub(base).Microseconds()+1)*10000 + b.seq, Ev: ev, Fields: f})
}

func peer(i int) string { return fmt.Sprintf("peer-%d", i) }

// urgent logs a notice from i to j sent at ms and received dt ms later.
func (b *runBuilder) urgent(ms float64, i int, inc uint64, j int, jinc uint64, leader, prev int, dt float64) {
	b.add(ms, peer(i), inc, "urgent_sent", "to", j, "leader", leader)
	b.add(ms+dt, peer(j), jinc, "urgent_recv", "from", i, "leader", leader, "prev", prev)
	b.pairs = append(b.pairs, fmt.Sprintf("%d>%d:%d", i, j, leader))
}

// sampleRun is a 4-peer run: election of 0, kill of 0 (leader 1), stop and
// cont of 1 (leader 2, then 1 again), restart of 0 (leader 0).
func sampleRun() *runBuilder {
	b := &runBuilder{hbSeq: map[[2]int]int{}}
	inc := map[int]uint64{0: 1, 1: 1, 2: 1, 3: 1}
	b.add(0, "control", 0, "step", "name", "start 4 peers")
	for i := range 4 {
		b.add(float64(i), "control", 0, "proc_start", "peer", i, "pid", 100+i)
		b.add(5+float64(i), peer(i), 1, "start", "id", i, "n", 4, "quorum", false, "heartbeat_ms", 100.0, "suspect_after_ms", 500.0)
	}
	for i := range 4 {
		t := 20 + float64(i)
		for j := range 4 {
			if j != i {
				b.add(t, peer(i), 1, "conn_up", "peer", j, "peer_inc", 1, "dialed", i < j, "addr", "127.0.0.1:700"+fmt.Sprint(j))
				b.add(t, peer(i), 1, "peer_up", "peer", j, "peer_inc", 1)
			}
		}
		b.add(t, peer(i), 1, "election_open")
		b.add(t, peer(i), 1, "leader_change", "leader", 0, "prev", -1, "alive", []int{0, 1, 2, 3})
		for j := range 4 {
			if j != i {
				b.urgent(t, i, 1, j, 1, 0, -1, 8+0.5*float64(j))
			}
		}
	}

	// Kill the leader.
	b.add(999, "control", 0, "step", "name", "kill the leader")
	b.add(1000, "control", 0, "proc_kill", "peer", 0, "pid", 100)
	lats := []float64{12, 23, 34}
	for k, j := range []int{1, 2, 3} {
		t := 1000 + lats[k]
		b.add(t, peer(j), 1, "peer_down", "peer", 0, "cause", "conn_closed", "reason", "EOF")
		b.add(t, peer(j), 1, "leader_change", "leader", 1, "prev", 0, "alive", []int{1, 2, 3})
		for _, o := range []int{1, 2, 3} {
			if o != j {
				b.urgent(t, j, 1, o, 1, 1, 0, 2)
			}
		}
	}
	b.add(1040, "control", 0, "converged", "leader", 1, "after_ms", 34.0, "step", "kill the leader")

	// Hang the new leader.
	b.add(1999, "control", 0, "step", "name", "hang the leader")
	b.add(2000, "control", 0, "proc_stop", "peer", 1, "pid", 101)
	for k, j := range []int{2, 3} {
		t := 2520 + 10*float64(k)
		b.add(t, peer(j), 1, "peer_down", "peer", 1, "cause", "silence", "reason", "no heartbeat for 520ms")
		b.add(t, peer(j), 1, "leader_change", "leader", 2, "prev", 1, "alive", []int{2, 3})
		b.urgent(t, j, 1, 5-j, 1, 2, 1, 2)
	}
	b.add(2530, peer(3), 1, "urgent_sent", "to", 1, "leader", 2) // never received
	b.nUnrcv++

	// Resume it.
	b.add(2999, "control", 0, "step", "name", "resume 1")
	b.add(3000, "control", 0, "proc_cont", "peer", 1, "pid", 101)
	b.add(3001, peer(1), 1, "paused", "for_ms", 1000.5)
	b.add(3002, peer(1), 1, "peer_down", "peer", 2, "cause", "conn_closed", "reason", "EOF")
	b.add(3003, peer(1), 1, "peer_down", "peer", 3, "cause", "conn_closed", "reason", "EOF")
	b.add(3040, peer(1), 1, "peer_up", "peer", 2, "peer_inc", 1)
	b.add(3045, peer(1), 1, "peer_up", "peer", 3, "peer_inc", 1)
	for k, j := range []int{2, 3} {
		t := 3050 + 10*float64(k)
		b.add(t, peer(j), 1, "peer_up", "peer", 1, "peer_inc", 1)
		b.add(t, peer(j), 1, "leader_change", "leader", 1, "prev", 2, "alive", []int{1, 2, 3})
		b.urgent(t, j, 1, 1, 1, 1, 2, 2)
		b.urgent(t, j, 1, 5-j, 1, 1, 2, 2)
	}

	// Restart the first peer.
	b.add(3999, "control", 0, "step", "name", "restart 0")
	b.add(4000, "control", 0, "proc_start", "peer", 0, "pid", 200)
	inc[0] = 2
	b.add(4005, peer(0), 2, "start", "id", 0, "n", 4, "quorum", false, "heartbeat_ms", 100.0, "suspect_after_ms", 500.0)
	for j := 1; j < 4; j++ {
		b.add(4010, peer(0), 2, "conn_up", "peer", j, "peer_inc", 1, "dialed", true, "addr", "127.0.0.1:7001")
		b.add(4040+float64(j), peer(0), 2, "peer_up", "peer", j, "peer_inc", 1)
	}
	b.add(4043, peer(0), 2, "election_open")
	b.add(4043, peer(0), 2, "leader_change", "leader", 0, "prev", -1, "alive", []int{0, 1, 2, 3})
	for j := 1; j < 4; j++ {
		b.urgent(4043, 0, 2, j, 1, 0, -1, 2)
	}
	for k, j := range []int{1, 2, 3} {
		t := 4050 + 10*float64(k)
		b.add(t, peer(j), 1, "peer_up", "peer", 0, "peer_inc", 2)
		b.add(t, peer(j), 1, "leader_change", "leader", 0, "prev", 1, "alive", []int{0, 1, 2, 3})
		for o := range 4 {
			if o != j {
				b.urgent(t, j, 1, o, inc[o], 0, 1, 2)
			}
		}
	}

	// Heartbeats every 100 ms between every pair that can talk.
	incAt := func(i int, t float64) uint64 {
		if i == 0 && t > 4000 {
			return 2
		}
		return 1
	}
	up := func(i int, t float64) bool {
		switch i {
		case 0:
			return t < 1000 || t > 4010
		case 1:
			return t < 2000 || t > 3010
		}
		return true
	}
	for t := 100.0; t <= 5000; t += 100 {
		for i := range 4 {
			for j := range 4 {
				if i == j || !up(i, t) || !up(j, t) {
					continue
				}
				b.hbSeq[[2]int{i, j}]++
				s := b.hbSeq[[2]int{i, j}]
				st := t + 0.3*float64(i)
				b.add(st, peer(i), incAt(i, st), "hb_sent", "to", j, "seq", s)
				b.add(st+0.4, peer(j), incAt(j, st), "hb_recv", "from", i, "seq", s)
			}
		}
	}
	eventlog.Sort(b.ev)
	return b
}

func render(t *testing.T, title string, ev []eventlog.Event) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Render(&buf, title, ev); err != nil {
		t.Fatalf("Render: %v", err)
	}
	return buf.String()
}

// svgByID returns the <svg id="id"> element of html.
func svgByID(t *testing.T, html, id string) string {
	t.Helper()
	i := strings.Index(html, `<svg id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no svg %q", id)
	}
	j := strings.Index(html[i:], "</svg>")
	if j < 0 {
		t.Fatalf("svg %q not closed", id)
	}
	return html[i : i+j+len("</svg>")]
}

func TestRenderSample(t *testing.T) {
	b := sampleRun()
	html := render(t, "sample <run> & co", b.ev)

	if !strings.Contains(html, "<title>sample &lt;run&gt; &amp; co</title>") {
		t.Errorf("title not escaped")
	}
	tl := svgByID(t, html, "timeline")

	// 4 lanes, in id order.
	lanes := regexp.MustCompile(`<g class="lane" data-peer="(\d+)"`).FindAllStringSubmatch(tl, -1)
	var ids []string
	for _, m := range lanes {
		ids = append(ids, m[1])
	}
	if got := strings.Join(ids, ","); got != "0,1,2,3" {
		t.Errorf("lanes = %q, want 0,1,2,3", got)
	}

	// One arrow per matched urgent pair, with the right ends.
	arrows := regexp.MustCompile(`<g class="urgent" data-from="(\d+)" data-to="(\d+)" data-leader="(-?\d+)">`).FindAllStringSubmatch(tl, -1)
	var got []string
	for _, m := range arrows {
		got = append(got, m[1]+">"+m[2]+":"+m[3])
	}
	want := append([]string(nil), b.pairs...)
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("arrows (%d):\n got %v\nwant %v", len(got), got, want)
	}
	if len(want) != 36 {
		t.Errorf("test run has %d urgent pairs, want 36", len(want))
	}
	if n := strings.Count(tl, `<circle class="stub"`); n != b.nUnrcv {
		t.Errorf("%d unmatched-notice stubs, want %d", n, b.nUnrcv)
	}

	// Process states: 0 killed then restarted, 1 hung.
	for _, s := range []string{`class="st-down"`, `class="st-hung"`, `class="st-notstarted"`} {
		if !strings.Contains(tl, s) {
			t.Errorf("timeline lacks %s", s)
		}
	}
	if n := strings.Count(tl, `<g class="mk mk-kill">`); n != 1 {
		t.Errorf("%d kill markers, want 1", n)
	}
	if !strings.Contains(tl, ">kill 0</text>") || !strings.Contains(tl, ">stop 1</text>") || !strings.Contains(tl, ">cont 1</text>") {
		t.Errorf("control markers not labelled")
	}

	// Leader changes: 0 → 1 on peers 1-3 with latency 12, 23, 34 ms after the kill.
	rows := regexp.MustCompile(`<tr class="change" data-node="([^"]*)" data-prev="([^"]*)" data-leader="([^"]*)" data-latency="([^"]*)" data-since="[^"]*" data-fault="[^"]*">\s*<td class="num"><a href="#e\d+">([^<]*)</a></td><td>[^<]*</td><td>[^<]*<span[^>]*>[^<]*</span></td><td>[^<]*</td><td>([^<]*)</td><td class="num">[^<]*</td><td><a href="#fault-\d+">#\d+ ([^<]*)</a></td>`).FindAllStringSubmatch(html, -1)
	if len(rows) != 4+3+2+2+4 {
		t.Errorf("%d leader change rows, want 15", len(rows))
	}
	toOne := map[string]string{}
	for _, m := range rows {
		if m[2] == "0" && m[3] == "1" {
			toOne[m[1]] = m[4] + "|" + m[7] + "|" + m[6]
		}
	}
	for node, w := range map[string]string{
		"peer-1": "12.0|kill 0|peer 0 down: conn_closed (EOF)",
		"peer-2": "23.0|kill 0|peer 0 down: conn_closed (EOF)",
		"peer-3": "34.0|kill 0|peer 0 down: conn_closed (EOF)",
	} {
		if toOne[node] != w {
			t.Errorf("leader change 0→1 on %s = %q, want %q", node, toOne[node], w)
		}
	}
	if len(toOne) != 3 {
		t.Errorf("changes 0→1 on %v, want peers 1-3", toOne)
	}

	// Faults and convergence.
	faults := regexp.MustCompile(`<tr class="fault" data-kind="([^"]*)" data-label="([^"]*)" data-leader="([^"]*)" data-ms="([^"]*)">`).FindAllStringSubmatch(html, -1)
	var fs []string
	for _, m := range faults {
		fs = append(fs, m[2]+"="+m[3]+"@"+m[4])
	}
	wantF := "start 0,1,2,3 (first start)=0@20.0 kill 0=1@34.0 stop 1=2@530.0 cont 1=1@60.0 start 0=0@70.0"
	if strings.Join(fs, " ") != wantF {
		t.Errorf("faults:\n got %s\nwant %s", strings.Join(fs, " "), wantF)
	}
	if !strings.Contains(html, "leader 1 after 34.0 ms (step &#34;kill the leader&#34;)") {
		t.Errorf("reported convergence missing")
	}
	// A close-up per fault.
	for k := 1; k <= 5; k++ {
		z := svgByID(t, html, fmt.Sprintf("zoom-%d", k))
		if strings.Count(z, `<g class="lane"`) != 4 {
			t.Errorf("zoom-%d lacks lanes", k)
		}
	}
	if z := svgByID(t, html, "zoom-2"); strings.Count(z, `<g class="urgent"`) != 6 || !strings.Contains(z, `class="hb"`) {
		t.Errorf("zoom of the kill should show its 6 notices and heartbeats")
	}

	// Counts and log.
	if !regexp.MustCompile(`<td>leader_change</td><td class="num zero">0</td><td class="num">2</td><td class="num">3</td>`).MatchString(html) {
		t.Errorf("counts row for leader_change wrong")
	}
	if !strings.Contains(html, `<pre class="log" id="merged-log">`) || !strings.Contains(html, "hb_sent") || !strings.Contains(html, "proc_kill") {
		t.Errorf("log missing")
	}

	// Deterministic.
	if again := render(t, "sample <run> & co", b.ev); again != html {
		t.Errorf("two renders differ")
	}

	if out := os.Getenv("REPORT_SAMPLE"); out != "" {
		if err := os.WriteFile(out, []byte(html), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInferred checks a run without control events: process life comes
// from the peers' own events.
func TestInferred(t *testing.T) {
	b := sampleRun()
	var ev []eventlog.Event
	for _, e := range b.ev {
		if e.Node != "control" {
			ev = append(ev, e)
		}
	}
	html := render(t, "inferred", ev)
	tl := svgByID(t, html, "timeline")
	if strings.Count(tl, `<g class="lane"`) != 4 {
		t.Errorf("want 4 lanes")
	}
	// 0 is down between its last event before the kill and its restart; 1's
	// pause shows as hung.
	r := analyze(ev)
	if s := r.states.at(0, 0.95); s != stRunning {
		t.Errorf("peer 0 at 0.95 s (after its last event, before the others saw it go): %s, want running", s)
	}
	if s := r.states.at(0, 2.5); s != stDown {
		t.Errorf("peer 0 at 2.5 s: %s, want down", s)
	}
	if s := r.states.at(0, 4.5); s != stRunning {
		t.Errorf("peer 0 at 4.5 s: %s, want running", s)
	}
	if s := r.states.at(1, 2.5); s != stHung {
		t.Errorf("peer 1 at 2.5 s: %s, want hung", s)
	}
	if strings.Contains(html, `<tr class="fault"`) {
		t.Errorf("no control events, yet faults listed")
	}
	if !strings.Contains(html, "inferred from its own") {
		t.Errorf("no note about inferred process life")
	}
}

// TestDefaultSuspectAfter checks that a log without start events is read
// with the peer's default suspect-after: a peer seen down by silence went
// down that long before it was noticed.
func TestDefaultSuspectAfter(t *testing.T) {
	b := &runBuilder{}
	b.add(0, peer(0), 1, "hb_sent", "to", 1, "seq", 1)
	b.add(0, peer(1), 1, "hb_sent", "to", 0, "seq", 1)
	b.add(100, peer(0), 1, "hb_sent", "to", 1, "seq", 2)
	b.add(2000, peer(1), 1, "peer_down", "peer", 0, "cause", "silence", "reason", "no heartbeat")
	b.add(3000, peer(1), 1, "hb_sent", "to", 0, "seq", 30)
	eventlog.Sort(b.ev)
	r := analyze(b.ev)
	down := 2 - peercore.DefaultSuspectAfter.Seconds()
	for _, c := range []struct {
		t    float64
		want string
	}{{down - 0.01, stRunning}, {down + 0.01, stDown}} {
		if s := r.states.at(0, c.t); s != c.want {
			t.Errorf("peer 0 at %.2f s: %s, want %s (down at %.2f s: 2 s less suspect-after %v)", c.t, s, c.want, down, peercore.DefaultSuspectAfter)
		}
	}
}

// TestEarlyEffects checks a kill whose effects were logged before the
// kill itself, and grouped terms at the end of the run.
func TestEarlyEffects(t *testing.T) {
	b := &runBuilder{}
	for i := range 3 {
		b.add(float64(i), "control", 0, "proc_start", "peer", i)
		b.add(5, peer(i), 1, "start", "id", i, "n", 3, "suspect_after_ms", 500)
		b.add(20+float64(i), peer(i), 1, "election_open")
		b.add(20+float64(i), peer(i), 1, "leader_change", "leader", 0, "prev", -1)
	}
	b.add(999, peer(1), 1, "peer_down", "peer", 0, "cause", "conn_closed", "reason", "EOF")
	b.add(999, peer(1), 1, "leader_change", "leader", 1, "prev", 0)
	b.add(999.5, peer(2), 1, "peer_down", "peer", 0, "cause", "conn_closed", "reason", "EOF")
	b.add(999.5, peer(2), 1, "leader_change", "leader", 1, "prev", 0)
	b.add(1000, "control", 0, "proc_kill", "peer", 0)
	b.add(1999.5, peer(1), 1, "stop", "leader", 1)
	b.add(2000, "control", 0, "proc_term", "peer", 1)
	b.add(2000.2, peer(2), 1, "peer_down", "peer", 1, "cause", "conn_closed", "reason", "bye: shutdown")
	b.add(2000.2, peer(2), 1, "leader_change", "leader", 2, "prev", 1)
	b.add(2000.5, peer(2), 1, "stop", "leader", 2)
	b.add(2001, "control", 0, "proc_term", "peer", 2)
	eventlog.Sort(b.ev)
	html := render(t, "early", b.ev)

	faults := regexp.MustCompile(`<tr class="fault" data-kind="([^"]*)" data-label="([^"]*)" data-leader="([^"]*)" data-ms="([^"]*)">`).FindAllStringSubmatch(html, -1)
	var fs []string
	for _, m := range faults {
		fs = append(fs, m[2]+"="+m[3]+"@"+m[4])
	}
	if got, want := strings.Join(fs, " "), "start 0,1,2 (first start)=0@20.0 kill 0=1@-0.5 term 1,2=@"; got != want {
		t.Errorf("faults:\n got %s\nwant %s", got, want)
	}
	if !strings.Contains(html, "no peer left running") {
		t.Errorf("terms: want no peer left running")
	}
	for _, w := range []string{
		`data-node="peer-1" data-prev="0" data-leader="1" data-latency="-1.0"`,
		`data-node="peer-2" data-prev="0" data-leader="1" data-latency="-0.5"`,
		`data-node="peer-2" data-prev="1" data-leader="2" data-latency="0.2"`,
	} {
		if !strings.Contains(html, w) {
			t.Errorf("no leader change row %s", w)
		}
	}
}

func TestRenderOdd(t *testing.T) {
	ts := base
	at := func(ms int) time.Time { return ts.Add(time.Duration(ms) * time.Millisecond) }
	cases := map[string][]eventlog.Event{
		"nil":    nil,
		"empty":  {},
		"single": {{TS: at(0), Node: "peer-0", Ev: "start"}},
		"garbage": {
			{},
			{Node: "peer-1", Ev: "leader_change"},
			{TS: at(5), Node: "peer-x", Ev: "leader_change", Fields: map[string]any{"leader": "zero"}},
			{TS: at(6), Node: "peer-99999", Ev: "urgent_sent", Fields: map[string]any{"to": 1, "leader": 1e9}},
			{TS: at(7), Node: "peer-1", Ev: "urgent_recv", Fields: map[string]any{"from": 99999, "leader": 1e9}},
			{TS: at(1), Node: "peer-1", Ev: "start", Fields: map[string]any{"n": 1 << 40, "heartbeat_ms": math.NaN(), "quorum": "<b>yes</b>"}},
			{TS: at(2), Node: "peer-1", Ev: "leader_change", Fields: map[string]any{"leader": 12345678, "prev": -7, "alive": "all"}},
			{TS: at(3), Node: "peer-1", Ev: "leader_change", Fields: map[string]any{"leader": -5}},
			{TS: at(4), Node: "peer-2", Ev: "paused", Fields: map[string]any{"for_ms": math.Inf(1)}},
			{TS: at(4), Node: "peer-2", Ev: "paused", Fields: map[string]any{"for_ms": 1e300}},
			{TS: at(9), Node: "control", Ev: "proc_kill", Fields: map[string]any{"peer": -3}},
			{TS: at(9), Node: "control", Ev: "proc_stop"},
			{TS: at(10), Node: "control", Ev: "proc_cont", Fields: map[string]any{"peer": 2}},
			{TS: at(10), Node: "control", Ev: "converged", Fields: map[string]any{"leader": nil}},
			{TS: at(11), Node: "control", Ev: "step", Fields: map[string]any{"name": strings.Repeat("<script>", 50)}},
			{TS: at(8), Node: "<script>alert(1)</script>", Ev: "</pre><script>", Fields: map[string]any{"x": []any{1, "a"}}},
			{TS: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), Node: "peer-3", Ev: "hb_recv", Fields: map[string]any{"from": 0, "seq": 1}},
			{TS: at(100000000), Node: "peer-3", Ev: "stop"},
		},
		"reversed": func() []eventlog.Event {
			ev := sampleRun().ev
			out := make([]eventlog.Event, len(ev))
			for i, e := range ev {
				out[len(ev)-1-i] = e
			}
			return out
		}(),
		"control only": {
			{TS: at(0), Node: "control", Ev: "proc_start", Fields: map[string]any{"peer": 3}},
			{TS: at(0), Node: "control", Ev: "proc_kill", Fields: map[string]any{"peer": 3}},
		},
	}
	for name, ev := range cases {
		t.Run(name, func(t *testing.T) {
			html := render(t, name, ev)
			if !strings.HasPrefix(html, "<!DOCTYPE html>") || !strings.Contains(html, "</html>") {
				t.Errorf("not a complete page")
			}
			if strings.Count(html, "<script") > 1 {
				t.Errorf("unescaped input")
			}
			if strings.Contains(html, "ZgotmplZ") {
				t.Errorf("template rejected a value")
			}
			if again := render(t, name, ev); again != html {
				t.Errorf("not deterministic")
			}
		})
	}
}

func TestLogCap(t *testing.T) {
	var ev []eventlog.Event
	for i := range MaxLogLines + 5 {
		ev = append(ev, eventlog.Event{TS: base.Add(time.Duration(i) * time.Microsecond), Node: "peer-0", Inc: 1, LC: uint64(i), Ev: "hb_sent",
			Fields: map[string]any{"to": 1, "seq": i}})
	}
	html := render(t, "big", ev)
	if !strings.Contains(html, "5 more lines not shown") {
		t.Errorf("no truncation note")
	}
	if n := strings.Count(html, " hb_sent "); n != MaxLogLines {
		t.Errorf("%d log lines, want %d", n, MaxLogLines)
	}
}

func TestWriteDir(t *testing.T) {
	dir := t.TempDir()
	for id := range 2 {
		f, err := eventlog.Create(dir, peer(id))
		if err != nil {
			t.Fatal(err)
		}
		now := base.Add(time.Duration(id) * time.Millisecond)
		clock := func() time.Time { now = now.Add(10 * time.Millisecond); return now }
		w := eventlog.NewWriter(f, peer(id), uint64(id+1), &eventlog.Clock{}, clock)
		w.Log("start", map[string]any{"id": id, "n": 2, "quorum": false, "heartbeat_ms": 100.0, "suspect_after_ms": 500.0})
		w.Log("peer_up", map[string]any{"peer": 1 - id, "peer_inc": 2 - id})
		w.Log("election_open", nil)
		w.Log("leader_change", map[string]any{"leader": 0, "prev": -1, "alive": []int{0, 1}})
		w.Log("urgent_sent", map[string]any{"to": 1 - id, "leader": 0})
		w.Log("urgent_recv", map[string]any{"from": 1 - id, "leader": 0, "prev": -1})
		w.Log("stop", map[string]any{"leader": 0})
		if err := w.Err(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	path, err := WriteDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "report.html") {
		t.Errorf("path %q", path)
	}
	if _, err := os.Stat(filepath.Join(dir, eventlog.RunJSONL)); err != nil {
		t.Errorf("run log not merged: %v", err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	html := string(first)
	tl := svgByID(t, html, "timeline")
	if n := strings.Count(tl, `<g class="lane"`); n != 2 {
		t.Errorf("%d lanes, want 2", n)
	}
	if n := strings.Count(tl, `<g class="urgent"`); n != 2 {
		t.Errorf("%d arrows, want 2", n)
	}
	if !strings.Contains(html, "stopped cleanly") || !strings.Contains(tl, `class="st-stopped"`) {
		t.Errorf("clean stop not shown")
	}
	// A second call reads run.jsonl and writes the same report.
	if _, err := WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(path)
	if !bytes.Equal(first, second) {
		t.Errorf("report from run.jsonl differs from the merged one")
	}

	if _, err := WriteDir(t.TempDir()); err == nil {
		t.Errorf("WriteDir of an empty dir: no error")
	}
}

// largeRun is a run of n peers over secs seconds with every heartbeat
// logged, and the leader killed and restarted every 3 s.
func largeRun(n, secs int) []eventlog.Event {
	b := &runBuilder{}
	inc := make([]uint64, n)
	down := make([]bool, n)
	leader := 0
	for i := range n {
		inc[i] = 1
		b.add(0, "control", 0, "proc_start", "peer", i)
		b.add(1, peer(i), 1, "start", "id", i, "n", n, "heartbeat_ms", 100, "suspect_after_ms", 500)
		b.add(10, peer(i), 1, "leader_change", "leader", 0, "prev", -1)
	}
	announce := func(t float64, l, prev int) {
		for i := range n {
			if down[i] {
				continue
			}
			b.add(t+float64(i), peer(i), inc[i], "leader_change", "leader", l, "prev", prev)
			for j := range n {
				if j != i && !down[j] {
					b.urgent(t+float64(i), i, inc[i], j, inc[j], l, prev, 1)
				}
			}
		}
	}
	for ms := 100; ms < secs*1000; ms += 100 {
		t := float64(ms)
		if ms%3000 == 0 {
			victim := leader
			b.add(t, "control", 0, "proc_kill", "peer", victim)
			down[victim] = true
			leader = (victim + 1) % n
			announce(t+10, leader, victim)
		}
		if ms%3000 == 1500 {
			for i := range n {
				if down[i] {
					b.add(t, "control", 0, "proc_start", "peer", i)
					down[i], inc[i] = false, inc[i]+1
					b.add(t+1, peer(i), inc[i], "start", "id", i, "n", n)
				}
			}
		}
		for i := range n {
			for j := range n {
				if i != j && !down[i] && !down[j] {
					b.add(t+2, peer(i), inc[i], "hb_sent", "to", j, "seq", ms/100)
					b.add(t+2.3, peer(j), inc[j], "hb_recv", "from", i, "seq", ms/100)
				}
			}
		}
	}
	eventlog.Sort(b.ev)
	return b.ev
}

func TestLargeRun(t *testing.T) {
	ev := largeRun(7, 60)
	start := time.Now()
	html := render(t, "large", ev)
	t.Logf("%d events: %d bytes in %v", len(ev), len(html), time.Since(start))
	if !strings.Contains(html, "more lines not shown") {
		t.Errorf("log not capped")
	}
	if n := strings.Count(svgByID(t, html, "timeline"), `<g class="lane"`); n != 7 {
		t.Errorf("%d lanes, want 7", n)
	}
	if out := os.Getenv("REPORT_SAMPLE_LARGE"); out != "" {
		if err := os.WriteFile(out, []byte(html), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	ev := largeRun(7, 60)
	for b.Loop() {
		if err := Render(io.Discard, "large", ev); err != nil {
			b.Fatal(err)
		}
	}
}

// logPeers appends to dir the logs of a 2-peer run starting at t0, with
// incarnations inc and inc+1.
func logPeers(t *testing.T, dir string, t0 time.Time, inc uint64) {
	t.Helper()
	for id := range 2 {
		f, err := eventlog.Create(dir, peer(id))
		if err != nil {
			t.Fatal(err)
		}
		now := t0.Add(time.Duration(id) * time.Millisecond)
		clock := func() time.Time { now = now.Add(10 * time.Millisecond); return now }
		w := eventlog.NewWriter(f, peer(id), inc+uint64(id), &eventlog.Clock{}, clock)
		w.Log("start", map[string]any{"id": id, "n": 2, "quorum": false, "heartbeat_ms": 100.0, "suspect_after_ms": 500.0})
		w.Log("leader_change", map[string]any{"leader": 0, "prev": -1, "alive": []int{0, 1}})
		w.Log("stop", map[string]any{"leader": 0})
		f.Close()
	}
}

// TestWriteDirTellsRunsApart appends a second run to a directory whose
// first run was already merged: the report shows the second run alone and
// says the directory holds two (it used to read the stale run.jsonl, and,
// without it, to mix both runs into one).
func TestWriteDirTellsRunsApart(t *testing.T) {
	dir := t.TempDir()
	logPeers(t, dir, base, 1)
	if _, err := WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	logPeers(t, dir, base.Add(time.Hour), 10)
	path, m, err := WriteRun(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.N != 2 || len(m.Runs) != 2 || len(m.Events) != 6 {
		t.Fatalf("merged run %d of %d, %d events; want run 2 of 2, 6 events", m.N, len(m.Runs), len(m.Events))
	}
	b, _ := os.ReadFile(path)
	html := string(b)
	if !strings.Contains(html, "This directory holds 2 runs; this report shows run 2 (started 2026-11-23 19:40:00.010 UTC") {
		t.Errorf("the report does not say which run it shows")
	}
	rest := regexp.MustCompile(`This directory holds[^<]*`).ReplaceAllString(html, "")
	if !strings.Contains(rest, "19:40:00.0") || strings.Contains(rest, "18:40:00.0") {
		t.Errorf("the report does not show the second run alone")
	}
	if _, m, err := WriteRun(dir, 1); err != nil || m.N != 1 {
		t.Errorf("WriteRun(1): %v", err)
	}
	// A merged log alone is reported from.
	alone := t.TempDir()
	run, _ := os.ReadFile(filepath.Join(dir, eventlog.RunJSONL))
	os.WriteFile(filepath.Join(alone, eventlog.RunJSONL), run, 0o644)
	if _, err := WriteDir(alone); err != nil {
		t.Errorf("WriteDir of a merged log alone: %v", err)
	}
}
