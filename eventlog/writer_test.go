package eventlog

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fullAfter writes up to room bytes to w, then fails with ENOSPC, as a
// file on a disk that fills up.
type fullAfter struct {
	w    interface{ Write([]byte) (int, error) }
	room int
}

func (f *fullAfter) Write(p []byte) (int, error) {
	if len(p) <= f.room {
		f.room -= len(p)
		return f.w.Write(p)
	}
	n, _ := f.w.Write(p[:f.room])
	f.room -= n
	return n, &os.PathError{Op: "write", Path: "log", Err: syscall.ENOSPC}
}

// fullFile is a real file that fills up: a Writer can cut it back.
type fullFile struct {
	fullAfter
	*os.File
}

func (f *fullFile) Write(p []byte) (int, error) { return f.fullAfter.Write(p) }

func newTestWriter(w interface{ Write([]byte) (int, error) }) *Writer {
	t0 := time.Unix(100, 0)
	return NewWriter(w, "peer-0", 1, &Clock{}, func() time.Time { t0 = t0.Add(time.Millisecond); return t0 })
}

// TestWriterNeverLeavesHalfALine fills a file in the middle of a line:
// the part written is cut back, the lines lost are counted and reported
// once, and the first line written afterwards is preceded by log_lost.
func TestWriterNeverLeavesHalfALine(t *testing.T) {
	f, err := Create(t.TempDir(), "peer-0")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	disk := &fullFile{fullAfter{w: f, room: 150}, f}
	w := newTestWriter(disk)
	var reports []error
	w.OnLoss(func(err error) { reports = append(reports, err) })
	for i := range 4 { // about 80 bytes a line: the second line does not fit
		w.Log("step", map[string]any{"i": i})
	}
	disk.room = 1 << 20 // space again
	w.Log("step", map[string]any{"i": 4})

	events, bad, err := ReadFile(f.Name())
	if err != nil || bad != 0 {
		t.Fatalf("read back: %d unreadable lines, %v", bad, err)
	}
	var got []string
	for _, e := range events {
		i, _ := e.Int("i")
		if e.Ev == LogLost {
			n, _ := e.Int(FieldLines)
			got = append(got, "lost:"+strings.Repeat("x", n))
			if !strings.Contains(e.Str(FieldError), "no space left") {
				t.Errorf("log_lost error %q", e.Str(FieldError))
			}
			continue
		}
		got = append(got, string(rune('0'+i)))
	}
	if strings.Join(got, " ") != "0 lost:xxx 4" {
		t.Errorf("the log holds %q, want 0, a log_lost of 3 lines, 4", got)
	}
	if len(reports) != 1 || !errors.Is(reports[0], syscall.ENOSPC) {
		t.Errorf("reported %v, want the first error once", reports)
	}
	var lost *LostError
	if err := w.Err(); !errors.As(err, &lost) || lost.Lost != 3 || lost.Lines != 5 || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Err() = %v, want 3 of 5 lines lost by ENOSPC", err)
	}
	if want := "3 of 5 lines lost"; !strings.Contains(w.Err().Error(), want) {
		t.Errorf("Err() = %q, want it to say %q", w.Err(), want)
	}
}

// TestWriterStartsANewLineAfterATornOne writes to a destination that
// cannot be cut back: the torn line stays, but the next line starts on a
// line of its own, so only the torn one is unreadable.
func TestWriterStartsANewLineAfterATornOne(t *testing.T) {
	var b bytes.Buffer
	disk := &fullAfter{w: &b, room: 100}
	w := newTestWriter(disk)
	w.Log("step", map[string]any{"i": 0})
	w.Log("step", map[string]any{"i": 1}) // torn
	disk.room = 1 << 20
	w.Log("step", map[string]any{"i": 2})
	events, bad, _ := Read(bytes.NewReader(b.Bytes()))
	if bad != 1 || len(events) != 3 || events[1].Ev != LogLost || events[2].Ev != "step" {
		t.Fatalf("read %d events, %d unreadable, want step, log_lost, step and the torn line:\n%s", len(events), bad, b.Bytes())
	}
	if err := w.Err(); err == nil || !strings.Contains(err.Error(), "1 of 3 lines lost") {
		t.Errorf("Err() = %v", err)
	}
}

func TestWriterWithoutLossHasNoError(t *testing.T) {
	var b bytes.Buffer
	w := newTestWriter(&b)
	w.OnLoss(func(err error) { t.Errorf("reported a loss: %v", err) })
	w.Log("step", nil)
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
}
