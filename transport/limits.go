package transport

import (
	"sync/atomic"
	"time"

	"github.com/conclave/conclave/wire"
)

// Defaults of Limits.
const (
	// DefaultHandshake bounds the wait for the Hello that opens an
	// accepted connection, and for the answer to a dialer's Hello when
	// the dialer gives no timeout of its own.
	DefaultHandshake = 5 * time.Second
	// DefaultIdle closes a connection that brought no byte for this long.
	// Peers and group members send heartbeats many times more often; the
	// limit is for connections that were abandoned or never meant to talk.
	DefaultIdle = time.Minute
	// DefaultSendQueue is how many frames may wait to be written on one
	// connection. A peer that lets its queue fill is closed: it is far
	// behind.
	DefaultSendQueue = 1024
	// HelloMax bounds the first frame of a connection, before anyone
	// knows what the connection is for.
	HelloMax = 8 << 10
	// FlushTimeout bounds how long a graceful close waits for queued
	// frames to be written and for the other end to close.
	FlushTimeout = time.Second
	// DefaultQueuedBytes bounds the bytes of the frames waiting to be
	// written on one connection.
	DefaultQueuedBytes = 64 << 20
	// DefaultBudget is the memory all the connections of a host may hold
	// for frames larger than 64 KiB while they arrive.
	DefaultBudget = 256 << 20
)

// Limits bound what one connection may cost. Zero fields take the
// defaults above; a negative Idle means no idle limit.
type Limits struct {
	// MaxFrame limits the payload of a frame received after the
	// handshake (0: wire.DefaultMaxFrame). Memory grows with the bytes
	// received, never with a length a frame declares.
	MaxFrame int
	// Idle closes the connection when nothing arrives for this long
	// (give or take an eighth of it).
	Idle time.Duration
	// SendQueue is the number of frames that may wait to be written.
	SendQueue int
	// QueuedBytes bounds the bytes of the frames waiting to be written; a
	// connection whose queue is full is closed.
	QueuedBytes int
	// Budget, if set, is the memory shared with other connections for
	// large frames while they arrive (a host's).
	Budget *Budget
}

func (l Limits) withDefaults() Limits {
	if l.MaxFrame <= 0 {
		l.MaxFrame = wire.DefaultMaxFrame
	}
	if l.Idle == 0 {
		l.Idle = DefaultIdle
	}
	if l.SendQueue <= 0 {
		l.SendQueue = DefaultSendQueue
	}
	if l.QueuedBytes <= 0 {
		l.QueuedBytes = DefaultQueuedBytes
	}
	return l
}

// Budget is memory shared by the readers of several connections, for
// frames larger than what each keeps of its own (wire.Budget). It is safe
// for concurrent use.
type Budget struct {
	max  int64
	used atomic.Int64
}

// NewBudget returns a budget of max bytes.
func NewBudget(max int64) *Budget { return &Budget{max: max} }

// Reserve takes n bytes, or reports false if fewer are left.
func (b *Budget) Reserve(n int) bool {
	if b.used.Add(int64(n)) > b.max {
		b.used.Add(-int64(n))
		return false
	}
	return true
}

// Release gives n bytes back.
func (b *Budget) Release(n int) { b.used.Add(-int64(n)) }

// Used is the number of bytes reserved now.
func (b *Budget) Used() int64 { return b.used.Load() }
