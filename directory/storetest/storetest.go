// Package storetest checks a directory.Store: the semantics Raft needs
// of it (entries replace the log from their first index on, a snapshot
// drops the entries it covers, a hard state replaces the last), identity,
// persistence across Close and open, and the same answers as
// directory.MemStore over a long random run of Raft-like saves.
package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/conclave/conclave/directory"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Opener opens a store over one backing storage; after Close, it opens
// the same data again.
type Opener func() (directory.Store, error)

// Run runs the checks; fresh returns an Opener over new, empty storage.
func Run(t *testing.T, fresh func(t *testing.T) Opener) {
	for _, c := range []struct {
		name string
		f    func(t *testing.T, h *harness)
	}{
		{"Empty", testEmpty},
		{"Identity", testIdentity},
		{"SaveBeforeInit", testSaveBeforeInit},
		{"RoundTrip", testRoundTrip},
		{"ReplaceFromIndex", testReplaceFromIndex},
		{"Snapshot", testSnapshot},
		{"LogAfterImplicitSnapshot", testImplicitSnapshot},
		{"LeaderSnapshotReplacesLog", testLeaderSnapshot},
		{"Refused", testRefused},
		{"AgainstMemStore", testAgainstMemStore},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &harness{t: t, open: fresh(t)}
			h.reopen()
			defer func() { h.s.Close() }()
			c.f(t, h)
		})
	}
}

type harness struct {
	t    *testing.T
	open Opener
	s    directory.Store
}

// reopen closes the store (if open) and opens it again.
func (h *harness) reopen() {
	h.t.Helper()
	if h.s != nil {
		if err := h.s.Close(); err != nil {
			h.t.Fatalf("Close: %v", err)
		}
	}
	s, err := h.open()
	if err != nil {
		h.t.Fatalf("open: %v", err)
	}
	h.s = s
}

func (h *harness) init(id directory.Identity) {
	h.t.Helper()
	if err := h.s.Init(id); err != nil {
		h.t.Fatalf("Init(%+v): %v", id, err)
	}
}

func (h *harness) save(p directory.Persist) {
	h.t.Helper()
	if err := h.s.Save(p); err != nil {
		h.t.Fatalf("Save: %v", err)
	}
}

func (h *harness) load() directory.Saved {
	h.t.Helper()
	s, err := h.s.Load()
	if err != nil {
		h.t.Fatalf("Load: %v", err)
	}
	return s
}

// expect checks that the store holds want, before and after a reopen.
func (h *harness) expect(want directory.Saved) {
	h.t.Helper()
	if d := Diff(h.load(), want); d != "" {
		h.t.Fatalf("the store holds, against what was expected:\n%s", d)
	}
	h.reopen()
	if d := Diff(h.load(), want); d != "" {
		h.t.Fatalf("after a reopen, the store holds, against what was expected:\n%s", d)
	}
}

var idA = directory.Identity{Cluster: "a", Replica: 2}

// Ent returns an entry.
func Ent(index, term uint64, data string) *pb.Entry {
	e := &pb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(term), Type: pb.EntryNormal.Enum()}
	if data != "" {
		e.Data = []byte(data)
	}
	return e
}

// Ents returns entries lo to hi of term, their data "<prefix><index>".
func Ents(lo, hi, term uint64, prefix string) []*pb.Entry {
	var es []*pb.Entry
	for i := lo; i <= hi; i++ {
		es = append(es, Ent(i, term, fmt.Sprintf("%s%d", prefix, i)))
	}
	return es
}

// Hard returns a hard state.
func Hard(term, vote, commit uint64) *pb.HardState {
	return &pb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(vote), Commit: proto.Uint64(commit)}
}

// Snap returns a snapshot at index and term of voters 1 to 3.
func Snap(index, term uint64, data string) *pb.Snapshot {
	return &pb.Snapshot{Data: []byte(data), Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(index),
		Term: proto.Uint64(term), ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}}}}
}

// Diff describes how got differs from want, or returns "".
func Diff(got, want directory.Saved) string {
	var b strings.Builder
	if got.Identity != want.Identity {
		fmt.Fprintf(&b, "identity %+v, want %+v\n", got.Identity, want.Identity)
	}
	if (got.Hard == nil) != (want.Hard == nil) || !proto.Equal(got.Hard, want.Hard) {
		fmt.Fprintf(&b, "hard state %v, want %v\n", got.Hard, want.Hard)
	}
	if (got.Snapshot == nil) != (want.Snapshot == nil) || !proto.Equal(got.Snapshot, want.Snapshot) {
		fmt.Fprintf(&b, "snapshot %v, want %v\n", brief(got.Snapshot), brief(want.Snapshot))
	}
	if len(got.Entries) != len(want.Entries) {
		fmt.Fprintf(&b, "%d entries %s, want %d %s\n", len(got.Entries), span(got.Entries), len(want.Entries), span(want.Entries))
	} else {
		for i := range got.Entries {
			if !proto.Equal(got.Entries[i], want.Entries[i]) {
				fmt.Fprintf(&b, "entry %d is %v, want %v\n", i, got.Entries[i], want.Entries[i])
				break
			}
		}
	}
	return b.String()
}

func brief(s *pb.Snapshot) string {
	if s == nil {
		return "nil"
	}
	return fmt.Sprintf("{index %d term %d, %d bytes}", s.GetMetadata().GetIndex(), s.GetMetadata().GetTerm(), len(s.GetData()))
}

func span(es []*pb.Entry) string {
	if len(es) == 0 {
		return "[]"
	}
	return fmt.Sprintf("[%d..%d]", es[0].GetIndex(), es[len(es)-1].GetIndex())
}

func testEmpty(t *testing.T, h *harness) {
	h.expect(directory.Saved{})
}

func testIdentity(t *testing.T, h *harness) {
	h.init(idA)
	h.init(idA) // the same again: fine
	h.expect(directory.Saved{Identity: idA})
	other := directory.Identity{Cluster: "b", Replica: 1}
	for range 2 {
		err := h.s.Init(other)
		if !errors.Is(err, directory.ErrIdentity) {
			t.Fatalf("Init of another identity: %v, want ErrIdentity", err)
		}
		for _, s := range []string{`replica 2 of directory "a"`, `replica 1 of directory "b"`} {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("the error %q does not say %s", err, s)
			}
		}
		h.expect(directory.Saved{Identity: idA})
	}
	// Replica 0 and an empty name are identities too.
	h.reopen()
	if err := h.s.Init(directory.Identity{}); !errors.Is(err, directory.ErrIdentity) {
		t.Fatalf("Init of the zero identity over another: %v", err)
	}
}

func testSaveBeforeInit(t *testing.T, h *harness) {
	for _, p := range []directory.Persist{{Hard: Hard(1, 0, 0), Sync: true}, {}} {
		err := h.s.Save(p)
		if err == nil || errors.Is(err, directory.ErrCorrupt) {
			t.Fatalf("Save before Init: %v, want an error that is not ErrCorrupt", err)
		}
	}
	h.expect(directory.Saved{})
}

func testRoundTrip(t *testing.T, h *harness) {
	h.init(idA)
	ents := Ents(1, 5, 1, "cmd")
	ents[2].Type = pb.EntryConfChange.Enum()
	ents[3].Data = nil
	h.save(directory.Persist{Hard: Hard(1, 2, 0), Entries: ents, Sync: true})
	h.expect(directory.Saved{Identity: idA, Hard: Hard(1, 2, 0), Entries: ents})
	// An empty hard state, nil pieces: nothing changes.
	h.save(directory.Persist{Hard: &pb.HardState{}, Snapshot: &pb.Snapshot{}, Sync: true})
	h.save(directory.Persist{})
	h.save(directory.Persist{Hard: Hard(1, 2, 4), Sync: false})
	h.expect(directory.Saved{Identity: idA, Hard: Hard(1, 2, 4), Entries: ents})
}

func testReplaceFromIndex(t *testing.T, h *harness) {
	h.init(idA)
	h.save(directory.Persist{Entries: Ents(1, 6, 1, "a"), Sync: true})
	// A new leader's entries from 4 replace 4..6.
	h.save(directory.Persist{Entries: Ents(4, 4, 2, "b"), Hard: Hard(2, 0, 3), Sync: true})
	want := append(Ents(1, 3, 1, "a"), Ents(4, 4, 2, "b")...)
	h.expect(directory.Saved{Identity: idA, Hard: Hard(2, 0, 3), Entries: want})
	// Appending right after the last.
	h.save(directory.Persist{Entries: Ents(5, 7, 2, "c"), Sync: true})
	want = append(want, Ents(5, 7, 2, "c")...)
	h.expect(directory.Saved{Identity: idA, Hard: Hard(2, 0, 3), Entries: want})
	// Replacing from the very first.
	h.save(directory.Persist{Entries: Ents(1, 2, 3, "d"), Sync: true})
	h.expect(directory.Saved{Identity: idA, Hard: Hard(2, 0, 3), Entries: Ents(1, 2, 3, "d")})
}

func testSnapshot(t *testing.T, h *harness) {
	h.init(idA)
	h.save(directory.Persist{Entries: Ents(1, 10, 1, "a"), Hard: Hard(1, 1, 8), Sync: true})
	// A snapshot of applied entries drops those it covers.
	h.save(directory.Persist{Snapshot: Snap(6, 1, "state@6"), Sync: true})
	h.expect(directory.Saved{Identity: idA, Hard: Hard(1, 1, 8), Snapshot: Snap(6, 1, "state@6"), Entries: Ents(7, 10, 1, "a")})
	// Compacting the whole log, then appending after it.
	h.save(directory.Persist{Snapshot: Snap(10, 1, "state@10"), Sync: true})
	h.expect(directory.Saved{Identity: idA, Hard: Hard(1, 1, 8), Snapshot: Snap(10, 1, "state@10")})
	h.save(directory.Persist{Entries: Ents(11, 12, 1, "b"), Sync: true})
	// A leader's snapshot beyond the log, with the hard state and the
	// entries that follow it, in one step; entries it covers are dropped.
	h.save(directory.Persist{Snapshot: Snap(20, 2, "state@20"), Hard: Hard(2, 3, 20),
		Entries: Ents(19, 22, 2, "c"), Sync: true})
	want := directory.Saved{Identity: idA, Hard: Hard(2, 3, 20), Snapshot: Snap(20, 2, "state@20"), Entries: Ents(21, 22, 2, "c")}
	h.expect(want)
	// A snapshot at the same index replaces the saved one.
	h.save(directory.Persist{Snapshot: Snap(20, 2, "again"), Sync: true})
	want.Snapshot = Snap(20, 2, "again")
	h.expect(want)
}

// testLeaderSnapshot: a snapshot from the leader (Reset) replaces the
// whole log, also the entries after it, which may conflict with the
// leader's.
func testLeaderSnapshot(t *testing.T, h *harness) {
	h.init(idA)
	h.save(directory.Persist{Entries: Ents(1, 10, 1, "stale"), Hard: Hard(1, 1, 4), Sync: true})
	h.save(directory.Persist{Snapshot: Snap(6, 2, "leader@6"), Reset: true, Hard: Hard(2, 0, 6), Sync: true})
	h.expect(directory.Saved{Identity: idA, Hard: Hard(2, 0, 6), Snapshot: Snap(6, 2, "leader@6")})
	h.save(directory.Persist{Entries: Ents(7, 8, 2, "new"), Sync: true})
	// With the entries that follow it, in one step.
	h.save(directory.Persist{Snapshot: Snap(20, 3, "leader@20"), Reset: true, Entries: Ents(21, 22, 3, "c"), Hard: Hard(3, 0, 20), Sync: true})
	h.expect(directory.Saved{Identity: idA, Hard: Hard(3, 0, 20), Snapshot: Snap(20, 3, "leader@20"), Entries: Ents(21, 22, 3, "c")})
}

// testImplicitSnapshot: a replica that starts from a snapshot it does not
// save (a bootstrap at index 1) saves a log that starts at 2.
func testImplicitSnapshot(t *testing.T, h *harness) {
	h.init(idA)
	h.save(directory.Persist{Hard: Hard(1, 0, 1), Sync: true})
	h.save(directory.Persist{Entries: Ents(2, 3, 1, "a"), Hard: Hard(2, 1, 1), Sync: true})
	h.expect(directory.Saved{Identity: idA, Hard: Hard(2, 1, 1), Entries: Ents(2, 3, 1, "a")})
}

// testRefused: Saves Raft never asks for are refused, and change nothing.
func testRefused(t *testing.T, h *harness) {
	h.init(idA)
	h.save(directory.Persist{Entries: Ents(1, 5, 1, "a"), Snapshot: Snap(2, 1, "s"), Hard: Hard(1, 1, 3), Sync: true})
	want := h.load()
	for _, c := range []struct {
		name string
		p    directory.Persist
	}{
		{"a gap after the log", directory.Persist{Entries: Ents(7, 8, 1, "x"), Hard: Hard(5, 5, 5)}},
		{"entries out of order", directory.Persist{Entries: append(Ents(6, 6, 1, "x"), Ent(8, 1, "y")), Hard: Hard(5, 5, 5)}},
		{"an older snapshot", directory.Persist{Snapshot: Snap(1, 1, "old"), Hard: Hard(5, 5, 5)}},
	} {
		c.p.Sync = true
		err := h.s.Save(c.p)
		if err == nil || errors.Is(err, directory.ErrCorrupt) {
			t.Errorf("%s: Save returned %v, want an error that is not ErrCorrupt", c.name, err)
		}
		if d := Diff(h.load(), want); d != "" {
			t.Errorf("%s: a refused Save changed the store:\n%s", c.name, d)
		}
	}
	h.expect(want)
}

// testAgainstMemStore runs Raft-like saves, some reopens among them,
// against the store and directory.MemStore, comparing what they load.
func testAgainstMemStore(t *testing.T, h *harness) {
	rng := rand.New(rand.NewPCG(1, 2))
	model := &directory.MemStore{}
	both := func(f func(s directory.Store) error) {
		t.Helper()
		if err := f(model); err != nil {
			t.Fatalf("MemStore: %v", err)
		}
		if err := f(h.s); err != nil {
			t.Fatalf("store: %v", err)
		}
	}
	both(func(s directory.Store) error { return s.Init(idA) })
	var (
		snap, last  uint64 // the snapshot's index; the last index (of an entry or the snapshot)
		term, commi uint64
		n           int
	)
	first := uint64(1 + rng.IntN(2)) // 2: after an implicit bootstrap snapshot
	last = first - 1
	for step := range 800 {
		p := directory.Persist{Sync: rng.IntN(4) > 0}
		switch r := rng.IntN(20); {
		case r < 10: // entries, maybe replacing uncommitted ones
			lo := max(snap, commi, first-1) + 1
			from := lo + uint64(rng.IntN(int(last+2-lo)))
			if rng.IntN(3) == 0 {
				term++
			}
			for i := from; i < from+uint64(1+rng.IntN(4)); i++ {
				e := Ent(i, term, "")
				if rng.IntN(5) > 0 {
					e.Data = make([]byte, rng.IntN(300))
					for j := range e.Data {
						e.Data[j] = byte(rng.Uint32())
					}
				}
				p.Entries = append(p.Entries, e)
			}
			last = from + uint64(len(p.Entries)) - 1
		case r < 15: // the hard state, commit moving on
			commi += uint64(rng.IntN(int(last - commi + 1)))
			p.Hard = Hard(term, uint64(rng.IntN(4)), commi)
		case r < 18: // a snapshot of what was applied
			if commi <= snap {
				continue
			}
			snap += 1 + uint64(rng.IntN(int(commi-snap)))
			p.Snapshot = Snap(snap, term, fmt.Sprintf("state@%d", snap))
		case r < 19: // a leader's snapshot, with the hard state and entries after it
			// Beyond the log, or inside it (Reset: the entries after it go).
			snap = last + 1 + uint64(rng.IntN(5))
			if last > max(commi, snap-5) && rng.IntN(2) == 0 {
				snap = commi + 1 + uint64(rng.IntN(int(last-commi)))
			}
			p.Reset = true
			commi, term = snap, term+1
			p.Snapshot = Snap(snap, term, fmt.Sprintf("leader@%d", snap))
			p.Hard = Hard(term, 1, commi)
			p.Entries = Ents(snap+1, snap+uint64(rng.IntN(3)), term, "l")
			last = snap + uint64(len(p.Entries))
		default:
			h.reopen()
			continue
		}
		n++
		both(func(s directory.Store) error { return s.Save(p) })
		if step%3 == 0 || step > 790 {
			want, _ := model.Load()
			if d := Diff(h.load(), want); d != "" {
				t.Fatalf("step %d: the store and MemStore differ:\n%s", step, d)
			}
		}
	}
	if n < 500 {
		t.Fatalf("only %d saves", n)
	}
	if raft.IsEmptySnap(h.load().Snapshot) {
		t.Fatal("the run never saved a snapshot")
	}
}
