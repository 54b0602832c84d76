package pubsub_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/conclave/conclave/dirclient"
	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/pubsub"
)

// moveRun publishes numbered events of topic "a" from two publishers to
// two subscribers while an operator moves "a" to another group, and a
// third subscriber subscribes after the move. It returns what each
// subscriber got, in delivery order.
func moveRun(t *testing.T, qos string) (d *testDir, got map[string][]string, groups [2]string) {
	d = newDirWith(t, directory.StateConfig{MaxGroups: 4, MoveSpacing: -1})
	ctx := testCtx(t)
	// "a" and "b" share a group; "c" has another of the QoS.
	var pubs []*pubsub.Publisher
	for _, name := range []string{"pa1", "pa2"} {
		p, err := d.client(t, name).Announce(ctx, "a", qos)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, p)
	}
	other := d.client(t, "other")
	if _, err := other.Announce(ctx, "c", qos); err != nil {
		t.Fatal(err)
	}
	pc, _ := other.Announce(ctx, "c", qos)
	groups[0] = pubs[0].Group()
	groups[1] = pc.Group()
	if groups[0] == groups[1] {
		t.Fatalf("a and c share %s", groups[0])
	}
	subs := map[string]*pubsub.Subscription{}
	collected := map[string]<-chan collectedEvents{} // read as they come: the subscriptions' buffers are bounded
	for _, name := range []string{"s1", "s2"} {
		s, err := d.client(t, name).Subscribe(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		subs[name] = s
		collected[name] = collect(ctx, s, 2)
	}
	for _, p := range pubs {
		if err := p.WaitMembers(ctx, 4); err != nil {
			t.Fatal(err)
		}
	}
	// Each publisher publishes until told to finish, then 50 more, the
	// last one named: the move comes after 100 each, and the late
	// subscriber after the move, once every publisher switched.
	//
	// Each publisher's switch waits until the publishers have sent 20
	// more events in the old group: subscribers that switch too early
	// miss them.
	var published atomic.Int64
	sent := make(chan struct{}, 1)
	pubsub.SetBeforeSwitch(func() {
		for from := published.Load(); published.Load() < from+20; {
			select {
			case <-sent:
			case <-ctx.Done():
				return
			}
		}
	})
	t.Cleanup(func() { pubsub.SetBeforeSwitch(nil) })
	var wg sync.WaitGroup
	started := make(chan struct{}, len(pubs))
	finish := make(chan struct{})
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			more := -1
			for k := 0; more != 0; k++ {
				if k == 100 {
					started <- struct{}{}
				}
				select {
				case <-finish:
					if more < 0 {
						more = 50
					}
				default:
				}
				if more > 0 {
					more--
				}
				data := fmt.Sprintf("p%d-%d", i, k)
				if more == 0 {
					data += "-last"
				}
				if err := p.Publish(ctx, []byte(data)); err != nil {
					t.Error(err)
					return
				}
				published.Add(1)
				select {
				case sent <- struct{}{}:
				default:
				}
			}
		}()
	}
	for range pubs {
		<-started
	}
	op, err := dirclient.New(dirclient.Config{Replicas: d.addrs, Key: d.key, Network: d.nw, Name: "operator"})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	if r, err := op.Move(ctx, "a", groups[1]); err != nil || r.Group != groups[1] {
		t.Fatalf("Move: %+v %v", r, err)
	}
	// The late subscriber's Subscribe may wait for the publishers'
	// markers while they go on publishing, and it is read only once
	// Subscribe returned: room for what comes in the meantime, on a
	// slow machine.
	lc, err := pubsub.Connect(ctx, pubsub.Config{Directory: d.addrs, Key: d.key, Network: d.nw, Name: "s3", LogTo: &d.logs, Buffer: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Close() })
	late, err := lc.Subscribe(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	subs["s3"] = late
	collected["s3"] = collect(ctx, late, 2)
	close(finish)
	wg.Wait()

	// Until each subscriber has each publisher's last event.
	got = map[string][]string{}
	for name, s := range subs {
		c := <-collected[name]
		got[name] = c.events
		if c.err != nil {
			t.Fatalf("%s: %v, after %d events", name, c.err, len(c.events))
		}
		if g := s.Group(); g != groups[1] {
			t.Errorf("%s delivers from %s after the move to %s", name, g, groups[1])
		}
	}
	for i, p := range pubs {
		if g := p.Group(); g != groups[1] {
			t.Errorf("publisher %d publishes in %s after the move to %s", i, g, groups[1])
		}
	}
	return d, got, groups
}

// collectedEvents is what a subscription delivered, without the "-last"
// suffix of each publisher's last event, and why it stopped early.
type collectedEvents struct {
	events []string
	err    error
}

// collect reads s until it has the last event of n publishers.
func collect(ctx context.Context, s *pubsub.Subscription, n int) <-chan collectedEvents {
	out := make(chan collectedEvents, 1)
	go func() {
		var c collectedEvents
		defer func() { out <- c }()
		last := 0
		for last < n {
			select {
			case e, ok := <-s.Events():
				if !ok {
					c.err = fmt.Errorf("events closed: %v", s.Err())
					return
				}
				data, isLast := strings.CutSuffix(string(e.Data), "-last")
				c.events = append(c.events, data)
				if isLast {
					last++
				}
			case <-ctx.Done():
				c.err = fmt.Errorf("not every publisher's last event: %w", ctx.Err())
				return
			}
		}
	}()
	return out
}

// checkMoveRun checks that each subscriber got each publisher's events in
// order, without gaps or repeats (from the first, for the late one), and,
// with total order, that s1 and s2 got the same sequence.
func checkMoveRun(got map[string][]string, total bool) []string {
	var bad []string
	for name, evs := range got {
		next := map[int]int{}
		for _, e := range evs {
			var p, k int
			fmt.Sscanf(e, "p%d-%d", &p, &k)
			want, seen := next[p]
			if !seen && name == "s3" {
				want = k
			}
			if k != want {
				bad = append(bad, fmt.Sprintf("%s: after p%d-%d, p%d-%d", name, p, want-1, p, k))
				break
			}
			next[p] = k + 1
		}
	}
	if total && !slices.Equal(got["s1"], got["s2"]) {
		bad = append(bad, "s1 and s2 delivered in different orders")
	}
	return bad
}

// TestMoveKeepsGuarantees moves a topic between groups while two
// publishers publish to it: no subscriber loses, repeats or reorders an
// event, and with total order the subscribers agree on one order.
func TestMoveKeepsGuarantees(t *testing.T) {
	for _, qos := range []string{"total", "vsync"} {
		t.Run(qos, func(t *testing.T) {
			_, got, _ := moveRun(t, qos)
			for _, b := range checkMoveRun(got, qos == "total") {
				t.Error(b)
			}
		})
	}
}

// TestMoveWithoutWaitingIsCaught: subscribers that switch groups without
// waiting for the publishers' markers lose or reorder events, and
// checkMoveRun says so.
func TestMoveWithoutWaitingIsCaught(t *testing.T) {
	pubsub.SkipMoveWait.Store(true)
	t.Cleanup(func() { pubsub.SkipMoveWait.Store(false) })
	_, got, _ := moveRun(t, "total")
	if bad := checkMoveRun(got, true); len(bad) == 0 {
		t.Fatal("switching without waiting went unnoticed")
	} else {
		t.Logf("caught: %v", bad)
	}
}

// TestMoveSurvivesPublisherCrash moves a topic whose publishers are one
// that crashed and one that publishes: the subscriber does not wait for
// the crashed one once it is out of the old group's view, and gets every
// event of the other, in order, across the move.
func TestMoveSurvivesPublisherCrash(t *testing.T) {
	d := newDirWith(t, directory.StateConfig{MaxGroups: 4, MoveSpacing: -1})
	ctx := testCtx(t)
	crashed := d.client(t, "pa1")
	if _, err := crashed.Announce(ctx, "a", "total"); err != nil {
		t.Fatal(err)
	}
	live, err := d.client(t, "pa2").Announce(ctx, "a", "total")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := d.client(t, "other").Announce(ctx, "c", "total")
	if err != nil {
		t.Fatal(err)
	}
	to := pc.Group()
	s, err := d.client(t, "s1").Subscribe(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := live.WaitMembers(ctx, 3); err != nil {
		t.Fatal(err)
	}
	crashed.Crash()
	op, err := dirclient.New(dirclient.Config{Replicas: d.addrs, Key: d.key, Network: d.nw, Name: "operator"})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	// Read while publishing: the subscription's buffer is bounded.
	got := make(chan []string, 1)
	go func() {
		var evs []string
		defer func() { got <- evs }()
		for {
			select {
			case e, ok := <-s.Events():
				if !ok {
					return
				}
				evs = append(evs, string(e.Data))
				if string(e.Data) == "last" {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	// Publish while the topic moves, until the live publisher switched
	// (the directory says so), then ten more and the last.
	if _, err := op.Move(ctx, "a", to); err != nil {
		t.Fatal(err)
	}
	k, more := 0, -1
	for more != 0 {
		if err := live.Publish(ctx, fmt.Appendf(nil, "p-%d", k)); err != nil {
			t.Fatal(err)
		}
		k++
		if more > 0 {
			more--
			continue
		}
		f, err := op.Lookup(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(f.Topic.Pending, "pa2") {
			more = 10
		}
	}
	if err := live.Publish(ctx, []byte("last")); err != nil {
		t.Fatal(err)
	}
	evs := <-got
	if len(evs) != k+1 || evs[k] != "last" {
		t.Fatalf("the subscriber got %d events of %d (last %q): it waited for the crashed publisher (%v)", len(evs), k+1, evs[len(evs)-1:], s.Err())
	}
	for i := range k {
		if want := fmt.Sprintf("p-%d", i); evs[i] != want {
			t.Fatalf("event %d is %q, want %q", i, evs[i], want)
		}
	}
	if g := s.Group(); g != to {
		t.Errorf("the subscriber delivers from %s, not %s", g, to)
	}
}
