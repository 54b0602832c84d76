package transport

import (
	"fmt"
	"strings"
	"testing"

	"github.com/conclave/conclave/wire"
)

// TestStartMsgs: group messages sent with SendMsg arrive through onMsgs in
// order, other frames through onFrame in their place between them, and a
// batch is handed over without waiting for more bytes.
func TestStartMsgs(t *testing.T) {
	a, b := pair(t)
	ca, cb := NewConn(&TCPStream{a}, Limits{}), NewConn(&TCPStream{b}, Limits{})
	got := make(chan string, 100)
	lost := make(chan string, 1)
	cb.StartMsgs(func(ms []wire.GroupMsg) {
		if len(ms) == 0 || len(ms) > MsgBatch {
			got <- fmt.Sprintf("batch of %d", len(ms))
		}
		for _, m := range ms {
			got <- fmt.Sprintf("%s@%d", m.Data, m.LC)
		}
	}, func(f wire.Frame) { got <- fmt.Sprintf("%T", f) }, func(r string) { lost <- r })
	ca.Start(func(wire.Frame) {}, func(string) {})
	read := func(n int) string {
		var out []string
		for range n {
			out = append(out, <-got)
		}
		return strings.Join(out, " ")
	}
	// Nothing more follows: the two must arrive without more bytes.
	ca.SendMsg(wire.GroupMsg{LC: 1, Data: []byte("a")})
	ca.SendMsg(wire.GroupMsg{LC: 2, Data: []byte("b")})
	if s := read(2); s != "a@1 b@2" {
		t.Fatalf("got %s", s)
	}
	var want []string
	for i := range 3 * MsgBatch {
		if i == MsgBatch+3 {
			ca.Send(wire.Heartbeat{Seq: 1}, false)
			want = append(want, "wire.Heartbeat")
		}
		ca.SendMsg(wire.GroupMsg{LC: uint64(i), Data: []byte("m")})
		want = append(want, fmt.Sprintf("m@%d", i))
	}
	if s := read(len(want)); s != strings.Join(want, " ") {
		t.Fatalf("got %s\nwant %s", s, strings.Join(want, " "))
	}
	ca.Close()
	if r := <-lost; r != "eof" {
		t.Fatalf("loss reason %q", r)
	}
}
