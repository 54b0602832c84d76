package envelope

import (
	"encoding/binary"
	"unicode/utf8"
)

// markerVersion is the first byte of a marker. Events begin with version,
// so a client that knows no markers filters them out.
const markerVersion = 2

// Phase says what a marker of a topic's move announces (package pubsub
// describes the protocol).
type Phase byte

// Marker phases.
const (
	// Prepare: a publisher learnt of the move and joined the new group.
	Prepare Phase = 1 + iota
	// Ready: a subscriber keeps the new group's events aside.
	Ready
	// Switch: the publisher publishes in the new group from now on.
	Switch
	// End: the publisher publishes no more of the topic in this group.
	End
)

// Marker is a message about a topic's move between groups, sent in the
// group it leaves. Moves is the topic's move number.
type Marker struct {
	Topic string
	Moves uint64
	Phase Phase
}

// EncodeMarker returns the group message of m: version, topic length
// (uvarint), topic, move number (uvarint), phase.
func EncodeMarker(m Marker) []byte {
	b := make([]byte, 0, 2+2*binary.MaxVarintLen64+len(m.Topic))
	b = append(b, markerVersion)
	b = binary.AppendUvarint(b, uint64(len(m.Topic)))
	b = append(b, m.Topic...)
	b = binary.AppendUvarint(b, m.Moves)
	return append(b, byte(m.Phase))
}

// DecodeMarker parses a marker; ok is false if b is not one.
func DecodeMarker(b []byte) (m Marker, ok bool) {
	if len(b) == 0 || b[0] != markerVersion {
		return m, false
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || k != len(binary.AppendUvarint(nil, n)) {
		return m, false
	}
	rest := b[1+k:]
	if n > MaxTopic || n > uint64(len(rest)) || !utf8.Valid(rest[:n]) {
		return m, false
	}
	m.Topic, rest = string(rest[:n]), rest[n:]
	moves, k := binary.Uvarint(rest)
	if k <= 0 || k != len(binary.AppendUvarint(nil, moves)) || len(rest) != k+1 {
		return Marker{}, false
	}
	m.Moves, m.Phase = moves, Phase(rest[k])
	if m.Phase < Prepare || m.Phase > End {
		return Marker{}, false
	}
	return m, true
}
