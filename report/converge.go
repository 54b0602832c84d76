package report

import (
	"math"
	"sort"
)

// convergence is how the peers came to agree on a leader after a fault.
type convergence struct {
	Conv   bool    // they agreed before the next fault (or the end)
	NoneUp bool    // not converged: no peer left running
	ConvMS float64 // when, in ms from the fault's last event; < 0 if before it
	Leader int     // on whom; noLeader if they did not agree
}

// agreement judges, at any moment, whether the running peers agree on a
// leader: from each lane's process states and leader beliefs.
type agreement struct {
	lanes   []int
	lane    map[int]int
	states  laneStates
	beliefs laneBeliefs
}

// converge finds, for each fault, the first moment from it (and before the
// next fault) when every running peer believed in the same leader, itself
// running. If they already agreed when the fault was logged, and had come to
// agree (without the faulted peers) less than leadTolerance before, that
// earlier moment counts, giving a negative time.
func converge(faults []*fault, a agreement) {
	bounds := a.bounds()
	prevRef := math.Inf(-1)
	for _, f := range faults {
		lo := math.Max(f.Ref-leadTolerance, prevRef)
		prevRef = f.Ref
		f.convergence = a.after(f, lo, bounds)
	}
}

// bounds lists, sorted, every moment a lane's state or belief changes: the
// only moments agreement can begin or end.
func (a agreement) bounds() []float64 {
	var bounds []float64
	for _, p := range a.lanes {
		for _, s := range a.states[p] {
			bounds = append(bounds, s.From, s.To)
		}
		for _, s := range a.beliefs[p] {
			bounds = append(bounds, s.From, s.To)
		}
	}
	sort.Float64s(bounds)
	return bounds
}

// after is the convergence after fault f, counting an agreement reached
// without the faulted peers back to lo at the earliest.
func (a agreement) after(f *fault, lo float64, bounds []float64) convergence {
	c := convergence{Leader: noLeader}
	if l, ok := a.agreed(f.Ref, nil); ok {
		c.Conv, c.Leader = true, l
		skip := map[int]bool{}
		if f.Kind == "kill" || f.Kind == "stop" || f.Kind == "term" {
			for _, p := range f.Peers {
				skip[p] = true
			}
		}
		if l0, ok := a.agreed(lo, skip); ok && l0 == l {
			return c // undisturbed
		}
		// Walk back over the boundaries while the agreement holds.
		k := sort.SearchFloat64s(bounds, f.Ref)
		for k--; k >= 0 && bounds[k] > lo; k-- {
			if l1, ok := a.agreed(bounds[k], skip); !ok || l1 != l {
				break
			}
			c.ConvMS = (bounds[k] - f.Ref) * 1000
		}
		return c
	}
	for k := sort.SearchFloat64s(bounds, f.Ref); k < len(bounds) && bounds[k] < f.End; k++ {
		if bounds[k] <= f.Ref || (k > 0 && bounds[k] == bounds[k-1]) {
			continue
		}
		if l, ok := a.agreed(bounds[k], nil); ok {
			c.Conv, c.ConvMS, c.Leader = true, (bounds[k]-f.Ref)*1000, l
			return c
		}
	}
	c.NoneUp = !a.anyRunning(math.Max(f.Ref, math.Nextafter(f.End, math.Inf(-1))))
	return c
}

// anyRunning reports whether some peer is running at t.
func (a agreement) anyRunning(t float64) bool {
	for _, p := range a.lanes {
		if a.states.at(p, t) == stRunning {
			return true
		}
	}
	return false
}

// agreed reports the leader every running peer (but those in skip)
// believes in at t, if they agree on one that is itself running.
func (a agreement) agreed(t float64, skip map[int]bool) (int, bool) {
	leader, found := noLeader, false
	for _, p := range a.lanes {
		if skip[p] || a.states.at(p, t) != stRunning {
			continue
		}
		b, ok := a.beliefs.at(p, t)
		if !ok || b < 0 || (found && b != leader) {
			return 0, false
		}
		leader, found = b, true
	}
	if !found || skip[leader] {
		return 0, false
	}
	if _, ok := a.lane[leader]; !ok || a.states.at(leader, t) != stRunning {
		return 0, false
	}
	return leader, true
}
