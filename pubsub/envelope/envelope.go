// Package envelope encodes the events of publish/subscribe topics as group
// messages: a topic and its payload, so that the members of a group shared
// by several topics can tell them apart. Package pubsub sends and reads
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
// another version filters the message out rather than guess.
const version = 1

// MaxTopic bounds a topic's length in bytes.
const MaxTopic = 1024

// ErrNotEnvelope says a group message is not an event envelope.
var ErrNotEnvelope = errors.New("pubsub: not an event envelope")

// Encode returns the group message carrying data for topic: version byte,
// topic length (uvarint), topic, then the payload.
func Encode(topic string, data []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(topic)+len(data))
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(topic)))
	b = append(b, topic...)
	return append(b, data...)
}

// Decode returns the topic and payload of a group message; an error
// matches ErrNotEnvelope. The payload aliases b.
func Decode(b []byte) (topic string, data []byte, err error) {
	if len(b) == 0 || b[0] != version {
		return "", nil, ErrNotEnvelope
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || k != len(binary.AppendUvarint(nil, n)) {
		return "", nil, fmt.Errorf("%w: bad topic length", ErrNotEnvelope)
	}
	rest := b[1+k:]
	if n > MaxTopic || n > uint64(len(rest)) {
		return "", nil, fmt.Errorf("%w: topic of %d bytes", ErrNotEnvelope, n)
	}
	t := rest[:n]
	if !utf8.Valid(t) {
		return "", nil, fmt.Errorf("%w: topic is not UTF-8", ErrNotEnvelope)
	}
	return string(t), rest[n:], nil
}
