package host

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// Never is the deadline of a machine with nothing to do.
const Never = time.Duration(1<<63 - 1)

// Machine is a pure state machine: inputs arrive with Step, stamped with
// the time since the loop started; what it wants done comes back from
// Ready; Deadline says when it next needs its Tick input.
type Machine[In, Out any] interface {
	Step(now time.Duration, in In) error
	Ready() []Out
	Deadline() time.Duration
}

// Clock is the time source of a loop.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is a Clock's timer.
type Timer interface {
	C() <-chan time.Time
	// Reset makes the timer fire after d, whether or not it fired.
	Reset(d time.Duration)
	Stop()
}

// RealClock is the system clock.
type RealClock struct{}

// Now returns the current time.
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time   { return t.t.C }
func (t realTimer) Reset(d time.Duration) { t.t.Reset(d) }
func (t realTimer) Stop()                 { t.t.Stop() }

// Defaults of LoopConfig.
const (
	DefaultInbox = 4096
	DefaultBatch = 256
)

// LoopConfig configures a Loop.
type LoopConfig[In, Out any] struct {
	// Tick is the input stepped when the machine's deadline comes.
	Tick In
	// Apply carries out one effect, on the loop goroutine.
	Apply func(Out)
	// AfterBatch, if set, runs on the loop goroutine after the effects of
	// each batch of inputs (to publish a status snapshot, say).
	AfterBatch func()
	// OnStop, if set, runs on the loop goroutine when the loop ends.
	OnStop func()
	// Clock is the time source (default RealClock).
	Clock Clock
	// Name and Inc name the machine's process in its events.
	Name string
	Inc  uint64
	// LogTo receives the machine's event log (nil: none is written).
	LogTo io.Writer
	// LogLoss, if set, is called once, with the write error, when the
	// first line cannot be written to LogTo; by default the loop says so
	// on standard error. LogErr counts the lines lost.
	LogLoss func(error)
	// Stream, if set, receives every line of the machine's event log, as
	// encoded once for LogTo (or for Stream alone, without LogTo); its own
	// goroutine writes them. It counts its own losses (Stream.Err); the
	// loop neither flushes nor closes it.
	Stream *eventlog.Stream
	// Observe, if set, sees every event logged, on the loop goroutine; it
	// must not block.
	Observe func(eventlog.Event)
	// Inbox is how many posted inputs may wait (default DefaultInbox);
	// posting to a full inbox waits.
	Inbox int
	// Batch is how many waiting inputs are stepped before the effects are
	// collected (default DefaultBatch).
	Batch int
	// FlushEach collects the effects after every input instead, as the
	// simulator drives a machine that does not batch (the peer core).
	FlushEach bool
}

// Loop drives one machine from one goroutine. Inputs are posted as
// functions run on that goroutine (Do), which call Step; the effects are
// collected after each batch of inputs and after every Tick.
type Loop[In, Out any] struct {
	m     Machine[In, Out]
	cfg   LoopConfig[In, Out]
	t0    time.Time
	lc    eventlog.Clock
	log   *eventlog.Writer
	inbox chan posted
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// NewLoop returns a loop for m, not started.
func NewLoop[In, Out any](m Machine[In, Out], cfg LoopConfig[In, Out]) *Loop[In, Out] {
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.Inbox <= 0 {
		cfg.Inbox = DefaultInbox
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	l := &Loop[In, Out]{m: m, cfg: cfg, inbox: make(chan posted, cfg.Inbox),
		stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.LogTo != nil || cfg.Stream != nil {
		l.log = eventlog.NewWriter(cfg.LogTo, cfg.Name, cfg.Inc, &l.lc, cfg.Clock.Now)
		if cfg.Stream != nil {
			l.log.Tee(cfg.Stream)
		}
		loss := cfg.LogLoss
		if loss == nil {
			loss = func(err error) {
				fmt.Fprintf(os.Stderr, "%s: cannot write the event log: %v: the lines that cannot be written are lost, and counted\n", cfg.Name, err)
			}
		}
		l.log.OnLoss(loss)
	}
	return l
}

// Start runs the loop's goroutine; first runs on it before anything
// posted (to step the machine's first inputs, say).
func (l *Loop[In, Out]) Start(first func()) {
	l.t0 = l.cfg.Clock.Now()
	go l.run(first)
}

// Do runs f on the loop goroutine, after what was posted before. It waits
// while the inbox is full, and reports false, without running f, if the
// loop has stopped.
func (l *Loop[In, Out]) Do(f func()) bool { return l.DoN(1, f) }

// DoN is Do for an f that steps n inputs (a batch of messages): it counts
// as n of the inputs a batch may hold (LoopConfig.Batch), so that a batch
// takes no longer for being posted in fewer calls.
func (l *Loop[In, Out]) DoN(n int, f func()) bool {
	select {
	case <-l.stop:
		return false
	default:
	}
	select {
	case l.inbox <- posted{f, n}:
		return true
	case <-l.stop:
		return false
	}
}

// posted is an f posted with Do, counting as n inputs.
type posted struct {
	f func()
	n int
}

// Step feeds in to the machine now. Call it only on the loop goroutine.
func (l *Loop[In, Out]) Step(in In) error { return l.m.Step(l.Now(), in) }

// Now is the time since the loop started, as the machine sees it.
func (l *Loop[In, Out]) Now() time.Duration { return l.cfg.Clock.Now().Sub(l.t0) }

// Wall is the clock's current time.
func (l *Loop[In, Out]) Wall() time.Time { return l.cfg.Clock.Now() }

// Lamport is the machine's Lamport clock, for stamping what it sends and
// witnessing what it receives.
func (l *Loop[In, Out]) Lamport() *eventlog.Clock { return &l.lc }

// Log writes an event to the machine's log and stream, and shows it to the
// observer.
func (l *Loop[In, Out]) Log(ev string, fields map[string]any) {
	if l.log == nil && l.cfg.Observe == nil {
		return
	}
	var e eventlog.Event
	if l.log != nil {
		e = l.log.Log(ev, fields)
	} else {
		now := l.Wall()
		e = eventlog.Event{TS: now, Node: l.cfg.Name, Inc: l.cfg.Inc, LC: l.lc.Tick(now), Ev: ev, Fields: fields}
	}
	if l.cfg.Observe != nil {
		l.cfg.Observe(e)
	}
}

// Logging reports whether events go anywhere (a log, a stream or an
// observer).
func (l *Loop[In, Out]) Logging() bool { return l.log != nil || l.cfg.Observe != nil }

// LogErr returns the lines of the event log that could not be written, as
// an *eventlog.LostError, or nil.
func (l *Loop[In, Out]) LogErr() error {
	if l.log == nil {
		return nil
	}
	return l.log.Err()
}

// Flush collects and applies the machine's effects now. Call it only on
// the loop goroutine, when an effect must be carried out before the batch
// ends.
func (l *Loop[In, Out]) Flush() {
	for _, e := range l.m.Ready() {
		l.cfg.Apply(e)
	}
}

// Stop asks the loop to end after the batch it is running; Done is closed
// once it has, after OnStop. It does not wait, so the loop goroutine may
// call it.
func (l *Loop[In, Out]) Stop() {
	l.once.Do(func() { close(l.stop) })
}

// Done is closed when the loop has ended.
func (l *Loop[In, Out]) Done() <-chan struct{} { return l.done }

// run1 runs one posted input.
func (l *Loop[In, Out]) run1(f func()) {
	f()
	if l.cfg.FlushEach {
		l.Flush()
	}
}

func (l *Loop[In, Out]) run(first func()) {
	defer close(l.done)
	if l.cfg.OnStop != nil {
		defer l.cfg.OnStop()
	}
	timer := l.cfg.Clock.NewTimer(Never)
	defer timer.Stop()
	armed := time.Duration(-1) // the deadline the timer is set for; -1: none
	if first != nil {
		first()
	}
	for {
		l.Flush()
		if l.cfg.AfterBatch != nil {
			l.cfg.AfterBatch()
		}
		select {
		case <-l.stop:
			return
		default:
		}
		// Setting a timer costs more than most batches: only when the
		// deadline moved.
		if d := l.m.Deadline(); d != armed {
			armed = d
			if d == Never {
				timer.Reset(time.Hour)
			} else {
				timer.Reset(max(d-l.Now(), 0))
			}
		}
		select {
		case p := <-l.inbox:
			l.run1(p.f)
			// Drain what is queued before ending the batch.
		drain:
			for n := max(p.n, 1); n < l.cfg.Batch; {
				select {
				case p := <-l.inbox:
					l.run1(p.f)
					n += max(p.n, 1)
				default:
					break drain
				}
			}
		case <-timer.C():
			armed = -1
			l.Step(l.cfg.Tick)
		case <-l.stop:
			return
		}
	}
}
