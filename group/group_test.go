package group

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// start starts n members of a group on loopback, each joining through the
// first.
func start(t *testing.T, n int, stackName, dir string) []*Group {
	t.Helper()
	var gs []*Group
	contact := ""
	for i := range n {
		cfg := Config{Name: "test", Stack: stackName, Listen: "127.0.0.1:0", Member: fmt.Sprintf("m%d", i), LogDir: dir, LogDeliveries: true}
		if contact != "" {
			cfg.Contacts = []string{contact}
		}
		g, err := Join(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		if contact == "" {
			contact = g.Me().Addr
		}
		gs = append(gs, g)
	}
	// Wait until everyone sees all n.
	for _, g := range gs {
		for len(g.View().Members) != n {
			select {
			case <-g.Views():
			case <-ctx(t).Done():
				t.Fatalf("%s never saw %d members: %v", g.Me().ID, n, g.View().IDs())
			}
		}
	}
	return gs
}

func TestGroupDeliversInTotalOrder(t *testing.T) {
	dir := t.TempDir()
	gs := start(t, 3, "total", dir)
	const k = 50
	errs := make(chan error, 3*k)
	for i, g := range gs {
		go func() {
			for j := range k {
				errs <- g.Send(ctx(t), fmt.Appendf(nil, "%d:%d", i, j))
			}
		}()
	}
	for range 3 * k {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var seqs [][]string
	for _, g := range gs {
		var got []string
		for len(got) < 3*k {
			select {
			case d := <-g.Deliveries():
				got = append(got, string(d.Data))
			case <-ctx(t).Done():
				t.Fatalf("%s delivered %d of %d", g.Me().ID, len(got), 3*k)
			}
		}
		seqs = append(seqs, got)
	}
	for i := 1; i < len(seqs); i++ {
		if !slices.Equal(seqs[0], seqs[i]) {
			t.Fatalf("member %d delivered in another order", i)
		}
	}
	for _, g := range gs {
		g.Close()
	}
	h, err := eventlog.MergeDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range check.Group(h, check.GroupOptions{Total: true}) {
		t.Error(v)
	}
}
