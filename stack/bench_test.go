package stack

import "testing"

// benchMsg is a 1 KiB message with the headers of the total stack: total,
// vsync, membership, detect.
func benchMsg() Msg {
	vs := (&Enc{B: []byte{0}}).ViewID(ViewID{Seq: 7, Coord: "m0.0123abcd"}).Uint(123456).Uint(123400).B
	return Msg{Data: make([]byte, 1024)}.Push([]byte{0}).Push(vs).Push([]byte{0}).Push([]byte{0})
}

// BenchmarkPush pushes the headers of the total stack's four layers onto
// a message, as a Send and its Outs travel down.
func BenchmarkPush(b *testing.B) {
	data := make([]byte, 1024)
	vs := (&Enc{B: []byte{0}}).ViewID(ViewID{Seq: 7, Coord: "m0.0123abcd"}).Uint(123456).Uint(123400).B
	tot, gms, det := []byte{0}, []byte{0}, []byte{0}
	b.ReportAllocs()
	for b.Loop() {
		m := Msg{Data: data}.Push(tot).Push(vs)
		for range 3 { // one Out per other member
			if m := m.Push(gms).Push(det); len(m.Hdrs) != 4 {
				b.Fatal(len(m.Hdrs))
			}
		}
	}
}

// BenchmarkAppendMsg encodes a 1 KiB message with four headers.
func BenchmarkAppendMsg(b *testing.B) {
	m := benchMsg()
	b.ReportAllocs()
	for b.Loop() {
		if len(AppendMsg(nil, m)) < 1024 {
			b.Fatal("short")
		}
	}
}

// BenchmarkParseMsg parses a 1 KiB message with four headers.
func BenchmarkParseMsg(b *testing.B) {
	enc := AppendMsg(nil, benchMsg())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMsg(enc); err != nil {
			b.Fatal(err)
		}
	}
}
