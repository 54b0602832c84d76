package pubsub

import "github.com/conclave/conclave/pubsub/envelope"

// MaxTopic bounds a topic's length in bytes.
const MaxTopic = envelope.MaxTopic
