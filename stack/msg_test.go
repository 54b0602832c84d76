package stack

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestMsgRoundTrip(t *testing.T) {
	m := Msg{Data: []byte("data")}.Push([]byte{1, 2}).Push(nil).Push([]byte("top"))
	got, err := ParseMsg(AppendMsg(nil, m))
	if err != nil {
		t.Fatal(err)
	}
	h, rest, _ := got.Pop()
	if string(h) != "top" || len(rest.Hdrs) != 2 || string(rest.Data) != "data" {
		t.Fatalf("got %+v", got)
	}
}

func FuzzParseMsg(f *testing.F) {
	f.Add(AppendMsg(nil, Msg{Data: []byte("x")}.Push([]byte{0})))
	f.Add([]byte{0x7f, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMsg(b)
		if err != nil {
			return
		}
		if again := AppendMsg(nil, m); !bytes.Equal(again, b) {
			// Non-minimal varints parse but re-encode shorter.
			if m2, err := ParseMsg(again); err != nil || len(m2.Hdrs) != len(m.Hdrs) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

// TestPushShares: the Outs of a multicast, each pushed the same constant
// headers, share one header array; a different header never overwrites
// one a Msg holds.
func TestPushShares(t *testing.T) {
	gms, det := []byte{7}, []byte{8}
	m := Msg{Data: []byte("d")}.Push([]byte("total")).Push([]byte("vsync"))
	a := m.Push(gms).Push(det)
	b := m.Push(gms).Push(det)
	if &a.Hdrs[0] != &b.Hdrs[0] || len(a.Hdrs) != 4 {
		t.Errorf("two Outs of one message do not share their headers")
	}
	other := m.Push([]byte{9}).Push(nil)
	again := m.Push(nil)
	for _, c := range []struct {
		m    Msg
		want string
	}{{a, "total vsync \x07 \x08"}, {b, "total vsync \x07 \x08"}, {other, "total vsync \x09 "}, {again, "total vsync "}} {
		var got []string
		for _, h := range c.m.Hdrs {
			got = append(got, string(h))
		}
		if s := strings.Join(got, " "); s != c.want {
			t.Errorf("headers %q, want %q", s, c.want)
		}
	}
	// A popped message pushed another header gets an array of its own.
	_, p, _ := a.Pop()
	q := p.Push([]byte{6})
	if string(a.Hdrs[3]) != "\x08" || string(q.Hdrs[3]) != "\x06" {
		t.Errorf("a push after a pop overwrote a header: %q %q", a.Hdrs[3], q.Hdrs[3])
	}
	if n := testing.AllocsPerRun(100, func() { m.Push(gms).Push(det) }); n != 0 {
		t.Errorf("pushing constant headers onto a pushed message allocates %v times", n)
	}
	if got := AppendMsg(nil, a); len(got) != MsgSize(a) {
		t.Errorf("AppendMsg made %d bytes, MsgSize says %d", len(got), MsgSize(a))
	}
	if n := testing.AllocsPerRun(100, func() { AppendMsg(nil, a) }); n != 1 {
		t.Errorf("AppendMsg allocates %v times, want once", n)
	}
}

// TestParseMsgIn: messages parsed into one array each hold their own
// headers, and a Push onto one does not write into the next.
func TestParseMsgIn(t *testing.T) {
	a := AppendMsg(nil, Msg{Data: []byte("a")}.Push([]byte("a1")).Push([]byte("a2")))
	b := AppendMsg(nil, Msg{Data: []byte("b")}.Push([]byte("b1")))
	hdrs := make([][]byte, 0, 8)
	ma, hdrs, err := ParseMsgIn(a, hdrs)
	if err != nil {
		t.Fatal(err)
	}
	if _, hdrs, err = ParseMsgIn([]byte{5}, hdrs); err == nil || len(hdrs) != 2 {
		t.Fatalf("a bad message: %v, %d headers kept", err, len(hdrs))
	}
	mb, hdrs, err := ParseMsgIn(b, hdrs)
	if err != nil || len(hdrs) != 3 {
		t.Fatal(err, len(hdrs))
	}
	pa := ma.Push([]byte("top"))
	if got := fmt.Sprintf("%q %q %q", ma.Hdrs, mb.Hdrs, pa.Hdrs); got != `["a1" "a2"] ["b1"] ["a1" "a2" "top"]` {
		t.Errorf("got %s", got)
	}
	if string(ma.Data) != "a" || string(mb.Data) != "b" {
		t.Errorf("data %q %q", ma.Data, mb.Data)
	}
}
