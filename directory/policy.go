package directory

// A Policy places a new topic in a group. It must be deterministic: every
// replica asks it the same question and must get the same answer. It sees
// the groups only through the loads it is given, which it must not
// modify.
type Policy interface {
	// Place returns the name of the group for the new topic t, given
	// every group's load in group order, or false if no group should take
	// it. The state refuses a group that carries another QoS.
	Place(t NewTopic, groups []GroupLoad) (group string, ok bool)
}

// NewTopic is what a Policy knows of the topic it places.
type NewTopic struct {
	Name string
	// QoS is the hash of the topic's stack.
	QoS string
	// Interested lists, sorted, the clients already known to publish or
	// subscribe to the topic: when a topic is placed, at its first
	// announce, that is the announcing publisher alone.
	Interested []string
}

// GroupLoad is what a Policy knows of a group.
type GroupLoad struct {
	Name string
	// QoS is the hash of the QoS the group carries; empty if the group is
	// free (it carries no topic yet).
	QoS string
	// Topics is the number of topics in the group; Publishers and
	// Subscribers are the numbers of distinct clients that publish or
	// subscribe to at least one of them.
	Topics      int
	Publishers  int
	Subscribers int
	// Interest lists the group's topics, sorted by name, each with the
	// clients that publish or subscribe to it.
	Interest []TopicInterest
}

// TopicInterest is a topic with the clients interested in it.
type TopicInterest struct {
	Topic string
	// Clients lists, sorted and distinct, the topic's publishers and
	// subscribers.
	Clients []string
}

// FreeThenFewest is the first placement policy: a new topic gets a free
// group of its own (the lowest-numbered) while there is one; then it
// shares the group of its QoS with the fewest subscribers, the
// lowest-numbered of those. A new QoS with no free group left gets none.
type FreeThenFewest struct{}

// Place implements Policy.
func (FreeThenFewest) Place(t NewTopic, groups []GroupLoad) (string, bool) {
	best := -1
	for i, g := range groups {
		switch {
		case g.QoS == "":
			return g.Name, true
		case g.QoS != t.QoS:
		case best < 0 || g.Subscribers < groups[best].Subscribers:
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return groups[best].Name, true
}

// FreeThenLeastWaste is the default placement policy. A new topic gets a
// free group of its own (the lowest-numbered) while there is one; then it
// shares the group of its QoS where it adds the least waste (see Waste),
// counting every topic's rate as 1 and the new topic's interest as what
// is known of it when it is placed. Among groups adding the same waste it
// takes the one with the fewest topics, where the subscribers still to
// come add the least (each new member of a group receives all its
// topics), then the lowest-numbered.
// A new QoS with no free group left gets none.
type FreeThenLeastWaste struct{}

// Place implements Policy.
func (FreeThenLeastWaste) Place(t NewTopic, groups []GroupLoad) (string, bool) {
	best, bestCost := -1, 0
	for i, g := range groups {
		switch {
		case g.QoS == "":
			return g.Name, true
		case g.QoS != t.QoS:
		default:
			c := addedWaste(t.Interested, g.Interest)
			if best < 0 || c < bestCost || c == bestCost && len(g.Interest) < len(groups[best].Interest) {
				best, bestCost = i, c
			}
		}
	}
	if best < 0 {
		return "", false
	}
	return groups[best].Name, true
}

// addedWaste returns the waste, at rate 1 per topic, that a topic with
// the interested clients in adds to a group whose topics have the given
// interest: each of its events reaches the group's members not in it,
// and each newcomer (a client in it not yet a member) receives every
// event of the group's topics.
func addedWaste(in []string, topics []TopicInterest) int {
	members := map[string]struct{}{}
	for _, t := range topics {
		for _, c := range t.Clients {
			members[c] = struct{}{}
		}
	}
	newcomers := 0
	for _, c := range in {
		if _, ok := members[c]; !ok {
			newcomers++
		}
	}
	strangers := len(members) - (len(in) - newcomers)
	return len(topics)*newcomers + strangers
}
