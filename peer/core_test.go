package peer

import (
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/wire"
)

func started(t *testing.T, id, n int) *Core {
	t.Helper()
	c, err := New(Config{ID: id, N: n})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Step(0, Start{}); err != nil {
		t.Fatal(err)
	}
	c.Ready()
	return c
}

func logs(effects []Effect, ev string) []Log {
	var out []Log
	for _, e := range effects {
		if l, ok := e.(Log); ok && l.Ev == ev {
			out = append(out, l)
		}
	}
	return out
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{ID: 0, N: 1}, "at least 2 peers"},
		{Config{ID: 4, N: 4}, "out of range"},
		{Config{ID: -1, N: 4}, "out of range"},
		{Config{ID: 0, N: 4, Heartbeat: time.Second, SuspectAfter: time.Second}, "must be longer"},
		{Config{ID: 0, N: 4, Heartbeat: -time.Second}, "positive"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.cfg, err, c.want)
		}
	}
	ok := Config{ID: 1, N: 3}
	if err := ok.Validate(); err != nil || ok.Heartbeat != DefaultHeartbeat || ok.SuspectAfter != DefaultSuspectAfter {
		t.Errorf("defaults: %v %+v", err, ok)
	}
}

func TestDialsOnlyHigherIDs(t *testing.T) {
	c, _ := New(Config{ID: 1, N: 4})
	c.Step(0, Start{})
	var dials []int
	for _, e := range c.Ready() {
		if d, ok := e.(Dial); ok {
			dials = append(dials, d.Peer)
		}
	}
	if len(dials) != 2 || dials[0] != 2 || dials[1] != 3 {
		t.Fatalf("peer 1 dialed %v, want [2 3]", dials)
	}
}

func TestHandshakeAdmission(t *testing.T) {
	c := started(t, 2, 4)
	// Peer 0 connects (it dials us: lower dials higher).
	if err := c.Step(1, Handshake{Peer: 0, Conn: 1, Incarnation: 10}); err != nil {
		t.Fatalf("first connection refused: %v", err)
	}
	refused := []struct {
		name string
		h    Handshake
		want string
	}{
		{"same incarnation again", Handshake{Peer: 0, Conn: 2, Incarnation: 10}, "already connected"},
		{"older incarnation", Handshake{Peer: 0, Conn: 3, Incarnation: 9}, "stale incarnation"},
		{"higher id dialing us", Handshake{Peer: 3, Conn: 4, Incarnation: 1}, "lower ids dial higher"},
		{"out of range", Handshake{Peer: 7, Conn: 5, Incarnation: 1}, "out of range"},
		{"our own id", Handshake{Peer: 2, Conn: 6, Incarnation: 1}, "out of range or our own"},
		{"not dialed", Handshake{Peer: 1, Conn: 7, Incarnation: 1, Dialed: true}, "did not dial"},
	}
	for _, r := range refused {
		c.Ready()
		err := c.Step(2, r.h)
		if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s: %v, want refusal with %q", r.name, err, r.want)
		}
		if len(logs(c.Ready(), "conn_rejected")) != 1 {
			t.Errorf("%s: refusal not logged", r.name)
		}
	}
	// A newer incarnation replaces the old connection.
	c.Step(3, Recv{Peer: 0, Conn: 1, Frame: wire.Heartbeat{Seq: 1}})
	c.Ready()
	if err := c.Step(4, Handshake{Peer: 0, Conn: 8, Incarnation: 11}); err != nil {
		t.Fatalf("new incarnation refused: %v", err)
	}
	out := c.Ready()
	var closed bool
	for _, e := range out {
		if cl, ok := e.(Close); ok && cl.Conn == 1 {
			closed = true
		}
	}
	if !closed || len(logs(out, "peer_down")) != 1 {
		t.Fatalf("old incarnation's connection not closed and reported down: %v", out)
	}
	// Frames on the replaced connection are ignored.
	c.Step(5, Recv{Peer: 0, Conn: 1, Frame: wire.Heartbeat{Seq: 2}})
	if len(logs(c.Ready(), "peer_up")) != 0 {
		t.Fatal("a heartbeat on a replaced connection brought the peer up")
	}
}

func TestHeartbeatOnAdmissionAndInterval(t *testing.T) {
	c := started(t, 0, 2)
	c.Step(0, Handshake{Peer: 1, Conn: 1, Incarnation: 1, Dialed: true})
	count := func() int {
		n := 0
		for _, e := range c.Ready() {
			if s, ok := e.(Send); ok {
				if _, ok := s.Frame.(wire.Heartbeat); ok {
					n++
				}
			}
		}
		return n
	}
	if n := count(); n != 1 {
		t.Fatalf("%d heartbeats on admission, want 1", n)
	}
	if d := c.Deadline(); d != DefaultHeartbeat {
		t.Fatalf("deadline %v, want the next heartbeat at %v", d, DefaultHeartbeat)
	}
	c.Step(DefaultHeartbeat, Recv{Peer: 1, Conn: 1, Frame: wire.Heartbeat{Seq: 1}})
	if n := count(); n != 1 {
		t.Fatalf("%d heartbeats at the interval, want 1", n)
	}
	c.Step(DefaultHeartbeat+1, Closed{Peer: 1, Conn: 1, Reason: "eof"})
	c.Ready()
	c.Step(3*DefaultHeartbeat, Tick{})
	if n := count(); n != 0 {
		t.Fatalf("%d heartbeats after the connection closed", n)
	}
}

func TestSilenceClosesAndNamesCause(t *testing.T) {
	c := started(t, 0, 2)
	c.Step(0, Handshake{Peer: 1, Conn: 1, Incarnation: 1, Dialed: true})
	c.Step(time.Millisecond, Recv{Peer: 1, Conn: 1, Frame: wire.Heartbeat{Seq: 1}})
	c.Ready()
	// Keep stepping at the heartbeat interval, hearing nothing.
	var downs []Log
	for now := DefaultHeartbeat; now <= time.Second && len(downs) == 0; now += DefaultHeartbeat / 2 {
		c.Step(now, Tick{})
		downs = logs(c.Ready(), "peer_down")
	}
	if len(downs) != 1 || downs[0].Fields["cause"] != "silence" {
		t.Fatalf("peer_down: %v, want one with cause silence", downs)
	}
}

func TestOwnPauseIsNotPeersSilence(t *testing.T) {
	c := started(t, 0, 2)
	c.Step(0, Handshake{Peer: 1, Conn: 1, Incarnation: 1, Dialed: true})
	c.Step(time.Millisecond, Recv{Peer: 1, Conn: 1, Frame: wire.Heartbeat{Seq: 1}})
	c.Ready()
	// The next step comes 3 s later: this process was stopped.
	c.Step(3*time.Second, Tick{})
	out := c.Ready()
	if len(logs(out, "paused")) != 1 || len(logs(out, "peer_down")) != 0 {
		t.Fatalf("after a pause of our own: %v", out)
	}
}

func TestUrgentNoticeForUnseenLeaderRedials(t *testing.T) {
	c := started(t, 0, 3)
	c.Step(0, Handshake{Peer: 1, Conn: 1, Incarnation: 1, Dialed: true})
	c.Step(0, DialFailed{Peer: 2, Err: "refused"})
	c.Ready()
	if c.Deadline() <= 0 {
		t.Fatal("no redial planned")
	}
	c.Step(time.Microsecond, Recv{Peer: 1, Conn: 1, Frame: wire.LeaderChange{Leader: 2, Prev: -1}})
	var dialed bool
	for _, e := range c.Ready() {
		if d, ok := e.(Dial); ok && d.Peer == 2 {
			dialed = true
		}
	}
	if !dialed {
		t.Fatal("a notice naming a peer we cannot see did not make us dial it at once")
	}
}

func TestStepBeforeStart(t *testing.T) {
	c, _ := New(Config{ID: 0, N: 2})
	if err := c.Step(0, Tick{}); err == nil {
		t.Fatal("Tick before Start accepted")
	}
}

// TestFirstHeartbeatMayTakeARoundTrip is the regression for sweep seed 38:
// over a link with a one-way delay of 331 ms (below suspect-after minus the
// heartbeat interval) the dialer's first heartbeat reaches the acceptor
// 662 ms after the acceptor admitted the connection. The acceptor must not
// close it as silent; once a heartbeat has come, suspect-after applies.
func TestFirstHeartbeatMayTakeARoundTrip(t *testing.T) {
	c := started(t, 1, 2)
	c.Step(0, Handshake{Peer: 0, Conn: 1, Incarnation: 1})
	c.Ready()
	rtt := 2 * (DefaultSuspectAfter - DefaultHeartbeat)
	for now := DefaultHeartbeat; now < rtt; now += DefaultHeartbeat {
		c.Step(now, Tick{})
		if out := c.Ready(); len(logs(out, "conn_down")) > 0 {
			t.Fatalf("connection closed %v after admission, before a round trip of %v", now, rtt)
		}
	}
	c.Step(rtt, Recv{Peer: 0, Conn: 1, Frame: wire.Heartbeat{Seq: 1}})
	if ups := logs(c.Ready(), "peer_up"); len(ups) != 1 {
		t.Fatalf("peer_up: %v, want one on the first heartbeat", ups)
	}
	if d := c.Deadline(); d > rtt+DefaultSuspectAfter+1 {
		t.Fatalf("deadline %v after the first heartbeat at %v: silence must again be judged after suspect-after", d, rtt)
	}
	// A connection on which no heartbeat ever comes is still closed.
	c2 := started(t, 1, 2)
	c2.Step(0, Handshake{Peer: 0, Conn: 1, Incarnation: 1})
	c2.Ready()
	var downs []Log
	for now := c2.Deadline(); now <= 2*DefaultSuspectAfter+1 && len(downs) == 0; now = c2.Deadline() {
		c2.Step(now, Tick{})
		downs = logs(c2.Ready(), "conn_down")
	}
	if len(downs) != 1 {
		t.Fatalf("conn_down: %v, want the silent connection closed after twice suspect-after", downs)
	}
}

// hear admits a connection from peer j and delivers its first heartbeat.
func hear(t *testing.T, c *Core, now time.Duration, j int, conn ConnID) {
	t.Helper()
	if err := c.Step(now, Handshake{Peer: j, Conn: conn, Incarnation: 1, Dialed: j > c.cfg.ID}); err != nil {
		t.Fatal(err)
	}
	if err := c.Step(now, Recv{Peer: j, Conn: conn, Frame: wire.Heartbeat{Seq: 1}}); err != nil {
		t.Fatal(err)
	}
}

// TestElectionsOpenOnPeersHeardOnce is the regression for the README's
// cluster pasted at once and peer 0 killed at once: a peer that heard every
// peer, though never all up at once, must elect, not stay at none forever.
func TestElectionsOpenOnPeersHeardOnce(t *testing.T) {
	c := started(t, 1, 4)
	hear(t, c, 1, 0, 1)
	c.Step(2, Closed{Peer: 0, Conn: 1, Reason: "eof"})
	hear(t, c, 3, 2, 2)
	if c.Leader() != None {
		t.Fatalf("leader %d before peer 3 was heard", c.Leader())
	}
	c.Ready()
	hear(t, c, 4, 3, 3)
	out := c.Ready()
	if opens := logs(out, "election_open"); len(opens) != 1 || opens[0].Fields["via"] != None {
		t.Fatalf("election_open: %v, want one with via -1", opens)
	}
	if c.Leader() != 1 {
		t.Fatalf("leader %d, want 1: peer 0 was heard, then went down", c.Leader())
	}

	// While 0 is still up when elections open, the first leader is 0.
	c = started(t, 1, 4)
	hear(t, c, 1, 0, 1)
	hear(t, c, 2, 2, 2)
	c.Step(3, Closed{Peer: 2, Conn: 2, Reason: "eof"})
	hear(t, c, 4, 3, 3)
	if c.Leader() != 0 {
		t.Fatalf("leader %d, want 0: it is up when elections open", c.Leader())
	}
}

// notices returns the urgent LeaderChange frames among effects, by peer.
func notices(effects []Effect) map[int]wire.LeaderChange {
	out := map[int]wire.LeaderChange{}
	for _, e := range effects {
		if s, ok := e.(Send); ok && s.Urgent {
			out[s.Peer] = s.Frame.(wire.LeaderChange)
		}
	}
	return out
}

// electing returns peer 3 of 5 with every other peer connected and up, and
// peer 0 elected and announced.
func electing(t *testing.T, delay time.Duration) *Core {
	t.Helper()
	c, err := New(Config{ID: 3, N: 5, NoticeDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	c.Step(0, Start{})
	for j := 0; j < 5; j++ {
		if j != 3 {
			c.Step(0, Handshake{Peer: j, Conn: ConnID(j + 1), Incarnation: 1, Dialed: j > 3})
			c.Step(0, Recv{Peer: j, Conn: ConnID(j + 1), Frame: wire.Heartbeat{Seq: 1}})
		}
	}
	c.Step(time.Second, Tick{})
	c.Ready()
	if c.Leader() != 0 {
		t.Fatalf("leader %d, want 0", c.Leader())
	}
	return c
}

func TestNoticesWaitAndNameTheLeaderOfTheirMoment(t *testing.T) {
	const d = 5 * time.Millisecond
	c := electing(t, d)
	t0 := time.Second
	// 0 and then 1 crash: two changes, 0 -> 1 -> 2, in the notice delay.
	c.Step(t0, Closed{Peer: 0, Conn: 1})
	if n := notices(c.Ready()); len(n) != 0 {
		t.Fatalf("notices sent in the step of the change: %v", n)
	}
	if c.Deadline() != t0+d {
		t.Fatalf("deadline %v, want the notice delay after the change, %v", c.Deadline(), t0+d)
	}
	c.Step(t0+d/2, Closed{Peer: 1, Conn: 2})
	if n := notices(c.Ready()); len(n) != 0 || c.Leader() != 2 {
		t.Fatalf("leader %d, notices %v: want 2 and none yet", c.Leader(), n)
	}
	c.Step(t0+d, Tick{})
	n := notices(c.Ready())
	want := wire.LeaderChange{Leader: 2, Prev: 0}
	if len(n) != 2 || n[2] != want || n[4] != want {
		t.Fatalf("notices %v, want %+v to peers 2 and 4 alone", n, want)
	}

	// 2 crashes and comes back within the delay: the change is undone,
	// and nobody is told of it.
	c.Step(t0+2*d, Closed{Peer: 2, Conn: 3})
	c.Step(t0+2*d+1, Handshake{Peer: 2, Conn: 6, Incarnation: 2})
	c.Step(t0+2*d+2, Recv{Peer: 2, Conn: 6, Frame: wire.Heartbeat{Seq: 1, Open: true, Alive: []int{2, 3, 4}}})
	if c.Leader() != 2 {
		t.Fatalf("leader %d, want 2 again", c.Leader())
	}
	c.Step(t0+4*d, Tick{})
	if n := notices(c.Ready()); len(n) != 0 {
		t.Fatalf("an undone change was announced: %v", n)
	}
}

func TestNoticesWithoutDelayGoInTheStepOfTheChange(t *testing.T) {
	c := electing(t, -1)
	c.Step(time.Second, Closed{Peer: 0, Conn: 1})
	n := notices(c.Ready())
	want := wire.LeaderChange{Leader: 1, Prev: 0}
	if len(n) != 3 || n[1] != want || n[2] != want || n[4] != want {
		t.Fatalf("notices %v, want %+v to peers 1, 2 and 4 at once", n, want)
	}
}

// TestNoticeWaitsForAConnection: a change made while no connection is
// admitted is announced once one is.
func TestNoticeWaitsForAConnection(t *testing.T) {
	const d = 5 * time.Millisecond
	c, _ := New(Config{ID: 1, N: 2, NoticeDelay: d})
	c.Step(0, Start{})
	c.Step(0, Handshake{Peer: 0, Conn: 1, Incarnation: 1})
	c.Step(0, Recv{Peer: 0, Conn: 1, Frame: wire.Heartbeat{Seq: 1}})
	c.Step(d, Tick{})
	if n := notices(c.Ready()); n[0] != (wire.LeaderChange{Leader: 0, Prev: -1}) {
		t.Fatalf("first leader not announced: %v", n)
	}
	t0 := time.Second
	c.Step(t0, Closed{Peer: 0, Conn: 1})
	c.Step(t0+d, Tick{})
	if n := notices(c.Ready()); len(n) != 0 || c.Leader() != 1 {
		t.Fatalf("leader %d, notices %v", c.Leader(), n)
	}
	c.Step(t0+2*d, Handshake{Peer: 0, Conn: 2, Incarnation: 2})
	c.Ready()
	c.Step(t0+3*d, Tick{})
	if n := notices(c.Ready()); n[0] != (wire.LeaderChange{Leader: 1, Prev: 0}) {
		t.Fatalf("the change was not announced to the peer that came: %v", n)
	}
}
