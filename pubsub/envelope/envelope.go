// Package envelope encodes the events of publish/subscribe topics as group
// messages: a topic, the topic's move number its publisher published at,
// and the payload, so that the members of a group shared by several
// topics can tell them apart, and a subscriber can tell an event of a
// later move from one of its own (docs/directory.md, Moves). Package pubsub sends and reads
// them, and the simulator's publish/subscribe clients (package sim) do the
// same.
package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// version is the first byte of every encoded event; a member that reads
// another version filters the message out rather than guess. Version 1
// carried no move number; 2 is a marker's (marker.go).
const version = 3

// MaxTopic bounds a topic's length in bytes.
const MaxTopic = 1024

// ErrNotEnvelope says a group message is not an event envelope.
var ErrNotEnvelope = errors.New("pubsub: not an event envelope")

// Encode returns the group message carrying data for topic, published at
// the topic's move number moves (the directory's count of its moves when
// the publisher last switched groups): version byte, topic length
// (uvarint), topic, moves (uvarint), then the payload.
func Encode(topic string, moves uint64, data []byte) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(topic)+len(data))
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(topic)))
	b = append(b, topic...)
	b = binary.AppendUvarint(b, moves)
	return append(b, data...)
}

// Decode returns the topic, move number and payload of a group message;
// an error matches ErrNotEnvelope. The payload aliases b.
func Decode(b []byte) (topic string, moves uint64, data []byte, err error) {
	if len(b) == 0 || b[0] != version {
		return "", 0, nil, ErrNotEnvelope
	}
	n, k := uvarint(b[1:])
	if k <= 0 {
		return "", 0, nil, fmt.Errorf("%w: bad topic length", ErrNotEnvelope)
	}
	rest := b[1+k:]
	if n > MaxTopic || n > uint64(len(rest)) {
		return "", 0, nil, fmt.Errorf("%w: topic of %d bytes", ErrNotEnvelope, n)
	}
	t := rest[:n]
	if !utf8.Valid(t) {
		return "", 0, nil, fmt.Errorf("%w: topic is not UTF-8", ErrNotEnvelope)
	}
	rest = rest[n:]
	moves, k = uvarint(rest)
	if k <= 0 {
		return "", 0, nil, fmt.Errorf("%w: bad move number", ErrNotEnvelope)
	}
	return string(t), moves, rest[k:], nil
}

// uvarint reads a uvarint in its shortest form (so that what decodes
// encodes back to the same bytes); k <= 0 if there is none.
func uvarint(b []byte) (n uint64, k int) {
	n, k = binary.Uvarint(b)
	if k <= 0 || k != len(binary.AppendUvarint(nil, n)) {
		return 0, -1
	}
	return n, k
}
