package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/wire"
	"golang.org/x/sys/unix"
)

// pair returns two ends of a loopback TCP connection, both with
// SO_OOBINLINE set.
func pair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := ln.Accept(); ch <- res{c, err} }()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	ta, tb := a.(*net.TCPConn), r.c.(*net.TCPConn)
	for _, c := range []*net.TCPConn{ta, tb} {
		if err := SetOOBInline(c); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	return ta, tb
}

// TestUrgentByteIsMarkedUrgent checks on the receiving socket that the hint
// after a leader-change frame arrives flagged as TCP urgent data, in line.
func TestUrgentByteIsMarkedUrgent(t *testing.T) {
	a, b := pair(t)
	c := NewConn(&TCPStream{a}, Limits{})
	lost := make(chan string, 1)
	c.Start(func(wire.Frame) {}, func(r string) { lost <- r })
	frame := wire.Append(nil, wire.LeaderChange{Leader: 1, Prev: 0, LC: 7})
	if !c.Send(wire.LeaderChange{Leader: 1, Prev: 0, LC: 7}, true) {
		t.Fatal("send refused")
	}
	// With SO_OOBINLINE a read stops at the urgent mark, so reading the
	// frame leaves the socket exactly at the mark.
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 0, len(frame))
	buf := make([]byte, 64)
	for len(got) < len(frame) {
		n, err := b.Read(buf[:len(frame)-len(got)])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, frame) {
		t.Fatalf("read %x, want the frame %x", got, frame)
	}
	// The urgent byte may still be on its way: wait for it to be readable.
	n, err := b.Read(buf[:1])
	if err != nil || n != 1 {
		t.Fatalf("reading the hint: %d, %v", n, err)
	}
	if buf[0] != byte(wire.TypeHint) {
		t.Fatalf("byte after the frame is %#x, want the hint %#x", buf[0], wire.TypeHint)
	}
	// Now send a second notice and check the mark before reading the byte.
	c.Send(wire.LeaderChange{Leader: 2, Prev: 1}, true)
	frame = wire.Append(nil, wire.LeaderChange{Leader: 2, Prev: 1})
	got = got[:0]
	for len(got) < len(frame) {
		n, err := b.Read(buf[:len(frame)-len(got)])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	// Wait for the next byte without consuming it, then ask the socket
	// whether it is the urgent one.
	if err := peekByte(b); err != nil {
		t.Fatal(err)
	}
	if at, err := AtMark(b); err != nil || !at {
		t.Fatalf("SIOCATMARK after the leader-change frame: %v (%v), want the urgent mark", at, err)
	}
	if n, err := b.Read(buf[:1]); err != nil || n != 1 || buf[0] != byte(wire.TypeHint) {
		t.Fatalf("urgent byte: %x %v", buf[:n], err)
	}
	if at, _ := AtMark(b); at {
		t.Fatal("still at the mark after reading the urgent byte")
	}
}

func TestPlainFrameIsNotUrgent(t *testing.T) {
	a, b := pair(t)
	c := NewConn(&TCPStream{a}, Limits{})
	c.Start(func(wire.Frame) {}, func(string) {})
	c.Send(wire.Heartbeat{Seq: 1}, false)
	c.Send(wire.Heartbeat{Seq: 2}, false)
	want := append(wire.Append(nil, wire.Heartbeat{Seq: 1}), wire.Append(nil, wire.Heartbeat{Seq: 2})...)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(want))
	if _, err := readFull(b, got); err != nil {
		t.Fatal(err)
	}
	if at, err := AtMark(b); err != nil || at {
		t.Fatalf("at mark %v (%v) with no urgent data sent", at, err)
	}
}

// peekByte blocks until at least one byte can be read from c.
func peekByte(c *net.TCPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, perr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK)
		return perr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return perr
}

func readFull(c *net.TCPConn, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := c.Read(p[n:])
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

func TestConnReportsLossOnceAndFramesInOrder(t *testing.T) {
	a, b := pair(t)
	c := NewConn(&TCPStream{a}, Limits{})
	frames := make(chan wire.Frame, 10)
	lost := make(chan string, 2)
	c.Start(func(f wire.Frame) { frames <- f }, func(r string) { lost <- r })
	b.Write(wire.Append(wire.Append(nil, wire.Heartbeat{Seq: 1}), wire.Heartbeat{Seq: 2}))
	for i := uint64(1); i <= 2; i++ {
		if f := <-frames; f.(wire.Heartbeat).Seq != i {
			t.Fatalf("frame %d: %#v", i, f)
		}
	}
	b.Close()
	if r := <-lost; r != "eof" {
		t.Fatalf("loss reason %q, want eof", r)
	}
}

func TestConnClosesOnBadFraming(t *testing.T) {
	a, b := pair(t)
	c := NewConn(&TCPStream{a}, Limits{MaxFrame: 64})
	lost := make(chan string, 1)
	c.Start(func(wire.Frame) {}, func(r string) { lost <- r })
	b.Write([]byte{byte(wire.TypeHeartbeat), 0xff, 0x7f}) // 16 KiB payload, limit 64
	if r := <-lost; !bytes.Contains([]byte(r), []byte("too large")) {
		t.Fatalf("loss reason %q, want a frame-too-large error", r)
	}
}

func TestHandshake(t *testing.T) {
	for _, nw := range []Network{TCP{}, &Mem{}} {
		t.Run(fmt.Sprintf("%T", nw), func(t *testing.T) { testHandshake(t, nw) })
	}
}

func testHandshake(t *testing.T, nw Network) {
	ln, err := nw.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	key, other := NewKey(), NewKey()
	me := wire.Hello{Version: wire.Version, Kind: wire.KindPeer, Scope: "c", From: "0", N: 3, Incarnation: 5}
	them := wire.Hello{Version: wire.Version, Kind: wire.KindPeer, Scope: "c", From: "1", N: 3, Incarnation: 9, LC: 3}
	// answer accepts one stream, checks its proof of k and answers with
	// f (or admits it and echoes what it receives if f is nil).
	answer := func(k Key, f func(a *Accepted)) chan error {
		authErr := make(chan error, 1)
		go func() {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			a, err := ReadHello(s, time.Second, k)
			if err != nil {
				Refuse(s, err.Error(), 0)
				authErr <- err
				return
			}
			authErr <- nil
			if f != nil {
				f(a)
				return
			}
			c := a.Accept(them, Limits{})
			c.Start(func(f wire.Frame) { c.Send(f, false) }, func(string) {})
		}()
		return authErr
	}
	dial := func(k Key, hello wire.Hello, timeout time.Duration) (*Conn, wire.Hello, error) {
		return Dial(context.Background(), nw, ln.Addr(), hello, k, timeout, Limits{})
	}
	for _, k := range []Key{nil, key} {
		answer(k, nil)
		c, h, err := dial(k, me, time.Second)
		if err != nil {
			t.Fatalf("key %v: %v", k != nil, err)
		}
		if h.From != "1" || h.Incarnation != 9 || h.LC != 3 || len(h.Nonce) != 32 {
			t.Fatalf("answer %+v", h)
		}
		frames := make(chan wire.Frame, 1)
		c.Start(func(f wire.Frame) { frames <- f }, func(string) {})
		c.Send(wire.Heartbeat{Seq: 7}, false)
		if f := <-frames; f.(wire.Heartbeat).Seq != 7 {
			t.Fatalf("echo: %#v", f)
		}
		c.Close()
	}
	// Each end refuses the other unless both prove the same key.
	for _, c := range []struct {
		name          string
		dialer, acc   Key
		dialErr, acc2 string
	}{
		{"another key at the acceptor", key, other, "no proof of the cluster key", "no proof"},
		{"no key at the acceptor", key, nil, "does not prove the cluster key", ""},
		{"another key at the dialer", other, key, "no proof of the cluster key", "no proof"},
		{"no key at the dialer", nil, key, "no proof of the cluster key", "no proof"},
	} {
		authErr := answer(c.acc, nil)
		_, _, err := dial(c.dialer, me, time.Second)
		if err == nil || !strings.Contains(err.Error(), c.dialErr) {
			t.Errorf("%s: dialer got %v, want %q", c.name, err, c.dialErr)
		}
		if err := <-authErr; c.acc2 != "" && (err == nil || !strings.Contains(err.Error(), c.acc2)) {
			t.Errorf("%s: acceptor got %v, want %q", c.name, err, c.acc2)
		}
	}
	// An answer recorded from one handshake and replayed to the next
	// dialer does not pass: it proves the nonce of the Hello it answered.
	answer(key, nil)
	first, h1, err := dial(key, me, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	answer(key, func(a *Accepted) { a.s.Write(wire.Append(nil, h1)) })
	if _, _, err := dial(key, me, time.Second); !errors.Is(err, ErrAuth) {
		t.Fatalf("a replayed answer: %v, want a failed proof", err)
	}
	// A rejection comes back as ErrRejected.
	answer(key, func(a *Accepted) { a.Reject("go away", 0) })
	if _, _, err := dial(key, me, time.Second); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "go away") {
		t.Fatalf("rejection: %v", err)
	}
	// A Hello of another version is refused with both versions named.
	answer(nil, nil)
	old := me
	old.Version = 1
	if _, _, err := dial(nil, old, time.Second); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "version 1") {
		t.Fatalf("old version: %v", err)
	}
	// Silence is cut off by the handshake deadline.
	answer(nil, func(a *Accepted) {})
	if _, _, err := dial(nil, me, 50*time.Millisecond); err == nil {
		t.Fatal("a connection never admitted was taken")
	}
}

// TestKeyFile checks that a key survives its file and that bad keys are
// refused with a reason.
func TestKeyFile(t *testing.T) {
	path := t.TempDir() + "/key"
	k := NewKey()
	if err := WriteKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, k); err == nil {
		t.Fatal("a key file was overwritten")
	}
	got, err := ReadKeyFile(path)
	if err != nil || !bytes.Equal(got, k) {
		t.Fatalf("read back %x, %v", got, err)
	}
	for _, bad := range []string{"", "xyz", "00ff"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}

// TestIdleConnectionIsClosed checks the idle limit: a connection that
// brings nothing is closed with reason timeout.
func TestIdleConnectionIsClosed(t *testing.T) {
	var nw Mem
	ln, _ := nw.Listen("")
	go func() {
		s, err := ln.Accept()
		if err == nil {
			t.Cleanup(func() { s.Close() })
		}
	}()
	s, err := nw.Dial(context.Background(), ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(s, Limits{Idle: 20 * time.Millisecond})
	lost := make(chan string, 1)
	c.Start(func(wire.Frame) {}, func(r string) { lost <- r })
	if r := <-lost; r != "timeout" {
		t.Fatalf("idle connection lost with %q, want timeout", r)
	}
}

// TestMemStream checks the in-memory stream against what the runtime
// relies on from TCP.
func TestMemStream(t *testing.T) {
	var nw Mem
	if _, err := nw.Dial(context.Background(), "nowhere:1"); err == nil {
		t.Fatal("dialing nobody succeeded")
	}
	ln, _ := nw.Listen("")
	acc := make(chan Stream, 1)
	go func() { s, _ := ln.Accept(); acc <- s }()
	a, err := nw.Dial(context.Background(), ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	a.Write([]byte("hello"))
	a.CloseWrite()
	got, err := io.ReadAll(b)
	if string(got) != "hello" || err != nil {
		t.Fatalf("read %q, %v after a half close", got, err)
	}
	b.Write([]byte("back"))
	buf := make([]byte, 8)
	if n, _ := a.Read(buf); string(buf[:n]) != "back" {
		t.Fatalf("the other direction read %q after a half close", buf[:n])
	}
	b.Close()
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("a write after the other end closed succeeded")
	}
	if _, err := a.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the other end closed: %v", err)
	}
	a.SetReadDeadline(time.Now().Add(-time.Second))
	ln.Close()
	if _, err := nw.Dial(context.Background(), ln.Addr()); err == nil {
		t.Fatal("dialing a closed listener succeeded")
	}
}

// TestQueuedBytesBound checks that a connection whose other end reads
// nothing is closed once its queue holds QueuedBytes, not later.
func TestQueuedBytesBound(t *testing.T) {
	a, _ := pair(t)
	c := NewConn(&TCPStream{a}, Limits{QueuedBytes: 4 << 20})
	lost := make(chan string, 1)
	c.Start(func(wire.Frame) {}, func(r string) { lost <- r })
	big := wire.GroupMsg{Data: make([]byte, 1<<20)}
	for i := 0; ; i++ {
		if !c.Send(big, false) {
			break
		}
		if i > 1000 {
			t.Fatal("a gigabyte queued for a reader that reads nothing")
		}
	}
	if r := <-lost; r != "send queue full" {
		t.Fatalf("lost with %q", r)
	}
}
