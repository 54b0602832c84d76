package host_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/conclave/conclave/group"
	"github.com/conclave/conclave/host"
	"github.com/conclave/conclave/node"
	"github.com/conclave/conclave/peer"
	"github.com/conclave/conclave/transport"
	"github.com/conclave/conclave/wire"
)

// FuzzHandshake sends arbitrary bytes to a host that serves a peer core
// and a group member, as the first bytes of a connection: whatever they
// are, the host answers or closes, and goes on serving. The host has no
// key, so that what the fuzzer sends reaches the peer and the member.
func FuzzHandshake(f *testing.F) {
	for _, h := range []wire.Hello{
		{Version: wire.Version, Kind: wire.KindPeer, Scope: "c", From: "1", N: 2, Incarnation: 1},
		{Version: wire.Version, Kind: wire.KindPeer, Scope: "c", From: "0", N: 2, To: "0"},
		{Version: wire.Version, Kind: wire.KindGroup, Scope: "g", From: "x.1", Addr: "mem:9"},
		{Version: wire.Version, Kind: wire.KindGroup, Scope: "g", From: "x.1", To: "nobody"},
		{Version: wire.Version, Kind: wire.KindDirectory, Scope: "c"},
		{Version: 1},
	} {
		b := wire.Append(nil, h)
		f.Add(b)
		f.Add(wire.Append(b, wire.Heartbeat{Seq: 1, Open: true, Alive: []int{0, 1}}))
		f.Add(wire.Append(b, wire.GroupMsg{LC: 1, Data: []byte{1, 1, 0, 'x'}}))
	}
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{byte(wire.TypeHello), 0xff, 0xff, 0xff, 0x7f})

	nw := &transport.Mem{}
	h, err := host.New(host.Config{Listen: "127.0.0.1:7000", Network: nw})
	if err != nil {
		f.Fatal(err)
	}
	defer h.Close()
	n, err := node.New(node.Config{Peer: peer.Config{ID: 0}, Addrs: []string{"127.0.0.1:7000", "127.0.0.1:7001"},
		Cluster: "c", Host: h})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- n.Run(ctx) }()
	defer func() { cancel(); <-ran }()
	g, err := group.Join(ctx, group.Config{Name: "g", Host: h})
	if err != nil {
		f.Fatal(err)
	}
	defer g.Close()

	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := nw.Dial(context.Background(), h.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Write(data)
		s.CloseWrite()
		// The host answers (a Hello or a Reject) or closes; a connection
		// it admitted stays open, so the wait is bounded.
		s.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		io.Copy(io.Discard, s)
	})
	// The host still serves: a member of the group answers.
	reply := wire.Hello{Version: wire.Version, Kind: wire.KindGroup, Scope: "g", From: "probe.1"}
	c, _, err := transport.Dial(context.Background(), nw, h.Addr(), reply, nil, time.Second, transport.Limits{})
	if err != nil {
		f.Fatalf("after fuzzing, the group no longer answers: %v", err)
	}
	c.Close()
}
