package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conclave/conclave/launch"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// serverConfig is one NATS server of a cluster: what it listens on,
// which routes it dials and where JetStream keeps its state.
type serverConfig struct {
	Name     string   `json:"name"`
	Port     int      `json:"port"`
	Cluster  int      `json:"cluster,omitempty"` // cluster port; 0: no cluster
	Routes   []string `json:"routes,omitempty"`  // host:port of the other servers' cluster ports
	StoreDir string   `json:"store,omitempty"`   // "": JetStream off
}

// options turns the configuration into the server's options.
func (c serverConfig) options() (*server.Options, error) {
	o := &server.Options{ServerName: c.Name, Host: "127.0.0.1", Port: c.Port, NoLog: true, NoSigs: true}
	if c.Cluster != 0 {
		o.Cluster = server.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: c.Cluster}
		for _, r := range c.Routes {
			u, err := url.Parse("nats://" + r)
			if err != nil {
				return nil, err
			}
			o.Routes = append(o.Routes, u)
		}
	}
	if c.StoreDir != "" {
		o.JetStream, o.StoreDir = true, c.StoreDir
	}
	return o, nil
}

// url is where clients connect to the server.
func (c serverConfig) url() string { return "nats://127.0.0.1:" + strconv.Itoa(c.Port) }

// clusterConfigs returns the configurations of n servers on free loopback
// ports, clustered if n > 1, with JetStream state under storeDir if it is
// not empty.
func clusterConfigs(n int, storeDir string) ([]serverConfig, error) {
	addrs, err := launch.FreeAddrs(2 * n)
	if err != nil {
		return nil, err
	}
	port := func(a string) int {
		p, _ := strconv.Atoi(a[strings.LastIndexByte(a, ':')+1:])
		return p
	}
	cfgs := make([]serverConfig, n)
	for i := range cfgs {
		cfgs[i] = serverConfig{Name: fmt.Sprintf("n%d", i), Port: port(addrs[i])}
		if n > 1 {
			cfgs[i].Cluster = port(addrs[n+i])
			for j := range n {
				if j != i {
					cfgs[i].Routes = append(cfgs[i].Routes, addrs[n+j])
				}
			}
		}
		if storeDir != "" {
			cfgs[i].StoreDir = fmt.Sprintf("%s/%s", storeDir, cfgs[i].Name)
		}
	}
	return cfgs, nil
}

// embedded is NATS servers running in this process.
type embedded struct {
	cfgs    []serverConfig
	servers []*server.Server
	dir     string
}

// startEmbedded starts n servers in this process, clustered if n > 1,
// with JetStream if js.
func startEmbedded(n int, js bool) (*embedded, error) {
	e := &embedded{}
	if js {
		dir, err := os.MkdirTemp("", "compare-nats-")
		if err != nil {
			return nil, err
		}
		e.dir = dir
	}
	cfgs, err := clusterConfigs(n, e.dir)
	if err != nil {
		e.Close()
		return nil, err
	}
	e.cfgs = cfgs
	for _, c := range cfgs {
		o, err := c.options()
		if err != nil {
			e.Close()
			return nil, err
		}
		s, err := server.NewServer(o)
		if err != nil {
			e.Close()
			return nil, err
		}
		s.Start()
		e.servers = append(e.servers, s)
	}
	for _, s := range e.servers {
		if !s.ReadyForConnections(10 * time.Second) {
			e.Close()
			return nil, errors.New("a NATS server did not start")
		}
	}
	return e, nil
}

// connect opens a client connection to server i.
func (e *embedded) connect(i int) (*nats.Conn, error) {
	return nats.Connect(e.cfgs[i%len(e.cfgs)].url(), nats.MaxReconnects(-1))
}

// Close stops the servers and removes their state.
func (e *embedded) Close() {
	for _, s := range e.servers {
		s.Shutdown()
		s.WaitForShutdown()
	}
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// window is the measured interval of a run, after the warm-up.
type window struct{ start, end time.Time }

func newWindow(o options) window {
	start := time.Now().Add(o.warmup)
	return window{start, start.Add(o.duration)}
}

// stamp writes a sequence number and the time into the first 16 bytes of p.
func stamp(p []byte, seq uint64) {
	binary.BigEndian.PutUint64(p, seq)
	binary.BigEndian.PutUint64(p[8:], uint64(time.Now().UnixNano()))
}

// counter counts the events within a window, once one is set.
type counter struct {
	w     atomic.Pointer[window]
	n     atomic.Int64
	first chan struct{} // closed at the first event, in the window or not
	once  sync.Once
}

func newCounter() *counter { return &counter{first: make(chan struct{})} }

func (c *counter) add() {
	c.once.Do(func() { close(c.first) })
	w := c.w.Load()
	if w == nil {
		return
	}
	if now := time.Now(); !now.Before(w.start) && now.Before(w.end) {
		c.n.Add(1)
	}
}

// startAll sets the window of the counters.
func startAll(w window, cs ...*counter) {
	for _, c := range cs {
		c.w.Store(&w)
	}
}

// slowest returns the delivery rate of the receiver that got the fewest.
func slowest(w window, cs []*counter) float64 {
	least := cs[0].n.Load()
	for _, c := range cs[1:] {
		least = min(least, c.n.Load())
	}
	return float64(least) / w.end.Sub(w.start).Seconds()
}

// coreFanout measures core NATS: one publisher, subscribers on their own
// connections spread over the servers, with at most o.inflight messages
// not yet received by every subscriber. It returns delivered/s at the
// slowest subscriber.
func coreFanout(o options, servers, subscribers int) (float64, error) {
	e, err := startEmbedded(servers, false)
	if err != nil {
		return 0, err
	}
	defer e.Close()
	credits := make([]chan struct{}, subscribers)
	counts := make([]*counter, subscribers)
	for i := range subscribers {
		credits[i] = make(chan struct{}, o.inflight)
		counts[i] = newCounter()
		nc, err := e.connect(i)
		if err != nil {
			return 0, err
		}
		defer nc.Close()
		c, ch := counts[i], credits[i]
		sub, err := nc.Subscribe("fan", func(*nats.Msg) {
			c.add()
			<-ch
		})
		if err != nil {
			return 0, err
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			return 0, err
		}
		if err := nc.Flush(); err != nil {
			return 0, err
		}
	}
	// Subscriptions made on other servers reach the publisher's server
	// over the routes: wait until it knows of all of them.
	pub, err := e.connect(0)
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	if err := awaitInterest(e.servers[0], "fan", subscribers); err != nil {
		return 0, err
	}
	w := newWindow(o)
	startAll(w, counts...)
	payload := make([]byte, o.size)
	stop := time.NewTimer(time.Until(w.end))
	defer stop.Stop()
	for seq := uint64(1); ; seq++ {
		for _, ch := range credits {
			select {
			case ch <- struct{}{}:
			case <-stop.C:
				return slowest(w, counts), nil
			}
		}
		stamp(payload, seq)
		if err := pub.Publish("fan", payload); err != nil {
			return 0, err
		}
	}
}

// awaitInterest waits until server s routes subject to n subscriptions.
func awaitInterest(s *server.Server, subject string, n int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		acc, err := s.LookupAccount(server.DEFAULT_GLOBAL_ACCOUNT)
		if err != nil {
			return err
		}
		r := acc.Interest(subject)
		if r >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the publisher's server sees %d of %d subscriptions", r, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// jsResult is what a JetStream run measured.
type jsResult struct {
	delivered, acked float64       // per second: at the slowest consumer, and acknowledged publishes
	syncP50          time.Duration // sync publish → PubAck
}

// jetStream measures a 3-server JetStream cluster with an R3 memory
// stream: publishers publishing asynchronously, each with at most
// o.inflight unacknowledged, and ordered push consumers (no acks) on
// their own connections;
// then one publisher publishing synchronously.
func jetStream(o options, publishers, consumers int) (jsResult, error) {
	var r jsResult
	e, err := startEmbedded(3, true)
	if err != nil {
		return r, err
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second+2*(o.warmup+o.duration))
	defer cancel()
	admin, err := e.connect(0)
	if err != nil {
		return r, err
	}
	defer admin.Close()
	js, err := jetstream.New(admin)
	if err != nil {
		return r, err
	}
	if _, err := createStream(ctx, js, "ASYNC", 3); err != nil {
		return r, err
	}

	counts := make([]*counter, consumers)
	for i := range consumers {
		nc, err := e.connect(i)
		if err != nil {
			return r, err
		}
		defer nc.Close()
		c := newCounter()
		counts[i] = c
		// Push, ordered: the pull-based ordered consumer of the jetstream
		// package delivered less than half as much on this machine.
		ljs, err := nc.JetStream()
		if err != nil {
			return r, err
		}
		sub, err := ljs.Subscribe("async", func(*nats.Msg) { c.add() }, nats.OrderedConsumer(), nats.DeliverNew())
		if err != nil {
			return r, err
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			return r, err
		}
		defer sub.Unsubscribe()
	}
	acked := newCounter()
	var pubErr atomic.Pointer[error]
	var wg sync.WaitGroup
	var pubs []jetstream.JetStream
	for i := range publishers {
		nc, err := e.connect(i)
		if err != nil {
			return r, err
		}
		defer nc.Close()
		pjs, err := jetstream.New(nc,
			jetstream.WithPublishAsyncMaxPending(o.inflight),
			jetstream.WithPublishAsyncAckHandler(func(jetstream.JetStream, *nats.Msg, *jetstream.PubAck) { acked.add() }),
			jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
				pubErr.CompareAndSwap(nil, &err)
			}))
		if err != nil {
			return r, err
		}
		pubs = append(pubs, pjs)
	}
	// The publishers publish until the window, set once every consumer
	// has received something, has passed.
	var win atomic.Pointer[window]
	for _, pjs := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(1); ; seq++ {
				if w := win.Load(); w != nil && !time.Now().Before(w.end) {
					break
				}
				if ctx.Err() != nil {
					return
				}
				payload := make([]byte, o.size) // the client keeps it until acknowledged
				stamp(payload, seq)
				if _, err := pjs.PublishAsync("async", payload, jetstream.WithStallWait(30*time.Second)); err != nil {
					pubErr.CompareAndSwap(nil, &err)
					cancel()
					return
				}
			}
			select {
			case <-pjs.PublishAsyncComplete():
			case <-ctx.Done():
			}
		}()
	}
	for _, c := range counts {
		select {
		case <-c.first:
		case <-ctx.Done():
			if err := pubErr.Load(); err != nil {
				return r, *err
			}
			return r, errors.New("a consumer received nothing")
		}
	}
	w := newWindow(o)
	startAll(w, append(counts, acked)...)
	win.Store(&w)
	wg.Wait()
	if err := pubErr.Load(); err != nil {
		return r, *err
	}
	r.delivered = slowest(w, counts)
	r.acked = float64(acked.n.Load()) / o.duration.Seconds()
	if err := js.DeleteStream(ctx, "ASYNC"); err != nil {
		return r, err
	}

	if _, err := createStream(ctx, js, "SYNC", 3); err != nil {
		return r, err
	}
	w = newWindow(o)
	payload := make([]byte, o.size)
	var lat []time.Duration
	for seq := uint64(1); time.Now().Before(w.end); seq++ {
		stamp(payload, seq)
		t0 := time.Now()
		if _, err := js.Publish(ctx, "sync", payload); err != nil {
			return r, err
		}
		if !t0.Before(w.start) {
			lat = append(lat, time.Since(t0))
		}
	}
	if len(lat) == 0 {
		return r, errors.New("no sync publish was acknowledged")
	}
	slices.Sort(lat)
	r.syncP50 = pct(lat, 50)
	return r, nil
}

// createStream creates a memory stream of the subject of its name in
// lower case, retrying while the cluster elects its leaders.
func createStream(ctx context.Context, js jetstream.JetStream, name string, replicas int) (jetstream.Stream, error) {
	cfg := jetstream.StreamConfig{Name: name, Subjects: []string{strings.ToLower(name)},
		Storage: jetstream.MemoryStorage, Replicas: replicas}
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := js.CreateStream(actx, cfg)
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("creating stream %s: %w", name, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pct returns the p-th percentile of sorted xs (nearest rank).
func pct(xs []time.Duration, p int) time.Duration {
	k := (p*len(xs) + 99) / 100
	return xs[max(k-1, 0)]
}
