package main

import (
	"bytes"
	"cmp"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	serveIfAsked() // the failover benchmark's NATS servers are this binary
	os.Exit(m.Run())
}

// TestSmoke runs every figure once, tiny, and checks that each was
// measured and that the summary compares them all. It checks that the
// harness runs, not how fast anything is.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds conclave and runs NATS clusters")
	}
	o := options{group: true, ps: defaultShape()}
	o.size, o.inflight, o.security, o.failover, o.hang, o.pubsub = 1024, 512, "none", true, true, true
	o.smoke()
	var out bytes.Buffer
	rounds, err := run(&out, o)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rounds) != 1 {
		t.Fatalf("%d rounds, want 1", len(rounds))
	}
	for _, c := range comparisons {
		for _, f := range []figure{c.a, c.b} {
			v, ok := rounds[0][f.key]
			// A JetStream consumer can stall for all of a half-second
			// window on a starved machine (seen under -race); the run
			// waits until every consumer has received something, which
			// checks that they count.
			if !ok || !(v > 0 || f == jsDelivered && v == 0) {
				t.Errorf("%s: %v (measured: %v)", f.name, v, ok)
			}
		}
		if rounds[0][c.b.key] > 0 && !strings.Contains(out.String(), c.a.name+"\n  vs "+c.b.name+"\n") {
			t.Errorf("the summary does not compare %q with %q", c.a.name, c.b.name)
		}
	}
}

// TestParse reads the result lines of the conclave benchmarks as they
// print them.
func TestParse(t *testing.T) {
	group := `group benchmark: 4 members in this process over TCP on loopback, 1024-byte messages, 3s measured after 500ms of warm-up
stack    mode   security       msgs/s     p50 ms     p99 ms     max ms
vsync    async  none           132344      6.300     17.100     20.000
vsync    sync   none            23488      0.024      0.760      1.000
total    async  none           109616     13.200     28.700     30.000
total    sync   none            19842      0.029      0.610      2.000
`
	figs, err := parseGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	if f := figs["total sync"]; f.rate != 19842 || f.p50 != 29*time.Microsecond {
		t.Errorf("total sync: %+v", f)
	}
	if f := figs["vsync async"]; f.rate != 132344 || f.p50 != 6300*time.Microsecond {
		t.Errorf("vsync async: %+v", f)
	}
	if _, err := parseGroup(strings.ReplaceAll(group, "total    sync", "total    other")); err == nil {
		t.Error("a missing figure was not noticed")
	}
	fail := `failover benchmark: 4 peers on loopback
crash SIGKILL (detected by connection close)       p50     0.85 ms   p99     1.13 ms   max     1.20 ms   min     0.70 ms
hang  SIGSTOP (detected by heartbeat silence)      p50   504.20 ms   p99   506.00 ms   max   506.00 ms   min   503.00 ms
floor SIGKILL of a floor process                   p50     0.80 ms   p99     1.00 ms   max     1.00 ms   min     0.60 ms
crash / floor: p50 1.06   p99 1.13
`
	if d, err := parseP50(fail, "crash"); err != nil || d != 850*time.Microsecond {
		t.Errorf("crash p50 %v, %v", d, err)
	}
	if d, err := parseP50(fail, "hang"); err != nil || d != 504200*time.Microsecond {
		t.Errorf("hang p50 %v, %v", d, err)
	}
	if d, err := parseP50(fail, "floor"); err != nil || d != 800*time.Microsecond {
		t.Errorf("floor p50 %v, %v", d, err)
	}
	if _, err := parseP50("hang  x p50 1.00 ms", "crash"); err == nil {
		t.Error("a missing crash line was not noticed")
	}
}

// TestParsePubSub reads the result line of "conclave bench pubsub" and
// its note when not every event was counted.
func TestParsePubSub(t *testing.T) {
	out := `pubsub benchmark: 100 topics (50 vsync, 50 total), at most 16 groups
delivered, filtered: events handed to, and dropped by, the subscribers, summed over them; publish: from the call until every member has the event
 delivered/s   filtered/s  published/s  publish p50          p99          max
       15162        16591         6444     0.426 ms     4.922 ms    15.766 ms
this process used 1.71 of the 2 cores (user and system time) over the measured time
waste ratio, filtered / (delivered + filtered), over the whole run (15655 events published, every event counted):
`
	r, err := parsePubSub(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.delivered != 15162 || r.filtered != 16591 || r.published != 6444 || r.p50 != 426*time.Microsecond || r.p99 != 4922*time.Microsecond || r.note != "" {
		t.Errorf("parsed %+v", r)
	}
	unsettled := "NOT every event was counted within 10s; the view of 2 groups changed while publishing, so some members missed events"
	if r, _ := parsePubSub(strings.Replace(out, "every event counted", unsettled, 1)); r.note != unsettled {
		t.Errorf("an unsettled run was noted %q", r.note)
	}
	if _, err := parsePubSub(strings.Replace(out, "0.426 ms", "0.426", 1)); err == nil {
		t.Error("a missing result line was not noticed")
	}
}

// TestPubSubWorkload checks the NATS side's draw of the workload: every
// subscriber has its number of distinct topics, every topic a publisher,
// and a publisher's picker draws the popular topics more often.
func TestPubSubWorkload(t *testing.T) {
	s := defaultShape()
	w := s.workload()
	if len(w.topics) != s.topics || len(w.subs) != s.subscribers {
		t.Fatalf("%d topics, %d subscribers", len(w.topics), len(w.subs))
	}
	for i, ts := range w.subs {
		if len(ts) != s.perSubscriber || len(slices.Compact(slices.Clone(ts))) != len(ts) {
			t.Errorf("subscriber %d: %v", i, ts)
		}
	}
	var mine []string
	for i, t := range w.topics {
		if w.pub[i] == 0 {
			mine = append(mine, t)
		}
	}
	top := slices.MaxFunc(mine, func(a, b string) int { return cmp.Compare(w.weight[a], w.weight[b]) })
	least := slices.MinFunc(mine, func(a, b string) int { return cmp.Compare(w.weight[a], w.weight[b]) })
	next := s.picker(mine, w.weight, 0)
	n := map[string]int{}
	for range 10000 {
		n[next()]++
	}
	if n[top] <= n[least] {
		t.Errorf("the most popular topic %s was drawn %d times, the least %s %d", top, n[top], least, n[least])
	}
}

// TestAlternate checks that rounds alternate which side goes first.
func TestAlternate(t *testing.T) {
	xs := []string{"c", "o", "cf", "of"}
	for r, want := range []string{"c o cf of", "o c of cf", "c o cf of"} {
		if got := strings.Join(alternate(xs, r), " "); got != want {
			t.Errorf("round %d: %s, want %s", r, got, want)
		}
	}
}

// TestSpreadAndRatio checks the summary's arithmetic.
func TestSpreadAndRatio(t *testing.T) {
	lo, mid, hi := spread([]float64{3, 1, 2})
	if lo != 1 || mid != 2 || hi != 3 {
		t.Errorf("spread: %v %v %v", lo, mid, hi)
	}
	if got := ratio(0.0005); got != "1/2000" {
		t.Errorf("ratio(0.0005) = %s", got)
	}
	for v, want := range map[float64]string{0.0052: "5.2 µs", 0.042: "42.0 µs", 0.105: "0.105 ms", 19.7: "19.7 ms", 5140: "5.14 s"} {
		if got := format(tcpRTTFig, v); got != want {
			t.Errorf("format(%v ms) = %s, want %s", v, got, want)
		}
	}
	for v, want := range map[float64]string{950: "950/s", 32900: "32.9k/s", 1.2e6: "1.20M/s"} {
		if got := format(tcpFloor, v); got != want {
			t.Errorf("format(%v/s) = %s, want %s", v, got, want)
		}
	}
	if got := ratio(3.91); got != "3.91" {
		t.Errorf("ratio(3.91) = %s", got)
	}
}

// TestAllStopped checks that a process counts as stopped only once
// SIGSTOP has stopped it, and no longer after SIGCONT.
func TestAllStopped(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	await := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := allStopped(pid)
			if err != nil {
				t.Fatal(err)
			}
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("stopped: %v, want %v", got, want)
			}
			runtime.Gosched()
		}
	}
	if stopped, err := allStopped(pid); err != nil || stopped {
		t.Fatalf("a running process: stopped %v, %v", stopped, err)
	}
	cmd.Process.Signal(syscall.SIGSTOP)
	await(true)
	cmd.Process.Signal(syscall.SIGCONT)
	await(false)
}
