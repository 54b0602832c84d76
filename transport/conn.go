package transport

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/conclave/conclave/wire"
)

// Conn is an established connection: a writer goroutine drains a queue of
// frames and a reader goroutine parses the stream.
type Conn struct {
	s       Stream
	src     *source
	r       *wire.Reader
	lim     Limits
	out     chan item
	once    sync.Once     // reports the loss at most once
	quit    chan struct{} // closed when the stream is closed: the writer stops
	qonce   sync.Once
	queued  atomic.Int64  // bytes of the frames in out
	done    chan struct{} // closed when the writer has finished
	readEnd chan struct{} // closed when the reader has finished
	lost    func(reason string)
}

type item struct {
	f      wire.Frame // nil: msg
	msg    wire.GroupMsg
	urgent bool
	close  bool
	size   int64
}

// NewConn wraps a stream on which no handshake is expected (Dial and
// ReadHello make the Conns of handshaken streams).
func NewConn(s Stream, lim Limits) *Conn {
	src := &source{s: s}
	return newConn(s, src, wire.NewReader(src, 0), lim)
}

func newConn(s Stream, src *source, r *wire.Reader, lim Limits) *Conn {
	lim = lim.withDefaults()
	r.SetMax(lim.MaxFrame)
	r.SetReadBuffer(wire.ReadBuffer)
	if lim.Budget != nil {
		r.SetBudget(lim.Budget)
	}
	src.idle = lim.Idle
	return &Conn{s: s, src: src, r: r, lim: lim, out: make(chan item, lim.SendQueue),
		quit: make(chan struct{}), done: make(chan struct{}), readEnd: make(chan struct{})}
}

// source is what a Conn's reader reads from: the stream, with its read
// deadline pushed back as bytes arrive once the connection is established.
// Moving a deadline costs more than reading the clock, so it moves only
// when an eighth of the idle limit has passed: a connection is closed
// after between 7/8 of the limit and the limit of silence.
type source struct {
	s     Stream
	idle  time.Duration // > 0: the idle limit
	moved time.Time     // when the deadline was last set
}

func (r *source) Read(p []byte) (int, error) {
	if r.idle > 0 {
		if now := time.Now(); now.Sub(r.moved) > r.idle/8 {
			r.moved = now
			r.s.SetReadDeadline(now.Add(r.idle))
		}
	}
	return r.s.Read(p)
}

// RemoteAddr names the other end.
func (c *Conn) RemoteAddr() string { return c.s.RemoteAddr() }

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
	n := size(f)
	if c.queued.Add(n) > int64(c.lim.QueuedBytes) {
		c.fail("send queue full")
		return false
	}
	select {
	case c.out <- item{f: f, urgent: urgent, size: n}:
		return true
	default:
		c.fail("send queue full")
		return false
	}
}

// SendMsg is Send of a group message, which it does not box in a Frame.
func (c *Conn) SendMsg(m wire.GroupMsg) bool {
	n := int64(len(m.Data)) + 16
	if c.queued.Add(n) > int64(c.lim.QueuedBytes) {
		c.fail("send queue full")
		return false
	}
	select {
	case c.out <- item{msg: m, size: n}:
		return true
	default:
		c.fail("send queue full")
		return false
	}
}

// size is about the bytes a frame takes in a queue.
func size(f wire.Frame) int64 {
	if m, ok := f.(wire.GroupMsg); ok {
		return int64(len(m.Data)) + 16
	}
	return 64
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
		c.s.SetWriteDeadline(time.Now().Add(FlushTimeout))
	default:
		c.closeStream()
	}
}

// Close closes the connection at once.
func (c *Conn) Close() {
	c.silence()
	c.closeStream()
}

// closeStream closes the stream and stops the writer.
func (c *Conn) closeStream() {
	c.qonce.Do(func() { close(c.quit) })
	c.s.Close()
}

// Done is closed when the writer goroutine has finished.
func (c *Conn) Done() <-chan struct{} { return c.done }

// silence makes sure lost is not called for a deliberate close.
func (c *Conn) silence() { c.once.Do(func() {}) }

// fail reports the loss once and closes the stream.
func (c *Conn) fail(reason string) {
	c.once.Do(func() {
		if c.lost != nil {
			c.lost(reason)
		}
	})
	c.closeStream()
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

// MsgBatch is the most group messages StartMsgs hands over at once.
const MsgBatch = 64

// StartMsgs is Start, except that group messages go to onMsgs rather
// than onFrame, unboxed and in batches: the messages read one after
// another while the next was already buffered, up to MsgBatch, so that
// what arrived in one read is handed on at once. A batch is handed over
// before the reader waits for more bytes, and before any other frame;
// the slice is the callee's.
func (c *Conn) StartMsgs(onMsgs func([]wire.GroupMsg), onFrame func(wire.Frame), lost func(reason string)) {
	c.lost = lost
	go c.readMsgs(onMsgs, onFrame)
	go c.writeLoop()
}

func (c *Conn) readMsgs(onMsgs func([]wire.GroupMsg), onFrame func(wire.Frame)) {
	defer close(c.readEnd)
	var batch []wire.GroupMsg
	for {
		var m wire.GroupMsg
		f, err := c.r.NextMsg(&m)
		if err != nil {
			if len(batch) > 0 {
				onMsgs(batch)
			}
			c.fail(Reason(err))
			return
		}
		if f != nil {
			if len(batch) > 0 {
				onMsgs(batch)
				batch = nil
			}
			onFrame(f)
			continue
		}
		if batch == nil {
			if !c.r.Complete() {
				// Alone in what was read (a quiet connection): a batch
				// of one, without room for more.
				onMsgs([]wire.GroupMsg{m})
				continue
			}
			batch = make([]wire.GroupMsg, 0, MsgBatch)
		}
		batch = append(batch, m)
		if len(batch) == MsgBatch || !c.r.Complete() {
			onMsgs(batch)
			batch = nil
		}
	}
}

func (c *Conn) writeLoop() {
	defer close(c.done)
	var buf []byte
	for {
		var it item
		select {
		case it = <-c.out:
		case <-c.quit:
			return
		}
		// Coalesce what is queued into one write, up to an urgent byte.
		buf = buf[:0]
		for {
			if it.close {
				if len(buf) > 0 {
					c.s.Write(buf)
				}
				c.s.CloseWrite()
				t := time.NewTimer(FlushTimeout)
				select {
				case <-c.readEnd:
				case <-t.C:
				}
				t.Stop()
				c.closeStream()
				return
			}
			if it.f != nil {
				buf = wire.Append(buf, it.f)
			} else {
				buf = wire.AppendGroupMsg(buf, it.msg)
			}
			c.queued.Add(-it.size)
			if it.urgent || len(buf) > 64<<10 || len(c.out) == 0 {
				break
			}
			it = <-c.out
		}
		if _, err := c.s.Write(buf); err != nil {
			c.fail("write: " + Reason(err))
			return
		}
		if it.urgent {
			if err := c.s.SendUrgent(byte(wire.TypeHint)); err != nil {
				c.fail("write: " + Reason(err))
				return
			}
		}
		if cap(buf) > 1<<20 {
			buf = nil // a burst made it large: do not keep it
		}
	}
}

// Reason names why a read or write failed, in the words the event log uses:
// "eof", "reset", "broken pipe", "timeout", "closed", "connection refused"
// or the error text.
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
