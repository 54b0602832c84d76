package transport

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Mem is an in-memory Network for tests: streams are pairs of buffers with
// the semantics the runtime relies on from TCP (ordered bytes, half close,
// deadlines, end of stream after a close, a failed write after the reader
// closed). An urgent byte travels in line. The zero value is ready to use.
type Mem struct {
	mu   sync.Mutex
	lns  map[string]*memListener
	next int
}

// Listen listens on addr; an empty address or port 0 gets a fresh one.
func (m *Mem) Listen(addr string) (Listener, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lns == nil {
		m.lns = map[string]*memListener{}
	}
	if host, port, err := net.SplitHostPort(addr); addr == "" || (err == nil && port == "0") {
		m.next++
		if host == "" {
			host = "mem"
		}
		addr = net.JoinHostPort(host, strconv.Itoa(m.next))
	}
	if m.lns[addr] != nil {
		return nil, fmt.Errorf("listen %s: address already in use", addr)
	}
	l := &memListener{m: m, addr: addr, in: make(chan *memStream, 64), done: make(chan struct{})}
	m.lns[addr] = l
	return l, nil
}

// Dial connects to a listener of m.
func (m *Mem) Dial(ctx context.Context, addr string) (Stream, error) {
	m.mu.Lock()
	l := m.lns[addr]
	m.mu.Unlock()
	if l == nil {
		return nil, refused(addr)
	}
	ab, ba := newHalf(), newHalf()
	m.mu.Lock()
	m.next++
	from := "mem-client:" + strconv.Itoa(m.next)
	m.mu.Unlock()
	client := &memStream{in: ba, out: ab, remote: addr}
	server := &memStream{in: ab, out: ba, remote: from}
	select {
	case l.in <- server:
		return client, nil
	case <-l.done:
		return nil, refused(addr)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type memListener struct {
	m    *Mem
	addr string
	in   chan *memStream
	once sync.Once
	done chan struct{}
}

func (l *memListener) Accept() (Stream, error) {
	select {
	case s := <-l.in:
		return s, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.m.mu.Lock()
		delete(l.m.lns, l.addr)
		l.m.mu.Unlock()
	})
	return nil
}

func (l *memListener) Addr() string { return l.addr }

// half is one direction of an in-memory stream.
type half struct {
	mu      sync.Mutex
	buf     []byte
	eof     bool // the writer closed its side
	gone    bool // the reader closed: writes fail
	changed chan struct{}
}

func newHalf() *half { return &half{changed: make(chan struct{})} }

// signal wakes waiters; call with mu held.
func (h *half) signal() {
	close(h.changed)
	h.changed = make(chan struct{})
}

type memStream struct {
	in, out *half
	remote  string

	mu     sync.Mutex
	rdl    time.Time
	closed bool
}

func (s *memStream) Read(p []byte) (int, error) {
	for {
		s.mu.Lock()
		closed, dl := s.closed, s.rdl
		s.mu.Unlock()
		if closed {
			return 0, net.ErrClosed
		}
		h := s.in
		h.mu.Lock()
		if len(h.buf) > 0 {
			n := copy(p, h.buf)
			h.buf = h.buf[n:]
			h.mu.Unlock()
			return n, nil
		}
		if h.eof {
			h.mu.Unlock()
			return 0, io.EOF
		}
		wake := h.changed
		h.mu.Unlock()
		if dl.IsZero() {
			<-wake
			continue
		}
		d := time.Until(dl)
		if d <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		select {
		case <-wake:
			t.Stop()
		case <-t.C:
			return 0, os.ErrDeadlineExceeded
		}
	}
}

func (s *memStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	h := s.out
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone {
		return 0, &net.OpError{Op: "write", Net: "mem", Err: syscall.EPIPE}
	}
	if h.eof {
		return 0, net.ErrClosed
	}
	h.buf = append(h.buf, p...)
	h.signal()
	return len(p), nil
}

func (s *memStream) SendUrgent(b byte) error {
	_, err := s.Write([]byte{b})
	return err
}

func (s *memStream) CloseWrite() error {
	h := s.out
	h.mu.Lock()
	h.eof = true
	h.signal()
	h.mu.Unlock()
	return nil
}

func (s *memStream) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.CloseWrite()
	h := s.in
	h.mu.Lock()
	h.gone = true
	h.buf = nil
	h.signal()
	h.mu.Unlock()
	return nil
}

func (s *memStream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.rdl = t
	s.mu.Unlock()
	s.in.mu.Lock()
	s.in.signal()
	s.in.mu.Unlock()
	return nil
}

// SetWriteDeadline does nothing: in-memory writes never block.
func (s *memStream) SetWriteDeadline(time.Time) error { return nil }

func (s *memStream) RemoteAddr() string { return s.remote }
