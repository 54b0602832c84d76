package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Reader reads frames from a byte stream.
type Reader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// NewReader returns a Reader that refuses payloads longer than max bytes
// (max <= 0 means DefaultMaxFrame).
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	return &Reader{r: bufio.NewReader(r), max: max}
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
// and the connection should be closed.
func (r *Reader) Next() (Frame, error) {
	tb, err := r.r.ReadByte()
	if err != nil {
		return nil, err
	}
	t := Type(tb)
	if t == TypeHint {
		return Hint{}, nil
	}
	if newFrame(t) == nil {
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
	p, err := r.payload(int(length))
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return ParsePayload(t, p)
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
			p = slices.Grow(p, min(n-len(p), max(len(p), growStep)))
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
