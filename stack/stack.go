// Package stack runs a protocol stack: an ordered list of layers, bottom to
// top, through which events travel up (from the network towards the
// application) and down (from the application towards the network), in the
// model of Appia. A Stack is a pure state machine like the peer core: time
// arrives with Step, network input and application requests arrive as
// events, and everything the stack wants done (send a message, close a
// connection, hand a delivery to the application, log) comes back from
// Ready. One caller goroutine drives it, so layers need no locks.
//
// Stacks are described in XML (see ParseDescription) and built from layer
// kinds registered in a Registry.
package stack

import (
	"fmt"
	"time"
)

// Never is the deadline of a stack or layer that needs no tick.
const Never = time.Duration(1<<63 - 1)

// Member is one incarnation of a group member: a process that restarts is
// a new member with a new ID at the same address.
type Member struct {
	ID   string // unique per incarnation
	Addr string // where it accepts connections
}

func (m Member) String() string { return m.ID }

// ViewID names a view: the coordinator that installed it and its sequence
// number. Two views with the same ViewID have the same members.
type ViewID struct {
	Seq   uint64
	Coord string
}

func (v ViewID) String() string { return fmt.Sprintf("%d@%s", v.Seq, v.Coord) }

// View is a group membership: members ranked by age, oldest first; the
// oldest is the coordinator.
type View struct {
	ID      ViewID
	Members []Member
}

// Has reports whether id is a member of v.
func (v View) Has(id string) bool { return v.Rank(id) >= 0 }

// Rank returns the position of id in v, or -1.
func (v View) Rank(id string) int {
	for i, m := range v.Members {
		if m.ID == id {
			return i
		}
	}
	return -1
}

// IDs returns the member IDs of v in rank order.
func (v View) IDs() []string {
	out := make([]string, len(v.Members))
	for i, m := range v.Members {
		out[i] = m.ID
	}
	return out
}

// Event is anything that travels through a stack. The types below are the
// events the stack's edges understand; layers define their own as well.
type Event any

// Events entering at the bottom, from the runtime.
type (
	// Recv is a message that arrived from a member.
	Recv struct {
		From Member
		Msg  Msg
	}
	// Lost reports that the connection to or from a member ended or could
	// not be made. ID is empty when only the address was known.
	Lost struct {
		ID, Addr, Reason string
	}
)

// Events leaving at the bottom, for the runtime.
type (
	// Out asks for m to be sent to a member, connecting first if needed.
	Out struct {
		To  Member
		Msg Msg
	}
	// Multicast is an Out to each of To, in that order: one event for a
	// message that the layers below treat alike for every member. To is
	// never modified once passed.
	Multicast struct {
		To  []Member
		Msg Msg
	}
	// Close asks for the connections with a member to be closed. With
	// KeepIn, those from the member stay open until they end, so that
	// what it sent before is still read: a member suspected because a
	// connection with it closed is gone or leaving, and the rest of what
	// it sent (the Install of a flush it ran before leaving, say) may
	// still be on its way on another connection.
	Close struct {
		ID     string
		KeepIn bool
	}
)

// Events entering at the top, from the application.
type (
	// Send multicasts Msg to the group (the application sends a Msg with
	// only Data; layers push headers). Token, if not zero, is echoed in
	// Acked once every member of the view has the message.
	Send struct {
		Msg   Msg
		Token uint64
	}
	// Join asks to join the group through the members at Contacts
	// (addresses; this member's own is ignored). It is the first request.
	// If no contact has a group to offer, the member founds the group,
	// unless JoinOnly is set and it has contacts: then it gives up (Left)
	// once none of them answers.
	Join struct {
		Contacts []string
		JoinOnly bool
	}
	// Leave asks to leave the group.
	Leave struct{}
	// Contacts gives more addresses where members of the group may be
	// (the directory's, say): besides those of Join, they are where this
	// member looks for another group of the same name to merge with.
	Contacts struct {
		Addrs []string
	}
)

// Events leaving at the top, for the application, and travelling up
// between layers.
type (
	// Deliver is a message delivered in View from From, the Seq-th that
	// From sent in that view. Order is its position in the view's total
	// order, or 0 under a stack without one.
	Deliver struct {
		View  ViewID
		From  string
		Seq   uint64
		Order uint64
		Msg   Msg
	}
	// Install carries a new view up the stack, with the flush
	// contributions of the members that came from the previous view. It
	// reaches the application as the new view.
	Install struct {
		View     View
		Prev     ViewID
		Contribs []Contrib
	}
	// Acked reports that the Send with Token is held by every member of
	// the view it was sent in (or was delivered in a flush): every member
	// that survives will deliver it. Lost instead means this member left
	// that view without that certainty (it was excluded, or left).
	// View and Seq name the message as the members deliver it (Deliver's
	// View and Seq, From being this member).
	Acked struct {
		Token uint64
		Lost  bool
		View  ViewID
		Seq   uint64
	}
	// Left reports that this member is no longer in the group: it left,
	// or the group excluded it. Reason says which.
	Left struct {
		Reason string
	}
	// Block starts a flush: layers stop sending in the current view. The
	// top answers with BlockOk, to which layers add their contributions
	// on the way down.
	Block struct {
		Flush FlushID
	}
	// BlockOk answers Block. Parts are the contributions of the layers it
	// passed, pushed on the way down.
	BlockOk struct {
		Flush FlushID
		Parts [][]byte
	}
)

// FlushID names one attempt at a view change.
type FlushID struct {
	View    ViewID // the view being flushed
	Coord   string // the coordinator running the attempt
	Attempt uint64
}

// Contrib is one member's flush contribution: the parts its layers pushed,
// the topmost layer's first.
type Contrib struct {
	From  string
	Parts [][]byte
}

// Pop returns c's part for the next layer up and the rest.
func (c Contrib) Pop() ([]byte, Contrib) {
	if len(c.Parts) == 0 {
		return nil, c
	}
	n := len(c.Parts) - 1
	return c.Parts[n], Contrib{From: c.From, Parts: c.Parts[:n]}
}
