package boltstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/directory/storetest"
	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/raft/v3/raftpb"
)

var testID = directory.Identity{Cluster: "a", Replica: 2}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "directory.db")
		return func() (directory.Store, error) { return Open(path, nil) }
	})
}

func mustOpen(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func mustLoad(t testing.TB, s directory.Store) directory.Saved {
	t.Helper()
	saved, err := s.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return saved
}

// expectCorrupt checks that opening and loading path fails with an error
// wrapping directory.ErrCorrupt that contains each of says.
func expectCorrupt(t *testing.T, path string, says ...string) {
	t.Helper()
	s, err := Open(path, nil)
	if err == nil {
		_, err = s.Load()
		s.Close()
	}
	if !errors.Is(err, directory.ErrCorrupt) {
		t.Fatalf("a damaged file: %v, want ErrCorrupt", err)
	}
	for _, w := range append(says, path) {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("the error %q does not say %q", err, w)
		}
	}
}

// TestIdentityNamesPath: a store of another replica is refused with both
// identities and the file named.
func TestIdentityNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	s := mustOpen(t, path)
	defer s.Close()
	if err := s.Init(testID); err != nil {
		t.Fatal(err)
	}
	err := s.Init(directory.Identity{Cluster: "b", Replica: 1})
	want := fmt.Sprintf(`the data directory (%s) holds replica 2 of directory "a", not replica 1 of directory "b"`, path)
	if !errors.Is(err, directory.ErrIdentity) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Init of another identity: %v\nwant ErrIdentity saying %s", err, want)
	}
}

// TestDamagedValue: a flipped byte in a value is caught by its checksum,
// and the error names the entry.
func TestDamagedValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	s := mustOpen(t, path)
	if err := s.Init(testID); err != nil {
		t.Fatal(err)
	}
	mark := "VALUE-TO-DAMAGE-0123456789"
	ents := storetest.Ents(1, 5, 1, "x")
	ents[2].Data = []byte(mark)
	if err := s.Save(directory.Persist{Entries: ents, Sync: true}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt copies pages on write: damage every copy, so the live one
	// is hit.
	n := 0
	for i := 0; ; n++ {
		j := bytes.Index(data[i:], []byte(mark))
		if j < 0 {
			break
		}
		data[i+j+5] ^= 0x20
		i += j + 1
	}
	if n == 0 {
		t.Fatal("the value is not in the file")
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	expectCorrupt(t, path, "log entry 3", "checksum")
}

// TestTruncated: a file cut short is refused, wherever the cut.
func TestTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	s := mustOpen(t, path)
	if err := s.Init(testID); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		e := storetest.Ent(uint64(i+1), 1, strings.Repeat("y", 1000))
		if err := s.Save(directory.Persist{Entries: []*pb.Entry{e}, Hard: storetest.Hard(1, 1, uint64(i)), Sync: true}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt grows its file ahead of use: the pages in use end at the
	// high water mark of the newer meta page.
	ps := os.Getpagesize()
	m0, _ := parseMeta(data)
	m1, _ := parseMeta(data[ps:])
	used := int(max(m0.pgid, m1.pgid)) * ps
	if used > len(data) || used < 4*ps {
		t.Fatalf("%d pages in use in a file of %d bytes", used/ps, len(data))
	}
	for _, size := range []int{used - 1, used - ps, used / 2, 2*ps + 1, 2 * ps, ps, 100, 0} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			if err := os.WriteFile(path, data[:size], 0o600); err != nil {
				t.Fatal(err)
			}
			expectCorrupt(t, path)
		})
	}
	// Cutting what bbolt has not used yet loses nothing.
	if err := os.WriteFile(path, data[:used], 0o600); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path)
	defer s.Close()
	if saved := mustLoad(t, s); len(saved.Entries) != 20 {
		t.Fatalf("%d entries after cutting the unused end", len(saved.Entries))
	}
}

// TestNotAStore: garbage, another program's bbolt database, an empty
// bbolt database: all refused, none taken for a new store.
func TestNotAStore(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	for name, content := range map[string][]byte{
		"garbage": garbage,
		"text":    []byte("this is not a database\n"),
		"zeros":   make([]byte, 32<<10),
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		expectCorrupt(t, path)
	}
	for name, buckets := range map[string][]string{"other": {"users"}, "empty": nil, "half": {"meta"}} {
		path := filepath.Join(dir, name)
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			for _, b := range buckets {
				if _, err := tx.CreateBucket([]byte(b)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		db.Close()
		expectCorrupt(t, path, "not this store's")
	}
}

// TestInUse: a second open of a store in use fails after the timeout,
// saying so, in this process and in another.
func TestInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	s := mustOpen(t, path)
	start := time.Now()
	_, err := Open(path, &Options{Timeout: 100 * time.Millisecond})
	if took := time.Since(start); !errors.Is(err, ErrInUse) || took < 100*time.Millisecond || took > 5*time.Second {
		t.Fatalf("a second open: %v after %v, want ErrInUse after the 100ms timeout", err, took)
	}
	if !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("the error %q does not say the file is in use", err)
	}
	s.Close()

	// Another process holds it.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHold$")
	cmd.Env = append(os.Environ(), "BOLTSTORE_HOLD="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("the second process said %q, %v", line, err)
	}
	if _, err := Open(path, &Options{Timeout: 100 * time.Millisecond}); !errors.Is(err, ErrInUse) {
		t.Fatalf("open while another process holds the store: %v, want ErrInUse", err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("second process: %v", err)
	}
	s = mustOpen(t, path) // released when the other process exited
	s.Close()
}

// TestHelperHold is TestInUse's other process: it opens the store named
// by $BOLTSTORE_HOLD and holds it until its stdin closes.
func TestHelperHold(t *testing.T) {
	path := os.Getenv("BOLTSTORE_HOLD")
	if path == "" {
		t.Skip("runs as TestInUse's second process")
	}
	s := mustOpen(t, path)
	fmt.Println("holding")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	s.Close()
}

// history is a store file after a run of saves, and the state after each
// transaction of that run.
type history struct {
	file   []byte
	states []directory.Saved
	live   []int // offsets of the bytes bbolt reads: meta pages, and the non-zero bytes of pages in use
}

var (
	historyOnce sync.Once
	historyVal  history
	historyErr  error
)

// sampleHistory builds (once) a store through Raft-like saves: entries,
// hard states, snapshots that compact the log, entries replaced.
func sampleHistory() (history, error) {
	historyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "boltstore-history-")
		if err != nil {
			historyErr = err
			return
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "d.db")
		s, err := Open(path, nil)
		if err != nil {
			historyErr = err
			return
		}
		var h history
		step := func(f func() error) {
			if historyErr == nil {
				historyErr = f()
			}
			if historyErr == nil {
				var saved directory.Saved
				saved, historyErr = s.Load()
				h.states = append(h.states, saved)
			}
		}
		step(func() error { return s.Init(testID) })
		for i := range 12 {
			lo := uint64(i*4 + 1)
			step(func() error {
				return s.Save(directory.Persist{Entries: storetest.Ents(lo, lo+5, uint64(i+1), strings.Repeat("e", 150)),
					Hard: storetest.Hard(uint64(i+1), 1, lo), Sync: true})
			})
			if i%4 == 3 {
				step(func() error {
					return s.Save(directory.Persist{Snapshot: storetest.Snap(lo, uint64(i+1), strings.Repeat("s", 700)), Sync: true})
				})
			}
		}
		s.Close()
		h.file, err = os.ReadFile(path)
		if historyErr == nil {
			historyErr = err
		}
		v, err := walk(h.file)
		if historyErr == nil {
			historyErr = err
		}
		if historyErr != nil {
			return
		}
		for off := range h.file {
			id := off / v.ps
			switch {
			case id < 2 && off%v.ps < pageHeaderSize+metaSize:
			case id >= 2 && uint64(id) < v.hwm && v.reachable[id] && h.file[off] != 0:
			default:
				continue
			}
			h.live = append(h.live, off)
		}
		historyVal = h
	})
	return historyVal, historyErr
}

// openDamaged writes file with patches applied — pairs of a 4-byte
// offset and the byte to write there; an offset with its top bit set
// counts in the whole file, one without it in the live bytes, both
// modulo their length — opens and loads it. It fails t if anything panics, if the error does not wrap
// directory.ErrCorrupt, or if what loads is not one of the history's
// states.
func openDamaged(t *testing.T, h history, patches []byte) {
	t.Helper()
	data := bytes.Clone(h.file)
	for ; len(patches) >= 5; patches = patches[5:] {
		off := uint32(patches[0])<<24 | uint32(patches[1])<<16 | uint32(patches[2])<<8 | uint32(patches[3])
		if off&(1<<31) != 0 {
			data[int(off&^(1<<31))%len(data)] = patches[4]
		} else {
			data[h.live[int(off)%len(h.live)]] = patches[4]
		}
	}
	path := filepath.Join(t.TempDir(), "d.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, nil)
	if err != nil {
		if !errors.Is(err, directory.ErrCorrupt) {
			t.Fatalf("Open of a damaged file: %v, want ErrCorrupt", err)
		}
		return
	}
	defer s.Close()
	saved, err := s.Load()
	if err != nil {
		if !errors.Is(err, directory.ErrCorrupt) {
			t.Fatalf("Load of a damaged file: %v, want ErrCorrupt", err)
		}
		return
	}
	for _, st := range h.states {
		if storetest.Diff(saved, st) == "" {
			return
		}
	}
	t.Fatalf("a damaged file loads a state the store never held:\n%s", storetest.Diff(saved, h.states[len(h.states)-1]))
}

// TestDamageAnywhere: a byte written anywhere in the file — meta pages,
// branch and leaf pages, the freelist, keys, values — never panics and
// never loads a state the store did not hold: it is refused as damage,
// or changes nothing that is read (a free page, unused room in a page),
// or (in a meta page) makes bbolt fall back to the transaction before.
func TestDamageAnywhere(t *testing.T) {
	h, err := sampleHistory()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	n := 400
	if testing.Short() {
		n = 50
	}
	t.Logf("%d of the file's %d bytes are read", len(h.live), len(h.file))
	for range n {
		off := rng.IntN(len(h.live))
		if rng.IntN(10) == 0 {
			off = rng.IntN(len(h.file)) | 1<<31
		}
		openDamaged(t, h, []byte{byte(off >> 24), byte(off >> 16), byte(off >> 8), byte(off), byte(rng.Uint32())})
	}
}

func FuzzDamagedFile(f *testing.F) {
	h, err := sampleHistory()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{})
	for _, off := range []int{8, 16, 40, 100, 500, 1000, len(h.live) / 2, len(h.live) - 1, 1<<31 | len(h.file) - 1} {
		f.Add([]byte{byte(off >> 24), byte(off >> 16), byte(off >> 8), byte(off), 0xff})
	}
	f.Fuzz(func(t *testing.T, patches []byte) {
		openDamaged(t, h, patches)
	})
}

// BenchmarkSave saves one entry of 200 bytes and a hard state, durably.
func BenchmarkSave(b *testing.B) {
	s := mustOpen(b, filepath.Join(b.TempDir(), "d.db"))
	defer s.Close()
	if err := s.Init(testID); err != nil {
		b.Fatal(err)
	}
	data := string(make([]byte, 200))
	for i := uint64(1); b.Loop(); i++ {
		p := directory.Persist{Entries: []*pb.Entry{storetest.Ent(i, 1, data)}, Hard: storetest.Hard(1, 1, i), Sync: true}
		if err := s.Save(p); err != nil {
			b.Fatal(err)
		}
	}
}
