package sim

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestGroupAllLeaveAtOnce has every member leave within a few
// milliseconds of the others, during traffic: each must be told it has
// left (the real-process test found a member waiting forever when its
// coordinator left at the same time).
func TestGroupAllLeaveAtOnce(t *testing.T) {
	for sd := uint64(1); sd <= 200; sd++ {
		if *seedFlag != 0 && sd != *seedFlag {
			continue
		}
		rng := rand.New(rand.NewPCG(sd, 11))
		n := 2 + rng.IntN(4)
		name := []string{"vsync", "total"}[sd%2]
		s := NewGroup(GroupConfig{N: n, Seed: sd, Stack: groupStack(t, name)})
		for i := range n {
			s.Start(i)
		}
		if !s.RunUntil(5*time.Second, s.Agreed) {
			t.Fatalf("seed %d: no first view", sd)
		}
		traffic(s, time.Millisecond, s.Now()+time.Second)
		s.RunFor(100 * time.Millisecond)
		for _, i := range rng.Perm(n) {
			s.Leave(i)
			s.RunFor(time.Duration(rng.IntN(3000)) * time.Microsecond)
		}
		s.RunFor(3 * time.Second)
		left := map[string]bool{}
		for _, e := range s.History() {
			if e.Ev == "left" {
				left[e.Node] = true
			}
		}
		for i := range n {
			if !left[Addr(i)] {
				dumpGroup(t, s, Addr(i))
				t.Fatalf("seed %d (%s, n=%d): m%d never left; replay with -run TestGroupAllLeaveAtOnce -seed %d", sd, name, n, i, sd)
			}
		}
	}
}

// TestGroupRegressions replays sweep schedules that once failed (with the
// schedule generator of the commit that added them):
//   - 399: a member that had dissolved its own group several times (view
//     10@m0) dropped the first messages of the group it joined (view 8@m2)
//     as "old", since 8 < 10: vsync now keeps messages of any other
//     coordinator's view until it knows better.
//   - 92: a relayed install reached a member already alone in a view of its
//     own, which went back to the old view: relays are now accepted only
//     by a member still blocked in the flush of that view.
func TestGroupRegressions(t *testing.T) {
	for _, sd := range []uint64{399, 92} {
		name := []string{"vsync", "total"}[sd%2]
		if !runGroupSchedule(t, sd, name) {
			t.Errorf("seed %d (%s) failed; replay with: go test ./sim -run TestGroupSweep -seed %d", sd, name, sd)
		}
	}
}
