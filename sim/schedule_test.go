package sim

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
)

func TestScheduleRoundTrip(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		sc := RandomSchedule(seed)
		back, err := ParseSchedule(sc.String())
		if err != nil {
			t.Fatalf("seed %d: %v\n%v", seed, err, sc)
		}
		if back.N != sc.N || back.Seed != sc.Seed || back.Quorum != sc.Quorum || !slices.Equal(back.Faults, sc.Faults) {
			t.Fatalf("seed %d: read back\n%v\nfrom\n%v", seed, back, sc)
		}
		if k := kindName(seed); strings.Contains(k, "quorum") != sc.Quorum || strings.Contains(k, "slow") != slices.ContainsFunc(sc.Faults, func(f Fault) bool { return f.Op == "undelay" }) {
			t.Fatalf("seed %d is named %q: %v", seed, k, sc)
		}
	}
	for _, bad := range []string{
		"n=3 seed=1 2s crash 0",        // no colon
		"n=1 seed=1: 2s crash 0",       // too few peers
		"n=3 seed=x: 2s crash 0",       // bad seed
		"n=3 seed=1 fast: 2s crash 0",  // unknown flag
		"n=3 seed=1: 2s explode 0",     // unknown op
		"n=3 seed=1: 2s crash 3",       // no such peer
		"n=3 seed=1: 2s crash",         // missing peer
		"n=3 seed=1: 2s delay 0",       // missing delay
		"n=3 seed=1: 2s heal 1",        // extra word
		"n=3 seed=1: soon crash 0",     // bad time
		"n=3 seed=1: 2s delay 0 -10ms", // negative delay
	} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) accepted it", bad)
		}
	}
}

// TestShrinkFindsTheCulprits shrinks with an artificial failure: the run
// "fails" when it holds both "crash 1" and "pause 2" in that order.
func TestShrinkFindsTheCulprits(t *testing.T) {
	var faults []Fault
	for i := range 40 {
		faults = append(faults, Fault{At: time.Duration(i) * time.Second, Op: []string{"start", "resume", "heal", "reset"}[i%4], Peer: i % 3})
	}
	faults[13] = Fault{At: 13 * time.Second, Op: "crash", Peer: 1}
	faults[29] = Fault{At: 29 * time.Second, Op: "pause", Peer: 2}
	calls := 0
	fails := func(f []Fault) bool {
		calls++
		i := slices.IndexFunc(f, func(x Fault) bool { return x.Op == "crash" && x.Peer == 1 })
		return i >= 0 && slices.ContainsFunc(f[i:], func(x Fault) bool { return x.Op == "pause" && x.Peer == 2 })
	}
	got := Shrink(faults, 1000, fails)
	if want := []Fault{faults[13], faults[29]}; !slices.Equal(got, want) {
		t.Fatalf("shrunk to %v, want %v", got, want)
	}
	t.Logf("%d calls", calls)
	// A budget stops it early, with a schedule that still fails.
	calls = 0
	got = Shrink(faults, 3, fails)
	if calls > 3 || !fails(got) {
		t.Fatalf("with a budget of 3: %d calls, result %v", calls, got)
	}
	// A failure that needs nothing shrinks to nothing.
	if got := Shrink(faults, 100, func([]Fault) bool { return true }); len(got) != 0 {
		t.Fatalf("shrunk an always-failing schedule to %v", got)
	}
}

// TestShrinkRealRun shrinks a real schedule against a predicate about its
// run: some peer is declared down by silence. One fault is enough for that
// (a hang, a cut or a long delay), and the shrunk schedule replays to the
// same outcome from its printed form.
func TestShrinkRealRun(t *testing.T) {
	silence := func(sc Schedule) bool {
		return slices.ContainsFunc(sc.Run().History(), func(e eventlog.Event) bool {
			return e.Ev == "peer_down" && e.Str("cause") == "silence"
		})
	}
	var sc Schedule
	for seed := uint64(1); ; seed++ {
		if sc = RandomSchedule(seed); len(sc.Faults) > 10 && silence(sc) {
			break
		}
		if seed == 1000 {
			t.Fatal("no schedule of the first 1000 seeds silences a peer")
		}
	}
	small := sc
	small.Faults = Shrink(sc.Faults, 200, func(f []Fault) bool {
		c := sc
		c.Faults = f
		return silence(c)
	})
	if len(small.Faults) != 1 || !strings.Contains("pause isolate split cut bridge delay", small.Faults[0].Op) {
		t.Fatalf("shrunk %v\nto %v, want one fault that silences a peer", sc, small)
	}
	replay, err := ParseSchedule(small.String())
	if err != nil || !silence(replay) {
		t.Fatalf("replaying %q: %v, silence %v", small, err, err == nil && silence(replay))
	}
}

// TestShrinkFailureKeepsTheRepair shrinks a broken schedule the way the
// sweep does: with a checker that fails whenever a peer was hung, the
// result is the one hang plus the repair at the end.
func TestShrinkFailureKeepsTheRepair(t *testing.T) {
	var sc Schedule
	for seed := uint64(1); ; seed++ {
		sc = RandomSchedule(seed)
		if len(sc.Faults) > 2*sc.N+4 && slices.ContainsFunc(sc.Faults, func(f Fault) bool { return f.Op == "pause" }) {
			break
		}
		if seed == 1000 {
			t.Fatal("no schedule of the first 1000 seeds hangs a peer")
		}
	}
	hung := func(c Schedule) []check.Violation {
		for _, e := range c.Run().History() {
			if e.Ev == "proc_stop" {
				return []check.Violation{{Rule: "hung", Event: e}}
			}
		}
		return nil
	}
	small := shrinkFailure(sc, "hung", hung)
	repair := sc.Faults[len(sc.Faults)-2*sc.N-1:]
	if len(small.Faults) != 1+len(repair) || small.Faults[0].Op != "pause" || !slices.Equal(small.Faults[1:], repair) {
		t.Fatalf("shrunk %v\nto %v, want a hang and the repair", sc, small)
	}
}
