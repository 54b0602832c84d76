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
