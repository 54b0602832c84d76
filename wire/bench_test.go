package wire

import (
	"bytes"
	"testing"
)

// BenchmarkAppendGroupMsg frames a 1 KiB group message into a reused
// buffer, as a connection's writer does.
func BenchmarkAppendGroupMsg(b *testing.B) {
	f := GroupMsg{LC: 123456789, Data: make([]byte, 1040)}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], f)
	}
}

// BenchmarkAppendGroupMsgUnboxed is BenchmarkAppendGroupMsg with
// AppendGroupMsg.
func BenchmarkAppendGroupMsgUnboxed(b *testing.B) {
	f := GroupMsg{LC: 123456789, Data: make([]byte, 1040)}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendGroupMsg(buf[:0], f)
	}
}

// BenchmarkReadGroupMsg reads 1 KiB group messages from a stream, as a
// connection's reader does; an op is one frame.
func BenchmarkReadGroupMsg(b *testing.B) {
	var stream []byte
	for range 256 {
		stream = Append(stream, GroupMsg{LC: 123456789, Data: make([]byte, 1040)})
	}
	src := bytes.NewReader(stream)
	r := NewReader(src, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream) / 256))
	for i := 0; b.Loop(); i++ {
		if i%256 == 0 {
			src.Reset(stream)
		}
		f, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		if m, ok := f.(GroupMsg); !ok || len(m.Data) != 1040 {
			b.Fatalf("read %T", f)
		}
	}
}

// BenchmarkReadGroupMsgInto is BenchmarkReadGroupMsg with NextMsg, which
// does not box the message in a Frame.
func BenchmarkReadGroupMsgInto(b *testing.B) {
	var stream []byte
	for range 256 {
		stream = Append(stream, GroupMsg{LC: 123456789, Data: make([]byte, 1040)})
	}
	src := bytes.NewReader(stream)
	r := NewReader(src, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream) / 256))
	var m GroupMsg
	for i := 0; b.Loop(); i++ {
		if i%256 == 0 {
			src.Reset(stream)
		}
		f, err := r.NextMsg(&m)
		if err != nil || f != nil || len(m.Data) != 1040 {
			b.Fatalf("read %T, %v", f, err)
		}
	}
}
