// Package boltstore is the production directory.Store: a replica's Raft
// log, hard state, snapshot and identity in one go.etcd.io/bbolt file.
//
// Layout. Two buckets. "meta" holds five keys, all written when the file
// is created, so that a lost key is seen as damage rather than as a
// never-written value:
//
//	format    u32 format version (1)
//	identity  u8 set (0 or 1), u64 replica, cluster name
//	hard      raftpb.HardState (empty: none saved)
//	snapshot  raftpb.Snapshot (empty: none saved)
//	extent    u64 snapshot index, u64 first and u64 last log index (0, 0: no entries)
//
// "log" holds the entries after the snapshot: key the 8-byte big-endian
// index, value a raftpb.Entry. Integers are big-endian. Every value is a
// 4-byte CRC-32C (Castagnoli) of key and payload, then the payload: bbolt
// checksums its meta pages only, so a flipped bit in a data page would
// otherwise go unseen.
//
// A new store is laid out in a temporary file, synced, and linked into
// place, so a file at the store's path always held a store: an empty one
// is damage, not a new store.
//
// Checks. Open reads the whole file under a shared lock and checks
// bbolt's own structure before bbolt maps it (bbolt trusts its pages and
// panics, or reads outside its mapping, on a damaged one); Load verifies
// every checksum, the keys, and that the log runs without gaps from the
// first to the last index the extent names. Damage is reported as an
// error wrapping directory.ErrCorrupt that says where, never repaired or
// reset. What bbolt itself recovers from is not damage: a meta page torn
// by a crash during a commit makes bbolt use the other, the state before
// that (unacknowledged) commit.
//
// Durability. Save runs in one bbolt transaction, committed with
// fdatasync before it returns, whatever Persist.Sync says: bbolt's NoSync
// skips both of a commit's syncs, so after a power loss the meta page can
// reach the disk before the pages it points to, and a later commit can
// reuse pages the last durable meta page still needs — a damaged file,
// not a lost commit index.
package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/conclave/conclave/directory"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// ErrInUse marks a file another process has open.
var ErrInUse = errors.New("boltstore: in use by another process")

// Options tunes Open.
type Options struct {
	// Timeout bounds the wait for another process to release the file
	// (default 1s).
	Timeout time.Duration
}

// Store is a directory.Store in a bbolt file. Its methods must not be
// called concurrently.
type Store struct {
	db   *bolt.DB
	path string
}

var _ directory.Store = (*Store)(nil)

const formatVersion = 1

var (
	bucketMeta = []byte("meta")
	bucketLog  = []byte("log")

	keyFormat   = []byte("format")
	keyIdentity = []byte("identity")
	keyHard     = []byte("hard")
	keySnapshot = []byte("snapshot")
	keyExtent   = []byte("extent")

	metaKeys = [][]byte{keyFormat, keyIdentity, keyHard, keySnapshot, keyExtent}
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Open opens the store in file path, creating it if it does not exist
// (its directory must). It fails with an error wrapping ErrInUse if
// another process holds the file beyond opts.Timeout, and with one
// wrapping directory.ErrCorrupt if the file is not a sound bbolt database
// holding this package's layout — an empty file included: a new store is
// laid out in a temporary file and linked into place whole. opts may be
// nil.
func Open(path string, opts *Options) (*Store, error) {
	timeout := time.Second
	if opts != nil && opts.Timeout > 0 {
		timeout = opts.Timeout
	}
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		if err := create(path, timeout); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	if err := check(path, timeout); err != nil {
		return nil, err
	}
	db, err := openBolt(path, timeout)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: path}
	if err := s.checkFormat(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// create makes a new store at path: laid out in a temporary file, synced,
// then linked to path unless another process made one there first.
func create(path string, timeout time.Duration) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".new-*")
	if err != nil {
		return fmt.Errorf("boltstore: creating %s: %w", path, err)
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp)
	db, err := openBolt(tmp, timeout)
	if err != nil {
		return err
	}
	s := &Store{db: db, path: tmp}
	err = s.format()
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("boltstore: creating %s: %w", path, err)
	}
	return syncDir(dir)
}

// check verifies bbolt's structure of the file at path under a shared
// lock.
func check(path string, timeout time.Duration) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	defer f.Close() // releases the lock
	if err := lock(f, path, timeout); err != nil {
		return err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("boltstore: reading %s: %w", path, err)
	}
	if len(data) == 0 {
		return fmt.Errorf("%w: %s: the file is empty", directory.ErrCorrupt, path)
	}
	if err := verifyFile(data); err != nil {
		return fmt.Errorf("%w: %s: %w", directory.ErrCorrupt, path, err)
	}
	return nil
}

// lock takes a shared lock on f, the one bbolt takes exclusively.
func lock(f *os.File, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("boltstore: locking %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			return inUse(path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func inUse(path string, timeout time.Duration) error {
	return fmt.Errorf("%w: %s is locked by another process (waited %v)", ErrInUse, path, timeout)
}

// openBolt opens the (checked) file with bbolt, turning a panic on a file
// damaged after the check into an error.
func openBolt(path string, timeout time.Duration) (db *bolt.DB, err error) {
	var file *os.File
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				file.Close()
			}
			db, err = nil, fmt.Errorf("%w: %s: bbolt: %v", directory.ErrCorrupt, path, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout,
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, mode)
			file = f
			return f, err
		}})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, inUse(path, timeout)
	case errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("%w: %s: %w", directory.ErrCorrupt, path, err)
	case err != nil:
		return nil, fmt.Errorf("boltstore: opening %s: %w", path, err)
	}
	return db, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("boltstore: syncing directory %s: %w", dir, err)
	}
	return nil
}

// format lays out a new database.
func (s *Store) format() error {
	return s.update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketLog); err != nil {
			return err
		}
		for k, v := range map[string][]byte{
			"format":   binary.BigEndian.AppendUint32(nil, formatVersion),
			"identity": {0},
			"hard":     nil,
			"snapshot": nil,
			"extent":   extent{}.encode(),
		} {
			if err := put(m, []byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkFormat checks that the database has this package's layout, in the
// format version this code reads.
func (s *Store) checkFormat() error {
	return s.view(func(tx *bolt.Tx) error {
		var names [][]byte
		if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, bytes.Clone(name))
			return nil
		}); err != nil {
			return err
		}
		m := tx.Bucket(bucketMeta)
		if m == nil || tx.Bucket(bucketLog) == nil {
			return s.corrupt("the database holds buckets %q, not this store's", names)
		}
		v, err := s.get(m, keyFormat)
		if err != nil {
			return err
		}
		if len(v) != 4 {
			return s.corrupt("format: %d bytes", len(v))
		}
		if f := binary.BigEndian.Uint32(v); f != formatVersion {
			return fmt.Errorf("boltstore: %s has format %d; this program reads format %d", s.path, f, formatVersion)
		}
		return nil
	})
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Path returns the file's path.
func (s *Store) Path() string { return s.path }

// extent says where the log stands.
type extent struct {
	snap        uint64 // index of the saved snapshot, 0 if none
	first, last uint64 // the entries saved; 0, 0 if none
}

func (e extent) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, e.snap)
	b = binary.BigEndian.AppendUint64(b, e.first)
	return binary.BigEndian.AppendUint64(b, e.last)
}

func (s *Store) extent(m *bolt.Bucket) (extent, error) {
	v, err := s.get(m, keyExtent)
	if err != nil {
		return extent{}, err
	}
	if len(v) != 24 {
		return extent{}, s.corrupt("extent: %d bytes, want 24", len(v))
	}
	e := extent{snap: binary.BigEndian.Uint64(v), first: binary.BigEndian.Uint64(v[8:]), last: binary.BigEndian.Uint64(v[16:])}
	if (e.first == 0) != (e.last == 0) || e.first > e.last || e.first != 0 && e.first <= e.snap {
		return extent{}, s.corrupt("extent: snapshot at %d, entries %d to %d", e.snap, e.first, e.last)
	}
	return e, nil
}

func (s *Store) identity(m *bolt.Bucket) (directory.Identity, bool, error) {
	v, err := s.get(m, keyIdentity)
	if err != nil {
		return directory.Identity{}, false, err
	}
	switch {
	case len(v) == 1 && v[0] == 0:
		return directory.Identity{}, false, nil
	case len(v) >= 9 && v[0] == 1:
		return directory.Identity{Replica: binary.BigEndian.Uint64(v[1:]), Cluster: string(v[9:])}, true, nil
	}
	return directory.Identity{}, false, s.corrupt("identity: %d bytes, starting %#x", len(v), v[:min(len(v), 1)])
}

// Init records id in a new store, or checks it against the recorded one.
func (s *Store) Init(id directory.Identity) error {
	return s.update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		have, ok, err := s.identity(m)
		switch {
		case err != nil:
			return err
		case ok && have != id:
			return fmt.Errorf("%w: the data directory (%s) holds replica %d of directory %q, not replica %d of directory %q",
				directory.ErrIdentity, s.path, have.Replica, have.Cluster, id.Replica, id.Cluster)
		case ok:
			return nil
		}
		v := binary.BigEndian.AppendUint64([]byte{1}, id.Replica)
		return put(m, keyIdentity, append(v, id.Cluster...))
	})
}

// Save applies p in one transaction, durable when Save returns.
func (s *Store) Save(p directory.Persist) error {
	if raft.IsEmptySnap(p.Snapshot) && raft.IsEmptyHardState(p.Hard) && len(p.Entries) == 0 {
		return s.view(func(tx *bolt.Tx) error { // nothing to write
			if _, ok, err := s.identity(tx.Bucket(bucketMeta)); err != nil || ok {
				return err
			}
			return fmt.Errorf("boltstore: %s: Save before Init: the store has no identity", s.path)
		})
	}
	return s.update(func(tx *bolt.Tx) error {
		m, l := tx.Bucket(bucketMeta), tx.Bucket(bucketLog)
		if _, ok, err := s.identity(m); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("boltstore: %s: Save before Init: the store has no identity", s.path)
		}
		e, err := s.extent(m)
		if err != nil {
			return err
		}
		ents := p.Entries
		for i := 1; i < len(ents); i++ {
			if ents[i].GetIndex() != ents[i-1].GetIndex()+1 {
				return fmt.Errorf("boltstore: Save: entry %d follows entry %d", ents[i].GetIndex(), ents[i-1].GetIndex())
			}
		}
		if !raft.IsEmptySnap(p.Snapshot) {
			si := p.Snapshot.GetMetadata().GetIndex()
			if si < e.snap {
				return fmt.Errorf("boltstore: Save: snapshot at %d is older than the saved one at %d", si, e.snap)
			}
			b, err := proto.Marshal(p.Snapshot)
			if err != nil {
				return err
			}
			if err := put(m, keySnapshot, b); err != nil {
				return err
			}
			if e.first != 0 {
				upto := min(e.last, si)
				if p.Reset {
					upto = e.last
				}
				if err := deleteRange(l, e.first, upto); err != nil {
					return err
				}
				if e.last <= upto {
					e.first, e.last = 0, 0
				} else {
					e.first = si + 1
				}
			}
			e.snap = si
		}
		for len(ents) > 0 && ents[0].GetIndex() <= e.snap {
			ents = ents[1:] // covered by the snapshot
		}
		if len(ents) > 0 {
			from := ents[0].GetIndex()
			if e.first != 0 && from > e.last+1 {
				return fmt.Errorf("boltstore: Save: entries from %d leave a gap after the saved log's last entry %d", from, e.last)
			}
			if e.first != 0 && from <= e.last {
				if err := deleteRange(l, max(from, e.first), e.last); err != nil {
					return err
				}
			}
			if e.first == 0 || from < e.first {
				e.first = from
			}
			for _, ent := range ents {
				b, err := proto.Marshal(ent)
				if err != nil {
					return err
				}
				if err := put(l, indexKey(ent.GetIndex()), b); err != nil {
					return err
				}
			}
			e.last = ents[len(ents)-1].GetIndex()
		}
		if !raft.IsEmptyHardState(p.Hard) {
			b, err := proto.Marshal(p.Hard)
			if err != nil {
				return err
			}
			if err := put(m, keyHard, b); err != nil {
				return err
			}
		}
		return put(m, keyExtent, e.encode())
	})
}

// deleteRange deletes the entries from index lo to hi.
func deleteRange(l *bolt.Bucket, lo, hi uint64) error {
	for i := lo; i <= hi && i >= lo; i++ {
		if err := l.Delete(indexKey(i)); err != nil {
			return err
		}
	}
	return nil
}

// Load reads and checks everything the store holds.
func (s *Store) Load() (directory.Saved, error) {
	var saved directory.Saved
	err := s.view(func(tx *bolt.Tx) error {
		if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if !bytes.Equal(name, bucketMeta) && !bytes.Equal(name, bucketLog) {
				return s.corrupt("a bucket %q that is not this store's", name)
			}
			return nil
		}); err != nil {
			return err
		}
		m, l := tx.Bucket(bucketMeta), tx.Bucket(bucketLog)
		if m == nil || l == nil {
			return s.corrupt("bucket meta or log is missing")
		}
		// Every key of meta is known (a damaged key would otherwise hide
		// a value) and every value's checksum holds.
		seen := 0
		if err := m.ForEach(func(k, v []byte) error {
			known := false
			for _, mk := range metaKeys {
				known = known || bytes.Equal(k, mk)
			}
			if !known || v == nil {
				return s.corrupt("meta holds an unknown key %q", k)
			}
			seen++
			_, err := s.value(fmt.Sprintf("meta key %q", k), k, v)
			return err
		}); err != nil {
			return err
		}
		if seen != len(metaKeys) {
			return s.corrupt("meta holds %d of its %d keys", seen, len(metaKeys))
		}
		id, ok, err := s.identity(m)
		if err != nil {
			return err
		}
		if ok {
			saved.Identity = id
		}
		if v, err := s.get(m, keyHard); err != nil {
			return err
		} else if len(v) > 0 {
			saved.Hard = &pb.HardState{}
			if err := unmarshal(v, saved.Hard); err != nil {
				return s.corrupt("hard state: %v", err)
			}
		}
		e, err := s.extent(m)
		if err != nil {
			return err
		}
		if v, err := s.get(m, keySnapshot); err != nil {
			return err
		} else if len(v) > 0 {
			saved.Snapshot = &pb.Snapshot{}
			if err := unmarshal(v, saved.Snapshot); err != nil {
				return s.corrupt("snapshot: %v", err)
			}
		}
		if si := saved.Snapshot.GetMetadata().GetIndex(); si != e.snap {
			return s.corrupt("the snapshot is at index %d, the extent says %d", si, e.snap)
		}
		want := e.first
		c := l.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				return s.corrupt("log holds a bucket %q", k)
			}
			if len(k) != 8 {
				return s.corrupt("log key %x is not an index", k)
			}
			i := binary.BigEndian.Uint64(k)
			switch {
			case want == 0 || want > e.last:
				return s.corrupt("log entry %d is outside the extent's %d to %d", i, e.first, e.last)
			case i != want:
				return s.corrupt("log entry %d is missing (the next is %d)", want, i)
			}
			b, err := s.value(fmt.Sprintf("log entry %d", i), k, v)
			if err != nil {
				return err
			}
			ent := &pb.Entry{}
			if err := unmarshal(b, ent); err != nil {
				return s.corrupt("log entry %d: %v", i, err)
			}
			if ent.GetIndex() != i {
				return s.corrupt("log entry %d holds entry %d", i, ent.GetIndex())
			}
			saved.Entries = append(saved.Entries, ent)
			want++
		}
		if e.first != 0 && want != e.last+1 {
			return s.corrupt("log entries %d to %d are missing", want, e.last)
		}
		return nil
	})
	if err != nil {
		return directory.Saved{}, err
	}
	return saved, nil
}

func unmarshal(b []byte, m proto.Message) error {
	return proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, m)
}

// view runs fn in a read transaction, turning a bbolt panic (or a fault
// in its memory map) into an error.
func (s *Store) view(fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.corrupt("bbolt: %v", r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return s.db.View(fn)
}

// update runs fn in a write transaction, turning a bbolt panic (or a
// fault in its memory map) into an error.
func (s *Store) update(fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.corrupt("bbolt: %v", r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return s.db.Update(fn)
}

func (s *Store) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", directory.ErrCorrupt, s.path, fmt.Sprintf(format, args...))
}

// get returns the payload of meta key k, its checksum verified.
func (s *Store) get(m *bolt.Bucket, k []byte) ([]byte, error) {
	v := m.Get(k)
	if v == nil {
		return nil, s.corrupt("meta key %q is missing", k)
	}
	return s.value(fmt.Sprintf("meta key %q", k), k, v)
}

// value checks the checksum of v, stored under k, and returns its
// payload; what names the value in an error.
func (s *Store) value(what string, k, v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, s.corrupt("%s: a value of %d bytes, without its checksum", what, len(v))
	}
	stored, sum := binary.BigEndian.Uint32(v), checksum(k, v[4:])
	if stored != sum {
		return nil, s.corrupt("%s: checksum %#08x, the value's is %#08x", what, stored, sum)
	}
	return v[4:], nil
}

func checksum(k, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(k, castagnoli), castagnoli, payload)
}

// put stores payload under k with its checksum.
func put(b *bolt.Bucket, k, payload []byte) error {
	v := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(payload)), checksum(k, payload))
	return b.Put(k, append(v, payload...))
}

func indexKey(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }
