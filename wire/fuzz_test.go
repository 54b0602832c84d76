package wire

import (
	"io"
	"reflect"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse and to Reader, split into
// arbitrary chunks: neither may panic, both must agree, and every frame they
// accept must survive re-encoding.
func FuzzParse(f *testing.F) {
	for _, s := range samples {
		f.Add(Append(nil, s), uint8(1))
	}
	var all []byte
	for _, s := range samples {
		all = Append(all, s)
	}
	f.Add(all, uint8(3))
	f.Add([]byte("GET /status HTTP/1.1\r\nHost: x\r\n\r\n"), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		var viaParse []Frame
		rest := data
		for len(rest) > 0 {
			fr, n, err := Parse(rest, 4096)
			if err != nil {
				break
			}
			if n <= 0 || n > len(rest) {
				t.Fatalf("Parse used %d of %d bytes", n, len(rest))
			}
			// Varints may arrive in a non-minimal form, so compare
			// the re-encoding by value, not by bytes.
			if again, _, err := Parse(Append(nil, fr), 4096); err != nil || !reflect.DeepEqual(again, fr) {
				t.Fatalf("re-encoding %#v does not parse back: %v", fr, err)
			}
			viaParse = append(viaParse, fr)
			rest = rest[n:]
		}
		r := NewReader(&chunkReader{b: data, n: int(chunk%16) + 1}, 4096)
		for i := 0; ; i++ {
			fr, err := r.Next()
			if err != nil {
				if i < len(viaParse) {
					t.Fatalf("Reader failed at frame %d (%v) where Parse succeeded", i, err)
				}
				break
			}
			if i >= len(viaParse) || !reflect.DeepEqual(fr, viaParse[i]) {
				// Parse may stop early with ErrShort where Reader waits
				// for more; beyond that they must agree.
				if i < len(viaParse) {
					t.Fatalf("frame %d: Reader %#v, Parse %#v", i, fr, viaParse[i])
				}
				break
			}
		}
	})
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(c.n, len(p), len(c.b))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}
