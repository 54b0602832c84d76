package stack

import (
	"encoding/binary"
	"fmt"
)

// Enc builds a header or a control message: uvarints, strings and byte
// strings appended in order.
type Enc struct{ B []byte }

// Uint appends v.
func (e *Enc) Uint(v uint64) *Enc { e.B = binary.AppendUvarint(e.B, v); return e }

// Bytes appends b with its length.
func (e *Enc) Bytes(b []byte) *Enc {
	e.Uint(uint64(len(b)))
	e.B = append(e.B, b...)
	return e
}

// Str appends s with its length.
func (e *Enc) Str(s string) *Enc {
	e.Uint(uint64(len(s)))
	e.B = append(e.B, s...)
	return e
}

// ViewID appends v.
func (e *Enc) ViewID(v ViewID) *Enc { return e.Uint(v.Seq).Str(v.Coord) }

// Member appends m.
func (e *Enc) Member(m Member) *Enc { return e.Str(m.ID).Str(m.Addr) }

// Members appends ms with their count.
func (e *Enc) Members(ms []Member) *Enc {
	e.Uint(uint64(len(ms)))
	for _, m := range ms {
		e.Member(m)
	}
	return e
}

// Dec reads what Enc wrote. The first error sticks: reads after it return
// zero values, and Err reports it.
type Dec struct {
	B   []byte
	err error
}

// Err returns the first decoding error.
func (d *Dec) Err() error { return d.err }

// Done returns the first error, or one if bytes are left unread.
func (d *Dec) Done() error {
	if d.err == nil && len(d.B) > 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.B))
	}
	return d.err
}

func (d *Dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("bad %s", what)
	}
	d.B = nil
}

// Uint reads a uvarint.
func (d *Dec) Uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.B)
	if k <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.B = d.B[k:]
	return v
}

// Bytes reads a byte string; the result shares the input's memory.
func (d *Dec) Bytes() []byte {
	n := d.Uint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.B)) {
		d.fail("length")
		return nil
	}
	b := d.B[:n:n]
	d.B = d.B[n:]
	return b
}

// MaxString bounds strings in headers (member IDs, addresses).
const MaxString = 1024

// Str reads a string.
func (d *Dec) Str() string {
	b := d.Bytes()
	if len(b) > MaxString {
		d.fail("string length")
		return ""
	}
	return string(b)
}

// ViewID reads a view id.
func (d *Dec) ViewID() ViewID { return ViewID{Seq: d.Uint(), Coord: d.Str()} }

// ViewIDOf reads a view id, sharing known's Coord string when it names
// the same coordinator: a message of the current view costs no string.
func (d *Dec) ViewIDOf(known ViewID) ViewID {
	seq := d.Uint()
	b := d.Bytes()
	if len(b) > MaxString {
		d.fail("string length")
		return ViewID{}
	}
	if d.err != nil {
		return ViewID{Seq: seq}
	}
	if string(b) == known.Coord {
		return ViewID{Seq: seq, Coord: known.Coord}
	}
	return ViewID{Seq: seq, Coord: string(b)}
}

// Member reads a member.
func (d *Dec) Member() Member { return Member{ID: d.Str(), Addr: d.Str()} }

// Count reads a count of items that take at least min bytes each, failing
// if the input cannot hold that many.
func (d *Dec) Count(min int) int {
	n := d.Uint()
	if min < 1 {
		min = 1
	}
	if n > uint64(len(d.B)/min) {
		d.fail("count")
		return 0
	}
	return int(n)
}

// Members reads members with their count.
func (d *Dec) Members() []Member {
	n := d.Count(2)
	out := make([]Member, 0, n)
	for range n {
		out = append(out, d.Member())
	}
	return out
}
