package eventlog

import (
	"bufio"
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
// most its last line incomplete.
//
// A line that cannot be written is lost, and counted: the log is never
// left with part of a line when the destination can be cut back (a file),
// and otherwise the next line starts on a line of its own. The first line
// written after some were lost is preceded by a LogLost event saying how
// many.
type Writer struct {
	mu     sync.Mutex
	w      io.Writer
	node   string
	inc    uint64
	clock  *Clock
	now    func() time.Time
	onLoss func(error)
	lines  int   // lines written or lost
	lost   int   // lines lost
	gap    int   // lines lost since the last line written
	err    error // the first write error
	torn   bool  // part of a line stayed: start the next on a line of its own
}

// NewWriter returns a Writer for the process node of incarnation inc that
// stamps events from clock; now supplies wall time (nil means time.Now).
func NewWriter(w io.Writer, node string, inc uint64, clock *Clock, now func() time.Time) *Writer {
	if now == nil {
		now = time.Now
	}
	return &Writer{w: w, node: node, inc: inc, clock: clock, now: now}
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
	line, err := json.Marshal(e)
	if err != nil {
		line, _ = json.Marshal(Event{TS: e.TS, Node: e.Node, Inc: e.Inc, LC: e.LC, Ev: LogError,
			Fields: map[string]any{FieldError: err.Error(), FieldEvent: e.Ev}})
	}
	w.mu.Lock()
	var buf []byte
	if w.torn {
		buf = append(buf, '\n')
	}
	if w.gap > 0 {
		// The LogLost line goes with the line, in the same write, and
		// takes its stamp: both are written, or neither.
		lost, _ := json.Marshal(Event{TS: e.TS, Node: e.Node, Inc: e.Inc, LC: e.LC, Ev: LogLost,
			Fields: map[string]any{FieldLines: w.gap, FieldError: w.err.Error()}})
		buf = append(append(buf, lost...), '\n')
	}
	buf = append(append(buf, line...), '\n')
	w.lines++
	n, err := w.w.Write(buf)
	if err == nil && n < len(buf) {
		err = io.ErrShortWrite
	}
	if err == nil {
		w.torn, w.gap = false, 0
		w.mu.Unlock()
		return
	}
	if n > 0 && !cutBack(w.w, n) {
		w.torn = true
	}
	w.lost++
	w.gap++
	var report func(error)
	if w.err == nil {
		w.err, report = err, w.onLoss
	}
	w.mu.Unlock()
	if report != nil {
		report(err)
	}
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

// LostError reports lines a Writer could not write.
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
