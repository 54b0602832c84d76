package transport

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/conclave/conclave/wire"
)

// QueueLen is how many frames may wait to be written on one connection. A
// peer that lets its queue fill is closed: it is far behind.
const QueueLen = 1024

// FlushTimeout bounds how long Conn.CloseAfterFlush waits for queued frames.
const FlushTimeout = time.Second

// Conn is an established connection to a peer, with a writer goroutine that
// drains a queue of frames and a reader goroutine that parses the stream.
type Conn struct {
	tcp     *net.TCPConn
	r       *wire.Reader
	out     chan item
	once    sync.Once
	done    chan struct{} // closed when the writer has finished
	readEnd chan struct{} // closed when the reader has finished
	lost    func(reason string)
}

type item struct {
	f      wire.Frame
	urgent bool
	close  bool
}

// NewConn wraps a handshaken connection; r is the reader used for the
// handshake, which may hold buffered bytes.
func NewConn(tcp *net.TCPConn, r *wire.Reader) *Conn { return NewConnQueue(tcp, r, QueueLen) }

// NewConnQueue is NewConn with a send queue of n frames.
func NewConnQueue(tcp *net.TCPConn, r *wire.Reader, n int) *Conn {
	return &Conn{tcp: tcp, r: r, out: make(chan item, n), done: make(chan struct{}), readEnd: make(chan struct{})}
}

// RemoteAddr returns the address of the other end.
func (c *Conn) RemoteAddr() string { return c.tcp.RemoteAddr().String() }

// Start runs the reader and writer goroutines. onFrame is called from the
// reader goroutine for every frame, in order; lost is called once, from
// either goroutine, with the reason the connection ended, unless the
// connection was closed by Close or CloseAfterFlush first.
func (c *Conn) Start(onFrame func(wire.Frame), lost func(reason string)) {
	c.lost = lost
	go c.readLoop(onFrame)
	go c.writeLoop()
}

// Send queues f, followed by one urgent Hint byte if urgent is set. It never
// blocks; if the queue is full the connection is closed and Send reports
// false.
func (c *Conn) Send(f wire.Frame, urgent bool) bool {
	select {
	case c.out <- item{f: f, urgent: urgent}:
		return true
	default:
		c.fail("send queue full")
		return false
	}
}

// CloseAfterFlush closes the connection once the frames already queued are
// written. It closes gracefully: it shuts down its sending side and waits
// (up to FlushTimeout) for the other side to close too, because closing a
// socket with unread input makes the kernel send a reset, which can destroy
// the last frames before the other side reads them.
func (c *Conn) CloseAfterFlush() {
	c.silence()
	select {
	case c.out <- item{close: true}:
		c.tcp.SetWriteDeadline(time.Now().Add(FlushTimeout))
	default:
		c.tcp.Close()
	}
}

// Close closes the connection at once.
func (c *Conn) Close() {
	c.silence()
	c.tcp.Close()
}

// Done is closed when the writer goroutine has finished.
func (c *Conn) Done() <-chan struct{} { return c.done }

// silence makes sure lost is not called for a deliberate close.
func (c *Conn) silence() { c.once.Do(func() {}) }

// fail reports the loss once and closes the socket.
func (c *Conn) fail(reason string) {
	c.once.Do(func() {
		if c.lost != nil {
			c.lost(reason)
		}
	})
	c.tcp.Close()
}

func (c *Conn) readLoop(onFrame func(wire.Frame)) {
	defer close(c.readEnd)
	for {
		f, err := c.r.Next()
		if err != nil {
			c.fail(Reason(err))
			return
		}
		onFrame(f)
	}
}

func (c *Conn) writeLoop() {
	defer close(c.done)
	var buf []byte
	for it := range c.out {
		// Coalesce what is queued into one write, up to an urgent byte.
		buf = buf[:0]
		for {
			if it.close {
				if len(buf) > 0 {
					c.tcp.Write(buf)
				}
				c.tcp.CloseWrite()
				select {
				case <-c.readEnd:
				case <-time.After(FlushTimeout):
				}
				c.tcp.Close()
				return
			}
			buf = wire.Append(buf, it.f)
			if it.urgent || len(buf) > 64<<10 || len(c.out) == 0 {
				break
			}
			it = <-c.out
		}
		if _, err := c.tcp.Write(buf); err != nil {
			c.fail("write: " + Reason(err))
			return
		}
		if it.urgent {
			if err := SendUrgent(c.tcp, byte(wire.TypeHint)); err != nil {
				c.fail("write: " + Reason(err))
				return
			}
		}
	}
}

// Reason names why a read or write failed, in the words the event log uses:
// "eof", "reset", "broken pipe", "timeout", "closed" or the error text.
func Reason(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "eof inside a frame"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	}
	return err.Error()
}
