package transport

import (
	"bytes"
	"context"
	"errors"
	"net"
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
	c := NewConn(a, wire.NewReader(a, 0))
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
	c := NewConn(a, wire.NewReader(a, 0))
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
	c := NewConn(a, wire.NewReader(a, 0))
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
	c := NewConn(a, wire.NewReader(a, 64))
	lost := make(chan string, 1)
	c.Start(func(wire.Frame) {}, func(r string) { lost <- r })
	b.Write([]byte{byte(wire.TypeHeartbeat), 0xff, 0x7f}) // 16 KiB payload, limit 64
	if r := <-lost; !bytes.Contains([]byte(r), []byte("too large")) {
		t.Fatalf("loss reason %q, want a frame-too-large error", r)
	}
}

func TestHandshake(t *testing.T) {
	me := Identity{Cluster: "c", ID: 0, N: 3, Incarnation: 5}
	them := Identity{Cluster: "c", ID: 1, N: 3, Incarnation: 9}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		h, _, err := ReadHello(c.(*net.TCPConn), them, time.Second, 0)
		if err != nil || h.ID != 0 || h.Incarnation != 5 {
			Reject(c.(*net.TCPConn), "unexpected", 0)
			return
		}
		c.Write(wire.Append(nil, them.Hello(3)))
	}()
	tcp, _, h, err := Dial(context.Background(), ln.Addr().String(), 1, me, 1, time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	tcp.Close()
	if h.ID != 1 || h.Incarnation != 9 || h.LC != 3 {
		t.Fatalf("remote hello %+v", h)
	}
	// Expecting another id is an error.
	go func() {
		c, err := ln.Accept()
		if err == nil {
			ReadHello(c.(*net.TCPConn), them, time.Second, 0)
			c.Write(wire.Append(nil, them.Hello(3)))
		}
	}()
	if _, _, _, err := Dial(context.Background(), ln.Addr().String(), 2, me, 1, time.Second, 0); err == nil {
		t.Fatal("a peer answering with the wrong id was accepted")
	}
	// A rejection comes back as ErrRejected with the reason.
	go func() {
		c, err := ln.Accept()
		if err == nil {
			Reject(c.(*net.TCPConn), "go away", 0)
		}
	}()
	if _, _, _, err := Dial(context.Background(), ln.Addr().String(), 1, me, 1, time.Second, 0); !errors.Is(err, ErrRejected) {
		t.Fatalf("rejection: %v", err)
	}
}

func TestIdentityCheck(t *testing.T) {
	me := Identity{Cluster: "c", ID: 0, N: 3}
	bad := []wire.Hello{
		{Version: 9, Cluster: "c", ID: 1, N: 3},
		{Version: wire.Version, Cluster: "other", ID: 1, N: 3},
		{Version: wire.Version, Cluster: "c", ID: 1, N: 4},
		{Version: wire.Version, Cluster: "c", ID: 3, N: 3},
		{Version: wire.Version, Cluster: "c", ID: 0, N: 3},
	}
	for _, h := range bad {
		if me.Check(h) == nil {
			t.Errorf("accepted %+v", h)
		}
	}
	if err := me.Check(wire.Hello{Version: wire.Version, Cluster: "c", ID: 2, N: 3}); err != nil {
		t.Error(err)
	}
}
