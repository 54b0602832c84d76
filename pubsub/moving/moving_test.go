package moving

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/conclave/conclave/pubsub/envelope"
)

func TestWaits(t *testing.T) {
	if w := Waits("g0", "g0", []string{"a", "b"}); len(w) != 2 || !w["a"] || !w["b"] {
		t.Errorf("a subscription in the group the topic moved from waits for %v, not a and b", w)
	}
	if w := Waits("g1", "g0", []string{"a"}); len(w) != 0 {
		t.Errorf("a subscription that skipped a move waits for %v", w)
	}
}

func TestMark(t *testing.T) {
	for _, c := range []struct {
		phase envelope.Phase
		want  uint64
	}{{envelope.Prepare, 0}, {envelope.Ready, 0}, {envelope.Switch, 3}, {envelope.End, math.MaxUint64}} {
		if got := Mark(envelope.Marker{Topic: "t", Moves: 3, Phase: c.phase}); got != c.want {
			t.Errorf("phase %d: mark %d, want %d", c.phase, got, c.want)
		}
	}
}

func TestSettled(t *testing.T) {
	client := func(id string) string { return strings.SplitN(id, ".", 2)[0] }
	view := []string{"a.1", "b.1", "c.1", "s.1"}
	wait := map[string]bool{"a": true, "b": true, "c": true}
	marks := map[string]uint64{"a.1": 2, "b.1": 1}
	if Settled(wait, marks, 2, view, client) || len(wait) != 2 || wait["a"] {
		t.Fatalf("after a's switch for move 2 (b's for move 1 only): waits for %v", wait)
	}
	if Settled(wait, marks, 2, []string{"a.1", "b.1", "s.1"}, client) || !wait["b"] || wait["c"] {
		t.Fatalf("after c left: waits for %v, want b", wait)
	}
	// b restarted: its new member has to switch for itself.
	marks["b.1"] = math.MaxUint64 // end
	if Settled(wait, marks, 2, []string{"a.1", "b.1", "b.2", "s.1"}, client) || !wait["b"] {
		t.Fatalf("with b's new member not switched: waits for %v, want b", wait)
	}
	if !Settled(wait, marks, 2, []string{"a.1", "b.1", "s.1"}, client) {
		t.Fatalf("after b's end: waits for %v", wait)
	}
}

func TestUnready(t *testing.T) {
	in := func(names ...string) func(string) bool {
		return func(n string) bool { return slices.Contains(names, n) }
	}
	following := []string{"a", "b", "c", "d"}
	ready := map[string]uint64{"a": 2, "b": 1, "c": 2}
	// a is ready and in the new view; b is ready for an older move; c is
	// ready but not yet in the new view; d has left the old view.
	got := Unready(following, 2, ready, in("a", "b", "c"), in("a", "b"))
	if !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("unready %v, want [b c]", got)
	}
	if got := Unready(following, 2, ready, in("a"), in("a")); got != nil {
		t.Errorf("unready %v, want none", got)
	}
}
