package directory

// A Policy places a new topic in a group. It must be deterministic: every
// replica asks it the same question and must get the same answer. It sees
// the groups only through the loads it is given.
type Policy interface {
	// Place returns the name of the group for a new topic of QoS qos (the
	// hash of its stack), given every group's load in group order, or
	// false if no group should take it. The state refuses a group that
	// carries another QoS.
	Place(topic, qos string, groups []GroupLoad) (group string, ok bool)
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
}

// FreeThenFewest is the first placement policy: a new topic gets a free
// group of its own (the lowest-numbered) while there is one; then it
// shares the group of its QoS with the fewest subscribers, the
// lowest-numbered of those. A new QoS with no free group left gets none.
type FreeThenFewest struct{}

// Place implements Policy.
func (FreeThenFewest) Place(topic, qos string, groups []GroupLoad) (string, bool) {
	best := -1
	for i, g := range groups {
		switch {
		case g.QoS == "":
			return g.Name, true
		case g.QoS != qos:
		case best < 0 || g.Subscribers < groups[best].Subscribers:
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return groups[best].Name, true
}
