package stack

import (
	"encoding/binary"
	"errors"
	"slices"
	"unsafe"
)

// Msg is a message in transit through a stack: the application's data and
// a stack of headers, one pushed by each layer it passed on the way down and
// popped by the same kind of layer on the way up.
//
// On the wire (Append/ParseMsg): uvarint count of headers, then each header
// as uvarint length and bytes, outermost last; the data is the rest.
//
// A Msg is never written to once made: Push returns a new one, and nothing
// writes to a header's or the data's bytes. So a layer may hand one Msg to
// several Outs, and a simulator may give the receiver the sender's memory.
// (Push does write, but only to a spare slot of an array it made, that no
// Msg sees yet: see Push.)
type Msg struct {
	Hdrs [][]byte
	Data []byte
}

// pushRoom is how many headers Push makes room for beyond the one it
// pushes: the layers below a sender push theirs without allocating.
const pushRoom = 3

// pushMark ends every header array Push makes, in a slot no Msg sees, so
// that Push fills only spare slots of its own arrays.
var pushMark = make([]byte, 0, 1)

// noHdr stands for a nil header, so that a filled slot is never nil.
var noHdr = make([]byte, 0)

// Push returns m with h as its outermost header. It allocates only when
// it must: the header array Push makes has room for pushRoom more
// headers; the first Push onto a Msg fills the slot after its headers,
// and a later Push of the same header (the same slice: a layer's
// constant header, pushed on each of a multicast's Outs) shares it. So
// the Outs of one multicast share one header array, and the runtime
// encodes the message once. A filled slot is never written again, and
// no Msg sees a slot before it is filled.
func (m Msg) Push(h []byte) Msg {
	if h == nil {
		h = noHdr
	}
	n := len(m.Hdrs)
	if c := cap(m.Hdrs); n+1 < c {
		all := m.Hdrs[:c]
		if mark := all[c-1]; unsafe.SliceData(mark) == unsafe.SliceData(pushMark) {
			switch slot := all[n]; {
			case slot == nil:
				all[n] = h
				return Msg{Hdrs: all[:n+1], Data: m.Data}
			case unsafe.SliceData(slot) == unsafe.SliceData(h) && len(slot) == len(h):
				return Msg{Hdrs: all[:n+1], Data: m.Data}
			}
		}
	}
	hdrs := make([][]byte, n+2+pushRoom)
	copy(hdrs, m.Hdrs)
	hdrs[n] = h
	hdrs[len(hdrs)-1] = pushMark
	return Msg{Hdrs: hdrs[:n+1], Data: m.Data}
}

// Pop returns the outermost header and m without it; ok is false if m has
// no header left.
func (m Msg) Pop() (h []byte, rest Msg, ok bool) {
	n := len(m.Hdrs)
	if n == 0 {
		return nil, m, false
	}
	return m.Hdrs[n-1], Msg{Hdrs: m.Hdrs[:n-1], Data: m.Data}, true
}

// MaxHeaders bounds the headers a message may carry.
const MaxHeaders = 16

// ErrMsg reports a malformed message.
var ErrMsg = errors.New("malformed message")

// MsgSize returns the length of the wire form of m.
func MsgSize(m Msg) int {
	n := uvarintLen(uint64(len(m.Hdrs))) + len(m.Data)
	for _, h := range m.Hdrs {
		n += uvarintLen(uint64(len(h))) + len(h)
	}
	return n
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// AppendMsg appends the wire form of m to b, growing b at most once.
func AppendMsg(b []byte, m Msg) []byte {
	b = slices.Grow(b, MsgSize(m))
	b = binary.AppendUvarint(b, uint64(len(m.Hdrs)))
	for _, h := range m.Hdrs {
		b = binary.AppendUvarint(b, uint64(len(h)))
		b = append(b, h...)
	}
	return append(b, m.Data...)
}

// ParseMsgIn is ParseMsg with the headers appended to hdrs, so that the
// messages of a batch can share one array; it returns hdrs with them. The
// message's Hdrs has no spare capacity: a Push onto it makes an array.
func ParseMsgIn(b []byte, hdrs [][]byte) (Msg, [][]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > MaxHeaders {
		return Msg{}, hdrs, ErrMsg
	}
	b = b[k:]
	start := len(hdrs)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return Msg{}, hdrs[:start], ErrMsg
		}
		hdrs = append(hdrs, b[k:k+int(l):k+int(l)])
		b = b[k+int(l):]
	}
	return Msg{Hdrs: hdrs[start:len(hdrs):len(hdrs)], Data: b}, hdrs, nil
}

// ParseMsg parses the wire form of a message. The result shares b's memory.
func ParseMsg(b []byte) (Msg, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > MaxHeaders {
		return Msg{}, ErrMsg
	}
	b = b[k:]
	m := Msg{Hdrs: make([][]byte, 0, n)}
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return Msg{}, ErrMsg
		}
		m.Hdrs = append(m.Hdrs, b[k:k+int(l):k+int(l)])
		b = b[k+int(l):]
	}
	m.Data = b
	return m, nil
}
