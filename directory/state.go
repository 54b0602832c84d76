package directory

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/conclave/conclave/layers"
	"github.com/conclave/conclave/stack"
)

// DefaultMaxSessions is the number of client sessions a State remembers
// when StateConfig.MaxSessions is 0.
const DefaultMaxSessions = 10000

// MaxGroupsLimit bounds StateConfig.MaxGroups.
const MaxGroupsLimit = 1 << 16

// StateConfig configures a State. Every replica of a directory must have
// the same configuration: MaxGroups and MaxSessions shape the results of
// commands, and Restore refuses a snapshot taken with other values.
type StateConfig struct {
	// MaxGroups is the number of groups, named g0 to g<MaxGroups-1>. It
	// must be above the number of shipped QoS, so that each can have a
	// group.
	MaxGroups int
	// MaxSessions bounds the clients whose last command is remembered
	// (DefaultMaxSessions if 0). Beyond it, the client whose last command
	// is the oldest is forgotten.
	MaxSessions int
	// Policy places new topics in groups (FreeThenLeastWaste if nil).
	Policy Policy
	// MoveSpacing is the least number of log entries between two moves
	// the state decides itself (DefaultMoveSpacing if 0; negative: it
	// decides none, and topics move only when a Move command asks).
	MoveSpacing int
}

// Validate says what is wrong with c, if anything.
func (c StateConfig) Validate() error {
	shipped := layers.Shipped()
	switch {
	case c.MaxGroups <= len(shipped):
		return fmt.Errorf("max groups is %d: it must be above the number of shipped QoS, %d (%s), so that each can have a group",
			c.MaxGroups, len(shipped), strings.Join(shipped, ", "))
	case c.MaxGroups > MaxGroupsLimit:
		return fmt.Errorf("max groups is %d, over the limit of %d", c.MaxGroups, MaxGroupsLimit)
	case c.MaxSessions < 0:
		return fmt.Errorf("max sessions is %d: it must be positive (or 0 for %d)", c.MaxSessions, DefaultMaxSessions)
	case c.MoveSpacing > MaxMoveSpacing:
		return fmt.Errorf("move spacing is %d, over the limit of %d", c.MoveSpacing, MaxMoveSpacing)
	}
	return nil
}

// State is the directory's replicated state machine: topics with their
// QoS and group, the groups, who publishes and subscribes what, the
// last command of each client, and the last counts each client reported. It implements App. It is not safe for
// concurrent use; the replica that owns it serialises Apply and the
// queries.
type State struct {
	cfg     StateConfig
	reg     *stack.Registry
	shipped map[string]qos // by shipped name

	applied  uint64
	lastMove uint64          // index of the last move (0: none yet)
	qos      map[string]*qos // the QoS groups carry, by hash
	groups   []group         // group i is named g<i>
	topics   map[string]*topic
	sessions map[string]*session
	reports  map[string]*report // by client
}

type group struct {
	qos      string // hash; empty while the group is free
	topics   map[string]struct{}
	pubs     map[string]int // client → number of the group's topics it publishes
	subs     map[string]int // client → number of the group's topics it subscribes to
	contacts []string       // sorted, distinct
}

type topic struct {
	qos   string // hash
	group int
	pubs  map[string]struct{}
	subs  map[string]struct{}

	// moves counts the topic's moves; from is the group of the last
	// (valid if moves > 0), at is its index; switching and following are
	// the topic's publishers and subscribers then, and pending the
	// publishers that have not yet said they switched to the new group,
	// nor withdrawn.
	moves     uint64
	from      int
	at        uint64
	switching map[string]struct{}
	following map[string]struct{}
	pending   map[string]struct{}
}

// session is what the state remembers of a client: its last command and
// that command's result, without XML and contacts (filled in again from
// the state when the command is retried).
type session struct {
	seq    uint64
	index  uint64 // where it was applied, for forgetting the oldest
	result Result
}

// NewState returns an empty state configured by cfg.
func NewState(cfg StateConfig) (*State, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.Policy == nil {
		cfg.Policy = FreeThenLeastWaste{}
	}
	switch {
	case cfg.MoveSpacing == 0:
		cfg.MoveSpacing = DefaultMoveSpacing
	case cfg.MoveSpacing < 0:
		cfg.MoveSpacing = -1
	}
	reg := layers.Registry()
	shipped, err := shippedQoS(reg)
	if err != nil {
		return nil, err
	}
	s := &State{cfg: cfg, reg: reg, shipped: shipped}
	s.reset()
	return s, nil
}

// reset empties s.
func (s *State) reset() {
	s.applied = 0
	s.lastMove = 0
	s.qos = map[string]*qos{}
	s.groups = make([]group, s.cfg.MaxGroups)
	for i := range s.groups {
		s.groups[i] = newGroup()
	}
	s.topics = map[string]*topic{}
	s.sessions = map[string]*session{}
	s.reports = map[string]*report{}
}

func newGroup() group {
	return group{topics: map[string]struct{}{}, pubs: map[string]int{}, subs: map[string]int{}}
}

// Applied returns the index of the last command applied.
func (s *State) Applied() uint64 { return s.applied }

// Apply applies the command committed at index and returns its encoded
// Result (see DecodeResult). Indexes must increase: a command at an index
// not above the last is refused (CodeBadCommand) and changes nothing. An
// empty command (raft's own entries) changes only the applied index and
// returns nil.
//
// A command whose sequence number equals its client's last returns the
// result of that last command again (with the topic's current contacts)
// and changes nothing; one below it is refused with CodeStale.
func (s *State) Apply(index uint64, cmd []byte) []byte {
	if index <= s.applied {
		if len(cmd) == 0 {
			return nil
		}
		return EncodeResult(fail(CodeBadCommand, "entry %d applied after entry %d: applied twice, or out of order", index, s.applied))
	}
	s.applied = index
	if len(cmd) == 0 {
		return nil
	}
	c, err := DecodeCommand(cmd)
	if err != nil {
		return EncodeResult(fail(CodeBadCommand, "%v", err))
	}
	switch {
	case c.Client == "":
		return EncodeResult(fail(CodeBadCommand, "a command without a client id"))
	case c.Seq == 0:
		return EncodeResult(fail(CodeBadCommand, "client %q sent sequence number 0; they start at 1", c.Client))
	}
	if ss, ok := s.sessions[c.Client]; ok && c.Seq <= ss.seq {
		if c.Seq < ss.seq {
			return EncodeResult(fail(CodeStale, "stale sequence: client %q sent command %d after command %d was applied", c.Client, c.Seq, ss.seq))
		}
		return EncodeResult(s.fill(ss.result))
	}
	r := s.do(c, index)
	s.remember(c.Client, c.Seq, index, r)
	return EncodeResult(r)
}

// do applies the operation of c.
func (s *State) do(c Command, index uint64) Result {
	switch op := c.Op.(type) {
	case Announce:
		return s.announce(c.Client, op)
	case Subscribe:
		t, r := s.topic(op.Topic)
		if r != nil {
			return *r
		}
		_, was := t.subs[c.Client]
		s.interest(t, c.Client, true, true)
		s.considerFor(c.Client, op.Topic, true, was)
		return s.topicResult(t)
	case Unsubscribe:
		t, r := s.topic(op.Topic)
		if r != nil {
			return *r
		}
		s.interest(t, c.Client, true, false)
		s.consider(op.Topic)
		return Result{}
	case Withdraw:
		t, r := s.topic(op.Topic)
		if r != nil {
			return *r
		}
		s.interest(t, c.Client, false, false)
		delete(t.pending, c.Client)
		s.consider(op.Topic)
		return Result{}
	case Move:
		return s.moveCommand(op)
	case MoveDone:
		t, r := s.topic(op.Topic)
		if r != nil {
			return *r
		}
		if op.Moves == t.moves {
			delete(t.pending, c.Client)
		}
		return s.topicResult(t)
	case Contacts:
		return s.setContacts(op)
	case AddContact:
		return s.addContact(op)
	case RemoveContact:
		return s.removeContact(op)
	case Report:
		return s.report(c.Client, index, op)
	}
	return fail(CodeBadCommand, "no operation")
}

func (s *State) announce(client string, a Announce) Result {
	if a.Topic == "" {
		return fail(CodeBadCommand, "an announce of the empty topic")
	}
	q, bad := s.resolve(a)
	if bad != nil {
		return *bad
	}
	t, ok := s.topics[a.Topic]
	if ok && t.qos != q.hash {
		cur := s.qos[t.qos]
		return fail(CodeQoSConflict, "topic %q has QoS %s (hash %s); this announce asks for %s (hash %s)",
			a.Topic, cur.name, cur.hash, q.name, q.hash)
	}
	if !ok {
		gi, r := s.place(a.Topic, q, client)
		if r != nil {
			return *r
		}
		t = s.addTopic(a.Topic, q, gi)
	}
	_, was := t.pubs[client]
	s.interest(t, client, false, true)
	if ok {
		s.considerFor(client, a.Topic, false, was)
	}
	return s.topicResult(t)
}

// topic returns the announced topic called name, or a result saying why
// not.
func (s *State) topic(name string) (*topic, *Result) {
	if name == "" {
		r := fail(CodeBadCommand, "the empty topic")
		return nil, &r
	}
	t, ok := s.topics[name]
	if !ok {
		r := fail(CodeUnknownTopic, "topic %q is not announced: no publisher has declared its QoS yet", name)
		return nil, &r
	}
	return t, nil
}

// place asks the policy for a group for a new topic of QoS q announced by
// client, and checks its answer.
func (s *State) place(name string, q qos, client string) (int, *Result) {
	refuse := func(format string, args ...any) (int, *Result) {
		r := fail(CodeNoGroup, format, args...)
		return 0, &r
	}
	gname, ok := s.cfg.Policy.Place(NewTopic{Name: name, QoS: q.hash, Interested: []string{client}}, s.loads())
	if !ok {
		return refuse("%s", s.noGroup(name, q))
	}
	gi, ok := s.groupIndex(gname)
	if !ok {
		return refuse("the placement policy chose %q for topic %q, which is not a group", gname, name)
	}
	if g := s.groups[gi]; g.qos != "" && g.qos != q.hash {
		cur := s.qos[g.qos]
		return refuse("the placement policy chose group %s for topic %q of QoS %s (hash %s), but it carries QoS %s (hash %s)",
			gname, name, q.name, q.hash, cur.name, cur.hash)
	}
	return gi, nil
}

// loads returns what a policy knows of the groups.
func (s *State) loads() []GroupLoad {
	out := make([]GroupLoad, len(s.groups))
	for i, g := range s.groups {
		out[i] = GroupLoad{Name: groupName(i), QoS: g.qos, Topics: len(g.topics), Publishers: len(g.pubs), Subscribers: len(g.subs),
			Interest: s.groupInterest(g)}
	}
	return out
}

// groupInterest returns g's topics, sorted, each with its publishers and
// subscribers.
func (s *State) groupInterest(g group) []TopicInterest {
	if len(g.topics) == 0 {
		return nil
	}
	out := make([]TopicInterest, 0, len(g.topics))
	for name := range g.topics {
		t := s.topics[name]
		clients := make([]string, 0, len(t.pubs)+len(t.subs))
		for c := range t.pubs {
			clients = append(clients, c)
		}
		for c := range t.subs {
			if _, ok := t.pubs[c]; !ok {
				clients = append(clients, c)
			}
		}
		slices.Sort(clients)
		out = append(out, TopicInterest{Topic: name, Clients: clients})
	}
	slices.SortFunc(out, func(a, b TopicInterest) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

// noGroup says why a new topic of QoS q has no group.
func (s *State) noGroup(name string, q qos) string {
	var order []string // QoS hashes in the order of their first group
	byQoS := map[string][]string{}
	for i, g := range s.groups {
		if g.qos == "" || g.qos == q.hash {
			return fmt.Sprintf("the placement policy put topic %q of QoS %s (hash %s) in no group", name, q.name, q.hash)
		}
		if _, seen := byQoS[g.qos]; !seen {
			order = append(order, g.qos)
		}
		byQoS[g.qos] = append(byQoS[g.qos], groupName(i))
	}
	parts := make([]string, len(order))
	for i, h := range order {
		gs := byQoS[h]
		list := strings.Join(gs[:min(len(gs), 8)], " ")
		if len(gs) > 8 {
			list += fmt.Sprintf(" and %d more", len(gs)-8)
		}
		parts[i] = s.qos[h].name + ": " + list
	}
	return fmt.Sprintf("no group left for QoS %s (hash %s): all %d groups carry other QoS (%s)",
		q.name, q.hash, len(s.groups), strings.Join(parts, "; "))
}

func (s *State) addTopic(name string, q qos, gi int) *topic {
	g := &s.groups[gi]
	if g.qos == "" {
		g.qos = q.hash
		if _, ok := s.qos[q.hash]; !ok {
			s.qos[q.hash] = &q
		}
	}
	g.topics[name] = struct{}{}
	t := &topic{qos: q.hash, group: gi, pubs: map[string]struct{}{}, subs: map[string]struct{}{},
		switching: map[string]struct{}{}, following: map[string]struct{}{}, pending: map[string]struct{}{}}
	s.topics[name] = t
	return t
}

// interest adds (on) or removes client as a subscriber (sub) or publisher
// of t.
func (s *State) interest(t *topic, client string, sub, on bool) {
	set, counts := t.pubs, s.groups[t.group].pubs
	if sub {
		set, counts = t.subs, s.groups[t.group].subs
	}
	_, had := set[client]
	switch {
	case on && !had:
		set[client] = struct{}{}
		counts[client]++
	case !on && had:
		delete(set, client)
		if counts[client]--; counts[client] <= 0 {
			delete(counts, client)
			if !s.inGroup(client, t.group) {
				s.leftGroup(client, t.group)
			}
		}
	}
}

func (s *State) setContacts(c Contacts) Result {
	gi, ok := s.groupIndex(c.Group)
	if !ok {
		return fail(CodeBadCommand, "no group %q: the groups are g0 to g%d", c.Group, len(s.groups)-1)
	}
	addrs := sortedSet(c.Addrs)
	if len(addrs) > 0 && addrs[0] == "" {
		return fail(CodeBadCommand, "an empty contact address for group %s", c.Group)
	}
	// The addresses replaced go back to the sender: a coordinator that
	// replaces another's list (two parts of a split group, each listing
	// itself) learns of the other part, and its member can merge with it.
	var replaced []string
	for _, a := range s.groups[gi].contacts {
		if _, found := slices.BinarySearch(addrs, a); !found {
			replaced = append(replaced, a)
		}
	}
	s.groups[gi].contacts = addrs
	return Result{Contacts: replaced}
}

// removeContact removes r.Addr from the contacts of a group, if it is
// there.
func (s *State) removeContact(r RemoveContact) Result {
	gi, ok := s.groupIndex(r.Group)
	if !ok {
		return fail(CodeBadCommand, "no group %q: the groups are g0 to g%d", r.Group, len(s.groups)-1)
	}
	g := &s.groups[gi]
	if i := slices.Index(g.contacts, r.Addr); i >= 0 {
		g.contacts = slices.Delete(slices.Clone(g.contacts), i, i+1)
		if len(g.contacts) == 0 {
			g.contacts = nil
		}
	}
	return Result{}
}

// addContact adds a.Addr to the contacts of a group that carries a topic,
// and returns its QoS and the contacts it had before; a group at
// MaxContacts drops its first (in sorted order) to make room. A retry
// returns the contacts as they are when it comes (a.Addr among them).
func (s *State) addContact(a AddContact) Result {
	gi, ok := s.groupIndex(a.Group)
	if !ok {
		return fail(CodeBadCommand, "no group %q: the groups are g0 to g%d", a.Group, len(s.groups)-1)
	}
	if a.Addr == "" {
		return fail(CodeBadCommand, "an empty contact address for group %s", a.Group)
	}
	g := &s.groups[gi]
	if g.qos == "" {
		return fail(CodeBadCommand, "group %s carries no topic yet", a.Group)
	}
	before := slices.Clone(g.contacts)
	if !slices.Contains(g.contacts, a.Addr) {
		if len(g.contacts) >= MaxContacts {
			g.contacts = g.contacts[1:]
		}
		g.contacts = sortedSet(append(slices.Clone(g.contacts), a.Addr))
	}
	q := s.qos[g.qos]
	return Result{QoS: q.name, Hash: q.hash, Group: a.Group, Contacts: before}
}

// topicResult is what Announce and Subscribe return for t. XML and
// Contacts share the state's memory: the result is encoded at once.
func (s *State) topicResult(t *topic) Result {
	q := s.qos[t.qos]
	r := Result{QoS: q.name, Hash: q.hash, XML: q.xml, Group: groupName(t.group), Contacts: s.groups[t.group].contacts, Moves: t.moves}
	if t.moves > 0 {
		r.From = groupName(t.from)
	}
	return r
}

// fill returns a remembered result with its XML and contacts as the state
// has them now.
func (s *State) fill(r Result) Result {
	if r.Code != CodeOK || r.Group == "" {
		return r
	}
	if q, ok := s.qos[r.Hash]; ok {
		r.XML = q.xml
	}
	if gi, ok := s.groupIndex(r.Group); ok {
		r.Contacts = s.groups[gi].contacts
	}
	return r
}

// remember records the result of a client's command, forgetting the
// client whose last command is the oldest if the sessions are full.
func (s *State) remember(client string, seq, index uint64, r Result) {
	r.XML, r.Contacts = nil, nil
	if ss, ok := s.sessions[client]; ok {
		*ss = session{seq: seq, index: index, result: r}
		return
	}
	if len(s.sessions) >= s.cfg.MaxSessions {
		s.forgetOldest()
	}
	s.sessions[client] = &session{seq: seq, index: index, result: r}
}

// forgetOldest forgets the session whose last command was applied first
// (the lowest client id among equals, which a restored snapshot may have).
func (s *State) forgetOldest() {
	var oldest string
	var at *session
	for c, ss := range s.sessions {
		if at == nil || ss.index < at.index || ss.index == at.index && c < oldest {
			oldest, at = c, ss
		}
	}
	delete(s.sessions, oldest)
}

// groupName returns the name of group i.
func groupName(i int) string { return "g" + strconv.Itoa(i) }

// groupIndex returns the index of the group called name.
func (s *State) groupIndex(name string) (int, bool) {
	i, ok := GroupIndex(name)
	if !ok || i >= len(s.groups) {
		return 0, false
	}
	return i, true
}
