package check

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// sim are the options of a simulated run: delays known.
var sim = Options{N: 3, ConvergeWithin: time.Second, MaxDelay: 2 * time.Millisecond}

func TestGoodHistoryPassesTimedCheckers(t *testing.T) {
	if v := Peer(hist(good...), sim); len(v) != 0 {
		t.Fatalf("violations in a good history: %v", v)
	}
}

func TestLeaderRuleCanFail(t *testing.T) {
	// The wrong leader for the view.
	h := replace(index("peer-2 leader_change leader=1 prev=0 alive=[1,2]"), "peer-2 leader_change leader=2 prev=0 alive=[1,2]")
	expect(t, "wrong leader", LeaderRule(hist(h...), sim), "leader-rule", 1)
	// An alive list that does not match the peer's own events.
	h = replace(index("peer-2 leader_change leader=1 prev=0 alive=[1,2]"), "peer-2 leader_change leader=1 prev=0 alive=[0,1,2]")
	expect(t, "wrong alive", LeaderRule(hist(h...), sim), "leader-rule", 1)
	// A view change with no leader change after it.
	h = replace(index("peer-2 leader_change leader=1 prev=0 alive=[1,2]"))
	expect(t, "kept a dead leader", LeaderRule(hist(h...), sim), "leader-rule", 1)
	// A leader before elections are open.
	h = replace(index("peer-1 election_open via=-1"))
	expect(t, "leader before open", LeaderRule(hist(h...), sim), "leader-rule", 2)
	// A peer killed between its view change and its leader change is excused.
	h = replace(index("peer-2 leader_change leader=1 prev=0 alive=[1,2]"), "control proc_kill peer=2")
	expect(t, "killed in between", LeaderRule(hist(h...), sim), "", 0)
}

// quorumGood is a 3-peer quorum cluster that forms with leader 0, then
// peer 0 is isolated: it loses its majority and peers 1 and 2 elect 1,
// each within the detection bound (D = 500ms + 2*2ms).
var quorumGood = []string{
	"control proc_start peer=0", "control proc_start peer=1", "control proc_start peer=2",
	"peer-0 start id=0 n=3 quorum=true heartbeat_ms=100 suspect_after_ms=500",
	"peer-1 start id=1 n=3 quorum=true heartbeat_ms=100 suspect_after_ms=500",
	"peer-2 start id=2 n=3 quorum=true heartbeat_ms=100 suspect_after_ms=500",
	"peer-0 peer_up peer=1", "peer-0 peer_up peer=2", "peer-0 election_open via=-1", "peer-0 leader_change leader=0 prev=-1 alive=[0,1,2]",
	"peer-1 peer_up peer=0", "peer-1 peer_up peer=2", "peer-1 election_open via=-1", "peer-1 leader_change leader=0 prev=-1 alive=[0,1,2]",
	"peer-2 peer_up peer=0", "peer-2 peer_up peer=1", "peer-2 election_open via=-1", "peer-2 leader_change leader=0 prev=-1 alive=[0,1,2]",
	"control net_partition groups=[[0],[1,2]]",
	"+490ms",
	"peer-1 peer_down peer=0 cause=silence", "peer-1 leader_change leader=1 prev=0 alive=[1,2]",
	"peer-2 peer_down peer=0 cause=silence", "peer-2 leader_change leader=1 prev=0 alive=[1,2]",
	"peer-0 peer_down peer=1 cause=silence", "peer-0 peer_down peer=2 cause=silence",
	"peer-0 leader_change leader=-1 prev=0 alive=[0]",
	"+2s",
	"peer-1 paused for_ms=0", // the end of the run
}

func TestQuorumGoodHistoryPasses(t *testing.T) {
	if v := Peer(hist(quorumGood...), sim); len(v) != 0 {
		t.Fatalf("violations in a good history: %v", v)
	}
}

// upTo returns the lines of h before line, which must be in h.
func upTo(h []string, line string) []string {
	for i, l := range h {
		if l == line {
			return append([]string{}, h[:i]...)
		}
	}
	panic(line)
}

// without returns h without the given lines.
func without(h []string, lines ...string) []string {
	var out []string
	for _, l := range h {
		if !slices.Contains(lines, l) {
			out = append(out, l)
		}
	}
	return out
}

func TestQuorumIsolationCanFail(t *testing.T) {
	// Peer 0, cut off alone, notices nothing: it keeps recognising itself.
	h := without(quorumGood, "peer-0 peer_down peer=1 cause=silence", "peer-0 peer_down peer=2 cause=silence", "peer-0 leader_change leader=-1 prev=0 alive=[0]")
	expect(t, "isolated peer keeps its leader", QuorumIsolation(hist(h...), sim), "quorum-isolation", 1)
	// BeliefBound sees the two stale beliefs behind it.
	expect(t, "stale beliefs", BeliefBound(hist(h...), sim), "belief-bound", 2)
	// Late detection everywhere: four stale beliefs, and peer 0 steps down
	// too late.
	h = replace2(quorumGood, "+490ms", "+700ms")
	expect(t, "late detection", BeliefBound(hist(h...), sim), "belief-bound", 4)
	expect(t, "late step-down", QuorumIsolation(hist(h...), sim), "quorum-isolation", 1)
	// Without known delays the timed checkers do not run.
	expect(t, "unknown delays", QuorumIsolation(hist(h...), Options{N: 3}), "", 0)
}

// TestHungPeerIsJudgedInItsRunningTime: peer 0 is hung when the partition
// comes and for 700ms after; it steps down 400ms after it resumed, in time
// by its own clock.
func TestHungPeerIsJudgedInItsRunningTime(t *testing.T) {
	h := append(upTo(quorumGood, "+490ms"),
		"control proc_stop peer=0",
		"+400ms",
		"peer-1 peer_down peer=0 cause=silence", "peer-1 leader_change leader=1 prev=0 alive=[1,2]",
		"peer-2 peer_down peer=0 cause=silence", "peer-2 leader_change leader=1 prev=0 alive=[1,2]",
		"+300ms",
		"control proc_cont peer=0", "peer-0 paused for_ms=700",
		"+400ms",
		"peer-0 peer_down peer=1 cause=silence", "peer-0 peer_down peer=2 cause=silence",
		"peer-0 leader_change leader=-1 prev=0 alive=[0]")
	if v := Peer(hist(h...), sim); len(v) != 0 {
		t.Fatalf("violations: %v", v)
	}
	// 200ms later by its clock is too late.
	h = replace2(h, "+400ms", "+600ms")
	v := QuorumIsolation(hist(h...), sim)
	expect(t, "late after resuming", v, "quorum-isolation", 1)
	if v[0].Event.Node != "peer-0" {
		t.Fatalf("blamed %v, want peer 0", v[0])
	}
}

func TestStableAgreementCanFail(t *testing.T) {
	// With a settling bound of 100ms, peers 1 and 2 recognise leader 1
	// while peer 0 still recognises 0, 390ms after the partition.
	o := sim
	o.ConvergeWithin = 100 * time.Millisecond
	expect(t, "disagreement after settling", StableAgreement(hist(quorumGood...), o), "stable-agreement", 1)
	// The same on a network that is not a clean partition is not judged:
	// peer 1 can reach 0 and 2, which cannot reach each other.
	h := replace2(append([]string{}, quorumGood...), "control net_partition groups=[[0],[1,2]]", "control net_cut from=0 to=2")
	expect(t, "not a partition", StableAgreement(hist(h...), o), "", 0)
	// Without quorum, two sides of a partition may differ once settled,
	// but not two peers on one side.
	var nq []string
	for _, l := range quorumGood {
		nq = append(nq, strings.ReplaceAll(l, "quorum=true", "quorum=false"))
	}
	// Alone, peer 0 keeps itself as leader.
	nq = without(nq, "peer-0 leader_change leader=-1 prev=0 alive=[0]")
	o.ConvergeWithin = 600 * time.Millisecond
	expect(t, "two sides without quorum", StableAgreement(hist(nq...), o), "", 0)
	nq = without(nq, "peer-2 leader_change leader=1 prev=0 alive=[1,2]")
	expect(t, "one side without quorum", StableAgreement(hist(nq...), o), "stable-agreement", 1)
}

func TestNoFalseSuspicionThroughDelays(t *testing.T) {
	before := good[:index("control proc_kill peer=0")]
	down := "peer-2 peer_down peer=1 cause=silence"
	// A delay below the settings (397 + 2 < 500 - 100) excuses nothing.
	h := append(append([]string{}, before...), "control net_delay a=1 b=2 ms=397", down)
	expect(t, "small delay", NoFalseSuspicion(hist(h...), sim), "no-false-suspicion", 1)
	// A longer one does.
	h = append(append([]string{}, before...), "control net_delay a=1 b=2 ms=398", down)
	expect(t, "long delay", NoFalseSuspicion(hist(h...), sim), "", 0)
	// A crash excuses the suspicion of the crashed peer, not of others.
	h = append(append([]string{}, before...), "control net_delay a=1 b=2 ms=100", "control proc_kill peer=0",
		"peer-1 peer_down peer=0 cause=conn_closed", "peer-2 peer_down peer=0 cause=conn_closed", down)
	expect(t, "crash", NoFalseSuspicion(hist(h...), sim), "no-false-suspicion", 1)
	// A hang of the observer since it admitted the connection excuses a
	// closed connection (its peer gave up on it), not a silence: its own
	// hang must not count against the others.
	h = append(append([]string{}, before...), "control proc_stop peer=2", "control proc_cont peer=2", "peer-2 peer_down peer=1 cause=conn_closed")
	expect(t, "own hang, closed", NoFalseSuspicion(hist(h...), sim), "", 0)
	h = append(append([]string{}, before...), "control proc_stop peer=2", "control proc_cont peer=2", down)
	expect(t, "own hang, silence", NoFalseSuspicion(hist(h...), sim), "no-false-suspicion", 1)
	// A peer killed right after it admitted a connection: its admission
	// heartbeat reaches the dialer after the kill (sweep seed 5057).
	h = append(append([]string{}, before...), "control net_delay a=1 b=2 ms=100", "control proc_kill peer=2",
		"peer-1 conn_up peer=2", "peer-1 peer_up peer=2", "peer-1 peer_down peer=2 cause=conn_closed")
	expect(t, "killed during the handshake", NoFalseSuspicion(hist(h...), sim), "", 0)
	// A dialer hung between its dial and the answer finds, when it
	// resumes, a connection the acceptor gave up on (sweep seed 14363).
	h = append(append([]string{}, before...), "control net_delay a=1 b=2 ms=300", "control proc_stop peer=1", "+1s",
		"control proc_cont peer=1", "peer-1 conn_up peer=2", "peer-1 peer_up peer=2", "+300ms", "peer-1 peer_down peer=2 cause=conn_closed")
	expect(t, "hung during the handshake", NoFalseSuspicion(hist(h...), sim), "", 0)
	// But the same connection admitted well after the resume is judged.
	h = append(append([]string{}, before...), "control net_delay a=1 b=2 ms=300", "control proc_stop peer=1", "+1s",
		"control proc_cont peer=1", "+700ms", "peer-1 conn_up peer=2", "peer-1 peer_up peer=2", "+300ms", "peer-1 peer_down peer=2 cause=conn_closed")
	expect(t, "admitted after the resume", NoFalseSuspicion(hist(h...), sim), "no-false-suspicion", 1)
	// Without known delays only the stretch before the first fault counts.
	h = append(append([]string{}, before...), "control net_delay a=1 b=2 ms=100", down)
	expect(t, "unknown delays", NoFalseSuspicion(hist(h...), Options{N: 3}), "", 0)
}

// TestStableAgreementWaitsForLiftedDelays is the regression for sweep seed
// 4006: a delay lifted at a heal still slows what was sent before it, so
// the network settles a round trip of that delay later.
func TestStableAgreementWaitsForLiftedDelays(t *testing.T) {
	o := sim
	o.ConvergeWithin = 100 * time.Millisecond
	formed := upTo(quorumGood, "control net_partition groups=[[0],[1,2]]")
	blip := func(after string) []string {
		return append(append([]string{}, formed...),
			"control net_delay a=0 b=1 ms=900", "+100ms", "control net_delay a=0 b=1 ms=0", after,
			"peer-1 leader_change leader=1 prev=0 alive=[1,2]", "+200ms", "peer-1 leader_change leader=0 prev=1 alive=[0,1,2]", "+3s",
			"peer-1 paused for_ms=0")
	}
	// Within two lifted delays (1.8s) plus the bound: not judged.
	expect(t, "while the lifted delay lasts", StableAgreement(hist(blip("+1s")...), o), "", 0)
	// After: judged.
	expect(t, "after the lifted delay", StableAgreement(hist(blip("+2s")...), o), "stable-agreement", 1)
}
