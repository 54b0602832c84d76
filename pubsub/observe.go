package pubsub

import (
	"cmp"
	"maps"
	"slices"

	"github.com/conclave/conclave/eventlog"
)

// memberEvent returns what a member passes its events to: Config.OnEvent
// but for views (the client logs them as ps_view, with the group), or nil
// without OnEvent.
func (c *Client) memberEvent() func(eventlog.Event) {
	on := c.cfg.OnEvent
	if on == nil {
		return nil
	}
	return func(e eventlog.Event) {
		if e.Ev != eventlog.View {
			on(e)
		}
	}
}

// dirLeader logs that the directory's answers name another leader.
func (c *Client) dirLeader(prev, leader int) {
	c.logEv(eventlog.PSDirLeader, eventlog.FieldLeader, leader, eventlog.FieldPrev, prev)
}

// published counts an event of topic that every member of its view had.
func (c *Client) published(topic string) {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	s := c.stats[topic]
	if s == nil {
		s = &Stats{}
		c.stats[topic] = s
	}
	s.Published++
}

// Roles of a topic in TopicStatus.
const (
	RolePublisher  = "publisher"
	RoleSubscriber = "subscriber"
	RoleBoth       = "publisher+subscriber"
)

// Status is a snapshot of what a client does (Client.Status): its topics,
// its groups and the moves under way. It is what `conclave publish` and
// `conclave subscribe` serve as GET /status.
type Status struct {
	// Name is the client's name; Addr, where its groups reach it.
	Name string `json:"name"`
	Addr string `json:"addr"`
	// Cluster and Directory name the directory and its replicas'
	// addresses; DirectoryLeader is the replica its last answer named as
	// leader (-1: none yet).
	Cluster         string   `json:"cluster"`
	Directory       []string `json:"directory"`
	DirectoryLeader int      `json:"directory_leader"`
	// Topics are those it publishes or subscribes to, and those whose
	// events reached it only to be filtered, by name.
	Topics []TopicStatus `json:"topics"`
	// Groups are the groups it is a member of, by name.
	Groups []GroupStatus `json:"groups"`
	// Moves are the moves of its topics under way.
	Moves []MoveStatus `json:"moves"`
}

// TopicStatus is a topic of a client.
type TopicStatus struct {
	Topic string `json:"topic"`
	// QoS and Group are the topic's QoS and the group its events come
	// from (empty for a topic only filtered).
	QoS   string `json:"qos,omitempty"`
	Group string `json:"group,omitempty"`
	// Role is RolePublisher, RoleSubscriber, RoleBoth, or empty for a
	// topic whose events the client only filters.
	Role string `json:"role"`
	// Published, Delivered and Filtered are its Stats.
	Published uint64 `json:"published"`
	Delivered uint64 `json:"delivered"`
	Filtered  uint64 `json:"filtered"`
}

// GroupStatus is a group a client is a member of.
type GroupStatus struct {
	Group  string `json:"group"`
	QoS    string `json:"qos"`
	Member string `json:"member"`
	// View is the member's current view, Members its members oldest
	// first, Flushed whether it was installed through a flush.
	View    string   `json:"view"`
	Members []string `json:"members"`
	Flushed bool     `json:"flushed"`
	// Topics are the client's topics in the group: published,
	// subscribed to, or moving in.
	Topics []string `json:"topics"`
}

// MoveStatus is a move under way of a client's publisher or subscription
// of a topic, from group From to group To (the topic's move number
// Moves).
type MoveStatus struct {
	Topic string `json:"topic"`
	Kind  string `json:"kind"` // "publisher" or "subscriber"
	From  string `json:"from"`
	To    string `json:"to"`
	Moves uint64 `json:"moves"`
}

// Status returns what the client does now.
func (c *Client) Status() Status {
	st := Status{Name: c.cfg.Name, Addr: c.host.Addr(), Cluster: c.cfg.Cluster, Directory: slices.Clone(c.cfg.Directory),
		DirectoryLeader: c.dir.Leader(), Topics: []TopicStatus{}, Groups: []GroupStatus{}, Moves: []MoveStatus{}}
	topics := map[string]*TopicStatus{}
	topic := func(t string) *TopicStatus {
		ts := topics[t]
		if ts == nil {
			ts = &TopicStatus{Topic: t}
			topics[t] = ts
		}
		return ts
	}
	role := func(ts *TopicStatus, r string) {
		if ts.Role != "" && ts.Role != r {
			r = RoleBoth
		}
		ts.Role = r
	}
	pubs, subs := c.tracked()
	for _, p := range pubs {
		ts := topic(p.topic)
		ts.QoS, ts.Group = p.qos, p.Group()
		role(ts, RolePublisher)
		if to, moves := p.movingTo(); to != "" {
			st.Moves = append(st.Moves, MoveStatus{Topic: p.topic, Kind: RolePublisher, From: ts.Group, To: to, Moves: moves})
		}
	}
	for _, s := range subs {
		ts := topic(s.topic)
		s.mu.Lock()
		from, next, moves := s.m.name, s.next, s.moving
		s.mu.Unlock()
		ts.QoS, ts.Group = s.qos, from
		role(ts, RoleSubscriber)
		if next != nil {
			st.Moves = append(st.Moves, MoveStatus{Topic: s.topic, Kind: RoleSubscriber, From: from, To: next.name, Moves: moves})
		}
	}
	for t, s := range c.Stats() {
		ts := topic(t)
		ts.Published, ts.Delivered, ts.Filtered = s.Published, s.Delivered, s.Filtered
	}
	for _, t := range slices.Sorted(maps.Keys(topics)) {
		st.Topics = append(st.Topics, *topics[t])
	}
	c.mu.Lock()
	ms := slices.Collect(maps.Values(c.groups))
	c.mu.Unlock()
	for _, m := range ms {
		v := m.g.View()
		m.mu.Lock()
		var ts []string
		for t := range m.pubs {
			ts = append(ts, t)
		}
		for t := range m.subs {
			if !slices.Contains(ts, t) {
				ts = append(ts, t)
			}
		}
		m.mu.Unlock()
		slices.Sort(ts)
		st.Groups = append(st.Groups, GroupStatus{Group: m.name, QoS: m.qos, Member: m.g.Me().ID, View: v.ID.String(),
			Members: v.IDs(), Flushed: m.g.Flushed(v.ID), Topics: ts})
	}
	slices.SortFunc(st.Groups, func(a, b GroupStatus) int { return cmp.Compare(a.Group, b.Group) })
	slices.SortFunc(st.Moves, func(a, b MoveStatus) int {
		if c := cmp.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return cmp.Compare(a.Kind, b.Kind)
	})
	return st
}

// movingTo returns the group a move of p goes to, and its move number,
// while p moves ("" otherwise).
func (p *Publisher) movingTo() (string, uint64) {
	p.readyMu.Lock()
	defer p.readyMu.Unlock()
	return p.toGroup, p.toMoves
}

// setMoving notes the move of p under way to group (none if "").
func (p *Publisher) setMoving(group string, moves uint64) {
	p.readyMu.Lock()
	defer p.readyMu.Unlock()
	p.toGroup, p.toMoves = group, moves
}
