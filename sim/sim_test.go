package sim

import (
	"flag"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/peer"
)

var seedFlag = flag.Uint64("seed", 0, "run scenario tests with this seed only")

// seeds returns the seeds a scenario test runs with.
func seeds() []uint64 {
	if *seedFlag != 0 {
		return []uint64{*seedFlag}
	}
	return []uint64{1, 2, 3, 4, 5, 6, 7, 8}
}

const (
	hb      = 100 * time.Millisecond
	suspect = 500 * time.Millisecond
)

func newSim(t *testing.T, n int, seed uint64, quorum bool) *Sim {
	t.Helper()
	s, err := New(Config{N: n, Seed: seed, Peer: peer.Config{Heartbeat: hb, SuspectAfter: suspect, Quorum: quorum}, LogHeartbeats: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// formed returns a simulation of n peers, all started and agreeing on
// leader 0.
func formed(t *testing.T, n int, seed uint64, quorum bool) *Sim {
	t.Helper()
	s := newSim(t, n, seed, quorum)
	s.StartAll()
	waitLeader(t, s, 0, 2*time.Second)
	return s
}

// eachSeed runs f as a subtest per seed, naming the seed so a failure can
// be replayed with -seed.
func eachSeed(t *testing.T, f func(t *testing.T, seed uint64)) {
	for _, seed := range seeds() {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { f(t, seed) })
	}
}

// waitLeader runs until every running, unpaused peer reports want, or fails
// after limit of simulated time.
func waitLeader(t *testing.T, s *Sim, want int, limit time.Duration) time.Duration {
	t.Helper()
	start := s.Now()
	ok := s.RunUntil(s.Now()+limit, func() bool { l, ok := s.Converged(); return ok && l == want })
	if !ok {
		t.Fatalf("at %v: peers did not agree on leader %d within %v: %v", s.Now(), want, limit, leaders(s))
	}
	return s.Now() - start
}

func leaders(s *Sim) []int {
	var out []int
	for i := range s.peers {
		out = append(out, s.Leader(i))
	}
	return out
}

func events(h []eventlog.Event, node, ev string) []eventlog.Event {
	var out []eventlog.Event
	for _, e := range h {
		if (node == "" || e.Node == node) && e.Ev == ev {
			out = append(out, e)
		}
	}
	return out
}

func TestFirstLeaderWaitsForEveryPeer(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		s := newSim(t, 4, seed, false)
		for i := 1; i < 4; i++ {
			s.Start(i)
		}
		s.RunFor(5 * time.Second)
		for i := 1; i < 4; i++ {
			if l := s.Leader(i); l != peer.None {
				t.Fatalf("peer %d reports leader %d while peer 0 never started", i, l)
			}
		}
		if n := len(events(s.History(), "", "leader_change")); n != 0 {
			t.Fatalf("%d leader changes before every peer was seen", n)
		}
		s.Start(0)
		waitLeader(t, s, 0, 2*time.Second)
		for _, e := range events(s.History(), "", "leader_change") {
			if l, _ := e.Int("leader"); l != 0 {
				t.Fatalf("%s elected %d first, want 0", e.Node, l)
			}
		}
	})
}

// TestNobodyStrandedWhenFirstLeaderDiesEarly is the README's cluster pasted
// at once, then kill -9 of peer 0: peer 0 dies before peer 3 is up, so no
// peer ever sees all four up at once. Peers 1 and 2 heard 0 before it died,
// so they open their elections once they hear 3; 3 learns from them that 0
// is down. Nobody stays at leader none.
func TestNobodyStrandedWhenFirstLeaderDiesEarly(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		s := newSim(t, 4, seed, false)
		for i := range 3 {
			s.Start(i)
		}
		s.RunFor(300 * time.Millisecond)
		s.Crash(0)
		s.RunFor(10 * time.Millisecond)
		s.Start(3)
		waitLeader(t, s, 1, 2*time.Second)
		if v := check.Peer(s.History(), check.Options{N: 4, AllHeartbeats: true, MaxDelay: s.Config().MaxDelay}); len(v) > 0 {
			t.Fatal(v)
		}
	})
}

func TestCrashedLeaderReplacedByNextLowest(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		s := formed(t, 4, seed, false)
		s.Crash(0)
		// A crash closes connections: detection needs no timeout.
		waitLeader(t, s, 1, suspect/2)
		s.Crash(1)
		waitLeader(t, s, 2, suspect/2)
		for _, e := range events(s.History(), "", "peer_down") {
			if e.Str("cause") != "conn_closed" {
				t.Errorf("%s detected a crash by %s", e.Node, e.Str("cause"))
			}
		}
	})
}

func TestHungLeaderDetectedBySilence(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		s := formed(t, 4, seed, false)
		s.Pause(0)
		took := waitLeader(t, s, 1, suspect+2*hb)
		// The last heartbeat arrived at most one interval before the
		// pause; silence is counted from it.
		if took < suspect-hb-s.Config().MaxDelay {
			t.Fatalf("hang detected after %v: too soon for suspect-after %v", took, suspect)
		}
		for _, e := range events(s.History(), "", "peer_down") {
			if p, _ := e.Int("peer"); p == 0 && e.Str("cause") != "silence" {
				t.Errorf("%s detected the hang by %s", e.Node, e.Str("cause"))
			}
		}
		s.Resume(0)
		waitLeader(t, s, 0, 3*time.Second)
	})
}

func TestRestartIsNewIncarnation(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		s := formed(t, 4, seed, false)
		s.Crash(0)
		waitLeader(t, s, 1, time.Second)
		s.Start(0)
		waitLeader(t, s, 0, 3*time.Second)
		for i := 1; i < 4; i++ {
			ups := events(s.History(), fmt.Sprintf("peer-%d", i), "peer_up")
			var incs []int
			for _, e := range ups {
				if p, _ := e.Int("peer"); p == 0 {
					inc, _ := e.Int("peer_inc")
					incs = append(incs, inc)
				}
			}
			if len(incs) != 2 || incs[1] <= incs[0] {
				t.Fatalf("peer %d saw peer 0 come up with incarnations %v, want two, increasing", i, incs)
			}
		}
	})
}

// TestPartition splits 5 peers 2|3: without quorum each side elects its
// lowest id; with quorum only the majority side has a leader.
func TestPartition(t *testing.T) {
	for _, c := range []struct {
		quorum bool
		want   []int
	}{{false, []int{0, 0, 2, 2, 2}}, {true, []int{-1, -1, 2, 2, 2}}} {
		t.Run(fmt.Sprintf("quorum=%v", c.quorum), func(t *testing.T) {
			eachSeed(t, func(t *testing.T, seed uint64) {
				s := formed(t, 5, seed, c.quorum)
				s.Partition([]int{0, 1}, []int{2, 3, 4})
				s.RunFor(suspect + 3*hb)
				if got := leaders(s); !slices.Equal(got, c.want) {
					t.Fatalf("leaders during the partition: %v, want %v", got, c.want)
				}
				s.Heal()
				waitLeader(t, s, 0, 3*time.Second)
			})
		})
	}
}

func TestEveryLeaderChangeIsAnnouncedUrgently(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		s := formed(t, 4, seed, false)
		s.Crash(0)
		waitLeader(t, s, 1, time.Second)
		s.Start(0)
		waitLeader(t, s, 0, 3*time.Second)
		s.RunFor(time.Second)
		h := s.History()
		for _, v := range check.UrgentNotices(h) {
			t.Error(v)
		}
		if s, r := len(events(h, "", "urgent_sent")), len(events(h, "", "urgent_recv")); r == 0 || r > s {
			t.Errorf("%d urgent notices sent, %d received", s, r)
		}
	})
}

func TestNoHeartbeatAfterClose(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		s := formed(t, 4, seed, false)
		s.Crash(3)
		s.Pause(2)
		s.RunFor(2 * time.Second)
		for _, v := range check.NoHeartbeatAfterClose(s.History()) {
			t.Error(v)
		}
	})
}

func TestSameSeedSameHistory(t *testing.T) {
	run := func() []eventlog.Event {
		s := newSim(t, 5, 42, false)
		s.StartAll()
		s.RunFor(time.Second)
		s.Crash(0)
		s.Pause(2)
		s.RunFor(time.Second)
		s.Resume(2)
		s.Partition([]int{0, 1, 2}, []int{3, 4})
		s.RunFor(time.Second)
		s.Heal()
		s.Start(0)
		s.RunFor(2 * time.Second)
		return s.History()
	}
	a, b := run(), run()
	if len(a) != len(b) {
		t.Fatalf("two runs of one seed recorded %d and %d events", len(a), len(b))
	}
	for i := range a {
		if eventlog.Format(a[i]) != eventlog.Format(b[i]) {
			t.Fatalf("runs diverge at event %d:\n%s\n%s", i, eventlog.Format(a[i]), eventlog.Format(b[i]))
		}
	}
}

func TestRestartWhileAnotherPeerIsDown(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		s := formed(t, 4, seed, false)
		s.Crash(0)
		waitLeader(t, s, 1, time.Second)
		s.Crash(2)
		s.Start(2)
		// Peer 2 never sees peer 0, but peers 1 and 3 tell it 0 is down.
		waitLeader(t, s, 1, 3*time.Second)
		opens := events(s.History(), "peer-2", "election_open")
		if len(opens) != 2 {
			t.Fatalf("peer 2 opened elections %d times, want once per incarnation", len(opens))
		}
		if via, _ := opens[1].Int("via"); via != 1 && via != 3 {
			t.Fatalf("restarted peer 2 opened elections via %d, want a peer that told it", via)
		}
	})
}

// TestKillOfHungPeer is the regression for sweep seed 15072: a peer killed
// while hung may be detected by the silence that began before the kill.
func TestKillOfHungPeer(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		s := formed(t, 4, seed, false)
		s.Pause(0)
		s.RunFor(suspect - hb/2)
		s.Crash(0)
		waitLeader(t, s, 1, suspect)
		if v := check.DetectionCause(s.History()); len(v) > 0 {
			t.Fatal(v)
		}
	})
}

// disagreement returns the first moment at which two running, unhung
// peers recognise different leaders (neither none), and how long it lasted.
func disagreement(h []eventlog.Event) (at, lasted time.Duration, ok bool) {
	leaders := map[int]int{}
	live := map[int]bool{}
	differ := func() bool {
		seen := peer.None
		for id, l := range leaders {
			if !live[id] || l == peer.None {
				continue
			}
			if seen != peer.None && l != seen {
				return true
			}
			seen = l
		}
		return false
	}
	for _, e := range h {
		t := e.TS.Sub(Epoch)
		if e.Node == "control" {
			p, _ := e.Int("peer")
			switch e.Ev {
			case "proc_start", "proc_cont":
				live[p] = true
			case "proc_kill", "proc_stop", "proc_term":
				live[p] = false
			}
		} else if e.Ev == "start" {
			leaders[check.PeerID(e.Node)] = peer.None
		} else if e.Ev == "leader_change" {
			l, _ := e.Int("leader")
			leaders[check.PeerID(e.Node)] = l
		}
		switch d := differ(); {
		case d && !ok:
			at, ok = t, true
		case !d && ok:
			return at, t - at, true
		}
	}
	if ok {
		return at, h[len(h)-1].TS.Sub(Epoch) - at, true
	}
	return 0, 0, false
}

// simOptions are the checkers' options for a scenario's history.
func simOptions(s *Sim) check.Options {
	return check.Options{N: s.Config().N, AllHeartbeats: true, MaxDelay: s.Config().MaxDelay}
}

// TestQuorumCutElectsTwoLeaders shows why "no two peers recognise different
// leaders at once" cannot hold in quorum mode: with the link between 0 and 1
// cut, peer 0 sees {0, 2} and peer 1 sees {1, 2}, each a majority of 3, and
// each elects the lowest id it sees, for as long as the cut lasts. What
// holds is checked: each peer's leader follows from its view, a peer sees
// only peers it can reach, and only with a majority of them.
func TestQuorumCutElectsTwoLeaders(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		s := formed(t, 3, seed, true)
		s.Cut(0, 1)
		s.RunFor(3 * time.Second)
		if got := leaders(s); !slices.Equal(got, []int{0, 1, 0}) {
			t.Fatalf("leaders under the cut: %v, want [0 1 0]", got)
		}
		if _, lasted, ok := disagreement(s.History()); !ok || lasted < 2*time.Second {
			t.Fatalf("peers disagreed for %v, want the length of the cut", lasted)
		}
		for _, v := range check.Peer(s.History(), simOptions(s)) {
			t.Error(v)
		}
		s.Heal()
		waitLeader(t, s, 0, 3*time.Second)
	})
}

// TestQuorumSplitMomentaryDisagreement shows the other way two leaders
// coexist: on a clean 2|2 split of 4 peers (no majority anywhere) the peers
// notice the split one by one, and for a moment one peer has already lost
// the old leader, but not yet its majority, while another still has the
// old leader (sweep seed 1: peer 2 recognised 1 while peers 0 and 1 still
// recognised 0, for 143µs). Once every peer has noticed, within the
// detection bound, nobody recognises a leader.
func TestQuorumSplitMomentaryDisagreement(t *testing.T) {
	var seen int
	for _, seed := range seeds() {
		s := formed(t, 4, seed, true)
		split := s.Now()
		s.Partition([]int{0, 1}, []int{2, 3})
		s.RunFor(suspect + 3*hb)
		if got := leaders(s); !slices.Equal(got, []int{-1, -1, -1, -1}) {
			t.Fatalf("seed %d: leaders after the split: %v, want none anywhere", seed, got)
		}
		for _, v := range check.Peer(s.History(), simOptions(s)) {
			t.Errorf("seed %d: %v", seed, v)
		}
		if at, lasted, ok := disagreement(s.History()); ok {
			seen++
			t.Logf("seed %d: two leaders %v after the split, for %v", seed, at-split, lasted)
			if at-split > suspect+2*s.Config().MaxDelay {
				t.Errorf("seed %d: two leaders %v after the split, beyond the detection bound", seed, at-split)
			}
		}
	}
	if seen == 0 && *seedFlag == 0 {
		t.Fatal("no seed showed a moment with two leaders: update the documentation (docs/peer-core.md) if this is now impossible")
	}
}

// TestSlowLinkConnects is the regression for sweep seed 38: over a link
// whose one-way delay is below suspect-after minus the heartbeat interval,
// but whose round trip is longer than suspect-after, a new connection
// came up at the dialer and was closed by the acceptor before the dialer's
// first heartbeat arrived, again and again: a false suspicion.
func TestSlowLinkConnects(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		s := formed(t, 3, seed, false)
		s.Delay(0, 1, SlowLimit())
		s.Crash(1)
		s.RunFor(hb)
		s.Start(1)
		s.RunFor(5 * time.Second)
		for _, v := range check.Peer(s.History(), simOptions(s)) {
			t.Error(v)
		}
		if st, _ := s.Status(1); !slices.Equal(st.Alive, []int{0, 1, 2}) {
			t.Fatalf("restarted peer 1 sees %v, want everyone", st.Alive)
		}
		if n := len(events(s.History(), "", "conn_down")); n > 0 {
			t.Fatalf("%d connections closed before they were up", n)
		}
	})
}

// TestSlowLinkNeedsDialTimeout shows why PeerDialTimeout is twice
// suspect-after: with suspect-after alone (the runtime's dial timeout when
// this was written), a connect over a link slower than half of it one way
// takes longer than the timeout, so a peer restarted behind such a link
// never connects to the peer on its other end, though the core would
// suspect nobody on it.
func TestSlowLinkNeedsDialTimeout(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		s, err := New(Config{N: 3, Seed: seed, DialTimeout: suspect,
			Peer: peer.Config{Heartbeat: hb, SuspectAfter: suspect}})
		if err != nil {
			t.Fatal(err)
		}
		s.StartAll()
		waitLeader(t, s, 0, 2*time.Second)
		s.Delay(0, 1, SlowLimit())
		s.Crash(1)
		s.RunFor(hb)
		s.Start(1)
		s.RunFor(5 * time.Second)
		if st, _ := s.Status(1); slices.Contains(st.Alive, 0) {
			t.Fatalf("restarted peer 1 sees %v: it connected to 0 within a dial timeout of %v", st.Alive, suspect)
		}
		timeouts := 0
		for _, e := range events(s.History(), "peer-0", "dial_failed") {
			if e.Str("error") == "timeout" {
				timeouts++
			}
		}
		if timeouts == 0 {
			t.Fatalf("peer 0 never timed out dialing 1: %v", events(s.History(), "peer-0", "dial_failed"))
		}
	})
}
