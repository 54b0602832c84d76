package transport

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conclave/conclave/wire"
)

// ErrRejected wraps the reason the other end gave for refusing our Hello.
var ErrRejected = errors.New("rejected")

// Dial connects to addr and exchanges Hellos: it sends hello and returns
// the connection (not started) with the other end's answer. The dial and
// the exchange are bounded by timeout (0: DefaultHandshake). A Reject
// comes back as an error wrapping ErrRejected, a Hello of another version
// as an error naming both.
func Dial(ctx context.Context, nw Network, addr string, hello wire.Hello, timeout time.Duration, lim Limits) (*Conn, wire.Hello, error) {
	if timeout <= 0 {
		timeout = DefaultHandshake
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := nw.Dial(ctx, addr)
	if err != nil {
		return nil, wire.Hello{}, err
	}
	// The deadline also ends the exchange if ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { s.SetReadDeadline(time.Now()) })
	defer stop()
	deadline, _ := ctx.Deadline()
	setDeadline(s, deadline)
	src := &source{s: s}
	r := wire.NewReader(src, HelloMax)
	h, err := func() (wire.Hello, error) {
		if _, err := s.Write(wire.Append(nil, hello)); err != nil {
			return wire.Hello{}, err
		}
		f, err := r.Next()
		if err != nil {
			return wire.Hello{}, fmt.Errorf("reading hello: %s", Reason(err))
		}
		switch f := f.(type) {
		case wire.Reject:
			return wire.Hello{}, fmt.Errorf("%w: %s", ErrRejected, f.Reason)
		case wire.Hello:
			if f.Version != wire.Version {
				return f, fmt.Errorf("%s speaks protocol version %d, we speak %d", addr, f.Version, wire.Version)
			}
			if f.Kind != hello.Kind || f.Scope != hello.Scope {
				return f, fmt.Errorf("%s answered as %s %q, we asked for %s %q", addr, f.Kind, f.Scope, hello.Kind, hello.Scope)
			}
			return f, nil
		default:
			return wire.Hello{}, fmt.Errorf("expected hello, got %s", f.Type())
		}
	}()
	if !stop() || err != nil {
		s.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, h, err
	}
	setDeadline(s, time.Time{})
	return newConn(s, src, r, lim), h, nil
}

// Accepted is an accepted stream whose Hello was read: answer it with
// Accept or Reject.
type Accepted struct {
	Hello wire.Hello
	s     Stream
	src   *source
	r     *wire.Reader
}

// ReadHello reads the Hello that opens an accepted stream, within timeout
// (0: DefaultHandshake). Anything else, or a Hello of another protocol
// version, is an error saying so; the caller should Refuse the stream.
func ReadHello(s Stream, timeout time.Duration) (*Accepted, error) {
	if timeout <= 0 {
		timeout = DefaultHandshake
	}
	s.SetReadDeadline(time.Now().Add(timeout))
	src := &source{s: s}
	r := wire.NewReader(src, HelloMax)
	f, err := r.Next()
	if err != nil {
		return nil, fmt.Errorf("bad handshake: %s", Reason(err))
	}
	h, ok := f.(wire.Hello)
	if !ok {
		return nil, fmt.Errorf("bad handshake: expected hello, got %s", f.Type())
	}
	if h.Version != wire.Version {
		return nil, fmt.Errorf("protocol version %d, we speak %d", h.Version, wire.Version)
	}
	s.SetReadDeadline(time.Time{})
	return &Accepted{Hello: h, s: s, src: src, r: r}, nil
}

// RemoteAddr names the other end.
func (a *Accepted) RemoteAddr() string { return a.s.RemoteAddr() }

// Accept answers with reply and returns the connection, not started;
// reply is its first frame.
func (a *Accepted) Accept(reply wire.Hello, lim Limits) *Conn {
	c := newConn(a.s, a.src, a.r, lim)
	c.Send(reply, false)
	return c
}

// Reject tells the other end why it is refused and closes the stream.
func (a *Accepted) Reject(reason string, lc uint64) { Refuse(a.s, reason, lc) }

// Refuse sends a Reject frame with reason, bounded by FlushTimeout, and
// closes s.
func Refuse(s Stream, reason string, lc uint64) {
	s.SetWriteDeadline(time.Now().Add(FlushTimeout))
	s.Write(wire.Append(nil, wire.Reject{Reason: reason, LC: lc}))
	s.Close()
}

func setDeadline(s Stream, t time.Time) {
	s.SetReadDeadline(t)
	s.SetWriteDeadline(t)
}
