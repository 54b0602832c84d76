package main

import (
	"bytes"
	"os"
	"strings"
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
	var o options
	o.size, o.inflight, o.security, o.failover = 1024, 512, "none", true
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
`
	if d, err := parseCrashP50(fail); err != nil || d != 850*time.Microsecond {
		t.Errorf("failover p50 %v, %v", d, err)
	}
	if _, err := parseCrashP50("hang  x p50 1.00 ms"); err == nil {
		t.Error("a missing crash line was not noticed")
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
