package sim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/directory/storetest"
)

var storeID = directory.Identity{Cluster: "sim", Replica: 1}

func TestDiskStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		d := newDiskNet(t, 1).Disk(0)
		return func() (directory.Store, error) { return NewDiskStore(d, "dir"), nil }
	})
}

// TestDiskStoreCompacting: the same checks with a store that starts a new
// file at almost every save.
func TestDiskStoreCompacting(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		d := newDiskNet(t, 1).Disk(0)
		return func() (directory.Store, error) {
			s := NewDiskStore(d, "dir")
			s.minCompact = 200
			return s, nil
		}
	})
}

// syncNow syncs s and runs the network until the sync completed.
func syncNow(t *testing.T, n *Net, s *DiskStore) {
	t.Helper()
	done := false
	s.Sync(func() { done = true })
	if !n.RunUntil(n.Now()+time.Second, func() bool { return done }) {
		t.Fatal("the sync never completed")
	}
}

func mustLoad(t *testing.T, s directory.Store) directory.Saved {
	t.Helper()
	saved, err := s.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return saved
}

func mustSave(t *testing.T, s directory.Store, p directory.Persist) {
	t.Helper()
	if err := s.Save(p); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

// TestDiskStoreCrashKeepsSynced: what was synced before a crash survives
// it; what was saved after the last sync, or whose sync was still under
// way, is lost.
func TestDiskStoreCrashKeepsSynced(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		n := newDiskNet(t, seed)
		s := NewDiskStore(n.Disk(0), "dir")
		if err := s.Init(storeID); err != nil {
			t.Fatal(err)
		}
		mustSave(t, s, directory.Persist{Entries: storetest.Ents(1, 3, 1, "a"), Hard: storetest.Hard(1, 1, 2), Sync: true})
		syncNow(t, n, s)
		synced := mustLoad(t, s)
		mustSave(t, s, directory.Persist{Entries: storetest.Ents(4, 5, 1, "b"), Hard: storetest.Hard(1, 1, 4), Sync: true})
		n.Crash(0)
		n.Start(0)
		s = NewDiskStore(n.Disk(0), "dir")
		if d := storetest.Diff(mustLoad(t, s), synced); d != "" {
			t.Fatalf("after a crash, the store holds, against what was synced:\n%s", d)
		}
		// A sync under way at the crash is lost, its callback never runs.
		mustSave(t, s, directory.Persist{Entries: storetest.Ents(4, 4, 2, "c"), Sync: true})
		called := false
		s.Sync(func() { called = true })
		n.Crash(0)
		n.RunFor(time.Second)
		n.Start(0)
		n.RunFor(time.Second)
		if d := storetest.Diff(mustLoad(t, s), synced); d != "" || called {
			t.Fatalf("a sync cut short by a crash (callback ran: %v); the store holds, against what was synced:\n%s", called, d)
		}
		// The same store, used after the crash, reads the disk again.
		mustSave(t, s, directory.Persist{Entries: storetest.Ents(4, 4, 3, "d"), Sync: true})
		syncNow(t, n, s)
		n.Crash(0)
		n.Start(0)
		want := synced
		want.Entries = append(want.Entries, storetest.Ents(4, 4, 3, "d")...)
		if d := storetest.Diff(mustLoad(t, NewDiskStore(n.Disk(0), "dir")), want); d != "" {
			t.Fatalf("after a synced save and a crash:\n%s", d)
		}
	})
}

// TestDiskStoreCrashNeverInit: a store whose Init was never synced is
// new again after a crash.
func TestDiskStoreCrashNeverInit(t *testing.T) {
	n := newDiskNet(t, 1)
	s := NewDiskStore(n.Disk(0), "dir")
	if err := s.Init(storeID); err != nil {
		t.Fatal(err)
	}
	n.Crash(0)
	n.Start(0)
	if d := storetest.Diff(mustLoad(t, s), directory.Saved{}); d != "" {
		t.Fatalf("an unsynced Init survived a crash:\n%s", d)
	}
	if err := s.Init(directory.Identity{Cluster: "other", Replica: 3}); err != nil {
		t.Fatalf("Init after the crash: %v", err)
	}
}

// TestDiskStoreRandomCrashes: saves, syncs and crashes at random. After
// each crash the store holds the state after some prefix of the saves, at
// least every save whose sync completed, and never an error.
func TestDiskStoreRandomCrashes(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		n := newDiskNet(t, seed)
		rng := rand.New(rand.NewPCG(seed, 99))
		d := n.Disk(0)
		s := NewDiskStore(d, "dir")
		s.minCompact = 1 << 10
		model := &directory.MemStore{}
		if err := s.Init(storeID); err != nil {
			t.Fatal(err)
		}
		syncNow(t, n, s)
		_ = model.Init(storeID)
		history := []directory.Saved{mustLoad(t, model)} // state after each save
		durable := 0                                     // index in history of the last completed sync
		var last, commit, snap, term uint64 = 0, 0, 0, 1
		crashes, compactions := 0, 0
		for step := range 400 {
			switch r := rng.IntN(10); {
			case r < 6:
				// A snapshot of what was committed, entries after the
				// commit index, the commit index moving on.
				p := directory.Persist{Sync: true}
				if rng.IntN(6) == 0 && commit > snap {
					snap = commit
					p.Snapshot = storetest.Snap(snap, term, strings.Repeat("x", rng.IntN(500)))
				}
				from := commit + 1 + uint64(rng.IntN(int(last-commit+1)))
				p.Entries = storetest.Ents(from, from+uint64(rng.IntN(3)), term, fmt.Sprintf("s%d-", step))
				last = p.Entries[len(p.Entries)-1].GetIndex()
				if rng.IntN(2) == 0 {
					commit += uint64(rng.IntN(int(last - commit + 1)))
					p.Hard = storetest.Hard(term, 1, commit)
				}
				gen := s.gen
				mustSave(t, s, p)
				if s.gen != gen {
					compactions++
				}
				_ = model.Save(p)
				history = append(history, mustLoad(t, model))
			case r < 8:
				at := len(history) - 1
				s.Sync(func() { durable = max(durable, at) })
			case r < 9:
				n.RunFor(time.Duration(rng.IntN(3000)) * time.Microsecond)
			default:
				n.Crash(0)
				crashes++
				n.Start(0)
				s = NewDiskStore(d, "dir")
				s.minCompact = 1 << 10
				got, err := s.Load()
				if err != nil {
					t.Fatalf("step %d: Load after a crash: %v", step, err)
				}
				k := -1
				for i := len(history) - 1; i >= durable; i-- {
					if storetest.Diff(got, history[i]) == "" {
						k = i
						break
					}
				}
				if k < 0 {
					t.Fatalf("step %d: after a crash the store holds none of the states from the last synced one (%d of %d):\n%s",
						step, durable, len(history)-1, storetest.Diff(got, history[durable]))
				}
				// Go on from what survived.
				history = append(history[:0:0], history[:k+1]...)
				durable = k
				model = &directory.MemStore{}
				_ = model.Init(storeID)
				_ = model.Save(directory.Persist{Hard: got.Hard, Snapshot: got.Snapshot, Entries: got.Entries})
				last, commit, snap = 0, got.Hard.GetCommit(), got.Snapshot.GetMetadata().GetIndex()
				last = snap
				if len(got.Entries) > 0 {
					last = got.Entries[len(got.Entries)-1].GetIndex()
				}
				term++
			}
		}
		if crashes < 10 || compactions < 3 {
			t.Fatalf("%d crashes, %d new files: the run proves little", crashes, compactions)
		}
	})
}

// TestDiskStoreTornTail: a record the file ends in the middle of is
// dropped without an error, and the store goes on in a new file.
func TestDiskStoreTornTail(t *testing.T) {
	rec := appendRecord(nil, appendState(nil, nil, storetest.Ents(3, 3, 1, "torn"), nil))
	for _, cut := range []int{1, recordHeader - 1, recordHeader, len(rec) - 1} {
		n := newDiskNet(t, 1)
		d := n.Disk(0)
		s := NewDiskStore(d, "dir")
		if err := s.Init(storeID); err != nil {
			t.Fatal(err)
		}
		mustSave(t, s, directory.Persist{Entries: storetest.Ents(1, 2, 1, "a")})
		want := mustLoad(t, s)
		name := s.Files()[0]
		d.Write(name, len(d.Read(name)), rec[:cut])
		s = NewDiskStore(d, "dir")
		if d := storetest.Diff(mustLoad(t, s), want); d != "" {
			t.Fatalf("a record cut at byte %d: the store holds\n%s", cut, d)
		}
		// A Save after a torn tail goes to a new file, so the tail
		// cannot come between records.
		mustSave(t, s, directory.Persist{Entries: storetest.Ents(3, 3, 2, "b")})
		after := mustLoad(t, NewDiskStore(d, "dir"))
		if len(after.Entries) != 3 || string(after.Entries[2].GetData()) != "b3" {
			t.Fatalf("a save after a torn tail: %v", after.Entries)
		}
		if got := s.Files(); len(got) != 2 {
			t.Fatalf("the save after a torn tail did not start a new file: %v", got)
		}
	}
}

// TestDiskStoreCorrupt: damage inside the records is an error that says
// where, never an empty or shorter store.
func TestDiskStoreCorrupt(t *testing.T) {
	n := newDiskNet(t, 1)
	d := n.Disk(0)
	s := NewDiskStore(d, "dir")
	if err := s.Init(storeID); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		mustSave(t, s, directory.Persist{Entries: storetest.Ents(uint64(i+1), uint64(i+1), 1, "entry"), Hard: storetest.Hard(1, 1, uint64(i))})
	}
	name := s.Files()[0]
	good := d.Read(name)
	for off := range good {
		for _, bit := range []byte{0x01, 0x80} {
			b := append([]byte(nil), good...)
			b[off] ^= bit
			d.Write(name, 0, b)
			_, err := NewDiskStore(d, "dir").Load()
			if !errors.Is(err, directory.ErrCorrupt) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "record at byte") {
				t.Fatalf("bit %#x of byte %d flipped: Load returned %v, want ErrCorrupt naming the file and the record", bit, off, err)
			}
		}
	}
	d.Write(name, 0, good)
	if _, err := NewDiskStore(d, "dir").Load(); err != nil {
		t.Fatal(err)
	}
}

// TestDiskStoreClaimedLength: a record that claims more bytes than the
// file holds is a torn tail, and costs no allocation of what it claims.
func TestDiskStoreClaimedLength(t *testing.T) {
	data := appendRecord(nil, appendBase(nil, 1, &diskState{hasID: true, id: storeID}))
	whole := len(data)
	var h [recordHeader]byte
	binary.LittleEndian.PutUint32(h[0:], 1<<30)
	binary.LittleEndian.PutUint32(h[8:], crc32.Checksum(h[:8], castagnoli))
	data = append(append(data, h[:]...), make([]byte, 100)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	st, gen, end, _, err := decodeDiskFile(data)
	runtime.ReadMemStats(&after)
	if err != nil || gen != 1 || end != whole || st.id != storeID {
		t.Fatalf("decode: generation %d, %d whole bytes of %d, %v", gen, end, whole, err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("reading %d bytes allocated %d", len(data), n)
	}
}

// FuzzDiskStoreLoad: whatever a store file holds, reading it never
// panics, allocates in proportion to its length, and either fails with
// an error or yields a state that is sound (entries in order after the
// snapshot) and reads back the same from its own base record. The input
// is read as a file, and as the payload of a file's one record (past the
// checksums a fuzzer seldom gets right).
func FuzzDiskStoreLoad(f *testing.F) {
	for _, seed := range diskStoreSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
		checkDecode(t, appendRecord(nil, data))
	})
}

func checkDecode(t *testing.T, data []byte) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	st, gen, end, base, err := decodeDiskFile(data)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 128*uint64(len(data))+64<<10 {
		t.Fatalf("reading %d bytes allocated %d", len(data), n)
	}
	if err != nil {
		return
	}
	if end > len(data) || base > end || (gen == 0) != (end == 0) {
		t.Fatalf("generation %d, base record %d bytes, whole records %d of %d bytes", gen, base, end, len(data))
	}
	si := st.snap.GetMetadata().GetIndex()
	for i, e := range st.ents {
		if e.GetIndex() <= si || i > 0 && e.GetIndex() != st.ents[i-1].GetIndex()+1 {
			t.Fatalf("entry %d at index %d, after a snapshot at %d", i, e.GetIndex(), si)
		}
	}
	if gen == 0 {
		return
	}
	again, gen2, _, _, err := decodeDiskFile(appendRecord(nil, appendBase(nil, gen, st)))
	if err != nil || gen2 != gen {
		t.Fatalf("the state's own base record reads back as generation %d, %v", gen2, err)
	}
	a := directory.Saved{Identity: st.id, Hard: st.hard, Snapshot: st.snap, Entries: st.ents}
	b := directory.Saved{Identity: again.id, Hard: again.hard, Snapshot: again.snap, Entries: again.ents}
	if d := storetest.Diff(b, a); d != "" || again.hasID != st.hasID {
		t.Fatalf("the state's own base record reads back different:\n%s", d)
	}
}

// diskStoreSeeds returns store files: whole, with a torn tail, damaged.
func diskStoreSeeds() [][]byte {
	st := &diskState{hasID: true, id: storeID}
	file := appendRecord(nil, appendBase(nil, 1, st))
	for i := range uint64(4) {
		file = appendRecord(file, appendState(nil, nil, storetest.Ents(3*i+1, 3*i+3, i+1, "e"), storetest.Hard(i+1, 1, 3*i+1)))
	}
	file = appendRecord(file, appendState(nil, storetest.Snap(6, 2, "state"), nil, nil))
	st.snap = storetest.Snap(6, 2, "state")
	st.ents = storetest.Ents(7, 9, 3, "x")
	st.hard = storetest.Hard(3, 1, 8)
	compacted := appendRecord(nil, appendBase(nil, 7, st))
	torn := append(bytes.Clone(file), file[len(file)-20:]...)
	flipped := bytes.Clone(file)
	flipped[len(flipped)/2] ^= 0x10
	payload := appendBase(nil, 2, st) // a base record's payload, read as the payload of a record
	return [][]byte{nil, file, compacted, torn, flipped, file[:len(file)-3], []byte("garbage, not a store file"), payload}
}
