package layers

import (
	"cmp"
	"slices"
	"strings"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/stack"
)

// total orders the messages of a view: the coordinator (the oldest member)
// is the sequencer. Every message travels to every member through the
// layers below; the sequencer sends, once per batch, an order message
// listing the messages it received since the last one, and members deliver
// messages in that order. Order messages travel through view synchrony
// like any other, so at a view change every survivor holds the same
// messages and the same prefix of the sequencer's orders: each delivers
// the rest of that prefix (skipping a message nobody holds, which nobody
// delivered), then the messages left unordered by sender rank and number,
// then installs the new view. The handover to the next sequencer loses,
// duplicates and reorders nothing for the survivors.
type total struct {
	me      string
	view    stack.View
	inView  bool
	blocked bool

	pending  map[tkey]stack.Deliver // received, not yet delivered
	orders   []tkey                 // orders received, not yet delivered
	next     uint64                 // messages delivered in the view
	toOrder  []tkey                 // sequencer: received, not yet ordered
	count    map[string]uint64      // data messages received per sender
	own      map[uint64]uint64      // this member's data messages: number below → number delivered
	sequence bool                   // this member is the sequencer
}

type tkey struct {
	from string
	seq  uint64
}

const (
	totData byte = iota
	totOrder
)

func newTotal(stack.Params) stack.Layer { return &total{pending: map[tkey]stack.Deliver{}} }

func (t *total) Start(c *stack.Ctx) { t.me = c.Me().ID }

func (t *total) Down(c *stack.Ctx, ev stack.Event) {
	switch e := ev.(type) {
	case stack.Send:
		c.Down(stack.Send{Msg: e.Msg.Push([]byte{totData}), Token: e.Token})
	default:
		c.Down(ev)
	}
}

func (t *total) Up(c *stack.Ctx, ev stack.Event) {
	switch e := ev.(type) {
	case stack.Deliver:
		t.deliver(c, e)
	case stack.Block:
		t.sendOrder(c)
		t.blocked = true
		c.Up(ev)
	case stack.Install:
		t.install(c, e)
	case stack.Acked:
		// Name the message by its number among this member's data
		// messages, as it is delivered.
		if n, ok := t.own[e.Seq]; ok && t.inView && e.View == t.view.ID {
			delete(t.own, e.Seq)
			if n != e.Seq {
				e.Seq = n
				c.Up(e)
				return
			}
		}
		c.Up(ev)
	default:
		c.Up(ev)
	}
}

func (t *total) deliver(c *stack.Ctx, e stack.Deliver) {
	if !t.inView || e.View != t.view.ID {
		return
	}
	h, rest, ok := e.Msg.Pop()
	if !ok || len(h) == 0 {
		c.Log(eventlog.BadMsg, eventlog.FieldFrom, e.From, eventlog.FieldLayer, "total")
		return
	}
	switch h[0] {
	case totData:
		if len(h) != 1 {
			break
		}
		k := tkey{e.From, e.Seq}
		e.Msg = rest
		// Number the sender's data messages apart from the orders.
		t.count[e.From]++
		if e.From == t.me {
			t.own[e.Seq] = t.count[e.From]
		}
		e.Seq = t.count[e.From]
		t.pending[k] = e
		if t.sequence && !t.blocked {
			t.toOrder = append(t.toOrder, k)
		}
		t.drain(c)
		return
	case totOrder:
		if e.From != t.view.Members[0].ID {
			break
		}
		d := &stack.Dec{B: h[1:]}
		if view := d.ViewIDOf(t.view.ID); view != t.view.ID {
			// Ordered in an earlier view, sent in this one (it waited
			// for vsync's window): the handover settled those messages.
			if d.Err() == nil {
				c.Log(eventlog.OrderStale, eventlog.FieldFrom, e.From, eventlog.FieldOf, view.String())
				return
			}
			break
		}
		n := d.Count(2)
		for range n {
			r, seq := d.Uint(), d.Uint()
			if d.Err() != nil || r >= uint64(len(t.view.Members)) {
				c.Log(eventlog.BadMsg, eventlog.FieldFrom, e.From, eventlog.FieldLayer, "total")
				return
			}
			t.orders = append(t.orders, tkey{t.view.Members[r].ID, seq})
		}
		if d.Done() != nil {
			break
		}
		t.drain(c)
		return
	}
	c.Log(eventlog.BadMsg, eventlog.FieldFrom, e.From, eventlog.FieldLayer, "total", eventlog.FieldKind, int(h[0]))
}

// drain delivers ordered messages while the next one is here.
func (t *total) drain(c *stack.Ctx) {
	for len(t.orders) > 0 {
		e, ok := t.pending[t.orders[0]]
		if !ok {
			return
		}
		t.up(c, t.orders[0], e)
		t.orders = t.orders[1:]
	}
	t.orders = nil
}

func (t *total) up(c *stack.Ctx, k tkey, e stack.Deliver) {
	delete(t.pending, k)
	t.next++
	e.Order = t.next
	c.Up(e)
}

// EndBatch has the sequencer order what arrived in the batch.
func (t *total) EndBatch(c *stack.Ctx) {
	if !t.blocked {
		t.sendOrder(c)
	}
}

func (t *total) sendOrder(c *stack.Ctx) {
	if len(t.toOrder) == 0 {
		return
	}
	enc := (&stack.Enc{B: []byte{totOrder}}).ViewID(t.view.ID)
	enc.Uint(uint64(len(t.toOrder)))
	for _, k := range t.toOrder {
		enc.Uint(uint64(t.view.Rank(k.from))).Uint(k.seq)
	}
	t.toOrder = t.toOrder[:0]
	c.Down(stack.Send{Msg: stack.Msg{Hdrs: [][]byte{enc.B}}})
}

func (t *total) install(c *stack.Ctx, e stack.Install) {
	if t.inView && e.Contribs != nil {
		// The handover: the survivors hold the same messages and orders.
		for _, k := range t.orders {
			if m, ok := t.pending[k]; ok {
				t.up(c, k, m)
			} else {
				c.Log(eventlog.OrderSkipped, eventlog.FieldFrom, k.from, eventlog.FieldSeq, k.seq)
			}
		}
		rest := make([]tkey, 0, len(t.pending))
		for k := range t.pending {
			rest = append(rest, k)
		}
		slices.SortFunc(rest, func(a, b tkey) int {
			if ra, rb := t.view.Rank(a.from), t.view.Rank(b.from); ra != rb {
				return ra - rb
			}
			if c := cmp.Compare(a.seq, b.seq); c != 0 {
				return c
			}
			return strings.Compare(a.from, b.from)
		})
		for _, k := range rest {
			t.up(c, k, t.pending[k])
		}
	}
	t.view = e.View
	t.inView = true
	t.blocked = false
	t.orders, t.toOrder = nil, nil
	clear(t.pending)
	t.count = map[string]uint64{}
	t.own = map[uint64]uint64{}
	t.next = 0
	t.sequence = e.View.Members[0].ID == t.me
	c.Up(e)
}
