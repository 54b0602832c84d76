package sim

import (
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/directory"
)

// newDir returns a started directory of n replicas and clients clients,
// with crypto/rand drawn from seed, once a leader is elected.
func newDir(t *testing.T, cfg DirConfig) *DirSim {
	t.Helper()
	cryptotest.SetGlobalRandom(t, cfg.Seed)
	s, err := NewDir(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitDirLeader runs s until a replica other than not leads, and returns
// it with the time that took.
func waitDirLeader(t *testing.T, s *DirSim, not int, limit time.Duration) (int, time.Duration) {
	t.Helper()
	start := s.Now()
	if !s.RunUntil(start+limit, func() bool { l := s.Leader(); return l >= 0 && l != not }) {
		t.Fatalf("at %v: no new leader within %v", s.Now(), limit)
	}
	return s.Leader(), s.Now() - start
}

// do runs s until call is done, and fails unless it was answered.
func do(t *testing.T, s *DirSim, call *DirCall) check.DirOp {
	t.Helper()
	s.RunUntil(s.Now()+2*s.Config().Deadline, func() bool { return call.Done })
	if !call.Done || !call.Op.Known {
		t.Fatalf("at %v: %s %s got no answer (%d tries)", s.Now(), call.Op.Kind, call.Op.Topic, call.Tries)
	}
	return call.Op
}

// TestDirLeaderCrashFailsOverFast: when the leader's process dies, the
// others see its connections close (InPeerDown) and elect a new leader
// within a few fast steps, far below an election timeout (200 to 400
// ms), and the directory answers again at once. Over 30 seeds each for 3
// and 5 replicas, every failover takes under 35 ms: the close reaches the
// followers after a one-way delay, the first in rank campaigns at once,
// and a pre-vote and a vote take a round trip each, with a disk sync at
// both ends for the vote. With a fast step shorter than a pre-vote's
// round trip (5 ms, the old default), the next in rank campaigned too and
// split the vote, and failovers took up to 54 ms.
func TestDirLeaderCrashFailsOverFast(t *testing.T) {
	seeds := []uint64{*seedFlag}
	if *seedFlag == 0 {
		seeds = nil
		for seed := uint64(1); seed <= 30; seed++ {
			seeds = append(seeds, seed)
		}
	}
	const bound = 35 * time.Millisecond
	for _, n := range []int{3, 5} {
		var worst time.Duration
		for _, seed := range seeds {
			s := newDir(t, DirConfig{Replicas: n, Clients: 1, Seed: seed})
			s.StartAll()
			old, _ := waitDirLeader(t, s, -1, 2*time.Second)
			do(t, s, s.Announce(0, "before", "total"))
			crashed := s.Now()
			s.Crash(old)
			l, took := waitDirLeader(t, s, old, 2*time.Second)
			worst = max(worst, took)
			if took > bound {
				t.Errorf("%d replicas, seed %d: replica %d leads %v after leader %d crashed; want within %v",
					n, seed, l, took, old, bound)
			}
			if op := do(t, s, s.Lookup(0, "before")); op.Code != check.DirOK {
				t.Errorf("%d replicas, seed %d: lookup after failover: %s", n, seed, op.Code)
			} else if *seedFlag != 0 {
				t.Logf("replica %d leads %v after the crash of %d; the next lookup answered %v after the crash",
					l, took, old, op.Return-crashed)
			}
		}
		t.Logf("%d replicas: a new leader at most %v after the leader's crash, over %d seeds", n, worst, len(seeds))
	}
}

// TestDirPausedLeaderReplacedAfterTimeout: a hung leader keeps its
// connections open, so nothing tells the followers; they elect another
// only once an election timeout has passed without its heartbeats.
func TestDirPausedLeaderReplacedAfterTimeout(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		s := newDir(t, DirConfig{Replicas: 3, Seed: seed})
		s.StartAll()
		old, _ := waitDirLeader(t, s, -1, 2*time.Second)
		s.RunFor(100 * time.Millisecond)
		s.Pause(old)
		l, took := waitDirLeader(t, s, old, 2*time.Second)
		timeout := directory.DefaultElectionTicks * directory.DefaultTick
		// The last heartbeat came at most a tick before the pause.
		if took < timeout-directory.DefaultTick {
			t.Errorf("replica %d leads %v after leader %d hung; want after an election timeout (%v)", l, took, old, timeout)
		}
		t.Logf("replica %d leads %v after leader %d hung", l, took, old)
	})
}

// TestDirAckBeforeSyncLosesAnnounce shows that the checkers see a replica
// that acknowledges before its writes are durable: with the test-only
// ackBeforeSync a replica carries out the effects that follow an
// OutPersist without waiting for the disk's Sync (on a slow disk, 10 to
// 20 ms a sync). An announce is acknowledged, every replica crashes at
// once, and once they are back the topic is unknown: porcupine rejects
// the history. The same run with the replicas waiting for their syncs
// keeps the announce.
func TestDirAckBeforeSyncLosesAnnounce(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		for _, broken := range []bool{false, true} {
			s := newDir(t, DirConfig{Replicas: 3, Clients: 1, Seed: seed, MinSync: 10 * time.Millisecond, MaxSync: 20 * time.Millisecond})
			s.ackBeforeSync = broken
			s.StartAll()
			waitDirLeader(t, s, -1, 2*time.Second)
			if op := do(t, s, s.Announce(0, "prices", "total")); op.Code != check.DirOK {
				t.Fatalf("announce: %s", op.Code)
			}
			s.Apply(Fault{Op: "crashall"})
			for i := range 3 {
				s.Start(i)
			}
			found := do(t, s, s.Lookup(0, "prices")).Code == check.DirOK
			err := check.Linearizable(s.CheckedOps(), time.Minute)
			switch {
			case !broken && (err != nil || !found):
				t.Errorf("replicas that wait for their syncs lost an acknowledged announce: %v", err)
			case broken && (err == nil || found):
				t.Errorf("acknowledging before the sync, the announce survived a full crash (found %v), or porcupine accepted its loss", found)
			case broken:
				if !strings.Contains(err.Error(), `topic "prices"`) {
					t.Errorf("porcupine's report does not name the topic: %v", err)
				}
				t.Logf("rejected: %v", err)
			}
		}
	})
}

// TestDirFreshSeqBreaksExactlyOnce shows that the checkers see a broken
// exactly once: with the test-only freshSeq, a client retries a command
// under a new sequence number, so a command that timed out at one replica
// but committed anyway takes effect a second time. Announces and
// subscribes are idempotent in the directory's model (the second
// announce of a topic gets the group of the first), so porcupine cannot
// see it; CheckExactlyOnce, which follows each client's commands through
// the applied log, does. The sweep's schedules of these seeds pass with
// the switch off (TestDirSweep).
func TestDirFreshSeqBreaksExactlyOnce(t *testing.T) {
	var caught []uint64
	for seed := uint64(1); seed <= 20; seed++ {
		run := runDirSeeded(t, RandomDirSchedule(seed), func(s *DirSim) { s.freshSeq = true })
		eo := run.Sim.CheckExactlyOnce()
		for _, v := range eo {
			if !strings.Contains(v, "took effect 2 times") && !strings.Contains(v, "took effect 3 times") {
				t.Errorf("seed %d: %s", seed, v)
			}
		}
		if err := check.Linearizable(run.Sim.CheckedOps(), time.Minute); err != nil {
			t.Errorf("seed %d: porcupine rejects the history: %v", seed, err)
		}
		if len(eo) > 0 {
			caught = append(caught, seed)
			t.Logf("seed %d: %s", seed, strings.Join(eo, "; "))
		}
	}
	if len(caught) < 3 {
		t.Errorf("a double effect seen in the schedules of seeds %v of 1 to 20; want at least 3", caught)
	}
}

// TestDirLocalReadsAreCaught shows that porcupine sees stale reads: with
// the test-only localReads a replica answers a lookup from its own state
// at once, without Raft's ReadIndex. A follower behind its leader, or a
// leader deposed on the other side of a partition, then answers that a
// topic announced before the lookup began is unknown. The sweep's
// schedules catch it within their first hundred seeds.
func TestDirLocalReadsAreCaught(t *testing.T) {
	var caught []uint64
	for seed := uint64(1); seed <= 100 && len(caught) < 2; seed++ {
		run := runDirSeeded(t, RandomDirSchedule(seed), func(s *DirSim) { s.localReads = true })
		if err := check.Linearizable(run.Sim.CheckedOps(), time.Minute); err != nil {
			caught = append(caught, seed)
			t.Logf("seed %d: %v", seed, err)
		}
	}
	if len(caught) < 2 {
		t.Errorf("stale reads seen in the schedules of seeds %v of 1 to 100; want at least 2", caught)
	}
}
