package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

func (f GroupMsg) appendPayload(b []byte) []byte {
	return append(binary.AppendUvarint(b, f.LC), f.Data...)
}

// The data is copied: the reader reuses its buffer (Reader.NextMsg reads a
// group message into memory of its own instead).
func (f *GroupMsg) parsePayload(d *decoder) {
	f.LC = d.uvarint()
	f.Data = append([]byte(nil), d.bytes(len(d.b))...)
}

func (f Raft) appendPayload(b []byte) []byte {
	return append(binary.AppendUvarint(b, f.LC), f.Data...)
}

func (f *Raft) parsePayload(d *decoder) {
	f.LC = d.uvarint()
	f.Data = append([]byte(nil), d.bytes(len(d.b))...)
}

func (f Request) appendPayload(b []byte) []byte {
	b = binary.AppendUvarint(b, f.ID)
	b = append(b, byte(f.Op))
	return append(b, f.Data...)
}

func (f *Request) parsePayload(d *decoder) {
	f.ID = d.uvarint()
	f.Op = Op(d.byte())
	if d.err == nil && f.Op != OpPropose && f.Op != OpRead {
		d.fail("unknown request op %d", f.Op)
	}
	f.Data = append([]byte(nil), d.bytes(len(d.b))...)
}

func (f Response) appendPayload(b []byte) []byte {
	b = binary.AppendUvarint(b, f.ID)
	b = append(b, f.Status)
	b = binary.AppendVarint(b, int64(f.Leader))
	return append(b, f.Data...)
}

func (f *Response) parsePayload(d *decoder) {
	f.ID = d.uvarint()
	f.Status = d.byte()
	f.Leader = d.peerOrNone()
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
	b = binary.AppendUvarint(b, f.LC)
	b = appendBytes(b, f.Nonce)
	return appendBytes(b, f.Proof)
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
	f.Nonce = d.nonce()
	f.Proof = d.nonce()
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

// AppendGroupMsg appends the encoding of m to b, as Append does, without
// boxing m in a Frame.
func AppendGroupMsg(b []byte, m GroupMsg) []byte {
	lc := uvarintLen(m.LC)
	b = append(b, byte(TypeGroupMsg))
	b = binary.AppendUvarint(b, uint64(lc+len(m.Data)))
	b = binary.AppendUvarint(b, m.LC)
	return append(b, m.Data...)
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
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

// known reports whether t is a frame type this version parses.
func known(t Type) bool {
	switch t {
	case TypeHello, TypeReject, TypeHeartbeat, TypeLeaderChange, TypeBye, TypeGroupMsg, TypeRaft, TypeRequest, TypeResponse:
		return true
	}
	return false
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
	case TypeRaft:
		return &Raft{}
	case TypeRequest:
		return &Request{}
	case TypeResponse:
		return &Response{}
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
	case *Raft:
		return *v, nil
	case *Request:
		return *v, nil
	case *Response:
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
	case TypeRaft:
		return "raft"
	case TypeRequest:
		return "request"
	case TypeResponse:
		return "response"
	}
	return fmt.Sprintf("type-%#02x", uint8(t))
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
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

// nonce reads a byte string of at most MaxNonce bytes; empty is nil.
func (d *decoder) nonce() []byte {
	n := d.uvarint()
	if n > MaxNonce {
		d.fail("%d bytes of nonce or proof, limit %d", n, MaxNonce)
		return nil
	}
	if n == 0 {
		return nil
	}
	return append([]byte(nil), d.bytes(int(n))...)
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
