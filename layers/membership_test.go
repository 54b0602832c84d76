package layers

import (
	"testing"

	"github.com/conclave/conclave/stack"
)

// member is one member's vsync stack driven by hand in a test.
type member struct {
	t   *testing.T
	st  *stack.Stack
	out []stack.Event
}

func newMember(t *testing.T, id, addr string, contacts ...string) *member {
	d, err := Load("vsync")
	if err != nil {
		t.Fatal(err)
	}
	st, err := Registry().Build(d, stack.Member{ID: id, Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	m := &member{t: t, st: st}
	m.step(stack.Start{})
	m.step(stack.Join{Contacts: contacts})
	return m
}

func (m *member) step(in stack.Event) {
	m.t.Helper()
	if err := m.st.Step(0, in); err != nil {
		m.t.Fatal(err)
	}
	m.out = append(m.out, m.st.Ready()...)
}

// gms has member from send a membership message to m.
func (m *member) gms(from stack.Member, hdr []byte) {
	m.t.Helper()
	m.step(stack.Recv{From: from, Msg: stack.Msg{Hdrs: [][]byte{hdr, {detectData}}}})
}

// sent returns the membership messages m sent to id, their headers' kinds
// first, and forgets everything m did.
func (m *member) sent(id string) []byte {
	var kinds []byte
	for _, e := range m.out {
		if o, ok := e.(stack.Out); ok && o.To.ID == id {
			kinds = append(kinds, o.Msg.Hdrs[len(o.Msg.Hdrs)-2][0])
		}
	}
	m.out = nil
	return kinds
}

func (m *member) view() stack.ViewID {
	var v stack.ViewID
	for _, e := range m.out {
		if i, ok := e.(stack.Install); ok {
			v = i.View.ID
		}
	}
	return v
}

func install(flush stack.FlushID, v stack.View) []byte {
	return (&stack.Enc{B: []byte{gmsInstall}}).ViewID(flush.View).Uint(flush.Attempt).ViewID(v.ID).Members(v.Members).Uint(0).B
}

// TestFlushOfLeftViewRefused: m2 missed the Install of view 2 and, having
// suspected the coordinator m0, flushes view 1 with m1 in it. m1, in view
// 2 with m2, refuses: otherwise m2 would wait for its answer while m1
// waited for m2 to run a flush of view 2 (sweep seed 199 before the flush
// timeout).
func TestFlushOfLeftViewRefused(t *testing.T) {
	m0 := stack.Member{ID: "m0.1", Addr: "m0"}
	m1 := stack.Member{ID: "m1.1", Addr: "m1"}
	m2 := stack.Member{ID: "m2.1", Addr: "m2"}
	x := newMember(t, m1.ID, m1.Addr, "m0", "m2")
	v1 := stack.View{ID: stack.ViewID{Seq: 1, Coord: m0.ID}, Members: []stack.Member{m0, m1, m2}}
	x.gms(m0, install(stack.FlushID{}, v1))
	if got := x.view(); got != v1.ID {
		t.Fatalf("view %v, want %v", got, v1.ID)
	}
	x.out = nil
	x.gms(m0, (&stack.Enc{B: []byte{gmsFlush}}).ViewID(v1.ID).Uint(1).B)
	if got := x.sent(m0.ID); len(got) != 1 || got[0] != gmsFlushOk {
		t.Fatalf("m1 answered a flush with %v", got)
	}
	v2 := stack.View{ID: stack.ViewID{Seq: 2, Coord: m0.ID}, Members: []stack.Member{m0, m1, m2}}
	x.gms(m0, install(stack.FlushID{View: v1.ID, Coord: m0.ID, Attempt: 1}, v2))
	if got := x.view(); got != v2.ID {
		t.Fatalf("view %v, want %v", got, v2.ID)
	}
	x.out = nil
	x.gms(m2, (&stack.Enc{B: []byte{gmsFlush}}).ViewID(v1.ID).Uint(1).B)
	if got := x.sent(m2.ID); len(got) != 1 || got[0] != gmsRefuse {
		t.Fatalf("m1 answered a flush of the view it left with %v, want a refusal", got)
	}
	// A flush of a view numbered above its own may come before the view's
	// Install: no refusal.
	v3 := stack.ViewID{Seq: 3, Coord: m2.ID}
	x.gms(m2, (&stack.Enc{B: []byte{gmsFlush}}).ViewID(v3).Uint(1).B)
	if got := x.sent(m2.ID); len(got) != 0 {
		t.Fatalf("m1 answered a flush of a coming view with %v", got)
	}
}
