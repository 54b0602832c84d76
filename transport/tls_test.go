package transport

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/wire"
)

// serveOne accepts one stream on ln, authenticates it with key and echoes
// what it receives; the handshake's outcome goes to the channel.
func serveOne(ln Listener, key Key) chan error {
	res := make(chan error, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			res <- err
			return
		}
		a, err := ReadHello(s, time.Second, key)
		if err != nil {
			Refuse(s, err.Error(), 0)
			res <- err
			return
		}
		res <- nil
		c := a.Accept(wire.Hello{Version: wire.Version, Kind: a.Hello.Kind, Scope: a.Hello.Scope, From: "acceptor"}, Limits{})
		c.Start(func(f wire.Frame) { c.Send(f, false) }, func(string) {})
	}()
	return res
}

var tlsHello = wire.Hello{Version: wire.Version, Kind: wire.KindGroup, Scope: "g", From: "dialer"}

// TestTLS runs the handshake and traffic over TLS: frames, the urgent
// hint included, arrive intact; one end without TLS is told so.
func TestTLS(t *testing.T) {
	mem := &Mem{}
	nw, err := NewTLS(mem)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := nw.Listen("")
	defer ln.Close()
	key := NewKey()
	serveOne(ln, key)
	c, h, err := Dial(context.Background(), nw, ln.Addr(), tlsHello, key, time.Second, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if h.From != "acceptor" {
		t.Fatalf("answer %+v", h)
	}
	frames := make(chan wire.Frame, 4)
	c.Start(func(f wire.Frame) { frames <- f }, func(string) {})
	c.Send(wire.LeaderChange{Leader: 1, Prev: 0}, true) // no urgent byte inside TLS
	c.Send(wire.Heartbeat{Seq: 2}, false)
	if f := <-frames; f.Type() != wire.TypeLeaderChange {
		t.Fatalf("first echo %#v", f)
	}
	if f := <-frames; f.Type() != wire.TypeHeartbeat {
		t.Fatalf("second echo %#v, want the heartbeat right after the notice", f)
	}
	c.Close()

	// A plain dialer at a TLS listener, and a TLS dialer at a plain one.
	go func() {
		if s, err := ln.Accept(); err == nil {
			ReadHello(s, time.Second, key)
			s.Close()
		}
	}()
	if _, _, err := Dial(context.Background(), mem, ln.Addr(), tlsHello, key, time.Second, Limits{}); err == nil {
		t.Error("a plain dialer passed a TLS handshake")
	}
	plain, _ := mem.Listen("")
	defer plain.Close()
	serveOne(plain, key)
	if _, _, err := Dial(context.Background(), nw, plain.Addr(), tlsHello, key, time.Second, Limits{}); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Errorf("a TLS dialer at a plain listener: %v", err)
	}
}

// TestTLSManInTheMiddle puts a relay between dialer and acceptor that ends
// TLS on each side and forwards the bytes between, as one who controls
// the network could: both ends hold the key, yet neither lets the other
// in, because each proves the key over its own TLS channel.
func TestTLSManInTheMiddle(t *testing.T) {
	mem := &Mem{}
	key := NewKey()
	nw, _ := NewTLS(mem)
	ln, _ := nw.Listen("")
	defer ln.Close()
	res := serveOne(ln, key)
	relayNet, _ := NewTLS(mem)
	mitm, _ := relayNet.Listen("")
	defer mitm.Close()
	go func() {
		in, err := mitm.Accept()
		if err != nil {
			return
		}
		out, err := relayNet.Dial(context.Background(), ln.Addr())
		if err != nil {
			in.Close()
			return
		}
		go func() { io.Copy(out, in); out.Close() }()
		io.Copy(in, out)
		in.Close()
	}()
	_, _, err := Dial(context.Background(), nw, mitm.Addr(), tlsHello, key, time.Second, Limits{})
	if err == nil {
		t.Fatal("a connection through a man in the middle was admitted")
	}
	if !strings.Contains(err.Error(), "cluster key") {
		t.Errorf("dialer: %v, want a failed proof", err)
	}
	if err := <-res; err == nil {
		t.Error("the acceptor took the relayed connection")
	}
}
