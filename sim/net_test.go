package sim

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// probe is the smallest machine: it dials, sends words and notes what
// happens to it, to test the network model alone.
type probe struct {
	n     *Net
	p     *proc
	c     *conn // its last connection, either end
	notes []string
}

func (m *probe) start()     { m.note("start") }
func (m *probe) tick()      {}
func (m *probe) stop()      {}
func (m *probe) down()      {}
func (m *probe) done() bool { return false }

func (m *probe) note(s string) { m.notes = append(m.notes, s) }

func (m *probe) dial(to *probe, timeout time.Duration) {
	m.n.connect(m.p, to.p, timeout, handshake{
		accept: func(c *conn) error {
			c.onEnd[1] = func(r string) { to.note("end " + r) }
			to.c = c
			m.n.answer(c)
			to.note("accepted")
			return nil
		},
		connected: func(c *conn) {
			c.onEnd[0] = func(r string) { m.note("end " + r) }
			m.c = c
			m.note("connected")
		},
		failed: func(why string) { m.note("failed " + why) },
	})
}

// say sends word on m's connection to the other end.
func (m *probe) say(to *probe, word string) {
	c := m.c
	side := c.side(m.p.id)
	m.n.send(c, side, func() {
		if !c.closed[1-side] {
			to.note(word)
		}
	})
}

func probes(t *testing.T, seed uint64) (*Net, *probe, *probe) {
	t.Helper()
	n, err := NewNet(NetConfig{N: 2, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	a, b := &probe{n: n, p: n.procs[0]}, &probe{n: n, p: n.procs[1]}
	n.host(0, a)
	n.host(1, b)
	n.StartAll()
	return n, a, b
}

func notes(m *probe) string { return strings.Join(m.notes, ", ") }

func TestConnectAcrossCutTimesOut(t *testing.T) {
	n, a, b := probes(t, 1)
	n.Cut(0, 1)
	a.dial(b, time.Second)
	n.RunFor(time.Second - time.Microsecond)
	if notes(a) != "start" {
		t.Fatalf("before the timeout: %s", notes(a))
	}
	n.RunFor(time.Microsecond)
	if notes(a) != "start, failed timeout" || notes(b) != "start" {
		t.Fatalf("at the timeout: dialer %q, acceptor %q", notes(a), notes(b))
	}
}

func TestConnectToNoProcessRefused(t *testing.T) {
	n, a, b := probes(t, 1)
	n.Crash(1)
	a.dial(b, time.Second)
	n.RunFor(2 * n.cfg.MaxDelay)
	if notes(a) != "start, failed connection refused" {
		t.Fatalf("dialing an address where nothing runs: %s", notes(a))
	}
}

// TestConnectToHungProcess: the kernel of a hung process accepts, and the
// process answers the handshake if it resumes before the dialer gives up;
// if not, it takes the connection when it resumes and finds it closed.
func TestConnectToHungProcess(t *testing.T) {
	for _, resume := range []time.Duration{300 * time.Millisecond, 2 * time.Second} {
		t.Run(fmt.Sprint(resume), func(t *testing.T) {
			n, a, b := probes(t, 1)
			n.Pause(1)
			a.dial(b, time.Second)
			n.RunFor(resume)
			n.Resume(1)
			n.RunFor(time.Second)
			want := [2]string{"start, connected", "start, accepted"}
			if resume > time.Second {
				want = [2]string{"start, failed timeout", "start, accepted, end eof"}
			}
			if got := [2]string{notes(a), notes(b)}; got != want {
				t.Fatalf("dialer and acceptor: %q, want %q", got, want)
			}
		})
	}
}

// TestCrashEndsAfterDataInFlight: the far end of a crashed process gets
// what was in flight, then end-of-stream.
func TestCrashEndsAfterDataInFlight(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		n, a, b := probes(t, seed)
		a.dial(b, time.Second)
		n.RunFor(time.Second)
		for _, w := range []string{"one", "two", "three"} {
			a.say(b, w)
		}
		n.Crash(0)
		n.RunFor(time.Second)
		if got := notes(b); got != "start, accepted, one, two, three, end eof" {
			t.Fatalf("the acceptor of a crashed dialer: %s", got)
		}
	})
}

// TestPartitionHoldsTraffic: what is sent across a partition arrives, in
// order, once it heals.
func TestPartitionHoldsTraffic(t *testing.T) {
	n, a, b := probes(t, 1)
	a.dial(b, time.Second)
	n.RunFor(time.Second)
	n.Partition([]int{0}, []int{1})
	a.say(b, "one")
	b.say(a, "back")
	a.say(b, "two")
	n.RunFor(time.Minute)
	if notes(b) != "start, accepted" || notes(a) != "start, connected" {
		t.Fatalf("across the partition: %q and %q", notes(a), notes(b))
	}
	n.Heal()
	n.RunFor(time.Second)
	if notes(b) != "start, accepted, one, two" || notes(a) != "start, connected, back" {
		t.Fatalf("after the heal: %q and %q", notes(a), notes(b))
	}
}

// TestResetDuringHandshake: a reset while the acceptor, hung, has not
// answered yet fails the attempt; the acceptor never takes it.
func TestResetDuringHandshake(t *testing.T) {
	n, a, b := probes(t, 1)
	n.Pause(1)
	a.dial(b, time.Second)
	n.RunFor(100 * time.Millisecond)
	n.Reset(0, 1)
	n.Resume(1)
	n.RunFor(2 * time.Second)
	if notes(a) != "start, failed reset" || slices.Contains(b.notes, "accepted") {
		t.Fatalf("dialer %q, acceptor %q", notes(a), notes(b))
	}
}
