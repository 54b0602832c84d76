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
	"encoding/binary"
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
}

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

func (f GroupMsg) appendPayload(b []byte) []byte {
	return append(binary.AppendUvarint(b, f.LC), f.Data...)
}

// The data is copied: the reader reuses its buffer.
func (f *GroupMsg) parsePayload(d *decoder) {
	f.LC = d.uvarint()
	f.Data = append([]byte(nil), d.bytes(len(d.b))...)
}

func (f Hello) appendPayload(b []byte) []byte {
	b = append(b, Magic...)
	b = append(b, f.Version, byte(f.Kind))
	b = appendString(b, f.Scope)
	b = appendString(b, f.From)
	b = appendString(b, f.Addr)
	b = appendString(b, f.To)
	b = binary.AppendUvarint(b, uint64(f.N))
	b = binary.AppendUvarint(b, f.Incarnation)
	return binary.AppendUvarint(b, f.LC)
}

// A Hello of another version is parsed only as far as its version, so
// that the answer can say which versions differ.
func (f *Hello) parsePayload(d *decoder) {
	if m := d.bytes(len(Magic)); d.err == nil && string(m) != Magic {
		d.fail("bad magic %q", m)
	}
	if f.Version = d.byte(); f.Version != Version {
		d.b = nil
		return
	}
	f.Kind = Kind(d.byte())
	f.Scope = d.string()
	f.From = d.string()
	f.Addr = d.string()
	f.To = d.string()
	f.N = d.int()
	f.Incarnation = d.uvarint()
	f.LC = d.uvarint()
}

func (f Reject) appendPayload(b []byte) []byte {
	return binary.AppendUvarint(appendString(b, f.Reason), f.LC)
}

func (f *Reject) parsePayload(d *decoder) {
	f.Reason = d.string()
	f.LC = d.uvarint()
}

func (f Heartbeat) appendPayload(b []byte) []byte {
	b = binary.AppendUvarint(binary.AppendUvarint(b, f.Seq), f.LC)
	if !f.Open {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(len(f.Alive)))
	for _, id := range f.Alive {
		b = binary.AppendUvarint(b, uint64(id))
	}
	return b
}

func (f *Heartbeat) parsePayload(d *decoder) {
	f.Seq = d.uvarint()
	f.LC = d.uvarint()
	switch flags := d.byte(); flags {
	case 0:
	case 1:
		f.Open = true
		n := d.uvarint()
		if n > MaxPeers {
			d.fail("%d ids in alive list, limit %d", n, MaxPeers)
			return
		}
		f.Alive = make([]int, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			f.Alive = append(f.Alive, d.int())
		}
	default:
		d.fail("unknown heartbeat flags %#x", flags)
	}
}

func (f LeaderChange) appendPayload(b []byte) []byte {
	b = binary.AppendVarint(b, int64(f.Leader))
	b = binary.AppendVarint(b, int64(f.Prev))
	return binary.AppendUvarint(b, f.LC)
}

func (f *LeaderChange) parsePayload(d *decoder) {
	f.Leader = d.peerOrNone()
	f.Prev = d.peerOrNone()
	f.LC = d.uvarint()
}

func (f Bye) appendPayload(b []byte) []byte {
	return binary.AppendUvarint(appendString(b, f.Reason), f.LC)
}

func (f *Bye) parsePayload(d *decoder) {
	f.Reason = d.string()
	f.LC = d.uvarint()
}

func (Hint) appendPayload(b []byte) []byte { return b }

// Append appends the encoding of f to b.
func Append(b []byte, f Frame) []byte {
	if f.Type() == TypeHint {
		return append(b, byte(TypeHint))
	}
	// Encode the payload after a placeholder so the length can be written
	// in front without a second buffer for small frames.
	start := len(b)
	b = append(b, byte(f.Type()))
	b = f.appendPayload(b)
	payload := len(b) - start - 1
	var lenBuf [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(lenBuf[:], uint64(payload))
	b = append(b, lenBuf[:n]...)
	copy(b[start+1+n:], b[start+1:start+1+payload])
	copy(b[start+1:], lenBuf[:n])
	return b
}

// Parse reads one frame from the beginning of b. It returns the frame and the
// number of bytes it used. If b holds only part of a frame, Parse returns
// ErrShort; a payload longer than max returns ErrTooLarge (max <= 0 means
// DefaultMaxFrame).
func Parse(b []byte, max int) (Frame, int, error) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	if len(b) == 0 {
		return nil, 0, ErrShort
	}
	t := Type(b[0])
	if t == TypeHint {
		return Hint{}, 1, nil
	}
	f := newFrame(t)
	if f == nil {
		return nil, 0, fmt.Errorf("wire: unknown frame type %#02x", b[0])
	}
	length, n := binary.Uvarint(b[1:])
	if n == 0 {
		return nil, 0, ErrShort
	}
	if n < 0 {
		return nil, 0, errors.New("wire: malformed frame length")
	}
	if length > uint64(max) {
		return nil, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, length, max)
	}
	end := 1 + n + int(length)
	if len(b) < end {
		return nil, 0, ErrShort
	}
	out, err := parsePayload(f, b[1+n:end])
	if err != nil {
		return nil, 0, err
	}
	return out, end, nil
}

// ParsePayload decodes the payload of a frame of type t.
func ParsePayload(t Type, payload []byte) (Frame, error) {
	if t == TypeHint {
		if len(payload) != 0 {
			return nil, errors.New("wire: hint carries no payload")
		}
		return Hint{}, nil
	}
	f := newFrame(t)
	if f == nil {
		return nil, fmt.Errorf("wire: unknown frame type %#02x", uint8(t))
	}
	return parsePayload(f, payload)
}

func newFrame(t Type) parser {
	switch t {
	case TypeHello:
		return &Hello{}
	case TypeReject:
		return &Reject{}
	case TypeHeartbeat:
		return &Heartbeat{}
	case TypeLeaderChange:
		return &LeaderChange{}
	case TypeBye:
		return &Bye{}
	case TypeGroupMsg:
		return &GroupMsg{}
	}
	return nil
}

// parsePayload fills f from p and returns it by value.
func parsePayload(f parser, p []byte) (Frame, error) {
	d := decoder{b: p}
	f.parsePayload(&d)
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("wire: bad %s frame: %w", f.Type(), d.err)
	}
	switch v := f.(type) {
	case *Hello:
		return *v, nil
	case *Reject:
		return *v, nil
	case *Heartbeat:
		return *v, nil
	case *LeaderChange:
		return *v, nil
	case *Bye:
		return *v, nil
	case *GroupMsg:
		return *v, nil
	}
	panic("wire: frame type without a value case")
}

// String names the type.
func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeReject:
		return "reject"
	case TypeHeartbeat:
		return "heartbeat"
	case TypeLeaderChange:
		return "leader-change"
	case TypeBye:
		return "bye"
	case TypeHint:
		return "hint"
	case TypeJoinConn:
		return "join-conn (version 1)"
	case TypeGroupMsg:
		return "group-msg"
	}
	return fmt.Sprintf("type-%#02x", uint8(t))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads payload fields; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail("truncated payload")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() uint8 {
	if v := d.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("malformed uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("malformed varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// int reads a uvarint that must fit a non-negative int32.
func (d *decoder) int() int {
	v := d.uvarint()
	if v > 1<<31-1 {
		d.fail("integer %d out of range", v)
		return 0
	}
	return int(v)
}

// peerOrNone reads a peer id, where -1 means none.
func (d *decoder) peerOrNone() int {
	v := d.varint()
	if v < -1 || v > 1<<31-1 {
		d.fail("peer id %d out of range", v)
		return 0
	}
	return int(v)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > MaxString {
		d.fail("string of %d bytes exceeds limit %d", n, MaxString)
		return ""
	}
	return string(d.bytes(int(n)))
}

// Stamp returns f with its Lamport clock field set to lc; frames without one
// are returned as they are.
func Stamp(f Frame, lc uint64) Frame {
	switch v := f.(type) {
	case Hello:
		v.LC = lc
		return v
	case Reject:
		v.LC = lc
		return v
	case Heartbeat:
		v.LC = lc
		return v
	case LeaderChange:
		v.LC = lc
		return v
	case Bye:
		v.LC = lc
		return v
	}
	return f
}

// StampOf returns the Lamport clock carried by f, or 0.
func StampOf(f Frame) uint64 {
	switch v := f.(type) {
	case Hello:
		return v.LC
	case Reject:
		return v.LC
	case Heartbeat:
		return v.LC
	case LeaderChange:
		return v.LC
	case Bye:
		return v.LC
	}
	return 0
}
