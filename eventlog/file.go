package eventlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Writer appends events of one process to a log. It is safe for concurrent
// use. Each line is written with one write call, so a killed process leaves at
// most its last line incomplete. Each event is encoded once, into a buffer
// the Writer reuses; the same line can also go to a Stream (Tee).
//
// A line that cannot be written is lost, and counted: the log is never
// left with part of a line when the destination can be cut back (a file),
// and otherwise the next line starts on a line of its own. The first line
// written after some were lost is preceded by a LogLost event saying how
// many.
type Writer struct {
	mu     sync.Mutex
	out    lineWriter // its w is nil when lines only go to tee
	tee    *Stream
	node   string
	inc    uint64
	clock  *Clock
	now    func() time.Time
	onLoss func(error)
	buf    []byte // the line being written, reused
	lines  int    // lines written or lost
	lost   int    // lines lost
	err    error  // the first write error
}

// NewWriter returns a Writer for the process node of incarnation inc that
// stamps events from clock; now supplies wall time (nil means time.Now).
// w may be nil when the lines only go to a Stream (Tee).
func NewWriter(w io.Writer, node string, inc uint64, clock *Clock, now func() time.Time) *Writer {
	if now == nil {
		now = time.Now
	}
	return &Writer{out: lineWriter{w: w}, node: node, inc: inc, clock: clock, now: now}
}

// Tee sends every line written from now on to s as well, as it is
// encoded for the log: s writes it from its own goroutine, and counts
// its own losses (Stream.Err).
func (w *Writer) Tee(s *Stream) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tee = s
}

// OnLoss sets f to be called, once, when the first line is lost, with the
// write error; it runs on the goroutine that logged the line.
func (w *Writer) OnLoss(f func(err error)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.onLoss = f
}

// Log writes one event with a fresh Lamport stamp and returns it.
func (w *Writer) Log(ev string, fields map[string]any) Event {
	now := w.now()
	e := Event{TS: now, Node: w.node, Inc: w.inc, LC: w.clock.Tick(now), Ev: ev, Fields: fields}
	w.Write(e)
	return e
}

// Write writes e as it is. A line that cannot be written is counted, and
// Err reports it; logging never stops the process.
func (w *Writer) Write(e Event) {
	w.mu.Lock()
	line, err := AppendJSON(w.buf[:0], e)
	if err != nil {
		line, _ = AppendJSON(w.buf[:0], Event{TS: e.TS, Node: e.Node, Inc: e.Inc, LC: e.LC, Ev: LogError,
			Fields: map[string]any{FieldError: err.Error(), FieldEvent: e.Ev}})
	}
	line = append(line, '\n')
	w.buf = line[:0]
	if w.tee != nil {
		// First, so that the stream's goroutine writes it while this one
		// writes the log.
		w.tee.add(e, line)
	}
	if w.out.w == nil {
		w.mu.Unlock()
		return
	}
	w.lines++
	lost, err := w.out.write(e, line, 1, w.err)
	if lost == 0 {
		w.mu.Unlock()
		return
	}
	w.lost += lost
	var report func(error)
	if w.err == nil {
		w.err, report = err, w.onLoss
	}
	w.mu.Unlock()
	if report != nil {
		report(err)
	}
}

// lineWriter writes whole lines to w: it never leaves part of a line in
// a destination that can be cut back (a file); on one that cannot, the
// next write starts on a line of its own.
type lineWriter struct {
	w    io.Writer
	torn bool   // part of a line stayed: start the next on a line of its own
	gap  int    // lines lost since the last line written
	buf  []byte // a write with a newline or a LogLost line before it
}

// write writes data, n whole lines, with one write call. If lines were
// lost before, a LogLost line goes first, in the same write, with the
// stamp of first (the event of data's first line) and the error
// firstErr: it is written with a line of data, or not at all. write
// returns how many of the n lines were lost, and the error.
func (lw *lineWriter) write(first Event, data []byte, n int, firstErr error) (lost int, err error) {
	out, pre := data, 0
	if lw.torn || lw.gap > 0 {
		b := lw.buf[:0]
		if lw.torn {
			b = append(b, '\n')
		}
		if lw.gap > 0 {
			msg := "unknown"
			if firstErr != nil {
				msg = firstErr.Error()
			}
			b, _ = AppendJSON(b, Event{TS: first.TS, Node: first.Node, Inc: first.Inc, LC: first.LC, Ev: LogLost,
				Fields: map[string]any{FieldLines: lw.gap, FieldError: msg}})
			b = append(b, '\n')
		}
		pre = len(b)
		out = append(b, data...)
		lw.buf = out[:0]
	}
	k, err := lw.w.Write(out)
	if err == nil && k < len(out) {
		err = io.ErrShortWrite
	}
	if err == nil {
		lw.torn, lw.gap = false, 0
		return 0, nil
	}
	// Keep the lines of data written whole, and the LogLost line with
	// them; cut back the rest, or mark it torn.
	whole, end := 0, 0
	if k > pre {
		if i := bytes.LastIndexByte(out[pre:k], '\n'); i >= 0 {
			end = pre + i + 1
			whole = bytes.Count(out[pre:end], []byte{'\n'})
		}
	}
	if whole == 0 && lw.torn && k > 0 {
		end = 1 // the newline that ends the torn line
	}
	switch {
	case k > end && !cutBack(lw.w, k-end):
		lw.torn = true
	case end > 0:
		lw.torn = false
	}
	lost = n - whole
	if whole > 0 {
		lw.gap = lost
	} else {
		lw.gap += lost
	}
	return lost, err
}

// cutBack removes the last n bytes written to w, if w is a file, and
// reports whether it did.
func cutBack(w io.Writer, n int) bool {
	f, ok := w.(interface {
		io.Seeker
		Truncate(size int64) error
	})
	if !ok {
		return false
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil || end < int64(n) || f.Truncate(end-int64(n)) != nil {
		return false
	}
	// Without O_APPEND, the next write goes where the line began.
	_, err = f.Seek(end-int64(n), io.SeekStart)
	return err == nil
}

// LostError reports lines a Writer or a Stream could not write.
type LostError struct {
	Lost, Lines int   // lines lost, of lines logged
	Err         error // the first write error
}

func (e *LostError) Error() string {
	return fmt.Sprintf("%d of %d lines lost, the first by: %v", e.Lost, e.Lines, e.Err)
}

// Unwrap returns the first write error.
func (e *LostError) Unwrap() error { return e.Err }

// Err returns a *LostError if any line was lost, else nil.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lost == 0 {
		return nil
	}
	return &LostError{Lost: w.lost, Lines: w.lines, Err: w.err}
}

// Create opens (appending) the log file <dir>/<node>.jsonl, creating dir.
func Create(dir, node string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(filepath.Join(dir, node+".jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// Read parses an event log. Lines that do not parse (a line cut short by a
// killed process, say) are skipped and counted in bad.
func Read(r io.Reader) (events []Event, bad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var e Event
		if json.Unmarshal([]byte(line), &e) != nil {
			bad++
			continue
		}
		events = append(events, e)
	}
	return events, bad, sc.Err()
}

// ReadFile reads one log file.
func ReadFile(path string) ([]Event, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return Read(f)
}

// Merged file names written by MergeDir.
const (
	RunJSONL = "run.jsonl"
	RunText  = "run.log"
)

// ReadDir reads every *.jsonl log in dir except the merged run log.
func ReadDir(dir string) (events []Event, bad int, err error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, 0, err
	}
	sort.Strings(paths)
	for _, p := range paths {
		if filepath.Base(p) == RunJSONL {
			continue
		}
		ev, b, err := ReadFile(p)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", p, err)
		}
		events = append(events, ev...)
		bad += b
	}
	return events, bad, nil
}

// Sort puts events in causal order: by Lamport clock, ties by time, then
// node. The order within one process is kept.
func Sort(events []Event) {
	sort.SliceStable(events, func(i, j int) bool {
		a, b := events[i], events[j]
		if a.LC != b.LC {
			return a.LC < b.LC
		}
		if !a.TS.Equal(b.TS) {
			return a.TS.Before(b.TS)
		}
		return a.Node < b.Node
	})
}

// write writes m's events to dir/run.jsonl and dir/run.log.
func (m *Merged) write(dir string) error {
	if err := writeFile(filepath.Join(dir, RunJSONL), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, e := range m.Events {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, RunText), func(w io.Writer) error {
		if len(m.Runs) > 1 {
			fmt.Fprintf(w, "# run %d of the %d runs in this directory: %v\n# the others: %s\n", m.N, len(m.Runs), m.Run, m.Others())
		}
		if m.Bad > 0 {
			fmt.Fprintf(w, "# %d unreadable lines skipped\n", m.Bad)
		}
		if m.Lost > 0 {
			fmt.Fprintf(w, "# %d lines lost: their processes could not write them (log_lost)\n", m.Lost)
		}
		for _, e := range m.Events {
			if _, err := fmt.Fprintln(w, Format(e)); err != nil {
				return err
			}
		}
		return nil
	})
}

func writeFile(path string, fill func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	if err := fill(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Format renders an event as one readable line:
//
//	18:40:01.123456 peer-2     peer_down     peer=0 cause=conn_closed
func Format(e Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-10s %-14s", e.TS.UTC().Format("15:04:05.000000"), e.Node, e.Ev)
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := e.Fields[k]
		if s, ok := v.(string); ok && !strings.ContainsAny(s, " \t\"=") && s != "" {
			fmt.Fprintf(&b, " %s=%s", k, s)
			continue
		}
		j, _ := json.Marshal(v)
		fmt.Fprintf(&b, " %s=%s", k, j)
	}
	return b.String()
}
