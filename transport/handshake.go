package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/conclave/conclave/wire"
)

// Identity is what a peer says about itself in its Hello.
type Identity struct {
	Cluster     string
	ID          int
	N           int
	Incarnation uint64
}

// Hello returns the Hello frame for id, stamped with Lamport clock lc.
func (id Identity) Hello(lc uint64) wire.Hello {
	return wire.Hello{Version: wire.Version, Cluster: id.Cluster, ID: id.ID, N: id.N, Incarnation: id.Incarnation, LC: lc}
}

// Check reports why a Hello received by id is unacceptable, or nil.
func (id Identity) Check(h wire.Hello) error {
	switch {
	case h.Version != wire.Version:
		return fmt.Errorf("protocol version %d, we speak %d", h.Version, wire.Version)
	case h.Cluster != id.Cluster:
		return fmt.Errorf("cluster %q, we are %q", h.Cluster, id.Cluster)
	case h.N != id.N:
		return fmt.Errorf("configured with %d peers, we have %d", h.N, id.N)
	case h.ID < 0 || h.ID >= id.N:
		return fmt.Errorf("peer id %d out of range 0..%d", h.ID, id.N-1)
	case h.ID == id.ID:
		return fmt.Errorf("peer id %d is our own", h.ID)
	}
	return nil
}

// ErrRejected wraps the reason a peer gave for refusing our Hello.
var ErrRejected = errors.New("rejected")

// Dial connects to addr, expecting peer want, and exchanges Hellos. It
// returns the connection with SO_OOBINLINE set, the reader to keep using,
// and the peer's Hello. The whole exchange is bounded by timeout.
func Dial(ctx context.Context, addr string, want int, me Identity, lc uint64, timeout time.Duration, maxFrame int) (*net.TCPConn, *wire.Reader, wire.Hello, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, wire.Hello{}, err
	}
	tcp := nc.(*net.TCPConn)
	h, r, err := func() (wire.Hello, *wire.Reader, error) {
		if err := SetOOBInline(tcp); err != nil {
			return wire.Hello{}, nil, err
		}
		tcp.SetDeadline(time.Now().Add(timeout))
		if _, err := tcp.Write(wire.Append(nil, me.Hello(lc))); err != nil {
			return wire.Hello{}, nil, err
		}
		r := wire.NewReader(tcp, maxFrame)
		f, err := r.Next()
		if err != nil {
			return wire.Hello{}, nil, fmt.Errorf("reading hello: %s", Reason(err))
		}
		switch f := f.(type) {
		case wire.Reject:
			return wire.Hello{}, nil, fmt.Errorf("%w: %s", ErrRejected, f.Reason)
		case wire.Hello:
			if err := me.Check(f); err != nil {
				return f, nil, err
			}
			if f.ID != want {
				return f, nil, fmt.Errorf("%s answered as peer %d, expected %d", addr, f.ID, want)
			}
			tcp.SetDeadline(time.Time{})
			return f, r, nil
		default:
			return wire.Hello{}, nil, fmt.Errorf("expected hello, got %s", f.Type())
		}
	}()
	if err != nil {
		tcp.Close()
		return nil, nil, h, err
	}
	return tcp, r, h, nil
}

// ReadHello reads and checks the Hello that opens an accepted connection,
// after setting SO_OOBINLINE. The caller answers with its own Hello, or with
// Reject and a close.
func ReadHello(tcp *net.TCPConn, me Identity, timeout time.Duration, maxFrame int) (wire.Hello, *wire.Reader, error) {
	if err := SetOOBInline(tcp); err != nil {
		return wire.Hello{}, nil, err
	}
	tcp.SetReadDeadline(time.Now().Add(timeout))
	r := wire.NewReader(tcp, maxFrame)
	f, err := r.Next()
	if err != nil {
		return wire.Hello{}, nil, fmt.Errorf("bad handshake: %s", Reason(err))
	}
	h, ok := f.(wire.Hello)
	if !ok {
		return wire.Hello{}, nil, fmt.Errorf("bad handshake: expected hello, got %s", f.Type())
	}
	if err := me.Check(h); err != nil {
		return h, nil, err
	}
	tcp.SetReadDeadline(time.Time{})
	return h, r, nil
}

// Reject sends a Reject frame with reason and closes the connection.
func Reject(tcp *net.TCPConn, reason string, lc uint64) {
	tcp.SetWriteDeadline(time.Now().Add(FlushTimeout))
	tcp.Write(wire.Append(nil, wire.Reject{Reason: reason, LC: lc}))
	tcp.Close()
}
