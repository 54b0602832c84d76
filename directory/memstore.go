package directory

import (
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// MemStore is a Store in memory: durable for the life of the value, for
// tests and for directories that need not survive their process.
type MemStore struct {
	saved Saved
	init  bool
}

// Load returns a copy of what was saved.
func (m *MemStore) Load() (Saved, error) {
	s := Saved{Identity: m.saved.Identity}
	if m.saved.Hard != nil {
		s.Hard = proto.Clone(m.saved.Hard).(*pb.HardState)
	}
	if m.saved.Snapshot != nil {
		s.Snapshot = proto.Clone(m.saved.Snapshot).(*pb.Snapshot)
	}
	for _, e := range m.saved.Entries {
		s.Entries = append(s.Entries, proto.Clone(e).(*pb.Entry))
	}
	return s, nil
}

// Init records id, or checks it against the one recorded.
func (m *MemStore) Init(id Identity) error {
	if m.init && m.saved.Identity != id {
		return identityError(m.saved.Identity, id)
	}
	m.saved.Identity, m.init = id, true
	return nil
}

// Save applies p. Like every Store, it refuses, changing nothing, a Save
// before Init and what Raft never asks for: entries out of order or
// leaving a gap after the log, a snapshot older than the saved one.
func (m *MemStore) Save(p Persist) error {
	if err := m.check(p); err != nil {
		return err
	}
	if p.Snapshot != nil && !raft.IsEmptySnap(p.Snapshot) {
		if p.Reset {
			m.saved.Entries = nil
		}
		m.saved.Snapshot = proto.Clone(p.Snapshot).(*pb.Snapshot)
		i := p.Snapshot.GetMetadata().GetIndex()
		m.saved.Entries = slices.DeleteFunc(m.saved.Entries, func(e *pb.Entry) bool { return e.GetIndex() <= i })
	}
	if len(p.Entries) > 0 {
		first := p.Entries[0].GetIndex()
		m.saved.Entries = slices.DeleteFunc(m.saved.Entries, func(e *pb.Entry) bool { return e.GetIndex() >= first })
		for _, e := range p.Entries {
			m.saved.Entries = append(m.saved.Entries, proto.Clone(e).(*pb.Entry))
		}
	}
	if i := m.saved.Snapshot.GetMetadata().GetIndex(); i > 0 {
		m.saved.Entries = slices.DeleteFunc(m.saved.Entries, func(e *pb.Entry) bool { return e.GetIndex() <= i })
	}
	if p.Hard != nil && !raft.IsEmptyHardState(p.Hard) {
		m.saved.Hard = proto.Clone(p.Hard).(*pb.HardState)
	}
	return nil
}

func (m *MemStore) check(p Persist) error {
	if !m.init {
		return errors.New("directory: MemStore: Save before Init")
	}
	for i := 1; i < len(p.Entries); i++ {
		if p.Entries[i].GetIndex() != p.Entries[i-1].GetIndex()+1 {
			return fmt.Errorf("directory: MemStore: entry %d follows entry %d", p.Entries[i].GetIndex(), p.Entries[i-1].GetIndex())
		}
	}
	si := m.saved.Snapshot.GetMetadata().GetIndex()
	last := si
	if n := len(m.saved.Entries); n > 0 {
		last = m.saved.Entries[n-1].GetIndex()
	}
	if p.Snapshot != nil && !raft.IsEmptySnap(p.Snapshot) {
		i := p.Snapshot.GetMetadata().GetIndex()
		if i < si {
			return fmt.Errorf("directory: MemStore: snapshot at %d is older than the saved one at %d", i, si)
		}
		si = i
		if p.Reset || last < si {
			last = si
		}
	}
	if len(p.Entries) > 0 && len(m.saved.Entries) > 0 && !p.Reset {
		if from := p.Entries[0].GetIndex(); from > last+1 && from > si+1 {
			return fmt.Errorf("directory: MemStore: entries from %d leave a gap after the saved log's last entry %d", from, last)
		}
	}
	return nil
}

// Close does nothing.
func (m *MemStore) Close() error { return nil }
