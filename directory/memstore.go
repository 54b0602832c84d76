package directory

import (
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

// Save applies p.
func (m *MemStore) Save(p Persist) error {
	if p.Snapshot != nil && !raft.IsEmptySnap(p.Snapshot) {
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

// Close does nothing.
func (m *MemStore) Close() error { return nil }
