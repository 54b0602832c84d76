package directory_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/conclave/conclave/directory"
)

// twoGroups returns a state of three groups: topics a and b of QoS total
// share one, c (total) has another, x (vsync) the third; each topic has a
// publisher of its own.
func twoGroups(t *testing.T, spacing int) *machine {
	m := newMachine(t, directory.StateConfig{MaxGroups: 3, MoveSpacing: spacing})
	m.do("pa", directory.Announce{Topic: "a", QoS: "total"})
	m.do("pc", directory.Announce{Topic: "c", QoS: "total"})
	m.do("px", directory.Announce{Topic: "x", QoS: "vsync"}) // takes the last free group
	m.do("pb", directory.Announce{Topic: "b", QoS: "total"})
	if a, b := lookup(t, m, "a"), lookup(t, m, "b"); a.Group != b.Group {
		t.Fatalf("a in %s, b in %s: the test wants them together", a.Group, b.Group)
	}
	return m
}

func lookup(t *testing.T, m *machine, topic string) directory.TopicInfo {
	t.Helper()
	info, ok := m.s.Lookup(topic)
	if !ok {
		t.Fatalf("no topic %s", topic)
	}
	return info
}

// TestMoveWhenWasteDrops: subscribers of a and of b sharing a group make
// it move one of them to the other group of the QoS, where the waste is
// lower; the publisher has to switch, and says so.
func TestMoveWhenWasteDrops(t *testing.T) {
	m := twoGroups(t, 1)
	before := lookup(t, m, "a").Group
	for _, s := range []string{"s1", "s2", "s3"} {
		m.do(s, directory.Subscribe{Topic: "a"})
	}
	r := m.do("s4", directory.Subscribe{Topic: "b"})
	a, b := lookup(t, m, "a"), lookup(t, m, "b")
	if a.Group == b.Group {
		t.Fatalf("a and b still share %s: %+v %+v", a.Group, a, b)
	}
	moved := a
	if b.Moves > 0 {
		moved = b
	}
	if moved.Moves != 1 || moved.From != before || len(moved.Pending) != 1 {
		t.Fatalf("the moved topic: %+v", moved)
	}
	if moved.Topic == "b" && (r.Moves != 1 || r.From != before || r.Group != b.Group) {
		t.Errorf("the subscribe that moved b returned %+v", r)
	}
	// The client whose subscribe moved its own topic was told the new
	// group: nobody waits for it in the old one.
	if moved.Topic == "b" && slices.Contains(moved.Following, "s4") {
		t.Errorf("s4's subscribe moved b, yet the move waits for s4: %+v", moved)
	}
	// A MoveDone of another move changes nothing; the right one finishes it.
	pub := moved.Pending[0]
	m.do(pub, directory.MoveDone{Topic: moved.Topic, Moves: 7})
	if got := lookup(t, m, moved.Topic); len(got.Pending) != 1 {
		t.Fatalf("a MoveDone of move 7 finished move 1: %+v", got)
	}
	m.do(pub, directory.MoveDone{Topic: moved.Topic, Moves: 1})
	if got := lookup(t, m, moved.Topic); len(got.Pending) != 0 || got.From != before {
		t.Fatalf("after MoveDone: %+v", got)
	}
}

// TestMoveOff: with MoveSpacing negative, nothing moves by itself.
func TestMoveOff(t *testing.T) {
	m := twoGroups(t, -1)
	for _, s := range []string{"s1", "s2", "s3"} {
		m.do(s, directory.Subscribe{Topic: "a"})
	}
	m.do("s4", directory.Subscribe{Topic: "b"})
	if a, b := lookup(t, m, "a"), lookup(t, m, "b"); a.Group != b.Group || a.Moves+b.Moves != 0 {
		t.Fatalf("moved with moves off: %+v %+v", a, b)
	}
}

// TestMoveSpacing: after a move, the state moves nothing by itself for
// MoveSpacing entries, nor a topic whose move is not finished.
func TestMoveSpacing(t *testing.T) {
	m := newMachine(t, directory.StateConfig{MaxGroups: 3, MoveSpacing: 1000})
	m.do("p", directory.Announce{Topic: "a", QoS: "total"})
	m.do("p", directory.Announce{Topic: "c", QoS: "total"})
	m.do("p", directory.Announce{Topic: "x", QoS: "vsync"})
	m.do("p", directory.Announce{Topic: "b", QoS: "total"})
	m.do("op", directory.Move{Topic: "c", Group: lookup(t, m, "a").Group}) // an operator's move: not spaced
	if c := lookup(t, m, "c"); c.Group != lookup(t, m, "a").Group || c.Moves != 1 {
		t.Fatalf("Move: %+v", c)
	}
	// a, b and c share a group now; disjoint subscribers would gain from
	// a move, but the last one was less than 1000 entries ago.
	for i, topic := range []string{"a", "a", "b", "b", "c", "c"} {
		m.do("s"+string(rune('0'+i)), directory.Subscribe{Topic: topic})
	}
	for _, topic := range []string{"a", "b"} {
		if info := lookup(t, m, topic); info.Moves != 0 {
			t.Fatalf("%s moved within the spacing: %+v", topic, info)
		}
	}
}

// TestMoveRefused: a Move to the group the topic is in, to a group of
// another QoS, to no group, or of a topic still moving is refused.
func TestMoveRefused(t *testing.T) {
	m := twoGroups(t, -1)
	a := lookup(t, m, "a")
	x := lookup(t, m, "x")
	c := lookup(t, m, "c")
	for _, tc := range []struct {
		op   directory.Move
		want string
	}{
		{directory.Move{Topic: "a", Group: a.Group}, "is in group"},
		{directory.Move{Topic: "a", Group: x.Group}, "carries QoS vsync"},
		{directory.Move{Topic: "a", Group: "g9"}, `no group "g9"`},
		{directory.Move{Topic: "nothing", Group: c.Group}, "not announced"},
	} {
		r := m.do("op", tc.op)
		if r.Code == directory.CodeOK || !strings.Contains(r.Msg, tc.want) {
			t.Errorf("%+v: %+v, want an error containing %q", tc.op, r, tc.want)
		}
	}
	if r := m.do("op", directory.Move{Topic: "a", Group: c.Group}); r.Code != directory.CodeOK || r.Group != c.Group || r.Moves != 1 {
		t.Fatalf("Move: %+v", r)
	}
	r := m.do("op", directory.Move{Topic: "a", Group: a.Group})
	if !errors.Is(r.Err(), directory.ErrBadCommand) || !strings.Contains(r.Msg, "still moving") {
		t.Fatalf("a second Move before the first finished: %+v", r)
	}
	// A publisher that withdraws need not switch: the move is finished.
	m.do("pa", directory.Withdraw{Topic: "a"})
	if info := lookup(t, m, "a"); len(info.Pending) != 0 {
		t.Fatalf("after the only publisher withdrew: %+v", info)
	}
	if r := m.do("op", directory.Move{Topic: "a", Group: a.Group}); r.Code != directory.CodeOK || r.Moves != 2 || r.From != c.Group {
		t.Fatalf("moving back: %+v", r)
	}
}

// TestQueryMoves: QueryMoves answers the index of the last move.
func TestQueryMoves(t *testing.T) {
	m := twoGroups(t, -1)
	last := func() uint64 {
		var mv directory.Moves
		if err := json.Unmarshal(m.s.Query([]byte{directory.QueryMoves}), &mv); err != nil || mv.Error != "" {
			t.Fatalf("%v %+v", err, mv)
		}
		return mv.Last
	}
	if l := last(); l != 0 {
		t.Fatalf("no move yet, last %d", l)
	}
	m.do("op", directory.Move{Topic: "a", Group: lookup(t, m, "c").Group})
	if l := last(); l != m.s.Applied() {
		t.Fatalf("moved at %d, last %d", m.s.Applied(), l)
	}
	if info := lookup(t, m, "a"); len(info.Switching) != 1 || info.Switching[0] != "pa" {
		t.Fatalf("switching: %+v", info)
	}
}

// TestMoveWeighsMeasuredRates: two topics sharing a group, each with a
// subscriber of its own, gain too little from a move when both count at
// rate 1; once the clients report one of them busy, moving the quiet one
// out is worth it, and the state does.
func TestMoveWeighsMeasuredRates(t *testing.T) {
	for _, reported := range []bool{false, true} {
		m := newMachine(t, directory.StateConfig{MaxGroups: 3, MoveSpacing: 1})
		m.do("pa", directory.Announce{Topic: "a", QoS: "total"})
		m.do("pc", directory.Announce{Topic: "c", QoS: "total"})
		m.do("px", directory.Announce{Topic: "x", QoS: "vsync"})
		m.do("pb", directory.Announce{Topic: "b", QoS: "total"})
		shared := lookup(t, m, "a").Group
		if lookup(t, m, "b").Group != shared {
			t.Fatal("a and b do not share a group")
		}
		m.do("sa", directory.Subscribe{Topic: "a"})
		if reported {
			// a: 1000 events/s at its subscriber and its publisher.
			m.do("sa", directory.Report{Millis: 1000, Topics: []directory.TopicCount{{Topic: "a", Delivered: 1000}}})
			m.do("pa", directory.Report{Millis: 1000, Topics: []directory.TopicCount{{Topic: "a", Delivered: 1000}}})
		}
		m.do("sb", directory.Subscribe{Topic: "b"})
		a, b := lookup(t, m, "a"), lookup(t, m, "b")
		switch {
		case !reported && (a.Moves+b.Moves != 0):
			t.Errorf("at rate 1 the gain is 1, under MoveMinGain, yet a or b moved: %+v %+v", a, b)
		case reported && (b.Moves != 1 || a.Moves != 0 || a.Group != shared):
			t.Errorf("with a busy, b should leave a's group: %+v %+v", a, b)
		}
	}
}

// TestReportMovesTheTopicFiltered: a report that shows a client filtering
// another topic of its group makes the state consider moving it.
func TestReportMovesTheTopicFiltered(t *testing.T) {
	m := newMachine(t, directory.StateConfig{MaxGroups: 3, MoveSpacing: 1})
	for _, topic := range []string{"a", "x", "y", "w"} { // w shares a's group
		m.do("p", directory.Announce{Topic: topic, QoS: "total"})
	}
	m.do("s", directory.Subscribe{Topic: "a"})
	a, w := lookup(t, m, "a"), lookup(t, m, "w")
	if a.Group != w.Group || w.Moves != 0 {
		t.Fatalf("before any report: a %+v, w %+v", a, w)
	}
	m.do("s", directory.Report{Millis: 1000, Topics: []directory.TopicCount{{Topic: "a", Delivered: 10}, {Topic: "w", Filtered: 1000}}})
	if w := lookup(t, m, "w"); w.Moves != 1 || w.Group == a.Group {
		t.Fatalf("s filters 1000 events/s of w, yet w stays with a: %+v", w)
	}
}
