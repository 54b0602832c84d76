// Package group runs members of named groups: each member runs a protocol
// stack (see package stack; the shipped ones in package layers) on a host
// (package host), which drives the stack from one goroutine and routes the
// member's connections to it. Members reach each other with one connection
// per direction. Any number of members of different groups may share one
// host, and so one listening address.
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
	"net"
	"os"
	"slices"
	"sync"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/host"
	"github.com/conclave/conclave/layers"
	"github.com/conclave/conclave/stack"
	"github.com/conclave/conclave/transport"
	"github.com/conclave/conclave/wire"
)

// Defaults of Config.
const (
	DefaultStack      = "vsync"
	DefaultMaxMessage = 1 << 20
)

// Config configures a member.
type Config struct {
	// Name is the group's name; members of other groups are refused.
	Name string
	// Stack is a shipped stack's name ("vsync", "total") or the path of
	// an XML stack description. Default DefaultStack.
	Stack string
	// Description, if set, is used instead of Stack.
	Description *stack.Description
	// Host, if set, is the host the member runs on, shared with other
	// machines (members of other groups, a peer core). By default the
	// member makes its own host, listening on Listen, and closes it when
	// it stops.
	Host *host.Host
	// Listen is the address the member's own host accepts connections on
	// (when Host is not set). Default "127.0.0.1:0": any free port.
	Listen string
	// Network makes the member's own host's listener (when Host is not
	// set) and its outgoing connections (default TCP).
	Network transport.Network
	// Key is the cluster key of the member's own host (with Host set, the
	// host's key is used): every connection proves it, both ways, so only
	// holders of the key get in. Without a key the member listens on
	// loopback only, unless Insecure is set.
	Key transport.Key
	// Insecure lets a member without a key listen on any address.
	Insecure bool
	// TLS encrypts the member's own host's connections (it needs Key).
	TLS bool
	// Contacts are addresses of members to join through. With none (or
	// only this member's own address), this member founds the group.
	Contacts []string
	// Found lets the member found the group if none of its Contacts
	// answers (they are all starting, say). Without it, Join fails then,
	// rather than found a group of its own that nobody else is in.
	Found bool
	// Member names this member in views and logs; an incarnation suffix
	// makes its member id unique. Default "member-<process id>".
	Member string
	// LogDir, if set, receives the event log <LogDir>/<Member>.jsonl.
	LogDir string
	// LogDeliveries logs every send, acknowledgement and delivery (for
	// the checkers; heavy).
	LogDeliveries bool
	// InlineViews puts each view this member installs in Deliveries too,
	// in order with the messages (Delivery.Install): what was delivered
	// before it was delivered in the views before. Views carries them
	// all the same.
	InlineViews bool
	// OnEvent, if set, is called with every event the member logs, from
	// the member's goroutine: it must not block.
	OnEvent func(eventlog.Event)
	// Events, if set, receives every event the member logs as the JSON
	// lines of the event log, encoded once for the log and the stream, and
	// written by the stream's goroutine, so the member never waits on its
	// reader. Leave and Close flush it once the member has stopped; the
	// caller closes it and reports its Err.
	Events *eventlog.Stream
	// MaxMessage bounds a message's size (default DefaultMaxMessage).
	MaxMessage int
}

// Validate fills in defaults and reports the first problem with c.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("a group needs a name")
	}
	if c.Description == nil && c.Stack == "" {
		c.Stack = DefaultStack
	}
	if c.Host == nil {
		if c.Listen == "" {
			c.Listen = "127.0.0.1:0"
		}
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("listen address %q is not host:port", c.Listen)
		}
	}
	for _, a := range c.Contacts {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("contact %q is not host:port", a)
		}
	}
	if c.Member == "" {
		c.Member = fmt.Sprintf("member-%d", os.Getpid())
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.MaxMessage < 0 {
		return fmt.Errorf("the largest message (%d bytes) must be positive", c.MaxMessage)
	}
	return nil
}

// Delivery is a message delivered to the application.
type Delivery struct {
	View  stack.ViewID
	From  string // sender's member id
	Seq   uint64 // the sender's message number in the view
	Order uint64 // position in the view's total order (0 without one)
	Data  []byte
	// Install is set, and the fields above but View are not, for a view
	// installation, with Config.InlineViews.
	Install *stack.View
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
	cfg     Config
	me      stack.Member
	st      *stack.Stack
	loop    *host.Loop[stack.Event, stack.Event]
	host    *host.Host
	ownHost bool
	unroute func()
	file    *os.File

	// Owned by the loop goroutine.
	outConns map[string]*out // by member id, or "@addr" when the id is unknown
	inConns  map[string][]*transport.Conn
	sentMsg  map[uint64]string // token → message, when logging deliveries
	lastEnc  struct {
		msg stack.Msg
		b   []byte
	}
	firstSet bool

	mu      sync.Mutex
	view    stack.View
	flushed [flushedViews]stack.ViewID // the last views installed through a flush, a ring
	nflush  int
	waiters map[uint64]waiter
	token   uint64
	left    chan struct{}
	leftErr error
	firstOK chan struct{}

	ready      chan struct{} // closed once loop is set
	deliveries *queue[Delivery]
	views      *queue[stack.View]
	stopOnce   sync.Once
}

type out struct {
	to      stack.Member
	keys    []string // the names it serves in outConns, once connected
	conn    *transport.Conn
	pending []wire.GroupMsg // queued while connecting
	dialing bool
}

// Join starts a member and returns once it is in a view of the group (or
// ctx ends). It fails at once if the group runs another stack (the error
// names both), or if none of the contacts answers and cfg.Found is not
// set.
func Join(ctx context.Context, cfg Config) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("group: %w", err)
	}
	d := cfg.Description
	if d == nil {
		var err error
		if d, err = LoadStack(cfg.Stack); err != nil {
			return nil, err
		}
	}
	g := &Group{
		cfg: cfg, host: cfg.Host,
		outConns:   map[string]*out{},
		inConns:    map[string][]*transport.Conn{},
		sentMsg:    map[uint64]string{},
		waiters:    map[uint64]waiter{},
		left:       make(chan struct{}),
		firstOK:    make(chan struct{}),
		deliveries: newQueue[Delivery](),
		views:      newQueue[stack.View](),
		ready:      make(chan struct{}),
	}
	fail := func(err error) (*Group, error) {
		g.deliveries.close()
		g.views.close()
		if g.file != nil {
			g.file.Close()
		}
		if g.ownHost {
			g.host.Close()
		}
		return nil, err
	}
	if g.host == nil {
		h, err := host.New(host.Config{Listen: cfg.Listen, Network: cfg.Network, Key: cfg.Key, Insecure: cfg.Insecure,
			TLS: cfg.TLS, Refused: g.refused})
		if err != nil {
			return fail(err)
		}
		g.host, g.ownHost = h, true
	}
	var inc [4]byte
	rand.Read(inc[:])
	g.me = stack.Member{ID: cfg.Member + "." + hex.EncodeToString(inc[:]), Addr: g.host.Addr()}
	var err error
	if g.st, err = layers.Registry().Build(d, g.me); err != nil {
		return fail(err)
	}
	lc := host.LoopConfig[stack.Event, stack.Event]{Tick: stack.Tick{}, Apply: g.effect, OnStop: g.shutdown,
		Name: cfg.Member, Inc: uint64(incarnation()), Observe: cfg.OnEvent, Stream: cfg.Events}
	if cfg.LogDir != "" {
		if g.file, err = eventlog.Create(cfg.LogDir, cfg.Member); err != nil {
			return fail(err)
		}
		lc.LogTo = g.file
	}
	g.loop = host.NewLoop[stack.Event, stack.Event](g.st, lc)
	close(g.ready)
	if g.unroute, err = g.host.Handle(host.Route{Kind: wire.KindGroup, Scope: cfg.Name}, g.admit); err != nil {
		return fail(fmt.Errorf("group %q: this host already has a member of it", cfg.Name))
	}
	g.loop.Start(func() {
		g.logEv(eventlog.Start, eventlog.FieldAddr, g.me.Addr, eventlog.FieldStack, d.Name, eventlog.FieldGroup, cfg.Name)
		g.loop.Step(stack.Start{})
		g.loop.Step(stack.Join{Contacts: cfg.Contacts, JoinOnly: !cfg.Found})
	})
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

// LogErr returns the first error writing the member's event log: a log
// that proves correctness must not silently lose lines.
func (g *Group) LogErr() error { return g.loop.LogErr() }

// flushedViews is how many of the last views installed through a flush a
// member remembers.
const flushedViews = 64

// Flushed reports whether this member installed view id through a flush
// of the view it was in: it went on from that view with the members that
// contributed to the flush, having delivered what they held of it (see
// docs/groups.md). It remembers the last 64 such views; of older ones, and
// of views installed otherwise (the first, or one it went on to alone),
// it says false.
func (g *Group) Flushed(id stack.ViewID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Contains(g.flushed[:], id) && id != (stack.ViewID{})
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
	_, err := g.SendSeq(ctx, data)
	return err
}

// Sent names a message this member sent as the members deliver it: its
// Delivery has this View and Seq, and From is Me().ID.
type Sent struct {
	View stack.ViewID
	Seq  uint64
}

// SendSeq is Send that also names the message: once it returns nil or
// ErrLost, Sent is the View and Seq its deliveries carry. It is zero when
// the message was not sent (ErrClosed) or ctx ended first.
func (g *Group) SendSeq(ctx context.Context, data []byte) (Sent, error) {
	w, err := g.send1(data, new(Sent))
	if err != nil {
		return Sent{}, err
	}
	select {
	case err := <-w.done:
		return *w.sent, err
	case <-ctx.Done():
		return Sent{}, ctx.Err()
	}
}

// waiter is a Send waiting for its message to be acknowledged; *sent, if
// sent is not nil, is set before done receives.
type waiter struct {
	done chan error
	sent *Sent
}

// Go multicasts data without waiting: the returned channel receives nil
// once every member of the view has it, or ErrLost or ErrClosed.
func (g *Group) Go(data []byte) (<-chan error, error) {
	w, err := g.send1(data, nil)
	if err != nil {
		return nil, err
	}
	return w.done, nil
}

// send1 hands data to the stack and returns what waits for its
// acknowledgement.
func (g *Group) send1(data []byte, sent *Sent) (waiter, error) {
	if len(data) > g.cfg.MaxMessage {
		return waiter{}, fmt.Errorf("group: message of %d bytes over the limit of %d", len(data), g.cfg.MaxMessage)
	}
	w := waiter{done: make(chan error, 1), sent: sent}
	g.mu.Lock()
	g.token++
	tok := g.token
	g.waiters[tok] = w
	g.mu.Unlock()
	data = append([]byte(nil), data...)
	if !g.loop.Do(func() {
		if g.cfg.LogDeliveries {
			g.sentMsg[tok] = string(data)
			g.logEv(eventlog.Send, eventlog.FieldMsg, string(data))
		}
		g.loop.Step(stack.Send{Msg: stack.Msg{Data: data}, Token: tok})
	}) {
		g.mu.Lock()
		delete(g.waiters, tok)
		g.mu.Unlock()
		return waiter{}, ErrClosed
	}
	return w, nil
}

// Leave leaves the group (the others install a view without this member)
// and stops the member. If ctx ends first, it stops without leaving. Call
// Close afterwards to release what the application did not read.
func (g *Group) Leave(ctx context.Context) error {
	g.loop.Do(func() { g.loop.Step(stack.Leave{}) })
	var err error
	select {
	case <-g.left:
	case <-ctx.Done():
		err = ctx.Err()
	}
	g.stop()
	return err
}

// AddContacts gives the member more addresses where members of its group
// may be (up to 64 in all): besides those it joined through, it looks
// there for another group of the same name to merge with, should the
// group have split (its members founded two, say, each unaware of the
// other).
func (g *Group) AddContacts(addrs []string) {
	addrs = slices.Clone(addrs)
	g.loop.Do(func() { g.loop.Step(stack.Contacts{Addrs: addrs}) })
}

// Close stops the member at once, without leaving: the others see it
// fail. Deliveries and views not yet read are dropped.
func (g *Group) Close() error {
	g.stop()
	g.deliveries.discard()
	g.views.discard()
	return nil
}

// refused logs a connection the member's own host refused. Nothing it
// claimed is proved, so nothing of it is used.
func (g *Group) refused(addr string, _ *wire.Hello, reason string) {
	select {
	case <-g.ready:
		g.loop.Do(func() { g.logEv(eventlog.ConnRefused, eventlog.FieldAddr, addr, eventlog.FieldReason, reason) })
	default:
	}
}

// stop ends the loop, which closes the connections, releases the member's
// route and own host, and waits for its events to be written.
func (g *Group) stop() {
	g.stopOnce.Do(func() {
		g.unroute()
		g.loop.Stop()
		<-g.loop.Done()
		if g.ownHost {
			g.host.Close()
		}
		if g.cfg.Events != nil {
			g.cfg.Events.Flush()
		}
	})
}

func (g *Group) effect(e stack.Event) {
	switch e := e.(type) {
	case stack.Out:
		g.send(e)
	case stack.Multicast:
		for _, to := range e.To {
			g.send(stack.Out{To: to, Msg: e.Msg})
		}
	case stack.Close:
		g.forget(e.ID)
		if e.KeepIn {
			break
		}
		for _, c := range g.inConns[e.ID] {
			c.Close()
		}
		delete(g.inConns, e.ID)
	case stack.Deliver:
		if g.cfg.LogDeliveries {
			g.logEv(eventlog.Deliver, eventlog.FieldView, e.View.String(), eventlog.FieldFrom, e.From, eventlog.FieldSeq, e.Seq, eventlog.FieldOrder, e.Order, eventlog.FieldMsg, string(e.Msg.Data))
		}
		g.deliveries.push(Delivery{View: e.View, From: e.From, Seq: e.Seq, Order: e.Order, Data: e.Msg.Data})
	case stack.Install:
		g.mu.Lock()
		g.view = e.View
		if e.Contribs != nil {
			g.flushed[g.nflush%flushedViews] = e.View.ID
			g.nflush++
		}
		g.mu.Unlock()
		g.logEv(eventlog.View, eventlog.FieldView, e.View.ID.String(), eventlog.FieldPrev, e.Prev.String(), eventlog.FieldMembers, e.View.IDs(), eventlog.FieldFlushed, e.Contribs != nil)
		g.views.push(e.View)
		if g.cfg.InlineViews {
			v := e.View
			g.deliveries.push(Delivery{View: v.ID, Install: &v})
		}
		if !g.firstSet {
			g.firstSet = true
			close(g.firstOK)
		}
	case stack.Acked:
		g.mu.Lock()
		w, ok := g.waiters[e.Token]
		delete(g.waiters, e.Token)
		g.mu.Unlock()
		if ok {
			if w.sent != nil {
				*w.sent = Sent{View: e.View, Seq: e.Seq}
			}
			if e.Lost {
				w.done <- ErrLost
			} else {
				w.done <- nil
			}
		}
		if g.cfg.LogDeliveries {
			g.logEv(eventlog.Acked, eventlog.FieldMsg, g.sentMsg[e.Token], eventlog.FieldLost, e.Lost)
			delete(g.sentMsg, e.Token)
		}
	case stack.Left:
		g.logEv(eventlog.Left, eventlog.FieldReason, e.Reason)
		g.leftErr = fmt.Errorf("group: left (%s)", e.Reason)
		if !g.firstSet {
			g.leftErr = fmt.Errorf("group %q: %s", g.cfg.Name, e.Reason)
		}
		close(g.left)
		g.unroute()
		g.loop.Stop()
	case stack.Log:
		if g.loop.Logging() {
			e.Fields[eventlog.FieldMember] = g.me.ID
			g.loop.Log(e.Ev, e.Fields)
		}
	}
}

func (g *Group) logEv(ev string, kv ...any) {
	if !g.loop.Logging() {
		return
	}
	f := map[string]any{eventlog.FieldMember: g.me.ID}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	g.loop.Log(ev, f)
}

// shutdown ends every connection and stream; it runs on the loop
// goroutine as the loop ends.
func (g *Group) shutdown() {
	for k, o := range g.outConns {
		if o.conn != nil && o.keys[0] == k {
			o.conn.CloseAfterFlush()
		}
	}
	for _, cs := range g.inConns {
		for _, c := range cs {
			c.Close()
		}
	}
	g.mu.Lock()
	for tok, w := range g.waiters {
		w.done <- ErrClosed
		delete(g.waiters, tok)
	}
	g.mu.Unlock()
	g.deliveries.close()
	g.views.close()
	g.logEv(eventlog.Stop)
	if g.file != nil {
		g.file.Close()
	}
}
