package launch

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch/launchtest"
)

// binary is the conclave executable built for these tests.
var binary string

func TestMain(m *testing.M) { os.Exit(launchtest.RunTests(m, &binary)) }

const (
	hb      = 50 * time.Millisecond
	suspect = 400 * time.Millisecond
)

func start(t *testing.T, n int, quorum bool) *Cluster {
	t.Helper()
	c, err := Start(Config{Binary: binary, N: n, Dir: t.TempDir(), Heartbeat: hb, SuspectAfter: suspect, Quorum: quorum, LogHeartbeats: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			launchtest.Keep(t, c.Dir())
		}
	})
	return c
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wait(t *testing.T, c *Cluster, leader int, ids ...int) {
	t.Helper()
	if _, err := c.WaitLeader(ctx(t), leader, ids...); err != nil {
		t.Fatal(err)
	}
}

// history closes the cluster and returns its merged log.
func history(t *testing.T, c *Cluster) []eventlog.Event {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ev, err := eventlog.MergeDir(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestRealFirstElectionWaitsForEveryPeer(t *testing.T) {
	c := start(t, 4, false)
	for i := 1; i < 4; i++ {
		if err := c.StartPeer(i); err != nil {
			t.Fatal(err)
		}
	}
	// Peers 1..3 see each other up, and still elect nobody.
	for i := 1; i < 4; i++ {
		for j := 1; j < 4; j++ {
			if j == i {
				continue
			}
			if _, err := c.WaitEvent(ctx(t), i, func(e eventlog.Event) bool {
				p, _ := e.Int(eventlog.FieldPeer)
				return e.Ev == eventlog.PeerUp && p == j
			}); err != nil {
				t.Fatalf("peer %d never saw peer %d up: %v", i, j, err)
			}
		}
		if err := c.WaitOutput(ctx(t), i, fmt.Sprintf("peer %d is up", i%3+1)); err != nil {
			t.Fatal(err) // the human lines are still printed
		}
	}
	for i := 1; i < 4; i++ {
		if l, _ := c.Leader(i); l != -1 {
			t.Fatalf("peer %d reports leader %d before peer 0 exists", i, l)
		}
	}
	if err := c.StartPeer(0); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 0, 0, 1, 2, 3)
	for _, v := range check.ElectionGate(history(t, c), check.Options{N: 4}) {
		t.Error(v)
	}
}

// TestRealNobodyStrandedWhenPeerZeroDiesEarly is the README's cluster
// pasted at once, then kill -9 of peer 0, before peer 3 is up: no peer ever
// sees all four up at once. Peers 1 and 2 heard 0 before it died, so they
// elect once they hear 3, and 3 learns from them that 0 is down. Before,
// all three stayed at leader -1 for ever.
func TestRealNobodyStrandedWhenPeerZeroDiesEarly(t *testing.T) {
	c := start(t, 4, false)
	for i := range 3 {
		if err := c.StartPeer(i); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < 3; i++ {
		if _, err := c.WaitEvent(ctx(t), i, func(e eventlog.Event) bool {
			p, _ := e.Int(eventlog.FieldPeer)
			return e.Ev == eventlog.PeerUp && p == 0
		}); err != nil {
			t.Fatalf("peer %d never saw peer 0 up: %v", i, err)
		}
	}
	if _, err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	if err := c.StartPeer(3); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 1, 1, 2, 3)
	for _, v := range check.Peer(history(t, c), check.Options{N: 4, AllHeartbeats: true}) {
		t.Error(v)
	}
}

func TestRealCrashHangResumeRestart(t *testing.T) {
	c := start(t, 4, false)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 0, 0, 1, 2, 3)
	if _, err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 1, 1, 2, 3)
	if _, err := c.Pause(1); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 2, 2, 3)
	if _, err := c.Resume(1); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 1, 1, 2, 3)
	if err := c.StartPeer(0); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 0, 0, 1, 2, 3)
	h := history(t, c)
	for _, v := range check.Peer(h, check.Options{N: 4, AllHeartbeats: true}) {
		t.Error(v)
	}
	// Both detectors were exercised.
	got := map[string]int{}
	for _, e := range h {
		if e.Ev == "peer_down" {
			got[e.Str("cause")]++
		}
	}
	if got["conn_closed"] == 0 || got["silence"] == 0 {
		t.Errorf("peer_down causes %v: want both conn_closed and silence", got)
	}
	// Peer 0 came back as a new incarnation.
	incs := map[uint64]bool{}
	for _, e := range h {
		if e.Node == "peer-0" && e.Ev == "start" {
			incs[e.Inc] = true
		}
	}
	if len(incs) != 2 {
		t.Errorf("peer 0 ran as %d incarnations, want 2", len(incs))
	}
	// Every control event names its process as the process's own log does.
	procs := 0
	for _, e := range h {
		if e.Node == eventlog.Control && len(e.Ev) > 5 && e.Ev[:5] == "proc_" {
			procs++
			p, _ := e.Int(eventlog.FieldPeer)
			if got := e.Str(eventlog.FieldProc); got != eventlog.PeerName(p) {
				t.Errorf("%s of peer %d names %q", e.Ev, p, got)
			}
		}
	}
	if procs < 11 { // 4 starts, a kill, a stop, a cont, a restart, the terms of Close
		t.Errorf("%d control events about processes", procs)
	}
}

func TestRealQuorum(t *testing.T) {
	c := start(t, 3, true)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 0, 0, 1, 2)
	c.Kill(0)
	wait(t, c, 1, 1, 2) // 2 of 3: still a majority
	c.Kill(1)
	wait(t, c, -1, 2) // alone: no leader
	c.StartPeer(1)
	wait(t, c, 1, 1, 2)
}

func TestRealCleanStop(t *testing.T) {
	c := start(t, 3, false)
	c.StartAll()
	wait(t, c, 0, 0, 1, 2)
	if err := c.Term(0); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 1, 1, 2)
	h := history(t, c)
	var reasons []string
	for _, e := range h {
		if p, _ := e.Int("peer"); e.Ev == "peer_down" && p == 0 {
			reasons = append(reasons, e.Str("reason"))
		}
	}
	if len(reasons) != 2 || reasons[0] != "bye: shutdown" || reasons[1] != "bye: shutdown" {
		t.Fatalf("peers saw peer 0 leave with %q, want its goodbye twice", reasons)
	}
}

// TestRealEventStream checks that launch receives every line of each
// peer's event log, in order, and nothing else.
func TestRealEventStream(t *testing.T) {
	c := start(t, 3, false)
	c.StartAll()
	wait(t, c, 0, 0, 1, 2)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		logged, bad, err := eventlog.ReadFile(c.LogPath(i))
		if err != nil || bad > 0 {
			t.Fatalf("peer %d: %d bad lines, %v", i, bad, err)
		}
		got := c.Events(i)
		if len(got) != len(logged) {
			t.Errorf("peer %d: received %d events, its log has %d", i, len(got), len(logged))
			continue
		}
		for k := range got {
			a, _ := json.Marshal(got[k])
			b, _ := json.Marshal(logged[k])
			if string(a) != string(b) {
				t.Errorf("peer %d, event %d: received %s, logged %s", i, k, a, b)
				break
			}
		}
		if got[len(got)-1].Ev != eventlog.Stop {
			t.Errorf("peer %d: last event %s, want stop", i, got[len(got)-1].Ev)
		}
	}
}
