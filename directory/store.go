package directory

import (
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
)

// Identity says whose data a store holds: a store of another cluster or
// another replica is refused at start.
type Identity struct {
	Cluster string
	Replica uint64
}

// Saved is what a store holds: everything a replica needs to start again
// where it stopped.
type Saved struct {
	Identity Identity
	Hard     *raftpb.HardState
	// Snapshot is the latest snapshot (nil before the first); Entries
	// follow it, in index order, without gaps.
	Snapshot *raftpb.Snapshot
	Entries  []*raftpb.Entry
}

// Persist is what a replica asks to make durable before it sends the
// messages of the same step.
type Persist struct {
	// Hard, if not nil or empty, replaces the saved hard state.
	Hard *raftpb.HardState
	// Entries replace the saved entries from Entries[0].Index on.
	Entries []*raftpb.Entry
	// Snapshot, if not nil or empty, replaces the saved snapshot, and the
	// entries it covers are dropped.
	Snapshot *raftpb.Snapshot
	// Reset says Snapshot came from the leader and replaces the whole
	// log: every saved entry is dropped, also those after it, which may
	// conflict with the leader's log (Entries, if any, then follow it).
	Reset bool
	// Sync says the write must be durable before the replica goes on;
	// false only when nothing raft depends on changed (a commit index).
	Sync bool
}

// Store is a replica's durable state: go.etcd.io/bbolt in production, the
// simulated disk in the simulator.
type Store interface {
	// Load returns what the store holds. A store that was never written
	// returns a Saved with nil Hard and Snapshot; a corrupt or truncated one returns an error
	// that says so (wrapping ErrCorrupt), never an empty state.
	Load() (Saved, error)
	// Init records the identity of a new store; it fails on a store that
	// holds another identity.
	Init(id Identity) error
	// Save applies p. In production it returns once p is durable; the
	// simulator's store leaves durability to its disk's Sync.
	Save(p Persist) error
	// Close releases the store.
	Close() error
}

// ErrCorrupt marks a store whose content cannot be trusted.
var ErrCorrupt = errors.New("directory: corrupt store")

// ErrIdentity marks a store that belongs to another cluster or replica.
var ErrIdentity = errors.New("directory: store of another cluster or replica")

// App is the replicated state machine a Replica applies committed
// commands to. It must be deterministic: every replica applies the same
// commands in the same order and must reach the same state and results.
type App interface {
	// Apply applies the command committed at index and returns its result.
	Apply(index uint64, cmd []byte) []byte
	// Snapshot encodes the whole state.
	Snapshot() []byte
	// Restore replaces the state with a snapshot's.
	Restore(snap []byte) error
	// Query answers a read-only query from the current state.
	Query(q []byte) []byte
}

// identityError says a store holds another identity than want.
func identityError(have, want Identity) error {
	return fmt.Errorf("%w: the data directory holds replica %d of directory %q, not replica %d of directory %q",
		ErrIdentity, have.Replica, have.Cluster, want.Replica, want.Cluster)
}
