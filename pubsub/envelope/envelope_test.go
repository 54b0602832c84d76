package envelope

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, c := range []struct {
		topic string
		moves uint64
		data  string
	}{{"a", 0, ""}, {"prices", 1, "hello"}, {"", 1 << 40, "x"}, {"é", 3, "\x00\x01"}} {
		topic, moves, data, err := Decode(Encode(c.topic, c.moves, []byte(c.data)))
		if err != nil || topic != c.topic || moves != c.moves || string(data) != c.data {
			t.Errorf("%q %d %q: got %q %d %q %v", c.topic, c.moves, c.data, topic, moves, data, err)
		}
	}
	for _, b := range [][]byte{nil, {}, {2, 0}, {1, 0, 0}, {3}, {3, 0}, {3, 5, 'a'}, {3, 0x80}, {3, 1, 0xff, 0}, {3, 1, 'a'}, {3, 1, 'a', 0x80}, {3, 0, 0x80, 0}} {
		if _, _, _, err := Decode(b); !errors.Is(err, ErrNotEnvelope) {
			t.Errorf("%x: got %v", b, err)
		}
	}
}

// FuzzDecode checks that the decoder never panics, and that what it
// accepts encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(Encode("prices", 2, []byte("42")))
	f.Add([]byte{3, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		topic, moves, data, err := Decode(b)
		if err != nil {
			return
		}
		if again := Encode(topic, moves, data); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %q %d %q, which encodes to %x", b, topic, moves, data, again)
		}
	})
}

func TestMarkerRoundTrip(t *testing.T) {
	for _, m := range []Marker{{"a", 1, Prepare}, {"prices", 1 << 40, Ready}, {"", 0, Switch}, {"é", 3, End}} {
		got, ok := DecodeMarker(EncodeMarker(m))
		if !ok || got != m {
			t.Errorf("%+v: got %+v %v", m, got, ok)
		}
		if _, _, _, err := Decode(EncodeMarker(m)); err == nil {
			t.Errorf("%+v decodes as an event", m)
		}
		if _, ok := DecodeMarker(Encode(m.Topic, m.Moves, nil)); ok {
			t.Errorf("an event of %q decodes as a marker", m.Topic)
		}
	}
	for _, b := range [][]byte{nil, {}, {2}, {2, 0, 1}, {2, 0, 1, 0}, {2, 0, 1, 5}, {2, 0, 0x80, 0, 1}, {2, 1, 'a', 1, 1, 0}, {2, 1, 0xff, 1, 1}} {
		if m, ok := DecodeMarker(b); ok {
			t.Errorf("%x decodes as %+v", b, m)
		}
	}
}

// FuzzDecodeMarker checks that the marker decoder never panics, and that
// what it accepts encodes back to the same bytes.
func FuzzDecodeMarker(f *testing.F) {
	f.Add(EncodeMarker(Marker{"prices", 1, Switch}))
	f.Add([]byte{2, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := DecodeMarker(b)
		if !ok {
			return
		}
		if again := EncodeMarker(m); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, m, again)
		}
	})
}
