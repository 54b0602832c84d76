package directory

import (
	"maps"
	"slices"
)

// Moves. A topic placed when few clients had said what they want may
// later cost its group's members many unsolicited events. After a command
// changes who publishes or subscribes to a topic, or a client's report
// shows it filtering a topic (the one it filtered most of), Apply considers moving
// that topic, or another topic of its group, to another group of the same
// QoS (or to a free one) when that lowers the predicted waste (see Waste;
// each topic weighs 1 plus its events per 1000 s as the clients' reports
// measured them) by at least MoveMinGain and by a tenth of the waste of
// the two groups concerned. Moves are rare and bounded: at
// most one every MoveSpacing log entries, none of a topic that moved in
// the last 4 × MoveSpacing entries or whose last move is not finished, and
// only among the topics of groups of at most MaxMoveCandidates topics.
//
// A move is finished when each client that published the topic when it
// moved has said it switched (MoveDone) or withdrew. Clients carry the
// topic's guarantees across the move (package pubsub): a publisher sends a
// switch marker in the old group, then publishes in the new one; a
// subscriber delivers the old group's events of the topic until it has
// every publisher's marker (or the publisher has left the old group),
// then the new group's.
const (
	// DefaultMoveSpacing is StateConfig.MoveSpacing when it is 0.
	DefaultMoveSpacing = 16
	// MaxMoveSpacing bounds StateConfig.MoveSpacing.
	MaxMoveSpacing = 1 << 20
	// MaxMoveCandidates bounds the topics of a group that Apply considers
	// moving; in a larger group, only the topic the command named.
	MaxMoveCandidates = 64
	// MoveMinGain is the least drop of predicted waste that makes a move
	// worth its two view changes.
	MoveMinGain = 2
)

// Move asks for Topic to move to Group, which must carry the topic's QoS
// or be free. The topic's last move must be finished.
type Move struct {
	Topic string
	Group string
}

// MoveDone says the client, a publisher of Topic, has switched to the
// group of the topic's move number Moves (Result.Moves): it sent its
// switch marker in the old group and publishes in the new one.
type MoveDone struct {
	Topic string
	Moves uint64
}

func (Move) opcode() byte     { return opMove }
func (MoveDone) opcode() byte { return opMoveDone }

// moveCommand applies an operator's Move.
func (s *State) moveCommand(m Move) Result {
	t, r := s.topic(m.Topic)
	if r != nil {
		return *r
	}
	b, ok := s.groupIndex(m.Group)
	switch {
	case !ok:
		return fail(CodeBadCommand, "no group %q: the groups are g0 to g%d", m.Group, len(s.groups)-1)
	case b == t.group:
		return fail(CodeBadCommand, "topic %q is in group %s already", m.Topic, m.Group)
	case s.groups[b].qos != "" && s.groups[b].qos != t.qos:
		cur := s.qos[s.groups[b].qos]
		return fail(CodeBadCommand, "group %s carries QoS %s (hash %s); topic %q has QoS %s",
			m.Group, cur.name, cur.hash, m.Topic, s.qos[t.qos].name)
	case len(t.pending) > 0:
		return fail(CodeBadCommand, "topic %q is still moving from %s to %s: %d publishers have not switched yet",
			m.Topic, groupName(t.from), groupName(t.group), len(t.pending))
	}
	s.move(m.Topic, b)
	return s.topicResult(t)
}

// move moves topic name to group b.
func (s *State) move(name string, b int) {
	t := s.topics[name]
	ga, gb := &s.groups[t.group], &s.groups[b]
	delete(ga.topics, name)
	gb.topics[name] = struct{}{}
	if gb.qos == "" {
		gb.qos = t.qos
	}
	for c := range t.pubs {
		shift(ga.pubs, gb.pubs, c)
	}
	for c := range t.subs {
		shift(ga.subs, gb.subs, c)
	}
	t.from, t.group = t.group, b
	t.moves++
	t.at = s.applied
	s.movedReports(name, t.from, b)
	t.switching = maps.Clone(t.pubs)
	t.following = maps.Clone(t.subs)
	t.pending = maps.Clone(t.pubs)
	s.lastMove = s.applied
}

// movedReports keeps the reports to what their clients are in after
// topic name moved from group a to group b: a client not in b no longer
// counts name, and one no longer in a none of a's topics.
func (s *State) movedReports(name string, a, b int) {
	for c, r := range s.reports {
		if _, ok := r.topics[name]; ok && !s.inGroup(c, b) {
			delete(r.topics, name)
		}
		if !s.inGroup(c, a) {
			for other := range r.topics {
				if s.topics[other].group == a {
					delete(r.topics, other)
				}
			}
		}
		if len(r.topics) == 0 {
			delete(s.reports, c)
		}
	}
}

// shift moves one count of client c from one group's counts to another's.
func shift(from, to map[string]int, c string) {
	if from[c]--; from[c] <= 0 {
		delete(from, c)
	}
	to[c]++
}

// considerFor is consider after client's announce of (sub false), or
// subscription to (sub true), topic name, a role the client had before
// the command or not (was). If that topic moves now, client's result
// names the new group, so the client takes its new role there at once:
// in that role it is neither waited for nor waits. In a role it had
// before (its publisher of the topic, when it subscribes, say), it is
// still in the old group, and switches as the others do.
func (s *State) considerFor(client, name string, sub, was bool) {
	if s.consider(name) != name || was {
		return
	}
	t := s.topics[name]
	if sub {
		delete(t.following, client)
		return
	}
	delete(t.switching, client)
	delete(t.pending, client)
}

// consider moves a topic of the group of topic name if that lowers the
// predicted waste enough, within the bounds above, and returns the topic
// it moved ("" if none).
func (s *State) consider(name string) string {
	if s.cfg.MoveSpacing < 0 || s.lastMove != 0 && s.applied < s.lastMove+uint64(s.cfg.MoveSpacing) {
		return ""
	}
	t := s.topics[name]
	a := t.group
	cands := []string{name}
	if len(s.groups[a].topics) <= MaxMoveCandidates {
		cands = slices.Sorted(maps.Keys(s.groups[a].topics))
	}
	var targets []int
	free := false
	for i, g := range s.groups {
		switch {
		case i == a:
		case g.qos == t.qos:
			targets = append(targets, i)
		case g.qos == "" && !free:
			free = true
			targets = append(targets, i)
		}
	}
	if len(targets) == 0 {
		return ""
	}
	w := s.weights()
	wa := s.groupWaste(w, s.groups[a].topics, "", "")
	bestGain, bestX, bestB := int64(0), "", -1
	for _, x := range cands {
		xt := s.topics[x]
		if len(xt.pending) > 0 || xt.moves > 0 && s.applied < xt.at+4*uint64(s.cfg.MoveSpacing) {
			continue
		}
		waNo := s.groupWaste(w, s.groups[a].topics, x, "")
		for _, b := range targets {
			wb := s.groupWaste(w, s.groups[b].topics, "", "")
			wbWith := s.groupWaste(w, s.groups[b].topics, "", x)
			gain := wa + wb - waNo - wbWith
			if gain >= MoveMinGain && 10*gain >= wa+wb && gain > bestGain {
				bestGain, bestX, bestB = gain, x, b
			}
		}
	}
	if bestB < 0 {
		return ""
	}
	s.move(bestX, bestB)
	return bestX
}

// weights returns each topic's weight in the predicted waste: 1, plus
// its events per 1000 s as the clients' reports measured them (Report),
// so that busy topics count for what they cost and topics nobody
// reported on count as rate 1. Integers, so that every replica computes
// the same.
func (s *State) weights() map[string]int64 {
	w := map[string]int64{}
	for name, m := range s.measure() {
		if m.millis == 0 {
			continue
		}
		n := min(m.delivered+m.filtered, 1<<40) // events the reporting members counted
		w[name] = int64(n * 1_000_000 / m.millis)
	}
	return w
}

// groupWaste is the predicted waste of a group holding topics, without
// topic minus and with topic plus (either may be empty), each topic at
// its weight (1 + w[t]): Σ_t weight(t) · |members \ interested(t)|, where
// the members are the clients interested in any of its topics.
func (s *State) groupWaste(w map[string]int64, topics map[string]struct{}, minus, plus string) int64 {
	members := map[string]struct{}{}
	var names []string
	for name := range topics {
		if name != minus {
			names = append(names, name)
		}
	}
	if plus != "" {
		names = append(names, plus)
	}
	for _, name := range names {
		t := s.topics[name]
		for c := range t.pubs {
			members[c] = struct{}{}
		}
		for c := range t.subs {
			members[c] = struct{}{}
		}
	}
	var waste int64
	for _, name := range names {
		t := s.topics[name]
		interested := len(t.pubs) + len(t.subs)
		for c := range t.subs {
			if _, ok := t.pubs[c]; ok {
				interested--
			}
		}
		waste += (1 + w[name]) * int64(len(members)-interested)
	}
	return waste
}
