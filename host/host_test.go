package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/transport"
	"github.com/conclave/conclave/wire"
)

func hello(kind wire.Kind, scope string) wire.Hello {
	return wire.Hello{Version: wire.Version, Kind: kind, Scope: scope, From: "x"}
}

// TestRoutes checks that a Host hands each connection to the handler of
// its kind and scope, and refuses, saying why, what nobody serves.
func TestRoutes(t *testing.T) {
	nw := &transport.Mem{}
	var mu sync.Mutex
	var refused []string
	h, err := New(Config{Network: nw, Refused: func(addr string, _ *wire.Hello, reason string) {
		mu.Lock()
		refused = append(refused, reason)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	serve := func(name string) Handler {
		return func(a *transport.Accepted) {
			reply := a.Hello
			reply.From = name
			a.Accept(reply, transport.Limits{}).Start(func(wire.Frame) {}, func(string) {})
		}
	}
	remove, err := h.Handle(Route{wire.KindGroup, "a"}, serve("member of a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Handle(Route{wire.KindGroup, "a"}, serve("again")); err == nil {
		t.Fatal("a route was taken twice")
	}
	h.Handle(Route{wire.KindGroup, "b"}, serve("member of b"))
	h.Handle(Route{wire.KindPeer, "a"}, serve("peer of a"))
	dial := func(kind wire.Kind, scope string) (string, error) {
		c, reply, err := transport.Dial(context.Background(), nw, h.Addr(), hello(kind, scope), nil, time.Second, transport.Limits{})
		if err != nil {
			return "", err
		}
		c.Close()
		return reply.From, nil
	}
	for _, c := range []struct {
		kind  wire.Kind
		scope string
		want  string
	}{{wire.KindGroup, "a", "member of a"}, {wire.KindGroup, "b", "member of b"}, {wire.KindPeer, "a", "peer of a"}} {
		if got, err := dial(c.kind, c.scope); err != nil || got != c.want {
			t.Errorf("%s %q reached %q (%v), want %q", c.kind, c.scope, got, err, c.want)
		}
	}
	remove()
	if _, err := dial(wire.KindGroup, "a"); err == nil || !strings.Contains(err.Error(), `no group "a" here`) {
		t.Errorf("a removed route: %v", err)
	}
	if _, err := dial(wire.KindDirectory, "a"); err == nil || !strings.Contains(err.Error(), `no directory "a" here`) {
		t.Errorf("an unserved kind: %v", err)
	}
	s, _ := nw.Dial(context.Background(), h.Addr())
	s.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	r := wire.NewReader(s, 0)
	if f, err := r.Next(); err != nil || !strings.Contains(f.(wire.Reject).Reason, "unknown frame type") {
		t.Errorf("garbage answered with %v, %v", f, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != 3 {
		t.Errorf("refusals reported: %q, want 3", refused)
	}
}

// counter is a machine that counts inputs and wants a tick at a set time.
type counter struct {
	inputs   []string
	deadline time.Duration
	out      []string
}

func (c *counter) Step(now time.Duration, in string) error {
	c.inputs = append(c.inputs, in)
	c.out = append(c.out, "did "+in)
	if in == "tick" {
		c.deadline = Never
	}
	return nil
}

func (c *counter) Ready() []string {
	out := c.out
	c.out = nil
	return out
}

func (c *counter) Deadline() time.Duration { return c.deadline }

// fakeClock is a Clock that moves only when told.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c  *fakeClock
	ch chan time.Time
	at time.Time
	on bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1), at: c.now.Add(d), on: true}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock and fires the timers due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if t.on && !t.at.After(c.now) {
			t.on = false
			t.ch <- c.now
		}
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	select {
	case <-t.ch:
	default:
	}
	t.at, t.on = t.c.now.Add(d), true
}

func (t *fakeTimer) Stop() {
	t.c.mu.Lock()
	t.on = false
	t.c.mu.Unlock()
}

// TestLoopTicksOnTheInjectedClock drives a machine with a fake clock: its
// tick comes when the clock reaches its deadline, not before, and every
// effect is applied in order.
func TestLoopTicksOnTheInjectedClock(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	m := &counter{deadline: 5 * time.Second}
	applied := make(chan string, 16)
	l := NewLoop[string, string](m, LoopConfig[string, string]{Tick: "tick", Clock: clk, Apply: func(e string) { applied <- e }})
	l.Start(func() { l.Step("start") })
	if got := <-applied; got != "did start" {
		t.Fatalf("first effect %q", got)
	}
	l.Do(func() { l.Step("a") })
	if got := <-applied; got != "did a" {
		t.Fatalf("effect %q", got)
	}
	clk.Advance(4 * time.Second)
	l.Do(func() { l.Step("b") }) // the loop has seen the clock at 4s
	if got := <-applied; got != "did b" {
		t.Fatalf("effect %q, want no tick before the deadline", got)
	}
	clk.Advance(time.Second)
	if got := <-applied; got != "did tick" {
		t.Fatalf("effect %q, want the tick at the deadline", got)
	}
	l.Stop()
	<-l.Done()
	if l.Do(func() {}) {
		t.Fatal("a stopped loop took work")
	}
	if want := []string{"start", "a", "b", "tick"}; strings.Join(m.inputs, " ") != strings.Join(want, " ") {
		t.Fatalf("inputs %v, want %v", m.inputs, want)
	}
}

// TestCaps checks the host's bounds: connections beyond MaxConns are
// closed at once, a handshake beyond MaxHandshakes takes the place of the
// oldest, and refusals are reported at most RefusalsPerSecond a second,
// the rest as a count.
func TestCaps(t *testing.T) {
	nw := &transport.Mem{}
	reports := make(chan string, 100)
	h, err := New(Config{Network: nw, MaxConns: 6, MaxHandshakes: 3, Refused: func(addr string, _ *wire.Hello, reason string) {
		reports <- addr + ": " + reason
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	dial := func() transport.Stream {
		s, err := nw.Dial(context.Background(), h.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	closed := func(s transport.Stream) bool {
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := s.Read(make([]byte, 1))
		return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	}
	// Garbage is refused; past RefusalsPerSecond the refusals are
	// counted, and the count is reported.
	for range 25 {
		s := dial()
		s.Write([]byte("garbage!"))
		closed(s)
	}
	told, counted := 0, 0
	for counted == 0 {
		r := <-reports
		if n, ok := strings.CutPrefix(r, ": "); ok {
			fmt.Sscan(n, &counted)
		} else if strings.Contains(r, "unknown frame type") {
			told++
		}
	}
	if told > RefusalsPerSecond || told+counted != 25 {
		t.Fatalf("%d refusals told one by one and %d counted, want at most %d told and 25 in all", told, counted, RefusalsPerSecond)
	}
	// Three silent connections hold every handshake: a fourth takes the
	// place of the first, and the others stay.
	var silent []transport.Stream
	for range 3 {
		silent = append(silent, dial())
		for h.Conns() < len(silent) {
			time.Sleep(time.Millisecond) // accepted in order
		}
	}
	dial()
	if !closed(silent[0]) {
		t.Fatal("the oldest handshake stayed when a fourth arrived")
	}
	if r := <-reports; !strings.Contains(r, "closed to make room") {
		t.Fatalf("report %q", r)
	}
	for _, s := range silent[1:] {
		s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a newer silent handshake was closed: %v", err)
		}
	}
	if n := h.Conns(); n != 3 {
		t.Fatalf("%d connections open, want 3 silent ones", n)
	}
	h.Close()
	if n := h.Conns(); n != 0 {
		t.Fatalf("%d connections open after Close", n)
	}
	// Connections beyond MaxConns are closed at once.
	reports2 := make(chan string, 10)
	h2, err := New(Config{Network: nw, MaxConns: 2, Refused: func(addr string, _ *wire.Hello, reason string) {
		reports2 <- reason
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	for range 2 {
		if _, err := nw.Dial(context.Background(), h2.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := nw.Dial(context.Background(), h2.Addr())
	if !closed(s) {
		t.Fatal("a third connection was let in")
	}
	if r := <-reports2; !strings.Contains(r, "too many connections") {
		t.Fatalf("report %q", r)
	}
}
