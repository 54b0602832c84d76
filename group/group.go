// Package group runs a named group of processes over TCP: each member runs
// a protocol stack (see package stack; the shipped ones in package layers)
// in one goroutine, and this package owns its connections, timers and
// channels. Members reach each other with one connection per direction.
//
//	g, err := group.Join(ctx, group.Config{Name: "prices", Stack: "total",
//		Listen: "127.0.0.1:7001", Contacts: []string{"127.0.0.1:7000"}})
//	...
//	defer g.Close()
//	go func() {
//		for d := range g.Deliveries() {
//			fmt.Printf("%s: %s\n", d.From, d.Data)
//		}
//	}()
//	err = g.Send(ctx, []byte("hello")) // returns once every member has it
//	...
//	g.Leave(ctx)
package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/layers"
	"github.com/conclave/conclave/stack"
	"github.com/conclave/conclave/transport"
	"github.com/conclave/conclave/wire"
)

// Config configures a member.
type Config struct {
	// Name is the group's name; members of other groups are refused.
	Name string
	// Stack is a shipped stack's name ("vsync", "total") or the path of
	// an XML stack description. Default "vsync".
	Stack string
	// Description, if set, is used instead of Stack.
	Description *stack.Description
	// Listen is the address to accept connections on.
	Listen string
	// Contacts are addresses of members to join through. With none (or
	// only Listen), this member founds the group.
	Contacts []string
	// Name of this member in logs (default "member"); an incarnation
	// suffix makes its member id unique.
	Member string
	// LogDir, if set, receives the event log <LogDir>/<Member>.jsonl.
	LogDir string
	// LogDeliveries logs every send, acknowledgement and delivery (for
	// the checkers; heavy).
	LogDeliveries bool
	// MaxMessage bounds a message's size (default 1 MiB).
	MaxMessage int
	// OnEvent, if set, is called with every event the member logs (with
	// or without LogDir), from its goroutine: it must not block.
	OnEvent func(eventlog.Event)
}

// Delivery is a message delivered to the application.
type Delivery struct {
	View  stack.ViewID
	From  string // sender's member id
	Seq   uint64 // the sender's message number in the view
	Order uint64 // position in the view's total order (0 without one)
	Data  []byte
}

// Errors of Send and Leave.
var (
	ErrClosed = errors.New("group: member closed")
	// ErrLost means the message was sent but this member left its view
	// before knowing every member has it: it may not have reached all.
	ErrLost = errors.New("group: message may be lost (this member left the view)")
)

// Group is a member of a group. It is safe for concurrent use.
type Group struct {
	cfg   Config
	me    stack.Member
	st    *stack.Stack
	ln    *net.TCPListener
	log   *eventlog.Writer
	clock *eventlog.Clock
	file  *os.File
	t0    time.Time

	in       chan func()     // work for the loop goroutine
	outConns map[string]*out // by member id, or "@addr" when the id is unknown
	inConns  map[string][]*transport.Conn
	sentMsg  map[uint64]string // token → message, when logging deliveries
	lastEnc  struct {
		msg stack.Msg
		b   []byte
	}

	mu       sync.Mutex
	view     stack.View
	waiters  map[uint64]chan error
	token    uint64
	left     chan struct{}
	leftErr  error
	firstOK  chan struct{}
	firstSet bool

	deliveries *queue[Delivery]
	views      *queue[stack.View]
	done       chan struct{}
	closeOnce  sync.Once
	wg         sync.WaitGroup
}

type out struct {
	to      stack.Member
	conn    *transport.Conn
	pending []wire.Frame // queued while connecting
	dialing bool
}

// Join starts a member and returns once it is in a view of the group (or
// ctx ends).
func Join(ctx context.Context, cfg Config) (*Group, error) {
	if cfg.Name == "" {
		return nil, errors.New("group: a group needs a name")
	}
	if cfg.Member == "" {
		cfg.Member = "member"
	}
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = 1 << 20
	}
	d := cfg.Description
	if d == nil {
		name := cfg.Stack
		if name == "" {
			name = "vsync"
		}
		var err error
		if d, err = layers.Load(name); err != nil {
			return nil, err
		}
	}
	lc, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	var inc [4]byte
	rand.Read(inc[:])
	g := &Group{
		cfg: cfg, ln: lc.(*net.TCPListener), t0: time.Now(),
		me:         stack.Member{ID: cfg.Member + "." + hex.EncodeToString(inc[:]), Addr: lc.Addr().String()},
		in:         make(chan func(), 4096),
		outConns:   map[string]*out{},
		inConns:    map[string][]*transport.Conn{},
		sentMsg:    map[uint64]string{},
		waiters:    map[uint64]chan error{},
		left:       make(chan struct{}),
		firstOK:    make(chan struct{}),
		deliveries: newQueue[Delivery](),
		views:      newQueue[stack.View](),
		done:       make(chan struct{}),
	}
	if g.st, err = layers.Registry().Build(d, g.me); err != nil {
		lc.Close()
		return nil, err
	}
	g.clock = &eventlog.Clock{}
	if cfg.LogDir != "" || cfg.OnEvent != nil {
		var w io.Writer = io.Discard
		if cfg.LogDir != "" {
			if g.file, err = eventlog.Create(cfg.LogDir, cfg.Member); err != nil {
				lc.Close()
				return nil, err
			}
			w = g.file
		}
		g.log = eventlog.NewWriter(w, cfg.Member, uint64(time.Now().UnixNano()), g.clock, nil)
		g.write("start", map[string]any{"member": g.me.ID, "addr": g.me.Addr, "stack": d.Name, "group": cfg.Name})
	}
	g.wg.Add(2)
	go g.accept()
	go g.loop(cfg.Contacts)
	select {
	case <-g.firstOK:
		return g, nil
	case <-g.left:
		g.Close()
		return nil, g.leftErr
	case <-ctx.Done():
		g.Close()
		return nil, ctx.Err()
	}
}

// Me returns this member's identity.
func (g *Group) Me() stack.Member { return g.me }

// View returns the current view.
func (g *Group) View() stack.View {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.view
}

// Deliveries returns the stream of delivered messages, in delivery order.
// After Leave, what was not yet read stays readable, then the stream is
// closed; Close drops what was not read and closes it.
func (g *Group) Deliveries() <-chan Delivery { return g.deliveries.out }

// Views returns the stream of views this member installs, the first
// included; it ends like Deliveries.
func (g *Group) Views() <-chan stack.View { return g.views.out }

// Send multicasts data to the group and waits until every member of the
// view has it, or the message might be lost (ErrLost), or ctx ends.
func (g *Group) Send(ctx context.Context, data []byte) error {
	done, err := g.Go(data)
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Go multicasts data without waiting: the returned channel receives nil
// once every member of the view has it, or ErrLost or ErrClosed.
func (g *Group) Go(data []byte) (<-chan error, error) {
	if len(data) > g.cfg.MaxMessage {
		return nil, fmt.Errorf("group: message of %d bytes over the limit of %d", len(data), g.cfg.MaxMessage)
	}
	ch := make(chan error, 1)
	g.mu.Lock()
	g.token++
	tok := g.token
	g.waiters[tok] = ch
	g.mu.Unlock()
	data = append([]byte(nil), data...)
	if !g.post(func() {
		if g.cfg.LogDeliveries {
			g.sentMsg[tok] = string(data)
			g.logEv("send", "msg", string(data))
		}
		g.step(stack.Send{Msg: stack.Msg{Data: data}, Token: tok})
	}) {
		g.mu.Lock()
		delete(g.waiters, tok)
		g.mu.Unlock()
		return nil, ErrClosed
	}
	return ch, nil
}

// Leave leaves the group (the others install a view without this member)
// and stops the member. If ctx ends first, it stops without leaving. Call
// Close afterwards to release what the application did not read.
func (g *Group) Leave(ctx context.Context) error {
	g.post(func() { g.step(stack.Leave{}) })
	var err error
	select {
	case <-g.left:
	case <-ctx.Done():
		err = ctx.Err()
	}
	g.stop()
	return err
}

// Close stops the member at once, without leaving: the others see it
// fail. Deliveries and views not yet read are dropped.
func (g *Group) Close() error {
	g.stop()
	g.deliveries.discard()
	g.views.discard()
	return nil
}

func (g *Group) stop() {
	g.closeOnce.Do(func() {
		close(g.done)
		g.ln.Close()
	})
	g.wg.Wait()
}

func (g *Group) post(f func()) bool {
	select {
	case g.in <- f:
		return true
	case <-g.done:
		return false
	}
}

func (g *Group) now() time.Duration { return time.Since(g.t0) }

func (g *Group) loop(contacts []string) {
	defer g.wg.Done()
	defer g.shutdown()
	g.step(stack.Start{})
	g.step(stack.Join{Contacts: contacts})
	timer := time.NewTimer(time.Hour)
	for {
		d := g.st.Deadline()
		if d == stack.Never {
			d = g.now() + time.Hour
		}
		timer.Reset(max(d-g.now(), 0))
		select {
		case f := <-g.in:
			f()
			// Drain what is queued before ending the batch.
			for n := 0; n < 256; n++ {
				select {
				case f := <-g.in:
					f()
					continue
				default:
				}
				break
			}
		case <-timer.C:
			g.step(stack.Tick{})
		case <-g.done:
			return
		}
		g.effects()
	}
}

func (g *Group) step(in stack.Event) {
	g.st.Step(g.now(), in)
}

func (g *Group) effects() {
	for _, e := range g.st.Ready() {
		switch e := e.(type) {
		case stack.Out:
			g.send(e)
		case stack.Close:
			if o := g.outConns[e.ID]; o != nil {
				if o.conn != nil {
					o.conn.Close()
				}
				delete(g.outConns, e.ID)
			}
			for _, c := range g.inConns[e.ID] {
				c.Close()
			}
			delete(g.inConns, e.ID)
		case stack.Deliver:
			if g.cfg.LogDeliveries {
				g.logEv("deliver", "view", e.View.String(), "from", e.From, "seq", e.Seq, "order", e.Order, "msg", string(e.Msg.Data))
			}
			g.deliveries.push(Delivery{View: e.View, From: e.From, Seq: e.Seq, Order: e.Order, Data: e.Msg.Data})
		case stack.Install:
			g.mu.Lock()
			g.view = e.View
			g.mu.Unlock()
			g.logEv("view", "view", e.View.ID.String(), "prev", e.Prev.String(), "members", e.View.IDs(), "flushed", e.Contribs != nil)
			g.views.push(e.View)
			if !g.firstSet {
				g.firstSet = true
				close(g.firstOK)
			}
		case stack.Acked:
			g.mu.Lock()
			ch := g.waiters[e.Token]
			delete(g.waiters, e.Token)
			g.mu.Unlock()
			if ch != nil {
				if e.Lost {
					ch <- ErrLost
				} else {
					ch <- nil
				}
			}
			if g.cfg.LogDeliveries {
				g.logEv("acked", "msg", g.sentMsg[e.Token], "lost", e.Lost)
				delete(g.sentMsg, e.Token)
			}
		case stack.Left:
			g.logEv("left", "reason", e.Reason)
			g.leftErr = fmt.Errorf("group: left (%s)", e.Reason)
			close(g.left)
			g.closeOnce.Do(func() { close(g.done); g.ln.Close() })
		case stack.Log:
			if g.log != nil {
				e.Fields["member"] = g.me.ID
				g.write(e.Ev, e.Fields)
			}
		}
	}
}

func (g *Group) logEv(ev string, kv ...any) {
	if g.log == nil {
		return
	}
	f := map[string]any{"member": g.me.ID}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	g.write(ev, f)
}

// write logs an event and hands it to OnEvent.
func (g *Group) write(ev string, f map[string]any) {
	e := g.log.Log(ev, f)
	if g.cfg.OnEvent != nil {
		g.cfg.OnEvent(e)
	}
}

// shutdown ends every connection and stream.
func (g *Group) shutdown() {
	for _, o := range g.outConns {
		if o.conn != nil {
			o.conn.CloseAfterFlush()
		}
	}
	for _, cs := range g.inConns {
		for _, c := range cs {
			c.Close()
		}
	}
	g.mu.Lock()
	for tok, ch := range g.waiters {
		ch <- ErrClosed
		delete(g.waiters, tok)
	}
	g.mu.Unlock()
	g.deliveries.close()
	g.views.close()
	if g.log != nil {
		g.write("stop", map[string]any{"member": g.me.ID})
		if g.file != nil {
			g.file.Close()
		}
	}
}
