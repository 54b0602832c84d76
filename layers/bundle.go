package layers

import (
	"encoding/binary"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/stack"
)

// bundle packs the messages the application sends in one batch of the
// runtime into one message, and unpacks them on delivery, so that the
// layers below, the encoding and the connections pay once for many
// messages: a busy sender's messages travel in bundles of up to max bytes,
// an idle one's alone, and no message ever waits for others (a bundle holds
// what was already queued). It sits at the top of a stack, above the
// ordering layers, so a bundle is delivered whole, in one place of the
// order, and its messages in the order they were sent: every guarantee of
// the layers below holds for each message.
//
// Deliveries are numbered again, per message: Seq is the message's
// position among its sender's messages in the view, Order (under a total
// order below) its position among the view's messages. An Acked from below
// names a bundle; the layer reports it for each of the bundle's messages,
// with the numbers they are delivered under, once the bundle is delivered
// here as well.
type bundle struct {
	max int // bytes of data in a bundle

	me   string
	buf  []stack.Send // sends waiting for the end of the batch
	size int          // their data's bytes

	token uint64           // the last token of a bundle sent down
	sent  []sentBundle     // own bundles sent, not yet delivered here, in order
	held  map[uint64]bheld // own bundles delivered here, not yet acknowledged, by token

	view  stack.ViewID
	count map[string]uint64 // messages delivered per sender in the view
	order uint64            // messages delivered in the view
}

// sentBundle is an own bundle on its way: its token below, the tokens of
// its messages above, and whether its acknowledgement came before it was
// delivered here.
type sentBundle struct {
	token  uint64
	tokens []uint64
	acked  *stack.Acked
}

// bheld is an own bundle delivered here, waiting for its acknowledgement:
// the tokens of its messages and the number of the first.
type bheld struct {
	tokens []uint64
	view   stack.ViewID
	first  uint64
}

const (
	bundleOne  byte = iota // the data is one message
	bundleMany             // the data is messages, each as uvarint length and bytes
)

// DefaultBundle is the default of bundle's max: the bytes of data a bundle
// may hold.
const DefaultBundle = 30 << 10

func newBundle(p stack.Params) stack.Layer {
	return &bundle{max: p.Int("max"), held: map[uint64]bheld{}, count: map[string]uint64{}}
}

func (b *bundle) Start(c *stack.Ctx) { b.me = c.Me().ID }

func (b *bundle) Down(c *stack.Ctx, ev stack.Event) {
	if e, ok := ev.(stack.Send); ok {
		if len(b.buf) > 0 && b.size+len(e.Msg.Data) > b.max {
			b.flush(c)
		}
		b.buf = append(b.buf, e)
		b.size += len(e.Msg.Data)
		return
	}
	// Whatever else the application asks comes after what it sent.
	b.flush(c)
	c.Down(ev)
}

// EndBatch sends what the batch queued.
func (b *bundle) EndBatch(c *stack.Ctx) { b.flush(c) }

// flush sends the queued messages down: one alone, several as a bundle.
func (b *bundle) flush(c *stack.Ctx) {
	if len(b.buf) == 0 {
		return
	}
	var msg stack.Msg
	tokens := make([]uint64, len(b.buf))
	wants := false
	for i, s := range b.buf {
		tokens[i] = s.Token
		wants = wants || s.Token != 0
	}
	if len(b.buf) == 1 {
		msg = b.buf[0].Msg.Push([]byte{bundleOne})
	} else {
		n := b.size
		for _, s := range b.buf {
			n += uvarintLen(uint64(len(s.Msg.Data)))
		}
		data := make([]byte, 0, n)
		for _, s := range b.buf {
			data = binary.AppendUvarint(data, uint64(len(s.Msg.Data)))
			data = append(data, s.Msg.Data...)
		}
		msg = stack.Msg{Data: data}.Push([]byte{bundleMany})
	}
	clear(b.buf)
	b.buf, b.size = b.buf[:0], 0
	var tok uint64
	if wants {
		b.token++
		tok = b.token
	}
	b.sent = append(b.sent, sentBundle{token: tok, tokens: tokens})
	c.Down(stack.Send{Msg: msg, Token: tok})
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func (b *bundle) Up(c *stack.Ctx, ev stack.Event) {
	switch e := ev.(type) {
	case stack.Deliver:
		b.deliver(c, e)
	case stack.Acked:
		b.acked(c, e)
	case stack.Block:
		// Send what is queued in this view, before the flush stops sends.
		b.flush(c)
		c.Up(ev)
	case stack.Install:
		// Every own bundle of the last view was delivered in it.
		b.view = e.View.ID
		clear(b.count)
		b.order = 0
		c.Up(ev)
	case stack.Left:
		// What is queued will not be sent.
		for _, s := range b.buf {
			if s.Token != 0 {
				c.Up(stack.Acked{Token: s.Token, Lost: true, View: b.view})
			}
		}
		clear(b.buf)
		b.buf, b.size = b.buf[:0], 0
		c.Up(ev)
	default:
		c.Up(ev)
	}
}

func (b *bundle) deliver(c *stack.Ctx, e stack.Deliver) {
	h, rest, ok := e.Msg.Pop()
	if !ok || len(h) != 1 || h[0] > bundleMany || (h[0] == bundleMany && len(rest.Data) == 0) {
		c.Log(eventlog.BadMsg, eventlog.FieldFrom, e.From, eventlog.FieldLayer, "bundle")
		return
	}
	if e.View != b.view {
		// Views reach this layer in order: a delivery names the last.
		b.view = e.View
		clear(b.count)
		b.order = 0
	}
	if h[0] == bundleMany && !validBundle(rest.Data) {
		c.Log(eventlog.BadMsg, eventlog.FieldFrom, e.From, eventlog.FieldLayer, "bundle")
		return
	}
	first := b.count[e.From] + 1
	var n uint64
	up := func(data []byte) {
		n++
		d := stack.Deliver{View: e.View, From: e.From, Seq: first + n - 1, Msg: stack.Msg{Data: data}}
		if e.Order != 0 {
			b.order++
			d.Order = b.order
		}
		c.Up(d)
	}
	if h[0] == bundleOne {
		up(rest.Data)
	} else {
		for data := rest.Data; len(data) > 0; {
			l, k := binary.Uvarint(data)
			data = data[k:]
			up(data[:l:l])
			data = data[l:]
		}
	}
	b.count[e.From] += n
	if e.From == b.me {
		b.delivered(c, e.View, first, n)
	}
}

// validBundle reports whether data is a whole number of messages, each
// as uvarint length and bytes.
func validBundle(data []byte) bool {
	for len(data) > 0 {
		l, k := binary.Uvarint(data)
		if k <= 0 || l > uint64(len(data)-k) {
			return false
		}
		data = data[k+int(l):]
	}
	return true
}

// delivered pairs an own bundle delivered here with the send it came
// from: own messages are delivered in the order they were sent.
func (b *bundle) delivered(c *stack.Ctx, view stack.ViewID, first, n uint64) {
	if len(b.sent) == 0 || uint64(len(b.sent[0].tokens)) != n {
		// Not a bundle this member sent in this incarnation.
		c.Log(eventlog.BadMsg, eventlog.FieldFrom, b.me, eventlog.FieldLayer, "bundle")
		return
	}
	s := b.sent[0]
	b.sent[0] = sentBundle{}
	b.sent = b.sent[1:]
	if s.token == 0 {
		return
	}
	h := bheld{tokens: s.tokens, view: view, first: first}
	if s.acked != nil {
		b.report(c, *s.acked, h)
		return
	}
	b.held[s.token] = h
}

// acked reports the messages of an acknowledged bundle.
func (b *bundle) acked(c *stack.Ctx, e stack.Acked) {
	if h, ok := b.held[e.Token]; ok {
		delete(b.held, e.Token)
		b.report(c, e, h)
		return
	}
	for i := range b.sent {
		s := &b.sent[i]
		if s.token != e.Token || e.Token == 0 {
			continue
		}
		if !e.Lost {
			s.acked = &e
			return
		}
		// Lost: the bundle may never be delivered here.
		for _, t := range s.tokens {
			if t != 0 {
				c.Up(stack.Acked{Token: t, Lost: true, View: e.View})
			}
		}
		b.sent = append(b.sent[:i], b.sent[i+1:]...)
		return
	}
}

func (b *bundle) report(c *stack.Ctx, e stack.Acked, h bheld) {
	for i, t := range h.tokens {
		if t != 0 {
			c.Up(stack.Acked{Token: t, Lost: e.Lost, View: h.view, Seq: h.first + uint64(i)})
		}
	}
}
