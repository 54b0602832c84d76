package sim

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/layers"
	"github.com/conclave/conclave/pubsub/envelope"
	"github.com/conclave/conclave/stack"
)

// PubSubConfig configures a simulated publish/subscribe system.
type PubSubConfig struct {
	// Replicas is the number of directory replicas, 3 or 5, in processes
	// 0..Replicas-1; Clients the number of publish/subscribe clients, in
	// the processes after them.
	Replicas, Clients int
	// Seed decides every delay and random choice.
	Seed uint64
	// MaxGroups is the directory's number of groups (default 3).
	MaxGroups int
	// Publish is the period of a publisher's events (default 50ms).
	Publish time.Duration
	// MoveSpacing is the directory's StateConfig.MoveSpacing (0: its
	// default; negative: no moves).
	MoveSpacing int
	// MovePoll and MoveWait are the clients' pubsub.Config.MovePoll and
	// MoveWait (defaults pubsub's: 200ms and 5s).
	MovePoll, MoveWait time.Duration
}

// PubSubSim is a simulated publish/subscribe system on one Net: a
// directory (a DirSim, whose client k is the directory client of
// publish/subscribe client k), a group member slot in every process for
// each of the directory's groups (GroupSims named g0, g1, ..., whose
// members join only when a client asks), and the clients.
//
// A client follows the protocol of package pubsub's Client. To announce
// a topic or subscribe to it, it asks the directory for the topic's QoS
// and group (a subscriber asks again, with backoff, while the topic is
// unknown, as with pubsub.WaitAnnounced); if it has no member in that
// group yet, it adds its address to the group's contacts
// (directory.AddContact), which answers the contacts there before, and
// its member joins through those, founding the group if none answers. A
// group shared by several topics of the client is joined once. A
// publisher multicasts each event in an envelope (package
// pubsub/envelope) with its topic, one at a time: the next once every
// member has the last (as Publisher.Publish returns). On each delivery
// the client decodes the envelope and hands the event over (ps_deliver)
// only to the subscription of its topic, counting the others as
// filtered. Unsubscribe and withdraw tell the directory, and the
// client's member leaves the group when no topic of the client uses it
// any more. Clients follow the topics' moves between groups with the
// markers of package pubsub (prepare, ready, switch, end). A client logs
// what pubsub.Client logs, at the same moments (docs/events.md):
// ps_announce, ps_subscribe, ps_unsubscribe, ps_view, ps_publish,
// ps_deliver, ps_move and ps_leave, under node c<k>; its members record
// their group events under the process's node, m<i>, with field group.
//
// A client's actions on one topic run one at a time, in the order given
// (Do), as the calls of one application thread per topic; actions on
// different topics run at once, and the client serialises what the real
// one does: its directory commands (one at a time, as dirclient's), its
// joins and leaves of groups (pubsub.Client's joinMu), and the moves of
// a publisher or a subscription. A restarted client is a new client
// (c<k>.<incarnation> to the directory) that does again every action
// given so far.
type PubSubSim struct {
	*DirSim
	cfg     PubSubConfig
	groups  map[string]*GroupSim
	names   []string
	clients []*psClient
	rng     *rand.Rand        // the clients' choices
	qos     map[string]string // group → QoS, as the directory answered

	subs        []*psSub                      // every subscription made, for CheckMoves
	published   map[psEventKey]string         // a publisher's event → ps_publish's result
	publishedTo map[psEventKey]psViewKey      // → the view it was sent in
	installedBy map[psViewKey]map[string]bool // a view → the clients whose member installed it
	publishedIn map[psEventKey]uint64         // → the move number it was published under
	publishedAt map[psEventKey]int            // → the history's length when it was acknowledged
	// switchedWith holds the clients in the new group's view when a
	// publisher found its subscribers ready, and when it switched.
	switchedWith map[psSwitchKey]map[string]bool
	late         map[string]map[string]bool // topic/moves → clients a publisher switched without waiting for

	// Test-only switches that break the client, to show the checkers
	// reject what follows.
	noFilter bool // hand over the events of every topic of a group
	reorder  bool // clients c1, c3, ... hand over each topic's events two by two, swapped
	alone    bool // a member joins through no contact: it founds a group of its own
	skipWait bool // subscribers switch groups without waiting for the publishers' markers
}

// NewPubSub returns a simulated publish/subscribe system, no process
// started.
func NewPubSub(cfg PubSubConfig) (*PubSubSim, error) {
	if cfg.MaxGroups == 0 {
		cfg.MaxGroups = 3
	}
	if cfg.Publish <= 0 {
		cfg.Publish = 50 * time.Millisecond
	}
	if cfg.MovePoll <= 0 {
		cfg.MovePoll = 200 * time.Millisecond
	}
	if cfg.MoveWait <= 0 {
		cfg.MoveWait = 5 * time.Second
	}
	d, err := NewDir(DirConfig{Replicas: cfg.Replicas, Clients: cfg.Clients, Seed: cfg.Seed, MaxGroups: cfg.MaxGroups,
		MoveSpacing: cfg.MoveSpacing, SnapshotEvery: 64, CatchUp: 16, Attempt: 300 * time.Millisecond, Deadline: time.Second})
	if err != nil {
		return nil, err
	}
	s := &PubSubSim{DirSim: d, cfg: cfg, groups: map[string]*GroupSim{}, qos: map[string]string{},
		rng:       rand.New(rand.NewPCG(cfg.Seed, 0x9b5b)),
		published: map[psEventKey]string{}, publishedTo: map[psEventKey]psViewKey{}, installedBy: map[psViewKey]map[string]bool{}, publishedIn: map[psEventKey]uint64{}, publishedAt: map[psEventKey]int{}, switchedWith: map[psSwitchKey]map[string]bool{}, late: map[string]map[string]bool{}}
	for i := range cfg.MaxGroups {
		name := "g" + strconv.Itoa(i)
		s.names = append(s.names, name)
		s.groups[name] = NewGroupOn(d.Net, GroupConfig{Name: name,
			Stack: func(me stack.Member) *stack.Stack { return s.client(slotOf(me.Addr)).build(name, me) },
			MsgName: func(data []byte) string {
				id, _, _ := bytes.Cut(data, []byte{0})
				return string(id)
			},
			OnInstall: func(slot int, e stack.Install) {
				if c := s.client(slot); c != nil {
					c.installed(name, e)
				}
			},
			OnDeliver: func(slot int, e stack.Deliver) {
				if c := s.client(slot); c != nil {
					c.deliver(name, e)
				}
			},
			OnLeft: func(slot int) {
				if c := s.client(slot); c != nil {
					c.left(name)
				}
			},
			OnAcked: func(slot int, msg string, a stack.Acked) {
				if c := s.client(slot); c != nil {
					c.acked(name, msg, &a)
				}
			},
		})
	}
	for k := range cfg.Clients {
		c := &psClient{s: s, k: k, proc: cfg.Replicas + k}
		c.p = d.procs[c.proc]
		s.clients = append(s.clients, c)
		d.host(c.proc, c)
	}
	return s, nil
}

// ClientName is the node name of publish/subscribe client k in events:
// "c<k>", its name to the directory too.
func ClientName(k int) string { return "c" + strconv.Itoa(k) }

// dirName is the name of client k's incarnation inc to the directory:
// c<k>, then c<k>.<inc> after a restart (as dirClient names itself).
func dirName(k int, inc uint64) string {
	if inc > 1 {
		return ClientName(k) + "." + strconv.FormatUint(inc, 10)
	}
	return ClientName(k)
}

// clientOf returns the directory name of the client whose member is
// memberID (m<slot>.<incarnation>.<join>), as pubsub's clientName does
// of its members' ids; "" for none.
func (s *PubSubSim) clientOf(memberID string) string {
	parts := strings.Split(memberID, ".")
	if len(parts) < 2 {
		return ""
	}
	slot := slotOf(parts[0])
	inc, err := strconv.ParseUint(parts[1], 10, 64)
	if s.client(slot) == nil || err != nil {
		return ""
	}
	return dirName(slot-s.cfg.Replicas, inc)
}

// client returns the client in process slot, nil for a replica's.
func (s *PubSubSim) client(slot int) *psClient {
	if k := slot - s.cfg.Replicas; k >= 0 && k < len(s.clients) {
		return s.clients[k]
	}
	return nil
}

// Groups returns the names of the groups, in order.
func (s *PubSubSim) Groups() []string { return s.names }

// Group returns the simulated group named name, nil if there is none.
func (s *PubSubSim) Group(name string) *GroupSim { return s.groups[name] }

// GroupQoS returns the QoS of group name as the directory answered it to
// a client, "" before any did.
func (s *PubSubSim) GroupQoS(name string) string { return s.qos[name] }

// PubSubStats counts the events of one topic that reached a client, as
// pubsub.Stats does.
type PubSubStats struct {
	Delivered, Filtered uint64
}

// Stats returns client k's counts per topic, over its incarnations.
func (s *PubSubSim) Stats(k int) map[string]PubSubStats {
	out := map[string]PubSubStats{}
	for t, st := range s.clients[k].stats {
		out[t] = *st
	}
	return out
}

// Client actions of Do.
const (
	PSAnnounce    = "announce"
	PSSubscribe   = "subscribe"
	PSUnsubscribe = "unsubscribe"
	PSWithdraw    = "withdraw"
	// PSMove is an operator's move of a topic to a group (a schedule's
	// step, not a client's action).
	PSMove = "move"
)

// Do has client k do an action on topic, after its actions on the topic
// under way or queued: announce it with qos (and publish an event every
// PubSubConfig.Publish or so from then on: between half and one and a half
// of it, after the last is stable), subscribe to it, unsubscribe from it,
// or withdraw as its publisher. An action that does not apply (an
// unsubscribe without a subscription) does nothing.
func (s *PubSubSim) Do(k int, op, topic, qos string) {
	c := s.clients[k]
	a := psAction{op: op, topic: topic, qos: qos}
	c.plan = append(c.plan, a)
	if c.p.running {
		c.queues[topic] = append(c.queues[topic], a)
		c.kick(topic)
	}
}

// psAction is an action of a client's application.
type psAction struct {
	op, topic, qos string
	tries          int
}

// psMutex is a mutex of a machine: lock runs f once it holds it, and f
// (or what it starts) ends with unlock.
type psMutex struct {
	held    bool
	waiting []func()
}

func (mu *psMutex) lock(f func()) {
	if mu.held {
		mu.waiting = append(mu.waiting, f)
		return
	}
	mu.held = true
	f()
}

func (mu *psMutex) unlock() {
	if len(mu.waiting) == 0 {
		mu.held = false
		return
	}
	f := mu.waiting[0]
	mu.waiting = mu.waiting[1:]
	f()
}

// psClient is the machine of a publish/subscribe client in its process,
// beside its directory client and its group member slots.
type psClient struct {
	s     *PubSubSim
	p     *proc
	k     int // directory client k
	proc  int // its process
	clock eventlog.Clock
	gen   int // the process generation it runs in

	seen   map[string][]string   // addresses of members each group had, as pubsub's client remembers them
	plan   []psAction            // every action given, for a restart
	queues map[string][]psAction // by topic
	busy   map[string]bool       // an action on the topic is under way
	joinMu psMutex               // joins and leaves of groups

	groups map[string]*psMember // its members, by group (pubsub.Client.groups)
	slots  map[string]*psMember // the member each group slot runs, joining, in or leaving its group
	pubs   map[string]*psPub    // by topic (pubsub.Client.pubs)
	subs   map[string]*psSub    // by topic (pubsub.Client.subs)
	descs  map[string]*stack.Description
	stats  map[string]*PubSubStats // over incarnations
	moves  psWatch
}

// psMember is a client's member of one group (pubsub's member).
type psMember struct {
	c                *psClient
	group, qos, hash string
	id               string // its member id
	refs             int
	joined, leaving  bool
	ended            string // why it stopped, once it has
	subs             map[string][]*psSub
	pubs             map[string][]*psPub
	view             stack.View   // the last view installed
	viewSet          bool         // view is set
	last             stack.ViewID // view of the last delivery dispatched
	sends            map[string]func(*stack.Acked)
	watchers         []func() bool // see each view, and the end
	ct               psContacts
	onJoin           func(error)
	onLeft           func(result string)
}

// psContacts is the state of a member's contacts (pubsub's
// contactKeeper): the latest list to set, whether it is to be sent, the
// last sent, whether a command is under way, whether the member
// coordinates its latest view, whether the next send goes even if equal
// to the last (a refresh), and the sends so far.
type psContacts struct {
	latest, sent        []string
	pending, busy       bool
	coordinating, force bool
	sends               int
}

// psContactsRefresh is how often a coordinator reads its group's contacts
// and sets them again if they differ (pubsub's contactsRefresh).
const psContactsRefresh = time.Second

// psDelivery is an event with its identity in its group.
type psDelivery struct {
	topic, from string
	data        []byte
	m           *psMember
	view        stack.ViewID
	seq, order  uint64
	moves       uint64 // the move number in its envelope
}

func (c *psClient) name() string { return dirName(c.k, c.p.inc) }

func (c *psClient) start() {
	c.gen = c.p.gen
	c.clock = eventlog.Clock{}
	c.queues, c.busy = map[string][]psAction{}, map[string]bool{}
	c.joinMu = psMutex{}
	c.groups, c.slots = map[string]*psMember{}, map[string]*psMember{}
	c.seen = nil // a process that restarts remembers nothing
	c.pubs, c.subs = map[string]*psPub{}, map[string]*psSub{}
	c.descs = map[string]*stack.Description{}
	c.moves = psWatch{}
	if c.stats == nil {
		c.stats = map[string]*PubSubStats{}
	}
	var topics []string
	for _, a := range c.plan {
		if _, ok := c.queues[a.topic]; !ok {
			topics = append(topics, a.topic)
		}
		c.queues[a.topic] = append(c.queues[a.topic], a)
	}
	for _, t := range topics {
		c.kick(t)
	}
	c.watchMoves()
}

func (c *psClient) tick() {}
func (c *psClient) stop() {}
func (c *psClient) down() {
	c.queues, c.busy = nil, nil
	c.groups, c.slots, c.pubs, c.subs = nil, nil, nil, nil
}
func (c *psClient) done() bool { return false }

// later runs f after d in this incarnation of the client's process,
// queued while it is paused.
func (c *psClient) later(d time.Duration, f func()) {
	s, gen := c.s, c.gen
	s.after(d, func() {
		if c.gen == gen {
			s.input(c.p, gen, f)
		}
	})
}

// kick begins the next action on topic if none is under way.
func (c *psClient) kick(topic string) {
	q := c.queues[topic]
	if c.busy[topic] || len(q) == 0 || !c.p.running {
		return
	}
	c.queues[topic] = q[1:]
	c.busy[topic] = true
	c.do(q[0])
}

// finish ends the action under way on topic; the next begins after
// dirGap.
func (c *psClient) finish(topic string) {
	c.later(dirGap, func() {
		c.busy[topic] = false
		c.kick(topic)
	})
}

// retry does a again after wait (the application calling again after an
// error, or pubsub.WaitAnnounced's backoff).
func (c *psClient) retry(a psAction, wait time.Duration) {
	a.tries++
	c.later(wait, func() {
		c.busy[a.topic] = false
		c.queues[a.topic] = append([]psAction{a}, c.queues[a.topic]...)
		c.kick(a.topic)
	})
}

// gone reports whether the process ended since gen.
func (c *psClient) gone(gen int) bool { return c.gen != gen || !c.p.running }

// command sends op to the directory and calls then with its outcome in
// this incarnation.
func (c *psClient) command(op directory.Op, then func(*DirCall)) {
	gen := c.gen
	c.s.Command(c.k, op, func(call *DirCall) {
		if !c.gone(gen) {
			then(call)
		}
	})
}

// lookup reads topic in the directory, as dirclient.Lookup; ok is false
// if the read failed.
func (c *psClient) lookup(topic string, then func(f directory.Found, ok bool)) {
	gen := c.gen
	c.s.Query(c.k, directory.LookupQuery(topic), func(call *DirCall) {
		if c.gone(gen) {
			return
		}
		var f directory.Found
		if !call.Op.Known || unmarshalJSON(call.Data, &f) != nil || f.Error != "" {
			then(f, false)
			return
		}
		then(f, true)
	})
}

// contacts reads group's contacts in the directory, as
// dirclient.Contacts; ok is false if the read failed.
func (c *psClient) contacts(group string, then func(addrs []string, ok bool)) {
	gen := c.gen
	c.s.Query(c.k, directory.GroupQuery(group), func(call *DirCall) {
		if c.gone(gen) {
			return
		}
		var g directory.GroupFound
		if !call.Op.Known || unmarshalJSON(call.Data, &g) != nil || g.Error != "" {
			then(nil, false)
			return
		}
		then(g.Group.Contacts, true)
	})
}

func (c *psClient) do(a psAction) {
	switch a.op {
	case PSAnnounce:
		if c.pubs[a.topic] != nil {
			c.finish(a.topic)
			return
		}
		c.command(directory.Announce{Topic: a.topic, QoS: a.qos}, func(call *DirCall) {
			if !call.Op.Known {
				c.retry(a, 50*time.Millisecond)
				return
			}
			r := call.Result
			if r.Code != directory.CodeOK {
				c.finish(a.topic)
				return
			}
			c.join(r, nil, false, func(m *psMember, err error) {
				if err != nil {
					c.finish(a.topic)
					return
				}
				p := &psPub{c: c, m: m, topic: a.topic, qos: r.QoS, moves: r.Moves, ready: map[string]uint64{}}
				m.pubs[a.topic] = append(m.pubs[a.topic], p)
				c.pubs[a.topic] = p
				c.moves.retry = true // as pubsub's: the next poll looks it up
				c.log(eventlog.PSAnnounce, eventlog.FieldTopic, a.topic, eventlog.FieldQoS, r.QoS, eventlog.FieldGroup, r.Group)
				// The topic may have moved while this client joined: then
				// it switches before it publishes.
				c.lookup(a.topic, func(f directory.Found, ok bool) {
					start := func() {
						c.publish(p)
						c.finish(a.topic)
					}
					if ok && f.Found && f.Topic.Moves > r.Moves {
						p.moveTo(f, start)
						return
					}
					start()
				})
			})
		})
	case PSSubscribe:
		if c.subs[a.topic] != nil {
			c.finish(a.topic)
			return
		}
		c.command(directory.Subscribe{Topic: a.topic}, func(call *DirCall) {
			r := call.Result
			switch {
			case !call.Op.Known:
				c.retry(a, 50*time.Millisecond)
				return
			case r.Code == directory.CodeUnknownTopic:
				c.retry(a, min(10*time.Millisecond<<min(a.tries, 7), time.Second))
				return
			case r.Code != directory.CodeOK:
				c.finish(a.topic)
				return
			}
			sub := &psSub{c: c, client: c.name(), topic: a.topic, qos: r.QoS, moves: r.Moves, holding: true}
			c.join(r, sub, false, func(_ *psMember, err error) {
				if err != nil {
					c.finish(a.topic)
					return
				}
				c.s.subs = append(c.s.subs, sub)
				sub.settle(r, func(err error) {
					if err != nil {
						sub.unsubscribe(func() { c.finish(a.topic) })
						return
					}
					c.subs[a.topic] = sub
					c.moves.retry = true // as pubsub's: the next poll looks it up
					sub.holding = false
					if !sub.closed {
						sub.show(sub.m)
					}
					buf := sub.buf
					sub.buf = nil
					for _, d := range buf {
						if !sub.send(d) {
							break
						}
					}
					c.finish(a.topic)
				})
			})
		})
	case PSUnsubscribe:
		sub := c.subs[a.topic]
		if sub == nil {
			c.finish(a.topic)
			return
		}
		sub.unsubscribe(func() { c.finish(a.topic) })
	case PSWithdraw:
		p := c.pubs[a.topic]
		if p == nil {
			c.finish(a.topic)
			return
		}
		p.close(func() { c.finish(a.topic) })
	default:
		panic("sim: unknown client action " + a.op)
	}
}

// join calls then with the client's member of r's group, with a
// reference taken, joining the group if it has none, as
// pubsub.Client.joinAs. A subscription sub, if not nil, is registered
// before the member delivers anything (and logged once it hands over:
// show); with next, as moving there.
func (c *psClient) join(r directory.Result, sub *psSub, next bool, then func(*psMember, error)) {
	c.joinMu.lock(func() {
		c.joinLocked(r, sub, next, func(m *psMember, err error) {
			c.joinMu.unlock()
			then(m, err)
		})
	})
}

func (c *psClient) joinLocked(r directory.Result, sub *psSub, next bool, then func(*psMember, error)) {
	if m := c.groups[r.Group]; m != nil {
		if m.hash != r.Hash {
			then(nil, fmt.Errorf("group %s runs another QoS", r.Group))
			return
		}
		if !c.s.alone {
			// As pubsub's client: the directory's contacts, where the
			// member finds a split-off part of its group.
			c.note(r.Group, r.Contacts)
			c.s.groups[r.Group].AddContacts(c.proc, r.Contacts)
		}
		if m.ended != "" && sub == nil {
			then(nil, fmt.Errorf("%s", m.ended)) // an application would stop publishing there
			return
		}
		if sub != nil {
			if err := m.add(sub, next); err != nil {
				then(nil, err)
				return
			}
		}
		m.refs++
		then(m, nil)
		return
	}
	g := c.s.groups[r.Group]
	if g == nil {
		panic(fmt.Sprintf("sim: the directory named group %q, not one of %v", r.Group, c.s.names))
	}
	d, err := layers.Registry().Parse(r.QoS+".xml", r.XML)
	if err != nil {
		then(nil, err)
		return
	}
	c.s.qos[r.Group] = r.QoS
	me := Addr(c.proc)
	c.command(directory.AddContact{Group: r.Group, Addr: me}, func(call *DirCall) {
		if !call.Op.Known || call.Result.Code != directory.CodeOK {
			then(nil, fmt.Errorf("adding a contact failed"))
			return
		}
		var contacts []string
		for _, a := range call.Result.Contacts {
			if a != me && !c.s.alone {
				contacts = append(contacts, a)
			}
		}
		if !c.s.alone {
			c.note(r.Group, contacts)
			c.note(r.Group, r.Contacts)
		}
		m := &psMember{c: c, group: r.Group, qos: r.QoS, hash: r.Hash, subs: map[string][]*psSub{}, pubs: map[string][]*psPub{},
			sends: map[string]func(*stack.Acked){}}
		m.onJoin = func(err error) {
			m.onJoin = nil
			if err != nil {
				then(nil, err)
				return
			}
			if !c.s.alone {
				// As pubsub's: what the client learnt of the group before,
				// given as the runtime does, after this step.
				seen := slices.Clone(c.seen[r.Group])
				c.later(0, func() { g.AddContacts(c.proc, seen) })
			}
			m.joined = true
			m.refs = 1
			if sub != nil {
				m.add(sub, next)
			}
			c.groups[r.Group] = m
			then(m, nil)
		}
		c.descs[r.Group] = d
		c.slots[r.Group] = m
		if !g.JoinVia(c.proc, contacts) {
			delete(c.slots, r.Group)
			m.onJoin(fmt.Errorf("cannot join"))
			return
		}
		m.id = g.Member(c.proc)
		// The application gives the join up after a while, as a
		// context's deadline would.
		c.later(psJoinTimeout, func() {
			if c.slots[r.Group] == m && !m.joined {
				delete(c.slots, r.Group)
				g.Close(c.proc)
				m.onJoin(fmt.Errorf("join timed out"))
			}
		})
	})
}

// add registers sub for its topic: delivering, or, with next, moving
// here.
func (m *psMember) add(sub *psSub, next bool) error {
	if m.ended != "" {
		return fmt.Errorf("%s", m.ended)
	}
	if next {
		sub.next = m
	} else {
		sub.m = m
	}
	if !slices.Contains(m.subs[sub.topic], sub) { // as pubsub's: not registered still, by a move it dropped
		m.subs[sub.topic] = append(m.subs[sub.topic], sub)
	}
	if sub.since == nil {
		sub.since = map[*psMember]string{}
	}
	sub.since[m] = viewName(m.last)
	return nil
}

// show logs ps_subscribe for sub's registration with m as sub starts
// handing over m's events, as pubsub's showLocked: since is the view of
// m's last delivery when sub was registered. A registration that ends
// before handed over nothing and is not logged.
func (sub *psSub) show(m *psMember) {
	if sub.shown == nil {
		sub.shown = map[*psMember]bool{}
	}
	sub.shown[m] = true
	m.c.log(eventlog.PSSubscribe, eventlog.FieldTopic, sub.topic, eventlog.FieldQoS, sub.qos, eventlog.FieldGroup, m.group,
		eventlog.FieldMember, m.id, eventlog.FieldSince, sub.since[m])
}

// remove forgets sub, which ended with reason ("": it was unsubscribed,
// or moved away), logging ps_unsubscribe as pubsub's logEnded does.
func (m *psMember) remove(sub *psSub, reason string) {
	ss := m.subs[sub.topic]
	i := -1
	for j, x := range ss {
		if x == sub {
			i = j
		}
	}
	if i < 0 {
		return
	}
	m.subs[sub.topic] = append(ss[:i:i], ss[i+1:]...)
	if len(m.subs[sub.topic]) == 0 {
		delete(m.subs, sub.topic)
	}
	m.logEnded(sub, reason)
}

// logEnded logs ps_unsubscribe as pubsub's does, for a registration that
// was logged (show): one that only kept m's events aside (moving to m, or
// held while Subscribe had not returned) handed over nothing of m.
func (m *psMember) logEnded(sub *psSub, reason string) {
	if !sub.shown[m] {
		return
	}
	kv := []any{eventlog.FieldTopic, sub.topic, eventlog.FieldGroup, m.group, eventlog.FieldMember, m.id}
	if reason == "" || reason != m.ended {
		kv = append(kv, eventlog.FieldUntil, viewName(m.last))
	}
	if reason != "" {
		kv = append(kv, eventlog.FieldReason, reason)
	}
	m.c.log(eventlog.PSUnsub, kv...)
}

func (m *psMember) removePub(p *psPub) {
	ps := m.pubs[p.topic]
	for i, x := range ps {
		if x == p {
			m.pubs[p.topic] = append(ps[:i:i], ps[i+1:]...)
			break
		}
	}
	if len(m.pubs[p.topic]) == 0 {
		delete(m.pubs, p.topic)
	}
}

// hasClient reports whether the member's view holds a member of client
// name (pubsub's hasClient).
func (m *psMember) hasClient(name string) bool {
	for _, x := range m.view.Members {
		if m.c.s.clientOf(x.ID) == name {
			return true
		}
	}
	return false
}

// viewName is the name of view v in the log, "" for none.
func viewName(v stack.ViewID) string {
	if v == (stack.ViewID{}) {
		return ""
	}
	return v.String()
}

// build builds the stack of the client's member of group.
func (c *psClient) build(group string, me stack.Member) *stack.Stack {
	st, err := layers.Registry().Build(c.descs[group], me)
	if err != nil {
		panic(fmt.Sprintf("sim: %s: building the stack of %s: %v", c.name(), group, err))
	}
	return st
}

// installed sees the client's member of group install a view: it logs
// ps_view, lets the subscriptions moving out of the member check whether
// the publishers they wait for left, and wakes whoever waits for a view;
// the first view ends the member's join.
func (c *psClient) installed(group string, e stack.Install) {
	m := c.slots[group]
	if m == nil {
		return
	}
	if m.id == "" {
		m.id = c.s.groups[group].Member(c.proc)
	}
	c.log(eventlog.PSView, eventlog.FieldGroup, group, eventlog.FieldMember, m.id, eventlog.FieldView, e.View.ID.String(),
		eventlog.FieldMembers, e.View.IDs(), eventlog.FieldFlushed, e.Contribs != nil)
	m.view, m.viewSet = e.View, true
	vk := psViewKey{group, e.View.ID}
	if c.s.installedBy[vk] == nil {
		c.s.installedBy[vk] = map[string]bool{}
	}
	c.s.installedBy[vk][c.name()] = true
	if !c.s.alone {
		addrs := make([]string, 0, len(e.View.Members))
		for _, x := range e.View.Members {
			addrs = append(addrs, x.Addr)
		}
		c.note(group, addrs)
	}
	m.followView(e.View)
	if !m.joined && m.onJoin != nil {
		m.onJoin(nil)
	}
	for _, t := range sortedKeys(m.subs) {
		for _, sub := range slices.Clone(m.subs[t]) {
			m.check(sub)
		}
	}
	m.notify()
}

// left sees the client's member of group leave: asked to (release), or
// failing to join, or removed from the group. Its dispatcher ends: the
// subscriptions it delivers to end, and sends not yet acknowledged fail.
func (c *psClient) left(group string) {
	m := c.slots[group]
	if m == nil {
		return
	}
	delete(c.slots, group)
	if !m.joined {
		if m.onJoin != nil {
			m.onJoin(fmt.Errorf("left before joining"))
		}
		return
	}
	m.stopped()
	if m.leaving {
		m.onLeft(psLeaveOK)
	}
}

// followView has the coordinator of a view (its first member) set the
// group's contacts to the view's members' addresses, as pubsub's
// contacts follow the views: one command at a time, the latest list, not
// one equal to the last sent; a failed one is sent again after a second;
// and every psContactsRefresh while it coordinates, the group's contacts
// are read and the last sent again if they differ.
func (m *psMember) followView(v stack.View) {
	m.ct.coordinating = len(v.Members) > 0 && v.Members[0].ID == m.id
	if !m.ct.coordinating {
		return
	}
	var addrs []string
	for _, x := range v.Members {
		addrs = append(addrs, x.Addr)
	}
	slices.Sort(addrs)
	m.ct.latest, m.ct.pending = slices.Compact(addrs), true
	m.sendContacts()
}

func (m *psMember) sendContacts() {
	k := &m.ct
	if k.busy || !k.pending || m.leaving || m.ended != "" {
		return
	}
	addrs, force := k.latest, k.force
	k.pending, k.force = false, false
	if !force && k.sent != nil && slices.Equal(addrs, k.sent) {
		return
	}
	k.busy = true
	m.c.command(directory.Contacts{Group: m.group, Addrs: addrs}, func(call *DirCall) {
		k.busy = false
		if call.Op.Known && call.Result.Code == directory.CodeOK {
			k.sent = addrs
			if g := m.c.s.groups[m.group]; g != nil && !m.c.s.alone && m.ended == "" {
				// As pubsub's: the addresses replaced, where another
				// part of the group may be.
				m.c.note(m.group, call.Result.Contacts)
				g.AddContacts(m.c.proc, call.Result.Contacts)
			}
			// As pubsub's: after a while, unless another is sent
			// first, read the list and send it again if it differs.
			k.sends++
			m.refreshContacts(k.sends)
			m.sendContacts()
			return
		}
		k.sent = nil // as pubsub's: the retry goes even if equal
		m.c.later(time.Second, func() {
			k.pending = true
			m.sendContacts()
		})
	})
}

// refreshContacts reads the group's contacts psContactsRefresh from now,
// unless a send (the n-th is the last) came since or the member no longer
// coordinates, and sends the latest list again if they differ or the
// read failed, as pubsub's.
func (m *psMember) refreshContacts(n int) {
	k := &m.ct
	m.c.later(psContactsRefresh, func() {
		if k.sends != n || !k.coordinating || m.leaving || m.ended != "" {
			return
		}
		m.c.contacts(m.group, func(listed []string, ok bool) {
			if k.sends != n || !k.coordinating {
				return
			}
			if ok && slices.Equal(listed, k.sent) {
				m.refreshContacts(n)
				return
			}
			k.pending, k.force = true, true
			m.sendContacts()
		})
	})
}

// psLeaveOK is ps_leave's result for a member that left its group.
const psLeaveOK = "ok"

// stopped ends the member's dispatcher: every subscription it delivers to
// ends, logged without until, and every send not yet acknowledged fails
// (group.ErrClosed).
func (m *psMember) stopped() {
	if m.ended != "" {
		return
	}
	m.ended = "pubsub: group " + m.group + " ended"
	for _, t := range sortedKeys(m.subs) {
		for _, sub := range m.subs[t] {
			sub.end(m)
			m.logEnded(sub, m.ended)
		}
	}
	m.subs = map[string][]*psSub{}
	sends := m.sends
	m.sends = map[string]func(*stack.Acked){}
	for _, id := range sortedKeys(sends) {
		sends[id](nil)
	}
	m.notify()
}

// psJoinTimeout bounds a join, and a leave.
const psJoinTimeout = 5 * time.Second

// release drops a reference to m, leaving its group with the last, as
// pubsub.Client.release; then runs once the member has left (or, after
// psJoinTimeout, been closed).
func (c *psClient) release(m *psMember, then func()) {
	gen := c.gen
	c.joinMu.lock(func() {
		c.releaseLocked(m, func() {
			if c.gone(gen) {
				return
			}
			c.joinMu.unlock()
			then()
		})
	})
}

func (c *psClient) releaseLocked(m *psMember, then func()) {
	m.refs--
	if m.refs > 0 || c.groups[m.group] != m {
		then()
		return
	}
	delete(c.groups, m.group)
	g := c.s.groups[m.group]
	done := false
	m.onLeft = func(result string) {
		if done {
			return
		}
		done = true
		// pubsub's member.leave: ps_leave once the dispatcher ended, then
		// its address out of the group's contacts.
		c.log(eventlog.PSLeave, eventlog.FieldGroup, m.group, eventlog.FieldMember, m.id, eventlog.FieldView, m.view.ID.String(),
			eventlog.FieldResult, result)
		c.command(directory.RemoveContact{Group: m.group, Addr: Addr(c.proc)}, func(*DirCall) { then() })
	}
	if m.ended != "" || c.slots[m.group] != m || !g.Active(c.proc) {
		// The member stopped before (removed from its group): Leave
		// returns at once, without error, as group.Leave does then.
		delete(c.slots, m.group)
		m.stopped()
		m.onLeft(psLeaveOK)
		return
	}
	m.leaving = true
	c.later(0, func() { g.Leave(c.proc) }) // not from inside the member's effects
	c.later(psJoinTimeout, func() {
		if !done && c.slots[m.group] == m {
			delete(c.slots, m.group)
			g.Close(c.proc)
			m.stopped()
			m.onLeft("context deadline exceeded")
		}
	})
}

// psFrame is a simulated group message: the message's name (for the
// group checkers), a zero byte, and what pubsub would send: an event's
// envelope or a marker.
func psFrame(id string, body []byte) []byte {
	return append(append([]byte(id), 0), body...)
}

// send multicasts body in m and calls then once every member of the view
// has it (a nil Acked: the member stopped first, group.ErrClosed), as
// group.SendSeq.
func (c *psClient) send(m *psMember, body []byte, then func(*stack.Acked)) {
	// The member steps the send after the effects it is carrying out,
	// as the group runtime's loop takes a send: never from inside them.
	c.later(0, func() {
		id := ""
		if c.slots[m.group] == m && m.ended == "" {
			// Registered before the member steps the send: it may be
			// acknowledged at once.
			id = c.s.groups[m.group].SendAs(c.proc, func(id string) []byte {
				m.sends[id] = then
				return psFrame(id, body)
			})
		}
		if id == "" {
			then(nil)
		}
	})
}

// acked sees the client's member of group learn that every member of
// the view has msg (or that it may be lost).
func (c *psClient) acked(group, msg string, a *stack.Acked) {
	m := c.slots[group]
	if m == nil {
		return
	}
	if f := m.sends[msg]; f != nil {
		delete(m.sends, msg)
		f(a)
	}
}

// deliver takes a delivery of the client's member of group, as pubsub's
// dispatch: an event is handed to the subscriptions of its topic and
// counted as delivered if there are any, as filtered if not; a marker
// goes to the move protocol.
func (c *psClient) deliver(group string, e stack.Deliver) {
	m := c.slots[group]
	if m == nil || m.ended != "" {
		return
	}
	_, body, _ := bytes.Cut(e.Msg.Data, []byte{0})
	topic, moves, data, err := envelope.Decode(body)
	if err != nil {
		if mk, ok := envelope.DecodeMarker(body); ok {
			m.onMarker(e.From, mk)
		}
		return
	}
	m.last = e.View
	d := psDelivery{topic: topic, from: e.From, data: data, m: m, view: e.View, seq: e.Seq, order: e.Order, moves: moves}
	subs := append([]*psSub(nil), m.subs[topic]...)
	st := c.stats[topic]
	if st == nil {
		st = &PubSubStats{}
		c.stats[topic] = st
	}
	if len(subs) > 0 {
		st.Delivered++
	} else {
		st.Filtered++
	}
	if len(subs) == 0 && c.s.noFilter {
		c.logDeliver(d)
		return
	}
	for _, sub := range subs {
		switch sub.take(m, d) {
		case psGone:
			m.remove(sub, sub.err)
		}
	}
}

func (c *psClient) logDeliver(d psDelivery) {
	c.log(eventlog.PSDeliver, eventlog.FieldTopic, d.topic, eventlog.FieldGroup, d.m.group, eventlog.FieldMember, d.m.id,
		eventlog.FieldView, d.view.String(), eventlog.FieldFrom, d.from, eventlog.FieldSeq, d.seq, eventlog.FieldOrder, d.order)
}

func (c *psClient) log(ev string, kv ...any) {
	t := c.s.wall()
	c.s.record(eventlog.Event{TS: t, Node: ClientName(c.k), Inc: c.p.inc, LC: c.clock.Tick(t), Ev: ev, Fields: fields(kv)})
}

// note remembers addresses of members of group, as pubsub's client does
// (the latest 64).
func (c *psClient) note(group string, addrs []string) {
	if c.seen == nil {
		c.seen = map[string][]string{}
	}
	seen := c.seen[group]
	for _, a := range addrs {
		if a == "" || slices.Contains(seen, a) {
			continue
		}
		if len(seen) >= 64 {
			seen = seen[1:]
		}
		seen = append(seen, a)
	}
	c.seen[group] = seen
}
