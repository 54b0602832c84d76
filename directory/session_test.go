package directory_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/conclave/conclave/directory"
)

func TestRetryAppliesOnce(t *testing.T) {
	m := newMachine(t, directory.StateConfig{MaxGroups: 3})
	announce := directory.EncodeCommand(directory.Command{Client: "p", Seq: 1, Op: directory.Announce{Topic: "a", QoS: "vsync"}})
	m.index++
	first := m.s.Apply(m.index, announce)
	m.seq["p"] = 1
	m.do("p", directory.Contacts{Group: "g0", Addrs: []string{"h:1"}})
	m.do("p", directory.Withdraw{Topic: "a"})

	// The Withdraw (seq 3) retried: same result, and the announce not
	// undone nor done again.
	withdraw := directory.EncodeCommand(directory.Command{Client: "p", Seq: 3, Op: directory.Withdraw{Topic: "a"}})
	if r := m.applyRaw2(withdraw); r.Err() != nil {
		t.Fatal(r.Err())
	}
	// The announce (seq 1) retried after seq 3: stale, and nothing changes.
	before := m.s.Topics()
	r := m.applyRaw2(announce)
	if !errors.Is(r.Err(), directory.ErrStale) || !strings.Contains(r.Msg, `stale sequence: client "p" sent command 1 after command 3 was applied`) {
		t.Fatalf("stale retry: %+v", r)
	}
	if fmt.Sprint(before) != fmt.Sprint(m.s.Topics()) {
		t.Fatalf("a stale command changed the topics:\n%v\n%v", before, m.s.Topics())
	}
	if got := m.s.Topics()[0].Publishers; got != nil {
		t.Fatalf("publishers of a after the withdraw and a stale announce: %q", got)
	}

	// A retried announce that is the client's last returns the same
	// result, with the group's contacts as they are now.
	m2 := newMachine(t, directory.StateConfig{MaxGroups: 3})
	m2.index++
	r1, _ := directory.DecodeResult(m2.s.Apply(m2.index, announce))
	want, _ := directory.DecodeResult(first)
	if fmt.Sprint(r1) != fmt.Sprint(want) {
		t.Fatalf("same command, same state, other result: %+v %+v", r1, want)
	}
	m2.do("q", directory.Contacts{Group: "g0", Addrs: []string{"h:2"}})
	m2.do("q", directory.Announce{Topic: "b", QoS: "total"})
	before = m2.s.Topics()
	groupsBefore := m2.s.Groups()
	r2 := m2.applyRaw2(announce)
	if r2.Group != "g0" || r2.Hash != want.Hash || !bytes.Equal(r2.XML, want.XML) || fmt.Sprint(r2.Contacts) != "[h:2]" {
		t.Fatalf("retried announce: %+v", r2)
	}
	if fmt.Sprint(before, groupsBefore) != fmt.Sprint(m2.s.Topics(), m2.s.Groups()) {
		t.Fatal("the retried announce changed the topics or groups")
	}
	if tp, _ := m2.s.Lookup("a"); fmt.Sprint(tp.Publishers) != "[p]" {
		t.Fatalf("after the retry: %+v", tp)
	}
	if tp, _ := m2.s.Lookup("b"); tp.Group != "g1" {
		t.Fatalf("b in %s: the retry placed something", tp.Group)
	}
}

// applyRaw2 applies cmd at the next index.
func (m *machine) applyRaw2(cmd []byte) directory.Result {
	m.t.Helper()
	m.index++
	return m.applyRaw(cmd)
}

func TestRefusalsAreRemembered(t *testing.T) {
	m := newMachine(t, directory.StateConfig{MaxGroups: 3})
	sub := directory.EncodeCommand(directory.Command{Client: "s", Seq: 1, Op: directory.Subscribe{Topic: "a"}})
	if r := m.applyRaw2(sub); !errors.Is(r.Err(), directory.ErrUnknownTopic) {
		t.Fatalf("subscribe before announce: %+v", r)
	}
	m.do("p", directory.Announce{Topic: "a", QoS: "vsync"})
	// The retry returns what the command returned, though it would succeed
	// now: the client's command was applied once, at its first index.
	if r := m.applyRaw2(sub); !errors.Is(r.Err(), directory.ErrUnknownTopic) {
		t.Fatalf("retried subscribe: %+v", r)
	}
	if tp, _ := m.s.Lookup("a"); tp.Subscribers != nil {
		t.Fatalf("the retry subscribed: %+v", tp)
	}
}

func TestBadEnvelopes(t *testing.T) {
	m := newMachine(t, directory.StateConfig{MaxGroups: 3})
	for _, tc := range []struct {
		name string
		cmd  []byte
		msg  string
	}{
		{"no client", directory.EncodeCommand(directory.Command{Seq: 1, Op: directory.Subscribe{Topic: "a"}}), "without a client id"},
		{"seq 0", directory.EncodeCommand(directory.Command{Client: "c", Op: directory.Subscribe{Topic: "a"}}), "sequence number 0"},
		{"garbage", []byte{1, 2, 3}, "bad command"},
		{"version", []byte{9, 1}, "command of version 9; this directory knows version 1"},
	} {
		r := m.applyRaw2(tc.cmd)
		if !errors.Is(r.Err(), directory.ErrBadCommand) || !strings.Contains(r.Msg, tc.msg) {
			t.Errorf("%s: %+v, want a bad command saying %q", tc.name, r, tc.msg)
		}
	}
	// None of them made a session: client c's command 1 is new.
	if r := m.do("c", directory.Subscribe{Topic: "a"}); !errors.Is(r.Err(), directory.ErrUnknownTopic) {
		t.Fatalf("c's first command: %+v", r)
	}
}

func TestIndexes(t *testing.T) {
	s, err := directory.NewState(directory.StateConfig{MaxGroups: 3})
	if err != nil {
		t.Fatal(err)
	}
	cmd := func(seq uint64, topic string) []byte {
		return directory.EncodeCommand(directory.Command{Client: "p", Seq: seq, Op: directory.Announce{Topic: topic, QoS: "vsync"}})
	}
	if out := s.Apply(3, nil); out != nil || s.Applied() != 3 {
		t.Fatalf("empty entry: %q, applied %d", out, s.Applied())
	}
	if r, _ := directory.DecodeResult(s.Apply(5, cmd(1, "a"))); r.Err() != nil || s.Applied() != 5 {
		t.Fatalf("%+v, applied %d", r, s.Applied())
	}
	snap := s.Snapshot()
	for _, idx := range []uint64{5, 4, 0} {
		r, _ := directory.DecodeResult(s.Apply(idx, cmd(2, "b")))
		if !errors.Is(r.Err(), directory.ErrBadCommand) || !strings.Contains(r.Msg, fmt.Sprintf("entry %d applied after entry 5", idx)) {
			t.Errorf("index %d after 5: %+v", idx, r)
		}
		if s.Apply(idx, nil) != nil {
			t.Errorf("an old empty entry has a result")
		}
	}
	if !bytes.Equal(snap, s.Snapshot()) {
		t.Fatal("commands at old indexes changed the state")
	}
}

func TestSessionsBounded(t *testing.T) {
	m := newMachine(t, directory.StateConfig{MaxGroups: 3, MaxSessions: 3})
	m.do("p", directory.Announce{Topic: "a", QoS: "vsync"}) // index 1
	for _, c := range []string{"s1", "s2", "p", "s3"} {     // 2 to 5
		m.do(c, directory.Subscribe{Topic: "a"})
	}
	// Sessions now: p (last at 4), s2 (3), s3 (5); s1 (2) was forgotten
	// when s3 came.
	unsub := func(client string, seq uint64) directory.Result {
		return m.applyRaw2(directory.EncodeCommand(directory.Command{Client: client, Seq: seq, Op: directory.Unsubscribe{Topic: "a"}}))
	}
	for i, tc := range []struct {
		client string
		seq    uint64
		stale  bool
		subs   string // subscribers of a after the command
	}{
		{"p", 1, true, "[p s1 s2 s3]"},   // p's last is 2
		{"s3", 1, false, "[p s1 s2 s3]"}, // s3's last: its result again (a subscribe's), nothing done
		{"s1", 1, false, "[p s2 s3]"},    // forgotten: applied as new (and s2, the oldest, forgotten)
		{"s2", 1, false, "[p s3]"},       // forgotten: applied as new (and p forgotten)
		{"p", 1, false, "[s3]"},          // forgotten: applied as new (and s3 forgotten)
		{"s1", 1, false, "[s3]"},         // remembered: a retry
	} {
		r := unsub(tc.client, tc.seq)
		if errors.Is(r.Err(), directory.ErrStale) != tc.stale {
			t.Fatalf("step %d: %s's command %d: %+v, stale should be %v", i, tc.client, tc.seq, r, tc.stale)
		}
		if tp, _ := m.s.Lookup("a"); fmt.Sprint(tp.Subscribers) != tc.subs && !(tc.subs == "[]" && tp.Subscribers == nil) {
			t.Fatalf("step %d: subscribers %q, want %s", i, tp.Subscribers, tc.subs)
		}
	}
}
