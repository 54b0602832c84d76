package sim

import "time"

// conn is one TCP connection between two processes; end 0 dialed.
type conn struct {
	id     uint64
	ends   [2]int // process ids
	gens   [2]int // their generations
	closed [2]bool
	last   [2]time.Duration // last scheduled arrival from end i
	held   [2][]func()      // held by a cut, from end i
	// onEnd[i] tells end i's machine that the connection ended.
	onEnd [2]func(reason string)
	// dialing is the attempt that made c, while the dialer waits for the
	// answer.
	dialing *attempt
}

// handshake is what a machine brings to a connection attempt.
type handshake struct {
	// accept runs in the acceptor's process when it takes the attempt:
	// it admits c (calling Net.answer, which registers the acceptor's end
	// and sends the answer first on c) or returns why not.
	accept func(c *conn) error
	// connected runs in the dialer's process when the answer arrives; the
	// dialer's end is registered.
	connected func(c *conn)
	// failed runs in the dialer's process if the attempt fails: refused,
	// rejected, reset, or no answer within the timeout.
	failed func(reason string)
}

// side returns the end of c at process id.
func (c *conn) side(id int) int {
	if c.ends[0] == id {
		return 0
	}
	return 1
}

// delay returns the one-way delay of a message between a and b now.
func (n *Net) delay(a, b int) time.Duration { return n.jitter() + n.extra[pair(a, b)] }

// attempt is a connection attempt under way.
type attempt struct {
	h    handshake
	c    *conn // once the connect reached the acceptor
	step int   // connecting, handshaking, over
}

const (
	connecting = iota
	handshaking
	over
)

// end ends the attempt, in the dialer's process, unless it is over.
func (t *attempt) end(why string) {
	if t.step == over {
		return
	}
	t.step = over
	if t.c != nil {
		t.c.dialing = nil
	}
	t.h.failed(why)
}

// connect models a connection attempt from process a to process b, as the
// runtime makes one: a TCP connect, then a handshake (the dialer's hello,
// the acceptor's answer), each bounded by timeout. Across a cut the
// attempt times out; to an address where no process runs it is refused a
// round trip later. Otherwise b's kernel accepts and answers the connect
// whatever b is doing, and b's machine takes the hello when b runs: a hung
// b does not answer, but does if it resumes in time. A dialer that gives
// up closes its end; a reset fails the attempt too.
func (n *Net) connect(a, b *proc, timeout time.Duration, h handshake) {
	gen := a.gen
	t := &attempt{h: h}
	inA := func(f func()) { n.input(a, gen, f) }
	// giveUp ends the attempt at time at if it is still at step.
	giveUp := func(at time.Duration, step int) {
		n.at(at, func() {
			inA(func() {
				if t.step == step {
					if t.c != nil {
						n.close(t.c, 0)
					}
					t.end("timeout")
				}
			})
		})
	}
	if !b.running && !n.blocked[pair(a.id, b.id)] {
		n.after(2*n.delay(a.id, b.id), func() { inA(func() { t.end("connection refused") }) })
		return
	}
	giveUp(n.now+timeout, connecting)
	if n.blocked[pair(a.id, b.id)] {
		return // the connect is lost
	}
	n.after(n.delay(a.id, b.id), func() {
		switch {
		case t.step != connecting || n.blocked[pair(a.id, b.id)]:
			return // given up, or lost
		case !b.running:
			n.after(n.delay(b.id, a.id), func() { inA(func() { t.end("connection refused") }) })
			return
		}
		n.nextCID++
		c := &conn{id: n.nextCID, ends: [2]int{a.id, b.id}, gens: [2]int{gen, b.gen}, dialing: t}
		t.c = c
		n.conns = append(n.conns, c)
		// The kernel's answer to the connect; then the hello.
		n.send(c, 1, func() {
			if t.step != connecting {
				return
			}
			t.step = handshaking
			giveUp(n.now+timeout, handshaking)
			n.send(c, 0, func() {
				if c.closed[1] {
					return
				}
				if err := h.accept(c); err != nil {
					// The acceptor answers with a refusal and closes.
					why := "rejected: " + err.Error()
					n.send(c, 1, func() {
						c.closed[0] = true
						t.end(why)
					})
					c.closed[1] = true
				}
			})
		})
	})
}

// answer admits c at the acceptor: it registers the acceptor's end and
// sends the answer, ahead of anything else on c; when it arrives, the
// dialer's end is registered and its machine connected.
func (n *Net) answer(c *conn) {
	n.register(c, 1)
	t := c.dialing
	n.send(c, 1, func() {
		if t == nil || t.step != handshaking || c.closed[0] {
			return
		}
		t.step = over
		c.dialing = nil
		n.register(c, 0)
		t.h.connected(c)
	})
}

// register records that the machine at end side of c knows it.
func (n *Net) register(c *conn, side int) {
	p := n.procs[c.ends[side]]
	if p.conns == nil {
		p.conns = map[uint64]*conn{}
	}
	p.conns[c.id] = c
}

// send carries f from end side of c to the other end, in order after what
// that end sent before; f runs there if it is still the same process.
func (n *Net) send(c *conn, side int, f func()) {
	if c.closed[side] {
		return
	}
	if n.blocked[pair(c.ends[0], c.ends[1])] {
		c.held[side] = append(c.held[side], f)
		return
	}
	n.transmit(c, side, f)
}

func (n *Net) transmit(c *conn, side int, f func()) {
	other := 1 - side
	at := max(n.now+n.delay(c.ends[side], c.ends[other]), c.last[side])
	c.last[side] = at
	dst := n.procs[c.ends[other]]
	gen := c.gens[other]
	n.after(at-n.now, func() {
		if !dst.running || dst.gen != gen {
			// Nobody there: the kernel answers with a reset.
			c.closed[other] = true
			if !c.closed[side] {
				c.closed[side] = true
				n.resetEnd(c, side, n.delay(c.ends[other], c.ends[side]))
			}
			return
		}
		n.input(dst, gen, f)
	})
}

// close closes c at end side: the other end sees end-of-stream after the
// data in flight.
func (n *Net) close(c *conn, side int) {
	delete(n.procs[c.ends[side]].conns, c.id)
	if c.closed[side] {
		return
	}
	other := 1 - side
	n.send(c, side, func() {
		if c.closed[other] {
			return
		}
		c.closed[other] = true
		delete(n.procs[c.ends[other]].conns, c.id)
		if f := c.onEnd[other]; f != nil {
			f("eof")
		}
	})
	c.closed[side] = true
}

// resetEnd tells end side that c was reset, after d: the machine that
// knows c, or the dialer still waiting for the answer.
func (n *Net) resetEnd(c *conn, side int, d time.Duration) {
	p := n.procs[c.ends[side]]
	gen := c.gens[side]
	n.after(d, func() {
		n.input(p, gen, func() {
			if t := c.dialing; side == 0 && t != nil {
				t.end("reset")
				return
			}
			if p.conns[c.id] != c {
				return
			}
			delete(p.conns, c.id)
			c.onEnd[side]("reset")
		})
	})
}
