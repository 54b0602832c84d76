package pubsub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// envelopeVersion is the first byte of every encoded event; a member that
// reads another version filters the message out rather than guess.
const envelopeVersion = 1

// MaxTopic bounds a topic's length in bytes.
const MaxTopic = 1024

// errEnvelope says a group message is not an event of this package.
var errEnvelope = errors.New("pubsub: not an event envelope")

// encodeEnvelope returns the group message carrying data for topic:
// version byte, topic length (uvarint), topic, then the payload.
func encodeEnvelope(topic string, data []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(topic)+len(data))
	b = append(b, envelopeVersion)
	b = binary.AppendUvarint(b, uint64(len(topic)))
	b = append(b, topic...)
	return append(b, data...)
}

// decodeEnvelope returns the topic and payload of a group message. The
// payload aliases b.
func decodeEnvelope(b []byte) (topic string, data []byte, err error) {
	if len(b) == 0 || b[0] != envelopeVersion {
		return "", nil, errEnvelope
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || k != len(binary.AppendUvarint(nil, n)) {
		return "", nil, fmt.Errorf("%w: bad topic length", errEnvelope)
	}
	rest := b[1+k:]
	if n > MaxTopic || n > uint64(len(rest)) {
		return "", nil, fmt.Errorf("%w: topic of %d bytes", errEnvelope, n)
	}
	t := rest[:n]
	if !utf8.Valid(t) {
		return "", nil, fmt.Errorf("%w: topic is not UTF-8", errEnvelope)
	}
	return string(t), rest[n:], nil
}
