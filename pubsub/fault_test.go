package pubsub_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/conclave/conclave/group"
	"github.com/conclave/conclave/pubsub"
)

// hold returns a delivery fault that holds back the message numbered
// first (from 0) and hands it over after the one numbered after, or drops
// it if after is negative.
func hold(first, after int) func(<-chan group.Delivery) <-chan group.Delivery {
	return func(in <-chan group.Delivery) <-chan group.Delivery {
		out := make(chan group.Delivery)
		go func() {
			defer close(out)
			var held *group.Delivery
			i := 0
			for d := range in {
				if d.Install != nil { // views pass; only messages count
					out <- d
					continue
				}
				switch {
				case i == first:
					held = &d
				default:
					out <- d
				}
				if i == after && held != nil {
					out <- *held
					held = nil
				}
				i++
			}
			if held != nil && after >= 0 {
				out <- *held
			}
		}()
		return out
	}
}

// TestCheckersCatchFaults runs two publishers of a total order topic and
// three subscribers, the first broken on purpose, through the real
// clients, and shows that check.PubSub finds what the fault did in their
// logs, and nothing in a run without one. The publishers take turns, so
// the order is p0-0, p1-0, p0-1, p1-1... (each with an event of another
// topic of the group after it).
func TestCheckersCatchFaults(t *testing.T) {
	const n = 5
	for _, c := range []struct {
		name  string
		qos   string
		fault func(*pubsub.Client)
		lost  int      // events the broken subscriber does not get
		want  []string // rules broken
	}{
		{name: "none", qos: "total"},
		{name: "none", qos: "vsync"},
		{name: "an event handed over after the next one of another publisher", qos: "total",
			fault: func(c *pubsub.Client) { pubsub.BreakDeliveries(c, hold(0, 2)) }, want: []string{"TopicOrder"}},
		{name: "an event handed over after the next one of its publisher", qos: "vsync",
			fault: func(c *pubsub.Client) { pubsub.BreakDeliveries(c, hold(0, 4)) }, want: []string{"FIFO"}},
		{name: "an event dropped", qos: "total",
			fault: func(c *pubsub.Client) { pubsub.BreakDeliveries(c, hold(4, -1)) }, lost: 1, want: []string{"FIFO", "Stable", "VSync"}},
		{name: "another topic let through", qos: "vsync",
			fault: func(c *pubsub.Client) {
				pubsub.BreakFilter(c, func(t string) string { return "news" })
			}, lost: -2 * n, want: []string{"TopicIsolation"}},
	} {
		t.Run(c.qos+"/"+c.name, func(t *testing.T) {
			d := newDirUnchecked(t, 3)
			ctx := testCtx(t)
			// Three groups: two fillers take the first two, "news" the
			// last, and "weather", announced by the same clients, adds no
			// waste there (FreeThenLeastWaste).
			setup := d.client(t, "setup")
			for _, topic := range []string{"filler1", "filler2"} {
				if _, err := setup.Announce(ctx, topic, c.qos); err != nil {
					t.Fatal(err)
				}
			}
			var pcs []*pubsub.Client
			var pubs, others []*pubsub.Publisher
			for i := range 2 {
				pc := d.client(t, fmt.Sprintf("pub%d", i))
				p, err := pc.Announce(ctx, "news", c.qos)
				if err != nil {
					t.Fatal(err)
				}
				// A topic sharing the group, that nobody subscribes to.
				o, err := pc.Announce(ctx, "weather", c.qos)
				if err != nil {
					t.Fatal(err)
				}
				if o.Group() != p.Group() {
					t.Fatalf("weather is in group %s, news in %s: want them to share", o.Group(), p.Group())
				}
				pcs, pubs, others = append(pcs, pc), append(pubs, p), append(others, o)
			}
			var subs []*pubsub.Subscription
			var scs []*pubsub.Client
			for i := range 3 {
				sc := d.client(t, fmt.Sprintf("sub%d", i))
				if i == 0 && c.fault != nil {
					c.fault(sc)
				}
				s, err := sc.Subscribe(ctx, "news")
				if err != nil {
					t.Fatal(err)
				}
				scs, subs = append(scs, sc), append(subs, s)
			}
			for _, p := range pubs {
				if err := p.WaitMembers(ctx, 5); err != nil {
					t.Fatal(err)
				}
			}
			for k := range n {
				for i, p := range pubs {
					if err := p.Publish(ctx, fmt.Appendf(nil, "p%d-%d", i, k)); err != nil {
						t.Fatal(err)
					}
					if err := others[i].Publish(ctx, []byte("rain")); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i, s := range subs {
				want := 2 * n
				if i == 0 {
					want -= c.lost
				}
				read(t, s, want)
			}
			// The last subscriber leaves first: the others pass together
			// to the next view through the coordinator's (pub0's) flush.
			// The coordinator leaves last, alone: a leaving coordinator's
			// Install may miss a member, which then goes on alone.
			for _, cl := range []*pubsub.Client{setup, scs[2], scs[0], scs[1], pcs[1], pcs[0]} {
				cl.Close()
			}
			var got []string
			for _, v := range d.violations(t) {
				if !slices.Contains(got, v.Rule) {
					got = append(got, v.Rule)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Errorf("check.PubSub found %v, want %v:", got, c.want)
				for _, v := range d.violations(t) {
					t.Log(v)
				}
			}
		})
	}
}
