package sim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/pubsub/envelope"
	"github.com/conclave/conclave/pubsub/moving"
	"github.com/conclave/conclave/stack"
)

// The simulated clients follow a topic's move from group a to group b as
// package pubsub's do (pubsub/move.go describes the protocol), with the
// same decisions (package pubsub/moving, which both use) at the same
// points: a publisher joins b, sends prepare
// in a, waits until every client that subscribed when the topic moved
// and has a member in a's view said ready and is in b's view (at most
// MoveWait), then, between two publishes, sends switch in a and
// publishes in b; a subscriber joins b, keeps b's events aside, sends
// ready in a, and switches once every publisher it waits for sent switch
// or end, or left a's view. The messages a group carries are those of
// package pubsub/envelope.

// The errors of package group, as a publisher's log names them.
const (
	errClosed = "group: member closed"
	errLost   = "group: message may be lost (this member left the view)"
)

// psSub is a client's subscription to a topic (pubsub's Subscription).
type psSub struct {
	c             *psClient
	client        string // the client's name to the directory
	topic, qos    string
	m, next       *psMember
	moves, moving uint64
	wait          map[string]bool
	marks         map[string]uint64
	buf           []psDelivery
	holding       bool
	closed        bool
	err           string // why it closed; "" after Unsubscribe
	unsubscribed  bool
	moveMu        psMutex
	held          *psDelivery // reorder: an event held back
	fresh         bool        // its move under way skips one: it waits for nobody
	late          bool        // it stopped waiting for a publisher that did not switch in time

	since    map[*psMember]string // the view of each of its registrations (ps_subscribe)
	shown    map[*psMember]bool   // the registrations logged: those that hand over
	got      []psGot              // what it handed over, in order
	switches []psSwitch           // its moves
}

// psGot is an event a subscription handed over, as its publisher
// numbered it.
type psGot struct {
	pub          string // the publisher's client
	moves, n     uint64 // the publisher's move number, and the event's number
	group        string
	at           int // the history's length when it was handed over
	topic, order string
}

// psSwitch is a subscription's switch from one group to the next:
// present names the clients with a member in the old group's view then,
// at the history's length then.
type psSwitch struct {
	from, to    uint64
	fresh, late bool
	present     map[string]bool
	at          int
}

// psSwitchKey names a publisher's switch for a move of a topic.
type psSwitchKey struct {
	topic, pub string
	moves      uint64
}

// psViewKey names a view of a group.
type psViewKey struct {
	group string
	view  stack.ViewID
}

// psEventKey names a publisher's event of a topic.
type psEventKey struct {
	topic, pub string
	n          uint64
}

// Outcomes of psSub.take.
const (
	psHanded = iota
	psKept
	psIgnored
	psGone
)

// take hands d, delivered by m, to the application or keeps it aside.
func (sub *psSub) take(m *psMember, d psDelivery) int {
	switch {
	case sub.closed:
		return psGone
	case m == sub.next || m == sub.m && sub.holding:
		sub.buf = append(sub.buf, d)
		return psKept
	case m == sub.m:
		if d.moves > sub.moves {
			sub.cameBack(d.moves)
		}
		sub.send(d)
		return psHanded
	}
	return psIgnored
}

// cameBack takes move number moves, that of an event of the group sub
// delivers from published after a later move than sub's, as
// Subscription.cameBackLocked: the topic came back, sub stays, and drops
// the move it was making with the events it kept from there.
func (sub *psSub) cameBack(moves uint64) {
	c := sub.c
	sub.switches = append(sub.switches, psSwitch{from: sub.moves, to: moves, fresh: true, present: map[string]bool{}})
	sub.moves = moves
	m, next := sub.m, sub.next
	sub.next, sub.buf, sub.wait, sub.late = nil, nil, nil, false
	if next != nil {
		c.later(0, func() { sub.drop(next) })
	}
	c.log(eventlog.PSMove, eventlog.FieldTopic, sub.topic, eventlog.FieldGroup, m.group, eventlog.FieldPrev, m.group,
		eventlog.FieldMoves, moves, eventlog.FieldKind, "subscriber", eventlog.FieldResult, "stayed")
}

// drop removes sub's registration with next, a group it no longer moves
// to, unless a later move registered it there again, and releases its
// reference (Subscription.drop).
func (sub *psSub) drop(next *psMember) {
	sub.moveMu.lock(func() {
		if sub.m != next && sub.next != next {
			next.remove(sub, "")
		}
		sub.moveMu.unlock()
		sub.c.release(next, func() {})
	})
}

// send hands d to the application and logs ps_deliver.
func (sub *psSub) send(d psDelivery) bool {
	if sub.closed {
		return false
	}
	c := sub.c
	if c.s.reorder && c.k%2 == 1 {
		if h := sub.held; h != nil {
			sub.held = nil
			sub.handOver(d)
			sub.handOver(*h)
			return true
		}
		sub.held = &d
		return true
	}
	sub.handOver(d)
	return true
}

func (sub *psSub) handOver(d psDelivery) {
	c := sub.c
	c.logDeliver(d)
	if f := strings.Fields(string(d.data)); len(f) == 3 {
		moves, _ := strconv.ParseUint(f[1], 10, 64)
		n, _ := strconv.ParseUint(f[2], 10, 64)
		sub.got = append(sub.got, psGot{pub: f[0], moves: moves, n: n, group: d.m.group, at: len(c.s.History()), topic: d.topic,
			order: fmt.Sprintf("%s %d", d.view, d.order)})
	}
}

// end ends sub because m, one of its groups, stopped.
func (sub *psSub) end(m *psMember) {
	if (m == sub.m || m == sub.next) && !sub.closed {
		sub.closed, sub.err = true, m.ended
	}
}

// unsubscribe ends the subscription, as Subscription.Unsubscribe.
func (sub *psSub) unsubscribe(then func()) {
	if sub.unsubscribed {
		then()
		return
	}
	sub.unsubscribed = true
	if !sub.closed {
		sub.closed, sub.err = true, ""
	}
	c := sub.c
	sub.moveMu.lock(func() {
		if c.subs[sub.topic] == sub {
			delete(c.subs, sub.topic)
		}
		ms := []*psMember{sub.m}
		if sub.next != nil {
			ms = append(ms, sub.next)
		}
		c.command(directory.Unsubscribe{Topic: sub.topic}, func(*DirCall) {
			var next func(i int)
			next = func(i int) {
				if i == len(ms) {
					sub.moveMu.unlock()
					then()
					return
				}
				ms[i].remove(sub, "")
				c.release(ms[i], func() { next(i + 1) })
			}
			next(0)
		})
	})
}

// settle makes sure, before Subscribe returns, that sub delivers every
// event published from then on, as Subscription.settle: if the topic
// moved while sub joined its group, sub goes to the new group at once;
// and while publishers of the topic have yet to switch to it, sub waits
// for them (at most MoveWait).
func (sub *psSub) settle(r directory.Result, then func(error)) {
	c := sub.c
	deadline := c.s.now + c.s.cfg.MoveWait
	c.lookup(sub.topic, func(f directory.Found, ok bool) {
		if !ok || !f.Found {
			then(nil)
			return
		}
		if f.Topic.Moves <= r.Moves {
			sub.waitPending(f, deadline, then)
			return
		}
		old := sub.m
		c.join(resultOf(f), sub, true, func(_ *psMember, err error) {
			if err != nil {
				then(err)
				return
			}
			old.remove(sub, "") // while it holds: it kept old's events, and hands over none
			sub.m, sub.next, sub.moves = sub.next, nil, f.Topic.Moves
			// Events of both groups, before Subscribe returned: dropped,
			// so sub covers the new group's views from here on only.
			sub.buf = nil
			sub.since[sub.m] = viewName(sub.m.last)
			after := func() { c.release(old, func() { sub.waitPending(f, deadline, then) }) }
			if old.hasClient(c.name()) {
				c.send(old, marker(sub.topic, f.Topic.Moves, envelope.Ready), func(*stack.Acked) { after() })
				return
			}
			after()
		})
	})
}

func (sub *psSub) waitPending(f directory.Found, deadline time.Duration, then func(error)) {
	c := sub.c
	if len(f.Topic.Pending) == 0 || f.Topic.Moves != sub.moves {
		then(nil)
		return
	}
	step := c.s.cfg.MovePoll / 4
	if c.s.now+step >= deadline {
		c.later(deadline-c.s.now, func() { then(nil) })
		return
	}
	c.later(step, func() {
		c.lookup(sub.topic, func(f directory.Found, ok bool) {
			if !ok {
				then(nil)
				return
			}
			sub.waitPending(f, deadline, then)
		})
	})
}

// moveTo moves sub to the group f names, as Subscription.moveTo.
func (sub *psSub) moveTo(f directory.Found) {
	c := sub.c
	sub.moveMu.lock(func() {
		e := f.Topic.Moves
		old := sub.m
		if sub.closed || e <= sub.moves {
			sub.moveMu.unlock()
			return
		}
		if sub.next != nil {
			// As Subscription.moveTo: one move at a time; the watcher
			// looks the topic up again at its next poll.
			if e > sub.moving {
				c.moves.retry = true
			}
			sub.moveMu.unlock()
			return
		}
		if f.Topic.Group == old.group {
			// As Subscription.moveTo: back in its own group, it stays.
			sub.switches = append(sub.switches, psSwitch{from: sub.moves, to: e, fresh: true, present: map[string]bool{}})
			sub.moves = e
			c.log(eventlog.PSMove, eventlog.FieldTopic, sub.topic, eventlog.FieldGroup, old.group, eventlog.FieldPrev, old.group,
				eventlog.FieldMoves, e, eventlog.FieldKind, "subscriber", eventlog.FieldResult, "stayed")
			sub.moveMu.unlock()
			return
		}
		sub.moving, sub.fresh = e, old.group != f.Topic.From // it moved more than once since
		sub.wait = moving.Waits(old.group, f.Topic.From, f.Topic.Switching)
		c.join(resultOf(f), sub, true, func(_ *psMember, err error) {
			if err != nil {
				c.log(eventlog.PSMove, eventlog.FieldTopic, sub.topic, eventlog.FieldGroup, f.Topic.Group, eventlog.FieldPrev, old.group,
					eventlog.FieldMoves, e, eventlog.FieldKind, "subscriber", eventlog.FieldResult, "failed: "+err.Error())
				sub.moveMu.unlock()
				return
			}
			if sub.moves >= e && sub.next != nil {
				// As Subscription.moveTo: the topic came back while sub
				// joined (cameBack); it stays.
				next := sub.next
				sub.next, sub.buf = nil, nil
				next.remove(sub, "")
				sub.moveMu.unlock()
				c.release(next, func() {})
				return
			}
			c.send(old, marker(sub.topic, e, envelope.Ready), func(*stack.Acked) {
				old.check(sub)
				sub.moveMu.unlock()
			})
			// As Subscription.moveTo: stop waiting after MovePoll and
			// twice MoveWait for a publisher that never switches.
			c.later(c.s.cfg.MovePoll+2*c.s.cfg.MoveWait, func() {
				if sub.next != nil && sub.moving == e && len(sub.wait) > 0 {
					sub.late = true
					clear(sub.wait)
				}
				old.check(sub)
			})
		})
	})
}

// check ends the move of sub out of m, its old group, once no publisher
// it waits for may still send there (member.check).
func (m *psMember) check(sub *psSub) {
	if sub.closed || sub.m != m || sub.next == nil || sub.moving <= sub.moves {
		return
	}
	if m.c.s.skipWait {
		clear(sub.wait)
	}
	if !m.viewSet || !moving.Settled(sub.wait, sub.marks, sub.moving, m.view.IDs(), m.c.s.clientOf) {
		return
	}
	// Switch: the events kept from the new group, then its own.
	sw := psSwitch{from: sub.moves, to: sub.moving, fresh: sub.fresh, late: sub.late, present: map[string]bool{}}
	sub.late = false
	for _, x := range m.view.Members {
		sw.present[m.c.s.clientOf(x.ID)] = true
	}
	sub.switches = append(sub.switches, sw)
	next := sub.next
	sub.m, sub.next = next, nil
	sub.moves = sub.moving
	sub.show(next)
	buf := sub.buf
	sub.buf = nil
	for _, d := range buf {
		if !sub.send(d) {
			break
		}
	}
	m.remove(sub, "")
	c := m.c
	c.log(eventlog.PSMove, eventlog.FieldTopic, sub.topic, eventlog.FieldGroup, next.group, eventlog.FieldPrev, m.group,
		eventlog.FieldMoves, sub.moves, eventlog.FieldKind, "subscriber", eventlog.FieldResult, "switched")
	sub.switches[len(sub.switches)-1].at = len(c.s.History())
	c.later(0, func() { c.release(m, func() {}) })
}

// onMarker handles a marker delivered in m (member.onMarker).
func (m *psMember) onMarker(from string, mk envelope.Marker) {
	c := m.c
	name := c.s.clientOf(from)
	switch mk.Phase {
	case envelope.Prepare:
		c.kickMoves()
	case envelope.Ready:
		for _, p := range slices.Clone(m.pubs[mk.Topic]) {
			p.readyFrom(name, mk.Moves)
		}
	case envelope.Switch, envelope.End:
		mark := moving.Mark(mk)
		for _, sub := range slices.Clone(m.subs[mk.Topic]) {
			if sub.marks == nil {
				sub.marks = map[string]uint64{}
			}
			sub.marks[from] = max(sub.marks[from], mark)
			m.check(sub)
		}
		c.kickMoves()
	}
}

// marker returns a marker's body.
func marker(topic string, moves uint64, phase envelope.Phase) []byte {
	return envelope.EncodeMarker(envelope.Marker{Topic: topic, Moves: moves, Phase: phase})
}

// resultOf is what joining the group of a looked-up topic needs.
func resultOf(f directory.Found) directory.Result {
	return directory.Result{QoS: f.Topic.QoS, Hash: f.Topic.Hash, XML: f.XML, Group: f.Topic.Group, Moves: f.Topic.Moves, From: f.Topic.From}
}

// psPub is a client's publisher of a topic (pubsub's Publisher).
type psPub struct {
	c          *psClient
	topic, qos string
	m          *psMember
	moves      uint64
	moveMu     psMutex
	ready      map[string]uint64
	onReady    func()
	closed     bool
	n          uint64 // events published

	// pubMu: a publish holds it to read, a switch to write.
	inflight bool   // a publish is under way
	writing  bool   // a switch holds it
	writer   func() // a switch waiting for it
	parked   bool   // the next publish waits for the switch
}

// publish has the publisher publish an event after a pause, and again
// once it is stable, while it is the topic's publisher.
func (c *psClient) publish(p *psPub) {
	s := c.s
	wait := s.cfg.Publish/2 + time.Duration(s.rng.Int64N(int64(s.cfg.Publish)))
	c.later(wait, p.publishOne)
}

// publishOne publishes the publisher's next event, numbered in its
// payload (client, move number, number), and logs ps_publish once every
// member of the view has it, as Publisher.Publish.
func (p *psPub) publishOne() {
	c := p.c
	if p.closed || c.pubs[p.topic] != p {
		return
	}
	if p.writing || p.writer != nil {
		p.parked = true
		return
	}
	m := p.m
	if m.ended != "" {
		return // the application would get errors from here on
	}
	p.n++
	key := psEventKey{p.topic, c.name(), p.n}
	p.inflight = true
	moves := p.moves
	payload := fmt.Sprintf("%s %d %d", key.pub, moves, p.n)
	c.send(m, envelope.Encode(p.topic, moves, []byte(payload)), func(a *stack.Acked) {
		p.inflight = false
		kv := []any{eventlog.FieldTopic, p.topic, eventlog.FieldGroup, m.group, eventlog.FieldFrom, m.id}
		result := "ok"
		switch {
		case a == nil:
			result = "error"
			kv = append(kv, eventlog.FieldResult, result, eventlog.FieldError, errClosed)
		case a.Lost:
			result = "lost"
			kv = append(kv, eventlog.FieldResult, result, eventlog.FieldView, a.View.String(), eventlog.FieldSeq, a.Seq,
				eventlog.FieldError, errLost)
		default:
			kv = append(kv, eventlog.FieldResult, result, eventlog.FieldView, a.View.String(), eventlog.FieldSeq, a.Seq)
		}
		c.log(eventlog.PSPublish, kv...)
		c.s.published[key] = result
		c.s.publishedIn[key] = moves
		c.s.publishedAt[key] = len(c.s.History())
		if a != nil {
			c.s.publishedTo[key] = psViewKey{m.group, a.View}
		}
		if w := p.writer; w != nil {
			p.writer, p.writing = nil, true
			w()
		}
		c.publish(p)
	})
}

// lockWrite runs f once no publish is under way, and holds new ones
// back until unlockWrite (the write lock of Publisher.pubMu).
func (p *psPub) lockWrite(f func()) {
	if p.inflight {
		p.writer = f
		return
	}
	p.writing = true
	f()
}

func (p *psPub) unlockWrite() {
	p.writing = false
	if p.parked {
		p.parked = false
		p.publishOne()
	}
}

// readyFrom records that the subscribers of client name are ready for
// move moves.
func (p *psPub) readyFrom(name string, moves uint64) {
	p.ready[name] = max(p.ready[name], moves)
	if p.onReady != nil {
		p.onReady()
	}
}

// close withdraws the publisher, as Publisher.Close: its subscribers learn
// by an end marker that it publishes no more in its group.
func (p *psPub) close(then func()) {
	c := p.c
	if p.closed {
		then()
		return
	}
	p.closed = true
	p.moveMu.lock(func() {
		if c.pubs[p.topic] == p {
			delete(c.pubs, p.topic)
		}
		m := p.m
		c.send(m, marker(p.topic, 0, envelope.End), func(*stack.Acked) {
			m.removePub(p)
			c.command(directory.Withdraw{Topic: p.topic}, func(*DirCall) {
				c.release(m, func() {
					p.moveMu.unlock()
					then()
				})
			})
		})
	})
}

// moveTo moves p to the group f names, as Publisher.moveTo; then, if not
// nil, runs after.
func (p *psPub) moveTo(f directory.Found, then func()) {
	c := p.c
	p.moveMu.lock(func() {
		done := func() {
			p.moveMu.unlock()
			if then != nil {
				then()
			}
		}
		e := f.Topic.Moves
		if e <= p.moves || p.closed {
			done()
			return
		}
		old := p.m
		c.join(resultOf(f), nil, false, func(next *psMember, err error) {
			if err != nil {
				c.log(eventlog.PSMove, eventlog.FieldTopic, p.topic, eventlog.FieldGroup, f.Topic.Group, eventlog.FieldPrev, old.group,
					eventlog.FieldMoves, e, eventlog.FieldKind, "publisher", eventlog.FieldResult, "failed: "+err.Error())
				done()
				return
			}
			next.pubs[p.topic] = append(next.pubs[p.topic], p)
			c.send(old, marker(p.topic, e, envelope.Prepare), func(*stack.Acked) {
				p.awaitReady(old, next, f.Topic.Following, e, func(late []string) {
					in := map[string]bool{} // who the publisher saw in the new group
					for _, x := range next.view.Members {
						in[c.s.clientOf(x.ID)] = true
					}
					p.lockWrite(func() {
						c.send(old, marker(p.topic, e, envelope.Switch), func(a *stack.Acked) {
							for _, x := range next.view.Members {
								in[c.s.clientOf(x.ID)] = true
							}
							c.s.switchedWith[psSwitchKey{p.topic, c.name(), e}] = in
							p.m, p.moves = next, e
							p.unlockWrite()
							old.removePub(p)
							result := "switched"
							if len(late) > 0 {
								result = fmt.Sprintf("switched without waiting longer for %s", strings.Join(late, ", "))
								k := p.topic + "/" + strconv.FormatUint(e, 10)
								if c.s.late[k] == nil {
									c.s.late[k] = map[string]bool{}
								}
								for _, n := range late {
									c.s.late[k][n] = true
								}
							}
							switch {
							case a == nil:
								result += "; the switch marker may be lost: " + errClosed
							case a.Lost:
								result += "; the switch marker may be lost: " + errLost
							}
							c.log(eventlog.PSMove, eventlog.FieldTopic, p.topic, eventlog.FieldGroup, next.group, eventlog.FieldPrev, old.group,
								eventlog.FieldMoves, e, eventlog.FieldKind, "publisher", eventlog.FieldResult, result)
							c.command(directory.MoveDone{Topic: p.topic, Moves: e}, func(*DirCall) {
								c.release(old, done)
							})
						})
					})
				})
			})
		})
	})
}

// awaitReady calls then once every client in following that has a member
// in old's view has said it is ready for move e, and is in next's view
// (so that what this member sends there reaches it), or after MoveWait,
// with those it gave up on (Publisher.awaitReady).
func (p *psPub) awaitReady(old, next *psMember, following []string, e uint64, then func(late []string)) {
	c := p.c
	finished := false
	missing := func() []string { return moving.Unready(following, e, p.ready, old.hasClient, next.hasClient) }
	finish := func(late []string) {
		finished = true
		p.onReady = nil
		then(late)
	}
	check := func() bool {
		if finished {
			return false
		}
		if len(missing()) == 0 {
			finish(nil)
			return false
		}
		return true
	}
	p.onReady = func() { check() }
	if !check() {
		return
	}
	old.watch(check)
	next.watch(check)
	c.later(c.s.cfg.MoveWait, func() {
		if !finished {
			finish(missing())
		}
	})
}

// watch has f see each view the member installs, and its end, while f
// returns true.
func (m *psMember) watch(f func() bool) {
	m.watchers = append(m.watchers, f)
}

// notify runs the member's watchers.
func (m *psMember) notify() {
	ws := m.watchers
	m.watchers = nil
	for _, f := range ws {
		if f() {
			m.watchers = append(m.watchers, f)
		}
	}
}

// psWatch is the state of a client's move watcher (Client.watchMoves).
type psWatch struct {
	polling, kicked, retry bool
	seen                   uint64
}

// watchMoves looks for moves of the client's topics every MovePoll, as
// pubsub's watchMoves.
func (c *psClient) watchMoves() {
	c.later(c.s.cfg.MovePoll, func() {
		c.kickMoves()
		c.watchMoves()
	})
}

// kickMoves makes the client look for moves now, or again once the look
// under way ends.
func (c *psClient) kickMoves() {
	if c.moves.polling {
		c.moves.kicked = true
		return
	}
	c.pollMoves()
}

// pollMoves asks the directory for its last move and, when it changed,
// looks the client's topics up and moves its publishers and
// subscriptions whose topic moved.
func (c *psClient) pollMoves() {
	// As watchMoves: the flag first, then the list.
	forced := c.moves.retry
	c.moves.retry = false
	var pubs []*psPub
	var subs []*psSub
	for _, t := range sortedKeys(c.pubs) {
		pubs = append(pubs, c.pubs[t])
	}
	for _, t := range sortedKeys(c.subs) {
		subs = append(subs, c.subs[t])
	}
	if len(pubs)+len(subs) == 0 {
		return
	}
	c.moves.polling = true
	gen := c.gen
	done := func() {
		c.moves.polling = false
		if c.moves.kicked {
			c.moves.kicked = false
			c.pollMoves()
		}
	}
	c.s.Query(c.k, []byte{directory.QueryMoves}, func(call *DirCall) {
		if c.gone(gen) {
			return
		}
		var mv directory.Moves
		failed := !call.Op.Known || unmarshalJSON(call.Data, &mv) != nil || mv.Error != ""
		if failed || mv.Last == c.moves.seen && !forced {
			c.moves.retry = c.moves.retry || failed && forced
			done()
			return
		}
		var topics []string
		for _, p := range pubs {
			topics = append(topics, p.topic)
		}
		for _, sub := range subs {
			topics = append(topics, sub.topic)
		}
		slices.Sort(topics)
		topics = slices.Compact(topics)
		found := map[string]directory.Found{}
		var next func(i int)
		next = func(i int) {
			if i < len(topics) {
				c.lookup(topics[i], func(f directory.Found, ok bool) {
					if ok {
						found[topics[i]] = f
					} else {
						c.moves.retry = true
					}
					next(i + 1)
				})
				return
			}
			if !c.moves.retry {
				c.moves.seen = mv.Last
			}
			for _, p := range pubs {
				if f, ok := found[p.topic]; ok && f.Found && f.Topic.Moves > p.moves {
					p.moveTo(f, nil)
				}
			}
			for _, sub := range subs {
				if f, ok := found[sub.topic]; ok && f.Found && f.Topic.Moves > sub.moves {
					sub.moveTo(f)
				}
			}
			done()
		}
		next(0)
	})
}

func unmarshalJSON(b []byte, v any) error { return json.Unmarshal(b, v) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Moves checks that the topics' moves lost, repeated and reordered none
// of the events the subscriptions handed over. Each publisher numbers its
// events of a topic 1, 2, 3... and stamps them with its move number (the
// topic's moves when it published); for each subscription (from
// Subscribe to its end, across moves) it checks that
//
//   - the move numbers never go down: every event published in a group
//     came before every event published in the group the topic moved to
//     next (so with total order, every subscriber puts the events of two
//     groups in the same order; check.PubSub's TopicOrder holds them to
//     one order within a view);
//   - each publisher's numbers go up: nothing repeated or reordered;
//   - across a move, each publisher's numbers go up by one: nothing lost
//     between its last event in the old group and its first in the new
//     one. A gap is allowed where the protocol does not promise more: an
//     event missing in it was not stable when published (ps_publish not
//     ok) or was published in a view the subscriber's member never
//     installed (not in it, or listed in it but never told of it, as a
//     member that refused it): in the new group, though the publisher
//     had seen the subscriber in that group's view when it found it
//     ready or when it switched (as when the new group was founded twice
//     at once and one dissolved into the other, or the subscriber's
//     member was excluded from it); in the old group, before the
//     subscriber switched out of it (its member split off or excluded:
//     no member gets the messages of a view it is not in, move or not);
//     or the
//     publisher was not in the old group's view when the subscriber
//     switched, the subscriber's move skipped one (it waits
//     for nobody then), the publisher switched without waiting longer for
//     the subscriber (MoveWait), or a fault struck between the two events.
func (run PubSubRun) Moves() []string {
	s := run.Sim
	h := s.History()
	var faults []int
	for i, e := range h {
		if e.Node == eventlog.Control {
			faults = append(faults, i)
		}
	}
	faultBetween := func(a, b int) bool {
		i, _ := slices.BinarySearch(faults, a)
		return i < len(faults) && faults[i] < b
	}
	// missed reports whether sub's client never installed the view event
	// k was sent in (not in it, or listed in it but never told: a member
	// that refused it): no member gets the messages of such a view.
	missed := func(sub *psSub, k psEventKey) bool {
		v, ok := s.publishedTo[k]
		return ok && !s.installedBy[v][sub.client]
	}
	excused := func(sub *psSub, p, g psGot) bool {
		if faultBetween(p.at, g.at) {
			return true
		}
		for n := p.n + 1; n < g.n; n++ {
			k := psEventKey{sub.topic, g.pub, n}
			if s.published[k] != "ok" {
				return true
			}
			// Published in the new group in a view without the
			// subscriber, though the publisher saw it in the new group's
			// view when it found it ready or when it switched: that
			// group's views changed since (its member excluded, say).
			e := s.publishedIn[k]
			if e > p.moves && missed(sub, k) && s.switchedWith[psSwitchKey{sub.topic, g.pub, e}][sub.client] {
				return true
			}
			// Published in the old group, before the subscriber switched
			// out of it, in a view without the subscriber's member (split
			// off or excluded): nothing of a view it is not in reaches a
			// member, move or not.
			if e < g.moves && missed(sub, k) {
				for _, sw := range sub.switches {
					if sw.from <= e && e < sw.to && sw.at > 0 && s.publishedAt[k] < sw.at {
						return true
					}
				}
			}
		}
		for _, sw := range sub.switches {
			if sw.from >= p.moves && sw.to <= g.moves && (sw.fresh || sw.late || !sw.present[g.pub]) {
				return true
			}
		}
		for e := p.moves + 1; e <= g.moves; e++ {
			if s.late[sub.topic+"/"+strconv.FormatUint(e, 10)][sub.client] {
				return true
			}
		}
		return false
	}
	var out []string
	for _, sub := range s.subs {
		who := fmt.Sprintf("%s's subscription to %s", sub.client, sub.topic)
		last := map[string]psGot{}
		var top psGot
		for i, g := range sub.got {
			if i > 0 && g.moves < top.moves {
				out = append(out, fmt.Sprintf("move reordered: %s handed over %s's event %d of move %d (in %s) after %s's event %d of move %d (in %s)",
					who, g.pub, g.n, g.moves, g.group, top.pub, top.n, top.moves, top.group))
			}
			if i == 0 || g.moves > top.moves {
				top = g
			}
			p, ok := last[g.pub]
			last[g.pub] = g
			switch {
			case !ok:
			case g.n <= p.n:
				out = append(out, fmt.Sprintf("repeated or reordered: %s handed over %s's event %d (move %d, in %s) after its event %d (move %d, in %s)",
					who, g.pub, g.n, g.moves, g.group, p.n, p.moves, p.group))
			case g.n > p.n+1 && g.moves > p.moves && !excused(sub, p, g):
				out = append(out, fmt.Sprintf("move lost events: %s handed over %s's event %d (move %d, in %s) then its event %d (move %d, in %s), not those between",
					who, g.pub, p.n, p.moves, p.group, g.n, g.moves, g.group))
			}
		}
	}
	return out
}
