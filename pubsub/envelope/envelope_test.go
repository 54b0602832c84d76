package envelope

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, c := range []struct{ topic, data string }{{"a", ""}, {"prices", "hello"}, {"", "x"}, {"é", "\x00\x01"}} {
		topic, data, err := Decode(Encode(c.topic, []byte(c.data)))
		if err != nil || topic != c.topic || string(data) != c.data {
			t.Errorf("%q %q: got %q %q %v", c.topic, c.data, topic, data, err)
		}
	}
	for _, b := range [][]byte{nil, {}, {2, 0}, {1}, {1, 5, 'a'}, {1, 0x80}, {1, 1, 0xff}} {
		if _, _, err := Decode(b); !errors.Is(err, ErrNotEnvelope) {
			t.Errorf("%x: got %v", b, err)
		}
	}
}

// FuzzDecode checks that the decoder never panics, and that what it
// accepts encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(Encode("prices", []byte("42")))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		topic, data, err := Decode(b)
		if err != nil {
			return
		}
		if again := Encode(topic, data); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %q %q, which encodes to %x", b, topic, data, again)
		}
	})
}
