package pubsub_test

import (
	"testing"

	"github.com/conclave/conclave/dirclient"
)

// TestContactsRefreshed: a coordinator cut off from its group sets the
// group's contacts to its own part, then leaves and removes its address,
// so the directory lists nobody while the group lives on (sim seeds 3087
// and 3650). The group's coordinator sets the list again (it does every
// contactsRefresh), and a newcomer that founded a part of its own
// meanwhile is in the list it replaces: the two parts merge.
func TestContactsRefreshed(t *testing.T) {
	d := newDir(t, 3)
	ctx := testCtx(t)
	pc := d.client(t, "pub")
	p, err := pc.Announce(ctx, "a", "vsync")
	if err != nil {
		t.Fatal(err)
	}
	c1 := d.client(t, "s1")
	if _, err := c1.Subscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitMembers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	d.waitContacts(t, p.Group(), []string{pc.Addr(), c1.Addr()})

	stale, err := dirclient.New(dirclient.Config{Replicas: d.addrs, Key: d.key, Network: d.nw, Name: "stale"})
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	// Nothing listens at the stale coordinator's address.
	forget := func() {
		t.Helper()
		if _, err := stale.SetContacts(ctx, p.Group(), []string{"gone:1"}); err != nil {
			t.Fatal(err)
		}
		if err := stale.RemoveContact(ctx, p.Group(), "gone:1"); err != nil {
			t.Fatal(err)
		}
	}
	forget()
	d.waitContacts(t, p.Group(), []string{pc.Addr(), c1.Addr()})

	// A newcomer told of nobody founds a part of its own (unless the
	// refresh came first): the coordinator's next refresh learns of it,
	// and the parts merge.
	forget()
	c2 := d.client(t, "s2")
	if _, err := c2.Subscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitMembers(ctx, 3); err != nil {
		t.Fatal(err)
	}
	d.waitContacts(t, p.Group(), []string{pc.Addr(), c1.Addr(), c2.Addr()})
}
