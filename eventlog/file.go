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
type Writer struct {
	mu    sync.Mutex
	w     io.Writer
	node  string
	inc   uint64
	clock *Clock
	now   func() time.Time
	err   error
}

// NewWriter returns a Writer for the process node of incarnation inc that
// stamps events from clock; now supplies wall time (nil means time.Now).
func NewWriter(w io.Writer, node string, inc uint64, clock *Clock, now func() time.Time) *Writer {
	if now == nil {
		now = time.Now
	}
	return &Writer{w: w, node: node, inc: inc, clock: clock, now: now}
}

// Log writes one event with a fresh Lamport stamp and returns it.
func (w *Writer) Log(ev string, fields map[string]any) Event {
	now := w.now()
	e := Event{TS: now, Node: w.node, Inc: w.inc, LC: w.clock.Tick(now), Ev: ev, Fields: fields}
	w.Write(e)
	return e
}

// Write writes e as it is. The first write error is kept and returned by Err;
// logging never stops the process.
func (w *Writer) Write(e Event) {
	line, err := json.Marshal(e)
	if err != nil {
		line, _ = json.Marshal(Event{TS: e.TS, Node: e.Node, Inc: e.Inc, LC: e.LC, Ev: LogError,
			Fields: map[string]any{FieldError: err.Error(), FieldEvent: e.Ev}})
	}
	line = append(line, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.w.Write(line); err != nil && w.err == nil {
		w.err = err
	}
}

// Err returns the first write error.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
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

// MergeDir merges the logs in dir into dir/run.jsonl and the readable
// dir/run.log, and returns the merged events.
func MergeDir(dir string) ([]Event, error) {
	events, bad, err := ReadDir(dir)
	if err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("no events in %s/*.jsonl", dir)
	}
	Sort(events)
	if err := writeFile(filepath.Join(dir, RunJSONL), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, e := range events {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	err = writeFile(filepath.Join(dir, RunText), func(w io.Writer) error {
		if bad > 0 {
			fmt.Fprintf(w, "# %d unreadable lines skipped\n", bad)
		}
		for _, e := range events {
			if _, err := fmt.Fprintln(w, Format(e)); err != nil {
				return err
			}
		}
		return nil
	})
	return events, err
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
