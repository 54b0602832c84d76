package stack

import (
	"encoding/binary"
	"errors"
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
type Msg struct {
	Hdrs [][]byte
	Data []byte
}

// Push returns m with h as its outermost header.
func (m Msg) Push(h []byte) Msg {
	hdrs := make([][]byte, len(m.Hdrs), len(m.Hdrs)+1)
	copy(hdrs, m.Hdrs)
	return Msg{Hdrs: append(hdrs, h), Data: m.Data}
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

// AppendMsg appends the wire form of m to b.
func AppendMsg(b []byte, m Msg) []byte {
	b = binary.AppendUvarint(b, uint64(len(m.Hdrs)))
	for _, h := range m.Hdrs {
		b = binary.AppendUvarint(b, uint64(len(h)))
		b = append(b, h...)
	}
	return append(b, m.Data...)
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
