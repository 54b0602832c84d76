package directory

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// The queries below read the state without going through the log: a
// replica answers them after a ReadIndex round, so they see every command
// committed before they were asked. They return copies.

// TopicInfo describes an announced topic.
type TopicInfo struct {
	Topic string `json:"topic"`
	// QoS is the name of the topic's QoS and Hash its identity.
	QoS  string `json:"qos"`
	Hash string `json:"hash"`
	// Group is the topic's group.
	Group string `json:"group"`
	// Publishers and Subscribers are the client ids, sorted.
	Publishers  []string `json:"publishers"`
	Subscribers []string `json:"subscribers"`
	// Delivered and Filtered sum what the clients' last reports counted
	// of the topic's events (see Report); Rate is the topic's events per
	// second as its group's reporting members saw them (0 without
	// reports).
	Delivered uint64  `json:"delivered"`
	Filtered  uint64  `json:"filtered"`
	Rate      float64 `json:"rate"`
	// Moves counts the topic's moves between groups; From is the group
	// it last moved from, Switching and Following the topic's publishers
	// and subscribers when it moved, and Pending the publishers that have
	// not yet switched from it nor withdrawn (empty when the move is
	// finished).
	Moves     uint64   `json:"moves,omitempty"`
	From      string   `json:"from,omitempty"`
	Switching []string `json:"switching,omitempty"`
	Following []string `json:"following,omitempty"`
	Pending   []string `json:"pending,omitempty"`
}

// GroupInfo describes a group.
type GroupInfo struct {
	Name string `json:"name"`
	// QoS and Hash name the QoS the group carries; empty while it is free.
	QoS  string `json:"qos"`
	Hash string `json:"hash"`
	// Topics are the group's topics and Contacts its members' addresses,
	// sorted.
	Topics   []string `json:"topics"`
	Contacts []string `json:"contacts"`
	// Delivered and Filtered sum the counts its topics' reports; Waste
	// is the measured waste ratio, Filtered / (Delivered + Filtered), 0
	// without reports.
	Delivered uint64  `json:"delivered"`
	Filtered  uint64  `json:"filtered"`
	Waste     float64 `json:"waste"`
}

// QoSInfo describes a QoS that a group carries.
type QoSInfo struct {
	Name string
	Hash string
	// XML is the stack description in canonical form.
	XML []byte
}

// ClientInfo says which topics a client publishes and subscribes to.
type ClientInfo struct {
	Client     string
	Publishes  []string
	Subscribes []string
}

// Topics returns every announced topic, sorted by name.
func (s *State) Topics() []TopicInfo {
	out := make([]TopicInfo, 0, len(s.topics))
	m := s.measure()
	for _, name := range slices.Sorted(maps.Keys(s.topics)) {
		out = append(out, s.topicInfo(name, s.topics[name], m[name]))
	}
	return out
}

// Lookup returns the topic called name, if it was announced.
func (s *State) Lookup(name string) (TopicInfo, bool) {
	t, ok := s.topics[name]
	if !ok {
		return TopicInfo{}, false
	}
	return s.topicInfo(name, t, s.measure()[name]), true
}

func (s *State) topicInfo(name string, t *topic, m *measured) TopicInfo {
	q := s.qos[t.qos]
	ti := TopicInfo{
		Topic: name, QoS: q.name, Hash: q.hash, Group: groupName(t.group),
		Publishers: keys(t.pubs), Subscribers: keys(t.subs), Moves: t.moves,
	}
	if m != nil {
		ti.Delivered, ti.Filtered, ti.Rate = m.delivered, m.filtered, m.rate()
	}
	if t.moves > 0 {
		ti.From, ti.Switching, ti.Following, ti.Pending = groupName(t.from), keys(t.switching), keys(t.following), keys(t.pending)
	}
	return ti
}

// Groups returns every group, free ones included, in order: g0, g1...
func (s *State) Groups() []GroupInfo {
	out := make([]GroupInfo, len(s.groups))
	m := s.measure()
	for i := range s.groups {
		out[i] = s.groupInfo(i, m)
	}
	return out
}

// groupInfo describes group i, with the topics' measures m.
func (s *State) groupInfo(i int, m map[string]*measured) GroupInfo {
	g := s.groups[i]
	info := GroupInfo{Name: groupName(i), Hash: g.qos, Topics: keys(g.topics), Contacts: slices.Clone(g.contacts)}
	if q, ok := s.qos[g.qos]; ok {
		info.QoS = q.name
	}
	for t := range g.topics {
		if tm := m[t]; tm != nil {
			info.Delivered += tm.delivered
			info.Filtered += tm.filtered
		}
	}
	info.Waste = wasteRatio(info.Delivered, info.Filtered)
	return info
}

// QoS returns the QoS whose hash is hash, if a group carries it.
func (s *State) QoS(hash string) (QoSInfo, bool) {
	q, ok := s.qos[hash]
	if !ok {
		return QoSInfo{}, false
	}
	return QoSInfo{Name: q.name, Hash: q.hash, XML: slices.Clone(q.xml)}, true
}

// Clients returns every client that publishes or subscribes to a topic,
// sorted by id.
func (s *State) Clients() []ClientInfo {
	byID := map[string]*ClientInfo{}
	get := func(id string) *ClientInfo {
		c, ok := byID[id]
		if !ok {
			c = &ClientInfo{Client: id}
			byID[id] = c
		}
		return c
	}
	for _, name := range slices.Sorted(maps.Keys(s.topics)) {
		t := s.topics[name]
		for id := range t.pubs {
			get(id).Publishes = append(get(id).Publishes, name)
		}
		for id := range t.subs {
			get(id).Subscribes = append(get(id).Subscribes, name)
		}
	}
	out := make([]ClientInfo, 0, len(byID))
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		out = append(out, *byID[id])
	}
	return out
}

// keys returns the keys of m, sorted (nil if none).
func keys[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(m))
}

// sortedSet returns the distinct strings of ss, sorted, in a new slice
// (nil if none).
func sortedSet(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

// Query kinds: the first byte of a query that a client sends to be
// answered at a linearizable point (App.Query).
const (
	// QueryList asks for every topic and group: the answer is a Listing.
	QueryList byte = 1
	// QueryLookup, followed by a topic's name, asks for that topic: the
	// answer is a Found.
	QueryLookup byte = 2
	// QueryMoves asks when a topic last moved: the answer is a Moves.
	// Clients ask it often, and look their topics up when it changes.
	QueryMoves byte = 3
	// QueryGroup, followed by a group's name, asks for that group: the
	// answer is a GroupFound. Coordinators ask it to see that the
	// group's contacts still list their view.
	QueryGroup byte = 4
)

// GroupFound answers QueryGroup: the group, if it exists.
type GroupFound struct {
	Found bool      `json:"found"`
	Group GroupInfo `json:"group"`
	Error string    `json:"error,omitempty"`
}

// GroupQuery returns the query for group.
func GroupQuery(group string) []byte { return append([]byte{QueryGroup}, group...) }

// Moves answers QueryMoves.
type Moves struct {
	// Last is the log index of the last move, 0 if none.
	Last  uint64 `json:"last"`
	Error string `json:"error,omitempty"`
}

// Listing answers QueryList.
type Listing struct {
	Topics []TopicInfo `json:"topics"`
	Groups []GroupInfo `json:"groups"`
	Error  string      `json:"error,omitempty"`
}

// Found answers QueryLookup: the topic, if it was announced, and its QoS.
type Found struct {
	Found bool      `json:"found"`
	Topic TopicInfo `json:"topic"`
	XML   []byte    `json:"xml,omitempty"`
	Error string    `json:"error,omitempty"`
}

// LookupQuery returns the query for topic.
func LookupQuery(topic string) []byte { return append([]byte{QueryLookup}, topic...) }

// Query answers a query (QueryList, QueryLookup, QueryMoves, QueryGroup)
// in JSON.
func (s *State) Query(q []byte) []byte {
	var v any
	switch {
	case len(q) == 1 && q[0] == QueryList:
		v = Listing{Topics: s.Topics(), Groups: s.Groups()}
	case len(q) == 1 && q[0] == QueryMoves:
		v = Moves{Last: s.lastMove}
	case len(q) >= 1 && q[0] == QueryGroup:
		f := GroupFound{}
		if i, ok := s.groupIndex(string(q[1:])); ok {
			f.Found, f.Group = true, s.groupInfo(i, s.measure())
		}
		v = f
	case len(q) >= 1 && q[0] == QueryLookup:
		f := Found{}
		if t, ok := s.Lookup(string(q[1:])); ok {
			f.Found, f.Topic = true, t
			if qi, ok := s.QoS(t.Hash); ok {
				f.XML = qi.XML
			}
		}
		v = f
	default:
		v = Listing{Error: fmt.Sprintf("unknown query of %d bytes", len(q))}
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(Listing{Error: err.Error()})
	}
	return b
}
