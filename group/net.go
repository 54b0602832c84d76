package group

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/stack"
	"github.com/conclave/conclave/transport"
	"github.com/conclave/conclave/wire"
)

const (
	// dialTimeout bounds a connection attempt to a member, handshake
	// included; the simulator models the same (sim.DialTimeout).
	dialTimeout = time.Second
	// sendQueue is the frames a connection to a member may queue: a
	// multicast burst up to the vsync window, and flush traffic.
	sendQueue = 1 << 14
)

func incarnation() int64 { return time.Now().UnixNano() }

// maxFrame is the largest frame a member accepts: a message with its
// headers, or a flush that carries the unstable messages of a view.
func (g *Group) maxFrame() int { return 64<<20 + g.cfg.MaxMessage }

func (g *Group) hello(to string) wire.Hello {
	return wire.Hello{Version: wire.Version, Kind: wire.KindGroup, Scope: g.cfg.Name,
		From: g.me.ID, Addr: g.me.Addr, To: to, LC: g.loop.Lamport().Tick(g.loop.Wall())}
}

// send carries one message to a member, connecting first if needed.
func (g *Group) send(e stack.Out) {
	key := e.To.ID
	if key == "" {
		key = "@" + e.To.Addr
	}
	if e.To.ID == g.me.ID {
		return
	}
	f := wire.GroupMsg{LC: g.loop.Lamport().Tick(g.loop.Wall()), Data: g.encode(e.Msg)}
	o := g.outConns[key]
	if o == nil {
		o = &out{to: e.To}
		g.outConns[key] = o
	}
	if o.conn != nil {
		o.conn.SendMsg(f)
		return
	}
	o.pending = append(o.pending, f)
	if !o.dialing {
		o.dialing = true
		go g.dial(key, o, e.To, g.hello(e.To.ID))
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
	l.msg, l.b = m, stack.AppendMsg(make([]byte, 0, stack.MsgSize(m)), m)
	return l.b
}

// dial connects to a member and reports the outcome to the loop. The
// connection carries messages one way, so it has no idle limit: the
// member answers nothing after its Hello. A connection dialed by address
// alone also serves the member that answered, by its id.
func (g *Group) dial(key string, o *out, to stack.Member, hello wire.Hello) {
	c, reply, err := transport.Dial(context.Background(), g.host.Network(), to.Addr, hello, g.host.Key(), dialTimeout,
		transport.Limits{MaxFrame: transport.HelloMax, Idle: -1, SendQueue: sendQueue})
	if !g.loop.Do(func() {
		if g.outConns[key] != o {
			if c != nil {
				c.Close()
			}
			return
		}
		o.dialing = false
		if err != nil {
			delete(g.outConns, key)
			g.logEv(eventlog.DialFailed, eventlog.FieldTo, to.ID, eventlog.FieldAddr, to.Addr, eventlog.FieldError, err.Error())
			g.loop.Step(stack.Lost{ID: to.ID, Addr: to.Addr, Reason: err.Error()})
			return
		}
		o.conn = c
		o.keys = []string{key}
		if to.ID == "" && reply.From != "" && reply.From != g.me.ID && g.outConns[reply.From] == nil {
			g.outConns[reply.From] = o
			o.keys = append(o.keys, reply.From)
		}
		c.Start(func(wire.Frame) {}, func(reason string) {
			g.loop.Do(func() { g.lost(o, reason) })
		})
		for _, f := range o.pending {
			c.SendMsg(f)
		}
		o.pending = nil
	}) && c != nil {
		c.Close()
	}
}

// lost forgets an outgoing connection that ended and tells the stack, once
// for each name it served (an address, a member id).
func (g *Group) lost(o *out, reason string) {
	for _, k := range o.keys {
		if g.outConns[k] != o {
			continue
		}
		delete(g.outConns, k)
		id, addr := k, o.to.Addr
		if strings.HasPrefix(k, "@") {
			id = ""
		}
		g.loop.Step(stack.Lost{ID: id, Addr: addr, Reason: reason})
	}
}

// forget closes the outgoing connection serving id, under every name.
func (g *Group) forget(id string) {
	o := g.outConns[id]
	if o == nil {
		return
	}
	if o.conn != nil {
		o.conn.Close()
	}
	for _, k := range o.keys {
		if g.outConns[k] == o {
			delete(g.outConns, k)
		}
	}
	delete(g.outConns, id)
}

// admit checks an authenticated connection the host routed to this group
// and reads its messages.
func (g *Group) admit(a *transport.Accepted) {
	h := a.Hello
	var why string
	switch {
	case h.To != "" && h.To != g.me.ID:
		why = fmt.Sprintf("member %s is gone; this is %s", h.To, g.me.ID)
	case h.From == "" || h.From == g.me.ID:
		why = "bad member id"
	}
	if why != "" {
		if !g.loop.Do(func() { g.logEv(eventlog.ConnRefused, eventlog.FieldAddr, a.RemoteAddr(), eventlog.FieldReason, why) }) {
			why = "member stopped"
		}
		a.Reject(why, 0)
		return
	}
	from := stack.Member{ID: h.From, Addr: h.Addr}
	c := a.Accept(g.hello(""), transport.Limits{MaxFrame: g.maxFrame(), SendQueue: 16, Budget: g.host.Budget()})
	if !g.loop.Do(func() {
		g.loop.Lamport().Witness(h.LC, g.loop.Wall())
		g.inConns[from.ID] = append(g.inConns[from.ID], c)
		c.StartMsgs(func(ms []wire.GroupMsg) { g.recv(from, ms) }, func(wire.Frame) {}, func(reason string) {
			g.loop.Do(func() {
				g.inConns[from.ID] = deleteConn(g.inConns[from.ID], c)
				g.loop.Step(stack.Lost{ID: from.ID, Addr: from.Addr, Reason: reason})
			})
		})
	}) {
		a.Reject("member stopped", 0)
	}
}

// recv hands messages from a member to the stack, a batch at once; it
// runs on the connection's reader goroutine.
func (g *Group) recv(from stack.Member, ms []wire.GroupMsg) {
	var lc uint64
	for _, m := range ms {
		lc = max(lc, m.LC)
	}
	g.loop.Lamport().Witness(lc, g.loop.Wall())
	g.loop.DoN(len(ms), func() {
		var hdrs [][]byte // one array for the batch's headers
		if len(ms) > 1 {
			hdrs = make([][]byte, 0, 4*len(ms))
		}
		for _, m := range ms {
			var msg stack.Msg
			var err error
			if hdrs == nil {
				msg, err = stack.ParseMsg(m.Data)
			} else {
				msg, hdrs, err = stack.ParseMsgIn(m.Data, hdrs)
			}
			if err != nil {
				g.logEv(eventlog.BadMsg, eventlog.FieldFrom, from.ID, eventlog.FieldError, err.Error())
				continue
			}
			g.loop.Step(stack.Recv{From: from, Msg: msg})
		}
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
