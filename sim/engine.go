package sim

import (
	"math/rand/v2"
	"time"
)

// engine is what the Net runs on: a simulated clock, a queue of timed
// events and the seeded random source that decides every delay and race.
type engine struct {
	rng      *rand.Rand
	now      time.Duration
	seq      uint64
	queue    queue
	min, max time.Duration // bounds of a one-way delay
}

func newEngine(seed uint64, min, max time.Duration) engine {
	return engine{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), min: min, max: max}
}

// Now returns the simulated time.
func (e *engine) Now() time.Duration { return e.now }

// RunFor advances simulated time by d.
func (e *engine) RunFor(d time.Duration) { e.RunUntil(e.now+d, nil) }

// RunUntil runs until simulated time t or until done returns true (checked
// after every event), whichever comes first. It reports whether done did.
func (e *engine) RunUntil(t time.Duration, done func() bool) bool {
	for len(e.queue) > 0 && e.queue[0].at <= t {
		it := e.queue.pop()
		e.now = it.at
		it.f()
		if done != nil && done() {
			return true
		}
	}
	if e.now < t {
		e.now = t
	}
	return done != nil && done()
}

// after schedules f at now+d.
func (e *engine) after(d time.Duration, f func()) { e.at(e.now+d, f) }

// at schedules f at time t, or now if t has passed; events at the same
// time run in the order scheduled.
func (e *engine) at(t time.Duration, f func()) {
	t = max(t, e.now)
	e.seq++
	e.queue.push(item{at: t, seq: e.seq, f: f})
}

// jitter returns a random one-way delay within the bounds.
func (e *engine) jitter() time.Duration {
	d := e.min
	if span := e.max - e.min; span > 0 {
		d += time.Duration(e.rng.Int64N(int64(span) + 1))
	}
	return d
}

// item is an event of the queue: f runs at at; seq orders events of the
// same time in the order they were scheduled.
type item struct {
	at  time.Duration
	seq uint64
	f   func()
}

func (a item) before(b item) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

// queue is a binary min-heap of items by (at, seq).
type queue []item

func (q *queue) push(it item) {
	*q = append(*q, it)
	h := *q
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].before(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *queue) pop() item {
	h := *q
	it := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = item{}
	h = h[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h[l].before(h[m]) {
			m = l
		}
		if r < n && h[r].before(h[m]) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return it
}
