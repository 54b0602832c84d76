package check

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/conclave/conclave/eventlog"
)

// PubSubOptions describe a publish/subscribe run. A topic's QoS is read
// from the ps_announce and ps_subscribe events that name it ("total",
// "vsync"); these maps add topics whose events do not say.
type PubSubOptions struct {
	// Total names the topics of a total order QoS.
	Total map[string]bool
	// VSync names the topics of a view-synchronous QoS (total is one too).
	VSync map[string]bool
}

// PubSub checks the logs of publish/subscribe clients (docs/events.md,
// "Publish/subscribe client events"). A client is one incarnation of a
// node; its member of a group is named by the member id of ps_view; an
// event by its group, view, sender (from) and number (seq). A subscription
// covers a view V of its member when it was registered before the member
// handed over anything of V (its since is empty or a view numbered below
// V) and not removed before the member handed over everything of V (it is
// still there at the end of the log, or ended with its member, or its
// until is a view numbered above V). A member dispatched past V when it
// handed over an event of a view numbered above V or stopped (ps_leave, or
// a ps_unsubscribe without until): what it logged of V is all it
// delivered in V. A member passed from V to W through a flush when W is
// the view it installed right after V and its ps_view says flushed (in a
// log without the flag: W holds another member of V, as the views a
// member goes on to alone, excluded, dissolved into another group or
// after an abandoned flush, do not; docs/groups.md). A member left V
// cleanly when its ps_leave says ok and names V: it
// contributed all it delivered to the flush that let it out. Members that
// crashed in V or went on from it alone are held to nothing more than
// TopicIsolation, NoDuplicate and FIFO for V.
//
//   - TopicIsolation: a client hands the application only events of a
//     topic it subscribes to at that moment.
//   - NoDuplicate: a client hands over each event at most once.
//   - FIFO: a client hands over each publisher's events of a topic in the
//     order its group numbered them (view number, then sequence number:
//     a member's views are numbered in increasing order), and, within one
//     view and one stretch of being subscribed, without a gap: every event
//     of the topic known from the logs (published, or handed over by
//     anyone) numbered between two it handed over, it handed over too. The
//     group delivers each sender's messages of a view 1, 2, 3... to every
//     member (total numbers a sender's data messages so too).
//   - TopicOrder (total topics): two clients hand over the events of a
//     view that they both handed over in the same order, if their members
//     passed from it through a flush to the same view, or one or both left
//     it cleanly and every member that passed on from it through a flush
//     went to one view (one that left cleanly delivered a prefix of its
//     order; which flush let it out is not known when there were two).
//     The group's total order is not uniform: a member that crashed or went
//     on alone may have delivered a different last part.
//   - VSync (vsync and total topics): two clients whose members passed
//     from V to the same view through a flush, whose subscriptions covered
//     V and which dispatched past V, handed over the same events of the
//     topic in V; one that left V cleanly, with a subscription that covered
//     V, handed over none that they did not, if they all went to one view.
//   - Stable (vsync and total topics): an event whose ps_publish says ok
//     in V was handed over by every client whose member of V passed from V
//     through a flush to the view its publisher's member passed to (to any
//     view, if the publisher's did not pass on through a flush: it
//     crashed, went on alone, left, or the log ends), whose subscription
//     covered V and which dispatched past V. A member that left V is not
//     bound: a message acknowledged through the flush is delivered by the
//     members that install the next view only.
func PubSub(h []eventlog.Event, o PubSubOptions) []Violation {
	r := readPubSub(h, o)
	out := r.out
	out = append(out, r.fifo()...)
	out = append(out, r.topicOrder()...)
	out = append(out, r.vsync()...)
	out = append(out, r.stable()...)
	return out
}

// psClient is one incarnation of a client.
type psClient struct {
	node string
	inc  uint64
}

func (c psClient) String() string { return fmt.Sprintf("%s.%d", c.node, c.inc) }

// psMsg names an event in its group.
type psMsg struct {
	group, view, from string
	seq               int
}

func (m psMsg) String() string {
	return fmt.Sprintf("%s#%d of view %s in %s", m.from, m.seq, m.view, m.group)
}

// psMember is a client's member of a group.
type psMember struct {
	client   psClient
	group    string
	views    []string        // in the order installed
	flushed  map[string]bool // of views whose ps_view says: installed through a flush
	past     uint64          // the highest view number it dispatched a delivery of
	drained  bool            // it ended, every delivery dispatched
	left     bool            // it left the group (ps_leave ok)
	leftView string          // the view it left
}

// psSpan is one subscription of a client's member.
type psSpan struct {
	member       string
	since, until string
	open, ended  bool // ended: with its member, everything dispatched
	ev           eventlog.Event
}

// psDelivery is a ps_deliver as the checkers read it.
type psDelivery struct {
	msg   psMsg
	topic string
	run   int // the stretch of being subscribed it was handed over in
	ev    eventlog.Event
}

type psClientTopic struct {
	c     psClient
	topic string
}

type psRun struct {
	out       []Violation
	qos       map[string]string // topic → "total", "vsync" or other
	members   map[string]*psMember
	memberIn  map[psClientView]string // the client's member in a view
	viewMems  map[string][]string     // group/view → members
	spans     map[psClientTopic][]*psSpan
	delivered map[psClient][]psDelivery
	inView    map[psClientView][]psDelivery
	known     map[string]map[psMsg]bool // topic → events known to exist
	published []eventlog.Event
}

type psClientView struct {
	c           psClient
	group, view string
}

func readPubSub(h []eventlog.Event, o PubSubOptions) *psRun {
	r := &psRun{qos: map[string]string{}, members: map[string]*psMember{}, memberIn: map[psClientView]string{},
		viewMems: map[string][]string{}, spans: map[psClientTopic][]*psSpan{}, delivered: map[psClient][]psDelivery{},
		inView: map[psClientView][]psDelivery{}, known: map[string]map[psMsg]bool{}}
	for t := range o.VSync {
		r.qos[t] = "vsync"
	}
	for t := range o.Total {
		r.qos[t] = "total"
	}
	subscribed := map[psClientTopic]int{}
	run := map[psClientTopic]int{}
	seen := map[psClient]map[psMsg]bool{}
	member := func(id string, c psClient, group string) *psMember {
		m := r.members[id]
		if m == nil {
			m = &psMember{client: c, group: group}
			r.members[id] = m
		}
		return m
	}
	for _, e := range h {
		c := psClient{e.Node, e.Inc}
		topic := e.Str(eventlog.FieldTopic)
		ct := psClientTopic{c, topic}
		group := e.Str(eventlog.FieldGroup)
		switch e.Ev {
		case eventlog.PSAnnounce, eventlog.PSSubscribe:
			if q := e.Str(eventlog.FieldQoS); q != "" && r.qos[topic] != "total" {
				r.qos[topic] = q
			}
			if e.Ev == eventlog.PSAnnounce {
				continue
			}
			if subscribed[ct] == 0 {
				run[ct]++
			}
			subscribed[ct]++
			r.spans[ct] = append(r.spans[ct], &psSpan{member: e.Str(eventlog.FieldMember), since: e.Str(eventlog.FieldSince), open: true, ev: e})
		case eventlog.PSUnsub:
			if subscribed[ct] > 0 {
				subscribed[ct]--
			}
			// The oldest open subscription ends: of two, that covers
			// least.
			for _, s := range r.spans[ct] {
				if s.open && (s.member == e.Str(eventlog.FieldMember) || e.Str(eventlog.FieldMember) == "") {
					s.open = false
					s.until, s.ended = e.Str(eventlog.FieldUntil), !has(e, eventlog.FieldUntil)
					break
				}
			}
			if id := e.Str(eventlog.FieldMember); id != "" {
				m := member(id, c, group)
				if !has(e, eventlog.FieldUntil) {
					m.drained = true
				} else {
					m.past = max(m.past, viewSeq(e.Str(eventlog.FieldUntil)))
				}
			}
		case eventlog.PSLeave:
			m := member(e.Str(eventlog.FieldMember), c, group)
			m.drained = true
			m.left = e.Str(eventlog.FieldResult) == "ok"
			m.leftView = e.Str(eventlog.FieldView)
		case eventlog.PSView:
			id, view := e.Str(eventlog.FieldMember), e.Str(eventlog.FieldView)
			m := member(id, c, group)
			m.views = append(m.views, view)
			if f, ok := e.Fields[eventlog.FieldFlushed].(bool); ok {
				if m.flushed == nil {
					m.flushed = map[string]bool{}
				}
				m.flushed[view] = f
			}
			r.memberIn[psClientView{c, group, view}] = id
			r.viewMems[group+"/"+view] = strs(e, eventlog.FieldMembers)
		case eventlog.PSPublish:
			if has(e, eventlog.FieldSeq) {
				r.know(topic, psMsg{group, e.Str(eventlog.FieldView), e.Str(eventlog.FieldFrom), intField(e, eventlog.FieldSeq)})
			}
			r.published = append(r.published, e)
		case eventlog.PSDeliver:
			if subscribed[ct] == 0 {
				r.out = append(r.out, Violation{Rule: "TopicIsolation", Event: e,
					Msg: fmt.Sprintf("%s handed over an event of %q, which it does not subscribe to", c, topic)})
			}
			m := psMsg{group, e.Str(eventlog.FieldView), e.Str(eventlog.FieldFrom), intField(e, eventlog.FieldSeq)}
			if seen[c] == nil {
				seen[c] = map[psMsg]bool{}
			}
			if seen[c][m] {
				r.out = append(r.out, Violation{Rule: "NoDuplicate", Event: e,
					Msg: fmt.Sprintf("%s handed over event %s twice", c, m)})
				continue
			}
			seen[c][m] = true
			r.know(topic, m)
			if id := e.Str(eventlog.FieldMember); id != "" {
				mm := member(id, c, group)
				mm.past = max(mm.past, viewSeq(m.view))
			}
			d := psDelivery{msg: m, topic: topic, run: run[ct], ev: e}
			r.delivered[c] = append(r.delivered[c], d)
			cv := psClientView{c, group, m.view}
			r.inView[cv] = append(r.inView[cv], d)
		}
	}
	return r
}

func (r *psRun) know(topic string, m psMsg) {
	if r.known[topic] == nil {
		r.known[topic] = map[psMsg]bool{}
	}
	r.known[topic][m] = true
}

// synchronous reports whether topic's QoS is view-synchronous.
func (r *psRun) synchronous(topic string) bool {
	return r.qos[topic] == "vsync" || r.qos[topic] == "total"
}

// next returns the view member id passed to from view through a flush, or
// "".
func (r *psRun) next(id, view string) string {
	m := r.members[id]
	if m == nil {
		return ""
	}
	i := slices.Index(m.views, view)
	if i < 0 || i+1 >= len(m.views) {
		return ""
	}
	next := m.views[i+1]
	if f, ok := m.flushed[next]; ok {
		if f {
			return next
		}
		return ""
	}
	// Without the flag: the views a member goes on to alone hold no
	// other member of the view it was in.
	before := r.viewMems[m.group+"/"+view]
	for _, o := range r.viewMems[m.group+"/"+next] {
		if o != id && slices.Contains(before, o) {
			return next
		}
	}
	return ""
}

// past reports whether member id dispatched everything of view.
func (r *psRun) past(id, view string) bool {
	m := r.members[id]
	return m != nil && (m.drained || m.past > viewSeq(view))
}

// covers reports whether client c's subscription to topic covered view
// of its member id.
func (r *psRun) covers(c psClient, topic, id, view string) bool {
	n := viewSeq(view)
	for _, s := range r.spans[psClientTopic{c, topic}] {
		if s.member != id || s.since != "" && viewSeq(s.since) >= n {
			continue
		}
		if s.open || s.ended || viewSeq(s.until) > n {
			return true
		}
	}
	return false
}

// psStream is a publisher's events of a topic in a view.
type psStream struct{ topic, group, view, from string }

func (r *psRun) fifo() []Violation {
	var out []Violation
	type stream struct {
		c           psClient
		topic, from string
	}
	type stretch struct {
		c                  psClient
		topic, group, view string
		from               string
		run                int
	}
	// The known events of each publisher's stream of a topic in a view.
	known := map[psStream][]int{}
	for topic, ms := range r.known {
		for m := range ms {
			k := psStream{topic, m.group, m.view, m.from}
			known[k] = append(known[k], m.seq)
		}
	}
	for _, c := range sortedClients(r.delivered) {
		last := map[stream]psDelivery{}
		got := map[stretch][]int{}
		for _, d := range r.delivered[c] {
			k := stream{c, d.topic, d.msg.from}
			if p, ok := last[k]; ok {
				pv, v := viewSeq(p.msg.view), viewSeq(d.msg.view)
				if v < pv || v == pv && d.msg.seq <= p.msg.seq {
					out = append(out, Violation{Rule: "FIFO", Event: d.ev,
						Msg: fmt.Sprintf("%s handed over %s after %s", c, d.msg, p.msg)})
				}
			}
			last[k] = d
			s := stretch{c, d.topic, d.msg.group, d.msg.view, d.msg.from, d.run}
			got[s] = append(got[s], d.msg.seq)
		}
		for s, seqs := range got {
			lo, hi := slices.Min(seqs), slices.Max(seqs)
			var missing []int
			for _, seq := range known[psStream{s.topic, s.group, s.view, s.from}] {
				if seq > lo && seq < hi && !slices.Contains(seqs, seq) {
					missing = append(missing, seq)
				}
			}
			if len(missing) > 0 {
				slices.Sort(missing)
				out = append(out, Violation{Rule: "FIFO", Event: eventlog.Event{Node: c.node, Inc: c.inc, Ev: eventlog.PSDeliver},
					Msg: fmt.Sprintf("%s handed over events %d..%d of %s in view %s of %q but not %v", c, lo, hi, s.from, s.view, s.topic, missing)})
			}
		}
	}
	return out
}

// psViewPass is how the members of a view left it: through a flush to a
// next view, or by leaving cleanly (ps_leave ok, its last view).
type psViewPass struct {
	group, view string
	byNext      map[string][]psClientView
	nexts       []string
	leavers     []psClientView
}

// passes returns how the members of each view left it, views in the order
// first seen (members that crashed in it or went on alone are left out).
func (r *psRun) passes() []*psViewPass {
	var out []*psViewPass
	byView := map[string]*psViewPass{}
	ids := make([]string, 0, len(r.members))
	for id := range r.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		m := r.members[id]
		for _, v := range m.views {
			next := r.next(id, v)
			leaver := next == "" && m.left && v == m.leftView
			if next == "" && !leaver {
				continue
			}
			p := byView[m.group+"/"+v]
			if p == nil {
				p = &psViewPass{group: m.group, view: v, byNext: map[string][]psClientView{}}
				byView[m.group+"/"+v] = p
				out = append(out, p)
			}
			cv := psClientView{m.client, m.group, v}
			if leaver {
				p.leavers = append(p.leavers, cv)
				continue
			}
			if p.byNext[next] == nil {
				p.nexts = append(p.nexts, next)
			}
			p.byNext[next] = append(p.byNext[next], cv)
		}
	}
	return out
}

func (r *psRun) topicOrder() []Violation {
	var out []Violation
	for _, p := range r.passes() {
		// Members that left cleanly contributed all they delivered to the
		// flush that let them out: when all that passed on went to one
		// view, they delivered prefixes of its order.
		var sets [][]psClientView
		for _, n := range p.nexts {
			sets = append(sets, p.byNext[n])
		}
		if len(sets) <= 1 {
			sets = [][]psClientView{append(slices.Concat(sets...), p.leavers...)}
		}
		for _, cvs := range sets {
			for i, a := range cvs {
				for _, b := range cvs[i+1:] {
					out = append(out, r.sameOrder(a, b)...)
				}
			}
		}
	}
	return out
}

// sameOrder compares the order in which clients a and b handed over their
// common events of each total topic in a view.
func (r *psRun) sameOrder(a, b psClientView) []Violation {
	var out []Violation
	pos := map[psMsg]int{}
	for i, d := range r.inView[b] {
		pos[d.msg] = i
	}
	last := map[string]psDelivery{} // topic → a's last common event
	reported := map[string]bool{}
	for _, d := range r.inView[a] {
		if r.qos[d.topic] != "total" || reported[d.topic] {
			continue
		}
		j, ok := pos[d.msg]
		if !ok {
			continue
		}
		if p, ok := last[d.topic]; ok && pos[p.msg] > j {
			reported[d.topic] = true
			out = append(out, Violation{Rule: "TopicOrder", Event: d.ev,
				Msg: fmt.Sprintf("%s handed over %s after %s, %s the other way round (topic %q)", a.c, d.msg, p.msg, b.c, d.topic)})
			continue
		}
		last[d.topic] = d
	}
	return out
}

// topicSet returns the events of topic that cv's client handed over in
// its view, if its subscription covered the view and it dispatched past
// it.
func (r *psRun) topicSet(cv psClientView, topic string) (map[psMsg]bool, bool) {
	id := r.memberIn[cv]
	if !r.past(id, cv.view) || !r.covers(cv.c, topic, id, cv.view) {
		return nil, false
	}
	set := map[psMsg]bool{}
	for _, d := range r.inView[cv] {
		if d.topic == topic {
			set[d.msg] = true
		}
	}
	return set, true
}

func (r *psRun) vsync() []Violation {
	var out []Violation
	at := func(c psClient, group, view string) eventlog.Event {
		return eventlog.Event{Node: c.node, Inc: c.inc, Ev: eventlog.PSView,
			Fields: map[string]any{eventlog.FieldGroup: group, eventlog.FieldView: view}}
	}
	for _, p := range r.passes() {
		for _, next := range p.nexts {
			// Per topic, the first client's set, to which the others
			// compare.
			type ref struct {
				c   psClient
				set map[psMsg]bool
			}
			refs := map[string]ref{}
			var topics []string
			for _, cv := range p.byNext[next] {
				for _, topic := range r.topicsOf(cv.c, p.group) {
					if !r.synchronous(topic) {
						continue
					}
					set, ok := r.topicSet(cv, topic)
					if !ok {
						continue
					}
					f, ok := refs[topic]
					if !ok {
						refs[topic] = ref{cv.c, set}
						topics = append(topics, topic)
						continue
					}
					if diff := psDiff(f.set, set); diff != "" {
						out = append(out, Violation{Rule: "VSync", Event: at(cv.c, p.group, next),
							Msg: fmt.Sprintf("%s and %s passed from view %s to %s having handed over different events of %q: %s", f.c, cv.c, p.view, next, topic, diff)})
					}
				}
			}
			if len(p.nexts) != 1 {
				continue
			}
			// A member that left cleanly handed over no more than those
			// that passed on.
			for _, cv := range p.leavers {
				for _, topic := range topics {
					set, ok := r.topicSet(cv, topic)
					if !ok {
						continue
					}
					f := refs[topic]
					extra := map[psMsg]bool{}
					for m := range set {
						if !f.set[m] {
							extra[m] = true
						}
					}
					if len(extra) > 0 {
						out = append(out, Violation{Rule: "VSync", Event: at(cv.c, p.group, p.view),
							Msg: fmt.Sprintf("%s left view %s having handed over events of %q that %s, which passed to %s, did not: %s", cv.c, p.view, topic, f.c, next, psDiff(nil, extra))})
					}
				}
			}
		}
	}
	return out
}

// topicsOf returns the topics client c subscribed to in group, sorted.
func (r *psRun) topicsOf(c psClient, group string) []string {
	var out []string
	for ct, ss := range r.spans {
		if ct.c != c {
			continue
		}
		for _, s := range ss {
			if s.ev.Str(eventlog.FieldGroup) == group {
				out = append(out, ct.topic)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

func (r *psRun) stable() []Violation {
	var out []Violation
	got := map[psClientView]map[psMsg]bool{}
	for _, e := range r.published {
		topic := e.Str(eventlog.FieldTopic)
		if e.Str(eventlog.FieldResult) != "ok" || !has(e, eventlog.FieldSeq) || !r.synchronous(topic) {
			continue
		}
		m := psMsg{e.Str(eventlog.FieldGroup), e.Str(eventlog.FieldView), e.Str(eventlog.FieldFrom), intField(e, eventlog.FieldSeq)}
		senderNext := r.next(m.from, m.view)
		for _, id := range r.viewMems[m.group+"/"+m.view] {
			mem := r.members[id]
			if mem == nil {
				continue
			}
			next := r.next(id, m.view)
			if next == "" || senderNext != "" && next != senderNext || !r.past(id, m.view) || !r.covers(mem.client, topic, id, m.view) {
				continue
			}
			cv := psClientView{mem.client, m.group, m.view}
			if got[cv] == nil {
				got[cv] = map[psMsg]bool{}
				for _, d := range r.inView[cv] {
					got[cv][d.msg] = true
				}
			}
			if !got[cv][m] {
				out = append(out, Violation{Rule: "Stable", Event: e,
					Msg: fmt.Sprintf("%s passed from view %s to %s subscribed to %q without handing over %s, acknowledged to its publisher", mem.client, m.view, next, topic, m)})
			}
		}
	}
	return out
}

func psDiff(a, b map[psMsg]bool) string {
	var only []string
	for m := range a {
		if !b[m] {
			only = append(only, "-"+m.String())
		}
	}
	for m := range b {
		if !a[m] {
			only = append(only, "+"+m.String())
		}
	}
	slices.Sort(only)
	if len(only) > 5 {
		only = append(only[:5], "...")
	}
	return strings.Join(only, ", ")
}

func sortedClients[V any](m map[psClient]V) []psClient {
	out := make([]psClient, 0, len(m))
	for c := range m {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b psClient) int {
		if c := strings.Compare(a.node, b.node); c != 0 {
			return c
		}
		return cmp.Compare(a.inc, b.inc)
	})
	return out
}

// has reports whether e has field k.
func has(e eventlog.Event, k string) bool {
	_, ok := e.Fields[k]
	return ok
}
