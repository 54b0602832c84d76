package directory_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/conclave/conclave/directory"
)

// sharing returns a state where topics a and w share a group (published
// by p; s subscribes to a) and x is in another group.
func sharing(t *testing.T) (*machine, string) {
	t.Helper()
	// No moves: the tests here want a and w to stay together.
	m := newMachine(t, directory.StateConfig{MaxGroups: 3, MoveSpacing: -1})
	for _, topic := range []string{"a", "x", "y", "w"} {
		m.do("p", directory.Announce{Topic: topic, QoS: "total"})
	}
	a, _ := m.s.Lookup("a")
	if w, _ := m.s.Lookup("w"); w.Group != a.Group {
		t.Fatalf("w in %s, a in %s: want them to share", w.Group, a.Group)
	}
	if r := m.do("s", directory.Subscribe{Topic: "a"}); r.Err() != nil {
		t.Fatal(r.Err())
	}
	return m, a.Group
}

func group(t *testing.T, s *directory.State, name string) directory.GroupInfo {
	t.Helper()
	for _, g := range s.Groups() {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no group %s", name)
	return directory.GroupInfo{}
}

func TestReportsSummedPerTopicAndGroup(t *testing.T) {
	m, g := sharing(t)
	// s counts a's 10 events delivered and w's 10 filtered over 2 s; p,
	// subscribing to nothing, filters all 20. s's counts of x (a group it
	// is not in) and of an unknown topic are dropped.
	if r := m.do("s", directory.Report{Millis: 2000, Topics: []directory.TopicCount{
		{Topic: "a", Delivered: 10}, {Topic: "nope", Delivered: 5}, {Topic: "w", Filtered: 10}, {Topic: "x", Delivered: 99},
	}}); r.Err() != nil {
		t.Fatal(r.Err())
	}
	if r := m.do("p", directory.Report{Millis: 2000, Topics: []directory.TopicCount{{Topic: "a", Filtered: 10}, {Topic: "w", Filtered: 10}}}); r.Err() != nil {
		t.Fatal(r.Err())
	}
	gi := group(t, m.s, g)
	if gi.Delivered != 10 || gi.Filtered != 30 || gi.Waste != 0.75 {
		t.Fatalf("group %s: %+v, want 10 delivered, 30 filtered, waste 0.75", g, gi)
	}
	a, _ := m.s.Lookup("a")
	if a.Delivered != 10 || a.Filtered != 10 || a.Rate != 5 {
		t.Fatalf("topic a: %+v, want 10 delivered, 10 filtered, 5 events/s", a)
	}
	if x, _ := m.s.Lookup("x"); x.Delivered != 0 || x.Rate != 0 {
		t.Fatalf("topic x counted from a client not in its group: %+v", x)
	}
	// A later report replaces the earlier.
	m.do("s", directory.Report{Millis: 4000, Topics: []directory.TopicCount{{Topic: "a", Delivered: 20}, {Topic: "w", Filtered: 20}}})
	if a, _ := m.s.Lookup("a"); a.Delivered != 20 || a.Filtered != 10 || a.Rate != 5 {
		t.Fatalf("topic a after s's second report: %+v", a)
	}
	// Topics out of order are refused and change nothing.
	before := m.s.Snapshot()
	r := m.do("s", directory.Report{Millis: 1, Topics: []directory.TopicCount{{Topic: "w"}, {Topic: "a"}}})
	if !errors.Is(r.Err(), directory.ErrBadCommand) {
		t.Fatalf("a report out of order: %+v", r)
	}
	if a, _ := m.s.Lookup("a"); a.Delivered != 20 {
		t.Fatalf("a refused report changed the counts: %+v (snapshot %d bytes before)", a, len(before))
	}
	// s leaves the group (its only topic): its report goes.
	m.do("s", directory.Unsubscribe{Topic: "a"})
	if gi := group(t, m.s, g); gi.Delivered != 0 || gi.Filtered != 20 {
		t.Fatalf("group %s after s left it: %+v", g, gi)
	}
	// p stops publishing a but still publishes w, in the same group: its
	// counts of a stay; once it withdraws w too, they go.
	m.do("p", directory.Withdraw{Topic: "a"})
	if gi := group(t, m.s, g); gi.Filtered != 20 {
		t.Fatalf("group %s after p withdrew a: %+v", g, gi)
	}
	m.do("p", directory.Withdraw{Topic: "w"})
	if gi := group(t, m.s, g); gi.Filtered != 0 || gi.Waste != 0 {
		t.Fatalf("group %s after p withdrew everything: %+v", g, gi)
	}
}

// TestReportAppliesOnce retries a report and sends an older one: neither
// changes the counts.
func TestReportAppliesOnce(t *testing.T) {
	m, _ := sharing(t)
	m.do("s", directory.Report{Millis: 1000, Topics: []directory.TopicCount{{Topic: "a", Delivered: 3}}})
	seq := m.seq["s"]
	retry := directory.Command{Client: "s", Seq: seq, Op: directory.Report{Millis: 1000, Topics: []directory.TopicCount{{Topic: "a", Delivered: 50}}}}
	if r := m.apply(retry); r.Err() != nil {
		t.Fatal(r.Err())
	}
	if a, _ := m.s.Lookup("a"); a.Delivered != 3 {
		t.Fatalf("a retried report (same sequence number) applied again: %+v", a)
	}
	m.do("s", directory.Report{Millis: 2000, Topics: []directory.TopicCount{{Topic: "a", Delivered: 6}}})
	old := directory.Command{Client: "s", Seq: seq, Op: directory.Report{Millis: 1000, Topics: []directory.TopicCount{{Topic: "a", Delivered: 3}}}}
	if r := m.apply(old); !errors.Is(r.Err(), directory.ErrStale) {
		t.Fatalf("an older report: %+v, want stale", r)
	}
	if a, _ := m.s.Lookup("a"); a.Delivered != 6 || a.Rate != 3 {
		t.Fatalf("after a stale report: %+v", a)
	}
}

// TestReportersBounded has one client more than MaxReporters report: the
// report applied first is dropped.
func TestReportersBounded(t *testing.T) {
	m, g := sharing(t)
	n := directory.MaxReporters + 1
	// Applied directly: checking the invariants after each would take
	// time quadratic in n.
	raw := func(c string, seq uint64, op directory.Op) {
		m.index++
		if r, _ := directory.DecodeResult(m.s.Apply(m.index, directory.EncodeCommand(directory.Command{Client: c, Seq: seq, Op: op}))); r.Err() != nil {
			t.Fatal(r.Err())
		}
	}
	for i := range n {
		c := fmt.Sprintf("c%04d", i)
		raw(c, 1, directory.Subscribe{Topic: "a"})
		d := uint64(1)
		if i == 0 {
			d = 1000
		}
		raw(c, 2, directory.Report{Millis: 1000, Topics: []directory.TopicCount{{Topic: "a", Delivered: d}}})
		m.seq[c] = 2
	}
	if err := m.s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if gi := group(t, m.s, g); gi.Delivered != uint64(directory.MaxReporters) {
		t.Fatalf("group %s: %d delivered, want %d (the first reporter's 1000 dropped)", g, gi.Delivered, directory.MaxReporters)
	}
	// A reporter that reports again is the newest, not dropped next.
	m.do("c0001", directory.Report{Millis: 1000, Topics: []directory.TopicCount{{Topic: "a", Delivered: 2}}})
	m.do("s", directory.Report{Millis: 1000, Topics: []directory.TopicCount{{Topic: "a", Delivered: 1}}})
	if gi := group(t, m.s, g); gi.Delivered != uint64(directory.MaxReporters)+1 {
		t.Fatalf("group %s: %d delivered, want %d (c0002 dropped, c0001 kept)", g, gi.Delivered, directory.MaxReporters+1)
	}
}

func TestReportsInSnapshot(t *testing.T) {
	m, _ := sharing(t)
	m.do("s", directory.Report{Millis: 2000, Topics: []directory.TopicCount{{Topic: "a", Delivered: 10}, {Topic: "w", Filtered: 4}}})
	snap := m.s.Snapshot()
	if snap[4] != 3 {
		t.Fatalf("a snapshot with reports is of version %d, want 3", snap[4])
	}
	r := restoreWith(t, m.s, directory.StateConfig{MaxGroups: 3, MoveSpacing: -1})
	if !bytes.Equal(r.Snapshot(), snap) {
		t.Fatal("Snapshot after Restore differs")
	}
	if fmt.Sprint(r.Topics(), r.Groups()) != fmt.Sprint(m.s.Topics(), m.s.Groups()) {
		t.Fatalf("the restored state counts otherwise:\n%v\n%v", r.Groups(), m.s.Groups())
	}
	// Without reports, the snapshot is of version 3 all the same.
	m.do("s", directory.Report{Millis: 3000})
	if v := m.s.Snapshot()[4]; v != 3 {
		t.Fatalf("a snapshot without reports is of version %d, want 3", v)
	}
}

// TestRestoresVersion1 restores a snapshot written before moves and
// reports existed: the state is the same, and it snapshots as version 3
// from then on, which restores to the same state again.
func TestRestoresVersion1(t *testing.T) {
	old, err := os.ReadFile("testdata/snapshot-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	cfg := directory.StateConfig{MaxGroups: 3, MaxSessions: 4}
	s, err := directory.NewState(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(old); err != nil {
		t.Fatalf("a version 1 snapshot: %v", err)
	}
	if tp, ok := s.Lookup("prices"); !ok || fmt.Sprint(tp.Subscribers) != "[s1 s2]" {
		t.Fatalf("prices after restoring version 1: %+v", tp)
	}
	now := s.Snapshot()
	if now[4] != 3 {
		t.Fatalf("a state restored from version 1 snapshots as version %d", now[4])
	}
	again, _ := directory.NewState(cfg)
	if err := again.Restore(now); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(again.Topics(), again.Groups(), again.Clients(), again.Applied()) != fmt.Sprint(s.Topics(), s.Groups(), s.Clients(), s.Applied()) {
		t.Fatal("version 1, restored and snapshot again, restores otherwise")
	}
	v2 := bytes.Clone(old)
	v2[4] = 2
	if err := s.Restore(v2); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("a version 2 snapshot: %v", err)
	}
}
