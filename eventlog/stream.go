package eventlog

import (
	"bytes"
	"errors"
	"io"
	"sync"
)

// DefaultStreamBuffer is the default bound of a Stream's buffer, in bytes.
const DefaultStreamBuffer = 4 << 20

// Causes of the lines a Stream loses without writing them.
var (
	ErrStreamFull   = errors.New("the reader is too slow: the stream's buffer is full")
	ErrStreamClosed = errors.New("the stream is closed")
)

// Stream writes the lines of an event log to w from a goroutine of its
// own, so that whoever logs (a Writer that tees its lines to the stream,
// Writer.Tee) never waits on w: the lines wait in a buffer bounded in
// bytes. It is safe for concurrent use.
//
// Lines are lost, and counted as a Writer counts them (Err), when they do
// not fit in the buffer (ErrStreamFull: the reader is that far behind),
// when they are logged after Close (ErrStreamClosed), or when w fails. As
// in a Writer's log, no part of a line is left when w can be cut back,
// and the first line written after some were lost is preceded by a
// LogLost event saying how many. The lines waiting in the buffer are
// written in one write call, after the writes before them.
type Stream struct {
	mu     sync.Mutex
	work   sync.Cond // the goroutine waits for lines, or Close
	idle   sync.Cond // Flush waits for lines to be written
	out    lineWriter
	limit  int
	onLoss func(error)

	pend      []byte // lines waiting
	pendLines int
	first     Event  // the stamp of pend's first line
	holes     []hole // lines lost for lack of room, between lines of pend
	inflight  int    // bytes being written
	spare     []byte
	spareHole []hole
	dropped   int // lines lost for lack of room since the last line taken
	waiting   bool
	closed    bool
	queued    uint64 // lines taken into pend
	done      uint64 // of those, lines written or lost

	lines int   // lines given to the stream
	lost  int   // lines lost
	err   error // the first cause of a loss
	exit  chan struct{}
}

// hole is where lines were lost for lack of room: before the line at byte
// at of a batch, whose stamp is next.
type hole struct {
	at   int
	lost int
	next Event
}

// NewStream returns a Stream writing to w through a buffer of limit bytes
// (DefaultStreamBuffer if limit <= 0), and starts its goroutine. Close it
// to write what waits and end the goroutine.
func NewStream(w io.Writer, limit int) *Stream {
	if limit <= 0 {
		limit = DefaultStreamBuffer
	}
	s := &Stream{out: lineWriter{w: w}, limit: limit, exit: make(chan struct{})}
	s.work.L, s.idle.L = &s.mu, &s.mu
	go s.run()
	return s
}

// OnLoss sets f to be called, once, when the first line is lost, with the
// cause; it runs on the goroutine that logged the line (a line that did
// not fit) or on the stream's (a write error).
func (s *Stream) OnLoss(f func(err error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onLoss = f
}

// stamp is e's header, without its fields.
func stamp(e Event) Event { return Event{TS: e.TS, Node: e.Node, Inc: e.Inc, LC: e.LC} }

// add queues line, e's line with its newline, to be written.
func (s *Stream) add(e Event, line []byte) {
	s.mu.Lock()
	s.lines++
	var cause error
	switch {
	case s.closed:
		cause = ErrStreamClosed
	case len(s.pend)+s.inflight+len(line) > s.limit:
		cause = ErrStreamFull
		s.dropped++
	default:
		if s.dropped > 0 {
			s.holes = append(s.holes, hole{at: len(s.pend), lost: s.dropped, next: stamp(e)})
			s.dropped = 0
		}
		if len(s.pend) == 0 {
			s.first = stamp(e)
		}
		s.pend = append(s.pend, line...)
		s.pendLines++
		s.queued++
		if s.waiting {
			s.work.Signal()
		}
		s.mu.Unlock()
		return
	}
	report := s.loseLocked(1, cause)
	s.mu.Unlock()
	if report != nil {
		report(cause)
	}
}

// loseLocked counts n lines lost by cause and returns the function to
// report the first loss with, if this is it.
func (s *Stream) loseLocked(n int, cause error) func(error) {
	s.lost += n
	if s.err == nil && n > 0 {
		s.err = cause
		return s.onLoss
	}
	return nil
}

func (s *Stream) run() {
	defer close(s.exit)
	s.mu.Lock()
	for {
		for len(s.pend) == 0 {
			if s.closed {
				s.mu.Unlock()
				return
			}
			s.waiting = true
			s.work.Wait()
			s.waiting = false
		}
		batch, holes, first, n, firstErr := s.pend, s.holes, s.first, s.pendLines, s.err
		s.pend, s.holes, s.pendLines, s.inflight = s.spare[:0], s.spareHole[:0], 0, len(batch)
		s.mu.Unlock()
		lost, err := s.write(batch, holes, first, firstErr)
		s.mu.Lock()
		s.spare, s.spareHole, s.inflight = batch[:0], holes[:0], 0
		s.done += uint64(n)
		report := s.loseLocked(lost, err)
		s.idle.Broadcast()
		if report != nil {
			s.mu.Unlock()
			report(err)
			s.mu.Lock()
		}
	}
}

// write writes a batch of lines, in one write call unless lines were lost
// for lack of room between them, and returns how many it lost and the
// first error.
func (s *Stream) write(batch []byte, holes []hole, first Event, firstErr error) (lost int, err error) {
	from := 0
	for i := 0; i <= len(holes); i++ {
		to := len(batch)
		if i < len(holes) {
			to = holes[i].at
		}
		if seg := batch[from:to]; len(seg) > 0 {
			l, e := s.out.write(first, seg, bytes.Count(seg, []byte{'\n'}), firstErr)
			lost += l
			if err == nil && e != nil {
				err = e
			}
			if firstErr == nil {
				firstErr = e
			}
		}
		if i < len(holes) {
			s.out.gap += holes[i].lost
			first, from = holes[i].next, to
		}
	}
	return lost, err
}

// Flush waits until the lines given to the stream so far are written (or
// lost). It waits as long as w takes to accept them.
func (s *Stream) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for target := s.queued; s.done < target; {
		s.idle.Wait()
	}
}

// Close writes the lines waiting, ends the stream's goroutine and returns
// Err. Lines given to the stream afterwards are lost (ErrStreamClosed).
// It does not close w.
func (s *Stream) Close() error {
	s.mu.Lock()
	s.closed = true
	s.work.Signal()
	s.mu.Unlock()
	<-s.exit
	return s.Err()
}

// Err returns a *LostError if any line was lost, else nil.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost == 0 {
		return nil
	}
	return &LostError{Lost: s.lost, Lines: s.lines, Err: s.err}
}
