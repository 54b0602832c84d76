package pubsub_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/dirnode"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/pubsub"
	"github.com/conclave/conclave/transport"
)

// testDir is a directory of three in-process replicas over transport.Mem.
type testDir struct {
	nw    *transport.Mem
	key   transport.Key
	addrs []string
	srv   []*dirnode.Server
	logs  logBuffer // the clients' event logs
}

// logBuffer is the clients' shared event log.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// checkLogs runs check.PubSub over the clients' logs.
func (d *testDir) checkLogs(t *testing.T) {
	for _, v := range d.violations(t) {
		t.Error(v)
	}
}

// violations returns what check.PubSub finds in the clients' logs (each
// topic's QoS is in them).
func (d *testDir) violations(t *testing.T) []check.Violation {
	d.logs.mu.Lock()
	h, bad, err := eventlog.Read(bytes.NewReader(d.logs.b.Bytes()))
	d.logs.mu.Unlock()
	if err != nil || bad > 0 {
		t.Fatalf("reading the clients' logs: %v (%d bad lines)", err, bad)
	}
	return append(check.PubSub(h, check.PubSubOptions{}), check.DirLinearizable(h, time.Minute)...)
}

// startDir starts three replicas with maxGroups groups.
func startDir(maxGroups int) (*testDir, error) {
	return startDirWith(directory.StateConfig{MaxGroups: maxGroups})
}

// startDirWith starts three replicas of configuration cfg.
func startDirWith(cfg directory.StateConfig) (*testDir, error) {
	d := &testDir{nw: &transport.Mem{}, key: transport.NewKey()}
	for i := range 3 {
		d.addrs = append(d.addrs, fmt.Sprintf("dir%d:1", i))
	}
	for i := range 3 {
		st, err := directory.NewState(cfg)
		if err != nil {
			d.close()
			return nil, err
		}
		s, err := dirnode.Start(dirnode.Config{ID: i, Peers: d.addrs, Store: &directory.MemStore{}, App: st,
			Network: d.nw, Key: d.key})
		if err != nil {
			d.close()
			return nil, err
		}
		d.srv = append(d.srv, s)
	}
	return d, nil
}

func (d *testDir) close() {
	for _, s := range d.srv {
		s.Close()
	}
}

// connect returns a client of d.
func (d *testDir) connect(ctx context.Context, name string) (*pubsub.Client, error) {
	return pubsub.Connect(ctx, pubsub.Config{Directory: d.addrs, Key: d.key, Network: d.nw, Name: name, LogTo: &d.logs})
}

func newDir(t *testing.T, maxGroups int) *testDir {
	t.Helper()
	return newDirWith(t, directory.StateConfig{MaxGroups: maxGroups})
}

// newDirWith is newDir of configuration cfg.
func newDirWith(t *testing.T, cfg directory.StateConfig) *testDir {
	t.Helper()
	d := newDirUncheckedWith(t, cfg)
	// Registered before the clients' cleanups, so it runs after them.
	t.Cleanup(func() { d.checkLogs(t) })
	return d
}

// newDirUnchecked is newDir without checking the clients' logs at the end.
func newDirUnchecked(t *testing.T, maxGroups int) *testDir {
	t.Helper()
	return newDirUncheckedWith(t, directory.StateConfig{MaxGroups: maxGroups})
}

func newDirUncheckedWith(t *testing.T, cfg directory.StateConfig) *testDir {
	t.Helper()
	d, err := startDirWith(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	return d
}

func (d *testDir) client(t *testing.T, name string) *pubsub.Client {
	t.Helper()
	c, err := d.connect(testCtx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// read returns the next n events of s.
func read(t *testing.T, s *pubsub.Subscription, n int) []pubsub.Event {
	t.Helper()
	var out []pubsub.Event
	for len(out) < n {
		select {
		case e, ok := <-s.Events():
			if !ok {
				t.Fatalf("%s: events closed after %d of %d: %v", s.Topic(), len(out), n, s.Err())
			}
			out = append(out, e)
		case <-testCtx(t).Done():
			t.Fatalf("%s: %d of %d events", s.Topic(), len(out), n)
		}
	}
	return out
}

// TestSubscribersSeeTheSameEvents has two publishers publish at once to a
// topic with two subscribers: both get every event; with total in the
// same order, with vsync in each publisher's order.
func TestSubscribersSeeTheSameEvents(t *testing.T) {
	for _, qos := range []string{"total", "vsync"} {
		t.Run(qos, func(t *testing.T) {
			d := newDir(t, 4)
			ctx := testCtx(t)
			var pubs []*pubsub.Publisher
			for i := range 2 {
				p, err := d.client(t, fmt.Sprintf("pub%d", i)).Announce(ctx, "news", qos)
				if err != nil {
					t.Fatal(err)
				}
				if p.QoS() != qos {
					t.Fatalf("QoS %q, want %q", p.QoS(), qos)
				}
				pubs = append(pubs, p)
			}
			var subs []*pubsub.Subscription
			for i := range 2 {
				s, err := d.client(t, fmt.Sprintf("sub%d", i)).Subscribe(ctx, "news")
				if err != nil {
					t.Fatal(err)
				}
				if s.Group() != pubs[0].Group() || s.QoS() != qos {
					t.Fatalf("subscriber got %s/%s, publisher %s/%s", s.Group(), s.QoS(), pubs[0].Group(), qos)
				}
				subs = append(subs, s)
			}
			const n = 30
			var wg sync.WaitGroup
			for i, p := range pubs {
				if err := p.WaitMembers(ctx, 4); err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := range n {
						if err := p.Publish(ctx, fmt.Appendf(nil, "p%d-%d", i, k)); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			var got [][]string
			for _, s := range subs {
				var seq []string
				perFrom := map[string][]string{}
				for _, e := range read(t, s, 2*n) {
					seq = append(seq, string(e.Data))
					perFrom[e.From] = append(perFrom[e.From], string(e.Data))
				}
				for from, evs := range perFrom {
					if !slices.IsSortedFunc(evs, func(a, b string) int { return seqOf(a) - seqOf(b) }) {
						t.Errorf("events of %s out of order: %v", from, evs)
					}
				}
				got = append(got, seq)
			}
			if qos == "total" && !slices.Equal(got[0], got[1]) {
				t.Errorf("subscribers disagree on the order:\n%v\n%v", got[0], got[1])
			}
		})
	}
}

func seqOf(s string) int {
	var p, k int
	fmt.Sscanf(s, "p%d-%d", &p, &k)
	return k
}

// TestSharedGroupFilters puts a fourth topic in a group of three (both
// shipped QoS have one each, a third topic takes the last): a subscriber
// of one topic never sees the other's events, and counts them filtered.
// The publisher of both topics joins their group once.
func TestSharedGroupFilters(t *testing.T) {
	d := newDir(t, 3)
	ctx := testCtx(t)
	pc := d.client(t, "pub")
	var pubs []*pubsub.Publisher
	for _, a := range []struct{ topic, qos string }{{"a", "total"}, {"b", "vsync"}, {"c", "total"}, {"d", "total"}} {
		p, err := pc.Announce(ctx, a.topic, a.qos)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, p)
	}
	a, dd := pubs[0], pubs[3]
	if a.Group() != dd.Group() {
		t.Fatalf("topic d is in %s, a in %s: want them to share", dd.Group(), a.Group())
	}
	if g := pc.Groups(); len(g) != 3 {
		t.Fatalf("the publisher is in groups %v, want 3", g)
	}
	sc := d.client(t, "sub")
	s, err := sc.Subscribe(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WaitMembers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	const n = 10
	for k := range n {
		if err := dd.Publish(ctx, fmt.Appendf(nil, "d%d", k)); err != nil {
			t.Fatal(err)
		}
	}
	for k := range n {
		if err := a.Publish(ctx, fmt.Appendf(nil, "a%d", k)); err != nil {
			t.Fatal(err)
		}
	}
	for k, e := range read(t, s, n) {
		if e.Topic != "a" || string(e.Data) != fmt.Sprintf("a%d", k) {
			t.Fatalf("event %d: %s> %s", k, e.Topic, e.Data)
		}
	}
	// The events of d were delivered before those of a (one sender, FIFO).
	st := sc.Stats()
	if st["a"] != (pubsub.Stats{Delivered: n}) || st["d"] != (pubsub.Stats{Filtered: n}) {
		t.Errorf("subscriber's stats: %+v", st)
	}
	if g := sc.Groups(); !slices.Equal(g, []string{a.Group()}) {
		t.Errorf("subscriber in groups %v", g)
	}
}

// TestOneClientManyTopicsJoinsOnce publishes and subscribes to two
// topics sharing a group from one client: one member, and each
// subscription gets its own topic's events only.
func TestOneClientManyTopicsJoinsOnce(t *testing.T) {
	d := newDir(t, 3)
	ctx := testCtx(t)
	c := d.client(t, "both")
	var pubs []*pubsub.Publisher
	for _, topic := range []string{"a", "b", "c", "d"} {
		qos := "total"
		if topic == "b" {
			qos = "vsync"
		}
		p, err := c.Announce(ctx, topic, qos)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, p)
	}
	sa, err := c.Subscribe(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	sd, err := c.Subscribe(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if sa.Group() != sd.Group() {
		t.Fatalf("a in %s, d in %s", sa.Group(), sd.Group())
	}
	if g := c.Groups(); len(g) != 3 {
		t.Fatalf("groups %v: want 3, the shared one joined once", g)
	}
	if v := pubs[0].View(); len(v.Members) != 1 {
		t.Fatalf("view of the shared group: %v", v.IDs())
	}
	for _, p := range []*pubsub.Publisher{pubs[0], pubs[3], pubs[0]} {
		if err := p.Publish(ctx, []byte("to "+p.Topic())); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range read(t, sa, 2) {
		if e.Topic != "a" || string(e.Data) != "to a" {
			t.Errorf("subscription a got %s> %s", e.Topic, e.Data)
		}
	}
	if e := read(t, sd, 1)[0]; e.Topic != "d" {
		t.Errorf("subscription d got %s> %s", e.Topic, e.Data)
	}
	if err := sa.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-sa.Events(); ok {
		t.Error("events of a after Unsubscribe")
	}
	if g := c.Groups(); len(g) != 3 {
		t.Errorf("after unsubscribing a, groups %v: d and the publishers still use the shared one", g)
	}
}

// TestUnknownTopic: subscribing to a topic nobody announced fails with
// ErrUnknownTopic, or with WaitAnnounced waits until it is announced.
func TestUnknownTopic(t *testing.T) {
	d := newDir(t, 4)
	ctx := testCtx(t)
	sc := d.client(t, "sub")
	if _, err := sc.Subscribe(ctx, "later"); !errors.Is(err, directory.ErrUnknownTopic) {
		t.Fatalf("subscribe to an unknown topic: %v", err)
	}
	short, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := sc.Subscribe(short, "later", pubsub.WaitAnnounced()); err == nil {
		t.Fatal("WaitAnnounced with an ended context succeeded")
	}
	type result struct {
		s   *pubsub.Subscription
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := sc.Subscribe(ctx, "later", pubsub.WaitAnnounced())
		done <- result{s, err}
	}()
	p, err := d.client(t, "pub").Announce(ctx, "later", "vsync")
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.s.QoS() != "vsync" || r.s.Group() != p.Group() {
		t.Fatalf("got %s/%s, want vsync/%s", r.s.QoS(), r.s.Group(), p.Group())
	}
	// The waiting subscriber may have asked between the announce and the
	// publisher's joining of the group: the directory's contacts put them
	// in one group all the same, with a subscriber that came later.
	s, err := d.client(t, "sub2").Subscribe(ctx, "later")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitMembers(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, []byte("at last")); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []*pubsub.Subscription{r.s, s} {
		if e := read(t, sub, 1)[0]; string(e.Data) != "at last" {
			t.Fatalf("got %s> %s", e.Topic, e.Data)
		}
	}
}
