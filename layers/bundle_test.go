package layers_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/conclave/conclave/stack"
)

// TestBundleKeepsOrderAndNumbers: the messages a member sends in one
// batch travel as one message, and every member delivers each of them, in
// one total order, numbered as if they had travelled alone: Seq counts the
// sender's messages, Order the view's. Each sender hears Acked for each
// message, with the number it was delivered under.
func TestBundleKeepsOrderAndNumbers(t *testing.T) {
	for _, name := range []string{"total", "vsync"} {
		t.Run(name, func(t *testing.T) {
			net := newMemNet(t, name, 3)
			net.record = true
			net.delivers, net.acks, net.frames = map[int][]stack.Deliver{}, map[int][]stack.Acked{}, map[[2]int]int{}
			counts := []int{5, 3, 1}
			tok := uint64(0)
			sent := map[uint64]string{}
			for i, st := range net.sts {
				for k := range counts[i] {
					tok++
					data := fmt.Sprintf("m%d-%d", i, k+1)
					sent[tok] = data
					st.Step(net.now, stack.Send{Msg: stack.Msg{Data: []byte(data)}, Token: tok})
				}
				net.collect(i)
				want := 1
				if name == "total" && i == 0 {
					want = 2 // and the sequencer's order
				}
				for j := range net.sts {
					if j != i && net.frames[[2]int{i, j}] != want {
						t.Fatalf("member %d sent %d messages to %d for a batch of %d, want %d", i, net.frames[[2]int{i, j}], j, counts[i], want)
					}
				}
				clear(net.frames)
			}
			for net.run() {
			}
			var first []string
			for i := range net.sts {
				ds := net.delivers[i]
				if len(ds) != 9 {
					t.Fatalf("member %d delivered %d messages, want 9", i, len(ds))
				}
				var order []string
				seqs := map[string]uint64{}
				for k, d := range ds {
					seqs[d.From]++
					if want := fmt.Sprintf("m%d-%d", net.byID[d.From], seqs[d.From]); string(d.Msg.Data) != want || d.Seq != seqs[d.From] {
						t.Fatalf("member %d delivered %q as %s's message %d, want %q as %d", i, d.Msg.Data, d.From, d.Seq, want, seqs[d.From])
					}
					if want := uint64(k + 1); name == "total" && d.Order != want {
						t.Fatalf("member %d delivered %q at order %d, want %d", i, d.Msg.Data, d.Order, want)
					}
					order = append(order, string(d.Msg.Data))
				}
				if name == "total" {
					if first == nil {
						first = order
					} else if !slices.Equal(first, order) {
						t.Fatalf("member %d delivered in the order %v, member 0 in %v", i, order, first)
					}
				}
			}
			for i := range net.sts {
				for _, a := range net.acks[i] {
					if a.Lost {
						t.Fatalf("member %d: message %q lost", i, sent[a.Token])
					}
					if want := fmt.Sprintf("m%d-%d", i, a.Seq); sent[a.Token] != want {
						t.Fatalf("member %d: Acked names %q message %d (%s)", i, sent[a.Token], a.Seq, want)
					}
					delete(sent, a.Token)
				}
			}
			if len(sent) != 0 {
				t.Fatalf("no Acked for %v", sent)
			}
		})
	}
}
