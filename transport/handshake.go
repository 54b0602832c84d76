package transport

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"time"

	"github.com/conclave/conclave/wire"
)

// The handshake, for every kind of connection, is one round trip after
// the connect, as it was before there were keys:
//
//	dialer                                   acceptor
//	Hello{kind, scope, who, nonce, proof} ─▶  checked before anything else
//	                                      ◀─  Hello{who, nonce, proof}, or Reject
//
// The dialer's proof is an HMAC-SHA256, under the cluster key, of its
// Hello and the channel's binding; the acceptor's proof covers both Hellos,
// so both nonces and everything both ends claim, and the binding. Each end
// checks the other's proof before it acts on anything the connection
// carries. On a TLS channel the binding (keying material of that channel)
// makes both proofs fresh. Without TLS an eavesdropper could replay a
// dialer's Hello, but one who sees the traffic can also inject into it:
// docs/security.md. Without a key the proofs are empty and nobody checks
// them.

// ErrRejected wraps the reason the other end gave for refusing our Hello.
var ErrRejected = errors.New("rejected")

// ErrAuth means the other end did not prove the cluster key: it has
// another key, or none.
var ErrAuth = errors.New("authentication failed")

// Dial connects to addr and runs the handshake: it sends hello (with a
// fresh nonce and its proof of key) and returns the connection, not
// started, with the other end's Hello. timeout (0: DefaultHandshake)
// bounds the connect, and the handshake again. A Reject comes back as an
// error wrapping ErrRejected, an answer without the proof of key as one
// wrapping ErrAuth.
func Dial(ctx context.Context, nw Network, addr string, hello wire.Hello, key Key, timeout time.Duration, lim Limits) (*Conn, wire.Hello, error) {
	s, src, r, h, err := handshake(ctx, nw, addr, hello, key, timeout)
	if err != nil {
		return nil, h, err
	}
	return newConn(s, src, r, lim), h, nil
}

// DialStream is Dial returning the bare stream after the handshake, for
// tests that misbehave on an admitted connection. Bytes the other end sent
// after its Hello may be lost.
func DialStream(ctx context.Context, nw Network, addr string, hello wire.Hello, key Key, timeout time.Duration) (Stream, wire.Hello, error) {
	s, _, _, h, err := handshake(ctx, nw, addr, hello, key, timeout)
	return s, h, err
}

func handshake(ctx context.Context, nw Network, addr string, hello wire.Hello, key Key, timeout time.Duration) (Stream, *source, *wire.Reader, wire.Hello, error) {
	if timeout <= 0 {
		timeout = DefaultHandshake
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	s, err := nw.Dial(cctx, addr)
	cancel()
	if err != nil {
		return nil, nil, nil, wire.Hello{}, err
	}
	// The deadline also ends the exchange if ctx is cancelled.
	ctx, cancel = context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.SetReadDeadline(time.Now()) })
	defer stop()
	deadline, _ := ctx.Deadline()
	setDeadline(s, deadline)
	src := &source{s: s}
	r := wire.NewReader(src, HelloMax)
	h, err := func() (wire.Hello, error) {
		bind, err := binding(s)
		if err != nil {
			return wire.Hello{}, err
		}
		hello.Nonce, hello.Proof = nonce(), nil
		if key != nil {
			hello.Proof = key.dialerProof(bind, hello)
		}
		if _, err := s.Write(wire.Append(nil, hello)); err != nil {
			return wire.Hello{}, err
		}
		f, err := r.Next()
		if err != nil {
			return wire.Hello{}, fmt.Errorf("reading hello: %s", Reason(err))
		}
		var h wire.Hello
		switch f := f.(type) {
		case wire.Reject:
			return wire.Hello{}, fmt.Errorf("%w: %s", ErrRejected, f.Reason)
		case wire.Hello:
			h = f
		default:
			return wire.Hello{}, fmt.Errorf("expected hello, got %s", f.Type())
		}
		switch {
		case h.Version != wire.Version:
			return h, fmt.Errorf("%s speaks protocol version %d, we speak %d", addr, h.Version, wire.Version)
		case key != nil && !hmac.Equal(h.Proof, key.acceptorProof(bind, hello, h)):
			return h, fmt.Errorf("%w: %s does not prove the cluster key (another key, or none)", ErrAuth, addr)
		case h.Kind != hello.Kind || h.Scope != hello.Scope:
			return h, fmt.Errorf("%s answered as %s %q, we asked for %s %q", addr, h.Kind, h.Scope, hello.Kind, hello.Scope)
		}
		return h, nil
	}()
	if !stop() || err != nil {
		s.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, nil, nil, h, err
	}
	setDeadline(s, time.Time{})
	return s, src, r, h, nil
}

func setDeadline(s Stream, t time.Time) {
	s.SetReadDeadline(t)
	s.SetWriteDeadline(t)
}

// Accepted is an accepted stream whose Hello was read and, if a key was
// given, proved: answer it with Accept or Reject.
type Accepted struct {
	Hello wire.Hello
	s     Stream
	src   *source
	r     *wire.Reader
	key   Key
	bind  []byte
}

// ReadHello reads the Hello that opens an accepted stream, within timeout
// (0: DefaultHandshake), and checks its proof of key (none if key is nil).
// Anything else, a Hello of another protocol version, or one without the
// proof is an error saying so; the caller should Refuse the stream.
func ReadHello(s Stream, timeout time.Duration, key Key) (*Accepted, error) {
	if timeout <= 0 {
		timeout = DefaultHandshake
	}
	setDeadline(s, time.Now().Add(timeout))
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
	bind, err := binding(s)
	if err != nil {
		return nil, err
	}
	if key != nil && !hmac.Equal(h.Proof, key.dialerProof(bind, h)) {
		return nil, fmt.Errorf("%w: no proof of the cluster key (another key, or none)", ErrAuth)
	}
	setDeadline(s, time.Time{})
	return &Accepted{Hello: h, s: s, src: src, r: r, key: key, bind: bind}, nil
}

// RemoteAddr names the other end.
func (a *Accepted) RemoteAddr() string { return a.s.RemoteAddr() }

// Accept answers with reply, with a fresh nonce and its proof of key, and
// returns the connection, not started; the answer is its first frame.
func (a *Accepted) Accept(reply wire.Hello, lim Limits) *Conn {
	reply.Nonce, reply.Proof = nonce(), nil
	if a.key != nil {
		reply.Proof = a.key.acceptorProof(a.bind, a.Hello, reply)
	}
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
