package sim

import (
	"container/heap"
	"math/rand/v2"
	"time"
)

// engine is what both simulators run on: a simulated clock, a queue of
// timed events and the seeded random source that decides every delay.
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
		it := heap.Pop(&e.queue).(*item)
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

// at schedules f at time t; events at the same time run in the order
// scheduled.
func (e *engine) at(t time.Duration, f func()) {
	e.seq++
	heap.Push(&e.queue, &item{at: t, seq: e.seq, f: f})
}

// jitter returns a random one-way delay within the bounds.
func (e *engine) jitter() time.Duration {
	d := e.min
	if span := e.max - e.min; span > 0 {
		d += time.Duration(e.rng.Int64N(int64(span) + 1))
	}
	return d
}
