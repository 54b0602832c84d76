package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Stream is one end of a reliable, ordered byte stream: a TCP connection,
// or an in-memory one in tests.
type Stream interface {
	io.ReadWriteCloser
	// CloseWrite shuts down the sending side: the other end reads EOF
	// after what was written.
	CloseWrite() error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	// SendUrgent sends b as one byte of urgent data, between whole writes.
	SendUrgent(b byte) error
	// RemoteAddr names the other end, for logs.
	RemoteAddr() string
}

// Listener accepts streams at one address.
type Listener interface {
	Accept() (Stream, error)
	Close() error
	// Addr is the address others dial to reach this listener.
	Addr() string
}

// Network makes streams: TCP in production, Mem in tests.
type Network interface {
	Listen(addr string) (Listener, error)
	Dial(ctx context.Context, addr string) (Stream, error)
}

// TCP is the Network of real TCP connections. Every stream has
// SO_OOBINLINE set before any data flows, so urgent data stays in line.
type TCP struct{}

// Listen listens on a TCP address.
func (TCP) Listen(addr string) (Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return tcpListener{ln.(*net.TCPListener)}, nil
}

// Dial connects to a TCP address.
func (TCP) Dial(ctx context.Context, addr string) (Stream, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return newTCPStream(nc.(*net.TCPConn))
}

type tcpListener struct{ ln *net.TCPListener }

func (l tcpListener) Accept() (Stream, error) {
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			return nil, err
		}
		s, err := newTCPStream(c)
		if err == nil {
			return s, nil
		}
		// The connection died before it could be set up: next one.
	}
}

func (l tcpListener) Close() error { return l.ln.Close() }
func (l tcpListener) Addr() string { return l.ln.Addr().String() }

// TCPStream is a Stream over a TCP connection.
type TCPStream struct{ *net.TCPConn }

func newTCPStream(c *net.TCPConn) (*TCPStream, error) {
	if err := SetOOBInline(c); err != nil {
		c.Close()
		return nil, err
	}
	return &TCPStream{c}, nil
}

// SendUrgent sends b as TCP urgent data (MSG_OOB).
func (s *TCPStream) SendUrgent(b byte) error { return SendUrgent(s.TCPConn, b) }

// RemoteAddr returns the peer's host:port.
func (s *TCPStream) RemoteAddr() string { return s.TCPConn.RemoteAddr().String() }

// errRefused is what dialing an address nobody listens on returns.
var errRefused = errors.New("connection refused")

func refused(addr string) error { return fmt.Errorf("dial %s: %w", addr, errRefused) }
