package group

import (
	"fmt"
	"sync"
	"testing"

	"github.com/conclave/conclave/transport"
)

// SendSeq names each message as every member delivers it, in vsync and
// in total, where the sequencer's order messages travel among its own
// and the delivered numbers count data messages only.
func TestSendSeqNamesTheDelivery(t *testing.T) {
	for _, st := range []string{"vsync", "total"} {
		t.Run(st, func(t *testing.T) {
			gs := startOn(t, &transport.Mem{}, 3, st, "")
			const k = 20
			type name struct {
				view, from string
				seq        uint64
			}
			var mu sync.Mutex
			sent := map[string]name{}
			var wg sync.WaitGroup
			for i, g := range gs {
				wg.Go(func() {
					for j := range k {
						data := fmt.Sprintf("%d:%d", i, j)
						s, err := g.SendSeq(ctx(t), []byte(data))
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						sent[data] = name{s.View.String(), g.Me().ID, s.Seq}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			for _, g := range gs {
				for range len(gs) * k {
					d := <-g.Deliveries()
					got := name{d.View.String(), d.From, d.Seq}
					if want := sent[string(d.Data)]; got != want {
						t.Fatalf("%s delivered %q as %v; SendSeq named it %v", g.Me().ID, d.Data, got, want)
					}
				}
			}
		})
	}
}

// A view installed through a flush is Flushed; the first view of a member
// that joined is not.
func TestFlushed(t *testing.T) {
	gs := startOn(t, &transport.Mem{}, 3, "vsync", "")
	first := gs[2].View().ID
	if gs[2].Flushed(first) {
		t.Errorf("the view %s that took %s in is flushed for it", first, gs[2].Me().ID)
	}
	if err := gs[2].Leave(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for _, g := range gs[:2] {
		for len(g.View().Members) != 2 {
			select {
			case <-g.Views():
			case <-ctx(t).Done():
				t.Fatalf("%s never saw %s leave", g.Me().ID, gs[2].Me().ID)
			}
		}
		if v := g.View().ID; !g.Flushed(v) {
			t.Errorf("%s installed %s, after a leave, not through a flush", g.Me().ID, v)
		}
	}
}
