package pubsub

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/pubsub/envelope"
	"github.com/conclave/conclave/pubsub/moving"
	"github.com/conclave/conclave/stack"
)

// Moves. The directory may move a topic to another group of its QoS
// (directory.Move). Clients carry the topic's guarantees across the move
// with markers they send in the old group, a, on its way to the new one,
// b:
//
//  1. A publisher that learns of the move joins b and sends prepare in a.
//  2. A subscriber that learns of it (from prepare, or from the
//     directory) joins b, where it keeps the topic's events aside, and
//     sends ready in a.
//  3. The publisher waits until every member of a's view that subscribed
//     to the topic when it moved has sent ready (or left a), at most
//     Config.MoveWait, then sends switch in a, and from then on publishes
//     in b; it tells the directory (MoveDone).
//  4. The subscriber delivers a's events of the topic until it has switch
//     (or end, sent by a publisher that closes) from every member of a's
//     view that published the topic when it moved, or that publisher has
//     left a's view; then the events it kept from b, and b's from then on.
//
// Each publisher's events thus reach each subscriber in the order sent,
// all of a's before any of b's, and with total order every subscriber
// delivers the topic's events of a in a's order, then those of b in b's:
// none is lost, duplicated or reordered. Events carry the publisher's move
// number: a subscription that gets one of a later move than its own in
// the group it delivers from stays there and drops the move it was making
// (Subscription.cameBackLocked). A subscription made while the
// topic moves joins b only, and Subscribe returns once no publisher is
// left to switch (at most MoveWait).

// Set by tests only: skipMoveWait breaks moves (subscribers switch
// without waiting for the publishers), and beforeSwitch, if set, runs in
// a publisher's move just before it switches.
var (
	skipMoveWait atomic.Bool
	beforeSwitch atomic.Pointer[func()]
)

// Defaults of Config.MovePoll and Config.MoveWait.
const (
	DefaultMovePoll = 200 * time.Millisecond
	DefaultMoveWait = 5 * time.Second
)

// marker returns the group message of a marker.
func marker(topic string, moves uint64, phase envelope.Phase) []byte {
	return envelope.EncodeMarker(envelope.Marker{Topic: topic, Moves: moves, Phase: phase})
}

// clientName returns the client name in a member id: the member id is the
// name and a dot and an incarnation.
func clientName(memberID string) string {
	if i := strings.LastIndexByte(memberID, '.'); i >= 0 {
		return memberID[:i]
	}
	return memberID
}

// hasClient reports whether view v has a member of client name.
func hasClient(v stack.View, name string) bool {
	return slices.ContainsFunc(v.Members, func(m stack.Member) bool { return clientName(m.ID) == name })
}

// onMarker handles a marker delivered in m (m.mu held).
func (m *member) onMarker(from string, mk envelope.Marker) {
	name, topic, moves := clientName(from), mk.Topic, mk.Moves
	switch mk.Phase {
	case envelope.Prepare:
		m.c.kickMoves()
	case envelope.Ready:
		for _, p := range m.pubs[topic] {
			p.readyFrom(name, moves)
		}
	case envelope.Switch, envelope.End:
		mark := moving.Mark(mk)
		for _, s := range m.subs[topic] {
			s.mu.Lock()
			if s.marks == nil {
				s.marks = map[string]uint64{}
			}
			s.marks[from] = max(s.marks[from], mark)
			s.mu.Unlock()
			m.check(s)
		}
		m.c.kickMoves()
	}
}

// check ends the move of s out of m, its old group, once no publisher it
// waits for may still send there (m.mu held).
func (m *member) check(s *Subscription) {
	s.mu.Lock()
	if s.closed || s.m != m || s.next == nil || s.moving <= s.moves {
		// Not moving; or the topic came back while s joined the group it
		// moves to: moveTo drops that move.
		s.mu.Unlock()
		return
	}
	if skipMoveWait.Load() {
		clear(s.wait)
	}
	if !m.viewSet || !moving.Settled(s.wait, s.marks, s.moving, m.view.IDs(), clientName) {
		s.mu.Unlock()
		return
	}
	// Switch: the events kept from the new group, then its own.
	next := s.next
	s.m, s.next = next, nil
	s.moves = s.moving
	s.showLocked(next)
	buf := s.buf
	s.buf = nil
	for _, d := range buf {
		if !s.sendLocked(d, true) {
			break
		}
	}
	moves := s.moves
	result := "switched"
	if len(s.late) > 0 {
		result = "switched without waiting longer for " + strings.Join(s.late, ", ")
		s.late = nil
	}
	s.mu.Unlock()
	m.removeLocked(s, nil) // logs, which takes s.mu
	m.c.logEv(eventlog.PSMove, eventlog.FieldTopic, s.topic, eventlog.FieldGroup, next.name, eventlog.FieldPrev, m.name,
		eventlog.FieldMoves, moves, eventlog.FieldKind, "subscriber", eventlog.FieldResult, result)
	go m.c.release(m)
}

// readyFrom records that the subscribers of client name are ready for
// move moves.
func (p *Publisher) readyFrom(name string, moves uint64) {
	p.readyMu.Lock()
	defer p.readyMu.Unlock()
	if p.ready == nil {
		p.ready = map[string]uint64{}
	}
	p.ready[name] = max(p.ready[name], moves)
	close(p.readyCh)
	p.readyCh = make(chan struct{})
}

// kickMoves makes the client look for moves now.
func (c *Client) kickMoves() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// watchMoves looks for moves of the client's topics: it asks the
// directory for its last move every MovePoll, or at once when a marker
// arrives, and looks the client's topics up when that changed.
func (c *Client) watchMoves() {
	defer close(c.watched)
	t := time.NewTicker(c.cfg.MovePoll)
	defer t.Stop()
	var seen uint64
	retry := false
	for {
		select {
		case <-t.C:
		case <-c.kick:
		case <-c.ctx.Done():
			return
		}
		// The flag first, then the list: what is tracked after the flag
		// is taken sets it again, for the next poll.
		forced := c.moveRetry.Swap(false)
		pubs, subs := c.tracked()
		if len(pubs)+len(subs) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.MoveWait)
		last, err := c.dir.LastMove(ctx)
		if err != nil || last == seen && !retry && !forced {
			retry = retry || err != nil && forced
			cancel()
			continue
		}
		retry = false
		found := map[string]directory.Found{}
		for _, topic := range trackedTopics(pubs, subs) {
			f, err := c.dir.Lookup(ctx, topic)
			if err != nil {
				retry = true
				continue
			}
			found[topic] = f
		}
		cancel()
		if !retry {
			seen = last
		}
		for _, p := range pubs {
			if f, ok := found[p.topic]; ok && f.Found && f.Topic.Moves > p.epoch() {
				go p.moveTo(f)
			}
		}
		for _, s := range subs {
			if f, ok := found[s.topic]; ok && f.Found && f.Topic.Moves > s.epoch() {
				go s.moveTo(f)
			}
		}
	}
}

func trackedTopics(pubs []*Publisher, subs []*Subscription) []string {
	var out []string
	for _, p := range pubs {
		out = append(out, p.topic)
	}
	for _, s := range subs {
		out = append(out, s.topic)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// resultOf is what joining the group of a looked-up topic needs.
func resultOf(f directory.Found) directory.Result {
	return directory.Result{QoS: f.Topic.QoS, Hash: f.Topic.Hash, XML: f.XML, Group: f.Topic.Group, Moves: f.Topic.Moves, From: f.Topic.From}
}

// epoch is the move number of the topic's group p publishes in.
func (p *Publisher) epoch() uint64 {
	p.pubMu.RLock()
	defer p.pubMu.RUnlock()
	return p.moves
}

// moveTo moves p to the group f names.
func (p *Publisher) moveTo(f directory.Found) {
	p.moveMu.Lock()
	defer p.moveMu.Unlock()
	e := f.Topic.Moves
	if e <= p.epoch() || p.isClosed() {
		return
	}
	c := p.c
	ctx, cancel := context.WithTimeout(c.ctx, 2*c.cfg.MoveWait)
	defer cancel()
	p.pubMu.RLock()
	old := p.m
	p.pubMu.RUnlock()
	next, err := c.join(ctx, resultOf(f), nil)
	if err != nil {
		c.logEv(eventlog.PSMove, eventlog.FieldTopic, p.topic, eventlog.FieldGroup, f.Topic.Group, eventlog.FieldPrev, old.name,
			eventlog.FieldMoves, e, eventlog.FieldKind, "publisher", eventlog.FieldResult, "failed: "+err.Error())
		c.moveRetry.Store(true)
		return
	}
	next.addPub(p)
	p.setMoving(next.name, e)
	old.g.Send(ctx, marker(p.topic, e, envelope.Prepare))
	late := p.awaitReady(ctx, old, next, f.Topic.Following, e)
	if f := beforeSwitch.Load(); f != nil {
		(*f)()
	}
	p.pubMu.Lock()
	err = old.g.Send(ctx, marker(p.topic, e, envelope.Switch))
	p.m, p.moves = next, e
	p.pubMu.Unlock()
	p.setMoving("", 0)
	old.removePub(p)
	result := "switched"
	if len(late) > 0 {
		result = fmt.Sprintf("switched without waiting longer for %s", strings.Join(late, ", "))
	}
	if err != nil {
		result += "; the switch marker may be lost: " + err.Error()
	}
	c.logEv(eventlog.PSMove, eventlog.FieldTopic, p.topic, eventlog.FieldGroup, next.name, eventlog.FieldPrev, old.name,
		eventlog.FieldMoves, e, eventlog.FieldKind, "publisher", eventlog.FieldResult, result)
	c.dir.MoveDone(ctx, p.topic, e)
	c.release(old)
}

// awaitReady waits until every client in following that has a member in
// old's view has said it is ready for move e, and is in next's view as
// this member sees it (so that what this member sends there reaches it),
// or MoveWait passes; it returns those it gave up on.
func (p *Publisher) awaitReady(ctx context.Context, old, next *member, following []string, e uint64) []string {
	timer := time.NewTimer(p.c.cfg.MoveWait)
	defer timer.Stop()
	for {
		old.mu.Lock()
		oldViewed := old.viewed
		old.mu.Unlock()
		next.mu.Lock()
		nextViewed := next.viewed
		next.mu.Unlock()
		was, is := old.g.View(), next.g.View()
		p.readyMu.Lock()
		ch := p.readyCh
		missing := moving.Unready(following, e, p.ready,
			func(name string) bool { return hasClient(was, name) }, func(name string) bool { return hasClient(is, name) })
		p.readyMu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-oldViewed:
		case <-nextViewed:
		case <-timer.C:
			return missing
		case <-ctx.Done():
			return missing
		}
	}
}

// epoch is the move number of the group s delivers from.
func (s *Subscription) epoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.moves
}

// moveTo moves s to the group f names.
func (s *Subscription) moveTo(f directory.Found) {
	s.moveMu.Lock()
	defer s.moveMu.Unlock()
	e := f.Topic.Moves
	s.mu.Lock()
	old, closed, busy := s.m, s.closed, s.next != nil
	s.mu.Unlock()
	if closed || e <= s.epoch() {
		return
	}
	if busy {
		// One move at a time: a later one waits until this one switches
		// (its registration in the group it moves to, its events kept
		// from there), then the watcher looks the topic up again at its
		// next poll. Taking the later one now would leave the earlier
		// one's registration behind, and its member would hand each event
		// over twice.
		if e > s.moving {
			s.c.moveRetry.Store(true)
		}
		return
	}
	if f.Topic.Group == old.name {
		// The topic moved away and back before this subscription
		// followed: it is in the topic's group already, and takes the
		// move number. It missed what was published elsewhere meanwhile,
		// as a subscription that learns of two moves at once does
		// (moving.Waits). Registering it again in its own member would
		// hand each event over twice.
		s.mu.Lock()
		s.moves = e
		s.mu.Unlock()
		s.c.logEv(eventlog.PSMove, eventlog.FieldTopic, s.topic, eventlog.FieldGroup, old.name, eventlog.FieldPrev, old.name,
			eventlog.FieldMoves, e, eventlog.FieldKind, "subscriber", eventlog.FieldResult, "stayed")
		return
	}
	c := s.c
	ctx, cancel := context.WithTimeout(c.ctx, 2*c.cfg.MoveWait)
	defer cancel()
	s.mu.Lock()
	s.moving = e
	s.wait = moving.Waits(old.name, f.Topic.From, f.Topic.Switching)
	s.mu.Unlock()
	next, err := c.joinAs(ctx, resultOf(f), s, true)
	if err != nil {
		c.logEv(eventlog.PSMove, eventlog.FieldTopic, s.topic, eventlog.FieldGroup, f.Topic.Group, eventlog.FieldPrev, old.name,
			eventlog.FieldMoves, e, eventlog.FieldKind, "subscriber", eventlog.FieldResult, "failed: "+err.Error())
		c.moveRetry.Store(true)
		return
	}
	// An event of a later move came in the old group while s joined
	// (cameBackLocked): the topic is back there, and s stays.
	next.mu.Lock()
	s.mu.Lock()
	back := s.moves >= e && s.next == next
	if back {
		s.next, s.buf = nil, nil
	}
	s.mu.Unlock()
	if back {
		next.removeLocked(s, nil) // logs nothing: it was not logged (showLocked)
	}
	next.mu.Unlock()
	if back {
		c.release(next)
		return
	}
	old.g.Send(ctx, marker(s.topic, e, envelope.Ready))
	old.mu.Lock()
	old.check(s)
	old.mu.Unlock()
	// A live publisher switches within MovePoll and MoveWait of the move;
	// one that has not a MoveWait later is gone or cut off (a marker sent
	// while this member was partitioned away never comes): the
	// subscription stops waiting for it, and says so.
	time.AfterFunc(c.cfg.MovePoll+2*c.cfg.MoveWait, func() {
		old.mu.Lock()
		defer old.mu.Unlock()
		s.mu.Lock()
		if s.next != nil && s.moving == e && len(s.wait) > 0 {
			s.late = slices.Sorted(maps.Keys(s.wait))
			clear(s.wait)
		}
		s.mu.Unlock()
		old.check(s)
	})
}
