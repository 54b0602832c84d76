package pubsub

import (
	"slices"
	"testing"
)

// TestEventOfLaterMoveStays shows the rule of move numbers in events: a
// subscription moving from its group to another (move 2) that gets, in
// its group, an event of move 3 (the topic came back, and a publisher
// with it) hands it over, stays at move 3, and drops the move it was
// making with the events it kept from there, which came before it. Taking
// the event as current and the kept events after it reordered them (the
// simulator's seed 13431).
func TestEventOfLaterMoveStays(t *testing.T) {
	c := &Client{cfg: Config{Buffer: 8}, groups: map[string]*member{}}
	a := &member{c: c, name: "g2", subs: map[string][]*Subscription{}, refs: 1}
	b := &member{c: c, name: "g1", subs: map[string][]*Subscription{}, refs: 1}
	s := &Subscription{c: c, topic: "t", ch: make(chan Event, 8), moves: 1, moving: 2}
	if err := a.add(s, false); err != nil {
		t.Fatal(err)
	}
	if err := b.add(s, true); err != nil {
		t.Fatal(err)
	}
	ev := func(m *member, data string, moves uint64) delivery {
		return delivery{e: Event{Topic: "t", From: "p.1", Data: []byte(data)}, m: m, moves: moves}
	}
	for _, step := range []struct {
		d    delivery
		want int
	}{
		{ev(b, "move 2 #1", 2), kept},
		{ev(a, "move 1 #0", 1), handed1},
		{ev(a, "move 3 #3", 3), handed1},
		{ev(b, "move 2 #2", 2), ignored},
		{ev(a, "move 3 #4", 3), handed1},
	} {
		if got := s.take(step.d.m, step.d); got != step.want {
			t.Errorf("%s from %s: outcome %d, want %d", step.d.e.Data, step.d.m.name, got, step.want)
		}
	}
	s.mu.Lock()
	moves, moving, buf := s.moves, s.next != nil, len(s.buf)
	s.mu.Unlock()
	if moves != 3 || moving || buf != 0 {
		t.Errorf("after an event of move 3: at move %d, moving %v, %d events kept; want move 3, not moving, none kept", moves, moving, buf)
	}
	close(s.ch)
	var got []string
	for e := range s.ch {
		got = append(got, string(e.Data))
	}
	if want := []string{"move 1 #0", "move 3 #3", "move 3 #4"}; !slices.Equal(got, want) {
		t.Errorf("handed over %q, want %q", got, want)
	}
}
