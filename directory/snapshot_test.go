package directory_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/conclave/conclave/directory"
)

// busy returns a state after a few commands of every kind, with MaxGroups
// 3 and MaxSessions 4.
func busy(t testing.TB) *machine {
	t.Helper()
	m := newMachine(t, directory.StateConfig{MaxGroups: 3, MaxSessions: 4})
	m.do("p1", directory.Announce{Topic: "prices", QoS: "total"})
	m.do("p2", directory.Announce{Topic: "news", QoS: "small.xml", XML: smallXML})
	m.do("p1", directory.Announce{Topic: "trades", QoS: "total"})
	m.do("p1", directory.Announce{Topic: "quotes", QoS: "total"})
	m.do("s1", directory.Subscribe{Topic: "prices"})
	m.do("s2", directory.Subscribe{Topic: "prices"})
	m.do("s2", directory.Subscribe{Topic: "news"})
	m.do("s2", directory.Subscribe{Topic: "nothing"})
	m.do("p2", directory.Contacts{Group: "g0", Addrs: []string{"b:1", "a:1"}})
	m.do("p3", directory.Announce{Topic: "x", QoS: "vsync"}) // no group left; p1's session forgotten
	m.do("s3", directory.Subscribe{Topic: "quotes"})         // s1's forgotten
	m.do("s2", directory.Report{Millis: 2000, Topics: []directory.TopicCount{{Topic: "news", Delivered: 5}, {Topic: "prices", Delivered: 7, Filtered: 1}}})
	m.do("op", directory.Move{Topic: "trades", Group: "g0"}) // p1 has to switch
	return m
}

func TestSnapshotDeterministic(t *testing.T) {
	a, b := busy(t), busy(t)
	snap := a.s.Snapshot()
	if !bytes.Equal(snap, b.s.Snapshot()) {
		t.Fatal("equal states, different snapshots")
	}
	for range 3 {
		if !bytes.Equal(snap, a.s.Snapshot()) {
			t.Fatal("one state, different snapshots")
		}
	}
	r := restoreWith(t, a.s, directory.StateConfig{MaxGroups: 3, MaxSessions: 4})
	if !bytes.Equal(snap, r.Snapshot()) {
		t.Fatal("Snapshot after Restore differs")
	}
	if fmt.Sprint(r.Topics(), r.Groups(), r.Clients(), r.Applied()) != fmt.Sprint(a.s.Topics(), a.s.Groups(), a.s.Clients(), a.s.Applied()) {
		t.Fatal("the restored state answers queries otherwise")
	}
	// An empty state too.
	e := newMachine(t, directory.StateConfig{MaxGroups: 3, MaxSessions: 4})
	if err := r.Restore(e.s.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Snapshot(), e.s.Snapshot()) || len(r.Topics()) != 0 {
		t.Fatal("restoring an empty state")
	}
}

func TestRestoreThenApply(t *testing.T) {
	a := busy(t)
	b := &machine{t: t, s: restoreWith(t, a.s, directory.StateConfig{MaxGroups: 3, MaxSessions: 4}), index: a.index}
	// s2's last command again (a retry), an older one (stale), p1's first
	// (forgotten: applied again), and new ones.
	cmds := []directory.Command{
		{Client: "s2", Seq: 4, Op: directory.Report{Millis: 1}},
		{Client: "s2", Seq: 2, Op: directory.Subscribe{Topic: "prices"}},
		{Client: "p1", Seq: 1, Op: directory.Withdraw{Topic: "prices"}},
		{Client: "p4", Seq: 1, Op: directory.Announce{Topic: "more", QoS: "total"}},
		{Client: "s4", Seq: 1, Op: directory.Subscribe{Topic: "more"}},
	}
	codes := []directory.Code{directory.CodeOK, directory.CodeStale, directory.CodeOK, directory.CodeOK, directory.CodeOK}
	for i, c := range cmds {
		ra, rb := a.apply(c), b.apply(c)
		if fmt.Sprint(ra) != fmt.Sprint(rb) {
			t.Fatalf("command %d: the original returns %+v, the restored %+v", i, ra, rb)
		}
		if ra.Code != codes[i] {
			t.Fatalf("command %d: %+v, want code %v", i, ra, codes[i])
		}
	}
	if tp, _ := b.s.Lookup("prices"); tp.Delivered != 7 {
		t.Fatalf("s2's retried report applied again: %+v", tp)
	}
	if tp, _ := b.s.Lookup("prices"); tp.Publishers != nil {
		t.Fatalf("p1's forgotten command was not applied again: %+v", tp)
	}
	if !bytes.Equal(a.s.Snapshot(), b.s.Snapshot()) {
		t.Fatal("the original and the restored state differ after the same commands")
	}
}

func TestRestoreRefuses(t *testing.T) {
	cfg := directory.StateConfig{MaxGroups: 3, MaxSessions: 4}
	snap := busy(t).s.Snapshot()
	tamper := func(old, new string) []byte {
		if !bytes.Contains(snap, []byte(old)) {
			t.Fatalf("no %q in the snapshot", old)
		}
		return bytes.Replace(snap, []byte(old), []byte(new), 1)
	}
	for _, tc := range []struct {
		name string
		cfg  directory.StateConfig
		snap []byte
		want string
	}{
		{"empty", cfg, nil, `not a directory snapshot`},
		{"garbage", cfg, []byte("hello, world"), `not a directory snapshot`},
		{"version", cfg, []byte("cdir\x02"), `snapshot of version 2; this directory knows versions 1 and 3`},
		{"groups", directory.StateConfig{MaxGroups: 4, MaxSessions: 4}, snap, `taken with 3 groups, 4 sessions and move spacing 16; this directory is configured for 4, 4 and 16`},
		{"sessions", directory.StateConfig{MaxGroups: 3}, snap, `configured for 3, 10000 and 16`},
		{"move spacing", directory.StateConfig{MaxGroups: 3, MaxSessions: 4, MoveSpacing: -1}, snap, `configured for 3, 4 and -1`},
		{"left over", cfg, append(bytes.Clone(snap), 0), `1 bytes left over`},
		{"tampered XML", cfg, tamper(`window="16"`, `window="17"`), `its XML is the canonical form of small (hash`},
		{"invalid XML", cfg, tamper(`kind="membership"`, `kind="memberxhip"`), `unknown layer kind "memberxhip"`},
		{"topics out of order", cfg, tamper("prices", "zrices"), `topic "quotes" listed after "zrices"`},
		{"contacts out of order", cfg, tamper("a:1", "c:1"), `group g0: contacts not sorted`},
	} {
		s, err := directory.NewState(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		before := s.Snapshot()
		err = s.Restore(tc.snap)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "directory snapshot: ") {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
		if !bytes.Equal(before, s.Snapshot()) {
			t.Errorf("%s: a refused snapshot changed the state", tc.name)
		}
	}
}

// TestRestoreDamaged restores every prefix of a snapshot and the snapshot
// with each byte changed: a prefix is refused, and a changed snapshot is
// refused or gives a consistent state that snapshots to the same bytes.
func TestRestoreDamaged(t *testing.T) {
	cfg := directory.StateConfig{MaxGroups: 3, MaxSessions: 4}
	snap := busy(t).s.Snapshot()
	s, err := directory.NewState(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(snap) {
		if err := s.Restore(snap[:n]); err == nil {
			t.Fatalf("the first %d bytes of %d restored", n, len(snap))
		}
	}
	accepted := 0
	for i := range snap {
		for _, delta := range []byte{1, 0x80, 0xff} {
			b := bytes.Clone(snap)
			b[i] += delta
			if err := s.Restore(b); err != nil {
				continue
			}
			accepted++
			if err := s.CheckInvariants(); err != nil {
				t.Fatalf("byte %d + %d: restored an inconsistent state: %v", i, delta, err)
			}
			if !bytes.Equal(b, s.Snapshot()) {
				t.Fatalf("byte %d + %d: restored, but snapshots otherwise", i, delta)
			}
		}
	}
	t.Logf("%d of %d changed snapshots restored (a changed name, address or number)", accepted, 3*len(snap))
}
