// Package pubsub publishes and subscribes to topics over groups. A
// replicated directory (packages dirnode, dirclient) maps each topic to a
// QoS, stored as the XML of the protocol stack that provides it, and to
// one of at most N groups; topics of one QoS may share a group. A Client
// runs every group it uses on one host, so on one listening address:
//
//	c, err := pubsub.Connect(ctx, pubsub.Config{Directory: addrs, Key: key})
//	...
//	defer c.Close()
//	p, err := c.Announce(ctx, "prices", "total")
//	err = p.Publish(ctx, []byte("42")) // returns once every member has it
//
//	s, err := c.Subscribe(ctx, "prices")
//	for e := range s.Events() {
//		fmt.Printf("%s> %s\n", e.Topic, e.Data)
//	}
//
// A group shared by several topics carries all their events to all its
// members; a client drops the events of topics it does not subscribe to
// before the application sees them, and counts them (Stats). Events of a
// topic are delivered with the guarantees of the topic's QoS: with total,
// every subscriber delivers them in the same order; with vsync, in
// view-synchronous order.
package pubsub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conclave/conclave/dirclient"
	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/group"
	"github.com/conclave/conclave/host"
	"github.com/conclave/conclave/layers"
	"github.com/conclave/conclave/pubsub/envelope"
	"github.com/conclave/conclave/stack"
	"github.com/conclave/conclave/transport"
)

// DefaultBuffer is the default room of a subscription's channel.
const DefaultBuffer = 1024

// Config configures a Client.
type Config struct {
	// Directory holds the addresses of the directory's replicas, in
	// replica id order.
	Directory []string
	// Cluster names the directory (dirclient.DefaultCluster if empty).
	Cluster string
	// Key is the cluster key, for the directory and the groups alike.
	Key transport.Key
	// Network makes connections and the listener (TCP if nil).
	Network transport.Network
	// Listen is the address the client's host accepts the other
	// members' connections on (default "127.0.0.1:0").
	Listen string
	// Insecure lets a client without a key listen on any address; TLS
	// encrypts connections (it needs Key).
	Insecure, TLS bool
	// Name names the client to the directory and its members in views
	// (random if empty).
	Name string
	// Buffer is the room of each subscription's channel (DefaultBuffer).
	Buffer int
	// LogTo, if set, receives the client's event log (docs/events.md,
	// "Publish/subscribe client events"): what it announces and subscribes
	// to, the views its members install, what it publishes, every event
	// it hands to the application, its counts per topic (ps_stats) and
	// its operations on the directory (dir_call, dir_return);
	// check.PubSub and check.DirLinearizable check it.
	LogTo io.Writer
	// Events, if set, receives every line of the event log as well (or
	// alone, without LogTo), written from the stream's own goroutine.
	Events *eventlog.Stream
	// OnEvent, if set, sees every event of the client's log (with or
	// without LogTo and Events), and the events its members log (package
	// group: suspicions, flushes, refused connections...) but their views,
	// which the client logs as ps_view. It is called from the goroutine
	// that logged the event, before the event is written (so a reader of
	// the log or stream knows OnEvent saw what it reads), and must not
	// block: it is how a runtime feeds its metrics and dashboard.
	OnEvent func(eventlog.Event)
	// OnFiltered, if set, is called with the topic of every event the
	// client drops because it does not subscribe to it (what Stats counts
	// as Filtered; no event is logged for them), from the dispatching
	// goroutine: it must not block.
	OnFiltered func(topic string)
	// ReportEvery is how often the client reports its counts (Stats) to
	// the directory (DefaultReportEvery if 0); it also reports when it
	// closes. Negative: never. A client with a log logs the counts that
	// changed as often, or every StatsEvery if that is sooner, and all of
	// them when it closes (ps_stats).
	ReportEvery time.Duration
	// MovePoll is how often the client asks the directory whether one of
	// its topics moved to another group (DefaultMovePoll if 0; negative:
	// never, and the client's topics stay where they were).
	MovePoll time.Duration
	// MoveWait bounds how long a publisher of a moving topic waits for
	// its subscribers to be ready in the new group, and a new subscriber
	// for the publishers to switch (DefaultMoveWait if 0).
	MoveWait time.Duration
}

// Client publishes and subscribes to topics. It is safe for concurrent
// use.
type Client struct {
	cfg  Config
	host *host.Host
	dir  *dirclient.Client

	joinMu  sync.Mutex // serialises joins and leaves of groups
	mu      sync.Mutex
	groups  map[string]*member  // by group name
	seen    map[string][]string // addresses of members each group had, as this client learnt them; under mu
	statsMu sync.Mutex          // taken under a member's mu
	stats   map[string]*Stats   // by topic; under statsMu
	pubs    map[*Publisher]struct{}
	subs    map[*Subscription]struct{}
	rep     reporter
	closed  bool

	kick      chan struct{}   // wakes watchMoves
	moveRetry atomic.Bool     // a move failed: look the topics up again
	ctx       context.Context // ends with Close, and so do moves
	stop      context.CancelFunc
	watched   chan struct{} // closed when watchMoves ended

	fault *fault // faults injected by tests; nil otherwise

	logMu sync.Mutex
	log   *eventlog.Writer // nil without Config.LogTo or Events
	inc   uint64           // the incarnation in the events
	lc    eventlog.Clock   // stamps the events
}

// logs reports whether the client's events go anywhere: a log, a stream
// or Config.OnEvent.
func (c *Client) logs() bool { return c.log != nil || c.cfg.OnEvent != nil }

// logEv logs an event, if the client keeps a log.
func (c *Client) logEv(ev string, kv ...any) {
	if !c.logs() {
		return
	}
	f := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	c.logMu.Lock()
	defer c.logMu.Unlock()
	now := time.Now()
	e := eventlog.Event{TS: now, Node: c.cfg.Name, Inc: c.inc, LC: c.lc.Tick(now), Ev: ev, Fields: f}
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(e)
	}
	if c.log != nil {
		c.log.Write(e)
	}
}

// Connect starts a client: its host listens at once; the directory is
// reached on first use.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	if len(cfg.Directory) == 0 {
		return nil, errors.New("pubsub: no directory replicas given")
	}
	if cfg.Name == "" {
		var b [4]byte
		rand.Read(b[:])
		cfg.Name = "client-" + hex.EncodeToString(b[:])
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Network == nil {
		cfg.Network = transport.TCP{}
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.MovePoll == 0 {
		cfg.MovePoll = DefaultMovePoll
	}
	if cfg.MoveWait <= 0 {
		cfg.MoveWait = DefaultMoveWait
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := host.New(host.Config{Listen: cfg.Listen, Network: cfg.Network, Key: cfg.Key, Insecure: cfg.Insecure, TLS: cfg.TLS})
	if err != nil {
		return nil, fmt.Errorf("pubsub: %w", err)
	}
	var c *Client                         // set before the directory client is first used
	var logDir func(ev string, kv ...any) // the directory client's operations, into the log
	if cfg.LogTo != nil || cfg.Events != nil {
		logDir = func(ev string, kv ...any) { c.logEv(ev, kv...) }
	}
	dc, err := dirclient.New(dirclient.Config{Replicas: cfg.Directory, Cluster: cfg.Cluster, Name: cfg.Name,
		Key: cfg.Key, Network: cfg.Network, Log: logDir, OnLeader: func(prev, leader int) { c.dirLeader(prev, leader) }})
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("pubsub: %w", err)
	}
	c = &Client{cfg: cfg, host: h, dir: dc, inc: uint64(time.Now().UnixNano()), groups: map[string]*member{}, stats: map[string]*Stats{},
		pubs: map[*Publisher]struct{}{}, subs: map[*Subscription]struct{}{},
		kick: make(chan struct{}, 1), watched: make(chan struct{})}
	c.ctx, c.stop = context.WithCancel(context.Background())
	if cfg.LogTo != nil || cfg.Events != nil {
		c.log = eventlog.NewWriter(cfg.LogTo, cfg.Name, c.inc, &c.lc, nil)
		if cfg.Events != nil {
			c.log.Tee(cfg.Events)
		}
	}
	c.startReports()
	if cfg.MovePoll > 0 {
		go c.watchMoves()
	} else {
		close(c.watched)
	}
	return c, nil
}

// tracked returns the client's publishers and subscriptions.
func (c *Client) tracked() ([]*Publisher, []*Subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pubs := make([]*Publisher, 0, len(c.pubs))
	for p := range c.pubs {
		pubs = append(pubs, p)
	}
	subs := make([]*Subscription, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	return pubs, subs
}

// Addr is the address the client's groups are reached at.
func (c *Client) Addr() string { return c.host.Addr() }

// Name is the client's name.
func (c *Client) Name() string { return c.cfg.Name }

// Stats counts the events of one topic that reached this client.
type Stats struct {
	// Delivered counts the events handed to a subscription (once per
	// event, however many subscriptions of the topic there are).
	Delivered uint64
	// Filtered counts the events dropped because this client does not
	// subscribe to their topic: the waste of sharing a group (a
	// publisher's own events count here unless it subscribes too).
	Filtered uint64
	// Published counts the events this client published for which
	// Publish returned nil (every member of the view had them).
	Published uint64
}

// Stats returns the counts of every topic whose events reached this
// client.
func (c *Client) Stats() map[string]Stats {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	out := make(map[string]Stats, len(c.stats))
	for t, s := range c.stats {
		out[t] = *s
	}
	return out
}

// Groups returns the names of the groups this client is a member of.
func (c *Client) Groups() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for name := range c.groups {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Close leaves every group, reports its counts to the directory, closes
// the host and the directory client.
// Subscriptions' channels are closed; pending Publish calls fail.
func (c *Client) Close() error {
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.stop()
	ms := make([]*member, 0, len(c.groups))
	for _, m := range c.groups {
		ms = append(ms, m)
	}
	c.groups = map[string]*member{}
	c.mu.Unlock()
	<-c.watched
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, m := range ms {
		m.leave(ctx)
	}
	c.stopReports(ctx)
	c.dir.Close()
	return c.host.Close()
}

// ErrClosed is returned by the methods of a closed client.
var ErrClosed = errors.New("pubsub: client closed")

// ErrSlowConsumer ends a subscription whose application fell a whole
// buffer behind.
var ErrSlowConsumer = errors.New("pubsub: subscriber too slow: its buffer of events filled up")

// join returns the member of the group of r, joining it if this client is
// not yet a member, and takes a reference to it. A new member adds its
// address to the group's contacts in the directory. A subscription s, if
// not nil, is registered before the member delivers anything, so that it
// misses none of the events its member delivers.
func (c *Client) join(ctx context.Context, r directory.Result, s *Subscription) (*member, error) {
	return c.joinAs(ctx, r, s, false)
}

// joinAs is join; with next, s is registered as moving to the member's
// group: it keeps the member's events of its topic aside until it
// switches.
func (c *Client) joinAs(ctx context.Context, r directory.Result, s *Subscription, next bool) (*member, error) {
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if m := c.groups[r.Group]; m != nil {
		if m.hash != r.Hash {
			c.mu.Unlock()
			return nil, fmt.Errorf("pubsub: group %s runs QoS %s here, but the directory says %s", r.Group, m.qos, r.QoS)
		}
		c.noteLocked(r.Group, r.Contacts)
		if s != nil {
			if err := m.add(s, next); err != nil {
				c.mu.Unlock()
				return nil, err
			}
		}
		m.refs++
		c.mu.Unlock()
		// The directory's contacts of the group: should it have split
		// (members that founded it twice, unaware of each other), the
		// member finds the other part there and they merge. Given
		// without c.mu: it waits for room in the member's loop.
		m.g.AddContacts(r.Contacts)
		return m, nil
	}
	c.mu.Unlock()
	d, err := layers.Registry().Parse(r.QoS+".xml", r.XML)
	if err != nil {
		return nil, fmt.Errorf("pubsub: the directory's stack of QoS %s: %w", r.QoS, err)
	}
	// This member's address goes into the group's contacts first, and the
	// directory answers with those that were there before: of members
	// joining at once, exactly one hears of nobody and founds the group;
	// the others hear of it (or of each other, and the membership layer
	// lets the lowest address found), so they make one group, not two.
	before, err := c.dir.AddContact(ctx, r.Group, c.host.Addr())
	if err != nil {
		return nil, fmt.Errorf("pubsub: advertising this member of group %s: %w", r.Group, err)
	}
	c.note(r.Group, before)
	c.note(r.Group, r.Contacts)
	var contacts []string
	for _, a := range before {
		if a != c.host.Addr() {
			contacts = append(contacts, a)
		}
	}
	// Found: with no contacts, or none answering (all gone), this client
	// founds the group.
	g, err := group.Join(ctx, group.Config{Name: r.Group, Description: d, Host: c.host, Contacts: contacts, Found: true,
		Member: c.cfg.Name, InlineViews: true, OnEvent: c.memberEvent()})
	if err != nil {
		return nil, fmt.Errorf("pubsub: joining group %s: %w", r.Group, err)
	}
	// Whatever this client learnt of the group's members before (the
	// directory's list may have lost them to another part's): if this
	// member founded a part of its own, it finds the others there.
	g.AddContacts(c.seenOf(r.Group))
	m := &member{c: c, name: r.Group, qos: r.QoS, hash: r.Hash, g: g, refs: 1,
		subs: map[string][]*Subscription{}, pubs: map[string][]*Publisher{}, done: make(chan struct{}), viewed: make(chan struct{})}
	if s != nil {
		m.add(s, next)
	}
	c.mu.Lock()
	c.groups[r.Group] = m
	c.mu.Unlock()
	go m.dispatch()
	go m.watchViews()
	return m, nil
}

// release drops a reference to m, leaving its group with the last.
func (c *Client) release(m *member) {
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	c.mu.Lock()
	m.refs--
	last := m.refs == 0 && c.groups[m.name] == m
	if last {
		delete(c.groups, m.name)
	}
	c.mu.Unlock()
	if last {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.leave(ctx)
	}
}

// count adds to the stats of topic.
func (c *Client) count(topic string, delivered bool) {
	c.statsMu.Lock()
	s := c.stats[topic]
	if s == nil {
		s = &Stats{}
		c.stats[topic] = s
	}
	if delivered {
		s.Delivered++
	} else {
		s.Filtered++
	}
	c.statsMu.Unlock()
	if !delivered && c.cfg.OnFiltered != nil {
		c.cfg.OnFiltered(topic)
	}
}

// member is this client's member of one group, shared by every topic of
// the client in that group.
type member struct {
	c         *Client
	name      string
	qos, hash string
	g         *group.Group
	refs      int // publishers and subscriptions using it; under c.mu
	ct        contactKeeper

	mu      sync.Mutex
	subs    map[string][]*Subscription // by topic: delivering, or moving here
	pubs    map[string][]*Publisher    // by topic
	view    stack.View                 // the last view dispatch met
	viewSet bool                       // view is set
	last    stack.ViewID               // view of the last delivery dispatched
	ended   error                      // why the member stopped, once it has
	done    chan struct{}              // closed once dispatch ends
	viewed  chan struct{}              // closed and replaced at each view
}

// dispatch hands each delivery to the subscriptions of its topic, and
// counts the others as filtered; it passes markers of moves on, and
// follows the views in order with the deliveries. It never blocks on an
// application: a subscription whose buffer is full is ended
// (ErrSlowConsumer).
func (m *member) dispatch() {
	defer close(m.done)
	for d := range m.deliveries() {
		if d.Install != nil {
			m.mu.Lock()
			m.view, m.viewSet = *d.Install, true
			for _, ss := range m.subs {
				for _, s := range ss {
					m.check(s)
				}
			}
			m.mu.Unlock()
			continue
		}
		topic, moves, data, err := envelope.Decode(d.Data)
		if err != nil {
			if mk, ok := envelope.DecodeMarker(d.Data); ok {
				m.mu.Lock()
				m.onMarker(d.From, mk)
				m.mu.Unlock()
			}
			continue // not ours: a foreign or newer sender; nothing to deliver
		}
		m.mu.Lock()
		m.last = d.View
		dv := delivery{e: Event{Topic: topic, From: d.From, Data: data}, m: m, view: d.View, seq: d.Seq, order: d.Order, moves: moves}
		subs := slices.Clone(m.subs[m.c.route(topic)])
		// Counted before it is handed over, so that Stats has counted
		// every event the application has read.
		m.c.count(topic, len(subs) > 0)
		handed := false
		for _, s := range subs {
			switch s.take(m, dv) {
			case handed1:
				handed = true
			case gone:
				m.removeLocked(s, s.Err())
			}
		}
		if handed {
			m.c.logDeliver(dv)
		}
		m.mu.Unlock()
	}
	m.mu.Lock()
	m.ended = fmt.Errorf("pubsub: group %s ended", m.name)
	for _, ss := range m.subs {
		for _, s := range ss {
			s.end(m, m.ended)
			m.logEnded(s, m.ended)
		}
	}
	m.subs = map[string][]*Subscription{}
	m.mu.Unlock()
}

// watchViews wakes whoever waits for a view, and has the contacts follow
// the views.
func (m *member) watchViews() {
	for v := range m.g.Views() {
		m.logView(v)
		m.followView(v)
		addrs := make([]string, 0, len(v.Members))
		for _, mb := range v.Members {
			addrs = append(addrs, mb.Addr)
		}
		m.c.note(m.name, addrs)
		m.mu.Lock()
		close(m.viewed)
		m.viewed = make(chan struct{})
		m.mu.Unlock()
	}
}

// waitMembers waits until the view has n members or more.
func (m *member) waitMembers(ctx context.Context, n int) error {
	for {
		m.mu.Lock()
		ch := m.viewed
		m.mu.Unlock()
		if len(m.g.View().Members) >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// add registers s for its topic: delivering, or, with next, moving here.
// Either way s keeps the member's events aside at first (Subscribe has not
// returned, or s has not switched): the registration is logged
// (ps_subscribe) when s starts handing them over (showLocked).
func (m *member) add(s *Subscription, next bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ended != nil {
		return m.ended
	}
	s.mu.Lock()
	if next {
		s.next = m
	} else {
		s.m = m
	}
	if s.since == nil {
		s.since = map[*member]stack.ViewID{}
	}
	s.since[m] = m.last
	s.mu.Unlock()
	if !slices.Contains(m.subs[s.topic], s) { // not registered still, by a move it dropped
		m.subs[s.topic] = append(m.subs[s.topic], s)
	}
	return nil
}

// drop removes the registration of s with next, a group it no longer
// moves to (cameBackLocked), unless a later move registered it there
// again, and releases its reference.
func (s *Subscription) drop(next *member) {
	s.moveMu.Lock()
	next.mu.Lock()
	s.mu.Lock()
	again := s.m == next || s.next == next
	s.mu.Unlock()
	if !again {
		next.removeLocked(s, nil)
	}
	next.mu.Unlock()
	s.moveMu.Unlock()
	s.c.release(next)
}

// removeLocked forgets s (m.mu held), which ended with err (nil: it
// was unsubscribed, or moved away).
func (m *member) removeLocked(s *Subscription, err error) {
	ss := m.subs[s.topic]
	i := slices.Index(ss, s)
	if i < 0 {
		return
	}
	m.subs[s.topic] = slices.Delete(ss, i, i+1)
	if len(m.subs[s.topic]) == 0 {
		delete(m.subs, s.topic)
	}
	m.logEnded(s, err)
}

func (m *member) remove(s *Subscription) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removeLocked(s, nil)
}

func (m *member) addPub(p *Publisher) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pubs[p.topic] = append(m.pubs[p.topic], p)
}

func (m *member) removePub(p *Publisher) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.pubs[p.topic]
	if i := slices.Index(ps, p); i >= 0 {
		m.pubs[p.topic] = slices.Delete(ps, i, i+1)
	}
	if len(m.pubs[p.topic]) == 0 {
		delete(m.pubs, p.topic)
	}
}

// leave leaves the group and waits for the dispatcher to hand over what
// the member delivered and end.
func (m *member) leave(ctx context.Context) {
	m.stopContacts(ctx)
	err := m.g.Leave(ctx)
	<-m.done
	m.logLeft(err)
	m.g.Close()
	m.removeContact(ctx)
}

// Publisher publishes the events of one topic.
type Publisher struct {
	c     *Client
	topic string
	qos   string

	pubMu sync.RWMutex // Publish holds it to read; a move, to switch groups
	m     *member      // the group published in
	moves uint64       // its move number

	moveMu sync.Mutex // one move at a time

	readyMu sync.Mutex
	ready   map[string]uint64 // client name → the last move it is ready for
	readyCh chan struct{}     // closed and replaced when ready changes
	toGroup string            // the group a move under way goes to
	toMoves uint64            // that move's number

	closeMu sync.Mutex
	closed  bool
}

// Announce declares this client a publisher of topic with a QoS: a
// shipped stack's name ("vsync", "total") or the path of an XML stack
// description, which is read and sent to the directory. The client adds
// its address to the group's contacts in the directory, which answers with
// those that were there before, and joins through them, or founds the
// group if there were none: of clients joining at once, exactly one
// founds it. The coordinator of each view then sets the contacts to the
// view's members, and a member leaving removes its address; a member that
// finds none of its contacts answering founds the group anew.
func (c *Client) Announce(ctx context.Context, topic, qos string) (*Publisher, error) {
	var xml []byte
	if layers.IsFile(qos) {
		d, err := group.LoadStack(qos)
		if err != nil {
			return nil, fmt.Errorf("pubsub: %w", err)
		}
		xml = []byte(d.Canonical())
	}
	r, err := c.dir.Announce(ctx, topic, qos, xml)
	if err != nil {
		return nil, fmt.Errorf("pubsub: announcing %q: %w", topic, err)
	}
	m, err := c.join(ctx, r, nil)
	if err != nil {
		return nil, err
	}
	p := &Publisher{c: c, m: m, topic: topic, qos: r.QoS, moves: r.Moves, readyCh: make(chan struct{})}
	m.addPub(p)
	c.mu.Lock()
	c.pubs[p] = struct{}{}
	c.mu.Unlock()
	c.moveRetry.Store(true) // the watcher's next poll looks its topic up
	c.logEv(eventlog.PSAnnounce, eventlog.FieldTopic, topic, eventlog.FieldQoS, r.QoS, eventlog.FieldGroup, r.Group)
	// The topic may have moved while this client joined: then it switches
	// before it publishes.
	if f, err := c.dir.Lookup(ctx, topic); err == nil && f.Found && f.Topic.Moves > r.Moves {
		p.moveTo(f)
	}
	return p, nil
}

// Topic is the publisher's topic.
func (p *Publisher) Topic() string { return p.topic }

// Group is the name of the group the topic's events go to.
func (p *Publisher) Group() string {
	p.pubMu.RLock()
	defer p.pubMu.RUnlock()
	return p.m.name
}

// QoS is the name of the topic's QoS.
func (p *Publisher) QoS() string { return p.qos }

// View is the current view of the publisher's group.
func (p *Publisher) View() stack.View {
	p.pubMu.RLock()
	defer p.pubMu.RUnlock()
	return p.m.g.View()
}

// WaitMembers waits until the view of the publisher's group has at least
// n members (this one included), or ctx ends: events published from then
// on reach every one of them.
func (p *Publisher) WaitMembers(ctx context.Context, n int) error {
	p.pubMu.RLock()
	m := p.m
	p.pubMu.RUnlock()
	return m.waitMembers(ctx, n)
}

// Publish multicasts data as an event of the topic in its group and
// returns once every member of the view has it (as group.Send). On
// group.ErrLost the event was sent but this member left the view before
// knowing every member had it: some subscribers may have it, others not;
// on a ctx error it may still reach every member; on group.ErrClosed it
// was not sent.
func (p *Publisher) Publish(ctx context.Context, data []byte) error {
	p.pubMu.RLock()
	defer p.pubMu.RUnlock()
	var err error
	if p.c.logs() {
		err = p.publishLogged(ctx, data)
	} else {
		err = p.m.g.Send(ctx, envelope.Encode(p.topic, p.moves, data))
	}
	if err == nil {
		p.c.published(p.topic)
	}
	return err
}

func (p *Publisher) isClosed() bool {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	return p.closed
}

// Close withdraws the publisher from the directory and leaves the group
// unless another topic of this client uses it. Its subscribers learn, by
// a last marker in the group, that it publishes no more there.
func (p *Publisher) Close(ctx context.Context) error {
	p.closeMu.Lock()
	if p.closed {
		p.closeMu.Unlock()
		return nil
	}
	p.closed = true
	p.closeMu.Unlock()
	p.moveMu.Lock()
	defer p.moveMu.Unlock()
	p.c.mu.Lock()
	delete(p.c.pubs, p)
	p.c.mu.Unlock()
	p.pubMu.Lock()
	m := p.m
	p.pubMu.Unlock()
	m.g.Send(ctx, marker(p.topic, 0, envelope.End))
	m.removePub(p)
	err := p.c.dir.Withdraw(ctx, p.topic)
	p.c.release(m)
	return err
}

// Event is an event of a topic, as a subscriber delivers it.
type Event struct {
	Topic string
	From  string // the publisher's member id in the group
	Data  []byte
}

// Subscription delivers the events of one topic.
//
// Events come on a channel rather than through a handler: the
// application chooses when to read and may select on it with other work,
// and the group's own goroutine never runs application code. The channel
// is bounded (Config.Buffer): if the application falls so far behind that
// it fills, the subscription ends (its channel closes, Err returns
// ErrSlowConsumer) rather than block the group's other topics or skip
// events silently: what it delivered is a gap-free prefix of the topic's
// events.
type Subscription struct {
	c     *Client
	topic string
	qos   string
	ch    chan Event

	moveMu sync.Mutex // one move at a time
	once   sync.Once  // Unsubscribe

	mu      sync.Mutex
	m       *member                  // the group it delivers from
	moves   uint64                   // that group's move number
	next    *member                  // the group it moves to, while it moves
	moving  uint64                   // that group's move number
	wait    map[string]bool          // the publishers it waits for before it switches
	marks   map[string]uint64        // member id → last move it switched (MaxUint64: it ended)
	buf     []delivery               // what it keeps aside: from next, or while held
	holding bool                     // Subscribe has not returned yet
	late    []string                 // the publishers it stopped waiting for, at its switch
	since   map[*member]stack.ViewID // the member's last delivery when s was registered with it
	shown   map[*member]bool         // the registrations logged (ps_subscribe): those that hand over
	closed  bool
	err     error // set when ch closes
}

// delivery is an event with its identity in its group, for the log.
type delivery struct {
	e          Event
	m          *member // that delivered it
	view       stack.ViewID
	seq, order uint64
	moves      uint64 // the topic's move number its publisher published it at
}

// logDeliver logs the hand-over of d to the application.
func (c *Client) logDeliver(d delivery) {
	if !c.logs() {
		return
	}
	c.logEv(eventlog.PSDeliver, eventlog.FieldTopic, d.e.Topic, eventlog.FieldGroup, d.m.name, eventlog.FieldMember, d.m.g.Me().ID,
		eventlog.FieldView, d.view.String(), eventlog.FieldFrom, d.e.From, eventlog.FieldSeq, d.seq, eventlog.FieldOrder, d.order)
}

// outcome of Subscription.take.
const (
	handed1 = iota // handed over
	kept           // kept aside
	ignored
	gone // the subscription ended
)

// take hands d, delivered by m, to the application or keeps it aside,
// and says which.
func (s *Subscription) take(m *member, d delivery) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return gone
	case m == s.next || m == s.m && s.holding:
		if len(s.buf) >= s.c.cfg.Buffer {
			s.closeLocked(ErrSlowConsumer)
			return gone
		}
		s.buf = append(s.buf, d)
		return kept
	case m == s.m:
		if d.moves > s.moves {
			s.cameBackLocked(d.moves)
		}
		if !s.sendLocked(d, false) {
			return gone
		}
		return handed1
	}
	return ignored
}

// cameBackLocked takes move number moves, that of an event of the group s
// delivers from, published after a later move than the one s is in (s.mu
// held): the topic moved away and back before s followed. s stays, as
// when it learns of such a move from the directory (moveTo), and drops
// the move it was making, if any, with the events it kept from there: a
// publisher already at the later move sent those before the event, and
// handing them over after it would reorder its events. A subscription
// makes one move at a time (docs/directory.md, Moves).
func (s *Subscription) cameBackLocked(moves uint64) {
	s.moves = moves
	m, next := s.m, s.next
	s.next, s.buf, s.wait, s.late = nil, nil, nil, nil
	if next != nil {
		// Not here: that takes next.mu, and m.mu is held.
		go s.drop(next)
	}
	s.c.logEv(eventlog.PSMove, eventlog.FieldTopic, s.topic, eventlog.FieldGroup, m.name, eventlog.FieldPrev, m.name,
		eventlog.FieldMoves, moves, eventlog.FieldKind, "subscriber", eventlog.FieldResult, "stayed")
}

// sendLocked hands d to the application (logging it if log), or ends s
// if its buffer is full.
func (s *Subscription) sendLocked(d delivery, log bool) bool {
	if s.closed {
		return false
	}
	select {
	case s.ch <- d.e:
		if log {
			s.c.logDeliver(d)
		}
		return true
	default:
		s.closeLocked(ErrSlowConsumer)
		return false
	}
}

func (s *Subscription) closeLocked(err error) {
	if !s.closed {
		s.closed, s.err = true, err
		close(s.ch)
	}
}

// end ends s because m, one of its groups, ended (m.mu held).
func (s *Subscription) end(m *member, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m == s.m || m == s.next {
		s.closeLocked(err)
	}
}

// SubscribeOption changes how Subscribe behaves.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct{ wait bool }

// WaitAnnounced makes Subscribe to a topic nobody announced yet wait,
// asking again with backoff until it is announced or ctx ends, instead of
// failing with directory.ErrUnknownTopic.
func WaitAnnounced() SubscribeOption { return func(o *subscribeOptions) { o.wait = true } }

// Subscribe asks the directory for the topic's QoS and group, joins the
// group (unless this client is already a member), and delivers the
// topic's events from then on. A topic nobody announced is an error
// matching directory.ErrUnknownTopic, unless WaitAnnounced is given.
func (c *Client) Subscribe(ctx context.Context, topic string, opts ...SubscribeOption) (*Subscription, error) {
	var o subscribeOptions
	for _, f := range opts {
		f(&o)
	}
	backoff := 10 * time.Millisecond
	var r directory.Result
	for {
		var err error
		r, err = c.dir.Subscribe(ctx, topic)
		if err == nil {
			break
		}
		if !o.wait || !errors.Is(err, directory.ErrUnknownTopic) {
			return nil, fmt.Errorf("pubsub: subscribing to %q: %w", topic, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("pubsub: waiting for %q to be announced: %w", topic, ctx.Err())
		}
		backoff = min(2*backoff, time.Second)
	}
	s := &Subscription{c: c, topic: topic, qos: r.QoS, ch: make(chan Event, c.cfg.Buffer), moves: r.Moves, holding: true}
	if _, err := c.join(ctx, r, s); err != nil {
		return nil, err
	}
	if err := s.settle(ctx, r); err != nil {
		s.Unsubscribe(context.Background())
		return nil, err
	}
	c.mu.Lock()
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	// The watcher's next poll looks its topic up: a poll under way may
	// have taken its list before this subscription was in it, and yet
	// count a move it saw as seen.
	c.moveRetry.Store(true)
	s.mu.Lock()
	s.holding = false
	if !s.closed {
		s.showLocked(s.m)
	}
	buf := s.buf
	s.buf = nil
	for _, d := range buf {
		if !s.sendLocked(d, true) {
			break
		}
	}
	s.mu.Unlock()
	return s, nil
}

// settle makes sure, before Subscribe returns, that s delivers every
// event published from then on: if the topic moved while s joined its
// group, s goes to the new group at once; and while publishers of the
// topic have yet to switch to it, s waits for them (at most MoveWait).
func (s *Subscription) settle(ctx context.Context, r directory.Result) error {
	c := s.c
	f, err := c.dir.Lookup(ctx, s.topic)
	if err != nil || !f.Found {
		return nil // the move watcher looks again
	}
	if f.Topic.Moves > r.Moves {
		s.mu.Lock()
		old := s.m
		s.mu.Unlock()
		if _, err := c.joinAs(ctx, resultOf(f), s, true); err != nil {
			return err
		}
		old.remove(s) // held: it hands over nothing of the old group
		s.mu.Lock()
		next := s.next
		s.mu.Unlock()
		next.mu.Lock()
		s.mu.Lock()
		s.m, s.next, s.moves = next, nil, f.Topic.Moves
		// Events of both groups, before Subscribe returned: dropped, so
		// s covers the new group's views from here on only.
		s.buf = nil
		s.since[next] = next.last
		s.mu.Unlock()
		next.mu.Unlock()
		if hasClient(old.g.View(), c.cfg.Name) {
			old.g.Send(ctx, marker(s.topic, f.Topic.Moves, envelope.Ready))
		}
		c.release(old)
	}
	deadline := time.NewTimer(c.cfg.MoveWait)
	defer deadline.Stop()
	for len(f.Topic.Pending) > 0 && f.Topic.Moves == s.epoch() {
		t := time.NewTimer(c.cfg.MovePoll / 4)
		select {
		case <-t.C:
		case <-deadline.C:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		if f, err = c.dir.Lookup(ctx, s.topic); err != nil {
			return nil
		}
	}
	return nil
}

// Topic is the subscription's topic.
func (s *Subscription) Topic() string { return s.topic }

// Group is the name of the group the subscription delivers from.
func (s *Subscription) Group() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.name
}

// QoS is the name of the topic's QoS.
func (s *Subscription) QoS() string { return s.qos }

// Events returns the topic's events, in delivery order. It is closed by
// Unsubscribe, Close, or when the subscription ends (see Err).
func (s *Subscription) Events() <-chan Event { return s.ch }

// Err says why Events was closed: nil after Unsubscribe or while open.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Unsubscribe ends the subscription: its channel is closed (events not
// yet read stay readable), the directory is told, and the group is left
// unless another topic of this client uses it.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		s.closeLocked(nil)
		s.mu.Unlock()
		s.moveMu.Lock()
		defer s.moveMu.Unlock()
		s.c.mu.Lock()
		delete(s.c.subs, s)
		s.c.mu.Unlock()
		s.mu.Lock()
		ms := []*member{s.m}
		if s.next != nil {
			ms = append(ms, s.next)
		}
		s.mu.Unlock()
		err = s.c.dir.Unsubscribe(ctx, s.topic)
		for _, m := range ms {
			m.remove(s)
			s.c.release(m)
		}
	})
	return err
}
