package directory

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// enc appends the fields of commands, results and snapshots: bytes,
// minimal uvarints, and length-prefixed strings.
type enc struct{ b []byte }

func (e *enc) byte(c byte)      { e.b = append(e.b, c) }
func (e *enc) uint(v uint64)    { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) str(s string)     { e.uint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) bytes(p []byte)   { e.uint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *enc) strs(ss []string) { e.uint(uint64(len(ss))); e.strsBare(ss) }
func (e *enc) strsBare(ss []string) {
	for _, s := range ss {
		e.str(s)
	}
}

// dec reads what enc wrote. It never allocates more than the bytes it
// reads justify: a count is checked against the bytes left before anything
// is allocated for it. The first error sticks; reads after it return zero
// values.
type dec struct {
	b   []byte
	err error
}

func (d *dec) failf(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
	d.b = nil
}

func (d *dec) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.failf("%s: input ends early", what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// uint reads a uvarint, refusing a longer encoding than the value needs, so
// that a value has one encoding only.
func (d *dec) uint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b)
	switch {
	case k == 0:
		d.failf("%s: input ends early", what)
		return 0
	case k < 0 || k != uvarintLen(v):
		d.failf("%s: bad number", what)
		return 0
	}
	d.b = d.b[k:]
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// raw reads a length-prefixed byte string of at most max bytes, sharing the
// input's memory.
func (d *dec) raw(what string, max int) []byte {
	n := d.uint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.failf("%s: %d bytes, over the limit of %d", what, n, max)
		return nil
	}
	if n > uint64(len(d.b)) {
		d.failf("%s: %d bytes announced, %d left", what, n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// str reads a string of at most max bytes, which must be valid UTF-8.
func (d *dec) str(what string, max int) string {
	p := d.raw(what, max)
	if d.err == nil && !utf8.Valid(p) {
		d.failf("%s: not UTF-8", what)
		return ""
	}
	return string(p)
}

// bytes reads a byte string of at most max bytes into memory of its own
// (nil when empty).
func (d *dec) bytes(what string, max int) []byte {
	p := d.raw(what, max)
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

// count reads a count of at most max items that take at least min bytes
// each, failing if the input left cannot hold that many.
func (d *dec) count(what string, min, max int) int {
	n := d.uint(what)
	if d.err != nil {
		return 0
	}
	if n > uint64(max) {
		d.failf("%s: %d, over the limit of %d", what, n, max)
		return 0
	}
	if n > uint64(len(d.b)/min) {
		d.failf("%s: %d announced, the input cannot hold them", what, n)
		return 0
	}
	return int(n)
}

// strs reads a count of strings and the strings.
func (d *dec) strs(what string, maxCount, maxLen int) []string {
	n := d.count(what, 1, maxCount)
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		out = append(out, d.str(what, maxLen))
	}
	return out
}

// done returns the first error, or one if bytes are left unread.
func (d *dec) done() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes left over", len(d.b))
	}
	return d.err
}
