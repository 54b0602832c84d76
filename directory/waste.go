package directory

import (
	"math/bits"
	"slices"
)

// Waste evaluates an assignment of topics to groups. assign maps each
// topic to its group; interest maps a topic to its interested clients, its
// publishers and subscribers; rates maps a topic to its events per unit of
// time (a topic missing from rates, or every topic if rates is nil, has
// rate 1). The members of a group are the clients interested in any of
// its topics, and each member receives every event of the group:
// publishers too. filtered is the waste, the events members receive for
// topics they are not interested in:
//
//	Σ_g Σ_{t∈g} rate(t) · |members(g) \ interested(t)|
//
// and delivered the events they are interested in, Σ_t rate(t) ·
// |interested(t)|, so filtered / (delivered + filtered) is the share of
// traffic thrown away. Topics not in assign are ignored; a client listed
// twice for a topic counts once.
func Waste(assign map[string]int, interest map[string][]string, rates map[string]float64) (filtered, delivered float64) {
	members := map[int]map[string]struct{}{}
	for t, g := range assign {
		m := members[g]
		if m == nil {
			m = map[string]struct{}{}
			members[g] = m
		}
		for _, c := range interest[t] {
			m[c] = struct{}{}
		}
	}
	for t, g := range assign {
		r, ok := rates[t]
		if !ok {
			r = 1
		}
		in := distinct(interest[t])
		delivered += r * float64(len(in))
		filtered += r * float64(len(members[g])-len(in))
	}
	return filtered, delivered
}

func distinct(cs []string) []string {
	cs = slices.Clone(cs)
	slices.Sort(cs)
	return slices.Compact(cs)
}

// BestAssignment finds, by trying every partition of the topics of
// interest into at most groups groups, an assignment of least Waste in
// which the topics of a group have one QoS (qos maps a topic to its QoS;
// nil means all have the same). Groups are numbered from 0 in the order
// of the sorted topics; among equal assignments the first found is
// returned. ok is false if there is none (more QoS than groups). Its cost
// grows as the Bell numbers: keep it to about 10 topics.
func BestAssignment(interest map[string][]string, qos map[string]string, rates map[string]float64, groups int) (assign map[string]int, filtered float64, ok bool) {
	topics := make([]string, 0, len(interest))
	for t := range interest {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	index := map[string]int{}
	words := 0
	sets := make([][]uint64, len(topics))
	for _, t := range topics {
		for _, c := range interest[t] {
			if _, ok := index[c]; !ok {
				index[c] = len(index)
			}
		}
	}
	words = (len(index) + 63) / 64
	rate := make([]float64, len(topics))
	for i, t := range topics {
		sets[i] = make([]uint64, words)
		for _, c := range interest[t] {
			n := index[c]
			sets[i][n/64] |= 1 << (n % 64)
		}
		rate[i] = 1
		if r, ok := rates[t]; ok {
			rate[i] = r
		}
	}
	cur := make([]int, len(topics))
	best := []int(nil)
	bestW := 0.0
	// cost computes the waste of cur.
	cost := func(used int) float64 {
		w := 0.0
		m := make([]uint64, words)
		for g := range used {
			clear(m)
			for i := range topics {
				if cur[i] == g {
					for k := range m {
						m[k] |= sets[i][k]
					}
				}
			}
			for i := range topics {
				if cur[i] == g {
					n := 0
					for k := range m {
						n += bits.OnesCount64(m[k] &^ sets[i][k])
					}
					w += rate[i] * float64(n)
				}
			}
		}
		return w
	}
	groupQoS := make([]string, groups)
	var try func(i, used int)
	try = func(i, used int) {
		if i == len(topics) {
			if w := cost(used); best == nil || w < bestW {
				best, bestW = slices.Clone(cur), w
			}
			return
		}
		for g := range min(used+1, groups) {
			q := qos[topics[i]]
			if g < used && groupQoS[g] != q {
				continue
			}
			cur[i], groupQoS[g] = g, q
			try(i+1, max(used, g+1))
		}
	}
	try(0, 0)
	if best == nil {
		return nil, 0, false
	}
	assign = make(map[string]int, len(topics))
	for i, t := range topics {
		assign[t] = best[i]
	}
	return assign, bestW, true
}
