package eventlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// gate is a destination whose writes wait until the test opens it; each
// write is announced on entered first.
type gate struct {
	entered chan struct{}
	open    chan struct{}
	mu      sync.Mutex
	b       bytes.Buffer
	writes  int
}

func newGate() *gate { return &gate{entered: make(chan struct{}, 100), open: make(chan struct{})} }

func (g *gate) Write(p []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writes++
	return g.b.Write(p)
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.String()
}

// lineLen is the length of line k that newTestWriter writes, its
// newline included: its clock moves 1 ms a line.
func lineLen(k int, ev string, f map[string]any) int {
	ts := time.Unix(100, 0).Add(time.Duration(k+1) * time.Millisecond)
	b, _ := AppendJSON(nil, Event{TS: ts, Node: "peer-0", Inc: 1, LC: uint64(ts.UnixMicro()), Ev: ev, Fields: f})
	return len(b) + 1
}

// steps reads a log of "step" events back as "0 1 lost:2 4", say.
func steps(t *testing.T, log string) (string, int) {
	t.Helper()
	events, bad, err := Read(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		switch e.Ev {
		case LogLost:
			n, _ := e.Int(FieldLines)
			got = append(got, fmt.Sprintf("lost:%d", n))
		case "step":
			i, _ := e.Int("i")
			got = append(got, fmt.Sprint(i))
		default:
			got = append(got, e.Ev)
		}
	}
	return strings.Join(got, " "), bad
}

// TestStreamFullCountsLostLines stalls the reader of a stream whose buffer
// holds three lines: the lines that do not fit are lost and counted,
// reported once, and the first line written afterwards is preceded by
// log_lost. The file log of the same writer loses nothing.
func TestStreamFullCountsLostLines(t *testing.T) {
	g := newGate()
	var file bytes.Buffer
	w := newTestWriter(&file)
	s := NewStream(g, 3*lineLen(0, "step", map[string]any{"i": 0})+10) // each step's line is as long
	var reports []error
	s.OnLoss(func(err error) { reports = append(reports, err) })
	w.Tee(s)

	w.Log("step", map[string]any{"i": 0})
	<-g.entered // line 0 is being written, and counts in the buffer
	for i := 1; i <= 5; i++ {
		w.Log("step", map[string]any{"i": i}) // 1 and 2 fit; 3, 4 and 5 do not
	}
	close(g.open)
	s.Flush()
	w.Log("step", map[string]any{"i": 6})
	if err := s.Close(); err == nil {
		t.Fatal("Close reported no loss")
	}

	if got, bad := steps(t, g.String()); got != "0 1 2 lost:3 6" || bad != 0 {
		t.Errorf("the stream holds %q (%d unreadable lines), want 0 1 2 lost:3 6", got, bad)
	}
	if got, _ := steps(t, file.String()); got != "0 1 2 3 4 5 6" {
		t.Errorf("the log holds %q, want every step", got)
	}
	if len(reports) != 1 || !errors.Is(reports[0], ErrStreamFull) {
		t.Errorf("reported %v, want ErrStreamFull once", reports)
	}
	var lost *LostError
	if err := s.Err(); !errors.As(err, &lost) || lost.Lost != 3 || lost.Lines != 7 || !errors.Is(err, ErrStreamFull) {
		t.Errorf("Err() = %v, want 3 of 7 lines lost for a full buffer", err)
	}
	if w.Err() != nil {
		t.Errorf("the log lost lines: %v", w.Err())
	}
	w.Log("step", map[string]any{"i": 7})
	if err := s.Err(); !errors.As(err, &lost) || lost.Lost != 4 || !strings.Contains(err.Error(), "4 of 8 lines lost") {
		t.Errorf("after Close, Err() = %v, want the line logged after Close lost too", err)
	}
}

// TestStreamWriteFailureCountsLostLines writes a stream to a device that
// is full: every line is lost, counted and reported once.
func TestStreamWriteFailureCountsLostLines(t *testing.T) {
	var b bytes.Buffer
	s := NewStream(&fullAfter{w: &b, room: 0}, 0)
	var mu sync.Mutex
	var reports []error
	s.OnLoss(func(err error) { mu.Lock(); reports = append(reports, err); mu.Unlock() })
	w := newTestWriter(nil)
	w.Tee(s)
	for i := range 10 {
		w.Log("step", map[string]any{"i": i})
	}
	err := s.Close()
	var lost *LostError
	if !errors.As(err, &lost) || lost.Lost != 10 || lost.Lines != 10 || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Close() = %v, want 10 of 10 lines lost by ENOSPC", err)
	}
	if len(reports) != 1 || !errors.Is(reports[0], syscall.ENOSPC) {
		t.Errorf("reported %v, want the first error once", reports)
	}
	if b.Len() != 0 {
		t.Errorf("wrote %q to a full device", b.String())
	}
}

// gatedFull is a destination that fills up (fullAfter) and whose writes
// wait until the test opens the gate.
type gatedFull struct {
	*gate
	fullAfter
}

func (g *gatedFull) Write(p []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.open
	return g.fullAfter.Write(p)
}

// gatedFullFile is a gatedFull file, which a stream can cut back.
type gatedFullFile struct {
	*gatedFull
	*os.File
}

func (g gatedFullFile) Write(p []byte) (int, error) { return g.gatedFull.Write(p) }

// TestStreamKeepsWholeLinesOfABatch cuts the write of three waiting lines
// in the middle of the second: on a file the part is cut back, elsewhere
// the next write starts on a line of its own. Either way the first line
// is kept, two are counted lost, and log_lost comes before the next line.
func TestStreamKeepsWholeLinesOfABatch(t *testing.T) {
	for _, file := range []bool{true, false} {
		t.Run(fmt.Sprint("file=", file), func(t *testing.T) {
			g := &gatedFull{gate: newGate()}
			var dst io.Writer = g
			var read func() string
			if file {
				f, err := Create(t.TempDir(), "s")
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				g.w, dst = f, gatedFullFile{g, f}
				read = func() string { b, _ := os.ReadFile(f.Name()); return string(b) }
			} else {
				var b bytes.Buffer
				g.w, read = &b, b.String
			}
			s := NewStream(dst, 0)
			w := newTestWriter(nil)
			w.Tee(s)
			w.Log("start", nil)
			<-g.entered // the start line is being written: the next three wait together
			for i := range 3 {
				w.Log("step", map[string]any{"i": i})
			}
			g.room = lineLen(0, "start", nil) + lineLen(1, "step", map[string]any{"i": 0}) + lineLen(2, "step", map[string]any{"i": 1})/2
			close(g.open)
			s.Flush()
			g.room = 1 << 20
			w.Log("step", map[string]any{"i": 3})
			err := s.Close()
			var lost *LostError
			if !errors.As(err, &lost) || lost.Lost != 2 || lost.Lines != 5 || !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("Close() = %v, want 2 of 5 lines lost by ENOSPC", err)
			}
			if n := len(g.entered); n != 2 {
				t.Errorf("%d more writes after the first, want 2: the batch and the last line", n)
			}
			wantBad := 1 // the torn line
			if file {
				wantBad = 0
			}
			if got, bad := steps(t, read()); got != "start 0 lost:2 3" || bad != wantBad {
				t.Errorf("the stream holds %q with %d unreadable lines, want start 0 lost:2 3 with %d:\n%s", got, bad, wantBad, read())
			}
		})
	}
}

// TestStreamWritesEverythingAtClose logs many lines while the reader
// stalls: Close writes them all, in order.
func TestStreamWritesEverythingAtClose(t *testing.T) {
	g := newGate()
	s := NewStream(g, 0)
	w := newTestWriter(nil)
	w.Tee(s)
	const n = 2000
	for i := range n {
		w.Log("step", map[string]any{"i": i})
	}
	<-g.entered
	close(g.open)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	events, bad, _ := Read(strings.NewReader(g.String()))
	if bad != 0 || len(events) != n {
		t.Fatalf("%d events, %d unreadable; want %d", len(events), bad, n)
	}
	for i, e := range events {
		if k, _ := e.Int("i"); k != i {
			t.Fatalf("line %d is step %d", i, k)
		}
	}
	if g.writes >= n {
		t.Errorf("%d writes for %d lines: the lines that wait should go in one write", g.writes, n)
	}
}
