package pubsub

import (
	"context"
	"errors"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/group"
	"github.com/conclave/conclave/pubsub/envelope"
	"github.com/conclave/conclave/stack"
)

// What ps_publish says of a Publish: ok (every member of the view has the
// event), lost (group.ErrLost: some may have it) or error (not sent, or
// ctx ended first: it may still reach them).
const (
	PublishOK    = "ok"
	PublishLost  = "lost"
	PublishError = "error"
)

// publishLogged is Publish for a client that keeps a log: it logs
// ps_publish with the event's name in its group once the send returns.
func (p *Publisher) publishLogged(ctx context.Context, data []byte) error {
	s, err := p.m.g.SendSeq(ctx, envelope.Encode(p.topic, p.moves, data))
	result := PublishOK
	switch {
	case errors.Is(err, group.ErrLost):
		result = PublishLost
	case err != nil:
		result = PublishError
	}
	kv := []any{eventlog.FieldTopic, p.topic, eventlog.FieldGroup, p.m.name, eventlog.FieldFrom, p.m.g.Me().ID,
		eventlog.FieldResult, result}
	if s.Seq != 0 {
		kv = append(kv, eventlog.FieldView, s.View.String(), eventlog.FieldSeq, s.Seq)
	}
	if err != nil {
		kv = append(kv, eventlog.FieldError, err.Error())
	}
	p.c.logEv(eventlog.PSPublish, kv...)
	return err
}

// viewName is the name of view v in the log, "" for none.
func viewName(v stack.ViewID) string {
	if v == (stack.ViewID{}) {
		return ""
	}
	return v.String()
}

// logView logs ps_view: the member installed v (through a flush of its
// previous view, or not).
func (m *member) logView(v stack.View) {
	if !m.c.logs() {
		return
	}
	m.c.logEv(eventlog.PSView, eventlog.FieldGroup, m.name, eventlog.FieldMember, m.g.Me().ID,
		eventlog.FieldView, v.ID.String(), eventlog.FieldMembers, v.IDs(), eventlog.FieldFlushed, m.g.Flushed(v.ID))
}

// showLocked logs ps_subscribe for s's registration with m (s.mu held),
// as s starts handing over m's events: those it kept aside, at once, then
// m's from then on. Its since is the view of m's last delivery dispatched
// when s was registered: s hands over every delivery of the views after
// it. A registration that ends before (Subscribe failed, or the client
// stopped while it waited; a move that did not switch) handed over nothing
// and is not logged: it claims no view.
func (s *Subscription) showLocked(m *member) {
	if s.shown == nil {
		s.shown = map[*member]bool{}
	}
	s.shown[m] = true
	if !m.c.logs() {
		return
	}
	m.c.logEv(eventlog.PSSubscribe, eventlog.FieldTopic, s.topic, eventlog.FieldQoS, s.qos, eventlog.FieldGroup, m.name,
		eventlog.FieldMember, m.g.Me().ID, eventlog.FieldSince, viewName(s.since[m]))
}

// logEnded logs ps_unsubscribe as s is removed from m (under m.mu), if
// its registration there was logged (showLocked): until is the view of
// the last delivery dispatched, so s got every delivery of the views
// before it; it is absent when s ends with its member, once the member's
// every delivery was dispatched. reason is empty after Unsubscribe.
func (m *member) logEnded(s *Subscription, err error) {
	if !m.c.logs() {
		return
	}
	s.mu.Lock()
	shown := s.shown[m]
	s.mu.Unlock()
	if !shown {
		return
	}
	kv := []any{eventlog.FieldTopic, s.topic, eventlog.FieldGroup, m.name, eventlog.FieldMember, m.g.Me().ID}
	if err == nil || err != m.ended {
		kv = append(kv, eventlog.FieldUntil, viewName(m.last))
	}
	if err != nil {
		kv = append(kv, eventlog.FieldReason, err.Error())
	}
	m.c.logEv(eventlog.PSUnsub, kv...)
}

// logLeft logs ps_leave once the member stopped and the dispatcher
// handed over all it delivered: result is ok if it left the group (its
// flush contribution holds all it delivered), else why not (it stopped
// without leaving: to the others it crashed).
func (m *member) logLeft(err error) {
	if !m.c.logs() {
		return
	}
	result := PublishOK
	if err != nil {
		result = err.Error()
	}
	m.c.logEv(eventlog.PSLeave, eventlog.FieldGroup, m.name, eventlog.FieldMember, m.g.Me().ID,
		eventlog.FieldView, m.g.View().ID.String(), eventlog.FieldResult, result)
}

// fault breaks a client on purpose, for the tests that show the checkers
// catch what it does.
type fault struct {
	// deliveries, if set, stands between the group and the dispatcher.
	deliveries func(<-chan group.Delivery) <-chan group.Delivery
	// route, if set, names the topic whose subscriptions get an event of
	// topic t.
	route func(t string) string
}

// deliveries is the stream the dispatcher reads.
func (m *member) deliveries() <-chan group.Delivery {
	if f := m.c.fault; f != nil && f.deliveries != nil {
		return f.deliveries(m.g.Deliveries())
	}
	return m.g.Deliveries()
}

// route names the topic whose subscriptions get an event of topic t.
func (c *Client) route(t string) string {
	if c.fault != nil && c.fault.route != nil {
		return c.fault.route(t)
	}
	return t
}
