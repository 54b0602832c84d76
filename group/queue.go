package group

import "sync"

// queue is an unbounded channel: the loop never blocks on a slow reader.
type queue[T any] struct {
	mu      sync.Mutex
	items   []T
	wake    chan struct{}
	out     chan T
	closed  bool
	drop    chan struct{} // closed by discard
	dropped sync.Once
}

func newQueue[T any]() *queue[T] {
	q := &queue[T]{wake: make(chan struct{}, 1), out: make(chan T), drop: make(chan struct{})}
	go q.run()
	return q
}

// discard drops what is queued and ends the queue once it is closed.
func (q *queue[T]) discard() { q.dropped.Do(func() { close(q.drop) }) }

func (q *queue[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue[T]) run() {
	for {
		q.mu.Lock()
		items, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		for _, v := range items {
			select {
			case q.out <- v:
			case <-q.drop:
			}
		}
		if closed && len(items) == 0 {
			close(q.out)
			return
		}
		if len(items) == 0 {
			select {
			case <-q.wake:
			case <-q.drop:
				q.mu.Lock()
				closed = q.closed
				q.mu.Unlock()
				if !closed {
					<-q.wake // the member is still running: wait for it to close
				}
			}
		}
	}
}
