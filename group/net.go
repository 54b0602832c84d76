package group

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/conclave/conclave/stack"
	"github.com/conclave/conclave/transport"
	"github.com/conclave/conclave/wire"
)

const (
	dialTimeout = time.Second
	sendQueue   = 1 << 14
)

func (g *Group) maxFrame() int { return 64<<20 + g.cfg.MaxMessage }

// send carries one message to a member, connecting first if needed.
func (g *Group) send(e stack.Out) {
	key := e.To.ID
	if key == "" {
		key = "@" + e.To.Addr
	}
	if e.To.ID == g.me.ID {
		return
	}
	f := wire.GroupMsg{LC: g.clock.Tick(time.Now()), Data: g.encode(e.Msg)}
	o := g.outConns[key]
	if o == nil {
		o = &out{to: e.To}
		g.outConns[key] = o
	}
	if o.conn != nil {
		o.conn.Send(f, false)
		return
	}
	o.pending = append(o.pending, f)
	if !o.dialing {
		o.dialing = true
		go g.dial(key, o, e.To)
	}
}

// encode returns the wire form of m, reusing the last one when m is the
// same message (a multicast is one Out per member, sharing its slices).
func (g *Group) encode(m stack.Msg) []byte {
	l := &g.lastEnc
	if len(m.Hdrs) > 0 && len(l.msg.Hdrs) == len(m.Hdrs) && &l.msg.Hdrs[0] == &m.Hdrs[0] &&
		len(l.msg.Data) == len(m.Data) && (len(m.Data) == 0 || &l.msg.Data[0] == &m.Data[0]) {
		return l.b
	}
	l.msg, l.b = m, stack.AppendMsg(nil, m)
	return l.b
}

// dial connects to a member and reports the outcome to the loop.
func (g *Group) dial(key string, o *out, to stack.Member) {
	tcp, r, err := g.handshake(to)
	g.post(func() {
		if g.outConns[key] != o {
			if tcp != nil {
				tcp.Close()
			}
			return
		}
		o.dialing = false
		if err != nil {
			delete(g.outConns, key)
			g.logEv("dial_failed", "to", to.ID, "addr", to.Addr, "error", err.Error())
			g.step(stack.Lost{ID: to.ID, Addr: to.Addr, Reason: err.Error()})
			return
		}
		c := transport.NewConnQueue(tcp, r, sendQueue)
		o.conn = c
		c.Start(func(wire.Frame) {}, func(reason string) {
			g.post(func() {
				if g.outConns[key] == o {
					delete(g.outConns, key)
					g.step(stack.Lost{ID: to.ID, Addr: to.Addr, Reason: reason})
				}
			})
		})
		for _, f := range o.pending {
			c.Send(f, false)
		}
		o.pending = nil
	})
}

func (g *Group) handshake(to stack.Member) (*net.TCPConn, *wire.Reader, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", to.Addr)
	if err != nil {
		return nil, nil, err
	}
	tcp := nc.(*net.TCPConn)
	tcp.SetNoDelay(true)
	tcp.SetDeadline(time.Now().Add(dialTimeout))
	hello := wire.JoinConn{Version: wire.Version, Group: g.cfg.Name, ID: g.me.ID, Addr: g.me.Addr, To: to.ID}
	if _, err := tcp.Write(wire.Append(nil, hello)); err != nil {
		tcp.Close()
		return nil, nil, err
	}
	r := wire.NewReader(tcp, g.maxFrame())
	f, err := r.Next()
	if err != nil {
		tcp.Close()
		return nil, nil, fmt.Errorf("handshake: %s", transport.Reason(err))
	}
	switch f := f.(type) {
	case wire.JoinConn:
		tcp.SetDeadline(time.Time{})
		return tcp, r, nil
	case wire.Reject:
		tcp.Close()
		return nil, nil, fmt.Errorf("refused: %s", f.Reason)
	default:
		tcp.Close()
		return nil, nil, fmt.Errorf("handshake: unexpected %s", f.Type())
	}
}

func (g *Group) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.AcceptTCP()
		if err != nil {
			return
		}
		go g.admit(c)
	}
}

// admit checks an accepted connection's handshake and reads its messages.
func (g *Group) admit(tcp *net.TCPConn) {
	tcp.SetDeadline(time.Now().Add(dialTimeout))
	r := wire.NewReader(tcp, g.maxFrame())
	f, err := r.Next()
	h, ok := f.(wire.JoinConn)
	var why string
	switch {
	case err != nil:
		why = "bad handshake: " + transport.Reason(err)
	case !ok:
		why = "bad handshake: expected join-conn, got " + f.Type().String()
	case h.Group != g.cfg.Name:
		why = fmt.Sprintf("this is group %q, not %q", g.cfg.Name, h.Group)
	case h.To != "" && h.To != g.me.ID:
		why = fmt.Sprintf("member %s is gone; this is %s", h.To, g.me.ID)
	case h.ID == "" || h.ID == g.me.ID:
		why = "bad member id"
	}
	if why != "" {
		g.post(func() { g.logEv("conn_refused", "addr", tcp.RemoteAddr().String(), "reason", why) })
		transport.Reject(tcp, why, 0)
		return
	}
	if _, err := tcp.Write(wire.Append(nil, wire.JoinConn{Version: wire.Version, Group: g.cfg.Name, ID: g.me.ID, Addr: g.me.Addr})); err != nil {
		tcp.Close()
		return
	}
	tcp.SetDeadline(time.Time{})
	from := stack.Member{ID: h.ID, Addr: h.Addr}
	c := transport.NewConnQueue(tcp, r, 16)
	if !g.post(func() { g.inConns[from.ID] = append(g.inConns[from.ID], c) }) {
		tcp.Close()
		return
	}
	c.Start(func(f wire.Frame) {
		m, ok := f.(wire.GroupMsg)
		if !ok {
			return
		}
		g.clock.Witness(m.LC, time.Now())
		msg, err := stack.ParseMsg(m.Data)
		if err != nil {
			g.post(func() { g.logEv("bad_msg", "from", from.ID, "error", err.Error()) })
			return
		}
		g.post(func() { g.step(stack.Recv{From: from, Msg: msg}) })
	}, func(reason string) {
		g.post(func() {
			g.inConns[from.ID] = deleteConn(g.inConns[from.ID], c)
			g.step(stack.Lost{ID: from.ID, Addr: from.Addr, Reason: reason})
		})
	})
}

func deleteConn(cs []*transport.Conn, c *transport.Conn) []*transport.Conn {
	for i, x := range cs {
		if x == c {
			return append(cs[:i], cs[i+1:]...)
		}
	}
	return cs
}

// queue is an unbounded channel: the loop never blocks on a slow reader.
type queue[T any] struct {
	mu      sync.Mutex
	items   []T
	wake    chan struct{}
	out     chan T
	closed  bool
	drop    chan struct{} // closed by discard
	dropped sync.Once
}

func newQueue[T any]() *queue[T] {
	q := &queue[T]{wake: make(chan struct{}, 1), out: make(chan T), drop: make(chan struct{})}
	go q.run()
	return q
}

// discard drops what is queued and ends the queue once it is closed.
func (q *queue[T]) discard() { q.dropped.Do(func() { close(q.drop) }) }

func (q *queue[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue[T]) run() {
	for {
		q.mu.Lock()
		items, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		for _, v := range items {
			select {
			case q.out <- v:
			case <-q.drop:
			}
		}
		if closed && len(items) == 0 {
			close(q.out)
			return
		}
		if len(items) == 0 {
			select {
			case <-q.wake:
			case <-q.drop:
				q.mu.Lock()
				closed = q.closed
				q.mu.Unlock()
				if !closed {
					<-q.wake // the member is still running: wait for it to close
				}
			}
		}
	}
}
