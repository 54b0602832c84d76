package wire

import (
	"bytes"
	"io"
	"testing"
)

// TestNextMsg: a group message comes back in the caller's GroupMsg, in
// memory of its own (the next frame does not overwrite it); other frames
// come back as frames; Complete says whether the next frame is buffered.
func TestNextMsg(t *testing.T) {
	var stream []byte
	stream = Append(stream, GroupMsg{LC: 3, Data: []byte("first")})
	stream = Append(stream, Bye{Reason: "done", LC: 4})
	stream = Append(stream, GroupMsg{LC: 5, Data: []byte("second")})
	cut := len(stream) - 2
	pr, pw := io.Pipe()
	go func() {
		pw.Write(stream[:cut])
		pw.Write(stream[cut:])
		pw.Close()
	}()
	r := NewReader(pr, 0)
	var a, b GroupMsg
	if f, err := r.NextMsg(&a); f != nil || err != nil || a.LC != 3 || string(a.Data) != "first" {
		t.Fatalf("first frame: %v %v %+v", f, err, a)
	}
	if !r.Complete() {
		t.Fatal("the Bye is buffered, Complete says it is not")
	}
	if f, err := r.NextMsg(&b); err != nil || f != (Bye{Reason: "done", LC: 4}) {
		t.Fatalf("second frame: %v %v", f, err)
	}
	if r.Complete() {
		t.Fatal("the last frame is cut short in the buffer, Complete says it is whole")
	}
	if f, err := r.NextMsg(&b); f != nil || err != nil || b.LC != 5 || string(b.Data) != "second" {
		t.Fatalf("third frame: %v %v %+v", f, err, b)
	}
	if string(a.Data) != "first" {
		t.Fatalf("the first message's data became %q", a.Data)
	}
	if _, err := r.NextMsg(&b); err != io.EOF {
		t.Fatalf("after the last frame: %v", err)
	}
	// A group message whose stream ends inside it.
	r = NewReader(bytes.NewReader(stream[:5]), 0)
	if _, err := r.NextMsg(&b); err != io.ErrUnexpectedEOF {
		t.Fatalf("cut message: %v", err)
	}
}

// TestAppendGroupMsg: AppendGroupMsg writes what Append writes.
func TestAppendGroupMsg(t *testing.T) {
	for _, m := range []GroupMsg{{}, {LC: 1 << 40, Data: []byte("x")}, {LC: 127, Data: make([]byte, 300)}} {
		if a, b := Append([]byte("pre"), m), AppendGroupMsg([]byte("pre"), m); !bytes.Equal(a, b) {
			t.Errorf("%+v: Append %x, AppendGroupMsg %x", m, a, b)
		}
	}
}

// TestSetReadBuffer: a reader given a larger buffer between frames loses
// none of the bytes it had buffered.
func TestSetReadBuffer(t *testing.T) {
	var stream []byte
	for i := range 100 {
		stream = Append(stream, GroupMsg{LC: uint64(i), Data: make([]byte, 100)})
	}
	r := NewReader(bytes.NewReader(stream), 0)
	var m GroupMsg
	for i := range 100 {
		if i == 3 {
			if r.Buffered() == 0 {
				t.Fatal("nothing buffered to keep")
			}
			r.SetReadBuffer(ReadBuffer)
		}
		if f, err := r.NextMsg(&m); f != nil || err != nil || m.LC != uint64(i) || len(m.Data) != 100 {
			t.Fatalf("frame %d: %v %v %d", i, f, err, m.LC)
		}
	}
	if _, err := r.NextMsg(&m); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
}
