package check

import (
	"fmt"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// gh builds a group history: view(member, id, prev, flushed, members...),
// deliver(member, view, from, seq, order, msg), acked(member, msg).
type gh []eventlog.Event

func (h *gh) add(node string, ev string, f map[string]any) *gh {
	*h = append(*h, eventlog.Event{TS: time.Unix(int64(len(*h)), 0), Node: node, LC: uint64(len(*h) + 1), Ev: ev, Fields: f})
	return h
}

func (h *gh) view(m, id string, flushed bool, members ...string) *gh {
	return h.add(m[:2], "view", map[string]any{"member": m, "view": id, "flushed": flushed, "members": members})
}

func (h *gh) deliver(m, view, from string, seq, order int, msg string) *gh {
	return h.add(m[:2], "deliver", map[string]any{"member": m, "view": view, "from": from, "seq": seq, "order": order, "msg": msg})
}

func (h *gh) acked(m, msg string) *gh {
	return h.add(m[:2], "acked", map[string]any{"member": m, "msg": msg, "lost": false})
}

// goodGroup: three members in view 1; a and b send; c is excluded and the
// others pass to view 2 having delivered the same, in the same order.
func goodGroup() *gh {
	h := &gh{}
	for _, m := range []string{"m0.1", "m1.1", "m2.1"} {
		h.view(m, "1@m0.1", false, "m0.1", "m1.1", "m2.1")
	}
	for _, m := range []string{"m0.1", "m1.1"} {
		h.deliver(m, "1@m0.1", "m0.1", 1, 1, "m0.1:1")
		h.deliver(m, "1@m0.1", "m1.1", 1, 2, "m1.1:1")
		h.deliver(m, "1@m0.1", "m0.1", 2, 3, "m0.1:2")
	}
	h.acked("m0.1", "m0.1:1")
	for _, m := range []string{"m0.1", "m1.1"} {
		h.view(m, "2@m0.1", true, "m0.1", "m1.1")
	}
	return h
}

func TestGoodGroupHistoryPasses(t *testing.T) {
	if v := Group(*goodGroup(), GroupOptions{Total: true, Quiet: true}); len(v) != 0 {
		t.Fatal(v)
	}
}

func TestEachGroupCheckerCanFail(t *testing.T) {
	// Two members install view 1 with different members.
	h := goodGroup()
	h.view("m2.1", "2@m0.1", false, "m0.1", "m2.1")
	expect(t, "view agreement", ViewAgreement(*h), "view-agreement", 1)

	// m1 passes to view 2 without m0.1:2.
	h = &gh{}
	g := *goodGroup()
	for _, e := range g {
		if !(e.Str("member") == "m1.1" && e.Str("msg") == "m0.1:2") {
			*h = append(*h, e)
		}
	}
	expect(t, "view synchrony", ViewSynchrony(*h), "view-synchrony", 1)
	expect(t, "acked delivered (not acked: none)", AckedDelivered(*h, true), "acked-delivered", 0)

	// m1 delivers m0.1:2 before m0.1:1: FIFO and total order break.
	h = &gh{}
	for _, m := range []string{"m0.1", "m1.1"} {
		h.view(m, "1@m0.1", false, "m0.1", "m1.1")
	}
	h.deliver("m0.1", "1@m0.1", "m0.1", 1, 1, "m0.1:1").deliver("m0.1", "1@m0.1", "m0.1", 2, 2, "m0.1:2")
	h.deliver("m1.1", "1@m0.1", "m0.1", 2, 1, "m0.1:2").deliver("m1.1", "1@m0.1", "m0.1", 1, 2, "m0.1:1")
	expect(t, "fifo", SenderFIFO(*h), "sender-fifo", 2)
	expect(t, "total order", TotalOrder(*h), "total-order", 1)

	// A gap in the total order numbering.
	h = &gh{}
	h.view("m0.1", "1@m0.1", false, "m0.1")
	h.deliver("m0.1", "1@m0.1", "m0.1", 1, 2, "m0.1:1")
	expect(t, "order gap", TotalOrder(*h), "total-order", 1)

	// An acknowledged message missing at a member that went on.
	h = &gh{}
	for _, m := range []string{"m0.1", "m1.1"} {
		h.view(m, "1@m0.1", false, "m0.1", "m1.1")
	}
	h.deliver("m0.1", "1@m0.1", "m0.1", 1, 1, "m0.1:1").acked("m0.1", "m0.1:1")
	h.view("m0.1", "2@m0.1", true, "m0.1", "m1.1").view("m1.1", "2@m0.1", true, "m0.1", "m1.1")
	v := AckedDelivered(*h, false)
	expect(t, "acked delivered", v, "acked-delivered", 1)
	if want := fmt.Sprint("m1.1 left view 1@m0.1 without delivering acknowledged [m0.1:1]"); v[0].Msg != want {
		t.Errorf("message %q", v[0].Msg)
	}
}

// TestViewOrder: a member that installs 5@carol then 5@bob (or 4@bob)
// breaks the order of view numbers along its life; 6@bob does not.
func TestViewOrder(t *testing.T) {
	for _, c := range []struct {
		next string
		bad  int
	}{{"5@bob.1", 1}, {"4@bob.1", 1}, {"6@bob.1", 0}} {
		h := &gh{}
		h.view("m0.1", "5@carol.1", false, "carol.1", "m0.1")
		h.view("m0.1", c.next, false, "bob.1", "m0.1")
		if v := ViewOrder(*h); len(v) != c.bad || c.bad > 0 && v[0].Rule != "view-order" {
			t.Errorf("5@carol.1 then %s: %v, want %d violations", c.next, v, c.bad)
		}
	}
	if v := Group(*goodGroup(), GroupOptions{}); len(v) != 0 {
		t.Fatal(v)
	}
}
