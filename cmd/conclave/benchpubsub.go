package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/conclave/conclave/dirclient"
	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/directory/boltstore"
	"github.com/conclave/conclave/dirnode"
	"github.com/conclave/conclave/group"
	"github.com/conclave/conclave/host"
	"github.com/conclave/conclave/layers"
	"github.com/conclave/conclave/pubsub"
	"github.com/conclave/conclave/stack"
	"github.com/conclave/conclave/transport"
)

// pubsubBench is the settings of "conclave bench pubsub".
type pubsubBench struct {
	topics, groups           int
	publishers, subscribers  int
	perSubscriber            int // topics each subscriber takes
	zipf                     float64
	size, inflight           int
	duration, warmup, settle time.Duration
	seed                     uint64
	rates                    string // uniform or zipf
}

// subscribing is how many subscribers subscribe at once: each joins the
// groups of its topics, and a crowd joining a group at once makes its
// members churn through views.
const subscribing = 4

// benchPolicy is the directory's placement policy: its default.
var benchPolicy directory.Policy = directory.FreeThenLeastWaste{}

// policyName is the name of benchPolicy's type, without its package.
var policyName = strings.TrimPrefix(fmt.Sprintf("%T", benchPolicy), "directory.")

// benchDirTick is the directory's Raft tick: elections time out after 10
// to 20 ticks. The replicas share this process with every group member,
// whose heartbeats keep its goroutines busy; at the default tick, a
// replica that waits its turn for 200 ms runs the ticks it missed before
// it reads the messages waiting for it, and calls an election.
const benchDirTick = 100 * time.Millisecond

// optimumTopics is the most topics for which the brute-force optimum is
// computed (directory.BestAssignment).
const optimumTopics = 10

func runBenchPubSub(args []string) error {
	b, err := parsePubSubBench(args)
	if err != nil {
		return err
	}
	_, err = b.run(os.Stdout)
	return err
}

func parsePubSubBench(args []string) (pubsubBench, error) {
	fs := newFlags("bench pubsub", "bench pubsub [--topics 1000] [--groups 16] [--subscribers 50] [--publishers 4] [--zipf 1.1] [--size 1024] [--duration 3s] [--seed 1]")
	var b pubsubBench
	fs.IntVar(&b.topics, "topics", 1000, "topics, each announced by one publisher, half of them vsync and half total")
	fs.IntVar(&b.groups, "groups", defaultMaxGroups, "the most groups the directory hands out (above the number of shipped QoS)")
	fs.IntVar(&b.publishers, "publishers", 4, "publishers: topic i is announced by publisher i mod N")
	fs.IntVar(&b.subscribers, "subscribers", 50, "subscribers")
	fs.IntVar(&b.perSubscriber, "per-subscriber", 3, "distinct topics each subscriber takes, drawn by zipf popularity")
	fs.Float64Var(&b.zipf, "zipf", 1.1, "exponent s of the topics' popularity, above 1: the topic of rank k (0 the most popular) has weight (k+1)^-s")
	fs.StringVar(&b.rates, "rates", "zipf", "publish rate per topic: zipf (each publisher draws its next topic with the topic's popularity as weight) or uniform (each publisher publishes to its topics in turn)")
	fs.IntVar(&b.size, "size", 1024, "event size in bytes")
	fs.IntVar(&b.inflight, "inflight", 1, "Publish calls each publisher has in progress at once")
	fs.DurationVar(&b.duration, "duration", 3*time.Second, "measured time")
	fs.DurationVar(&b.warmup, "warmup", 500*time.Millisecond, "publishing before measuring starts")
	fs.DurationVar(&b.settle, "settle", 10*time.Second, "the longest to wait, once publishing stops, for every event to be counted")
	fs.Uint64Var(&b.seed, "seed", 1, "seed of the workload (the topics' QoS, popularity and subscribers)")
	if err := parse(fs, args); err != nil {
		return b, err
	}
	if fs.NArg() > 0 {
		return b, usagef("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case b.topics < 1 || b.publishers < 1 || b.subscribers < 1:
		return b, usagef("--topics, --publishers and --subscribers must be at least 1")
	case b.perSubscriber < 1 || b.perSubscriber > b.topics:
		return b, usagef("--per-subscriber must be from 1 to --topics (%d), not %d", b.topics, b.perSubscriber)
	case !(b.zipf > 1):
		return b, usagef("--zipf must be above 1, not %v", b.zipf)
	case b.size < 0 || b.size > group.DefaultMaxMessage-1024:
		return b, usagef("--size must be from 0 to %d bytes, not %d", group.DefaultMaxMessage-1024, b.size)
	case b.rates != "uniform" && b.rates != "zipf":
		return b, usagef("--rates must be uniform or zipf, not %q", b.rates)
	case b.inflight < 1:
		return b, usagef("--inflight must be at least 1")
	case b.warmup < 0:
		return b, usagef("--warmup must not be negative, not %v", b.warmup)
	}
	for _, err := range []error{positive("duration", b.duration), positive("settle", b.settle)} {
		if err != nil {
			return b, err
		}
	}
	if err := (directory.StateConfig{MaxGroups: b.groups}).Validate(); err != nil {
		return b, usagef("--groups: %v", err)
	}
	return b, nil
}

// psWorkload is who publishes and subscribes to what.
type psWorkload struct {
	topics []string           // in announce order
	qos    map[string]string  // by topic: vsync or total
	pub    []int              // by topic index: its publisher
	weight map[string]float64 // by topic: its popularity, (rank+1)^-s
	subs   [][]string         // by subscriber: its topics
}

// workload draws the topics' QoS (half each, shuffled), their popularity
// (a shuffled zipf rank) and each subscriber's topics.
func (b pubsubBench) workload() psWorkload {
	rng := rand.New(rand.NewPCG(b.seed, 0x70756273756221))
	w := psWorkload{qos: map[string]string{}, weight: map[string]float64{}}
	for i, k := range rng.Perm(b.topics) {
		name := "t" + strconv.Itoa(i)
		w.topics = append(w.topics, name)
		w.qos[name] = "vsync"
		if k < b.topics/2 {
			w.qos[name] = "total"
		}
		w.pub = append(w.pub, i%b.publishers)
	}
	byRank := rng.Perm(b.topics)
	for r, i := range byRank {
		w.weight[w.topics[i]] = math.Pow(float64(r+1), -b.zipf)
	}
	z := rand.NewZipf(rng, b.zipf, 1, uint64(b.topics-1))
	for range b.subscribers {
		chosen := map[int]bool{}
		var mine []string
		for len(mine) < b.perSubscriber {
			i := byRank[z.Uint64()]
			if !chosen[i] {
				chosen[i] = true
				mine = append(mine, w.topics[i])
			}
		}
		slices.Sort(mine)
		w.subs = append(w.subs, mine)
	}
	return w
}

// picker returns the function that gives the next topic to publish to of
// publishing goroutine k, whose publisher publishes ps. With uniform
// rates, the goroutines of a publisher go round its topics in turn;
// with zipf rates each draws them with their weights as probabilities.
func (b pubsubBench) picker(ps []*pubsub.Publisher, weight map[string]float64, k int) func() *pubsub.Publisher {
	if b.rates == "uniform" {
		n := k % b.inflight
		return func() *pubsub.Publisher {
			p := ps[n%len(ps)]
			n += b.inflight
			return p
		}
	}
	cum := make([]float64, len(ps))
	total := 0.0
	for i, p := range ps {
		total += weight[p.Topic()]
		cum[i] = total
	}
	rng := rand.New(rand.NewPCG(b.seed, uint64(k)))
	return func() *pubsub.Publisher {
		i, _ := slices.BinarySearch(cum, rng.Float64()*total)
		return ps[min(i, len(ps)-1)]
	}
}

func pubName(i int) string { return "pub-" + strconv.Itoa(i) }
func subName(i int) string { return "sub-" + strconv.Itoa(i) }

// wasteRow is one row of waste ratios: measured, then predicted by
// directory.Waste for each placement (NaN where not computed).
type wasteRow struct {
	measured float64
	predict  []float64 // by psPlacements
}

// psPlacements names the predicted columns, in order.
var psPlacements = []string{"directory", "one/QoS", "hash", "optimum"}

// pubsubResult is what a run measured.
type pubsubResult struct {
	delivered, filtered, published float64 // per second, over the window
	p50, p99, max                  time.Duration
	subscribers, members           wasteRow
	// settled says every member counted every event of its groups.
	settled bool
	// viewsChanged counts the groups whose view changed while events
	// were published.
	viewsChanged int
}

// run runs the benchmark and prints its figures to out.
func (b pubsubBench) run(out io.Writer) (res pubsubResult, err error) {
	w := b.workload()
	nTotal := 0
	for _, q := range w.qos {
		if q == "total" {
			nTotal++
		}
	}
	fmt.Fprintf(out, "pubsub benchmark: %d topics (%d vsync, %d total), at most %d groups, %d publishers (topic i by publisher i mod %d), %d subscribers each taking %d topics of zipf popularity (exponent %v), seed %d\n",
		b.topics, b.topics-nTotal, nTotal, b.groups, b.publishers, b.publishers, b.subscribers, b.perSubscriber, b.zipf, b.seed)
	fmt.Fprintf(out, "in this process over TCP on loopback: 3 directory replicas (dirnode, bbolt stores syncing every write, Raft tick %v) and every publisher and subscriber a pubsub.Client with its own listener\n", benchDirTick)
	rates := "each publisher publishes to its topics in turn (one rate for all topics of a publisher)"
	if b.rates == "zipf" {
		rates = "each publisher draws its next topic with the topic's popularity as weight (rate ∝ (rank+1)^-s, as the subscriptions)"
	}
	fmt.Fprintf(out, "traffic: %d-byte events; %s, %d Publish call(s) at once per publisher; %v measured after %v of warm-up\n",
		b.size, rates, b.inflight, b.duration, b.warmup)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "conclave-bench-pubsub-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	key := transport.NewKey()
	stop, addrs, err := startBenchDirectory(dir, key, b.groups)
	if err != nil {
		return res, err
	}
	defer stop()

	var clients []*pubsub.Client // publishers, then subscribers
	defer func() {
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Go(func() { c.Close() })
		}
		wg.Wait()
	}()
	connect := func(name string) (*pubsub.Client, error) {
		c, err := pubsub.Connect(ctx, pubsub.Config{Directory: addrs, Key: key, Name: name})
		if err == nil {
			clients = append(clients, c)
		}
		return c, err
	}

	// The first request waits for the first election.
	dc, err := dirclient.New(dirclient.Config{Replicas: addrs, Key: key})
	if err != nil {
		return res, err
	}
	defer dc.Close()
	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = dc.List(lctx)
	lcancel()
	if err != nil {
		return res, err
	}

	// Announces, one at a time in topic order, so that the directory
	// places the topics the same way at every run of a seed.
	t0 := time.Now()
	pubs := make([][]*pubsub.Publisher, b.publishers)
	pubClients := make([]*pubsub.Client, b.publishers)
	for i := range b.publishers {
		if pubClients[i], err = connect(pubName(i)); err != nil {
			return res, err
		}
	}
	for i, t := range w.topics {
		actx, acancel := context.WithTimeout(ctx, 30*time.Second)
		p, err := pubClients[w.pub[i]].Announce(actx, t, w.qos[t])
		acancel()
		if err != nil {
			return res, err
		}
		pubs[w.pub[i]] = append(pubs[w.pub[i]], p)
	}
	announced := time.Since(t0)

	// Subscriptions: a few subscribers at once, each one topic at a time.
	// Each subscription is read by a goroutine of its own, as fast as
	// it delivers.
	t0 = time.Now()
	subClients := make([]*pubsub.Client, b.subscribers)
	for i := range b.subscribers {
		if subClients[i], err = connect(subName(i)); err != nil {
			return res, err
		}
	}
	var (
		subsMu sync.Mutex
		subs   []*pubsub.Subscription
		errs   = make([]error, b.subscribers)
		wg     sync.WaitGroup
	)
	gate := make(chan struct{}, subscribing)
	for i, c := range subClients {
		wg.Go(func() {
			gate <- struct{}{}
			defer func() { <-gate }()
			for _, t := range w.subs[i] {
				sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
				s, err := c.Subscribe(sctx, t)
				scancel()
				if err != nil {
					errs[i] = fmt.Errorf("%s: %w", subName(i), err)
					return
				}
				go func() {
					for range s.Events() {
					}
				}()
				subsMu.Lock()
				subs = append(subs, s)
				subsMu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := firstErrors(errs, 3); err != nil {
		return res, err
	}
	subscribed := time.Since(t0)

	// The placement, read back from the directory.
	lctx, lcancel = context.WithTimeout(ctx, 30*time.Second)
	listing, err := dc.List(lctx)
	lcancel()
	if err != nil {
		return res, err
	}
	assign, interest, _ := directory.Placement(listing.Topics)
	if len(assign) != b.topics {
		return res, fmt.Errorf("the directory lists %d topics in groups, not %d", len(assign), b.topics)
	}
	members := map[int]map[string]bool{} // by group
	for t, g := range assign {
		if members[g] == nil {
			members[g] = map[string]bool{}
		}
		for _, c := range interest[t] {
			members[g][c] = true
		}
	}

	// Every publisher waits, in each of its groups, for every member.
	t0 = time.Now()
	reps := make([][]*pubsub.Publisher, b.publishers) // one per group
	for i, ps := range pubs {
		seen := map[string]bool{}
		for _, p := range ps {
			if !seen[p.Group()] {
				seen[p.Group()] = true
				reps[i] = append(reps[i], p)
			}
		}
	}
	errs = make([]error, b.publishers)
	for i := range reps {
		wg.Go(func() {
			for _, p := range reps[i] {
				g, _ := directory.GroupIndex(p.Group())
				wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
				err := p.WaitMembers(wctx, len(members[g]))
				wcancel()
				if err != nil {
					errs[i] = fmt.Errorf("%s: group %s has %d of its %d members: %w", pubName(i), p.Group(), len(p.View().Members), len(members[g]), err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := firstErrors(errs, 3); err != nil {
		return res, err
	}
	views := map[*pubsub.Publisher]stack.ViewID{}
	for _, ps := range reps {
		for _, p := range ps {
			views[p] = p.View().ID
		}
	}
	formed := time.Since(t0)
	sizes := make([]int, 0, len(members))
	inGroups := 0
	for _, m := range members {
		sizes = append(sizes, len(m))
		inGroups += len(m)
	}
	slices.Sort(sizes)
	fmt.Fprintf(out, "setup: %d announces, one at a time, %.2f s; %d subscriptions, %d subscribers at once, %.2f s; %d groups used, of %d to %d members (%d in all, sending %.0f heartbeats/s between them), formed %.2f s later\n",
		b.topics, announced.Seconds(), b.subscribers*b.perSubscriber, subscribing, subscribed.Seconds(), len(sizes), sizes[0], sizes[len(sizes)-1], inGroups,
		heartbeatRate(listing.Groups, members), formed.Seconds())

	// What the groups cost with no events: their failure detectors'
	// heartbeats.
	idle := min(time.Second, b.duration)
	c0 := cpuTime()
	time.Sleep(idle)
	idleCores := (cpuTime() - c0).Seconds() / idle.Seconds()

	// Publishing.
	type tally struct {
		lat   []time.Duration // of calls within the window
		count map[string]int  // events published, by topic
		err   error
	}
	tallies := make([]tally, b.publishers*b.inflight)
	payload := make([]byte, b.size)
	start := time.Now().Add(b.warmup)
	end := start.Add(b.duration)
	var startStats, endStats [][]map[string]pubsub.Stats
	snap := func() []map[string]pubsub.Stats {
		out := make([]map[string]pubsub.Stats, len(clients))
		for i, c := range clients {
			out[i] = c.Stats()
		}
		return out
	}
	var cpu0, cpu1 time.Duration
	var snaps sync.WaitGroup
	snaps.Go(func() {
		time.Sleep(time.Until(start))
		startStats = append(startStats, snap())
		cpu0 = cpuTime()
		time.Sleep(time.Until(end))
		endStats = append(endStats, snap())
		cpu1 = cpuTime()
	})
	var failed atomic.Bool
	for i, ps := range pubs {
		for j := range b.inflight {
			tl := &tallies[i*b.inflight+j]
			tl.count = map[string]int{}
			if len(ps) == 0 {
				continue
			}
			next := b.picker(ps, w.weight, i*b.inflight+j)
			wg.Go(func() {
				for time.Now().Before(end) && !failed.Load() {
					p := next()
					pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
					t0 := time.Now()
					err := p.Publish(pctx, payload)
					t1 := time.Now()
					pcancel()
					if err != nil {
						tl.err = fmt.Errorf("%s publishing to %s: %w", pubName(i), p.Topic(), err)
						failed.Store(true)
						return
					}
					tl.count[p.Topic()]++
					if !t0.Before(start) && !t1.After(end) {
						tl.lat = append(tl.lat, t1.Sub(t0))
					}
				}
			})
		}
	}
	wg.Wait()
	snaps.Wait()
	changed := map[string]bool{} // groups whose view changed at a publisher
	for p, id := range views {
		if p.View().ID != id {
			changed[p.Group()] = true
		}
	}
	res.viewsChanged = len(changed)
	var lat []time.Duration
	published := map[string]int{}
	for _, tl := range tallies {
		if tl.err != nil {
			return res, tl.err
		}
		lat = append(lat, tl.lat...)
		for t, n := range tl.count {
			published[t] += n
		}
	}
	if len(lat) == 0 {
		return res, errors.New("no Publish call both started and returned within the measured time")
	}
	slices.Sort(lat)
	res.p50, res.p99, res.max = pct(lat, 50), pct(lat, 99), lat[len(lat)-1]
	res.published = float64(len(lat)) / b.duration.Seconds()
	subOf := func(stats []map[string]pubsub.Stats) (d, f uint64) {
		for _, st := range stats[b.publishers:] {
			for _, s := range st {
				d, f = d+s.Delivered, f+s.Filtered
			}
		}
		return d, f
	}
	d0, f0 := subOf(startStats[0])
	d1, f1 := subOf(endStats[0])
	res.delivered = float64(d1-d0) / b.duration.Seconds()
	res.filtered = float64(f1-f0) / b.duration.Seconds()

	// Every event published reaches every member of its group: wait
	// until each client has counted them all.
	want := make([]uint64, len(clients))
	names := make([]string, len(clients))
	for i, c := range clients {
		names[i] = c.Name()
	}
	for t, g := range assign {
		for i, name := range names {
			if members[g][name] {
				want[i] += uint64(published[t])
			}
		}
	}
	counted := func() (all bool, stats []map[string]pubsub.Stats) {
		stats = snap()
		for i, st := range stats {
			var n uint64
			for _, s := range st {
				n += s.Delivered + s.Filtered
			}
			if n != want[i] {
				return false, stats
			}
		}
		return true, stats
	}
	settled, final := counted()
	for deadline := time.Now().Add(b.settle); !settled && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		settled, final = counted()
	}
	res.settled = settled
	for _, s := range subs {
		if err := s.Err(); err != nil {
			return res, fmt.Errorf("subscription to %s: %w", s.Topic(), err)
		}
	}

	// Measured waste: at the subscribers, and at every member, where a
	// publisher's own events count as delivered, as in directory.Waste.
	var sd, sf, md, mf uint64
	for i, st := range final {
		own := map[string]bool{}
		if i < b.publishers {
			for _, p := range pubs[i] {
				own[p.Topic()] = true
			}
		}
		for t, s := range st {
			if i >= b.publishers {
				sd, sf = sd+s.Delivered, sf+s.Filtered
			}
			md += s.Delivered
			if own[t] {
				md += s.Filtered
			} else {
				mf += s.Filtered
			}
		}
	}
	res.subscribers.measured = ratio(float64(sf), float64(sd))
	res.members.measured = ratio(float64(mf), float64(md))

	// Predicted waste of each placement, at the rates published.
	rate := map[string]float64{}
	for _, t := range w.topics {
		rate[t] = float64(published[t])
	}
	subInterest := map[string][]string{}
	for _, t := range w.topics {
		subInterest[t] = nil
	}
	for _, t := range listing.Topics {
		subInterest[t.Topic] = t.Subscribers
	}
	one := directory.OneGroupPerQoS(w.topics, w.qos)
	hash, _ := directory.HashAssignment(w.topics, w.qos, b.groups)
	predict := func(in map[string][]string) []float64 {
		var row []float64
		for _, a := range []map[string]int{assign, one, hash} {
			row = append(row, ratio(directory.Waste(a, in, rate)))
		}
		if b.topics > optimumTopics {
			return append(row, math.NaN())
		}
		opt, _, ok := directory.BestAssignment(in, w.qos, rate, b.groups)
		if !ok {
			return append(row, math.NaN())
		}
		return append(row, ratio(directory.Waste(opt, in, rate)))
	}
	res.subscribers.predict = predict(subInterest)
	res.members.predict = predict(interest)

	fmt.Fprintln(out, "delivered, filtered: events handed to, and dropped by, the subscribers, summed over them; publish: from the call until every member has the event")
	fmt.Fprintf(out, "%12s %12s %12s %12s %12s %12s\n", "delivered/s", "filtered/s", "published/s", "publish p50", "p99", "max")
	fmt.Fprintf(out, "%12.0f %12.0f %12.0f %9.3f ms %9.3f ms %9.3f ms\n",
		res.delivered, res.filtered, res.published, ms(res.p50), ms(res.p99), ms(res.max))
	fmt.Fprintf(out, "this process used %.2f of the %d cores (user and system time) over the measured time, and %.2f over %v before publishing, with no events\n",
		(cpu1-cpu0).Seconds()/b.duration.Seconds(), runtime.NumCPU(), idleCores, idle)
	total := 0
	for _, n := range published {
		total += n
	}
	note := "every event counted"
	if !settled {
		note = fmt.Sprintf("NOT every event was counted within %v", b.settle)
	}
	if res.viewsChanged > 0 {
		note += fmt.Sprintf("; the view of %d groups changed while publishing, so some members missed events", res.viewsChanged)
	}
	fmt.Fprintf(out, "waste ratio, filtered / (delivered + filtered), over the whole run (%d events published, %s):\n", total, note)
	fmt.Fprintln(out, "  measured: from the clients' pubsub Stats; at every member, a publisher's own events count as delivered")
	fmt.Fprintln(out, "  predicted by directory.Waste at each topic's rate as published, for:")
	fmt.Fprintf(out, "  directory: its placement (%s), read back with List; one/QoS: every topic of a QoS in one group;\n", policyName)
	fmt.Fprintf(out, "  hash: FNV-1a of the topic's name among the groups of its QoS; optimum: directory.BestAssignment (up to %d topics)\n", optimumTopics)
	fmt.Fprintf(out, "%-20s %10s", "", "measured")
	for _, p := range psPlacements {
		fmt.Fprintf(out, " %10s", p)
	}
	fmt.Fprintln(out)
	for _, r := range []struct {
		name string
		row  wasteRow
	}{{"at the subscribers", res.subscribers}, {"at every member", res.members}} {
		fmt.Fprintf(out, "%-20s %10.4f", r.name, r.row.measured)
		for _, v := range r.row.predict {
			if math.IsNaN(v) {
				fmt.Fprintf(out, " %10s", "-")
			} else {
				fmt.Fprintf(out, " %10.4f", v)
			}
		}
		fmt.Fprintln(out)
	}
	return res, nil
}

// heartbeatRate returns the heartbeats per second that the members of
// the groups send each other: each member sends one to every other at
// the interval of its QoS's failure detector.
func heartbeatRate(groups []directory.GroupInfo, members map[int]map[string]bool) float64 {
	rate := 0.0
	for _, g := range groups {
		i, ok := directory.GroupIndex(g.Name)
		d, err := layers.Load(g.QoS)
		if !ok || err != nil {
			continue
		}
		for _, l := range d.Layers {
			if hb, ok := l.Params["heartbeat"].(time.Duration); ok && l.Kind == "detect" && hb > 0 {
				m := float64(len(members[i]))
				rate += m * (m - 1) / hb.Seconds()
			}
		}
	}
	return rate
}

// firstErrors joins the first n errors of errs that are not nil, and
// says how many more there are.
func firstErrors(errs []error, n int) error {
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	if len(out) > n {
		out = append(out[:n], fmt.Errorf("and %d more", len(out)-n))
	}
	return errors.Join(out...)
}

// cpuTime returns the user and system time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ratio returns filtered / (delivered + filtered), 0 if both are 0.
func ratio(filtered, delivered float64) float64 {
	if filtered+delivered == 0 {
		return 0
	}
	return filtered / (filtered + delivered)
}

// startBenchDirectory starts three directory replicas in this process, on
// loopback, with bbolt stores under dir. It returns a function that stops
// them, and their addresses.
func startBenchDirectory(dir string, key transport.Key, groups int) (stop func(), addrs []string, err error) {
	var (
		hosts   []*host.Host
		stores  []*boltstore.Store
		servers []*dirnode.Server
	)
	stop = func() {
		for _, s := range servers {
			s.Close()
		}
		for _, h := range hosts {
			h.Close()
		}
		for _, s := range stores {
			s.Close()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	for range 3 {
		h, err := host.New(host.Config{Listen: "127.0.0.1:0", Key: key})
		if err != nil {
			return nil, nil, err
		}
		hosts = append(hosts, h)
		addrs = append(addrs, h.Addr())
	}
	for i, h := range hosts {
		st, err := directory.NewState(directory.StateConfig{MaxGroups: groups, Policy: benchPolicy})
		if err != nil {
			return nil, nil, err
		}
		s, err := boltstore.Open(filepath.Join(dir, strconv.Itoa(i)+".db"), nil)
		if err != nil {
			return nil, nil, err
		}
		stores = append(stores, s)
		srv, err := dirnode.Start(dirnode.Config{ID: i, Peers: addrs, Store: s, App: st, Host: h, Tick: benchDirTick})
		if err != nil {
			return nil, nil, fmt.Errorf("replica %d: %w", i, err)
		}
		servers = append(servers, srv)
	}
	return stop, addrs, nil
}
