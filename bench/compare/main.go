// Command compare measures conclave side by side with NATS on this
// machine: core NATS (one server and a 3-server cluster; fan-out, and
// subjects in the shape of conclave's pub/sub benchmark), JetStream (an
// R3 memory stream on 3 clustered servers; throughput, latency, and
// failover of its leader after SIGKILL and SIGSTOP) and a raw Go TCP
// floor. It
// runs conclave and the others alternately, round after round, and prints
// min/median/max of each figure and of the ratios computed within each
// round.
//
// It is a module of its own so that the conclave command never depends on
// NATS. Run it from this directory:
//
//	go run . --rounds 3
//
// conclave's figures come from the conclave command of the repository
// (built from ../..), run as "conclave bench group", "conclave bench
// failover", "conclave bench directory" and "conclave bench pubsub".
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/conclave/conclave/peer"
)

// options are the harness's settings.
type options struct {
	rounds       int
	size         int
	duration     time.Duration
	warmup       time.Duration
	inflight     int
	security     string
	group        bool // bench group's figures and their anchors
	failover     bool
	hang         bool // hang failover too, when failover
	failoverRuns int
	pubsub       bool
	ps           psShape
	conclave     string // the conclave binary; "": build it
}

// smoke makes o tiny: one round, one failover each, half a second a
// figure (on a busy machine, conclave's async latencies can exceed less),
// and a small pub/sub shape.
func (o *options) smoke() {
	o.rounds, o.duration, o.warmup, o.failoverRuns = 1, 500*time.Millisecond, 100*time.Millisecond, 1
	o.ps.topics, o.ps.groups, o.ps.subscribers, o.ps.perSubscriber = 10, 4, 4, 2
}

func main() {
	serveIfAsked()
	o := options{group: true, ps: defaultShape()}
	flag.IntVar(&o.rounds, "rounds", 3, "rounds, each running conclave and the others, in alternating order")
	flag.IntVar(&o.size, "size", 1024, "message size in bytes (at least 16)")
	flag.DurationVar(&o.duration, "duration", 2*time.Second, "measured time of each throughput and latency figure")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "traffic before measuring starts")
	flag.IntVar(&o.inflight, "inflight", 512, "async: messages a sender may have unacknowledged (NATS core: not yet received by every subscriber)")
	flag.StringVar(&o.security, "security", "none", "conclave bench group --security: none, key or tls (the NATS servers run without authentication or TLS)")
	flag.BoolVar(&o.group, "group", true, "measure group throughput and latency (bench group) against JetStream, core NATS fan-out and the TCP floor")
	flag.BoolVar(&o.failover, "failover", true, "measure failover")
	flag.BoolVar(&o.hang, "hang", true, "with --failover, measure hang failover (SIGSTOP of the leader) too")
	flag.IntVar(&o.failoverRuns, "failover-runs", 3, "failovers per system and round")
	flag.BoolVar(&o.pubsub, "pubsub", true, "measure topic pub/sub against core NATS subjects")
	flag.IntVar(&o.ps.topics, "pubsub-topics", o.ps.topics, "pub/sub: topics (NATS: subjects)")
	flag.IntVar(&o.ps.groups, "pubsub-groups", o.ps.groups, "pub/sub: the most groups conclave's directory hands out")
	flag.IntVar(&o.ps.publishers, "pubsub-publishers", o.ps.publishers, "pub/sub: publishers; topic i is published by publisher i mod N")
	flag.IntVar(&o.ps.subscribers, "pubsub-subscribers", o.ps.subscribers, "pub/sub: subscribers")
	flag.IntVar(&o.ps.perSubscriber, "pubsub-per-subscriber", o.ps.perSubscriber, "pub/sub: distinct topics each subscriber takes, drawn by zipf popularity")
	flag.Float64Var(&o.ps.zipf, "pubsub-zipf", o.ps.zipf, "pub/sub: exponent of the topics' popularity (subscriptions and publish rates), above 1")
	flag.IntVar(&o.ps.inflight, "pubsub-inflight", o.ps.inflight, "pub/sub: publishes each publisher has in progress at once")
	flag.Uint64Var(&o.ps.seed, "pubsub-seed", o.ps.seed, "pub/sub: seed of the workload")
	flag.StringVar(&o.conclave, "conclave", "", "the conclave binary to measure (default: build it from the repository)")
	smoke := flag.Bool("smoke", false, "run every figure once, tiny, to show that it runs")
	flag.Parse()
	if *smoke {
		o.smoke()
	}
	if o.rounds < 1 || o.size < 16 || o.inflight < 1 || o.failoverRuns < 1 || o.duration <= 0 || o.warmup < 0 {
		fmt.Fprintln(os.Stderr, "compare: --rounds, --inflight and --failover-runs must be at least 1, --size at least 16, --duration positive")
		os.Exit(2)
	}
	if err := o.ps.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	if _, err := run(os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

// figure is one measured quantity.
type figure struct {
	key  string
	name string
	ms   bool // a duration in milliseconds, else a rate per second
}

// Figures.
var (
	cVsyncAsync = figure{"c.vsync.async", "conclave vsync async, delivered/s at the slowest of 4 members (4 senders)", false}
	cTotalAsync = figure{"c.total.async", "conclave total async, delivered/s at the slowest of 4 members (4 senders)", false}
	cTotalSync  = figure{"c.total.sync", "conclave total sync, send → delivered p50 (1 sender)", true}
	cFailover   = figure{"c.failover", "conclave crash failover p50 (SIGKILL of the leader → all 3 survivors report the new one)", true}
	cDirectory  = figure{"c.directory", "conclave directory failover p50 (SIGKILL of the leader → next announce acknowledged)", true}
	cHang       = figure{"c.hang", "conclave hang failover p50 (SIGSTOP of the leader → all 3 survivors report the new one; heartbeat " + peer.DefaultHeartbeat.String() + ", suspect-after " + peer.DefaultSuspectAfter.String() + ": the defaults)", true}
	cHangFast   = figure{"c.hang.fast", "conclave hang failover p50 (the same, heartbeat " + fastDetector.heartbeat.String() + ", suspect-after " + fastDetector.suspectAfter.String() + ")", true}
	cPubSub     = figure{"c.pubsub", "conclave pub/sub, delivered events/s summed over the subscribers (bench pubsub)", false}
	cPubSubP50  = figure{"c.pubsub.p50", "conclave pub/sub, Publish → every member of the topic's group has the event, p50", true}
	cPubSubP99  = figure{"c.pubsub.p99", "conclave pub/sub, Publish → every member of the topic's group has the event, p99", true}
	jsDelivered = figure{"js.delivered", "JetStream R3 memory, delivered/s at the slowest of 3 consumers (4 async publishers)", false}
	jsAcked     = figure{"js.acked", "JetStream R3 memory, acknowledged publishes/s (4 async publishers)", false}
	jsSync      = figure{"js.sync", "JetStream R3 memory, sync publish → PubAck p50", true}
	jsFailover  = figure{"js.failover", "JetStream R3 failover p50 (SIGKILL of the stream leader → next PubAck)", true}
	jsHang      = figure{"js.hang", "JetStream R3 hang failover p50 (SIGSTOP of the stream leader → next PubAck; nats-server's defaults)", true}
	natsPS      = figure{"nats.pubsub", "core NATS subjects, 1 server, the same shape: delivered events/s summed over the subscribers", false}
	natsPSP50   = figure{"nats.pubsub.p50", "core NATS subjects, publish → every subscriber of the subject has the event, p50", true}
	natsPSP99   = figure{"nats.pubsub.p99", "core NATS subjects, publish → every subscriber of the subject has the event, p99", true}
	nats1       = figure{"nats1", "core NATS 1 server, 1 → 4 fan-out, delivered/s at the slowest subscriber", false}
	nats3       = figure{"nats3", "core NATS 3-server cluster, 1 → 4 fan-out, delivered/s at the slowest subscriber", false}
	tcpFloor    = figure{"tcp.mesh", "TCP floor, 4 × 3 mesh of buffered frames, delivered/s at the slowest node", false}
	tcpRTTFig   = figure{"tcp.rtt", "TCP ping-pong round trip p50", true}
	failFloor   = figure{"floor.failover", "failover floor p50 (the same crashes, of processes that only heartbeat and watch their connections close: bench failover --floor)", true}
	tcpFanFig   = figure{"tcp.fanout", "TCP 1 → 3 round trip p50 (a frame written to 3 connections, until the last echo is read)", true}
)

// comparison is a conclave figure against another system's.
type comparison struct {
	a, b figure
}

// comparisons are what the summary prints; the ratio is a / b.
var comparisons = []comparison{
	{cTotalAsync, jsDelivered},
	{cTotalAsync, jsAcked},
	{cVsyncAsync, nats1},
	{cTotalAsync, nats1},
	{cVsyncAsync, nats3},
	{cTotalAsync, nats3},
	{cTotalSync, jsSync},
	{cTotalAsync, tcpFloor},
	{cTotalSync, tcpRTTFig},
	{cTotalSync, tcpFanFig},
	{cFailover, jsFailover},
	{cFailover, failFloor},
	{cDirectory, jsFailover},
	{cHang, jsHang},
	{cHangFast, jsHang},
	{cPubSub, natsPS},
	{cPubSubP50, natsPSP50},
	{cPubSubP99, natsPSP99},
}

// fastDetector is the faster failure detection conclave's hang
// failover is measured with besides its defaults.
var fastDetector = detector{heartbeat: 20 * time.Millisecond, suspectAfter: 100 * time.Millisecond}

// round is the figures of one round by key.
type round map[string]float64

// set records a figure and prints it.
func (r round) set(w io.Writer, f figure, v float64) {
	r[f.key] = v
	fmt.Fprintf(w, "  %-100s %s\n", f.name, format(f, v))
}

func (r round) setDuration(w io.Writer, f figure, d time.Duration) {
	r.set(w, f, float64(d)/float64(time.Millisecond))
}

// format prints a figure's value with its unit.
func format(f figure, v float64) string {
	if f.ms {
		switch {
		case v >= 1000:
			return fmt.Sprintf("%.2f s", v/1000)
		case v >= 10:
			return fmt.Sprintf("%.1f ms", v)
		case v < 0.1:
			return fmt.Sprintf("%.1f µs", v*1000)
		}
		return fmt.Sprintf("%.3f ms", v)
	}
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM/s", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk/s", v/1e3)
	}
	return fmt.Sprintf("%.0f/s", v)
}

// run measures o.rounds rounds, prints each figure as it comes and then
// the summary, and returns the rounds.
func run(w io.Writer, o options) ([]round, error) {
	if o.conclave == "" {
		dir, err := os.MkdirTemp("", "compare-bin-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if o.conclave, err = buildConclave(dir); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(w, "compare: %d round(s), %d-byte messages, %v measured after %v of warm-up, at most %d in flight per sender; everything on loopback\n",
		o.rounds, o.size, o.duration, o.warmup, o.inflight)
	fmt.Fprintf(w, "load average at the start: %s\n", loadAverage())
	if o.pubsub {
		describeShape(w, o)
	}
	var rounds []round
	for i := range o.rounds {
		r := round{}
		fmt.Fprintf(w, "round %d\n", i+1)
		var blocks []func() error
		if o.group {
			blocks = append(blocks,
				func() error { return measureConclave(w, o, r) },
				func() error { return measureOthers(w, o, r) })
		}
		if o.failover {
			blocks = append(blocks,
				func() error { return measureConclaveFailover(w, o, r) },
				func() error { return measureOthersFailover(w, o, r) })
		}
		if o.pubsub {
			blocks = append(blocks,
				func() error { return measureConclavePubSub(w, o, r) },
				func() error { return measureNATSPubSub(w, o, r) })
		}
		for _, b := range alternate(blocks, i) {
			if err := b(); err != nil {
				return rounds, err
			}
		}
		rounds = append(rounds, r)
	}
	fmt.Fprintf(w, "load average at the end: %s (above 1 on 2 cores: other work shared the machine)\n", loadAverage())
	summarize(w, rounds)
	return rounds, nil
}

// loadAverage returns the 1-, 5- and 15-minute load averages of the
// machine, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// alternate returns the pairs of xs (conclave, the others) in their
// order in even rounds and swapped in odd ones: A B, B A, A B, …
func alternate[T any](xs []T, round int) []T {
	xs = slices.Clone(xs)
	if round%2 == 1 {
		for k := 0; k+1 < len(xs); k += 2 {
			xs[k], xs[k+1] = xs[k+1], xs[k]
		}
	}
	return xs
}

func measureConclave(w io.Writer, o options, r round) error {
	figs, err := conclaveGroup(o.conclave, o)
	if err != nil {
		return err
	}
	r.set(w, cVsyncAsync, figs["vsync async"].rate)
	r.set(w, cTotalAsync, figs["total async"].rate)
	r.setDuration(w, cTotalSync, figs["total sync"].p50)
	return nil
}

func measureOthers(w io.Writer, o options, r round) error {
	js, err := jetStream(o, 4, 3)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	r.set(w, jsDelivered, js.delivered)
	r.set(w, jsAcked, js.acked)
	r.setDuration(w, jsSync, js.syncP50)
	for _, c := range []struct {
		f       figure
		servers int
	}{{nats1, 1}, {nats3, 3}} {
		v, err := coreFanout(o, c.servers, 4)
		if err != nil {
			return fmt.Errorf("core nats, %d server(s): %w", c.servers, err)
		}
		r.set(w, c.f, v)
	}
	v, err := tcpMesh(o, 4)
	if err != nil {
		return fmt.Errorf("tcp mesh: %w", err)
	}
	r.set(w, tcpFloor, v)
	rtt, err := tcpRTT(o)
	if err != nil {
		return fmt.Errorf("tcp round trip: %w", err)
	}
	r.setDuration(w, tcpRTTFig, rtt)
	if rtt, err = tcpFanoutRTT(o, 3); err != nil {
		return fmt.Errorf("tcp fan-out round trip: %w", err)
	}
	r.setDuration(w, tcpFanFig, rtt)
	return nil
}

func measureConclaveFailover(w io.Writer, o options, r round) error {
	d, floor, err := conclaveFailoverFloor(o.conclave, o.failoverRuns, "crash", detector{}, true)
	if err != nil {
		return err
	}
	r.setDuration(w, cFailover, d)
	r.setDuration(w, failFloor, floor)
	if d, err = conclaveDirectory(o.conclave, o.failoverRuns); err != nil {
		return err
	}
	r.setDuration(w, cDirectory, d)
	if !o.hang {
		return nil
	}
	if d, err = conclaveFailover(o.conclave, o.failoverRuns, "hang", detector{}); err != nil {
		return err
	}
	r.setDuration(w, cHang, d)
	if d, err = conclaveFailover(o.conclave, o.failoverRuns, "hang", fastDetector); err != nil {
		return err
	}
	r.setDuration(w, cHangFast, d)
	return nil
}

func measureOthersFailover(w io.Writer, o options, r round) error {
	lat, err := jetStreamFailover(o.failoverRuns, "crash")
	if err != nil {
		return fmt.Errorf("jetstream failover: %w", err)
	}
	slices.Sort(lat)
	r.setDuration(w, jsFailover, pct(lat, 50))
	if !o.hang {
		return nil
	}
	if lat, err = jetStreamFailover(o.failoverRuns, "hang"); err != nil {
		return fmt.Errorf("jetstream hang failover: %w", err)
	}
	slices.Sort(lat)
	r.setDuration(w, jsHang, pct(lat, 50))
	return nil
}

// spread returns min, median and max of xs.
func spread(xs []float64) (lo, mid, hi float64) {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[0], xs[len(xs)/2], xs[len(xs)-1]
}

// ratio formats r, as 1/n when it is small.
func ratio(r float64) string {
	if r > 0 && r < 0.01 {
		return fmt.Sprintf("1/%.0f", 1/r)
	}
	return fmt.Sprintf("%.3g", r)
}

// summarize prints each comparison: the two figures' min/median/max over
// the rounds, and min/median/max of the ratios taken within each round.
func summarize(w io.Writer, rounds []round) {
	fmt.Fprintf(w, "summary over %d round(s): min / median / max; the ratio is conclave's figure over the other's, taken within each round\n", len(rounds))
	for _, c := range comparisons {
		var as, bs, ratios []float64
		for _, r := range rounds {
			a, oka := r[c.a.key]
			b, okb := r[c.b.key]
			if !oka || !okb {
				continue
			}
			as, bs = append(as, a), append(bs, b)
			if b != 0 {
				ratios = append(ratios, a/b)
			}
		}
		if len(as) == 0 || len(ratios) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s\n  vs %s\n", c.a.name, c.b.name)
		three := func(f figure, xs []float64) string {
			lo, mid, hi := spread(xs)
			return format(f, lo) + " / " + format(f, mid) + " / " + format(f, hi)
		}
		lo, mid, hi := spread(ratios)
		fmt.Fprintf(w, "  conclave %s   other %s   ratio %s / %s / %s\n", three(c.a, as), three(c.b, bs), ratio(lo), ratio(mid), ratio(hi))
	}
}
