// Package moving holds the decisions of the protocol that carries a
// topic's guarantees across its move from one group to another (package
// pubsub describes it; docs/directory.md, "Moves"): whom a subscription
// waits for before it switches, when it may, and whom a publisher waits
// for. They are pure, so that package pubsub's clients and the
// simulator's (package sim) take the same ones.
package moving

import (
	"math"

	"github.com/conclave/conclave/pubsub/envelope"
)

// Waits returns the clients a subscription moving out of group old waits
// for before it switches: the topic's publishers when it moved
// (switching), or nobody if the topic last moved from another group than
// old (from): the subscription learnt of two moves at once, and the
// publishers of the first no longer send in old.
func Waits(old, from string, switching []string) map[string]bool {
	wait := map[string]bool{}
	if old != from {
		return wait
	}
	for _, name := range switching {
		wait[name] = true
	}
	return wait
}

// Mark returns the move number a marker records for the client that sent
// it: its move number for switch, every move for end (the publisher
// publishes no more in the group), 0 for the others.
func Mark(m envelope.Marker) uint64 {
	switch m.Phase {
	case envelope.Switch:
		return m.Moves
	case envelope.End:
		return math.MaxUint64
	}
	return 0
}

// Settled removes from wait the clients a subscription switching for
// move moving need not wait for any more, and reports whether it may
// switch: it waits for nobody. A client is done when each of its members
// in the old group's view (members, whose client clientOf names) has a
// mark (marks: member id → the highest Mark of its markers in the old
// group) that reaches moving; one with no member there left the view,
// and everything it sent there was delivered before. Members, not
// clients, are asked: a client that restarted under the same name is
// another member, which has to switch for itself.
func Settled(wait map[string]bool, marks map[string]uint64, moving uint64, members []string, clientOf func(member string) string) bool {
	for name := range wait {
		done := true
		for _, id := range members {
			if clientOf(id) == name && marks[id] < moving {
				done = false
				break
			}
		}
		if done {
			delete(wait, name)
		}
	}
	return len(wait) == 0
}

// Unready returns the clients a publisher switching for move e still
// waits for, in the order of following (the topic's subscribers when it
// moved): those with a member in the old group's view (inOld) that have
// not said they are ready for e (ready: client → the last move it is
// ready for) or are not in the new group's view (inNew), where what the
// publisher sends would not reach them.
func Unready(following []string, e uint64, ready map[string]uint64, inOld, inNew func(client string) bool) []string {
	var out []string
	for _, name := range following {
		if inOld(name) && (ready[name] < e || !inNew(name)) {
			out = append(out, name)
		}
	}
	return out
}
