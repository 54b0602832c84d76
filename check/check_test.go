package check

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// hist builds a history from compact lines: "node ev key=value ...", one
// millisecond apart; a line "+d" (a duration) adds d before the next
// event. Values are ints when they parse as ints, bools for true and false,
// id lists for [0,1] and lists of them for [[0],[1,2]].
func hist(lines ...string) []eventlog.Event {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []eventlog.Event
	for _, l := range lines {
		if d, ok := strings.CutPrefix(l, "+"); ok {
			dur, err := time.ParseDuration(d)
			if err != nil {
				panic(err)
			}
			t = t.Add(dur)
			continue
		}
		f := strings.Fields(l)
		e := eventlog.Event{TS: t, Node: f[0], Inc: 1, LC: uint64(len(out) + 1), Ev: f[1], Fields: map[string]any{}}
		t = t.Add(time.Millisecond)
		for _, kv := range f[2:] {
			k, v, _ := strings.Cut(kv, "=")
			if k == "inc" {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					panic(err)
				}
				e.Inc = n
				continue
			}
			e.Fields[k] = value(v)
		}
		out = append(out, e)
	}
	return out
}

func value(v string) any {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n
	}
	switch {
	case v == "true" || v == "false":
		return v == "true"
	case strings.HasPrefix(v, "[["):
		var g [][]int
		for _, part := range strings.Split(strings.Trim(v, "[]"), "],[") {
			g = append(g, value("["+part+"]").([]int))
		}
		return g
	case strings.HasPrefix(v, "["):
		ids := []int{}
		for _, x := range strings.Split(strings.Trim(v, "[]"), ",") {
			if x != "" {
				n, err := strconv.Atoi(x)
				if err != nil {
					panic(err)
				}
				ids = append(ids, n)
			}
		}
		return ids
	}
	return v
}

func expect(t *testing.T, name string, v []Violation, rule string, n int) {
	t.Helper()
	if len(v) != n {
		t.Fatalf("%s: %d violations, want %d: %v", name, len(v), n, v)
	}
	for _, x := range v {
		if x.Rule != rule {
			t.Fatalf("%s: rule %s, want %s", name, x.Rule, rule)
		}
	}
}

var good = []string{
	"control proc_start peer=0",
	"control proc_start peer=1",
	"control proc_start peer=2",
	"peer-0 start id=0 n=3 quorum=false heartbeat_ms=100 suspect_after_ms=500",
	"peer-1 start id=1 n=3 quorum=false heartbeat_ms=100 suspect_after_ms=500",
	"peer-2 start id=2 n=3 quorum=false heartbeat_ms=100 suspect_after_ms=500",
	"peer-0 conn_up peer=1", "peer-0 conn_up peer=2",
	"peer-1 conn_up peer=0", "peer-1 conn_up peer=2",
	"peer-2 conn_up peer=0", "peer-2 conn_up peer=1",
	"peer-0 peer_up peer=1", "peer-0 peer_up peer=2", "peer-0 election_open via=-1",
	"peer-0 leader_change leader=0 prev=-1 alive=[0,1,2]", "peer-0 urgent_sent to=1 leader=0", "peer-0 urgent_sent to=2 leader=0",
	"peer-1 peer_up peer=0", "peer-1 peer_up peer=2", "peer-1 election_open via=-1",
	"peer-1 leader_change leader=0 prev=-1 alive=[0,1,2]", "peer-1 urgent_sent to=0 leader=0", "peer-1 urgent_sent to=2 leader=0",
	"peer-2 peer_up peer=0", "peer-2 peer_up peer=1", "peer-2 election_open via=-1",
	"peer-2 leader_change leader=0 prev=-1 alive=[0,1,2]", "peer-2 urgent_sent to=0 leader=0", "peer-2 urgent_sent to=1 leader=0",
	"control proc_kill peer=0",
	"peer-1 peer_down peer=0 cause=conn_closed",
	"peer-1 leader_change leader=1 prev=0 alive=[1,2]", "peer-1 urgent_sent to=2 leader=1",
	"peer-2 peer_down peer=0 cause=conn_closed",
	"peer-2 leader_change leader=1 prev=0 alive=[1,2]", "peer-2 urgent_sent to=1 leader=1",
}

func TestGoodHistoryPasses(t *testing.T) {
	if v := Peer(hist(good...), Options{N: 3, ConvergeWithin: time.Second}); len(v) != 0 {
		t.Fatalf("violations in a good history: %v", v)
	}
}

// replace returns good with line i replaced by repl (none: removed).
func replace(i int, repl ...string) []string {
	out := append([]string{}, good[:i]...)
	out = append(out, repl...)
	return append(out, good[i+1:]...)
}

func index(line string) int {
	for i, l := range good {
		if l == line {
			return i
		}
	}
	panic(line)
}

func TestEachCheckerCanFail(t *testing.T) {
	o := Options{N: 3}
	// A leader before election_open.
	h := replace(index("peer-2 election_open via=-1"))
	expect(t, "leader before open", ElectionGate(hist(h...), o), "election-gate", 2)
	// Opening without having seen everyone.
	h = replace(index("peer-2 peer_up peer=1"))
	expect(t, "open too early", ElectionGate(hist(h...), o), "election-gate", 1)
	// A first leader other than 0.
	h = replace(index("peer-0 leader_change leader=0 prev=-1 alive=[0,1,2]"), "peer-0 leader_change leader=2 prev=-1 alive=[0,1,2]")
	expect(t, "first leader not 0", ElectionGate(hist(h[:index("peer-0 urgent_sent to=1 leader=0")+1]...), o), "election-gate", 1)
	// A survivor that ends on the wrong leader.
	h = replace(index("peer-2 leader_change leader=1 prev=0 alive=[1,2]"), "peer-2 leader_change leader=2 prev=0 alive=[1,2]")
	expect(t, "wrong final leader", Convergence(hist(h...), o), "convergence", 1)
	// Settling too late.
	expect(t, "too slow", Convergence(hist(good...), Options{N: 3, ConvergeWithin: time.Millisecond}), "convergence", 2)
	// A crash detected by silence.
	h = replace(index("peer-2 peer_down peer=0 cause=conn_closed"), "peer-2 peer_down peer=0 cause=silence")
	expect(t, "crash by silence", DetectionCause(hist(h...)), "detection-cause", 1)
	// A hang detected by a closed connection.
	h = replace(index("control proc_kill peer=0"), "control proc_stop peer=0")
	expect(t, "hang by close", DetectionCause(hist(h...)), "detection-cause", 2)
	// A missing urgent notice.
	h = replace(index("peer-1 urgent_sent to=2 leader=1"))
	expect(t, "missing notice", UrgentNotices(hist(h...)), "urgent-notices", 1)
	// The notices of a peer that is not killed right after are still due.
	h = replace(index("peer-1 urgent_sent to=2 leader=0"))
	expect(t, "missing notice before a kill", UrgentNotices(hist(h...)), "urgent-notices", 1)
	// A heartbeat on a closed connection.
	h = append(append([]string{}, good...), "peer-1 hb_sent to=0 seq=9")
	expect(t, "heartbeat after close", NoHeartbeatAfterClose(hist(h...)), "no-heartbeat-after-close", 1)
	// A suspicion with no fault.
	h = append(append([]string{}, good[:index("control proc_kill peer=0")]...), "peer-2 peer_down peer=1 cause=silence")
	expect(t, "false suspicion", NoFalseSuspicion(hist(h...), o), "no-false-suspicion", 1)
}

func TestPausedObserverIsNotJudged(t *testing.T) {
	h := append(append([]string{}, good[:index("control proc_kill peer=0")]...),
		"control proc_stop peer=1",
		"peer-0 peer_down peer=1 cause=silence",
		"control proc_cont peer=1",
		"peer-1 paused for_ms=900",
		"peer-1 peer_down peer=2 cause=conn_closed", // 2 closed on it: not a crash
		"peer-1 peer_down peer=0 cause=silence")
	if v := DetectionCause(hist(h...)); len(v) != 0 {
		t.Fatal(v)
	}
}

// TestKilledBeforeNotices is the regression for a CI failure: SIGKILL landed
// between peer 0's leader_change line and its urgent_sent lines.
func TestKilledBeforeNotices(t *testing.T) {
	i := index("peer-0 urgent_sent to=1 leader=0")
	h := append(append([]string{}, good[:i]...), "control proc_kill peer=0")
	if v := UrgentNotices(hist(h...)); len(v) != 0 {
		t.Fatal(v)
	}
}

// TestHungThenKilled is the regression for sweep seed 15072: a peer killed
// while hung may be detected by the silence that began before the kill.
func TestHungThenKilled(t *testing.T) {
	h := replace(index("control proc_kill peer=0"), "control proc_stop peer=0", "control proc_kill peer=0")
	h = replace2(h, "peer-2 peer_down peer=0 cause=conn_closed", "peer-2 peer_down peer=0 cause=silence")
	if v := DetectionCause(hist(h...)); len(v) != 0 {
		t.Fatal(v)
	}
}

func replace2(h []string, old, repl string) []string {
	out := append([]string{}, h...)
	for i, l := range out {
		if l == old {
			out[i] = repl
		}
	}
	return out
}

// TestElectionGateHeardOnce: a peer that heard every peer, though never
// all up at once, opens its elections by itself (the assignment's rule),
// and its first leader may then be other than 0 if it saw 0 go down.
func TestElectionGateHeardOnce(t *testing.T) {
	h := []string{
		"control proc_start peer=0", "control proc_start peer=1",
		"peer-0 start id=0 n=3 quorum=false heartbeat_ms=100 suspect_after_ms=500",
		"peer-1 start id=1 n=3 quorum=false heartbeat_ms=100 suspect_after_ms=500",
		"peer-0 conn_up peer=1", "peer-1 conn_up peer=0",
		"peer-0 peer_up peer=1", "peer-1 peer_up peer=0",
		"control proc_kill peer=0",
		"peer-1 peer_down peer=0 cause=conn_closed",
		"control proc_start peer=2",
		"peer-2 start id=2 n=3 quorum=false heartbeat_ms=100 suspect_after_ms=500",
		"peer-1 conn_up peer=2", "peer-2 conn_up peer=1",
		"peer-1 peer_up peer=2", "peer-1 election_open via=-1",
		"peer-1 leader_change leader=1 prev=-1 alive=[1,2]", "peer-1 urgent_sent to=2 leader=1",
		"peer-2 peer_up peer=1", "peer-2 election_open via=1",
		"peer-2 leader_change leader=1 prev=-1 alive=[1,2]", "peer-2 urgent_sent to=1 leader=1",
	}
	o := Options{N: 3, ConvergeWithin: time.Second}
	if v := Peer(hist(h...), o); len(v) != 0 {
		t.Fatalf("violations: %v", v)
	}
	// Without 0 going down first, a first leader 1 breaks the gate.
	var up []string
	for _, l := range h {
		if l != "control proc_kill peer=0" && l != "peer-1 peer_down peer=0 cause=conn_closed" {
			up = append(up, l)
		}
	}
	expect(t, "first leader 1 while 0 is up", ElectionGate(hist(up...), o), "election-gate", 1)
}

// TestDelayedNotices: with a notice delay, the notices come later, name
// the leader of their moment, and a change is announced unless undone.
func TestDelayedNotices(t *testing.T) {
	base := []string{
		"peer-1 start id=1 n=3 notice_delay_ms=5",
		"peer-1 conn_up peer=0", "peer-1 conn_up peer=2",
		"peer-1 leader_change leader=0 prev=-1",
		"peer-1 hb_sent to=0 seq=1",
		"peer-1 urgent_sent to=0 leader=0", "peer-1 urgent_sent to=2 leader=0",
		"peer-1 peer_down peer=0 cause=conn_closed",
		"peer-1 leader_change leader=1 prev=0",
		"peer-1 hb_sent to=2 seq=2",
	}
	ok := append(append([]string{}, base...), "peer-1 urgent_sent to=2 leader=1", "peer-1 hb_sent to=2 seq=3")
	if v := UrgentNotices(hist(ok...)); len(v) != 0 {
		t.Fatalf("good history: %v", v)
	}
	// Not announced, and the history goes on long after.
	never := append(append([]string{}, base...), "+10s", "peer-1 hb_sent to=2 seq=100")
	expect(t, "never announced", UrgentNotices(hist(never...)), "urgent-notices", 1)
	// The history ends within the delay and its slack: not yet due.
	if v := UrgentNotices(hist(base...)); len(v) != 0 {
		t.Fatalf("history ending right after the change: %v", v)
	}
	// Undone: 0 is back before the notices were due.
	undone := append(append([]string{}, base...), "peer-1 conn_up peer=0", "peer-1 leader_change leader=0 prev=1", "+10s", "peer-1 hb_sent to=2 seq=100")
	if v := UrgentNotices(hist(undone...)); len(v) != 0 {
		t.Fatalf("undone change: %v", v)
	}
	// A notice naming a leader that is not this peer's, and one that
	// repeats the leader announced before.
	stale := append(append([]string{}, base...), "peer-1 urgent_sent to=2 leader=0")
	expect(t, "stale notice", UrgentNotices(hist(stale...)), "urgent-notices", 1)
	again := append(append([]string{}, ok...), "peer-1 urgent_sent to=2 leader=1")
	expect(t, "repeated notice", UrgentNotices(hist(again...)), "urgent-notices", 1)
	// Hung when the history ends: excused; continued: due again.
	hung := append(append([]string{}, base...), "control proc_stop peer=1", "+10s", "peer-2 hb_sent to=0 seq=1")
	if v := UrgentNotices(hist(hung...)); len(v) != 0 {
		t.Fatalf("a change of a process hung at the end: %v", v)
	}
	resumed := append(append([]string{}, hung...), "control proc_cont peer=1", "peer-1 paused for_ms=10000", "+10s", "peer-1 hb_sent to=2 seq=3")
	expect(t, "resumed and never announced", UrgentNotices(hist(resumed...)), "urgent-notices", 1)
	// Alone, nobody to tell: the change waits for a connection.
	alone := append(append([]string{}, base[:len(base)-1]...), "peer-1 peer_down peer=2 cause=conn_closed",
		"+10s", "peer-1 conn_up peer=2", "peer-1 hb_sent to=2 seq=1", "+4ms", "peer-1 urgent_sent to=2 leader=1", "+10s", "peer-1 hb_sent to=2 seq=100")
	if v := UrgentNotices(hist(alone...)); len(v) != 0 {
		t.Fatalf("a change announced once a connection came: %v", v)
	}
	// A notice group that misses a connected peer.
	short := append(append([]string{}, base...), "peer-1 conn_up peer=0", "peer-1 urgent_sent to=2 leader=1")
	expect(t, "missing peer", UrgentNotices(hist(short...)), "urgent-notices", 1)
}
