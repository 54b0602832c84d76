package pubsub_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/conclave/conclave/dirclient"
	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/pubsub"
)

// list returns the directory's listing.
func (d *testDir) list(t *testing.T) directory.Listing {
	t.Helper()
	dc, err := dirclient.New(dirclient.Config{Replicas: d.addrs, Key: d.key, Network: d.nw})
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	l, err := dc.List(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestWasteReachesDirectory has topics a and d share a group, with a
// subscriber each and their publisher: once the clients close (and
// report), the directory's counts per topic and waste of the group are
// those the clients counted.
func TestWasteReachesDirectory(t *testing.T) {
	// No moves: the reports would move d out of a's group.
	d := newDirWith(t, directory.StateConfig{MaxGroups: 3, MoveSpacing: -1})
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
	pa, pd := pubs[0], pubs[3]
	if pa.Group() != pd.Group() {
		t.Fatalf("topic d is in %s, a in %s: want them to share", pd.Group(), pa.Group())
	}
	sa, sd := d.client(t, "sub-a"), d.client(t, "sub-d")
	subA, err := sa.Subscribe(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	subD, err := sd.Subscribe(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if err := pa.WaitMembers(ctx, 3); err != nil {
		t.Fatal(err)
	}
	const na, nd = 12, 4
	for k := range na {
		if err := pa.Publish(ctx, fmt.Appendf(nil, "a%d", k)); err != nil {
			t.Fatal(err)
		}
	}
	for k := range nd {
		if err := pd.Publish(ctx, fmt.Appendf(nil, "d%d", k)); err != nil {
			t.Fatal(err)
		}
	}
	read(t, subA, na)
	read(t, subD, nd)
	want := map[string]pubsub.Stats{}
	for _, c := range []*pubsub.Client{sa, sd, pc} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		for topic, s := range c.Stats() {
			w := want[topic]
			w.Delivered += s.Delivered
			w.Filtered += s.Filtered
			want[topic] = w
		}
	}
	// Every event reached the three members: its subscriber delivered it,
	// the two others filtered it.
	if want["a"] != (pubsub.Stats{Delivered: na, Filtered: 2 * na}) || want["d"] != (pubsub.Stats{Delivered: nd, Filtered: 2 * nd}) {
		t.Fatalf("the clients counted %+v", want)
	}
	l := d.list(t)
	var delivered, filtered uint64
	for _, ti := range l.Topics {
		if ti.Topic != "a" && ti.Topic != "d" {
			continue
		}
		w := want[ti.Topic]
		if ti.Delivered != w.Delivered || ti.Filtered != w.Filtered || ti.Rate <= 0 {
			t.Errorf("topic %s in the directory: %d delivered, %d filtered, %.2f/s; the clients counted %+v", ti.Topic, ti.Delivered, ti.Filtered, ti.Rate, w)
		}
		delivered += w.Delivered
		filtered += w.Filtered
	}
	ratio := float64(filtered) / float64(delivered+filtered)
	for _, g := range l.Groups {
		if g.Name == pa.Group() && (g.Delivered != delivered || g.Filtered != filtered || g.Waste != ratio) {
			t.Errorf("group %s in the directory: %+v, want waste %.3f (%d delivered, %d filtered)", g.Name, g, ratio, delivered, filtered)
		}
	}
}

// contactsOf returns the contacts the directory lists for group.
func contactsOf(t *testing.T, l directory.Listing, group string) []string {
	for _, g := range l.Groups {
		if g.Name == group {
			return g.Contacts
		}
	}
	t.Fatalf("no group %s", group)
	return nil
}

// waitContacts waits until the directory lists want as the contacts of
// group: the coordinator sets them after it installs a view.
func (d *testDir) waitContacts(t *testing.T, group string, want []string) {
	t.Helper()
	slices.Sort(want)
	ctx := testCtx(t)
	var got []string
	for {
		if got = contactsOf(t, d.list(t), group); slices.Equal(got, want) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("contacts of %s: %v, want %v", group, got, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestContactsFollowViews checks that the directory's contacts of a
// group are its members' addresses: a member that leaves, or crashes, is
// no longer listed once the others install a view without it, and the
// last to leave removes its own address.
func TestContactsFollowViews(t *testing.T) {
	d := newDir(t, 3)
	ctx := testCtx(t)
	pc := d.client(t, "pub")
	p, err := pc.Announce(ctx, "a", "vsync")
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := d.client(t, "s1"), d.client(t, "s2")
	for _, c := range []*pubsub.Client{c1, c2} {
		if _, err := c.Subscribe(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.WaitMembers(ctx, 3); err != nil {
		t.Fatal(err)
	}
	d.waitContacts(t, p.Group(), []string{pc.Addr(), c1.Addr(), c2.Addr()})

	c1.Close()
	d.waitContacts(t, p.Group(), []string{pc.Addr(), c2.Addr()})

	c2.Crash()
	d.waitContacts(t, p.Group(), []string{pc.Addr()})
	if n := len(p.View().Members); n != 1 {
		t.Fatalf("the publisher's view has %d members after the others left", n)
	}
	// A newcomer joins through the listed contact.
	c3 := d.client(t, "s3")
	if _, err := c3.Subscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitMembers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	d.waitContacts(t, p.Group(), []string{pc.Addr(), c3.Addr()})
	// The last member to leave removes its own address.
	c3.Close()
	d.waitContacts(t, p.Group(), []string{pc.Addr()})
	pc.Close()
	if got := contactsOf(t, d.list(t), p.Group()); got != nil {
		t.Fatalf("contacts of %s after every member left: %v", p.Group(), got)
	}
}
