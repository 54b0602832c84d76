package sim

import (
	"fmt"
	"math/rand/v2"
	"strconv"
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
// pubsub/envelope) with its topic; on each delivery the client decodes
// the envelope and hands the event over (ps_deliver) only if it
// subscribes to its topic, counting the others as filtered. Unsubscribe
// and withdraw tell the directory, and the client's member leaves the
// group when no topic of the client uses it any more. It records
// ps_announce, ps_subscribe, ps_unsubscribe and ps_deliver under node
// c<k> with the fields the real client logs; its members record their
// group events under the process's node, m<i>, with field group.
//
// A client's actions on one topic run one at a time, in the order given
// (Do), as the calls of one application thread per topic; actions on
// different topics run at once, and the client serialises what the real
// one does: its directory commands (one at a time, as dirclient's), and
// its joins and leaves of groups (pubsub.Client's joinMu). A restarted
// client is a new client (c<k>.<incarnation> to the directory) that does
// again every action given so far.
type PubSubSim struct {
	*DirSim
	cfg     PubSubConfig
	groups  map[string]*GroupSim
	names   []string
	clients []*psClient
	rng     *rand.Rand        // the clients' choices
	qos     map[string]string // group → QoS, as the directory answered

	// Test-only switches that break the client, to show the checkers
	// reject what follows.
	noFilter bool // hand over the events of every topic of a group
	reorder  bool // clients c1, c3, ... hand over each topic's events two by two, swapped
	alone    bool // a member joins through no contact: it founds a group of its own
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
	// The simulated clients do not follow moves (package pubsub does):
	// the directory moves no topic.
	d, err := NewDir(DirConfig{Replicas: cfg.Replicas, Clients: cfg.Clients, Seed: cfg.Seed, MaxGroups: cfg.MaxGroups,
		MoveSpacing: -1, SnapshotEvery: 64, CatchUp: 16, Attempt: 300 * time.Millisecond, Deadline: time.Second})
	if err != nil {
		return nil, err
	}
	s := &PubSubSim{DirSim: d, cfg: cfg, groups: map[string]*GroupSim{}, qos: map[string]string{},
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x9b5b))}
	for i := range cfg.MaxGroups {
		name := "g" + strconv.Itoa(i)
		s.names = append(s.names, name)
		s.groups[name] = NewGroupOn(d.Net, GroupConfig{Name: name,
			Stack: func(me stack.Member) *stack.Stack { return s.client(slotOf(me.Addr)).build(name, me) },
			MsgName: func(data []byte) string {
				if _, id, err := envelope.Decode(data); err == nil {
					return string(id)
				}
				return string(data)
			},
			OnInstall: func(slot int, _ stack.View) {
				if c := s.client(slot); c != nil {
					c.installed(name)
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
		})
	}
	for k := range cfg.Clients {
		c := &psClient{s: s, k: k, proc: cfg.Replicas + k, name: ClientName(k)}
		c.p = d.procs[c.proc]
		s.clients = append(s.clients, c)
		d.host(c.proc, c)
	}
	return s, nil
}

// ClientName is the node name of publish/subscribe client k in events:
// "c<k>", its name to the directory too.
func ClientName(k int) string { return "c" + strconv.Itoa(k) }

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
)

// Do has client k do an action on topic, after its actions on the topic
// under way or queued: announce it with qos (and publish an event every
// PubSubConfig.Publish or so from then on: between half and one and a half
// of it), subscribe to it, unsubscribe from it, or withdraw as its
// publisher. An action that does not apply (an
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

// psClient is the machine of a publish/subscribe client in its process,
// beside its directory client and its group member slots.
type psClient struct {
	s     *PubSubSim
	p     *proc
	k     int // directory client k
	proc  int // its process
	name  string
	clock eventlog.Clock
	gen   int // the process generation it runs in

	plan    []psAction            // every action given, for a restart
	queues  map[string][]psAction // by topic
	busy    map[string]bool       // an action on the topic is under way
	joining bool                  // a join or a leave is under way (joinMu)
	waiting []func()              // joins and leaves waiting for it

	groups map[string]*psMember // its members, by group (pubsub.Client.groups)
	slots  map[string]*psMember // the member each group slot runs, joining, in or leaving its group
	pubs   map[string]*psMember // by topic
	subs   map[string]*psMember // by topic
	descs  map[string]*stack.Description
	stats  map[string]*PubSubStats // over incarnations
}

// psMember is a client's member of one group.
type psMember struct {
	group, qos, hash string
	refs             int
	joined, ended    bool
	leaving          bool
	subs             map[string]bool
	onJoin           func(error)
	onLeft           func()
	held             map[string]*stack.Deliver // reorder: an event held back, by topic
}

func (c *psClient) start() {
	c.gen = c.p.gen
	c.clock = eventlog.Clock{}
	c.queues, c.busy = map[string][]psAction{}, map[string]bool{}
	c.joining, c.waiting = false, nil
	c.groups, c.slots = map[string]*psMember{}, map[string]*psMember{}
	c.pubs, c.subs = map[string]*psMember{}, map[string]*psMember{}
	c.descs = map[string]*stack.Description{}
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
}

func (c *psClient) tick() {}
func (c *psClient) stop() {}
func (c *psClient) down() {
	c.queues, c.busy, c.waiting = nil, nil, nil
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

// lock runs f once no other join or leave is under way, as
// pubsub.Client's joinMu; f ends with unlock.
func (c *psClient) lock(f func()) {
	if c.joining {
		c.waiting = append(c.waiting, f)
		return
	}
	c.joining = true
	f()
}

func (c *psClient) unlock() {
	if len(c.waiting) == 0 {
		c.joining = false
		return
	}
	f := c.waiting[0]
	c.waiting = c.waiting[1:]
	f()
}

// gone reports whether the process ended since gen.
func (c *psClient) gone(gen int) bool { return c.gen != gen || !c.p.running }

func (c *psClient) do(a psAction) {
	s, gen := c.s, c.gen
	switch a.op {
	case PSAnnounce:
		if c.pubs[a.topic] != nil {
			c.finish(a.topic)
			return
		}
		s.Command(c.k, directory.Announce{Topic: a.topic, QoS: a.qos}, func(call *DirCall) {
			if c.gone(gen) {
				return
			}
			if !call.Op.Known {
				c.retry(a, 50*time.Millisecond)
				return
			}
			if call.Result.Code != directory.CodeOK {
				c.finish(a.topic)
				return
			}
			c.join(call.Result, "", func(m *psMember) {
				if m != nil {
					c.pubs[a.topic] = m
					c.log(eventlog.PSAnnounce, eventlog.FieldTopic, a.topic, eventlog.FieldQoS, call.Result.QoS,
						eventlog.FieldGroup, call.Result.Group)
					c.publish(a.topic, m)
				}
				c.finish(a.topic)
			})
		})
	case PSSubscribe:
		if c.subs[a.topic] != nil {
			c.finish(a.topic)
			return
		}
		s.Command(c.k, directory.Subscribe{Topic: a.topic}, func(call *DirCall) {
			if c.gone(gen) {
				return
			}
			switch {
			case !call.Op.Known:
				c.retry(a, 50*time.Millisecond)
				return
			case call.Result.Code == directory.CodeUnknownTopic:
				c.retry(a, min(10*time.Millisecond<<min(a.tries, 7), time.Second))
				return
			case call.Result.Code != directory.CodeOK:
				c.finish(a.topic)
				return
			}
			c.join(call.Result, a.topic, func(m *psMember) {
				if m != nil {
					c.subs[a.topic] = m
				}
				c.finish(a.topic)
			})
		})
	case PSUnsubscribe:
		m := c.subs[a.topic]
		if m == nil {
			c.finish(a.topic)
			return
		}
		delete(c.subs, a.topic)
		delete(m.subs, a.topic)
		c.log(eventlog.PSUnsub, eventlog.FieldTopic, a.topic)
		s.Command(c.k, directory.Unsubscribe{Topic: a.topic}, func(*DirCall) {
			if !c.gone(gen) {
				c.release(m, func() { c.finish(a.topic) })
			}
		})
	case PSWithdraw:
		m := c.pubs[a.topic]
		if m == nil {
			c.finish(a.topic)
			return
		}
		delete(c.pubs, a.topic)
		s.Command(c.k, directory.Withdraw{Topic: a.topic}, func(*DirCall) {
			if !c.gone(gen) {
				c.release(m, func() { c.finish(a.topic) })
			}
		})
	default:
		panic("sim: unknown client action " + a.op)
	}
}

// join calls then with the client's member of r's group, with a
// reference taken, joining the group if it has none (nil if it cannot),
// as pubsub.Client.joinGroup. A
// subscription to topic, if not "", is registered (and logged) before the
// member delivers anything.
func (c *psClient) join(r directory.Result, topic string, then func(*psMember)) {
	c.lock(func() {
		c.joinLocked(r, topic, func(m *psMember) {
			c.unlock()
			then(m)
		})
	})
}

func (c *psClient) joinLocked(r directory.Result, topic string, then func(*psMember)) {
	subscribed := func(m *psMember) {
		if topic != "" {
			m.subs[topic] = true
			c.log(eventlog.PSSubscribe, eventlog.FieldTopic, topic, eventlog.FieldQoS, r.QoS, eventlog.FieldGroup, r.Group)
		}
	}
	if m := c.groups[r.Group]; m != nil {
		if m.ended || m.hash != r.Hash {
			then(nil)
			return
		}
		subscribed(m)
		m.refs++
		then(m)
		return
	}
	g := c.s.groups[r.Group]
	if g == nil {
		panic(fmt.Sprintf("sim: the directory named group %q, not one of %v", r.Group, c.s.names))
	}
	d, err := layers.Registry().Parse(r.QoS+".xml", r.XML)
	if err != nil {
		then(nil)
		return
	}
	c.s.qos[r.Group] = r.QoS
	gen, me := c.gen, Addr(c.proc)
	c.s.Command(c.k, directory.AddContact{Group: r.Group, Addr: me}, func(call *DirCall) {
		if c.gone(gen) {
			return
		}
		if !call.Op.Known || call.Result.Code != directory.CodeOK {
			then(nil)
			return
		}
		var contacts []string
		for _, a := range call.Result.Contacts {
			if a != me && !c.s.alone {
				contacts = append(contacts, a)
			}
		}
		m := &psMember{group: r.Group, qos: r.QoS, hash: r.Hash, subs: map[string]bool{}, held: map[string]*stack.Deliver{}}
		m.onJoin = func(err error) {
			if err != nil {
				then(nil)
				return
			}
			c.groups[r.Group] = m
			subscribed(m)
			m.refs++
			then(m)
		}
		c.descs[r.Group] = d
		c.slots[r.Group] = m
		if !g.JoinVia(c.proc, contacts) {
			delete(c.slots, r.Group)
			then(nil)
			return
		}
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

// build builds the stack of the client's member of group.
func (c *psClient) build(group string, me stack.Member) *stack.Stack {
	st, err := layers.Registry().Build(c.descs[group], me)
	if err != nil {
		panic(fmt.Sprintf("sim: %s: building the stack of %s: %v", c.name, group, err))
	}
	return st
}

// installed sees the client's member of group install a view: the first
// ends its join.
func (c *psClient) installed(group string) {
	if m := c.slots[group]; m != nil && !m.joined {
		m.joined = true
		f := m.onJoin
		m.onJoin = nil
		f(nil)
	}
}

// left sees the client's member of group leave: asked to (release), or
// failing to join, or removed from the group, which ends its
// subscriptions, as the group's end does a pubsub member's.
func (c *psClient) left(group string) {
	m := c.slots[group]
	if m == nil {
		return
	}
	delete(c.slots, group)
	switch {
	case m.leaving:
		m.onLeft()
	case !m.joined:
		m.onJoin(fmt.Errorf("left before joining"))
	default:
		m.ended = true
		for t := range m.subs {
			delete(m.subs, t)
		}
	}
}

// psJoinTimeout bounds a join, and a leave.
const psJoinTimeout = 5 * time.Second

// release drops a reference to m, leaving its group with the last, as
// pubsub.Client.release; then runs once the member has left (or, after
// psJoinTimeout, been closed).
func (c *psClient) release(m *psMember, then func()) {
	c.lock(func() {
		c.releaseLocked(m, func() {
			c.unlock()
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
	if c.slots[m.group] != m || !g.Active(c.proc) {
		delete(c.slots, m.group)
		then()
		return
	}
	m.leaving = true
	done := false
	m.onLeft = func() {
		if !done {
			done = true
			then()
		}
	}
	g.Leave(c.proc)
	c.later(psJoinTimeout, func() {
		if !done && c.slots[m.group] == m {
			delete(c.slots, m.group)
			g.Close(c.proc)
			m.onLeft()
		}
	})
}

// publish has the publisher of topic multicast an event every
// PubSubConfig.Publish while it is the topic's publisher.
func (c *psClient) publish(topic string, m *psMember) {
	s := c.s
	wait := s.cfg.Publish/2 + time.Duration(s.rng.Int64N(int64(s.cfg.Publish)))
	c.later(wait, func() {
		if c.pubs[topic] != m || m.ended {
			return
		}
		s.groups[m.group].SendAs(c.proc, func(id string) []byte { return envelope.Encode(topic, []byte(id)) })
		c.publish(topic, m)
	})
}

// deliver takes a delivery of the client's member of group, as
// pubsub's dispatch: events of a topic the client subscribes to are
// handed over, the others counted as filtered.
func (c *psClient) deliver(group string, e stack.Deliver) {
	m := c.slots[group]
	if m == nil {
		return
	}
	topic, _, err := envelope.Decode(e.Msg.Data)
	if err != nil {
		return // not an event: nothing to deliver
	}
	st := c.stats[topic]
	if st == nil {
		st = &PubSubStats{}
		c.stats[topic] = st
	}
	if !m.subs[topic] && !c.s.noFilter {
		st.Filtered++
		return
	}
	st.Delivered++
	if c.s.reorder && c.k%2 == 1 {
		if h := m.held[topic]; h != nil {
			delete(m.held, topic)
			c.handOver(m, topic, e)
			c.handOver(m, topic, *h)
			return
		}
		m.held[topic] = &e
		return
	}
	c.handOver(m, topic, e)
}

func (c *psClient) handOver(m *psMember, topic string, e stack.Deliver) {
	c.log(eventlog.PSDeliver, eventlog.FieldTopic, topic, eventlog.FieldGroup, m.group,
		eventlog.FieldView, e.View.String(), eventlog.FieldFrom, e.From, eventlog.FieldSeq, e.Seq, eventlog.FieldOrder, e.Order)
}

func (c *psClient) log(ev string, kv ...any) {
	t := c.s.wall()
	c.s.record(eventlog.Event{TS: t, Node: c.name, Inc: c.p.inc, LC: c.clock.Tick(t), Ev: ev, Fields: fields(kv)})
}
