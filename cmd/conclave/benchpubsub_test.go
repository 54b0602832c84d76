package main

import (
	"math"
	"strings"
	"testing"
)

// TestBenchPubSub runs the benchmark on a tiny instance, whose optimum
// is computed, and checks its output and that its figures agree.
func TestBenchPubSub(t *testing.T) {
	b, err := parsePubSubBench([]string{"--topics", "6", "--groups", "3", "--publishers", "2", "--subscribers", "3",
		"--per-subscriber", "2", "--duration", "300ms", "--warmup", "100ms", "--size", "64", "--seed", "3"})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	res, err := b.run(&out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"pubsub benchmark: 6 topics (3 vsync, 3 total), at most 3 groups, 2 publishers", "\nsetup: 6 announces",
		"\n delivered/s   filtered/s  published/s  publish p50", "optimum\nat the subscribers", "\nat every member "} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("no %q in the output", line)
		}
	}
	if !res.settled {
		t.Error("not every member counted every event of its groups")
	}
	if res.delivered <= 0 || res.published <= 0 || res.p50 <= 0 || res.p50 > res.p99 || res.p99 > res.max {
		t.Errorf("delivered %v/s, published %v/s, publish p50 %v p99 %v max %v", res.delivered, res.published, res.p50, res.p99, res.max)
	}
	for _, r := range []struct {
		name string
		row  wasteRow
	}{{"subscribers", res.subscribers}, {"members", res.members}} {
		placed, one, hash, opt := r.row.predict[0], r.row.predict[1], r.row.predict[2], r.row.predict[3]
		for _, v := range append(r.row.predict, r.row.measured) {
			if !(v >= 0 && v <= 1) {
				t.Errorf("%s: a waste ratio of %v: %+v", r.name, v, r.row)
			}
		}
		// Every placement refines one group per QoS, and the optimum is
		// the least of all.
		if !(opt <= placed && opt <= hash && placed <= one && hash <= one) {
			t.Errorf("%s: optimum %v, directory %v, hash %v, one group per QoS %v", r.name, opt, placed, hash, one)
		}
		// Every event counted, the measure is the prediction for the
		// directory's placement at the rates published.
		if math.Abs(r.row.measured-placed) > 1e-9 {
			t.Errorf("%s: measured waste ratio %v, predicted %v", r.name, r.row.measured, placed)
		}
	}
}

// TestBenchPubSubRefusesBadFlags checks the command line's checks.
func TestBenchPubSubRefusesBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--groups", "2"}, "--groups: max groups is 2"},
		{[]string{"--zipf", "1"}, "--zipf must be above 1"},
		{[]string{"--topics", "3", "--per-subscriber", "4"}, "--per-subscriber must be from 1 to --topics (3)"},
		{[]string{"--rates", "bursty"}, "--rates must be uniform or zipf"},
		{[]string{"--duration", "0s"}, "--duration must be positive"},
		{[]string{"--subscribers", "0"}, "must be at least 1"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		code, stderr := runCaptured(t, append([]string{"bench", "pubsub"}, c.args...))
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("bench pubsub %s: status %d, stderr %q; want status 2 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}
