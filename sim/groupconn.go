package sim

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/conclave/conclave/stack"
)

// A member's connections, as the group runtime makes them: the sender of
// a message dials the receiver (one connection per direction), queueing
// what it sends until the handshake is done; the acceptor only reads. A
// failed attempt, or the end of an outgoing or incoming connection, is
// stepped into the stack as stack.Lost. stack.Close closes both
// directions with that member, without a Lost.

// outConn is a member's connection to another member.
type outConn struct {
	to      stack.Member
	c       *conn // nil while connecting
	pending []stack.Msg
}

// send carries one message to the member e.To, connecting first.
func (m *member) send(e stack.Out) {
	g := m.g
	j := slotOf(e.To.Addr)
	if j < 0 || j >= len(g.members) || j == m.slot || e.To.ID == m.id {
		return
	}
	key := e.To.ID
	if key == "" {
		key = "@" + e.To.Addr
	}
	o := m.out[key]
	if o == nil {
		o = &outConn{to: e.To}
		m.out[key] = o
		m.dial(key, o, g.members[j])
	}
	if o.c != nil {
		m.write(o.c, e.Msg)
	} else {
		o.pending = append(o.pending, e.Msg)
	}
}

// dial connects o to the member at to's process.
func (m *member) dial(key string, o *outConn, to *member) {
	g := m.g
	from := m.me
	g.connect(m.p, to.p, DialTimeout, handshake{
		accept: func(c *conn) error { return to.accept(c, from, o.to.ID) },
		connected: func(c *conn) {
			if !m.active || m.out[key] != o {
				g.close(c, 0) // given up meanwhile
				return
			}
			o.c = c
			c.onEnd[0] = func(reason string) { m.lost(key, o, reason) }
			for _, msg := range o.pending {
				m.write(c, msg)
			}
			o.pending = nil
		},
		failed: func(why string) { m.lost(key, o, why) },
	})
}

// lost reports that connection o failed or ended, unless the member has
// given it up.
func (m *member) lost(key string, o *outConn, reason string) {
	if !m.active || m.out[key] != o {
		return
	}
	delete(m.out, key)
	m.step(stack.Lost{ID: o.to.ID, Addr: o.to.Addr, Reason: reason})
}

// accept takes a connection from member from, meant for member want (any
// if empty).
func (m *member) accept(c *conn, from stack.Member, want string) error {
	switch {
	case !m.active:
		return errors.New("no member here")
	case want != "" && want != m.id:
		return fmt.Errorf("member %s is gone; this is %s", want, m.id)
	}
	c.onEnd[1] = func(reason string) {
		m.in[from.ID] = slices.DeleteFunc(m.in[from.ID], func(x *conn) bool { return x == c })
		if len(m.in[from.ID]) == 0 {
			delete(m.in, from.ID)
		}
		m.step(stack.Lost{ID: from.ID, Addr: from.Addr, Reason: reason})
	}
	m.in[from.ID] = append(m.in[from.ID], c)
	m.g.answer(c)
	return nil
}

// write sends msg on the member's connection c.
func (m *member) write(c *conn, msg stack.Msg) {
	to, from := m.g.members[c.ends[1]], m.me
	// No copy: a message is never written to once made (Push copies).
	m.g.send(c, 0, func() {
		if !c.closed[1] && to.active {
			to.step(stack.Recv{From: from, Msg: msg})
		}
	})
}

// closeMember closes both directions with member id, as stack.Close asks,
// or with keepIn only the connection to it.
func (m *member) closeMember(id string, keepIn bool) {
	if o := m.out[id]; o != nil {
		if o.c != nil {
			m.g.close(o.c, 0)
		}
		delete(m.out, id)
	}
	if keepIn {
		return
	}
	for _, c := range m.in[id] {
		m.g.close(c, 1)
	}
	delete(m.in, id)
}

// halt ends the member: its connections close after what it sent.
func (m *member) halt() {
	type end struct {
		c    *conn
		side int
	}
	var ends []end
	for _, o := range m.out {
		if o.c != nil {
			ends = append(ends, end{o.c, 0})
		}
	}
	for _, l := range m.in {
		for _, c := range l {
			ends = append(ends, end{c, 1})
		}
	}
	slices.SortFunc(ends, func(a, b end) int { return cmp.Compare(a.c.id, b.c.id) })
	for _, e := range ends {
		m.g.close(e.c, e.side)
	}
	m.out, m.in = map[string]*outConn{}, map[string][]*conn{}
	m.active = false
}
