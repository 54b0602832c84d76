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
	if cap(r.buf) < int(length) {
		r.buf = make([]byte, length)
	}
	p := r.buf[:length]
	if _, err := io.ReadFull(r.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return ParsePayload(t, p)
}

// Buffered reports how many bytes are read from the stream but not yet
// returned as frames.
func (r *Reader) Buffered() int { return r.r.Buffered() }
