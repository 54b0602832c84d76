package pubsub_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/conclave/conclave/dirclient"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/pubsub"
)

// observer records what a client's hooks see.
type observer struct {
	mu       sync.Mutex
	events   []eventlog.Event
	filtered map[string]int
	more     chan struct{} // closed and replaced at each event
}

func (o *observer) event(e eventlog.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, e)
	if o.more != nil {
		close(o.more)
		o.more = nil
	}
}

// wait waits until ok holds of what o saw.
func (o *observer) wait(ctx context.Context, t *testing.T, ok func() bool) {
	t.Helper()
	for {
		o.mu.Lock()
		if o.more == nil {
			o.more = make(chan struct{})
		}
		more := o.more
		o.mu.Unlock()
		if ok() {
			return
		}
		select {
		case <-more:
		case <-ctx.Done():
			t.Fatal("timed out")
		}
	}
}

func (o *observer) filter(topic string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.filtered == nil {
		o.filtered = map[string]int{}
	}
	o.filtered[topic]++
	if o.more != nil {
		close(o.more)
		o.more = nil
	}
}

// count returns how many events named ev it saw that match (nil: all).
func (o *observer) count(ev string, match func(eventlog.Event) bool) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, e := range o.events {
		if e.Ev == ev && (match == nil || match(e)) {
			n++
		}
	}
	return n
}

// observed connects a client of d without an event log, observed by o.
func (d *testDir) observed(t *testing.T, name string, o *observer) *pubsub.Client {
	t.Helper()
	c, err := pubsub.Connect(testCtx(t), pubsub.Config{Directory: d.addrs, Key: d.key, Network: d.nw, Name: name,
		OnEvent: o.event, OnFiltered: o.filter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func topicStatus(st pubsub.Status, topic string) pubsub.TopicStatus {
	for _, ts := range st.Topics {
		if ts.Topic == topic {
			return ts
		}
	}
	return pubsub.TopicStatus{}
}

func ofTopic(topic string) func(eventlog.Event) bool {
	return func(e eventlog.Event) bool { return e.Str(eventlog.FieldTopic) == topic }
}

// TestObserverSeesWhatTheClientDoes runs a publisher of two topics that
// share a group and a subscriber of one, neither keeping a log: their
// hooks see the subscription, views, publishes, deliveries, filtered
// events and the directory's leader, and Status says the same.
func TestObserverSeesWhatTheClientDoes(t *testing.T) {
	d := newDirUnchecked(t, 3)
	ctx := testCtx(t)
	var po, so observer
	pc, sc := d.observed(t, "pub", &po), d.observed(t, "sub", &so)
	var pubs []*pubsub.Publisher
	for _, a := range []struct{ topic, qos string }{{"a", "total"}, {"v", "vsync"}, {"c", "total"}, {"b", "total"}} {
		p, err := pc.Announce(ctx, a.topic, a.qos)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, p)
	}
	a, b := pubs[0], pubs[3]
	if a.Group() != b.Group() {
		t.Fatalf("topic b is in %s, a in %s: want them to share", b.Group(), a.Group())
	}
	s, err := sc.Subscribe(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WaitMembers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// b's events before a's (one sender, in order): once the subscriber
	// has a's, it filtered b's.
	for k := range 2 {
		if err := b.Publish(ctx, fmt.Appendf(nil, "b%d", k)); err != nil {
			t.Fatal(err)
		}
	}
	for k := range 3 {
		if err := a.Publish(ctx, fmt.Appendf(nil, "a%d", k)); err != nil {
			t.Fatal(err)
		}
	}
	read(t, s, 3)
	// Each delivery is logged once handed over.
	so.wait(ctx, t, func() bool { return so.count(eventlog.PSDeliver, nil) == 3 })

	for _, c := range []struct {
		who  string
		got  int
		want int
	}{
		{"sub ps_subscribe of a", so.count(eventlog.PSSubscribe, ofTopic("a")), 1},
		{"sub ps_deliver of a", so.count(eventlog.PSDeliver, ofTopic("a")), 3},
		{"sub ps_deliver of b", so.count(eventlog.PSDeliver, ofTopic("b")), 0},
		{"pub ps_announce", so.count(eventlog.PSAnnounce, nil) + po.count(eventlog.PSAnnounce, nil), 4},
		{"pub ps_publish ok of a", po.count(eventlog.PSPublish, func(e eventlog.Event) bool {
			return e.Str(eventlog.FieldTopic) == "a" && e.Str(eventlog.FieldResult) == pubsub.PublishOK
		}), 3},
		{"sub views of two members", so.count(eventlog.PSView, func(e eventlog.Event) bool {
			ms, _ := e.Fields[eventlog.FieldMembers].([]string)
			return len(ms) == 2 && e.Str(eventlog.FieldGroup) == s.Group()
		}), 1},
		{"member views passed on as they are (ps_view says them)", so.count(eventlog.View, nil) + po.count(eventlog.View, nil), 0},
		{"member starts passed on", so.count(eventlog.Start, nil), 1},
		{"sub directory leader", so.count(eventlog.PSDirLeader, func(e eventlog.Event) bool {
			l, _ := e.Int(eventlog.FieldLeader)
			return l >= 0
		}), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.who, c.got, c.want)
		}
	}
	so.mu.Lock()
	if want := map[string]int{"b": 2}; fmt.Sprint(so.filtered) != fmt.Sprint(want) {
		t.Errorf("the subscriber's OnFiltered saw %v, want %v", so.filtered, want)
	}
	so.mu.Unlock()

	st := sc.Status()
	if st.Name != "sub" || st.Addr != sc.Addr() || !slices.Equal(st.Directory, d.addrs) || st.DirectoryLeader < 0 || len(st.Moves) != 0 {
		t.Errorf("the subscriber's status: %+v", st)
	}
	if ts := topicStatus(st, "a"); ts != (pubsub.TopicStatus{Topic: "a", QoS: "total", Group: s.Group(), Role: pubsub.RoleSubscriber, Delivered: 3}) {
		t.Errorf("the subscriber's status of a: %+v", ts)
	}
	if ts := topicStatus(st, "b"); ts != (pubsub.TopicStatus{Topic: "b", Filtered: 2}) {
		t.Errorf("the subscriber's status of b: %+v", ts)
	}
	if len(st.Groups) != 1 || st.Groups[0].Group != s.Group() || len(st.Groups[0].Members) != 2 ||
		!slices.Equal(st.Groups[0].Topics, []string{"a"}) || st.Groups[0].View != a.View().ID.String() {
		t.Errorf("the subscriber's groups: %+v (the publisher's view %s)", st.Groups, a.View().ID)
	}
	// The publisher's own member filters a's events as it delivers them,
	// which may come after Publish returned.
	po.wait(ctx, t, func() bool {
		po.mu.Lock()
		defer po.mu.Unlock()
		return po.filtered["a"] == 3
	})
	pst := pc.Status()
	if ts := topicStatus(pst, "a"); ts.Role != pubsub.RolePublisher || ts.Published != 3 || ts.Filtered != 3 {
		t.Errorf("the publisher's status of a: %+v", ts)
	}
	i := slices.IndexFunc(pst.Groups, func(g pubsub.GroupStatus) bool { return g.Group == a.Group() })
	if len(pst.Groups) != 3 || i < 0 || !slices.Equal(pst.Groups[i].Topics, []string{"a", "b"}) {
		t.Errorf("the publisher's groups: %+v", pst.Groups)
	}
}

// TestStatusShowsMovesUnderWay moves a topic and holds its publisher just
// before it switches: both the publisher's and the subscriber's Status
// show the move, from the old group to the new, and their hooks see it
// end.
func TestStatusShowsMovesUnderWay(t *testing.T) {
	d := newDirUnchecked(t, 3)
	ctx := testCtx(t)
	var po, so observer
	pc, sc := d.observed(t, "pub", &po), d.observed(t, "sub", &so)
	a, err := pc.Announce(ctx, "a", "total")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pc.Announce(ctx, "c", "total")
	if err != nil {
		t.Fatal(err)
	}
	from, to := a.Group(), c.Group()
	if from == to {
		t.Fatalf("a and c share %s", from)
	}
	if _, err := sc.Subscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitMembers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	holding, release := make(chan struct{}), make(chan struct{})
	pubsub.SetBeforeSwitch(func() {
		close(holding)
		select {
		case <-release:
		case <-ctx.Done():
		}
	})
	t.Cleanup(func() { pubsub.SetBeforeSwitch(nil) })
	op, err := dirclient.New(dirclient.Config{Replicas: d.addrs, Key: d.key, Network: d.nw, Name: "operator"})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	if _, err := op.Move(ctx, "a", to); err != nil {
		t.Fatal(err)
	}
	select {
	case <-holding:
	case <-ctx.Done():
		t.Fatal("the publisher never came to switch")
	}
	// The publisher waited for the subscriber to be ready: it is in the
	// new group and waits for the switch.
	want := []pubsub.MoveStatus{{Topic: "a", Kind: pubsub.RolePublisher, From: from, To: to, Moves: 1}}
	if got := pc.Status().Moves; !slices.Equal(got, want) {
		t.Errorf("the publisher's moves: %+v, want %+v", got, want)
	}
	want[0].Kind = pubsub.RoleSubscriber
	st := sc.Status()
	if !slices.Equal(st.Moves, want) || topicStatus(st, "a").Group != from {
		t.Errorf("the subscriber's moves: %+v, want %+v; its topic: %+v", st.Moves, want, topicStatus(st, "a"))
	}
	if n := len(st.Groups); n != 2 {
		t.Errorf("the subscriber is in %d groups, want both", n)
	}
	close(release)
	// The subscriber switches on the publisher's marker.
	so.wait(ctx, t, func() bool { return so.count(eventlog.PSMove, ofTopic("a")) == 1 })
	po.wait(ctx, t, func() bool { return po.count(eventlog.PSMove, ofTopic("a")) == 1 })
	if m := pc.Status().Moves; len(m) != 0 {
		t.Errorf("the publisher's moves after the switch: %+v", m)
	}
}
