package node

import (
	"context"
	"io"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/peer"
	"github.com/conclave/conclave/transport"
	"github.com/conclave/conclave/wire"
)

// events collects a node's events and lets a test wait for one.
type events struct {
	mu   sync.Mutex
	all  []eventlog.Event
	more chan struct{}
}

func newEvents() *events { return &events{more: make(chan struct{})} }

func (e *events) add(ev eventlog.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	close(e.more)
	e.more = make(chan struct{})
	e.mu.Unlock()
}

// wait returns the first event from index from on that matches, waiting
// for it up to 10 s.
func (e *events) wait(t *testing.T, match func(eventlog.Event) bool) eventlog.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	seen := 0
	for {
		e.mu.Lock()
		for ; seen < len(e.all); seen++ {
			if match(e.all[seen]) {
				ev := e.all[seen]
				e.mu.Unlock()
				return ev
			}
		}
		ch := e.more
		e.mu.Unlock()
		select {
		case <-ch:
		case <-timeout:
			t.Fatal("timed out waiting for an event")
		}
	}
}

func isLeader(l int) func(eventlog.Event) bool {
	return func(e eventlog.Event) bool {
		got, _ := e.Int("leader")
		return e.Ev == "leader_change" && got == l
	}
}

func rejected(reason string) func(eventlog.Event) bool {
	return func(e eventlog.Event) bool {
		return (e.Ev == "conn_rejected" || e.Ev == "conn_down") && strings.Contains(e.Str("reason"), reason)
	}
}

// testKey is the cluster key of the tests' nodes.
var testKey = transport.NewKey()

// startNode runs node id of a cluster at addrs until the test ends.
func startNode(t *testing.T, id int, addrs []string) (*Node, *events) {
	t.Helper()
	ev := newEvents()
	n, err := New(Config{Peer: peer.Config{ID: id, Heartbeat: 20 * time.Millisecond, SuspectAfter: 2 * time.Second},
		Addrs: addrs, LogDir: t.TempDir(), OnEvent: ev.add, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %d: %v", id, err)
		}
	})
	return n, ev
}

// expectClosed reads from c until the node closes it, and returns what
// it sent before closing.
func expectClosed(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("connection not closed by the node: %v", err)
	}
	return b
}

func dialRaw(t *testing.T, addr string, first []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(first); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBadInputIsRefusedAndThePeerKeepsWorking(t *testing.T) {
	addrs, err := launch.FreeAddrs(3)
	if err != nil {
		t.Fatal(err)
	}
	// Peers 0 and 2 run; peer 1 is missing, so elections have not opened.
	_, ev0 := startNode(t, 0, addrs)
	n2, ev2 := startNode(t, 2, addrs)
	// Peer 0's incarnation as peer 2 admitted it (its status may not show
	// it yet).
	up := ev2.wait(t, func(e eventlog.Event) bool { p, _ := e.Int("peer"); return e.Ev == eventlog.ConnUp && p == 0 })
	ev2.wait(t, func(e eventlog.Event) bool { p, _ := e.Int("peer"); return e.Ev == "peer_up" && p == 0 })
	hello := func(cluster string, id int, inc uint64) wire.Hello {
		return wire.Hello{Version: wire.Version, Kind: wire.KindPeer, Scope: cluster, From: strconv.Itoa(id), N: 3, Incarnation: inc}
	}
	inc0, ok := up.Fields[eventlog.FieldPeerInc].(uint64)
	if !ok || inc0 == 0 {
		t.Fatalf("conn_up of peer 0 without its incarnation: %v", eventlog.Format(up))
	}

	// Bytes refused before any handshake.
	raw := []struct {
		name, reason string
		send         []byte
	}{
		{"garbage", "unknown frame type", []byte("GET /status HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"wrong cluster", "cluster", wire.Append(nil, hello("other", 1, 1))},
		{"old protocol version", "version 1", wire.Append(nil, wire.Hello{Version: 1})},
		{"oversized hello", "too large", []byte{byte(wire.TypeHello), 0xff, 0xff, 0xff, 0x7f}},
	}
	for _, c := range raw {
		t.Run(c.name, func(t *testing.T) {
			conn := dialRaw(t, n2.Addr(), c.send)
			got := expectClosed(t, conn)
			ev2.wait(t, rejected(c.reason))
			if f, _, err := wire.Parse(got, 0); err == nil {
				if r, ok := f.(wire.Reject); !ok || !strings.Contains(r.Reason, c.reason) {
					t.Errorf("node answered %#v, want a Reject naming %q", f, c.reason)
				}
			}
		})
	}
	// Handshakes refused with a reason, proving the key or not.
	other := hello(DefaultCluster, 0, inc0+1)
	other.To = "1"
	shaken := []struct {
		name, reason string
		hello        wire.Hello
		key          transport.Key
		logged       string // the reason in the node's log, if not reason
	}{
		{"impostor without the key", "no proof of the cluster key", hello(DefaultCluster, 0, 1<<64-1), nil, ""},
		{"impostor with another key", "no proof of the cluster key", hello(DefaultCluster, 0, 1<<64-1), transport.NewKey(), ""},
		{"id out of range", "out of range", hello(DefaultCluster, 9, 1), testKey, ""},
		{"wrong peer count", "configured with 4 peers", wire.Hello{Version: wire.Version, Kind: wire.KindPeer, Scope: DefaultCluster, From: "1", N: 4, Incarnation: 1}, testKey, ""},
		{"meant for another peer", "not 1", other, testKey, ""},
		{"id already connected", "already connected", hello(DefaultCluster, 0, inc0), testKey, ""},
		{"stale incarnation", "stale incarnation", hello(DefaultCluster, 0, inc0-1), testKey, ""},
	}
	for _, c := range shaken {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := transport.Dial(context.Background(), transport.TCP{}, n2.Addr(), c.hello, c.key, 10*time.Second, transport.Limits{})
			if err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Errorf("handshake: %v, want a refusal naming %q", err, c.reason)
			}
			if c.logged == "" {
				c.logged = c.reason
			}
			ev2.wait(t, rejected(c.logged))
		})
	}

	t.Run("oversized frame after the handshake", func(t *testing.T) {
		s, _, err := transport.DialStream(context.Background(), transport.TCP{}, n2.Addr(), hello(DefaultCluster, 1, 1), testKey, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Write([]byte{byte(wire.TypeHeartbeat), 0xff, 0xff, 0xff, 0x7f})
		ev2.wait(t, rejected("too large"))
	})

	// Nobody evicted peer 0: the impostors claiming its newest
	// incarnation proved nothing.
	ev2.mu.Lock()
	for _, e := range ev2.all {
		if p, _ := e.Int("peer"); e.Ev == "peer_down" && p == 0 {
			t.Errorf("peer 0 went down: %v", eventlog.Format(e))
		}
	}
	ev2.mu.Unlock()

	// The node is still fine: when peer 1 arrives for real, all elect 0.
	_, ev1 := startNode(t, 1, addrs)
	for _, ev := range []*events{ev0, ev1, ev2} {
		ev.wait(t, isLeader(0))
	}
}

func TestStatusEndpoint(t *testing.T) {
	addrs, err := launch.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	n0, ev0 := startNode(t, 0, addrs)
	_, ev1 := startNode(t, 1, addrs)
	ev0.wait(t, isLeader(0))
	ev1.wait(t, isLeader(0))
	ev0.wait(t, func(e eventlog.Event) bool { return e.Ev == "urgent_recv" })
	rec := httptest.NewRecorder()
	n0.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	body := rec.Body.String()
	for _, want := range []string{`"id": 0`, `"leader": 0`, `"alive": [`, `"node": "peer-0"`} {
		if !strings.Contains(body, want) {
			t.Errorf("status lacks %s:\n%s", want, body)
		}
	}
}

func TestInvalidConfig(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Addrs: []string{"127.0.0.1:1"}}, "at least 2 peers"},
		{Config{Addrs: []string{"127.0.0.1:1", "nonsense"}}, "not host:port"},
		{Config{Addrs: []string{"127.0.0.1:1", "127.0.0.1:1"}}, "same address"},
		{Config{Addrs: []string{"127.0.0.1:1", "127.0.0.1:99999"}}, "no valid port"},
		{Config{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, Peer: peer.Config{ID: 2}}, "out of range"},
	}
	for _, c := range cases {
		_, err := New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.cfg.Addrs, err, c.want)
		}
	}
}

// gate is a destination whose writes wait until the test opens it.
type gate struct {
	open chan struct{}
	mu   sync.Mutex
	b    strings.Builder
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.Write(p)
}

// TestEventsStreamWrittenBeforeRunReturns runs a node without a log
// directory whose event stream's reader stalls until the node has logged
// its stop: Run returns once every event is in the stream, the lines
// OnEvent saw, in order.
func TestEventsStreamWrittenBeforeRunReturns(t *testing.T) {
	addrs, err := launch.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{open: make(chan struct{})}
	stream := eventlog.NewStream(g, 0)
	ev := newEvents()
	n, err := New(Config{Peer: peer.Config{ID: 0}, Addrs: addrs, OnEvent: ev.add, Events: stream, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	ev.wait(t, func(e eventlog.Event) bool { return e.Ev == eventlog.Start })
	cancel()
	ev.wait(t, func(e eventlog.Event) bool { return e.Ev == eventlog.Stop })
	close(g.open)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	written := g.b.String()
	g.mu.Unlock()
	got, bad, _ := eventlog.Read(strings.NewReader(written))
	ev.mu.Lock()
	want := ev.all
	ev.mu.Unlock()
	if bad != 0 || len(got) != len(want) {
		t.Fatalf("the stream holds %d events (%d unreadable), OnEvent saw %d:\n%s", len(got), bad, len(want), written)
	}
	for i := range got {
		if got[i].Ev != want[i].Ev || got[i].LC != want[i].LC {
			t.Errorf("line %d is %s at %d, OnEvent saw %s at %d", i, got[i].Ev, got[i].LC, want[i].Ev, want[i].LC)
		}
	}
	if err := stream.Close(); err != nil {
		t.Fatal(err)
	}
}
