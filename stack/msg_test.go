package stack

import (
	"bytes"
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
