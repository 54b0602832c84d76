package sim

import (
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
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

// TestGroupSweepBatched runs sweep schedules with members that collect
// their effects once per batch of inputs, as the group runtime does under
// load: a layer then sees several inputs between two ends of batch (the
// sequencer has unordered messages when a flush begins, say).
// CONCLAVE_GROUP_SWEEP sets the number of schedules, as for TestGroupSweep;
// replay one with -seed.
//
// With the sequencer's last order of a view allowed to slip into the next
// view (vsync blocking sends at Block rather than BlockOk, and total not
// checking an order's view), this sweep fails at seeds 1, 3 and 9 while
// 200 unbatched schedules pass (checked on the unified network; seed 7
// before): the real-process test had found that bug.
func TestGroupSweepBatched(t *testing.T) {
	n := 20
	if *seedFlag != 0 {
		n = 1
	}
	if v := os.Getenv("CONCLAVE_GROUP_SWEEP"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	first := seed(1)
	start := time.Now()
	ran, failures := groupSweep(first, n, runtime.GOMAXPROCS(0), 5, 300*time.Microsecond)
	for _, f := range failures {
		for _, m := range f.report {
			t.Log(m)
		}
		t.Errorf("seed %d (%s) failed; replay with: go test ./sim -run TestGroupSweepBatched -seed %d", f.seed, groupStackName(f.seed), f.seed)
	}
	t.Logf("%d batched group schedules in %v (%.0f/s)", len(ran), time.Since(start).Round(time.Millisecond), float64(len(ran))/time.Since(start).Seconds())
}

// TestGroupCoordinatorLeavesCleanly has the coordinator leave during
// traffic: every other member must install the view it leaves behind,
// through its flush. A member whose connection to the leaver closed
// before the Install arrived on the leaver's connection to it used to
// close that connection too, unread: it lost the Install, waited, and
// went on alone (flush_abandoned), and the others sent to it in vain.
func TestGroupCoordinatorLeavesCleanly(t *testing.T) {
	for sd := uint64(1); sd <= 60; sd++ {
		if *seedFlag != 0 && sd != *seedFlag {
			continue
		}
		name := []string{"vsync", "total"}[sd%2]
		s := NewGroup(GroupConfig{N: 4, Seed: sd, Stack: groupStack(t, name)})
		for i := range 4 {
			s.Start(i)
		}
		settle(t, s, 5*time.Second)
		traffic(s, time.Millisecond, s.Now()+300*time.Millisecond)
		s.RunFor(100 * time.Millisecond)
		s.Leave(0)
		s.RunFor(time.Second)
		for _, e := range s.History() {
			if e.Ev == "flush_abandoned" {
				dumpGroup(t, s, "")
				t.Fatalf("seed %d (%s): %s; replay with -run TestGroupCoordinatorLeavesCleanly -seed %d", sd, name, eventlog.Format(e), sd)
			}
		}
		for i := 1; i < 4; i++ {
			if v, ok := s.View(i); !ok || len(v.Members) != 3 || v.Has(s.Member(0)) {
				t.Fatalf("seed %d (%s): m%d is in view %v, want the 3 who stayed", sd, name, i, v.IDs())
			}
		}
	}
}

// TestGroupExcludedMemberLearnsIt cuts two members of four apart, so
// that the coordinator excludes one of them though it still hears it:
// told that the next view was installed without it, the excluded member
// goes on alone at once (flush_abandoned cause=excluded) and asks to be
// let in again, rather than talk to a view nobody else is in until it
// suspects them all by their silence. Healed, the group is whole again,
// and every group property holds.
func TestGroupExcludedMemberLearnsIt(t *testing.T) {
	for _, name := range []string{"vsync", "total"} {
		t.Run(name, func(t *testing.T) {
			s := NewGroup(GroupConfig{N: 4, Seed: seed(5), Stack: groupStack(t, name)})
			for i := range 4 {
				s.Start(i)
			}
			settle(t, s, 5*time.Second)
			end := s.Now() + 1500*time.Millisecond
			traffic(s, 2*time.Millisecond, end)
			s.Cut(1, 3)
			s.RunFor(time.Second)
			excluded := false
			for _, e := range s.History() {
				if e.Ev == eventlog.FlushAbandoned && e.Str(eventlog.FieldCause) == eventlog.CauseExcluded {
					excluded = true
				}
			}
			if !excluded {
				dumpGroup(t, s, "")
				t.Fatalf("no member went on alone on being told it was excluded (seed %d)", s.cfg.Seed)
			}
			s.Heal()
			s.RunFor(max(end-s.Now(), 0))
			settle(t, s, 5*time.Second)
			if v, _ := s.View(0); len(v.Members) != 4 {
				t.Fatalf("view %v after the heal, want all 4", v.IDs())
			}
			groupCheck(t, s, name == "total")
		})
	}
}
