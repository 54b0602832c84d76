package transport

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conclave/conclave/wire"
)

// The handshake, for every kind of connection:
//
//	dialer                                   acceptor
//	Hello{kind, scope, who, nonce}    ─────▶
//	                                  ◀─────  Hello{who, nonce, proof} or Reject
//	Auth{proof}                       ─────▶
//	                                  ◀─────  Admit, or Reject (authenticated)
//
// Each proof is an HMAC-SHA256, under the cluster key, of both Hellos:
// both nonces and everything the two ends claim. Each end checks the
// other's proof before it acts on anything the connection carries. Without
// a key the proofs are empty and nobody checks them.

// ErrRejected wraps the reason the other end gave for refusing our Hello.
var ErrRejected = errors.New("rejected")

// ErrAuth means the other end did not prove the cluster key: it has
// another key, or none.
var ErrAuth = errors.New("authentication failed")

// Dial connects to addr and runs the handshake: it sends hello (with a
// fresh nonce) and returns the connection, admitted and not started, with
// the other end's Hello. The dial and the handshake are bounded by timeout
// (0: DefaultHandshake). A Reject comes back as an error wrapping
// ErrRejected, an answer without the proof of key as one wrapping ErrAuth.
func Dial(ctx context.Context, nw Network, addr string, hello wire.Hello, key Key, timeout time.Duration, lim Limits) (*Conn, wire.Hello, error) {
	s, src, r, h, err := handshake(ctx, nw, addr, hello, key, timeout)
	if err != nil {
		return nil, h, err
	}
	return newConn(s, src, r, lim), h, nil
}

// DialStream is Dial returning the bare stream after the handshake, for
// tests that misbehave on an admitted connection. Bytes the other end sent
// after its Admit may be lost.
func DialStream(ctx context.Context, nw Network, addr string, hello wire.Hello, key Key, timeout time.Duration) (Stream, wire.Hello, error) {
	s, _, _, h, err := handshake(ctx, nw, addr, hello, key, timeout)
	return s, h, err
}

func handshake(ctx context.Context, nw Network, addr string, hello wire.Hello, key Key, timeout time.Duration) (Stream, *source, *wire.Reader, wire.Hello, error) {
	if timeout <= 0 {
		timeout = DefaultHandshake
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := nw.Dial(ctx, addr)
	if err != nil {
		return nil, nil, nil, wire.Hello{}, err
	}
	// The deadline also ends the exchange if ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { s.SetReadDeadline(time.Now()) })
	defer stop()
	deadline, _ := ctx.Deadline()
	setDeadline(s, deadline)
	src := &source{s: s}
	r := wire.NewReader(src, HelloMax)
	hello.Nonce, hello.Proof = nonce(), nil
	h, err := func() (wire.Hello, error) {
		bind, err := binding(s)
		if err != nil {
			return wire.Hello{}, err
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
		case !key.check(h.Proof, labelAccept, bind, hello, h):
			return h, fmt.Errorf("%w: %s does not prove the cluster key (another key, or none)", ErrAuth, addr)
		case h.Kind != hello.Kind || h.Scope != hello.Scope:
			return h, fmt.Errorf("%s answered as %s %q, we asked for %s %q", addr, h.Kind, h.Scope, hello.Kind, hello.Scope)
		}
		var auth wire.Auth
		if key != nil {
			auth.Proof = key.proof(labelDial, bind, hello, h)
		}
		if _, err := s.Write(wire.Append(nil, auth)); err != nil {
			return h, err
		}
		f, err = r.Next()
		if err != nil {
			return h, fmt.Errorf("waiting to be admitted: %s", Reason(err))
		}
		switch f := f.(type) {
		case wire.Admit:
			h.LC = max(h.LC, f.LC)
			return h, nil
		case wire.Reject:
			return h, fmt.Errorf("%w: %s", ErrRejected, f.Reason)
		default:
			return h, fmt.Errorf("expected admit, got %s", f.Type())
		}
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

// Accepted is an accepted stream whose Hello was read: answer it with
// Authenticate, then Accept or Reject.
type Accepted struct {
	Hello   wire.Hello
	s       Stream
	src     *source
	r       *wire.Reader
	timeout time.Duration
	authed  bool
}

// ReadHello reads the Hello that opens an accepted stream, within timeout
// (0: DefaultHandshake). Anything else, or a Hello of another protocol
// version, is an error saying so; the caller should Refuse the stream.
func ReadHello(s Stream, timeout time.Duration) (*Accepted, error) {
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
	return &Accepted{Hello: h, s: s, src: src, r: r, timeout: timeout}, nil
}

// RemoteAddr names the other end.
func (a *Accepted) RemoteAddr() string { return a.s.RemoteAddr() }

// Authenticate answers with reply, proving key, and checks the dialer's
// proof, within what is left of the handshake's time. If the dialer fails,
// the stream is refused and closed, and the error says why.
func (a *Accepted) Authenticate(reply wire.Hello, key Key) error {
	reply.Nonce, reply.Proof = nonce(), nil
	bind, err := binding(a.s)
	if err == nil && key != nil {
		reply.Proof = key.proof(labelAccept, bind, a.Hello, reply)
	}
	err = func() error {
		if err != nil {
			return err
		}
		if _, err := a.s.Write(wire.Append(nil, reply)); err != nil {
			return fmt.Errorf("answering: %s", Reason(err))
		}
		f, err := a.r.Next()
		if err != nil {
			return fmt.Errorf("bad handshake: %s", Reason(err))
		}
		auth, ok := f.(wire.Auth)
		switch {
		case !ok:
			return fmt.Errorf("bad handshake: expected auth, got %s", f.Type())
		case !key.check(auth.Proof, labelDial, bind, a.Hello, reply):
			return fmt.Errorf("%w: no proof of the cluster key (another key, or none)", ErrAuth)
		}
		return nil
	}()
	if err != nil {
		Refuse(a.s, err.Error(), 0)
		return err
	}
	setDeadline(a.s, time.Time{})
	a.authed = true
	return nil
}

// Accept admits the connection and returns it, not started; admit is its
// first frame. Call it only after Authenticate.
func (a *Accepted) Accept(admit wire.Admit, lim Limits) *Conn {
	if !a.authed {
		panic("transport: Accept before Authenticate")
	}
	c := newConn(a.s, a.src, a.r, lim)
	c.Send(admit, false)
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
