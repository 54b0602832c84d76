package group

import (
	"context"
	"testing"
	"time"
)

// TestAddContactsMergesSplitGroup: two members found a group of the same
// name each, unaware of each other, and a member joins each. Neither
// coordinator has a contact to probe, so the two parts would stay apart.
// Given the other part's address, a member that does not coordinate
// passes it on to its coordinator, whose probe makes the smaller part
// dissolve into the larger: all four end in one view.
func TestAddContactsMergesSplitGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	join := func(name string, contacts ...string) *Group {
		t.Helper()
		g, err := Join(ctx, Config{Name: "split", Stack: "vsync", Listen: "127.0.0.1:0", Member: name, Key: testKey, Contacts: contacts})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		return g
	}
	a0, b0 := join("a0"), join("b0")
	a1, b1 := join("a1", a0.Me().Addr), join("b1", b0.Me().Addr)
	waitSize := func(g *Group, n int) {
		t.Helper()
		for len(g.View().Members) != n {
			select {
			case <-g.Views():
			case <-ctx.Done():
				t.Fatalf("%s is in view %v, want %d members", g.Me().ID, g.View().IDs(), n)
			}
		}
	}
	for _, g := range []*Group{a0, a1, b0, b1} {
		waitSize(g, 2)
	}
	if a0.View().ID == b0.View().ID {
		t.Fatal("one group from the start")
	}
	a1.AddContacts([]string{b1.Me().Addr})
	for _, g := range []*Group{a0, a1, b0, b1} {
		waitSize(g, 4)
	}
	if v := a0.View(); v.ID != b1.View().ID {
		t.Fatalf("views %v and %v", v.ID, b1.View().ID)
	}
}
