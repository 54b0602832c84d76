package report

import (
	"github.com/conclave/conclave/eventlog"
	"math"
	"sort"
)

// seg is a stretch during which a peer believed in one leader.
type seg struct {
	From, To float64
	Leader   int
}

// laneBeliefs holds, for each lane, the segments of its peer's leader
// beliefs in time order.
type laneBeliefs map[int][]seg

// at is whom peer p believed leader at t, if it believed in one (none
// included) then.
func (lb laneBeliefs) at(p int, t float64) (int, bool) {
	ss := lb[p]
	k := sort.Search(len(ss), func(i int) bool { return ss[i].From > t }) - 1
	if k >= 0 && t < ss[k].To {
		return ss[k].Leader, true
	}
	return 0, false
}

// leaderBeliefs turns each peer's leader_change events into segments, from
// its start (none) to the end of its process life in states. leaders lists
// every leader value believed, sorted.
func leaderBeliefs(ix *index, states laneStates) (beliefs laneBeliefs, leaders []int) {
	beliefs = laneBeliefs{}
	believed := map[int]bool{}
	for _, p := range ix.lanes {
		var segs []seg
		var cur seg
		open, seen := false, false
		var inc uint64
		closeAt := func(t float64) {
			if !open {
				return
			}
			open = false
			end := math.Min(t, states.lifeEnd(p, cur.From, ix.end))
			if end > cur.From {
				cur.To = end
				segs = append(segs, cur)
				believed[cur.Leader] = true
			}
		}
		openAt := func(t float64, l int) {
			cur = seg{From: t, Leader: l}
			open = true
		}
		for _, i := range ix.byPeer[p] {
			e, t := ix.ev[i], ix.rel[i]
			if seen && e.Inc != inc {
				closeAt(t)
			}
			seen, inc = true, e.Inc
			switch e.Ev {
			case eventlog.Start:
				closeAt(t)
				openAt(t, noLeader)
			case eventlog.LeaderChange:
				l, ok := e.Int(eventlog.FieldLeader)
				if !ok {
					continue
				}
				closeAt(t)
				openAt(t, l)
			case eventlog.Stop:
				closeAt(t)
			}
		}
		closeAt(math.Inf(1))
		sort.SliceStable(segs, func(i, j int) bool { return segs[i].From < segs[j].From })
		beliefs[p] = segs
	}
	for l := range believed {
		leaders = append(leaders, l)
	}
	sort.Ints(leaders)
	return beliefs, leaders
}
