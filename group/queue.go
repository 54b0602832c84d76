package group

import "sync"

// queue is an unbounded channel: the loop never blocks on a slow reader.
// A goroutine moves items to the channel only while some are waiting, so
// an idle queue costs none.
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

func newQueue[T any]() *queue[T] {
	return &queue[T]{out: make(chan T), drop: make(chan struct{})}
}

// push adds v at the end.
func (q *queue[T]) push(v T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
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
