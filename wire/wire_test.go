package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

var samples = []Frame{
	Hello{Version: Version, Kind: KindPeer, Scope: "conclave", From: "3", Addr: "127.0.0.1:7003", N: 4, Incarnation: 1732380000123456789, LC: 17},
	Hello{Version: Version},
	Hello{Version: Version, Kind: KindGroup, Scope: "prices", From: "m1.3fa2", Addr: "127.0.0.1:7001", To: "m0.11aa", LC: 5,
		Nonce: []byte("0123456789abcdef0123456789abcdef"), Proof: []byte("proof-of-thirty-two-bytes-length")},
	Reject{Reason: "wrong cluster", LC: 1},
	Heartbeat{Seq: 1, LC: 2},
	Heartbeat{Seq: 1 << 40, LC: 1 << 62},
	Heartbeat{Seq: 3, LC: 4, Open: true, Alive: []int{0, 2, 3}},
	Heartbeat{Seq: 3, LC: 4, Open: true, Alive: []int{}},
	LeaderChange{Leader: 1, Prev: 0, LC: 9},
	LeaderChange{Leader: -1, Prev: 2, LC: 9},
	Bye{Reason: "shutdown", LC: 3},
	GroupMsg{LC: 1795466917277952, Data: []byte{2, 1, 0, 1, 7, 'h', 'i'}},
	GroupMsg{},
	Raft{LC: 9, Data: []byte{8, 3, 16, 2}},
	Request{ID: 1 << 40, Op: OpPropose, Data: []byte("announce")},
	Request{ID: 0, Op: OpRead},
	Response{ID: 7, Status: 1, Leader: 2, Data: []byte{1, 2}},
	Response{ID: 8, Leader: -1},
	Hint{},
}

func TestRoundTrip(t *testing.T) {
	for _, f := range samples {
		b := Append(nil, f)
		got, n, err := Parse(b, 0)
		if err != nil {
			t.Fatalf("%#v: %v", f, err)
		}
		if n != len(b) || !reflect.DeepEqual(got, f) {
			t.Fatalf("round trip of %#v gave %#v (%d of %d bytes)", f, got, n, len(b))
		}
	}
}

func TestHintIsOneByte(t *testing.T) {
	if b := Append(nil, Hint{}); !bytes.Equal(b, []byte{0x21}) {
		t.Fatalf("hint encodes as %x, want 21", b)
	}
}

func TestReaderStreamsAndStopsCleanly(t *testing.T) {
	var stream []byte
	for _, f := range samples {
		stream = Append(stream, f)
	}
	r := NewReader(bytes.NewReader(stream), 0)
	for i, want := range samples {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("frame %d: got %#v want %#v", i, got, want)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
	// Cut inside the last multi-byte frame.
	r = NewReader(bytes.NewReader(stream[:len(stream)-3]), 0)
	var err error
	for err == nil {
		_, err = r.Next()
	}
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated stream: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want error // nil: any error other than ErrShort
	}{
		{"unknown type", []byte{0x7f, 0}, nil},
		{"http request", []byte("GET / HTTP/1.1\r\n\r\n"), nil},
		{"too large", append([]byte{byte(TypeHeartbeat)}, 0xff, 0xff, 0xff, 0x7f), ErrTooLarge},
		{"bad magic", Append(nil, rawFrame{TypeHello, []byte("XXXX\x01\x00\x00\x00\x00\x00")}), nil},
		{"trailing bytes", Append(nil, rawFrame{TypeHeartbeat, []byte{1, 1, 0, 1}}), nil},
		{"bad heartbeat flags", Append(nil, rawFrame{TypeHeartbeat, []byte{1, 1, 7}}), nil},
		{"huge alive list", Append(nil, rawFrame{TypeHeartbeat, []byte{1, 1, 1, 0xff, 0xff, 0x7f}}), nil},
		{"truncated payload", Append(nil, rawFrame{TypeHeartbeat, []byte{1}}), nil},
		{"leader below -1", Append(nil, rawFrame{TypeLeaderChange, []byte{5, 0, 0}}), nil},
		{"long string", Append(nil, rawFrame{TypeBye, []byte{0xff, 0xff, 0x03}}), nil},
		{"short", []byte{byte(TypeHeartbeat), 5, 1}, ErrShort},
	}
	for _, c := range cases {
		_, _, err := Parse(c.in, 1024)
		switch {
		case err == nil:
			t.Errorf("%s: accepted", c.name)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		case c.want == nil && errors.Is(err, ErrShort):
			t.Errorf("%s: reported as short input", c.name)
		}
		r := NewReader(bytes.NewReader(c.in), 1024)
		if _, err := r.Next(); err == nil {
			t.Errorf("%s: Reader accepted", c.name)
		}
	}
}

// rawFrame lets tests frame arbitrary payloads.
type rawFrame struct {
	t Type
	p []byte
}

func (f rawFrame) Type() Type                    { return f.t }
func (f rawFrame) appendPayload(b []byte) []byte { return append(b, f.p...) }

// TestHelloOfAnotherVersion checks that a Hello of version 1 (the layout
// before connection kinds) parses as far as its version, so the answer can
// name the versions.
func TestHelloOfAnotherVersion(t *testing.T) {
	v1 := []byte{byte(TypeHello), 0, 'C', 'N', 'C', 'L', 1, 8, 'c', 'o', 'n', 'c', 'l', 'a', 'v', 'e', 3, 4, 1, 17}
	v1[1] = byte(len(v1) - 2)
	f, n, err := Parse(v1, 0)
	if err != nil || n != len(v1) {
		t.Fatalf("version 1 hello: %v (%d of %d bytes)", err, n, len(v1))
	}
	if h := f.(Hello); h.Version != 1 || h.Scope != "" {
		t.Fatalf("version 1 hello parsed as %#v", h)
	}
}

// TestReaderMemoryFollowsBytes checks that a frame declaring a large length
// costs memory only as its bytes arrive: reading 300 KiB of a frame that
// announces 64 MiB holds at most twice what arrived (the buffer doubles).
func TestReaderMemoryFollowsBytes(t *testing.T) {
	head := []byte{byte(TypeGroupMsg), 0x80, 0x80, 0x80, 0x20} // 64 MiB declared
	b := &budget{left: 1 << 30}
	r := NewReader(io.MultiReader(bytes.NewReader(head), bytes.NewReader(make([]byte, 300<<10))), 128<<20)
	r.SetBudget(b)
	if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a frame cut short: %v, want an unexpected EOF", err)
	}
	if b.peak > 2*(300<<10) {
		t.Fatalf("the reader took %d bytes for 300 KiB received", b.peak)
	}
	if b.used != 0 || cap(r.buf) > growStep {
		t.Fatalf("after the frame: %d bytes reserved, a buffer of %d kept", b.used, cap(r.buf))
	}
}

func TestReaderLargeFrameArrivesWhole(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 30000)
	r := NewReader(bytes.NewReader(Append(nil, GroupMsg{LC: 3, Data: data})), 1<<20)
	f, err := r.Next()
	if err != nil || !bytes.Equal(f.(GroupMsg).Data, data) {
		t.Fatalf("a 300 kB frame: %v", err)
	}
}

// budget is a Budget that counts.
type budget struct{ left, peak, used int }

func (b *budget) Reserve(n int) bool {
	if n > b.left {
		return false
	}
	b.left -= n
	b.used += n
	b.peak = max(b.peak, b.used)
	return true
}

func (b *budget) Release(n int) { b.left += n; b.used -= n }

// TestReaderBudget checks that large frames take their memory from the
// budget while they are read and give it back, and that a frame the
// budget cannot hold is refused.
func TestReaderBudget(t *testing.T) {
	b := &budget{left: 200 << 10}
	small := bytes.Repeat([]byte("x"), 100)
	large := bytes.Repeat([]byte("y"), 250<<10)
	var stream []byte
	stream = Append(stream, GroupMsg{Data: small})
	stream = Append(stream, GroupMsg{Data: large})
	stream = Append(stream, GroupMsg{Data: small})
	r := NewReader(bytes.NewReader(stream), 1<<20)
	r.SetBudget(b)
	for i, want := range [][]byte{small, large, small} {
		f, err := r.Next()
		if err != nil || !bytes.Equal(f.(GroupMsg).Data, want) {
			t.Fatalf("frame %d: %v", i, err)
		}
		if b.used != 0 {
			t.Fatalf("after frame %d, %d bytes still reserved", i, b.used)
		}
	}
	if b.peak == 0 || b.peak > 250<<10 {
		t.Fatalf("the large frame reserved at most %d bytes", b.peak)
	}
	huge := Append(nil, GroupMsg{Data: bytes.Repeat([]byte("z"), 400<<10)})
	r = NewReader(bytes.NewReader(huge), 1<<20)
	r.SetBudget(b)
	if _, err := r.Next(); !errors.Is(err, ErrBudget) {
		t.Fatalf("a frame over the budget: %v", err)
	}
	if b.used != 0 {
		t.Fatalf("a refused frame kept %d bytes", b.used)
	}
}
