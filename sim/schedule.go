package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/peer"
)

// Settings of the peers in schedules.
const (
	ScheduleHeartbeat    = 100 * time.Millisecond
	ScheduleSuspectAfter = 500 * time.Millisecond
)

// Fault is one step of a schedule: at At, do Op to process Peer, whatever
// it hosts (Net.Apply).
type Fault struct {
	At time.Duration
	// Op is one of crash, start, pause, resume, reset (Peer's connections
	// with the next process), split (ids up to Peer | the rest), isolate,
	// cut (Peer's link to the next process), bridge (Peer bridges lower and
	// higher ids), delay (D on Peer's link to the next process; 0 lifts
	// it), undelay (lift every delay), heal (the network: cuts and delays);
	// for a GroupSim, leave (Peer's member leaves the group); for a
	// DirSim, crashall (every replica) and, in place of a process, the
	// leader (Peer LeaderPeer, written "leader").
	Op   string
	Peer int
	D    time.Duration // for delay
}

func (f Fault) String() string {
	peer := strconv.Itoa(f.Peer)
	if f.Peer == LeaderPeer {
		peer = "leader"
	}
	switch f.Op {
	case "heal", "undelay", "crashall":
		return fmt.Sprintf("%v %s", f.At, f.Op)
	case "delay":
		return fmt.Sprintf("%v %s %s %v", f.At, f.Op, peer, f.D)
	}
	return fmt.Sprintf("%v %s %s", f.At, f.Op, peer)
}

var ops = map[string]bool{"crash": true, "start": true, "pause": true, "resume": true, "reset": true,
	"split": true, "isolate": true, "cut": true, "bridge": true, "delay": true, "undelay": true, "heal": true,
	"crashall": true}

// Schedule is a run of the simulator: N peers, all started at time zero,
// a seed for every delay and race, and faults. Run with the same seed and
// faults, it records the same history.
type Schedule struct {
	N      int
	Seed   uint64
	Quorum bool
	Faults []Fault
}

// String writes the schedule in the form ParseSchedule reads, for
// go test ./sim -run TestReplay -schedule '...'.
func (sc Schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "n=%d seed=%d", sc.N, sc.Seed)
	if sc.Quorum {
		b.WriteString(" quorum")
	}
	b.WriteString(":")
	for i, f := range sc.Faults {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(" " + f.String())
	}
	return b.String()
}

// ParseSchedule reads a schedule written by Schedule.String, e.g.
// "n=3 seed=7 quorum: 2.5s cut 0, 3s delay 1 120ms, 4s heal".
func ParseSchedule(s string) (Schedule, error) {
	var sc Schedule
	head, body, ok := strings.Cut(s, ":")
	if !ok {
		return sc, fmt.Errorf("schedule %q: no ':' after the header", s)
	}
	for _, w := range strings.Fields(head) {
		k, v, _ := strings.Cut(w, "=")
		var err error
		switch k {
		case "n":
			sc.N, err = strconv.Atoi(v)
		case "seed":
			sc.Seed, err = strconv.ParseUint(v, 10, 64)
		case "quorum":
			sc.Quorum = true
		default:
			err = fmt.Errorf("unknown %q", w)
		}
		if err != nil {
			return sc, fmt.Errorf("schedule header %q: %v", head, err)
		}
	}
	if sc.N < 2 {
		return sc, fmt.Errorf("schedule %q: n must be at least 2", s)
	}
	for _, item := range strings.Split(body, ",") {
		w := strings.Fields(item)
		if len(w) == 0 {
			continue
		}
		var f Fault
		var err error
		if len(w) < 2 {
			return sc, fmt.Errorf("fault %q: want 'time op [peer [delay]]'", item)
		}
		if f.At, err = time.ParseDuration(w[0]); err != nil {
			return sc, fmt.Errorf("fault %q: %v", item, err)
		}
		f.Op = w[1]
		if !ops[f.Op] {
			return sc, fmt.Errorf("fault %q: unknown op %q", item, f.Op)
		}
		want := 3
		switch f.Op {
		case "heal", "undelay", "crashall":
			want = 2
		case "delay":
			want = 4
		}
		if len(w) != want {
			return sc, fmt.Errorf("fault %q: %s takes %d words", item, f.Op, want)
		}
		if want > 2 {
			if w[2] == "leader" {
				f.Peer = LeaderPeer
			} else if f.Peer, err = strconv.Atoi(w[2]); err != nil || f.Peer < 0 || f.Peer >= sc.N {
				return sc, fmt.Errorf("fault %q: bad peer %q", item, w[2])
			}
		}
		if want > 3 {
			if f.D, err = time.ParseDuration(w[3]); err != nil || f.D < 0 {
				return sc, fmt.Errorf("fault %q: bad delay %q", item, w[3])
			}
		}
		sc.Faults = append(sc.Faults, f)
	}
	return sc, nil
}

// SlowLimit is the largest delay a slow schedule injects: a heartbeat
// interval, the delay and the simulator's jitter stay under suspect-after,
// so no correct peer may be suspected.
func SlowLimit() time.Duration {
	return ScheduleSuspectAfter - ScheduleHeartbeat - defaultMaxDelay - time.Millisecond
}

// RandomSchedule draws the sweep's schedule for a seed. The seed decides
// everything: n = 3 + seed%5 peers; seed%3 picks the kind: 0, every kind of
// fault under the assignment's rule; 1, the same with quorum; 2, a slow
// schedule (delays below the settings, crashes, restarts and hangs, with
// quorum every other time), in which no correct peer may be suspected.
// Every schedule ends with everything repaired: every peer running, none
// hung, the network healed.
func RandomSchedule(seed uint64) Schedule {
	n := 3 + int(seed%5)
	rng := rand.New(rand.NewPCG(seed, 7))
	sc := Schedule{N: n, Seed: seed}
	kind := seed % 3
	sc.Quorum = kind == 1 || (kind == 2 && seed/3%2 == 1)
	all := []string{"crash", "start", "pause", "resume", "reset", "split", "isolate", "cut", "bridge", "delay", "heal"}
	slow := []string{"crash", "start", "pause", "resume", "delay", "delay"}
	choice := all
	if kind == 2 {
		choice = slow
	}
	at := time.Second // let the cluster form
	for k := rng.IntN(8) + 1; k > 0; k-- {
		at += time.Duration(rng.Int64N(int64(1500 * time.Millisecond)))
		f := Fault{At: at, Op: choice[rng.IntN(len(choice))], Peer: rng.IntN(n)}
		if f.Op == "heal" {
			f.Peer = 0
		}
		if f.Op == "delay" {
			if kind == 2 {
				f.D = time.Duration(rng.Int64N(int64(SlowLimit())))
			} else {
				f.D = time.Duration(rng.Int64N(int64(2 * ScheduleSuspectAfter)))
			}
			f.D = f.D.Round(time.Millisecond)
		}
		sc.Faults = append(sc.Faults, f)
	}
	at += time.Duration(rng.Int64N(int64(time.Second)))
	if kind == 2 {
		sc.Faults = append(sc.Faults, Fault{At: at, Op: "undelay"})
	} else {
		sc.Faults = append(sc.Faults, Fault{At: at, Op: "heal"})
	}
	for i := 0; i < n; i++ {
		sc.Faults = append(sc.Faults, Fault{At: at, Op: "resume", Peer: i}, Fault{At: at, Op: "start", Peer: i})
	}
	return sc
}

const defaultMaxDelay = 2 * time.Millisecond

// Settle bounds the time from the last fault to settled leaders: a dial
// begun across a cut times out (PeerDialTimeout), the redial comes after
// the back-off, then a heartbeat is heard; or a silence is waited out.
const Settle = peer.DefaultRedialMax + 2*ScheduleSuspectAfter + 4*ScheduleHeartbeat

// Run runs the schedule: it starts every peer, applies the faults at their
// times (in order; a fault before the current time happens at once), and
// runs on for twice Settle after the last.
func (sc Schedule) Run() *Sim {
	s, err := New(Config{N: sc.N, Seed: sc.Seed, LogSentHeartbeats: true, MaxDelay: defaultMaxDelay,
		Peer: peer.Config{Heartbeat: ScheduleHeartbeat, SuspectAfter: ScheduleSuspectAfter, Quorum: sc.Quorum}})
	if err != nil {
		panic(err)
	}
	s.StartAll()
	for _, f := range sc.Faults {
		s.RunUntil(f.At, nil)
		s.Apply(f)
	}
	s.RunFor(2 * Settle)
	return s
}

// Check runs the schedule and checks every property on its history.
func (sc Schedule) Check() []check.Violation {
	s := sc.Run()
	return check.Peer(s.History(), sc.Options(s))
}

// Options are the checkers' options for a run of the schedule.
func (sc Schedule) Options(s *Sim) check.Options {
	return check.Options{N: sc.N, ConvergeWithin: Settle, AllHeartbeats: true, MaxDelay: s.Config().MaxDelay}
}

// Shrink returns a shorter list of faults for which fails still holds, by
// delta debugging (Zeller and Hildebrandt's ddmin, removing complements):
// it tries removing the faults in halves, then quarters and so on down to
// one at a time, and keeps every removal after which fails still holds.
// fails must be deterministic (a simulation replays exactly from its seed;
// removing a fault changes the run, which is why every candidate is run
// again). The result is 1-minimal: removing any one fault of it makes fails
// false, unless the budget of calls ran out first. fails is called at
// most budget times.
func Shrink(faults []Fault, budget int, fails func([]Fault) bool) []Fault {
	cur := slices.Clone(faults)
	parts := 2
	calls := 0
	for len(cur) > 1 && calls < budget {
		size := (len(cur) + parts - 1) / parts
		removed := false
		for start := 0; start < len(cur) && calls < budget; start += size {
			cand := slices.Concat(cur[:start], cur[min(start+size, len(cur)):])
			calls++
			if fails(cand) {
				cur, removed = cand, true
				parts = max(parts-1, 2)
				break
			}
		}
		if !removed {
			if parts >= len(cur) {
				break
			}
			parts = min(2*parts, len(cur))
		}
	}
	if len(cur) == 1 && calls < budget && fails(nil) {
		return nil
	}
	return cur
}
