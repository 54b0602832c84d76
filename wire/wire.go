// Package wire defines the frames conclave peers exchange over TCP and their
// byte layout.
//
// Every frame except Hint is a type byte, the payload length as an unsigned
// varint, and the payload:
//
//	+--------+------------------+---------------------+
//	| type   | length (uvarint) | payload (length B)  |
//	+--------+------------------+---------------------+
//
// Hint is a single byte (0x21) with no length and no payload. It is the byte a
// peer sends as TCP urgent data after a leader-change frame: with SO_OOBINLINE
// set it arrives in the ordered stream, where the framing reads it as a no-op,
// so a stray, duplicated or un-flagged urgent byte is always harmless.
//
// Payload fields are unsigned varints (uvarint), signed varints (varint) and
// strings (uvarint length, then bytes). A payload must be consumed exactly:
// trailing bytes are an error. The first frame on a connection is Hello, which
// carries a magic number and the protocol version.
package wire

import (
	"errors"
	"fmt"
)

// Type identifies a frame.
//
// WARNING: ONLY APPEND TO THIS LIST! The numeric values are part of the
// protocol itself.
type Type uint8

// Frame types.
const (
	TypeHello        Type = 1
	TypeReject       Type = 2
	TypeHeartbeat    Type = 3
	TypeLeaderChange Type = 4
	TypeBye          Type = 5
	TypeJoinConn     Type = 6 // version 1 only, no longer parsed: groups open with Hello since version 2
	TypeGroupMsg     Type = 7
	TypeRaft         Type = 8    // between directory replicas
	TypeRequest      Type = 9    // from a client to a directory replica
	TypeResponse     Type = 10   // from a directory replica to a client
	TypeHint         Type = 0x21 // one byte, no length: the urgent byte
)

// Version is the protocol version carried in Hello. Version 2 made Hello
// say what a connection is for (Kind), so one listener serves every kind.
const Version = 2

// Kind says what a connection is for: which kind of machine on the
// accepting process it is routed to.
//
// WARNING: ONLY APPEND TO THIS LIST! The numeric values are part of the
// protocol itself.
type Kind uint8

// Connection kinds.
const (
	KindPeer      Kind = 1 // between the peer cores of a cluster; Scope is the cluster
	KindGroup     Kind = 2 // from one group member to another; Scope is the group
	KindDirectory Kind = 3 // between directory replicas
	KindClient    Kind = 4 // from a client to a directory replica
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindPeer:
		return "peer"
	case KindGroup:
		return "group"
	case KindDirectory:
		return "directory"
	case KindClient:
		return "client"
	}
	return fmt.Sprintf("kind-%d", uint8(k))
}

// Magic opens every Hello payload, so that a stray client is told apart from
// a peer speaking another version.
const Magic = "CNCL"

// DefaultMaxFrame is the default limit on a frame's payload length.
const DefaultMaxFrame = 64 << 10

// MaxString is the limit on the length of any string field.
const MaxString = 1024

// Errors returned by Parse.
var (
	// ErrShort means the buffer holds only the beginning of a frame.
	ErrShort = errors.New("wire: incomplete frame")
	// ErrTooLarge means the declared payload length exceeds the limit.
	ErrTooLarge = errors.New("wire: frame too large")
)

// Frame is one protocol message.
type Frame interface {
	// Type is the frame's type byte.
	Type() Type
	appendPayload(b []byte) []byte
}

// parser is implemented by pointers to frames that have a payload.
type parser interface {
	Frame
	parsePayload(d *decoder)
}

// Hello opens every connection, from both ends: what the connection is for
// (Kind and Scope, by which the accepting process routes it), who is
// speaking, and whom it means to reach. The accepting end answers with its
// own Hello, or with Reject and a close.
type Hello struct {
	Version     uint8
	Kind        Kind
	Scope       string // the cluster (KindPeer) or group (KindGroup) name
	From        string // the sender's id in the scope: "2" for peer 2, a member id
	Addr        string // where the sender accepts connections, if it does
	To          string // the id the sender means to reach; "" if only the address is known
	N           int    // KindPeer: the number of peers the sender was configured with
	Incarnation uint64 // grows each time the sender process restarts
	LC          uint64 // sender's Lamport clock
	Nonce       []byte // fresh random bytes, so that a proof cannot be replayed
	Proof       []byte // the sender's proof that it knows the cluster key
}

// MaxNonce bounds a Hello's Nonce and Proof.
const MaxNonce = 64

// Reject tells the other side why its Hello was refused; the connection is
// closed after it.
type Reject struct {
	Reason string
	LC     uint64
}

// Heartbeat says the sender is running. Seq counts heartbeats on a connection
// from 1. Open says the sender's elections are open (it has accounted for
// every peer); then Alive lists the peers it considers correct, so that a
// restarted peer can learn which peers are down instead of waiting for them.
type Heartbeat struct {
	Seq   uint64
	LC    uint64
	Open  bool
	Alive []int // sorted; only with Open
}

// MaxPeers bounds the number of ids in a Heartbeat's Alive list.
const MaxPeers = 4096

// LeaderChange announces that the sender's leader changed from Prev to Leader
// (-1 is none). It travels in the ordered stream and is followed by a Hint
// sent as urgent data.
type LeaderChange struct {
	Leader int
	Prev   int
	LC     uint64
}

// Bye says the sender is closing the connection on purpose, and why.
type Bye struct {
	Reason string
	LC     uint64
}

// Hint is the one-byte frame sent as TCP urgent data. It carries nothing.
type Hint struct{}

// GroupMsg is a message of a group's protocol stack, in the stack's own
// encoding.
type GroupMsg struct {
	LC   uint64 // sender's Lamport clock, for the merged event log
	Data []byte
}

// Raft is a Raft message between directory replicas, in raft's own
// encoding (raftpb.Message).
type Raft struct {
	LC   uint64 // sender's Lamport clock
	Data []byte
}

// Op says what a client's request asks a directory replica.
type Op uint8

// Request operations.
const (
	OpPropose Op = 1 // apply a command through the replicated log
	OpRead    Op = 2 // answer a query at a linearizable point
)

// Request is a client's request to a directory replica; the replica
// answers with a Response of the same ID.
type Request struct {
	ID   uint64
	Op   Op
	Data []byte
}

// Response answers the Request of the same ID.
type Response struct {
	ID     uint64
	Status uint8 // directory.Status
	// Leader is the replica the answering replica knows as leader (its
	// index in the replica list, -1 for none), so a client can go there.
	Leader int
	Data   []byte
}

// Type implements Frame.
func (Raft) Type() Type { return TypeRaft }

// Type implements Frame.
func (Request) Type() Type { return TypeRequest }

// Type implements Frame.
func (Response) Type() Type { return TypeResponse }

// Type implements Frame.
func (Hello) Type() Type { return TypeHello }

// Type implements Frame.
func (Reject) Type() Type { return TypeReject }

// Type implements Frame.
func (Heartbeat) Type() Type { return TypeHeartbeat }

// Type implements Frame.
func (LeaderChange) Type() Type { return TypeLeaderChange }

// Type implements Frame.
func (Bye) Type() Type { return TypeBye }

// Type implements Frame.
func (Hint) Type() Type { return TypeHint }

// Type implements Frame.
func (GroupMsg) Type() Type { return TypeGroupMsg }
