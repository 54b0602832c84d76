package stack

import (
	"fmt"
	"time"
)

// Layer is one protocol layer. Up receives events travelling up from the
// layer below (or the network), Down events travelling down from the layer
// above (or the application). A layer passes on, with c.Up and c.Down, what
// it does not consume.
type Layer interface {
	Up(c *Ctx, ev Event)
	Down(c *Ctx, ev Event)
}

// Starter is a layer with work to do when the stack starts.
type Starter interface {
	Start(c *Ctx)
}

// Ticker is a layer with timers: Tick is called once the stack's time
// reaches Deadline.
type Ticker interface {
	Tick(c *Ctx)
	Deadline() time.Duration
}

// Batcher is a layer that coalesces work: EndBatch is called when the
// runtime collects effects, after a batch of inputs (acknowledgements, say,
// sent once per batch rather than once per message). Layers end their
// batches from the top down, so what a layer sends at the end of its batch
// is in the batch of the layers below.
type Batcher interface {
	EndBatch(c *Ctx)
}

// Inputs of Step that are not events of the stack's edges.
type (
	// Start starts the stack.
	Start struct{}
	// Tick lets time pass: layers whose deadline has come run their timers.
	Tick struct{}
)

// Log is an effect: an event for the event log.
type Log struct {
	Layer  string
	Ev     string
	Fields map[string]any
}

// Stack is the state machine of one member's stack.
type Stack struct {
	me      Member
	layers  []Layer
	kinds   []string
	ctxs    []Ctx
	now     time.Duration
	queue   []item // events to run, from head on
	head    int
	out     []Event
	started bool
	id      string
	slept   time.Duration // how much later than their deadlines Ticks came, in all
}

type item struct {
	at int // the layer that receives ev
	up bool
	ev Event
}

// New returns a stack of layers, bottom first, run by member me. kinds
// names each layer in logs.
func New(me Member, kinds []string, layers []Layer) *Stack {
	s := &Stack{me: me, layers: layers, kinds: kinds}
	s.ctxs = make([]Ctx, len(layers))
	for i := range layers {
		s.ctxs[i] = Ctx{s: s, i: i}
	}
	return s
}

// Me returns the member running the stack.
func (s *Stack) Me() Member { return s.me }

// ID names the stack's description, as Description.ID does, so that
// members can tell whether they run the same stack; Registry.Build sets it.
func (s *Stack) ID() string { return s.id }

// SetID sets the stack's ID (for a stack made with New).
func (s *Stack) SetID(id string) { s.id = id }

// Layers returns the stack's layers, bottom first.
func (s *Stack) Layers() []Layer { return s.layers }

// Step feeds one input at time now: Start, Tick, Recv or Lost (from the
// network, entering at the bottom) or Send, Join, Leave or Contacts (from
// the application, entering at the top).
func (s *Stack) Step(now time.Duration, in Event) error {
	if now > s.now {
		s.now = now
	}
	switch in.(type) {
	case Start:
		if s.started {
			return nil
		}
		s.started = true
		for i, l := range s.layers {
			if st, ok := l.(Starter); ok {
				st.Start(&s.ctxs[i])
			}
		}
	case Tick:
		s.slept += max(s.now-s.Deadline(), 0)
		for i, l := range s.layers {
			if t, ok := l.(Ticker); ok && t.Deadline() <= s.now {
				t.Tick(&s.ctxs[i])
			}
		}
	case Recv, Lost:
		s.queue = append(s.queue, item{at: 0, up: true, ev: in})
	case Send, Join, Leave, Contacts:
		s.queue = append(s.queue, item{at: len(s.layers) - 1, up: false, ev: in})
	default:
		return fmt.Errorf("stack: unknown input %T", in)
	}
	s.run()
	return nil
}

// Ready returns the effects produced since the last call: Out, Multicast
// and Close for the runtime; Deliver, Install, Acked and Left for the application;
// Log for the event log. It ends the current batch first.
func (s *Stack) Ready() []Event {
	for i := len(s.layers) - 1; i >= 0; i-- {
		if b, ok := s.layers[i].(Batcher); ok {
			b.EndBatch(&s.ctxs[i])
			s.run()
		}
	}
	out := s.out
	s.out = nil
	return out
}

// Deadline returns when the stack next needs a Tick.
func (s *Stack) Deadline() time.Duration {
	d := Never
	if !s.started {
		return d
	}
	for _, l := range s.layers {
		if t, ok := l.(Ticker); ok {
			d = min(d, t.Deadline())
		}
	}
	return d
}

// run processes queued events in order until none is left.
func (s *Stack) run() {
	for s.head < len(s.queue) {
		it := s.queue[s.head]
		s.queue[s.head] = item{}
		s.head++
		switch {
		case it.at < 0:
			s.out = append(s.out, it.ev)
		case it.at >= len(s.layers):
			if b, ok := it.ev.(Block); ok {
				// The application takes no part in a flush.
				s.queue = append(s.queue, item{at: len(s.layers) - 1, ev: BlockOk{Flush: b.Flush}})
				continue
			}
			s.out = append(s.out, it.ev)
		case it.up:
			s.layers[it.at].Up(&s.ctxs[it.at], it.ev)
		default:
			s.layers[it.at].Down(&s.ctxs[it.at], it.ev)
		}
	}
	// Empty: the array is reused, unless a burst made it large.
	s.queue, s.head = s.queue[:0], 0
	if cap(s.queue) > 1024 {
		s.queue = nil
	}
}

// Ctx is a layer's handle on its stack.
type Ctx struct {
	s *Stack
	i int
}

// Up passes ev to the layer above (or the application).
func (c *Ctx) Up(ev Event) { c.s.queue = append(c.s.queue, item{at: c.i + 1, up: true, ev: ev}) }

// Down passes ev to the layer below (or the network).
func (c *Ctx) Down(ev Event) { c.s.queue = append(c.s.queue, item{at: c.i - 1, ev: ev}) }

// Now returns the stack's current time.
func (c *Ctx) Now() time.Duration { return c.s.now }

// Me returns the member running the stack.
func (c *Ctx) Me() Member { return c.s.me }

// Slept returns how much later than the stack's deadline its Ticks came,
// in all: time this process did not run when it should have (SIGSTOP, a VM
// pause), which a layer should not hold against others.
func (c *Ctx) Slept() time.Duration { return c.s.slept }

// StackID returns the ID of the stack's description (Stack.ID).
func (c *Ctx) StackID() string { return c.s.id }

// Log records an event for the event log; kv are field names and values.
func (c *Ctx) Log(ev string, kv ...any) {
	f := make(map[string]any, len(kv)/2+1)
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	c.s.out = append(c.s.out, Log{Layer: c.s.kinds[c.i], Ev: ev, Fields: f})
}
