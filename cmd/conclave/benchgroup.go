package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conclave/conclave/group"
	"github.com/conclave/conclave/stack"
	"github.com/conclave/conclave/transport"
)

// groupBench is the settings of "conclave bench group".
type groupBench struct {
	members  int
	size     int
	duration time.Duration
	warmup   time.Duration
	inflight int
	stacks   []string
	modes    []string
	security string // none, key or tls: of the run at hand
}

// securities are the settings --security takes.
var securities = []string{"none", "key", "tls"}

func runBenchGroup(args []string) error {
	fs := newFlags("bench group", "bench group [--members 4] [--size 1024] [--duration 3s] [--stack vsync,total] [--mode async,sync]")
	var b groupBench
	fs.IntVar(&b.members, "members", 4, "members of the group")
	fs.IntVar(&b.size, "size", 1024, "message size in bytes (at least 16)")
	fs.DurationVar(&b.duration, "duration", 3*time.Second, "measured time per run")
	fs.DurationVar(&b.warmup, "warmup", 500*time.Millisecond, "traffic before measuring starts")
	fs.IntVar(&b.inflight, "inflight", 512, "async mode: messages a sender may have sent and not yet seen acknowledged")
	stacks := fs.String("stack", "vsync,total", "comma-separated stacks to measure (shipped names or XML files)")
	modes := fs.String("mode", "async,sync", "async: every member sends as fast as acknowledgements allow; sync: one member sends, each Send waits for its acknowledgement; "+
		"rate: every member sends on a fixed schedule, --rate messages per second in all, and latencies count from the scheduled send")
	rate := fs.Int("rate", 10000, "rate mode: messages per second, all members together")
	secs := fs.String("security", "key", "comma-separated: none (unauthenticated), key (authenticated connections), tls (authenticated and encrypted)")
	rounds := fs.Int("rounds", 1, "run everything this many times, alternating the order of the --security settings, and print the ratios to the first setting")
	if err := parse(fs, args); err != nil {
		return err
	}
	security := strings.Split(*secs, ",")
	for _, sec := range security {
		if !slices.Contains(securities, sec) {
			return usagef("--security takes none, key and tls, not %q", sec)
		}
	}
	if *rounds < 1 {
		return usagef("--rounds must be at least 1")
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if b.members < 2 || b.size < 16 || b.inflight < 1 {
		return usagef("--members must be at least 2, --size at least 16 and --inflight at least 1")
	}
	if b.size > group.DefaultMaxMessage {
		return usagef("--size %d is over the largest message, %d bytes", b.size, group.DefaultMaxMessage)
	}
	if err := positive("duration", b.duration); err != nil {
		return err
	}
	if b.warmup < 0 {
		return usagef("--warmup must not be negative, not %v", b.warmup)
	}
	b.stacks = strings.Split(*stacks, ",")
	b.modes = strings.Split(*modes, ",")
	var descs []*stack.Description
	for _, s := range b.stacks {
		d, err := group.LoadStack(s)
		if err != nil {
			return usageError{err.Error()}
		}
		descs = append(descs, d)
	}
	for _, m := range b.modes {
		if m != "async" && m != "sync" && m != "rate" {
			return usagef("--mode takes async, sync and rate, not %q", m)
		}
	}
	if *rate < 1 {
		return usagef("--rate must be at least 1, not %d", *rate)
	}
	fmt.Printf("group benchmark: %d members in this process over TCP on loopback, %d-byte messages, %v measured after %v of warm-up\n",
		b.members, b.size, b.duration, b.warmup)
	fmt.Printf("async: all %d members send, each with at most %d unacknowledged; sync: one member sends, each Send waits for stability\n", b.members, b.inflight)
	fmt.Println("msgs/s: messages delivered per second at the slowest member; latency: from the send call to delivery, over every member's deliveries")
	if slices.Contains(b.modes, "rate") {
		fmt.Printf("rate: the %d members send %d msgs/s in all, each on a fixed schedule; latencies from the scheduled send time to delivery at the last member, and to stability\n",
			b.members, *rate)
	}
	for _, d := range descs {
		fmt.Printf("stack %s: %s\n", d.Name, describe(d))
	}
	fmt.Printf("%-8s %-6s %-8s %12s %10s %10s %10s\n", "stack", "mode", "security", "msgs/s", "p50 ms", "p99 ms", "max ms")
	// rates[stack mode][security] over the rounds
	rates := map[string]map[string][]float64{}
	for r := range *rounds {
		order := slices.Clone(security)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, sec := range order {
			b.security = sec
			for _, d := range descs {
				for _, m := range b.modes {
					if m == "rate" {
						r, err := b.runRate(context.Background(), func(ctx context.Context) ([]*group.Group, error) { return b.start(ctx, d) }, *rate)
						if err != nil {
							return fmt.Errorf("%s rate %s: %w", d.Name, sec, err)
						}
						fmt.Printf("%-8s %-6s %-8s %12.0f  send -> delivered everywhere p50 %.3f p99 %.3f p999 %.3f ms; send -> stable p50 %.3f p99 %.3f p999 %.3f ms",
							d.Name, "rate", sec, r.rate, ms(pctf(r.everywhere, 50)), ms(pctf(r.everywhere, 99)), ms(pctf(r.everywhere, 99.9)),
							ms(pctf(r.stable, 50)), ms(pctf(r.stable, 99)), ms(pctf(r.stable, 99.9)))
						if r.missing > 0 {
							fmt.Printf("; %d not delivered everywhere", r.missing)
						}
						fmt.Println()
						continue
					}
					res, err := b.run(d, m)
					if err != nil {
						return fmt.Errorf("%s %s %s: %w", d.Name, m, sec, err)
					}
					fmt.Printf("%-8s %-6s %-8s %12.0f %10.3f %10.3f %10.3f\n", d.Name, m, sec, res.rate, ms(res.p50), ms(res.p99), ms(res.max))
					k := d.Name + " " + m
					if rates[k] == nil {
						rates[k] = map[string][]float64{}
					}
					rates[k][sec] = append(rates[k][sec], res.rate)
				}
			}
		}
	}
	if *rounds > 1 && len(security) > 1 {
		fmt.Printf("median msgs/s over %d rounds, and the ratio to %s:\n", *rounds, security[0])
		for _, d := range descs {
			for _, m := range b.modes {
				k := d.Name + " " + m
				base := median(rates[k][security[0]])
				fmt.Printf("%-15s", k)
				for _, sec := range security {
					fmt.Printf("  %s %8.0f (%.3f)", sec, median(rates[k][sec]), median(rates[k][sec])/base)
				}
				fmt.Println()
			}
		}
	}
	return nil
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	if len(xs) == 0 {
		return 0
	}
	return xs[len(xs)/2]
}

// describe lists a stack's layers and parameters.
func describe(d *stack.Description) string {
	var parts []string
	for _, l := range d.Layers {
		var kv []string
		for k, v := range l.Params {
			kv = append(kv, fmt.Sprintf("%s=%v", k, v))
		}
		slices.Sort(kv)
		parts = append(parts, l.Kind+"("+strings.Join(kv, " ")+")")
	}
	return strings.Join(parts, " ")
}

type benchResult struct {
	rate          float64
	p50, p99, max time.Duration
}

// run starts a group, drives it in one mode, and measures it.
func (b groupBench) run(d *stack.Description, mode string) (benchResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second+b.warmup+b.duration)
	defer cancel()
	gs, err := b.start(ctx, d)
	defer func() {
		for _, g := range gs {
			g.Close()
		}
	}()
	if err != nil {
		return benchResult{}, err
	}
	return b.drive(ctx, gs, mode)
}

// start starts the group's members and waits until each sees them all.
func (b groupBench) start(ctx context.Context, d *stack.Description) ([]*group.Group, error) {
	var gs []*group.Group
	var key transport.Key
	if b.security != "none" {
		key = transport.NewKey()
	}
	for i := range b.members {
		cfg := group.Config{Name: "bench", Description: d, Listen: "127.0.0.1:0", Member: fmt.Sprintf("b%d", i),
			Key: key, TLS: b.security == "tls"}
		if i > 0 {
			cfg.Contacts = []string{gs[0].Me().Addr}
		}
		g, err := group.Join(ctx, cfg)
		if err != nil {
			return gs, err
		}
		gs = append(gs, g)
	}
	for _, g := range gs {
		for len(g.View().Members) != b.members {
			select {
			case <-g.Views():
			case <-ctx.Done():
				return gs, fmt.Errorf("the group did not form: %v", g.View().IDs())
			}
		}
	}
	return gs, nil
}

// drive sends in mode async or sync and measures the deliveries.
func (b groupBench) drive(ctx context.Context, gs []*group.Group, mode string) (benchResult, error) {
	t0 := time.Now()
	start, end := t0.Add(b.warmup), t0.Add(b.warmup+b.duration)
	// Each member records, for deliveries within the window, the latency
	// of every message sent within it.
	type tally struct {
		count int
		lat   []time.Duration
	}
	tallies := make([]tally, len(gs))
	var readers sync.WaitGroup
	for i, g := range gs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			tl := &tallies[i]
			stop := time.NewTimer(time.Until(end))
			defer stop.Stop()
			for {
				select {
				case m, ok := <-g.Deliveries():
					if !ok {
						return
					}
					now := time.Now()
					if now.After(end) {
						return
					}
					if now.Before(start) || len(m.Data) < 16 {
						continue
					}
					tl.count++
					sent := time.Unix(0, int64(binary.BigEndian.Uint64(m.Data[8:])))
					if !sent.Before(start) {
						tl.lat = append(tl.lat, now.Sub(sent))
					}
				case <-stop.C:
					return
				}
			}
		}()
	}

	// The first send error; errors of different types, so not an atomic.Value.
	var sendErr atomic.Pointer[error]
	var senders sync.WaitGroup
	send := func(i int, g *group.Group) {
		defer senders.Done()
		payload := make([]byte, b.size)
		// The sends not yet acknowledged, in order: one goroutine waits
		// for each in turn (a member acknowledges its messages in order).
		window := make(chan (<-chan error), b.inflight)
		acked := make(chan struct{})
		go func() {
			defer close(acked)
			for done := range window {
				select {
				case err := <-done:
					if err != nil && !errors.Is(err, group.ErrClosed) {
						sendErr.CompareAndSwap(nil, &err)
					}
				case <-ctx.Done():
					return
				}
			}
		}()
		defer func() {
			close(window)
			<-acked
		}()
		for seq := uint64(1); time.Now().Before(end); seq++ {
			binary.BigEndian.PutUint64(payload, seq)
			binary.BigEndian.PutUint64(payload[8:], uint64(time.Now().UnixNano()))
			if mode == "sync" {
				if err := g.Send(ctx, payload); err != nil {
					sendErr.CompareAndSwap(nil, &err)
					return
				}
				continue
			}
			done, err := g.Go(payload)
			if err != nil {
				sendErr.CompareAndSwap(nil, &err)
				return
			}
			select {
			case window <- done:
			case <-ctx.Done():
				return
			}
		}
	}
	for i, g := range gs {
		if mode == "sync" && i > 0 {
			break
		}
		senders.Add(1)
		go send(i, g)
	}
	senders.Wait()
	readers.Wait()
	if err := sendErr.Load(); err != nil {
		return benchResult{}, *err
	}
	var r benchResult
	var lat []time.Duration
	for i, tl := range tallies {
		rate := float64(tl.count) / b.duration.Seconds()
		if i == 0 || rate < r.rate {
			r.rate = rate
		}
		lat = append(lat, tl.lat...)
	}
	if len(lat) == 0 {
		return r, errors.New("nothing was delivered")
	}
	slices.Sort(lat)
	r.p50, r.p99, r.max = pct(lat, 50), pct(lat, 99), lat[len(lat)-1]
	return r, nil
}
