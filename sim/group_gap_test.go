package sim

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/layers"
	"github.com/conclave/conclave/stack"
)

// dropper is a test layer put between membership and vsync: it drops the
// vsync data messages from the member whose id starts with from while drop
// says so, as a message that goes missing on a connection that stays up
// (a bug, a forged number) would leave a gap.
type dropper struct {
	from    string
	drop    func(now time.Duration, n int) bool // n counts from's data messages
	seq     func(view []byte, seq uint64) bool  // or by view and number
	n       int
	dropped int
}

func (d *dropper) Up(c *stack.Ctx, ev stack.Event) {
	if r, ok := ev.(stack.Recv); ok && strings.HasPrefix(r.From.ID, d.from) {
		// vsync's header is outermost here; a data message's kind is 0.
		if h, _, ok := r.Msg.Pop(); ok && len(h) > 0 && h[0] == 0 {
			d.n++
			dec := &stack.Dec{B: h[1:]}
			dec.ViewID()
			view := h[1 : len(h)-len(dec.B)]
			if d.drop != nil && d.drop(c.Now(), d.n) || d.seq != nil && d.seq(view, dec.Uint()) {
				d.dropped++
				return
			}
		}
	}
	c.Up(ev)
}

func (d *dropper) Down(c *stack.Ctx, ev stack.Event) { c.Down(ev) }

// gapStack builds name's stack, with d between membership and vsync at the
// member whose id starts with at.
func gapStack(t *testing.T, name, at string, d *dropper) func(stack.Member) *stack.Stack {
	desc, err := layers.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	reg := layers.Registry()
	return func(me stack.Member) *stack.Stack {
		st, err := reg.Build(desc, me)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(me.ID, at) {
			return st
		}
		ls := st.Layers()
		kinds := slices.Insert(desc.Kinds(), 2, "dropper")
		return stack.New(me, kinds, append(ls[:2:2], append([]stack.Layer{d}, ls[2:]...)...))
	}
}

// TestGroupGapRetransmitted: one message of m1 goes missing on its way to
// m2, on a connection that stays up. m2 asks m1 for it again and delivers
// everything m1 sends, in the same view: no member is suspected. Before,
// m2 delivered nothing more from m1 until a flush, and none came.
func TestGroupGapRetransmitted(t *testing.T) {
	for _, name := range []string{"vsync", "total"} {
		t.Run(name, func(t *testing.T) {
			d := &dropper{from: "m1.", drop: func(_ time.Duration, n int) bool { return n == 20 }}
			s := NewGroup(GroupConfig{N: 3, Seed: seed(5), Stack: gapStack(t, name, "m2.", d)})
			for i := range 3 {
				s.Start(i)
			}
			settle(t, s, 5*time.Second)
			v, _ := s.View(0)
			traffic(s, 2*time.Millisecond, s.Now()+500*time.Millisecond)
			s.RunFor(time.Second)
			if d.dropped != 1 {
				t.Fatalf("dropped %d messages, want 1", d.dropped)
			}
			if now, _ := s.View(0); now.ID != v.ID || !s.Agreed() {
				t.Fatalf("view %v, want %v still: a gap that retransmission fills needs no view change", now.ID, v.ID)
			}
			sent, got := 0, 0
			for _, e := range s.History() {
				switch {
				case e.Ev == "send" && e.Node == "m1":
					sent++
				case e.Ev == "deliver" && e.Node == "m2" && e.Str("from") == s.Member(1):
					got++
				}
			}
			if sent == 0 || got != sent {
				t.Fatalf("m2 delivered %d of m1's %d messages", got, sent)
			}
			groupCheck(t, s, name == "total")
		})
	}
}

// TestGroupGapSuspectsSender: m1's 20th message of a view never reaches
// m2, nor do its retransmissions, on a connection that stays up. The gap
// does not fill: within gap-timeout m2 suspects m1, the coordinator's flush
// gives m2 what m0 holds and excludes m1, and deliveries go on; m1 merges
// back. Every property holds.
func TestGroupGapSuspectsSender(t *testing.T) {
	for _, name := range []string{"vsync", "total"} {
		t.Run(name, func(t *testing.T) {
			var view []byte // the view of the first copy of message 20
			d := &dropper{from: "m1.", seq: func(v []byte, seq uint64) bool {
				if seq == 20 && view == nil {
					view = v
				}
				return seq == 20 && string(v) == string(view)
			}}
			s := NewGroup(GroupConfig{N: 3, Seed: seed(6), Stack: gapStack(t, name, "m2.", d)})
			for i := range 3 {
				s.Start(i)
			}
			settle(t, s, 5*time.Second)
			traffic(s, 2*time.Millisecond, s.Now()+3*time.Second)
			s.RunFor(3 * time.Second)
			var gapAt, suspectAt time.Time
			for _, e := range s.History() {
				switch {
				case e.Node != "m2":
				case e.Ev == "gap" && gapAt.IsZero():
					gapAt = e.TS
				case e.Ev == "suspect" && e.Str("cause") == "gap" && e.Str("of") == s.Member(1):
					suspectAt = e.TS
				}
			}
			if gapAt.IsZero() || suspectAt.IsZero() {
				t.Fatalf("gap at %v, suspicion of m1 at %v: want both", gapAt, suspectAt)
			}
			if after := suspectAt.Sub(gapAt); after < layers.DefaultGapTimeout || after > layers.DefaultGapTimeout+300*time.Millisecond {
				t.Errorf("m2 suspected m1 %v after the gap, want about gap-timeout (%v)", after, layers.DefaultGapTimeout)
			}
			settle(t, s, 10*time.Second)
			groupCheck(t, s, name == "total")
			// Deliveries went on: m2 delivered from every member after it
			// suspected m1.
			late := map[string]bool{}
			for _, e := range s.History() {
				if e.Ev == "deliver" && e.Node == "m2" && e.TS.After(suspectAt) {
					late[strings.SplitN(e.Str("from"), ".", 2)[0]] = true
				}
			}
			if len(late) != 3 {
				t.Fatalf("after suspecting m1, m2 delivered from %v only", late)
			}
		})
	}
}
