package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// psShape is the shape of the pub/sub comparison: the flags of "conclave
// bench pubsub" that the NATS side reproduces.
type psShape struct {
	topics, groups          int
	publishers, subscribers int
	perSubscriber           int
	zipf                    float64
	inflight                int
	seed                    uint64
}

// defaultShape is a shape that runs in well under a minute a round on 2
// cores: 100 topics, 4 publishers, 20 subscribers of 3 topics each.
func defaultShape() psShape {
	return psShape{topics: 100, groups: 16, publishers: 4, subscribers: 20, perSubscriber: 3, zipf: 1.1, inflight: 1, seed: 1}
}

func (s psShape) validate() error {
	switch {
	case s.topics < 1 || s.publishers < 1 || s.subscribers < 1 || s.inflight < 1:
		return errors.New("--pubsub-topics, --pubsub-publishers, --pubsub-subscribers and --pubsub-inflight must be at least 1")
	case s.perSubscriber < 1 || s.perSubscriber > s.topics:
		return fmt.Errorf("--pubsub-per-subscriber must be from 1 to --pubsub-topics (%d)", s.topics)
	case !(s.zipf > 1):
		return errors.New("--pubsub-zipf must be above 1")
	}
	return nil
}

// psWorkload is who publishes and subscribes to what: the draw of
// "conclave bench pubsub" (its workload and picker), redone here with
// the same algorithm and seed so that both sides get the same topics,
// subscriptions and publish rates.
type psWorkload struct {
	topics []string           // in announce order
	pub    []int              // by topic index: its publisher
	weight map[string]float64 // by topic: its popularity, (rank+1)^-s
	subs   [][]string         // by subscriber: its topics
}

// workload draws the topics' popularity (a shuffled zipf rank) and each
// subscriber's topics. The first permutation is conclave's draw of each
// topic's QoS, which NATS does not have; it is drawn to keep the
// sequence.
func (s psShape) workload() psWorkload {
	rng := rand.New(rand.NewPCG(s.seed, 0x70756273756221))
	w := psWorkload{weight: map[string]float64{}}
	for i := range rng.Perm(s.topics) {
		w.topics = append(w.topics, "t"+strconv.Itoa(i))
		w.pub = append(w.pub, i%s.publishers)
	}
	byRank := rng.Perm(s.topics)
	for r, i := range byRank {
		w.weight[w.topics[i]] = math.Pow(float64(r+1), -s.zipf)
	}
	z := rand.NewZipf(rng, s.zipf, 1, uint64(s.topics-1))
	for range s.subscribers {
		chosen := map[int]bool{}
		var mine []string
		for len(mine) < s.perSubscriber {
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

// picker returns the function that gives the next topic of publishing
// goroutine k, whose publisher publishes topics: each draws them with
// their weights as probabilities, as "conclave bench pubsub --rates
// zipf" does.
func (s psShape) picker(topics []string, weight map[string]float64, k int) func() string {
	cum := make([]float64, len(topics))
	total := 0.0
	for i, t := range topics {
		total += weight[t]
		cum[i] = total
	}
	rng := rand.New(rand.NewPCG(s.seed, uint64(k)))
	return func() string {
		i, _ := slices.BinarySearch(cum, rng.Float64()*total)
		return topics[min(i, len(topics)-1)]
	}
}

// psResult is what a pub/sub run measured.
type psResult struct {
	delivered, published float64 // per second: summed over the subscribers, and publish calls
	filtered             float64 // per second, summed over the subscribers (conclave only)
	p50, p99             time.Duration
	note                 string // what the run says of itself, if anything
}

// psLineRe matches the result line of "conclave bench pubsub":
// delivered/s, filtered/s, published/s, then p50, p99 and max in ms.
var psLineRe = regexp.MustCompile(`(?m)^\s*([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+) ms\s+([0-9.]+) ms\s+([0-9.]+) ms\s*$`)

// psNoteRe matches what "conclave bench pubsub" says of its count:
// "every event counted", or not, and whether views changed.
var psNoteRe = regexp.MustCompile(`(?m)\(\d+ events published, (.*)\):$`)

// parsePubSub reads the result line of "conclave bench pubsub".
func parsePubSub(out string) (psResult, error) {
	var r psResult
	m := psLineRe.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("conclave bench pubsub printed no result line:\n%s", out)
	}
	var v [6]float64
	for i := range v {
		var err error
		if v[i], err = strconv.ParseFloat(m[i+1], 64); err != nil {
			return r, err
		}
	}
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	r.delivered, r.filtered, r.published, r.p50, r.p99 = v[0], v[1], v[2], ms(v[3]), ms(v[4])
	if m := psNoteRe.FindStringSubmatch(out); m != nil && m[1] != "every event counted" {
		r.note = m[1]
	}
	return r, nil
}

// conclavePubSub runs "conclave bench pubsub" with the shape of o.
func conclavePubSub(bin string, o options) (psResult, error) {
	s := o.ps
	out, err := runConclave(bin, "bench", "pubsub", "--topics", strconv.Itoa(s.topics), "--groups", strconv.Itoa(s.groups),
		"--publishers", strconv.Itoa(s.publishers), "--subscribers", strconv.Itoa(s.subscribers),
		"--per-subscriber", strconv.Itoa(s.perSubscriber), "--zipf", strconv.FormatFloat(s.zipf, 'g', -1, 64),
		"--rates", "zipf", "--size", strconv.Itoa(o.size), "--inflight", strconv.Itoa(s.inflight),
		"--duration", o.duration.String(), "--warmup", o.warmup.String(), "--seed", strconv.FormatUint(s.seed, 10))
	if err != nil {
		return psResult{}, err
	}
	return parsePubSub(out)
}

// psSlot is a publishing goroutine's event in flight: the subscribers
// yet to receive it, and where the last one says so.
type psSlot struct {
	remaining atomic.Int64
	done      chan struct{}
}

// natsPubSub runs the shape of o on one core NATS server: each topic is
// a subject; each subscriber has a connection of its own and subscribes
// to its topics; each publisher has a connection of its own and
// s.inflight goroutines, each publishing one event at a time to a topic
// drawn as conclave's publishers draw them, and waiting until every
// subscriber of the subject has it (for a subject nobody subscribes to,
// until the server has it: a flush).
func natsPubSub(o options) (psResult, error) {
	var r psResult
	s := o.ps
	w := s.workload()
	e, err := startEmbedded(1, false)
	if err != nil {
		return r, err
	}
	defer e.Close()

	nGoroutines := s.publishers * s.inflight
	slots := make([]psSlot, nGoroutines)
	for i := range slots {
		slots[i].done = make(chan struct{}, 1)
	}
	subscribers := map[string]int{} // by topic
	counts := make([]*counter, s.subscribers)
	for i, topics := range w.subs {
		nc, err := e.connect(0)
		if err != nil {
			return r, err
		}
		defer nc.Close()
		c := newCounter()
		counts[i] = c
		handle := func(m *nats.Msg) {
			c.add()
			if len(m.Data) < 4 {
				return
			}
			g := binary.BigEndian.Uint32(m.Data)
			if int(g) < len(slots) && slots[g].remaining.Add(-1) == 0 {
				slots[g].done <- struct{}{}
			}
		}
		for _, t := range topics {
			sub, err := nc.Subscribe(t, handle)
			if err != nil {
				return r, err
			}
			if err := sub.SetPendingLimits(-1, -1); err != nil {
				return r, err
			}
			subscribers[t]++
		}
		if err := nc.Flush(); err != nil {
			return r, err
		}
	}

	mine := make([][]string, s.publishers)
	for i, t := range w.topics {
		mine[w.pub[i]] = append(mine[w.pub[i]], t)
	}
	type tally struct {
		lat []time.Duration
		err error
	}
	tallies := make([]tally, nGoroutines)
	win := newWindow(o)
	startAll(win, counts...)
	var failed atomic.Bool
	var wg sync.WaitGroup
	for i := range s.publishers {
		if len(mine[i]) == 0 {
			continue
		}
		nc, err := e.connect(0)
		if err != nil {
			return r, err
		}
		defer nc.Close()
		for j := range s.inflight {
			g := i*s.inflight + j
			next := s.picker(mine[i], w.weight, g)
			tl, slot := &tallies[g], &slots[g]
			wg.Go(func() {
				payload := make([]byte, max(o.size, 20))
				binary.BigEndian.PutUint32(payload, uint32(g))
				timeout := time.NewTimer(time.Hour)
				defer timeout.Stop()
				for seq := uint64(1); time.Now().Before(win.end) && !failed.Load(); seq++ {
					t := next()
					n := subscribers[t]
					stamp(payload[4:], seq)
					slot.remaining.Store(int64(n))
					t0 := time.Now()
					err := nc.Publish(t, payload)
					if err == nil && n == 0 {
						err = nc.Flush()
					} else if err == nil {
						timeout.Reset(10 * time.Second)
						select {
						case <-slot.done:
						case <-timeout.C:
							err = fmt.Errorf("an event to %s did not reach its %d subscribers in 10 s", t, n)
						}
					}
					t1 := time.Now()
					if err != nil {
						tl.err = err
						failed.Store(true)
						return
					}
					if !t0.Before(win.start) && !t1.After(win.end) {
						tl.lat = append(tl.lat, t1.Sub(t0))
					}
				}
			})
		}
	}
	wg.Wait()
	var lat []time.Duration
	for _, tl := range tallies {
		if tl.err != nil {
			return r, tl.err
		}
		lat = append(lat, tl.lat...)
	}
	if len(lat) == 0 {
		return r, errors.New("no publish both started and completed within the measured time")
	}
	slices.Sort(lat)
	r.p50, r.p99 = pct(lat, 50), pct(lat, 99)
	r.published = float64(len(lat)) / o.duration.Seconds()
	var n int64
	for _, c := range counts {
		n += c.n.Load()
	}
	r.delivered = float64(n) / o.duration.Seconds()
	return r, nil
}

// describeShape prints the shape of the pub/sub comparison and how the
// two sides differ.
func describeShape(w io.Writer, o options) {
	s := o.ps
	fmt.Fprintf(w, "pub/sub shape: %d topics, %d publishers (topic i by publisher i mod %d, %d publish(es) in progress each), %d subscribers of %d topics each, zipf %v popularity of subscriptions and publish rates, %d-byte events, seed %d\n",
		s.topics, s.publishers, s.publishers, s.inflight, s.subscribers, s.perSubscriber, s.zipf, o.size, s.seed)
	fmt.Fprintf(w, "  conclave: half the topics vsync, half total, packed into at most %d groups by the directory; an event reaches every member of its group (subscribers of other topics filter it); Publish returns once every member has it\n", s.groups)
	fmt.Fprintln(w, "  NATS: one server routes each subject to its subscribers only, no order across publishers, at most once; a publish waits until every subscriber of the subject has it (a flush if it has none)")
}

func measureConclavePubSub(w io.Writer, o options, r round) error {
	res, err := conclavePubSub(o.conclave, o)
	if err != nil {
		return err
	}
	r.set(w, cPubSub, res.delivered)
	r.setDuration(w, cPubSubP50, res.p50)
	r.setDuration(w, cPubSubP99, res.p99)
	fmt.Fprintf(w, "  (conclave: %.0f published/s, %.0f filtered/s at the subscribers%s)\n", res.published, res.filtered, noted(res.note))
	return nil
}

func measureNATSPubSub(w io.Writer, o options, r round) error {
	res, err := natsPubSub(o)
	if err != nil {
		return fmt.Errorf("core nats pub/sub: %w", err)
	}
	r.set(w, natsPS, res.delivered)
	r.setDuration(w, natsPSP50, res.p50)
	r.setDuration(w, natsPSP99, res.p99)
	fmt.Fprintf(w, "  (NATS: %.0f published/s)\n", res.published)
	return nil
}

func noted(note string) string {
	if note == "" {
		return ""
	}
	return "; " + note
}
