package eventlog

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRoundTripAndKeyOrder(t *testing.T) {
	e := Event{TS: time.Date(2026, 11, 23, 18, 40, 1, 123456789, time.UTC), Node: "peer-2", Inc: 7, LC: 42,
		Ev: "peer_down", Fields: map[string]any{"peer": 0, "cause": "conn_closed", "alive": []int{1, 2}}}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ts":"2026-11-23T18:40:01.123456789Z","node":"peer-2","inc":7,"lc":42,"ev":"peer_down","alive":[1,2],"cause":"conn_closed","peer":0}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if p, ok := back.Int("peer"); !ok || p != 0 || back.Str("cause") != "conn_closed" || back.LC != 42 || back.Inc != 7 || !back.TS.Equal(e.TS) {
		t.Fatalf("read back %+v", back)
	}
}

func TestFieldsCannotShadowHeader(t *testing.T) {
	e := Event{TS: time.Unix(0, 0), Node: "n", Ev: "x", Fields: map[string]any{"inc": 99, "ev": "other"}}
	b, _ := json.Marshal(e)
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || back.Ev != "x" || back.Inc != 0 {
		t.Fatalf("%s -> %+v %v", b, back, err)
	}
}

func TestClockIsLamportAndFollowsTime(t *testing.T) {
	var c Clock
	t0 := time.UnixMicro(1000)
	a := c.Tick(t0)
	b := c.Tick(t0) // same instant: still increases
	if a != 1000 || b != 1001 {
		t.Fatalf("ticks %d %d", a, b)
	}
	// A message stamped far ahead pushes the clock past it.
	if r := c.Witness(5000, t0); r != 5001 {
		t.Fatalf("witness: %d", r)
	}
	// Physical time ahead of the clock wins.
	if r := c.Tick(time.UnixMicro(9000)); r != 9000 {
		t.Fatalf("tick after time moved: %d", r)
	}
}

func TestMergeDirOrdersCausallyAndSkipsTornLines(t *testing.T) {
	dir := t.TempDir()
	var ca, cb Clock
	fa, _ := Create(dir, "peer-0")
	fb, _ := Create(dir, "peer-1")
	now := time.Unix(100, 0)
	nowA := now
	wa := NewWriter(fa, "peer-0", 1, &ca, func() time.Time { return nowA })
	wb := NewWriter(fb, "peer-1", 1, &cb, func() time.Time { return now.Add(-time.Second) }) // clock behind
	sent := wa.Log("urgent_sent", map[string]any{"to": 1})
	cb.Witness(sent.LC, now.Add(-time.Second))
	wb.Log("urgent_recv", map[string]any{"from": 0})
	nowA = now.Add(time.Second)
	wa.Log("stop", nil)            // peer 0 lives on past the receipt: one run
	fb.WriteString(`{"ts":"2026-`) // a line cut short by a kill
	fa.Close()
	fb.Close()
	events, err := MergeDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 || events[0].Ev != "urgent_sent" || events[1].Ev != "urgent_recv" {
		t.Fatalf("merged: %v", events)
	}
	text, _ := os.ReadFile(filepath.Join(dir, RunText))
	if !strings.Contains(string(text), "1 unreadable lines skipped") {
		t.Fatalf("run.log does not mention the torn line:\n%s", text)
	}
	// Merging again ignores the run log it wrote.
	again, err := MergeDir(dir)
	if err != nil || len(again) != 3 {
		t.Fatalf("second merge: %d events, %v", len(again), err)
	}
}

// FuzzRead feeds arbitrary bytes to the log reader: it must not panic, and
// whatever it accepts must survive a write and a second read.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"ts":"2026-11-23T18:40:01.123456789Z","node":"peer-2","inc":7,"lc":42,"ev":"peer_down","cause":"conn_closed","peer":0}` + "\n"))
	f.Add([]byte(`{"ts":"x","node":"","ev":1}` + "\n{}\n\n"))
	f.Add([]byte(`{"ts":"2026-11-23T18:40:01Z","node":"a","inc":1,"lc":1,"ev":"e","f":{"x":[1,2.5,"s"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		events, _, _ := Read(bytes.NewReader(data))
		for _, e := range events {
			b, err := json.Marshal(e)
			if err != nil {
				continue // a field JSON cannot write back, such as NaN: never produced by Read
			}
			back, bad, err := Read(bytes.NewReader(b))
			if err != nil || bad != 0 || len(back) != 1 || back[0].Ev != e.Ev || back[0].LC != e.LC {
				t.Fatalf("%s did not read back: %v %d %v", b, err, bad, back)
			}
			_ = Format(e)
		}
	})
}

// TestClockNeverGoesBack witnesses stamps at the top of the range: the
// clock saturates instead of wrapping to small values.
func TestClockNeverGoesBack(t *testing.T) {
	var c Clock
	now := time.Unix(1700000000, 0)
	last := c.Tick(now)
	for _, stamp := range []uint64{1<<64 - 4, 1<<64 - 1, 1<<64 - 1, 5} {
		v := c.Witness(stamp, now)
		if v < last {
			t.Fatalf("witnessing %d took the clock from %d back to %d", stamp, last, v)
		}
		last = v
	}
}
