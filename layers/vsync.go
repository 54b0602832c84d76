package layers

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/stack"
)

// vsync is reliable FIFO multicast with view synchrony. In a view, each
// member numbers its messages and sends them to every member over the
// runtime's FIFO connections; receivers deliver each sender's messages in
// order and acknowledge them, once per batch. A message acknowledged by all
// is stable: its sender reports it Acked and everyone may forget it. A
// sender has at most window unstable messages; further sends wait.
//
// At a view change, the flush: on BlockOk (once the layers above have
// sent what they must in this view) it stops sending (sends wait for the
// next view), stops delivering and contributes
// every message of the view it holds that may not be stable. At Install it
// delivers, in each sender's order, the messages of the union of the
// contributions it has not delivered yet, then passes the new view up. So
// members that go from one view to the next together deliver the same
// messages in it, and every message is delivered in the view it was sent
// in.
//
// A sender's message that arrives before one numbered below it leaves a
// gap: a message went missing (a connection replaced, a bug, a forged
// number). The receiver drops it and asks the sender to send its messages
// again from the first it lacks (a nack), every fifth of gap-timeout, and
// goes on taking the sender's messages in order. A gap still open after
// gap-timeout makes it suspect the sender: membership reports it to the
// coordinator, whose flush delivers what the survivors hold and excludes the
// sender. So a gap never freezes a sender's deliveries for good.
type vsync struct {
	window     int
	gapTimeout time.Duration

	me      string
	view    stack.View
	others  []stack.Member // the view's members but this one, in rank order
	inView  bool
	blocked bool // contributed to a flush: no more sends in this view
	frozen  bool // contributed: no more deliveries but through Install

	sent    uint64              // messages this member sent in the view
	streams map[string]*vstream // per sender in the view
	acked   map[string]uint64   // how many of this member's messages each member holds
	tokens  map[uint64]uint64   // seq → token of this member's unstable messages
	stable  uint64              // this member's messages held by all
	dirty   map[string]bool     // senders owed an acknowledgement
	waiting []stack.Send        // sends waiting for a view or window
	future  map[stack.ViewID][]stack.Recv
	nfuture int // messages in future
	bfuture int // and their bytes
	gaps    int // streams with a gap open and their sender not yet suspected
}

// vstream is what a member holds of one sender's messages in the view.
type vstream struct {
	base      uint64      // messages forgotten as stable
	msgs      []stack.Msg // messages base+1 .. base+len(msgs)
	delivered uint64      // messages delivered (and acknowledged)

	// A gap: message need arrived before those before it. It is open while
	// need > recv(); the sender is suspected if it is still open at
	// gapAt+gap-timeout.
	need      uint64
	gapAt     time.Duration
	sleptAt   time.Duration // stack.Ctx.Slept at gapAt
	nackAt    time.Duration // when to ask again for the missing messages
	suspected bool
}

func (s *vstream) recv() uint64 { return s.base + uint64(len(s.msgs)) }

// gap reports whether a gap is open that may still fill.
func (s *vstream) gap() bool { return s.need > s.recv() && !s.suspected }

// forget drops messages up to n, known stable.
func (s *vstream) forget(n uint64) {
	if n <= s.base {
		return
	}
	k := min(n-s.base, uint64(len(s.msgs)))
	// Cut the front off rather than shift what is left: append moves
	// the rest to a new array once this one is full, which frees the
	// forgotten part.
	clear(s.msgs[:k])
	s.msgs = s.msgs[k:]
	s.base += k
}

const (
	vsData byte = iota
	vsAck
	vsNack // the receiver holds the sender's messages up to n: send the rest again
)

// nacksPerGap is how many times a gap-timeout a receiver asks for the
// missing messages.
const nacksPerGap = 5

// maxFuture and maxFutureBytes bound the messages kept for views not yet
// installed.
const (
	maxFuture      = 1 << 16
	maxFutureBytes = 64 << 20
)

func newVsync(p stack.Params) stack.Layer {
	return &vsync{window: p.Int("window"), gapTimeout: p.Duration("gap-timeout"), future: map[stack.ViewID][]stack.Recv{}}
}

func (v *vsync) Start(c *stack.Ctx) { v.me = c.Me().ID }

func (v *vsync) Down(c *stack.Ctx, ev stack.Event) {
	switch e := ev.(type) {
	case stack.Send:
		if len(v.waiting) == 0 && v.canSend() {
			v.send(c, e)
			return
		}
		v.waiting = append(v.waiting, e)
		v.pump(c)
	case stack.BlockOk:
		v.blocked, v.frozen = true, true
		c.Down(stack.BlockOk{Flush: e.Flush, Parts: append(e.Parts, v.contribution())})
	default:
		c.Down(ev)
	}
}

// canSend reports whether the view and window allow a send now.
func (v *vsync) canSend() bool {
	return v.inView && !v.blocked && v.sent-v.stable < uint64(v.window)
}

// pump sends waiting messages while the view and window allow.
func (v *vsync) pump(c *stack.Ctx) {
	for len(v.waiting) > 0 && v.canSend() {
		e := v.waiting[0]
		v.waiting[0] = stack.Send{}
		v.waiting = v.waiting[1:]
		v.send(c, e)
	}
	if len(v.waiting) == 0 {
		v.waiting = nil
	}
}

// send sends e to the view, which canSend allows.
func (v *vsync) send(c *stack.Ctx, e stack.Send) {
	v.sent++
	seq := v.sent
	if e.Token != 0 {
		v.tokens[seq] = e.Token
	}
	// One value for all: the runtime encodes it once.
	msg := e.Msg.Push(v.dataHdr(seq))
	if len(v.others) > 0 {
		c.Down(stack.Multicast{To: v.others, Msg: msg})
	}
	st := v.streams[v.me]
	st.msgs = append(st.msgs, e.Msg)
	st.delivered = seq
	c.Up(stack.Deliver{View: v.view.ID, From: v.me, Seq: seq, Msg: e.Msg})
	v.advance(c)
}

// dataHdr is the header of data message seq, in one allocation.
func (v *vsync) dataHdr(seq uint64) []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(v.view.ID.Coord))
	return (&stack.Enc{B: append(b, vsData)}).ViewID(v.view.ID).Uint(seq).Uint(v.stable).B
}

func (v *vsync) Up(c *stack.Ctx, ev stack.Event) {
	switch e := ev.(type) {
	case stack.Recv:
		v.recv(c, e)
	case stack.Install:
		v.install(c, e)
	case stack.Left:
		v.dropTokens(c)
		v.inView = false
		v.gaps = 0
		c.Up(ev)
	default:
		c.Up(ev)
	}
}

func (v *vsync) recv(c *stack.Ctx, e stack.Recv) {
	h, rest, ok := e.Msg.Pop()
	if !ok || len(h) == 0 {
		c.Log(eventlog.BadMsg, eventlog.FieldFrom, e.From.ID, eventlog.FieldLayer, "vsync")
		return
	}
	d := &stack.Dec{B: h[1:]}
	view := d.ViewIDOf(v.view.ID)
	switch h[0] {
	case vsData:
		seq, stable := d.Uint(), d.Uint()
		if d.Done() != nil {
			break
		}
		if !v.inView || view != v.view.ID {
			// A view this member may install next: sequence numbers
			// grow along one coordinator's views only (a member that
			// dissolved its own group joins one with any number).
			if !v.inView || view.Seq > v.view.ID.Seq || view.Coord != v.view.ID.Coord {
				v.keep(view, e)
			}
			return
		}
		st := v.streams[e.From.ID]
		if st == nil {
			return // not a member of this view
		}
		switch {
		case seq <= st.recv():
			return
		case seq > st.recv()+1:
			v.missing(c, e.From, st, seq)
			return
		}
		st.msgs = append(st.msgs, rest)
		if st.need == seq && !st.suspected {
			v.gaps-- // filled
		}
		if !v.frozen {
			// Acknowledged once delivered: a stable message has been
			// delivered by every member.
			st.delivered = seq
			v.dirty[e.From.ID] = true
			c.Up(stack.Deliver{View: view, From: e.From.ID, Seq: seq, Msg: rest})
		}
		st.forget(min(stable, st.delivered))
		return
	case vsNack:
		n := d.Uint()
		if d.Done() != nil {
			break
		}
		if v.inView && view == v.view.ID && v.view.Has(e.From.ID) {
			v.resend(c, e.From, n)
		}
		return
	case vsAck:
		n := d.Uint()
		if d.Done() != nil {
			break
		}
		if v.inView && view == v.view.ID && v.view.Has(e.From.ID) && n <= v.sent && n > v.acked[e.From.ID] {
			v.acked[e.From.ID] = n
			v.advance(c)
			v.pump(c)
		}
		return
	}
	c.Log(eventlog.BadMsg, eventlog.FieldFrom, e.From.ID, eventlog.FieldLayer, "vsync", eventlog.FieldKind, int(h[0]))
}

// missing handles message seq of sender from, which arrived before the
// messages before it: it is dropped, and the first time the gap opens the
// sender is asked for the rest.
func (v *vsync) missing(c *stack.Ctx, from stack.Member, st *vstream, seq uint64) {
	if st.suspected {
		return
	}
	if !st.gap() {
		v.gaps++
		st.gapAt, st.sleptAt = c.Now(), c.Slept()
		c.Log(eventlog.Gap, eventlog.FieldFrom, from.ID, eventlog.FieldWant, st.recv()+1, eventlog.FieldGot, seq)
		v.nack(c, from, st)
	}
	st.need = max(st.need, seq)
}

// nack asks sender to send its messages again from the first st lacks.
func (v *vsync) nack(c *stack.Ctx, sender stack.Member, st *vstream) {
	st.nackAt = c.Now() + v.gapTimeout/nacksPerGap
	hdr := (&stack.Enc{B: []byte{vsNack}}).ViewID(v.view.ID).Uint(st.recv()).B
	c.Down(stack.Out{To: sender, Msg: stack.Msg{Hdrs: [][]byte{hdr}}})
}

// resend sends member to again this member's messages of the view from
// n+1 on, those it still holds (a message it no longer holds is stable:
// to has it).
func (v *vsync) resend(c *stack.Ctx, to stack.Member, n uint64) {
	st := v.streams[v.me]
	for seq := max(n, st.base) + 1; seq <= st.recv(); seq++ {
		c.Down(stack.Out{To: to, Msg: st.msgs[seq-st.base-1].Push(v.dataHdr(seq))})
	}
}

// Deadline is when a gap calls for a nack or a suspicion.
func (v *vsync) Deadline() time.Duration {
	d := stack.Never
	if v.gaps == 0 {
		return d
	}
	for _, st := range v.streams {
		if st.gap() {
			d = min(d, st.nackAt, st.gapAt+v.gapTimeout)
		}
	}
	return d
}

// Tick asks again for missing messages, and suspects the sender of a gap
// open for gap-timeout.
func (v *vsync) Tick(c *stack.Ctx) {
	if !v.inView {
		return
	}
	now := c.Now()
	for _, m := range v.view.Members {
		st := v.streams[m.ID]
		switch {
		case st == nil || !st.gap():
		case now >= st.gapAt+v.gapTimeout && c.Slept() > st.sleptAt:
			// This process did not run for part of that time (its own
			// pause is not the sender's silence): count from now on.
			st.gapAt += c.Slept() - st.sleptAt
			st.sleptAt = c.Slept()
			v.nack(c, m, st)
		case now >= st.gapAt+v.gapTimeout:
			st.suspected = true
			v.gaps--
			c.Log(eventlog.Suspect, eventlog.FieldOf, m.ID, eventlog.FieldCause, eventlog.CauseGap)
			c.Down(Suspect{ID: m.ID, Cause: eventlog.CauseGap})
		case now >= st.nackAt:
			v.nack(c, m, st)
		}
	}
}

// keep holds a message of a view this member has not installed yet.
func (v *vsync) keep(view stack.ViewID, e stack.Recv) {
	size := msgSize(e.Msg)
	if v.nfuture >= maxFuture || v.bfuture+size > maxFutureBytes {
		return
	}
	v.future[view] = append(v.future[view], e)
	v.nfuture++
	v.bfuture += size
}

// advance recomputes which of this member's messages are stable.
func (v *vsync) advance(c *stack.Ctx) {
	s := v.sent
	for _, m := range v.view.Members {
		if m.ID != v.me {
			s = min(s, v.acked[m.ID])
		}
	}
	for seq := v.stable + 1; seq <= s; seq++ {
		if t, ok := v.tokens[seq]; ok {
			delete(v.tokens, seq)
			c.Up(stack.Acked{Token: t, View: v.view.ID, Seq: seq})
		}
	}
	v.stable = s
	v.streams[v.me].forget(s)
}

// EndBatch acknowledges what arrived in the batch.
func (v *vsync) EndBatch(c *stack.Ctx) {
	if !v.inView {
		return
	}
	for _, m := range v.view.Members {
		if v.dirty[m.ID] {
			hdr := (&stack.Enc{B: []byte{vsAck}}).ViewID(v.view.ID).Uint(v.streams[m.ID].delivered).B
			c.Down(stack.Out{To: m, Msg: stack.Msg{Hdrs: [][]byte{hdr}}})
		}
	}
	clear(v.dirty)
}

// contribution encodes the messages of the view this member holds:
// for each sender, its id, the number of the first message, the messages.
func (v *vsync) contribution() []byte {
	enc := &stack.Enc{}
	enc.ViewID(v.view.ID)
	enc.Uint(uint64(len(v.view.Members)))
	for _, m := range v.view.Members {
		st := v.streams[m.ID]
		enc.Str(m.ID).Uint(st.base + 1).Uint(uint64(len(st.msgs)))
		for _, msg := range st.msgs {
			enc.Bytes(stack.AppendMsg(nil, msg))
		}
	}
	return enc.B
}

func (v *vsync) install(c *stack.Ctx, e stack.Install) {
	if v.inView && e.Contribs != nil {
		// The union of what the survivors hold, delivered in each
		// sender's order from where this member stands.
		union := map[string][]span{}
		rests := make([]stack.Contrib, len(e.Contribs))
		for i, ct := range e.Contribs {
			part, rest := ct.Pop()
			if !v.decodeInto(union, part) {
				c.Log(eventlog.BadContribution, eventlog.FieldFrom, ct.From)
			}
			rests[i] = rest
		}
		e.Contribs = rests
		// Only the union: this member's own contribution is in it, and
		// what it received after contributing is not, so others may not
		// have it.
		for _, m := range v.view.Members {
			st := v.streams[m.ID]
			spans := union[m.ID]
			for seq := st.delivered + 1; ; seq++ {
				msg, ok := find(spans, seq)
				if !ok {
					break
				}
				st.delivered = seq
				c.Up(stack.Deliver{View: v.view.ID, From: m.ID, Seq: seq, Msg: msg})
			}
		}
		// Every survivor now delivers all this member's messages.
		seqs := make([]uint64, 0, len(v.tokens))
		for seq := range v.tokens {
			seqs = append(seqs, seq)
		}
		slices.Sort(seqs)
		for _, seq := range seqs {
			c.Up(stack.Acked{Token: v.tokens[seq], View: v.view.ID, Seq: seq})
		}
		clear(v.tokens)
	} else {
		v.dropTokens(c)
	}
	v.view = e.View
	v.others = make([]stack.Member, 0, len(e.View.Members))
	for _, m := range e.View.Members {
		if m.ID != v.me {
			v.others = append(v.others, m)
		}
	}
	v.inView = true
	v.blocked, v.frozen = false, false
	v.sent, v.stable = 0, 0
	v.gaps = 0
	v.streams = map[string]*vstream{}
	v.acked = map[string]uint64{}
	v.tokens = map[uint64]uint64{}
	v.dirty = map[string]bool{}
	for _, m := range e.View.Members {
		v.streams[m.ID] = &vstream{}
	}
	c.Up(e)
	kept := v.future[e.View.ID]
	alone := len(e.View.Members) == 1 // it may be about to join any group
	for id := range v.future {
		if id.Seq <= e.View.ID.Seq && (id.Coord == e.View.ID.Coord || !alone) {
			v.nfuture -= len(v.future[id])
			for _, r := range v.future[id] {
				v.bfuture -= msgSize(r.Msg)
			}
			delete(v.future, id)
		}
	}
	for _, r := range kept {
		v.recv(c, r)
	}
	v.pump(c)
}

// dropTokens reports this member's unstable messages as possibly lost.
func (v *vsync) dropTokens(c *stack.Ctx) {
	seqs := make([]uint64, 0, len(v.tokens))
	for seq := range v.tokens {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		c.Up(stack.Acked{Token: v.tokens[seq], Lost: true, View: v.view.ID, Seq: seq})
	}
	clear(v.tokens)
}

// span is a run of one sender's messages, numbered from first, as one
// contribution holds them.
type span struct {
	first uint64
	msgs  []stack.Msg
}

// find returns message seq from the last of spans that holds it.
func find(spans []span, seq uint64) (stack.Msg, bool) {
	for i := len(spans) - 1; i >= 0; i-- {
		if k := seq - spans[i].first; k < uint64(len(spans[i].msgs)) {
			return spans[i].msgs[k], true
		}
	}
	return stack.Msg{}, false
}

// decodeInto adds the messages of one contribution to union, per sender.
// A malformed contribution adds what came before the fault.
func (v *vsync) decodeInto(union map[string][]span, part []byte) bool {
	d := &stack.Dec{B: part}
	if d.ViewID() != v.view.ID {
		return false
	}
	n := d.Count(3)
	for range n {
		id, first, k := d.Str(), d.Uint(), d.Count(1)
		if d.Err() != nil {
			return false
		}
		sp := span{first: first, msgs: make([]stack.Msg, 0, k)}
		for range k {
			msg, err := stack.ParseMsg(d.Bytes())
			if err != nil || d.Err() != nil {
				if len(sp.msgs) > 0 {
					union[id] = append(union[id], sp)
				}
				return false
			}
			sp.msgs = append(sp.msgs, msg)
		}
		union[id] = append(union[id], sp)
	}
	return d.Done() == nil
}

// msgSize is a message's size in memory, roughly.
func msgSize(m stack.Msg) int {
	n := len(m.Data)
	for _, h := range m.Hdrs {
		n += len(h) + 24
	}
	return n
}
