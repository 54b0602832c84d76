package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"

	"github.com/conclave/conclave/directory"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// DiskStore is a directory.Store on a simulated Disk, for a directory
// replica the simulator runs. Save only writes, to the disk's page cache;
// durability is the disk's: call Sync after Save, and send what must
// follow a durable save from its callback. A crash then loses exactly
// what was not synced, as the disk decides.
//
// Files. The store keeps its state in files "<name>.<generation>". A file
// is a sequence of records; the first, the base record, holds the whole
// state and the file's generation, and each later one a Save (or an
// Init). When a file grows past twice its base record (plus 64 KiB), the
// next Save starts the next generation with a new base record instead of
// appending: the disk cannot truncate, and this keeps the files Sync
// copies short once snapshots have compacted the log. The newest file
// that holds a whole record is the store; older ones are left behind.
//
// Record: u32 payload length, u32 CRC-32C of the payload, u32 CRC-32C of
// those 8 bytes (all little-endian), then the payload: items, each a kind
// byte, a uvarint length and that many bytes:
//
//	'B' base record marker: uvarint generation (first item of a file only)
//	'I' identity: uvarint replica, then the cluster name
//	'S' a raftpb.Snapshot, 'E' a raftpb.Entry (any number, in index order), 'H' a raftpb.HardState
//
// A record applies as one Persist: a snapshot drops the entries it
// covers, entries replace the log from their first index on, a hard
// state replaces the saved one.
//
// A torn tail is not damage: a record whose header or payload the file
// ends in the middle of is a write a crash cut short, and Load drops it,
// as it would on a real disk whose last unsynced write was torn (this
// Disk keeps or loses a write whole, so here only a test makes one). A
// whole record whose checksum fails, an unknown item, a gap in the log,
// are damage: Load reports them with an error wrapping
// directory.ErrCorrupt, naming the file and the byte offset.
//
// A DiskStore must be used by one incarnation of its process; after a
// crash it reloads what the disk kept.
type DiskStore struct {
	d    *Disk
	name string

	st      *diskState // what the store holds; nil until read
	crashes int        // the disk's crashes when st was read
	gen     uint64     // the file being appended to; 0: none yet
	next    uint64     // the next generation to start
	size    int        // bytes of whole records in file gen
	base    int        // bytes of its base record
	torn    bool       // file gen ends in a torn record: start the next
	dirty   []string   // files written since the last Sync
	closed  bool

	minCompact int // the growth allowed beyond twice the base record
}

var _ directory.Store = (*DiskStore)(nil)

// NewDiskStore returns the store in files name.* of d. It reads nothing
// until it is used.
func NewDiskStore(d *Disk, name string) *DiskStore {
	return &DiskStore{d: d, name: name, minCompact: 64 << 10}
}

// errDiskStoreClosed is returned by a closed store.
var errDiskStoreClosed = errors.New("sim: disk store closed")

// Files returns the names of the store's files on the disk, oldest
// first.
func (s *DiskStore) Files() []string {
	var names []string
	for _, g := range s.gens() {
		names = append(names, s.file(g))
	}
	return names
}

// Sync makes durable what Save and Init wrote since the last Sync, then
// runs done in the process (unless it crashes first).
func (s *DiskStore) Sync(done func()) {
	files := s.dirty
	s.dirty = nil
	if len(files) == 0 {
		files = []string{s.file(max(s.gen, 1))}
	}
	for i, f := range files {
		var cb func()
		if i == len(files)-1 {
			cb = done
		}
		s.d.Sync(f, cb)
	}
}

// Load reads what the disk holds for the store.
func (s *DiskStore) Load() (directory.Saved, error) {
	if s.closed {
		return directory.Saved{}, errDiskStoreClosed
	}
	r, err := s.read()
	if err != nil {
		return directory.Saved{}, err
	}
	st := r.st
	out := directory.Saved{Hard: st.hard, Snapshot: st.snap, Entries: st.ents}
	if st.hasID {
		out.Identity = st.id
	}
	return out, nil
}

// Init records id in a new store, or checks it against the recorded one.
func (s *DiskStore) Init(id directory.Identity) error {
	if err := s.ensure(); err != nil {
		return err
	}
	if s.st.hasID {
		if s.st.id != id {
			return fmt.Errorf("%w: disk store %q holds replica %d of directory %q, not replica %d of directory %q",
				directory.ErrIdentity, s.name, s.st.id.Replica, s.st.id.Cluster, id.Replica, id.Cluster)
		}
		return nil
	}
	s.st.id, s.st.hasID = id, true
	s.write(appendIdentity(nil, id))
	return nil
}

// Save applies p: it writes a record to the page cache. Sync makes it
// durable.
func (s *DiskStore) Save(p directory.Persist) error {
	if err := s.ensure(); err != nil {
		return err
	}
	if !s.st.hasID {
		return fmt.Errorf("sim: disk store %q: Save before Init: the store has no identity", s.name)
	}
	var snap *pb.Snapshot
	var hard *pb.HardState
	if !raft.IsEmptySnap(p.Snapshot) {
		snap = proto.Clone(p.Snapshot).(*pb.Snapshot)
	}
	if !raft.IsEmptyHardState(p.Hard) {
		hard = proto.Clone(p.Hard).(*pb.HardState)
	}
	ents := make([]*pb.Entry, len(p.Entries))
	for i, e := range p.Entries {
		ents[i] = proto.Clone(e).(*pb.Entry)
	}
	if snap == nil && hard == nil && len(ents) == 0 {
		return nil
	}
	reset := p.Reset && snap != nil
	if err := s.st.apply(reset, snap, ents, hard); err != nil {
		return fmt.Errorf("sim: disk store %q: Save: %w", s.name, err)
	}
	var rec []byte
	if reset {
		rec = appendItem(rec, itemReset, nil)
	}
	s.write(appendState(rec, snap, ents, hard))
	return nil
}

// Close closes the store; it does not sync.
func (s *DiskStore) Close() error {
	s.closed, s.st = true, nil
	return nil
}

// ensure reads the store if it was not read in this incarnation of the
// disk.
func (s *DiskStore) ensure() error {
	if s.closed {
		return errDiskStoreClosed
	}
	if s.st != nil && s.crashes == s.d.crashes {
		return nil
	}
	r, err := s.read()
	if err != nil {
		return err
	}
	s.st, s.crashes, s.gen, s.next = r.st, s.d.crashes, r.gen, r.next
	s.size, s.base, s.torn, s.dirty = r.end, r.base, r.torn, nil
	return nil
}

type readResult struct {
	st        *diskState
	gen, next uint64
	end, base int
	torn      bool
}

// read replays the newest file that holds a whole record.
func (s *DiskStore) read() (readResult, error) {
	gens := s.gens()
	r := readResult{st: &diskState{}, next: 1}
	if len(gens) > 0 {
		r.next = gens[len(gens)-1] + 1
	}
	for _, g := range slices.Backward(gens) {
		name := s.file(g)
		data := s.d.Read(name)
		st, gen, end, base, err := decodeDiskFile(data)
		if err != nil {
			return readResult{}, fmt.Errorf("%w: disk store file %q: %w", directory.ErrCorrupt, name, err)
		}
		if gen == 0 {
			continue // its base record was cut short: the previous file holds the store
		}
		if gen != g {
			return readResult{}, fmt.Errorf("%w: disk store file %q: its base record says generation %d", directory.ErrCorrupt, name, gen)
		}
		r.st, r.gen, r.end, r.base, r.torn = st, g, end, base, end < len(data)
		return r, nil
	}
	return r, nil
}

// write appends the record of payload to the current file, or starts the
// next generation with the whole state.
func (s *DiskStore) write(payload []byte) {
	rec := appendRecord(nil, payload)
	if s.gen == 0 || s.torn || s.size+len(rec) > 2*s.base+s.minCompact {
		s.gen, s.next = s.next, s.next+1
		rec = appendRecord(nil, appendBase(nil, s.gen, s.st))
		s.size, s.base, s.torn = 0, len(rec), false
	}
	name := s.file(s.gen)
	s.d.Write(name, s.size, rec)
	s.size += len(rec)
	if !slices.Contains(s.dirty, name) {
		s.dirty = append(s.dirty, name)
	}
}

func (s *DiskStore) file(gen uint64) string { return s.name + "." + strconv.FormatUint(gen, 10) }

// gens returns the generations of the store's files, in order.
func (s *DiskStore) gens() []uint64 {
	var gens []uint64
	for _, f := range s.d.Files() {
		g, ok := strings.CutPrefix(f, s.name+".")
		if !ok || g == "" || g[0] == '0' {
			continue
		}
		if n, err := strconv.ParseUint(g, 10, 64); err == nil {
			gens = append(gens, n)
		}
	}
	slices.Sort(gens)
	return gens
}

// diskState is what a DiskStore holds.
type diskState struct {
	id    directory.Identity
	hasID bool
	hard  *pb.HardState // nil: none
	snap  *pb.Snapshot  // nil: none
	ents  []*pb.Entry   // after snap, in index order, without gaps
}

// apply applies one save: snap drops the entries it covers (every entry
// with reset), ents replace
// the log from their first index on (those snap covers are dropped),
// hard replaces the hard state; any may be nil. It checks first, and
// changes nothing if it fails.
func (st *diskState) apply(reset bool, snap *pb.Snapshot, ents []*pb.Entry, hard *pb.HardState) error {
	for i := 1; i < len(ents); i++ {
		if ents[i].GetIndex() != ents[i-1].GetIndex()+1 {
			return fmt.Errorf("entry %d follows entry %d", ents[i].GetIndex(), ents[i-1].GetIndex())
		}
	}
	si := st.snap.GetMetadata().GetIndex()
	if snap != nil {
		if i := snap.GetMetadata().GetIndex(); i < si {
			return fmt.Errorf("snapshot at %d is older than the saved one at %d", i, si)
		}
		si = snap.GetMetadata().GetIndex()
	}
	kept := st.ents
	if reset {
		kept = nil
	}
	for len(kept) > 0 && kept[0].GetIndex() <= si {
		kept = kept[1:]
	}
	for len(ents) > 0 && ents[0].GetIndex() <= si {
		ents = ents[1:]
	}
	if len(ents) > 0 && len(kept) > 0 {
		if from, last := ents[0].GetIndex(), kept[len(kept)-1].GetIndex(); from > last+1 {
			return fmt.Errorf("entries from %d leave a gap after the saved log's last entry %d", from, last)
		}
	}
	if snap != nil {
		st.snap = snap
		st.ents = append(st.ents[:0], kept...)
		kept = st.ents
	}
	if len(ents) > 0 {
		from := ents[0].GetIndex()
		n := len(kept)
		if n > 0 && from <= kept[n-1].GetIndex() {
			n = int(max(from, kept[0].GetIndex()) - kept[0].GetIndex())
		}
		st.ents = append(kept[:n], ents...)
	}
	if hard != nil {
		st.hard = hard
	}
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const recordHeader = 12

// Item kinds.
const (
	itemBase     = 'B'
	itemIdentity = 'I'
	itemSnapshot = 'S'
	itemEntry    = 'E'
	itemHard     = 'H'
	itemReset    = 'R' // the snapshot that follows replaces the whole log
)

func appendRecord(b, payload []byte) []byte {
	var h [recordHeader]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(payload, castagnoli))
	binary.LittleEndian.PutUint32(h[8:], crc32.Checksum(h[:8], castagnoli))
	return append(append(b, h[:]...), payload...)
}

func appendItem(b []byte, kind byte, body []byte) []byte {
	b = binary.AppendUvarint(append(b, kind), uint64(len(body)))
	return append(b, body...)
}

func appendMessage(b []byte, kind byte, m proto.Message) []byte {
	body, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("sim: encoding %T: %v", m, err)) // raft's messages always encode
	}
	return appendItem(b, kind, body)
}

func appendIdentity(b []byte, id directory.Identity) []byte {
	return appendItem(b, itemIdentity, append(binary.AppendUvarint(nil, id.Replica), id.Cluster...))
}

func appendState(b []byte, snap *pb.Snapshot, ents []*pb.Entry, hard *pb.HardState) []byte {
	if snap != nil {
		b = appendMessage(b, itemSnapshot, snap)
	}
	for _, e := range ents {
		b = appendMessage(b, itemEntry, e)
	}
	if hard != nil {
		b = appendMessage(b, itemHard, hard)
	}
	return b
}

// appendBase appends the items of a base record of generation gen
// holding st.
func appendBase(b []byte, gen uint64, st *diskState) []byte {
	b = appendItem(b, itemBase, binary.AppendUvarint(nil, gen))
	if st.hasID {
		b = appendIdentity(b, st.id)
	}
	return appendState(b, st.snap, st.ents, st.hard)
}

// decodeDiskFile replays a store file: it returns the state, the
// generation its base record names (0 if the file holds no whole
// record), the length of its whole records, and that of its base
// record. A torn last record is left out; any other flaw is an error.
// It allocates in proportion to len(data), whatever the lengths the data
// claims.
func decodeDiskFile(data []byte) (st *diskState, gen uint64, end, base int, err error) {
	st = &diskState{}
	for {
		rest := data[end:]
		if len(rest) < recordHeader {
			break // the end, or a torn header
		}
		n := binary.LittleEndian.Uint32(rest)
		if sum := crc32.Checksum(rest[:8], castagnoli); sum != binary.LittleEndian.Uint32(rest[8:]) {
			return nil, 0, 0, 0, fmt.Errorf("record at byte %d: header checksum %#08x, the header's is %#08x",
				end, binary.LittleEndian.Uint32(rest[8:]), sum)
		}
		if uint64(n) > uint64(len(rest)-recordHeader) {
			break // torn: the file ends inside the record
		}
		payload := rest[recordHeader : recordHeader+int(n)]
		if sum := crc32.Checksum(payload, castagnoli); sum != binary.LittleEndian.Uint32(rest[4:]) {
			return nil, 0, 0, 0, fmt.Errorf("record at byte %d: checksum %#08x, the payload's is %#08x",
				end, binary.LittleEndian.Uint32(rest[4:]), sum)
		}
		g, err := replay(st, payload, end == 0)
		if err != nil {
			return nil, 0, 0, 0, fmt.Errorf("record at byte %d: %w", end, err)
		}
		if end == 0 {
			gen, base = g, recordHeader+int(n)
		}
		end += recordHeader + int(n)
	}
	return st, gen, end, base, nil
}

// replay applies one record's payload to st; first says it is the base
// record, whose generation it returns.
func replay(st *diskState, payload []byte, first bool) (gen uint64, err error) {
	var (
		reset bool
		id    *directory.Identity
		snap  *pb.Snapshot
		hard  *pb.HardState
		ents  []*pb.Entry
	)
	for i := 0; len(payload) > 0; i++ {
		kind := payload[0]
		n, k := binary.Uvarint(payload[1:])
		if k <= 0 || n > uint64(len(payload)-1-k) {
			return 0, fmt.Errorf("item %d runs past the record", i)
		}
		body := payload[1+k : 1+k+int(n)]
		payload = payload[1+k+int(n):]
		switch kind {
		case itemBase:
			if !first || i != 0 {
				return 0, fmt.Errorf("item %d: a base record marker after the start of the file", i)
			}
			g, k := binary.Uvarint(body)
			if k != len(body) || g == 0 {
				return 0, fmt.Errorf("item %d: a bad generation", i)
			}
			gen = g
		case itemIdentity:
			r, k := binary.Uvarint(body)
			if k <= 0 || id != nil {
				return 0, fmt.Errorf("item %d: a bad or second identity", i)
			}
			id = &directory.Identity{Replica: r, Cluster: string(body[k:])}
		case itemSnapshot:
			if snap != nil {
				return 0, fmt.Errorf("item %d: a second snapshot", i)
			}
			snap = &pb.Snapshot{}
			if err := unmarshal(body, snap); err != nil {
				return 0, fmt.Errorf("item %d: snapshot: %w", i, err)
			}
			if raft.IsEmptySnap(snap) {
				return 0, fmt.Errorf("item %d: an empty snapshot", i)
			}
		case itemEntry:
			e := &pb.Entry{}
			if err := unmarshal(body, e); err != nil {
				return 0, fmt.Errorf("item %d: entry: %w", i, err)
			}
			if len(ents) > 0 && e.GetIndex() != ents[len(ents)-1].GetIndex()+1 {
				return 0, fmt.Errorf("item %d: entry %d follows entry %d", i, e.GetIndex(), ents[len(ents)-1].GetIndex())
			}
			ents = append(ents, e)
		case itemReset:
			if reset || len(body) != 0 || snap != nil || len(ents) > 0 {
				return 0, fmt.Errorf("item %d: a misplaced log reset", i)
			}
			reset = true
		case itemHard:
			if hard != nil {
				return 0, fmt.Errorf("item %d: a second hard state", i)
			}
			hard = &pb.HardState{}
			if err := unmarshal(body, hard); err != nil {
				return 0, fmt.Errorf("item %d: hard state: %w", i, err)
			}
			if raft.IsEmptyHardState(hard) {
				return 0, fmt.Errorf("item %d: an empty hard state", i)
			}
		default:
			return 0, fmt.Errorf("item %d: unknown kind %#x", i, kind)
		}
	}
	if first && gen == 0 {
		return 0, errors.New("the file does not start with a base record")
	}
	if id != nil {
		if st.hasID && st.id != *id {
			return 0, fmt.Errorf("identity %+v after identity %+v", *id, st.id)
		}
		st.id, st.hasID = *id, true
	}
	if reset && snap == nil {
		return 0, errors.New("a log reset without a snapshot")
	}
	if err := st.apply(reset, snap, ents, hard); err != nil {
		return 0, err
	}
	return gen, nil
}

func unmarshal(b []byte, m proto.Message) error {
	return proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, m)
}
