package sim

import (
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// dirSweepCount is the number of schedules of the default directory
// sweep.
const dirSweepCount = 500

// dirCheckTimeout bounds the linearizability check of one history.
const dirCheckTimeout = 20 * time.Second

// runDirSeeded runs a directory schedule with crypto/rand, and so Raft's
// randomized election timeouts, drawn from the schedule's seed: the same
// schedule runs the same way, alone or in a sweep.
func runDirSeeded(t *testing.T, sc Schedule, tweak func(*DirSim)) DirRun {
	cryptotest.SetGlobalRandom(t, sc.Seed)
	return RunDir(sc, tweak)
}

// TestDirSweep runs random fault schedules on a simulated directory
// (RandomDirSchedule: 3 or 5 replicas, 2 clients, crashes, pauses,
// partitions of every shape, delays, resets, full-cluster crashes) and
// checks each run (DirRun.Check): linearizability, the replicas'
// agreement and invariants, exactly once, liveness after the repair.
// The schedules run one after the other, because Raft's randomness is
// crypto/rand, made deterministic per schedule by
// cryptotest.SetGlobalRandom. CONCLAVE_DIR_SWEEP=N runs N schedules,
// CONCLAVE_DIR_SWEEP_FROM=S starts at seed S; -seed S runs seed S alone
// and -schedule '...' a printed schedule, -history printing its events.
// A failing schedule is printed with the command that replays it, and
// shrunk.
func TestDirSweep(t *testing.T) {
	if *scheduleFlag != "" || *seedFlag != 0 {
		sc := RandomDirSchedule(*seedFlag)
		if *scheduleFlag != "" {
			var err error
			if sc, err = ParseSchedule(*scheduleFlag); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("schedule: %v", sc)
		run := runDirSeeded(t, sc, nil)
		if *historyFlag {
			for _, e := range run.Sim.History() {
				t.Log(eventlog.Format(e))
			}
			for _, op := range run.Sim.Ops() {
				t.Logf("client %d: %s %s %s, %v to %v: known %v, %s %s %s", op.Client, op.Kind, op.Topic, op.QoS,
					op.Call, op.Return, op.Known, op.Code, op.GotQoS, op.Group)
			}
		}
		for _, v := range run.Check(dirCheckTimeout) {
			t.Error(v)
		}
		return
	}
	count, first := dirSweepCount, uint64(1)
	if v, err := strconv.Atoi(os.Getenv("CONCLAVE_DIR_SWEEP")); err == nil {
		count = v
	}
	if v, err := strconv.ParseUint(os.Getenv("CONCLAVE_DIR_SWEEP_FROM"), 10, 64); err == nil {
		first = v
	}
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	start := time.Now()
	ops, failed := 0, 0
	for seed := first; seed < first+uint64(count) && failed < 3; seed++ {
		sc := RandomDirSchedule(seed)
		run := runDirSeeded(t, sc, nil)
		ops += len(run.Sim.Ops())
		v := run.Check(dirCheckTimeout)
		if len(v) == 0 {
			continue
		}
		failed++
		t.Errorf("seed %d (%d replicas) fails; replay with: go test ./sim -run 'TestDirSweep$' -seed %d -history -v\nschedule: %v",
			seed, sc.N, seed, sc)
		for _, x := range v[:min(len(v), 5)] {
			t.Errorf("  %s", x)
		}
		small := shrinkDir(t, sc)
		t.Errorf("shrunk to %d of %d faults; replay with:\n  go test ./sim -run 'TestDirSweep$' -schedule '%v' -history -v", len(small.Faults), len(sc.Faults), small)
	}
	el := time.Since(start)
	t.Logf("%d directory schedules (seeds %d to %d), %d client operations, in %v: %.0f schedules/s",
		count, first, first+uint64(count)-1, ops, el.Round(time.Millisecond), float64(count)/el.Seconds())
}

// shrinkDir shrinks a failing directory schedule to a short one that
// still fails, keeping the repair at its end, as ShrinkFailure does for
// peers (at most 100 runs).
func shrinkDir(t *testing.T, sc Schedule) Schedule {
	k := len(sc.Faults)
	for k > 0 && sc.Faults[k-1].At == sc.Faults[len(sc.Faults)-1].At {
		k--
	}
	repair := sc.Faults[k:]
	small := sc
	small.Faults = append(Shrink(sc.Faults[:k], 100, func(f []Fault) bool {
		c := sc
		c.Faults = slices.Concat(f, repair)
		return len(runDirSeeded(t, c, nil).Check(dirCheckTimeout)) > 0
	}), repair...)
	return small
}

// TestDirRunReplays: a directory schedule run twice records the same
// history, Raft's elections included.
func TestDirRunReplays(t *testing.T) {
	for _, seed := range []uint64{2, 3, 5} {
		sc := RandomDirSchedule(seed)
		var hist [2][]string
		for k := range hist {
			for _, e := range runDirSeeded(t, sc, nil).Sim.History() {
				hist[k] = append(hist[k], eventlog.Format(e))
			}
		}
		if !slices.Equal(hist[0], hist[1]) {
			t.Errorf("seed %d: two runs differ", seed)
		}
	}
}
