package sim

import (
	"cmp"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/layers"
	"github.com/conclave/conclave/stack"
)

func groupStack(t testing.TB, name string) func(stack.Member) *stack.Stack {
	d, err := layers.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	reg := layers.Registry()
	return func(me stack.Member) *stack.Stack {
		st, err := reg.Build(d, me)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
}

// traffic has each member, every interval until stop, send a message, a
// burst of a few, or nothing.
func traffic(s *GroupSim, every time.Duration, until time.Duration) {
	var tick func()
	tick = func() {
		if s.Now() >= until {
			return
		}
		for i := range s.cfg.N {
			switch s.rng.IntN(8) {
			case 0, 1, 2:
				s.Send(i)
			case 3:
				// Several at once: they travel in one bundle.
				s.SendBurst(i, 2+s.rng.IntN(4))
			}
		}
		s.after(every, tick)
	}
	s.after(every, tick)
}

// seed returns the -seed flag, or def.
func seed(def uint64) uint64 {
	if *seedFlag != 0 {
		return *seedFlag
	}
	return def
}

func settle(t *testing.T, s *GroupSim, within time.Duration) {
	t.Helper()
	if !s.RunUntil(s.Now()+within, s.Agreed) {
		for i := range s.cfg.N {
			v, ok := s.View(i)
			t.Logf("m%d running=%v left=%v inView=%v view=%v %v", i, s.Running(i), s.members[i].left, ok, v.ID, v.IDs())
		}
		t.Fatalf("no agreed view within %v (seed %d)", within, s.cfg.Seed)
	}
	// Let acknowledgements and orders finish.
	s.RunFor(50 * time.Millisecond)
}

func groupCheck(t *testing.T, s *GroupSim, total bool) {
	t.Helper()
	for _, v := range check.Group(s.History(), check.GroupOptions{Total: total, Quiet: true}) {
		t.Error(v)
	}
	if t.Failed() {
		t.Logf("seed %d; replay with -run %s -seed %d", s.cfg.Seed, t.Name(), s.cfg.Seed)
	}
}

func TestGroupFormsAndDelivers(t *testing.T) {
	for _, name := range []string{"vsync", "total"} {
		t.Run(name, func(t *testing.T) {
			s := NewGroup(GroupConfig{N: 4, Seed: seed(1), Stack: groupStack(t, name)})
			for i := range 4 {
				s.Start(i)
			}
			settle(t, s, 5*time.Second)
			v, _ := s.View(0)
			if len(v.Members) != 4 || v.Members[0].ID != s.Member(0) {
				t.Fatalf("view %v: want 4 members, m0 (the lowest address) first", v.IDs())
			}
			traffic(s, time.Millisecond, s.Now()+200*time.Millisecond)
			s.RunFor(300 * time.Millisecond)
			if s.Sent() == 0 {
				t.Fatal("no traffic")
			}
			n := 0
			for _, e := range s.History() {
				if e.Ev == "deliver" {
					n++
				}
			}
			if n != 4*s.Sent() {
				t.Errorf("%d deliveries of %d messages to 4 members", n, s.Sent())
			}
			groupCheck(t, s, name == "total")
		})
	}
}

func TestGroupFaultsDuringTraffic(t *testing.T) {
	for _, name := range []string{"vsync", "total"} {
		t.Run(name, func(t *testing.T) {
			s := NewGroup(GroupConfig{N: 5, Seed: seed(2), Stack: groupStack(t, name)})
			for i := range 5 {
				s.Start(i)
			}
			settle(t, s, 5*time.Second)
			traffic(s, time.Millisecond, s.Now()+3*time.Second)
			s.RunFor(100 * time.Millisecond)
			s.Crash(0) // the coordinator and sequencer
			s.RunFor(300 * time.Millisecond)
			s.Pause(2)
			s.RunFor(800 * time.Millisecond)
			s.Resume(2)
			s.Leave(3)
			s.RunFor(200 * time.Millisecond)
			s.Start(0)
			s.RunFor(2 * time.Second)
			settle(t, s, 5*time.Second)
			groupCheck(t, s, name == "total")
			if t.Failed() && testing.Verbose() {
				dumpGroup(t, s, "m2")
			}
		})
	}
}

// groupSweepCount is the number of schedules of the default group sweep.
const groupSweepCount = 80

// TestGroupSweep runs random schedules of crashes, restarts, pauses,
// resumes, leaves, connection resets, cuts, partitions, bridges, delays
// and heals during traffic, N=3..6, then heals everything, waits for one agreed view and
// checks every group property. CONCLAVE_GROUP_SWEEP sets the number of
// schedules, -seed S the first (alone, without CONCLAVE_GROUP_SWEEP);
// schedules run on GOMAXPROCS workers, and with -v it prints how many ran
// per second.
func TestGroupSweep(t *testing.T) {
	n := groupSweepCount
	if *seedFlag != 0 {
		n = 1 // replay one, or CONCLAVE_GROUP_SWEEP from there
	}
	if v := os.Getenv("CONCLAVE_GROUP_SWEEP"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	first := seed(1)
	workers := runtime.GOMAXPROCS(0)
	start := time.Now()
	ran, failures := groupSweep(first, n, workers, 5, 0)
	el := time.Since(start)
	for _, f := range failures {
		for _, m := range f.report {
			t.Log(m)
		}
		t.Errorf("seed %d (%s) failed; replay with: go test ./sim -run 'TestGroupSweep$' -seed %d [-dump all]", f.seed, groupStackName(f.seed), f.seed)
	}
	if *groupDump != "" && *seedFlag != 0 && n == 1 {
		r := runGroupSchedule(first)
		for _, e := range r.history {
			if e.Ev == "send" || e.Ev == "deliver" || e.Ev == "acked" || e.Ev == "order_skipped" {
				continue
			}
			if *groupDump == "all" || e.Node == "control" || slices.Contains(strings.Split(*groupDump, ","), e.Node) {
				t.Log(eventlog.Format(e))
			}
		}
	}
	if len(ran) < n && len(failures) == 0 {
		t.Errorf("ran %d schedules of %d", len(ran), n)
	}
	t.Logf("%d group schedules (seeds %d to %d) in %v on %d workers: %.1f schedules/s",
		len(ran), first, first+uint64(n)-1, el.Round(time.Millisecond), workers, float64(len(ran))/el.Seconds())
}

type groupFailure struct {
	seed   uint64
	report []string
}

// groupSweep runs count group schedules from seed first on workers
// goroutines and returns the seeds it ran and the failures of the lowest
// seeds, at most keep of them. It stops early once keep schedules have
// failed.
func groupSweep(first uint64, count, workers, keep int, batch time.Duration) (ran []uint64, failures []groupFailure) {
	// A schedule keeps a large history while it allocates many small,
	// short-lived objects: collecting less often saves a third of the time
	// for some more memory (tens of MB per worker).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	var (
		next   atomic.Uint64
		failed atomic.Int64
		mu     sync.Mutex
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for failed.Load() < int64(keep) {
				k := next.Add(1) - 1
				if k >= uint64(count) {
					return
				}
				sd := first + k
				r := runGroupScheduleBatch(sd, batch)
				mu.Lock()
				ran = append(ran, sd)
				if !r.ok {
					failures = append(failures, groupFailure{sd, r.report})
					failed.Add(1)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(ran)
	slices.SortFunc(failures, func(a, b groupFailure) int { return cmp.Compare(a.seed, b.seed) })
	return ran, failures[:min(len(failures), keep)]
}

// groupRegressions are sweep seeds that failed, with the bug each found.
// A seed replays the same run only as long as the simulator, the sweep and
// the layers do not change what is sent when; each was checked to fail
// with its fix undone when it was added or last updated (the last time when
// vsync came to ask for gaps again and members to give up a flush after
// waiting for any Install: seed 201 no longer exercised its bug, 741 none).
// Where a later mechanism also rescues the group from the bug, the seed
// checks that it was not needed (no flush timed out, no flush given up
// after waiting); where no seed is left, a unit test in layers pins the
// bug.
var groupRegressions = []struct {
	seed           uint64
	noFlushTimeout bool // no flush timed out
	noWaited       bool // no member gave up a flush after waiting (flush_abandoned cause=waited)
	bug            string
}{
	{1, false, false, "vsync delivered at Install messages received after its flush contribution, which the others did not have (view synchrony)"},
	{275, false, false, "a member that suspected another (a bridge cut them apart) did not tell the coordinator: no view change, total order stuck (acked-delivered; seeds 201 and 25 before, until vsync asked for gaps again)"},
	{1148, false, true, "a member lost the Install of a leaving coordinator (the close of its own connection to it came first, and suspecting it, it closed the other) and stayed blocked in the old view for ever (no agreed view; now the wait for any Install, flush_abandoned cause=waited, rescues it later)"},
	{1526, false, true, "as seed 1148"},
	{1175, true, false, "a member took only the Install of the last flush it answered: after competing flushes, the coordinator whose Install it dropped counted it in the new view while it stayed in the old one (no agreed view until the flush timed out; seeds 404 and 1204 before)"},
	// Seed 741 stood for suspicions re-sent to the coordinator of a new
	// view (two members that could not talk stayed in every later view and
	// lost what they sent each other): since vsync asks for gaps again, the
	// retransmission after the heal recovers those messages, and none of
	// 2,000 seeds fails with the re-send undone.
	// layers.TestSuspicionReportedAgainAtInstall pins it.
	// Seed 3501 stood for the flush timeout itself (a member that missed
	// an Install, heartbeating but never answering the next flush): members
	// now also abandon such flushes, and no seed of 6,000 needs the timeout
	// alone. layers.TestFlushTimeoutSuspectsSilentMember pins it.
}

// TestGroupRegressions replays the sweep seeds that found bugs.
func TestGroupRegressions(t *testing.T) {
	for _, reg := range groupRegressions {
		r := runGroupSchedule(reg.seed)
		if !r.ok {
			for _, m := range r.report {
				t.Log(m)
			}
			t.Errorf("seed %d (%s): %s", reg.seed, groupStackName(reg.seed), reg.bug)
			continue
		}
		for _, e := range r.history {
			if reg.noFlushTimeout && e.Ev == "flush_timeout" ||
				reg.noWaited && e.Ev == "flush_abandoned" && e.Str("cause") == "waited" {
				t.Errorf("seed %d (%s): %s\n%s", reg.seed, groupStackName(reg.seed), reg.bug, eventlog.Format(e))
				break
			}
		}
	}
}

var groupDump = flag.String("dump", "", "with -seed: print the events (but sends, deliveries and acks) of these nodes, e.g. m0,m2, or all")

// groupStackName is the stack a group schedule runs: vsync for even seeds,
// total for odd ones.
func groupStackName(sd uint64) string { return []string{"vsync", "total"}[sd%2] }

// groupStacks builds the shipped stacks, loaded once.
var groupStacks = sync.OnceValue(func() map[string]func(stack.Member) *stack.Stack {
	out := map[string]func(stack.Member) *stack.Stack{}
	reg := layers.Registry()
	for _, name := range []string{"vsync", "total"} {
		d, err := layers.Load(name)
		if err != nil {
			panic(err)
		}
		out[name] = func(me stack.Member) *stack.Stack {
			st, err := reg.Build(d, me)
			if err != nil {
				panic(err)
			}
			return st
		}
	}
	return out
})

// groupResult is the outcome of a group schedule: whether it passed, what
// went wrong, and the history.
type groupResult struct {
	ok      bool
	report  []string
	history []eventlog.Event
}

// runGroupSchedule runs the sweep's group schedule for seed sd and checks
// it. It is safe to call from several goroutines.
func runGroupSchedule(sd uint64) groupResult { return runGroupScheduleBatch(sd, 0) }

// runGroupScheduleBatch is runGroupSchedule with members that end their
// batches every batch (GroupConfig.Batch).
func runGroupScheduleBatch(sd uint64, batch time.Duration) (r groupResult) {
	name := groupStackName(sd)
	rng := rand.New(rand.NewPCG(sd, 7))
	nm := 3 + rng.IntN(4)
	s := NewGroup(GroupConfig{N: nm, Seed: sd, Stack: groupStacks()[name], Batch: batch})
	defer func() { r.history = s.History() }()
	for i := range nm {
		s.Start(i)
	}
	if !s.RunUntil(5*time.Second, s.Agreed) {
		r.report = append(r.report, fmt.Sprintf("seed %d: no first view", sd))
		return r
	}
	end := s.Now() + 3*time.Second
	traffic(s, 2*time.Millisecond, end)
	var ops []string
	faults := []string{"crash", "start", "pause", "resume", "leave", "reset", "cut", "isolate", "split", "bridge", "delay", "heal"}
	for s.Now() < end {
		s.RunFor(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		f := Fault{At: s.Now(), Peer: rng.IntN(nm), Op: faults[rng.IntN(len(faults))]}
		if f.Op == "delay" {
			f.D = time.Duration(rng.Int64N(int64(2 * ScheduleSuspectAfter))).Round(time.Millisecond)
		}
		s.Apply(f)
		ops = append(ops, f.String())
	}
	s.Apply(Fault{Op: "heal"})
	for i := range nm {
		s.Resume(i)
	}
	s.RunFor(time.Second)
	if !s.RunUntil(s.Now()+10*time.Second, s.Agreed) {
		for i := range nm {
			v, ok := s.View(i)
			r.report = append(r.report, fmt.Sprintf("m%d running=%v left=%v inView=%v view=%v %v", i, s.Running(i), s.members[i].left, ok, v.ID, v.IDs()))
		}
		r.report = append(r.report, fmt.Sprintf("seed %d (%s, n=%d): no agreed view after the faults %v", sd, name, nm, ops))
		return r
	}
	s.RunFor(100 * time.Millisecond)
	vs := check.Group(s.History(), check.GroupOptions{Total: name == "total", Quiet: true})
	for i, v := range vs {
		if i < 10 {
			r.report = append(r.report, v.String())
		}
	}
	if len(vs) > 0 {
		r.report = append(r.report, fmt.Sprintf("faults: %v", ops))
	}
	r.ok = len(vs) == 0
	return r
}

// dumpGroup logs node's events but its messages, and the faults; every
// node's with node empty.
func dumpGroup(t *testing.T, s *GroupSim, node string) {
	for _, e := range s.History() {
		if node == "" || e.Node == node || e.Node == "control" {
			if e.Ev != "deliver" && e.Ev != "send" && e.Ev != "acked" {
				t.Log(eventlog.Format(e))
			}
		}
	}
}

// TestGroupMergeAfterPartition splits a group in two halves during
// traffic, heals, and checks that the halves merge into one view in which
// nothing is lost: no member sees a gap in a sender's messages. (The
// members of the dissolved half used to number their views of one above
// the view that took them in, and dropped its first messages as old.)
func TestGroupMergeAfterPartition(t *testing.T) {
	for _, name := range []string{"vsync", "total"} {
		t.Run(name, func(t *testing.T) {
			s := NewGroup(GroupConfig{N: 4, Seed: seed(3), Stack: groupStack(t, name)})
			for i := range 4 {
				s.Start(i)
			}
			settle(t, s, 5*time.Second)
			end := s.Now() + 3*time.Second
			traffic(s, time.Millisecond, end)
			s.RunFor(100 * time.Millisecond)
			s.Partition([]int{0, 1}, []int{2, 3})
			s.RunFor(time.Second)
			v0, _ := s.View(0)
			v2, _ := s.View(2)
			if len(v0.Members) != 2 || len(v2.Members) != 2 {
				t.Fatalf("partitioned views %v and %v: want two of two", v0.IDs(), v2.IDs())
			}
			s.Heal()
			settle(t, s, 5*time.Second)
			// The traffic ends before the check, which holds the run
			// quiet: what is acknowledged is delivered everywhere.
			s.RunFor(max(end-s.Now(), 0))
			settle(t, s, 5*time.Second)
			for _, e := range s.History() {
				if e.Ev == "gap" {
					t.Errorf("gap: %s", eventlog.Format(e))
				}
			}
			groupCheck(t, s, name == "total")
		})
	}
}
