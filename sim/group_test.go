package sim

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
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

// traffic has every member send a message every interval until stop.
func traffic(s *GroupSim, every time.Duration, until time.Duration) {
	var tick func()
	tick = func() {
		if s.Now() >= until {
			return
		}
		for i := range s.cfg.N {
			if s.rng.IntN(2) == 0 {
				s.Send(i)
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

// TestGroupSweep runs random schedules of crashes, restarts, pauses,
// resumes and leaves during traffic, N=3..6, and checks every group
// property. CONCLAVE_GROUP_SWEEP sets the number of schedules.
func TestGroupSweep(t *testing.T) {
	n := 40
	if v := os.Getenv("CONCLAVE_GROUP_SWEEP"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	base := seed(1)
	if *seedFlag != 0 {
		n = 1
	}
	start := time.Now()
	for k := range n {
		sd := base + uint64(k)
		name := []string{"vsync", "total"}[sd%2]
		if !runGroupSchedule(t, sd, name) {
			t.Fatalf("seed %d (%s) failed; replay with: go test ./sim -run TestGroupSweep -seed %d", sd, name, sd)
		}
	}
	t.Logf("%d group schedules in %v (%.0f/s)", n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
}

func runGroupSchedule(t *testing.T, sd uint64, name string) bool {
	rng := rand.New(rand.NewPCG(sd, 7))
	nm := 3 + rng.IntN(4)
	s := NewGroup(GroupConfig{N: nm, Seed: sd, Stack: groupStack(t, name)})
	for i := range nm {
		s.Start(i)
	}
	if !s.RunUntil(5*time.Second, s.Agreed) {
		t.Errorf("seed %d: no first view", sd)
		return false
	}
	end := s.Now() + 3*time.Second
	traffic(s, 2*time.Millisecond, end)
	var ops []string
	for s.Now() < end {
		s.RunFor(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		i := rng.IntN(nm)
		switch op := []string{"crash", "start", "pause", "resume", "leave"}[rng.IntN(5)]; op {
		case "crash":
			s.Crash(i)
		case "start":
			s.Start(i)
		case "pause":
			s.Pause(i)
		case "resume":
			s.Resume(i)
		case "leave":
			s.Leave(i)
		}
		ops = append(ops, fmt.Sprintf("%v:%d", s.Now(), i))
	}
	for i := range nm {
		s.Resume(i)
	}
	s.RunFor(time.Second)
	if !s.RunUntil(s.Now()+10*time.Second, s.Agreed) {
		for i := range nm {
			v, ok := s.View(i)
			t.Logf("m%d running=%v left=%v inView=%v view=%v %v", i, s.Running(i), s.members[i].left, ok, v.ID, v.IDs())
		}
		t.Errorf("seed %d (%s, n=%d): no agreed view after the faults", sd, name, nm)
		return false
	}
	s.RunFor(100 * time.Millisecond)
	vs := check.Group(s.History(), check.GroupOptions{Total: name == "total", Quiet: true})
	for i, v := range vs {
		if i < 10 {
			t.Error(v)
		}
	}
	return len(vs) == 0
}

func dumpGroup(t *testing.T, s *GroupSim, node string) {
	for _, e := range s.History() {
		if e.Node == node || e.Node == "control" {
			if e.Ev != "deliver" && e.Ev != "send" && e.Ev != "acked" {
				t.Log(eventlog.Format(e))
			}
		}
	}
}
