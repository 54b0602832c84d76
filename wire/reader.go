package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Reader reads frames from a byte stream.
type Reader struct {
	src    io.Reader
	r      *bufio.Reader
	max    int
	buf    []byte
	budget Budget
	held   int // reserved from budget
}

// Budget is memory shared by readers. A reader keeps a buffer of up to
// growStep bytes of its own; a frame larger than that reserves the rest
// from the budget as its bytes arrive, and gives it back once parsed.
type Budget interface {
	// Reserve takes n bytes from the budget, or reports false if it has
	// not that many left.
	Reserve(n int) bool
	// Release gives n bytes back.
	Release(n int)
}

// ErrBudget means a frame would take more memory than the readers'
// budget has left.
var ErrBudget = errors.New("wire: memory budget for frames exhausted")

// SetBudget makes r reserve the memory of large frames from b.
func (r *Reader) SetBudget(b Budget) { r.budget = b }

// NewReader returns a Reader that refuses payloads longer than max bytes
// (max <= 0 means DefaultMaxFrame). It reads up to 4 KiB from r at once,
// little for a connection no one has authenticated yet; SetReadBuffer
// makes that more.
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	return &Reader{src: r, r: bufio.NewReader(r), max: max}
}

// ReadBuffer is what an established connection reads at once at most:
// many frames per read under load.
const ReadBuffer = 32 << 10

// SetReadBuffer makes r read up to n bytes at once, keeping what it has
// buffered.
func (r *Reader) SetReadBuffer(n int) {
	if r.r.Size() >= n {
		return
	}
	k := r.r.Buffered()
	held, _ := r.r.Peek(k)
	r.r = bufio.NewReaderSize(&prefixed{held: append([]byte(nil), held...), src: r.src}, n)
}

// prefixed reads held, then src.
type prefixed struct {
	held []byte
	src  io.Reader
}

func (p *prefixed) Read(b []byte) (int, error) {
	if len(p.held) > 0 {
		n := copy(b, p.held)
		p.held = p.held[n:]
		return n, nil
	}
	return p.src.Read(b)
}

// SetMax changes the limit on payload lengths (max <= 0 means
// DefaultMaxFrame), for the frames after a handshake.
func (r *Reader) SetMax(max int) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	r.max = max
}

// Next returns the next frame. At a clean end of stream between frames it
// returns io.EOF; a stream that ends inside a frame returns
// io.ErrUnexpectedEOF. Any other error means the stream is not valid framing
// and the connection should be closed. A GroupMsg's Data is memory of its
// own, read once from the stream.
func (r *Reader) Next() (Frame, error) {
	var m GroupMsg
	f, err := r.NextMsg(&m)
	if f == nil && err == nil {
		return m, nil
	}
	return f, err
}

// NextMsg is Next, except that a GroupMsg is stored in *m, and the frame
// returned is nil: a group message is not boxed in a Frame.
func (r *Reader) NextMsg(m *GroupMsg) (Frame, error) {
	tb, err := r.r.ReadByte()
	if err != nil {
		return nil, err
	}
	t := Type(tb)
	if t == TypeHint {
		return Hint{}, nil
	}
	if !known(t) {
		return nil, fmt.Errorf("wire: unknown frame type %#02x", tb)
	}
	length, err := binary.ReadUvarint(r.r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if length > uint64(r.max) {
		return nil, fmt.Errorf("%w: %s frame of %d bytes, limit %d", ErrTooLarge, t, length, r.max)
	}
	if t == TypeGroupMsg && length <= growStep {
		// Read straight into the message's own memory: at most growStep
		// ahead of the bytes received, as payload allows.
		p := make([]byte, length)
		if _, err := io.ReadFull(r.r, p); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		d := decoder{b: p}
		m.LC = d.uvarint()
		if d.err != nil {
			return nil, fmt.Errorf("wire: bad %s frame: %w", t, d.err)
		}
		m.Data = d.b
		if len(m.Data) == 0 {
			m.Data = nil // as Parse has it
		}
		return nil, nil
	}
	p, err := r.payload(int(length))
	if err != nil {
		r.drop()
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	f, err := ParsePayload(t, p)
	r.drop()
	if g, ok := f.(GroupMsg); ok {
		*m = g
		return nil, nil
	}
	return f, err
}

// Complete reports whether a whole frame is buffered: the next NextMsg
// returns without reading from the stream.
func (r *Reader) Complete() bool {
	n := r.r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := r.r.Peek(min(n, 1+binary.MaxVarintLen64))
	if Type(b[0]) == TypeHint {
		return true
	}
	length, k := binary.Uvarint(b[1:])
	return k > 0 && length <= uint64(n) && 1+k+int(length) <= n
}

// drop lets go of a buffer grown for a large frame (a parsed frame holds
// copies of what it needs) and gives its memory back to the budget.
func (r *Reader) drop() {
	if cap(r.buf) > growStep {
		r.buf = nil
	}
	if r.held > 0 {
		r.budget.Release(r.held)
		r.held = 0
	}
}

// growStep is the most a Reader allocates ahead of the bytes it has
// received: a frame that declares a large length gets memory as its bytes
// arrive, not when it is announced.
const growStep = 64 << 10

// payload reads n bytes into the reader's buffer, growing it with the bytes
// received rather than with the length declared.
func (r *Reader) payload(n int) ([]byte, error) {
	if cap(r.buf) >= n {
		p := r.buf[:n]
		_, err := io.ReadFull(r.r, p)
		return p, err
	}
	p := r.buf[:0]
	for len(p) < n {
		if len(p) == cap(p) {
			// Exactly what is asked: append's growth would overshoot.
			np := make([]byte, len(p), len(p)+min(n-len(p), max(len(p), growStep)))
			copy(np, p)
			p = np
			if extra := cap(p) - growStep - r.held; r.budget != nil && extra > 0 {
				if !r.budget.Reserve(extra) {
					return nil, fmt.Errorf("%w: a frame of %d bytes", ErrBudget, n)
				}
				r.held += extra
			}
		}
		k, err := r.r.Read(p[len(p):min(cap(p), n)])
		p = p[:len(p)+k]
		if err != nil && len(p) < n {
			return nil, err
		}
	}
	r.buf = p
	return p, nil
}

// Buffered reports how many bytes are read from the stream but not yet
// returned as frames.
func (r *Reader) Buffered() int { return r.r.Buffered() }
