package layers

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/conclave/conclave/stack"
)

// data is message seq of a sender in view v, as it arrives at the bottom
// of a receiver's stack (the shipped vsync stack: a message alone, not in a
// bundle).
func data(v stack.ViewID, seq uint64, text string) stack.Msg {
	hdr := (&stack.Enc{B: []byte{vsData}}).ViewID(v).Uint(seq).Uint(0).B
	return stack.Msg{Hdrs: [][]byte{{bundleOne}, hdr, gmsDataHdr, detectDataHdr}, Data: []byte(text)}
}

// delivered returns what m delivered from sender, in order.
func (m *member) delivered(from string) []string {
	var out []string
	for _, e := range m.out {
		if d, ok := e.(stack.Deliver); ok && d.From == from {
			out = append(out, string(d.Msg.Data))
		}
	}
	return out
}

// nacks returns the numbers in the nacks m sent to id.
func (m *member) nacks(id string) []uint64 {
	var out []uint64
	for _, e := range m.out {
		o, ok := e.(stack.Out)
		if !ok || o.To.ID != id || len(o.Msg.Hdrs) != 3 || o.Msg.Hdrs[0][0] != vsNack {
			continue
		}
		d := &stack.Dec{B: o.Msg.Hdrs[0][1:]}
		d.ViewID()
		out = append(out, d.Uint())
	}
	return out
}

// TestGapRetransmitted: a message of m1 goes missing on its way to x. x
// asks m1 for it again (a nack) and, once it comes, delivers it and the
// rest in order. Before, x delivered nothing more from m1 until some flush,
// and none came: the group was frozen for m1's messages (issue 9).
func TestGapRetransmitted(t *testing.T) {
	m0 := stack.Member{ID: "m0.1", Addr: "m0"}
	m1 := stack.Member{ID: "m1.1", Addr: "m1"}
	x := newMember(t, "x.1", "x", "m0", "m1")
	v1 := stack.View{ID: stack.ViewID{Seq: 1, Coord: m0.ID}, Members: []stack.Member{m0, m1, x.st.Me()}}
	x.gms(m0, install(stack.FlushID{}, v1))
	x.out = nil
	x.stepAt(0, stack.Recv{From: m1, Msg: data(v1.ID, 1, "a")})
	x.stepAt(time.Millisecond, stack.Recv{From: m1, Msg: data(v1.ID, 3, "c")}) // 2 went missing
	if got := x.nacks(m1.ID); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("after a gap x sent m1 nacks %v, want one for what follows 1", got)
	}
	if !x.logged("gap") {
		t.Fatal("gap not logged")
	}
	// The nack is asked again until the gap fills.
	for len(x.nacks(m1.ID)) < 2 && x.st.Deadline() < DefaultGapTimeout/2 {
		x.stepAt(x.st.Deadline(), stack.Tick{})
	}
	if got := x.nacks(m1.ID); len(got) != 2 {
		t.Fatalf("x sent nacks %v, want a second one within %v", got, DefaultGapTimeout/2)
	}
	now := x.st.Deadline()
	for seq, text := range []string{"b", "c", "d"} {
		x.stepAt(now, stack.Recv{From: m1, Msg: data(v1.ID, uint64(seq+2), text)})
	}
	if got := x.delivered(m1.ID); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("x delivered %v from m1, want a b c d", got)
	}
	if d := x.st.Layers()[2].(*vsync).Deadline(); d != stack.Never {
		t.Fatalf("vsync's deadline is %v with the gap filled", d)
	}
}

// TestGapResendsHeldMessages: a member asked again for its messages sends
// those after the number in the nack, with their numbers.
func TestGapResendsHeldMessages(t *testing.T) {
	m0 := stack.Member{ID: "m0.1", Addr: "m0"}
	y := stack.Member{ID: "y.1", Addr: "y"}
	x := newMember(t, "x.1", "x", "m0", "y")
	v1 := stack.View{ID: stack.ViewID{Seq: 1, Coord: m0.ID}, Members: []stack.Member{m0, x.st.Me(), y}}
	x.gms(m0, install(stack.FlushID{}, v1))
	for _, text := range []string{"a", "b", "c"} {
		x.step(stack.Send{Msg: stack.Msg{Data: []byte(text)}})
	}
	x.out = nil
	nack := (&stack.Enc{B: []byte{vsNack}}).ViewID(v1.ID).Uint(1).B
	x.step(stack.Recv{From: y, Msg: stack.Msg{Hdrs: [][]byte{nack, gmsDataHdr, detectDataHdr}}})
	var got []string
	for _, e := range x.out {
		if o, ok := e.(stack.Out); ok && o.To.ID == y.ID {
			d := &stack.Dec{B: o.Msg.Hdrs[len(o.Msg.Hdrs)-3][1:]}
			d.ViewID()
			got = append(got, fmt.Sprintf("%d:%s", d.Uint(), o.Msg.Data))
		}
		if o, ok := e.(stack.Out); ok && o.To.ID == m0.ID {
			t.Fatalf("a nack from y made x send m0 %v", o.Msg)
		}
	}
	if !slices.Equal(got, []string{"2:b", "3:c"}) {
		t.Fatalf("x resent %v to y, want 2:b 3:c", got)
	}
}

// TestGapSuspectsSender: a gap that does not fill within gap-timeout (m1
// sent a message numbered far beyond what it sent, or does not answer
// nacks) makes x suspect m1 and report it to the coordinator, whose flush
// excludes it. Never a frozen group.
func TestGapSuspectsSender(t *testing.T) {
	m0 := stack.Member{ID: "m0.1", Addr: "m0"}
	m1 := stack.Member{ID: "m1.1", Addr: "m1"}
	x := newMember(t, "x.1", "x", "m0", "m1")
	v1 := stack.View{ID: stack.ViewID{Seq: 1, Coord: m0.ID}, Members: []stack.Member{m0, m1, x.st.Me()}}
	x.gms(m0, install(stack.FlushID{}, v1))
	x.out = nil
	x.stepAt(0, stack.Recv{From: m1, Msg: data(v1.ID, 1_000_000, "forged")})
	beat := func(from stack.Member) stack.Recv {
		return stack.Recv{From: from, Msg: stack.Msg{Hdrs: [][]byte{{detectBeat}}}}
	}
	var reported time.Duration
	for now := time.Duration(0); now < 3*DefaultGapTimeout && reported == 0; now += 50 * time.Millisecond {
		x.stepAt(now, beat(m0)) // both alive and well
		x.stepAt(now, beat(m1))
		x.stepAt(now, stack.Tick{})
		for _, e := range x.out {
			if o, ok := e.(stack.Out); ok && o.To.ID == m0.ID && len(o.Msg.Hdrs) == 2 && o.Msg.Hdrs[0][0] == gmsSuspect {
				reported = now
			}
		}
		x.out = nil
	}
	if reported == 0 {
		t.Fatal("x never reported m1, whose gap never fills")
	}
	if reported < DefaultGapTimeout || reported > DefaultGapTimeout+DefaultGapTimeout/nacksPerGap {
		t.Fatalf("m1 reported %v after its gap opened, want about gap-timeout %v", reported, DefaultGapTimeout)
	}
}

// TestGapOwnPause: x's process stops right after a gap opens and resumes
// after more than gap-timeout, its timer running before the
// retransmission waiting in its input: its own pause is not the sender's
// silence, so it asks again rather than suspect m1.
func TestGapOwnPause(t *testing.T) {
	m0 := stack.Member{ID: "m0.1", Addr: "m0"}
	m1 := stack.Member{ID: "m1.1", Addr: "m1"}
	x := newMember(t, "x.1", "x", "m0", "m1")
	v1 := stack.View{ID: stack.ViewID{Seq: 1, Coord: m0.ID}, Members: []stack.Member{m0, m1, x.st.Me()}}
	x.gms(m0, install(stack.FlushID{}, v1))
	x.stepAt(0, stack.Recv{From: m1, Msg: data(v1.ID, 2, "b")}) // 1 went missing
	x.out = nil
	resume := 2 * DefaultGapTimeout
	x.stepAt(resume, stack.Tick{})
	if x.logged("suspect") {
		t.Fatal("x suspected m1 on resuming from its own pause")
	}
	if got := x.nacks(m1.ID); len(got) != 1 {
		t.Fatalf("x sent nacks %v on resuming, want one", got)
	}
	x.stepAt(resume, stack.Recv{From: m1, Msg: data(v1.ID, 1, "a")})
	x.stepAt(resume, stack.Recv{From: m1, Msg: data(v1.ID, 2, "b")})
	if got := x.delivered(m1.ID); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("x delivered %v from m1, want a b", got)
	}
}
