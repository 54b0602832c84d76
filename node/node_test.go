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

// startNode runs node id of a cluster at addrs until the test ends.
func startNode(t *testing.T, id int, addrs []string) (*Node, *events) {
	t.Helper()
	ev := newEvents()
	n, err := New(Config{Peer: peer.Config{ID: id, Heartbeat: 20 * time.Millisecond, SuspectAfter: 2 * time.Second},
		Addrs: addrs, LogDir: t.TempDir(), OnEvent: ev.add})
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
	ev2.wait(t, func(e eventlog.Event) bool { p, _ := e.Int("peer"); return e.Ev == "peer_up" && p == 0 })
	hello := func(cluster string, id int, inc uint64) []byte {
		return wire.Append(nil, wire.Hello{Version: wire.Version, Kind: wire.KindPeer, Scope: cluster, From: strconv.Itoa(id), N: 3, Incarnation: inc})
	}
	inc0 := n2.Status().Peers[0].Incarnation

	cases := []struct {
		name, reason string
		send         []byte
	}{
		{"garbage", "unknown frame type", []byte("GET /status HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"wrong cluster", "cluster", hello("other", 1, 1)},
		{"id out of range", "out of range", hello(DefaultCluster, 9, 1)},
		{"wrong peer count", "configured with 4 peers", wire.Append(nil, wire.Hello{Version: wire.Version, Kind: wire.KindPeer, Scope: DefaultCluster, From: "1", N: 4, Incarnation: 1})},
		{"old protocol version", "version 1", wire.Append(nil, wire.Hello{Version: 1})},
		{"meant for another peer", "not 1", wire.Append(nil, wire.Hello{Version: wire.Version, Kind: wire.KindPeer, Scope: DefaultCluster, From: "0", To: "1", N: 3, Incarnation: inc0 + 1})},
		{"id already connected", "already connected", hello(DefaultCluster, 0, inc0)},
		{"stale incarnation", "stale incarnation", hello(DefaultCluster, 0, inc0-1)},
		{"oversized hello", "too large", []byte{byte(wire.TypeHello), 0xff, 0xff, 0xff, 0x7f}},
	}
	for _, c := range cases {
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

	t.Run("oversized frame after the handshake", func(t *testing.T) {
		conn := dialRaw(t, n2.Addr(), hello(DefaultCluster, 1, 1))
		// Read the node's Hello, then misbehave.
		r := wire.NewReader(conn, 0)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if f, err := r.Next(); err != nil || f.Type() != wire.TypeHello {
			t.Fatalf("expected the node's hello, got %v %v", f, err)
		}
		conn.Write([]byte{byte(wire.TypeHeartbeat), 0xff, 0xff, 0xff, 0x7f})
		ev2.wait(t, rejected("too large"))
	})

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
