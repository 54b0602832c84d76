package sim

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/peer"
)

// Fault is one step of a schedule: at At, do Op to Peer.
type Fault struct {
	At   time.Duration
	Op   string // crash, start, pause, resume, reset, split, isolate, cut, bridge, delay, heal
	Peer int
}

func (f Fault) String() string { return fmt.Sprintf("%v %s %d", f.At, f.Op, f.Peer) }

// RandomSchedule draws a fault schedule for n peers from seed, ending with
// everything repaired: every peer running, none paused, the network healed.
func RandomSchedule(seed uint64, n int) []Fault {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out []Fault
	at := 2 * time.Second // let the cluster form
	ops := []string{"crash", "start", "pause", "resume", "reset", "split", "isolate", "cut", "bridge", "delay", "heal"}
	for k := rng.IntN(8) + 1; k > 0; k-- {
		at += time.Duration(rng.Int64N(int64(1500 * time.Millisecond)))
		out = append(out, Fault{At: at, Op: ops[rng.IntN(len(ops))], Peer: rng.IntN(n)})
	}
	at += time.Duration(rng.Int64N(int64(time.Second)))
	out = append(out, Fault{At: at, Op: "heal"})
	for i := 0; i < n; i++ {
		out = append(out, Fault{At: at, Op: "resume", Peer: i}, Fault{At: at, Op: "start", Peer: i})
	}
	return out
}

// apply performs one fault.
func (s *Sim) apply(f Fault) {
	switch f.Op {
	case "crash":
		s.Crash(f.Peer)
	case "start":
		s.Start(f.Peer)
	case "pause":
		s.Pause(f.Peer)
	case "resume":
		s.Resume(f.Peer)
	case "reset":
		s.Reset(f.Peer, (f.Peer+1)%s.cfg.N)
	case "split":
		var a, b []int
		for i := 0; i < s.cfg.N; i++ {
			if i <= f.Peer {
				a = append(a, i)
			} else {
				b = append(b, i)
			}
		}
		s.Partition(a, b)
	case "isolate":
		var rest []int
		for i := 0; i < s.cfg.N; i++ {
			if i != f.Peer {
				rest = append(rest, i)
			}
		}
		s.Partition([]int{f.Peer}, rest)
	case "cut":
		s.Cut(f.Peer, (f.Peer+1)%s.cfg.N)
	case "bridge":
		// Peer is the bridge; the others split into lower and higher ids.
		var a, b []int
		for i := 0; i < s.cfg.N; i++ {
			switch {
			case i == f.Peer:
			case i < f.Peer || (f.Peer == 0 && i == 1):
				a = append(a, i)
			default:
				b = append(b, i)
			}
		}
		s.Bridge(a, b, f.Peer)
	case "delay":
		// Slow, but well below suspect-after.
		s.Delay(f.Peer, (f.Peer+1)%s.cfg.N, suspect/5)
	case "heal":
		s.Heal()
		keys := slices.Collect(maps.Keys(s.extra))
		slices.SortFunc(keys, func(a, b [2]int) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
		for _, k := range keys {
			s.Delay(k[0], k[1], 0)
		}
	}
}

// runSchedule runs a schedule on n peers and checks the history.
func runSchedule(seed uint64, n int, faults []Fault) []check.Violation {
	s, err := New(Config{N: n, Seed: seed, Peer: peer.Config{Heartbeat: hb, SuspectAfter: suspect}, LogHeartbeats: true})
	if err != nil {
		panic(err)
	}
	s.StartAll()
	for _, f := range faults {
		s.RunUntil(f.At, nil)
		s.apply(f)
	}
	s.RunFor(4 * time.Second)
	// After the last fault: connect (redial back-off), hear a heartbeat,
	// or wait out a silence.
	bound := peer.DefaultRedialMax + suspect + 4*hb
	return check.Peer(s.History(), check.Options{N: n, ConvergeWithin: bound, AllHeartbeats: true})
}

// TestSweep runs random fault schedules and checks every property. Set
// CONCLAVE_SWEEP=N for a longer sweep, -seed to replay one.
func TestSweep(t *testing.T) {
	count := 1000
	if v, err := strconv.Atoi(os.Getenv("CONCLAVE_SWEEP")); err == nil {
		count = v
	}
	first := uint64(1)
	if *seedFlag != 0 {
		first, count = *seedFlag, 1
	}
	start := time.Now()
	for seed := first; seed < first+uint64(count); seed++ {
		n := 3 + int(seed%5)
		faults := RandomSchedule(seed, n)
		if v := runSchedule(seed, n, faults); len(v) > 0 {
			t.Errorf("seed %d (n=%d), replay with: go test ./sim -run TestSweep -seed %d\nschedule: %v", seed, n, seed, faults)
			for _, x := range v[:min(len(v), 5)] {
				t.Errorf("  %v", x)
			}
			if t.Failed() && count > 1 {
				return
			}
		}
	}
	el := time.Since(start)
	t.Logf("%d schedules in %v: %.0f schedules/s", count, el.Round(time.Millisecond), float64(count)/el.Seconds())
}
