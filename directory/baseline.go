package directory

import (
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The assignments below are what a placement is measured against, with
// Waste: they are the inputs of Waste and BestAssignment in the form
// those take (a topic's group as its number: g3 is 3).

// Placement returns where the directory put the topics it lists (as
// State.Topics or Listing.Topics give them): each topic's group number,
// its interested clients (publishers, then subscribers), and its QoS
// name. A topic whose group is not named g<number> is left out.
func Placement(topics []TopicInfo) (assign map[string]int, interest map[string][]string, qos map[string]string) {
	assign, interest, qos = map[string]int{}, map[string][]string{}, map[string]string{}
	for _, t := range topics {
		g, ok := GroupIndex(t.Group)
		if !ok {
			continue
		}
		assign[t.Topic] = g
		interest[t.Topic] = append(slices.Clone(t.Publishers), t.Subscribers...)
		qos[t.Topic] = t.QoS
	}
	return assign, interest, qos
}

// GroupIndex returns the number of the group called name: 3 for g3.
func GroupIndex(name string) (int, bool) {
	digits, ok := strings.CutPrefix(name, "g")
	if !ok || digits == "" || len(digits) > 1 && digits[0] == '0' || digits[0] == '+' || digits[0] == '-' {
		return 0, false
	}
	i, err := strconv.Atoi(digits)
	if err != nil || i < 0 {
		return 0, false
	}
	return i, true
}

// OneGroupPerQoS puts every topic of a QoS in one group: the QoS, in
// sorted order, get groups 0, 1, and so on. qos maps a topic to its QoS
// (nil: all have the same). Every assignment whose groups each carry one
// QoS wastes at most as much as this one (see Waste): splitting a group
// never adds members to a group.
func OneGroupPerQoS(topics []string, qos map[string]string) map[string]int {
	index := map[string]int{}
	for i, q := range qosNames(topics, qos) {
		index[q] = i
	}
	out := make(map[string]int, len(topics))
	for _, t := range topics {
		out[t] = index[qos[t]]
	}
	return out
}

// HashAssignment places each topic by the 32-bit FNV-1a hash of its name
// among the groups of its QoS, as a system that knows nothing of interest
// would. The groups are dealt to the QoS in sorted order: with k QoS,
// group g belongs to the (g mod k)-th. A topic goes to the (hash mod
// n)-th of the n groups of its QoS; with one QoS, to group hash mod
// groups. qos maps a topic to its QoS (nil: all have the same). ok is
// false if there are more QoS than groups.
func HashAssignment(topics []string, qos map[string]string, groups int) (assign map[string]int, ok bool) {
	names := qosNames(topics, qos)
	if len(names) == 0 {
		return map[string]int{}, true
	}
	if len(names) > groups {
		return nil, false
	}
	owned := map[string][]int{}
	for g := range groups {
		q := names[g%len(names)]
		owned[q] = append(owned[q], g)
	}
	assign = make(map[string]int, len(topics))
	for _, t := range topics {
		h := fnv.New32a()
		h.Write([]byte(t))
		gs := owned[qos[t]]
		assign[t] = gs[h.Sum32()%uint32(len(gs))]
	}
	return assign, true
}

// qosNames returns the distinct QoS of topics, sorted.
func qosNames(topics []string, qos map[string]string) []string {
	set := map[string]bool{}
	for _, t := range topics {
		set[qos[t]] = true
	}
	return slices.Sorted(maps.Keys(set))
}
