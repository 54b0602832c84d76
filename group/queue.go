package group

import "sync"

// queue is an unbounded channel: the loop never blocks on a slow reader.
// Items go straight into the channel's buffer while it has room; beyond
// it, a goroutine moves them while some are waiting, so an idle queue, or
// one read as fast as it fills, costs none.
type queue[T any] struct {
	mu        sync.Mutex
	items     []T
	running   bool // a pump goroutine is moving items
	closed    bool // close was called: out closes once items are moved
	outClosed bool
	out       chan T
	drop      chan struct{} // closed by discard
	dropped   sync.Once
}

// queueBuffer is the room in a queue's channel.
const queueBuffer = 256

func newQueue[T any]() *queue[T] {
	return &queue[T]{out: make(chan T, queueBuffer), drop: make(chan struct{})}
}

// push adds v at the end.
func (q *queue[T]) push(v T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if !q.running && len(q.items) == 0 {
		select {
		case q.out <- v:
			return
		default:
		}
	}
	q.items = append(q.items, v)
	q.kick()
}

// close ends the stream after what is queued.
func (q *queue[T]) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.kick()
}

// discard drops what is queued, and what is pushed later.
func (q *queue[T]) discard() { q.dropped.Do(func() { close(q.drop) }) }

// kick starts the pump unless it runs; q.mu is held.
func (q *queue[T]) kick() {
	if !q.running && !q.outClosed {
		q.running = true
		go q.pump()
	}
}

func (q *queue[T]) pump() {
	for {
		q.mu.Lock()
		items := q.items
		q.items = nil
		if len(items) == 0 {
			if q.closed {
				q.outClosed = true
				close(q.out)
			}
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		for _, v := range items {
			select {
			case q.out <- v:
			case <-q.drop:
			}
		}
	}
}
