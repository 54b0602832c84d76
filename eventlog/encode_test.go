package eventlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// referenceJSON is the line as encoding/json made it before AppendJSON:
// json.Marshal on Event's former MarshalJSON, which formatted the header
// and marshalled each field with encoding/json.
func referenceJSON(e Event) ([]byte, error) {
	var b bytes.Buffer
	str := func(s string) { v, _ := json.Marshal(s); b.Write(v) }
	b.WriteString(`{"ts":`)
	b.WriteString(strconv.Quote(e.TS.UTC().Format(time.RFC3339Nano)))
	b.WriteString(`,"node":`)
	str(e.Node)
	fmt.Fprintf(&b, `,"inc":%d,"lc":%d,"ev":`, e.Inc, e.LC)
	str(e.Ev)
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		if !reserved[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteByte(',')
		str(k)
		b.WriteByte(':')
		v, err := json.Marshal(e.Fields[k])
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	var out bytes.Buffer
	if err := json.Compact(&out, b.Bytes()); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

type named string

type withMarshal struct{ X int }

func (w withMarshal) MarshalJSON() ([]byte, error) { return []byte(`{ "x" : 1 }`), nil }

// TestAppendJSONWritesWhatEncodingJSONWrote encodes events with every
// kind of field the processes log, and others, both ways.
func TestAppendJSONWritesWhatEncodingJSONWrote(t *testing.T) {
	ts := time.Date(2026, 11, 23, 18, 40, 1, 123456789, time.FixedZone("x", 3600))
	strs := []string{"", "plain", `quo"te`, `back\slash`, "<html> & co", "tab\there", "nl\n", "\x00\x1f", "héllo", "\u2028\u2029",
		"bad \xff utf8", "emoji 😀", strings.Repeat("a", 300)}
	events := []Event{
		{TS: ts, Node: "peer-2", Inc: 7, LC: 42, Ev: "peer_down", Fields: map[string]any{"peer": 0, "cause": "conn_closed", "alive": []int{1, 2}}},
		{TS: time.Unix(0, 0), Node: "n", Ev: "x"},
		{TS: time.Unix(1, 5), Node: "n", Inc: math.MaxUint64, LC: math.MaxUint64, Ev: "x", Fields: map[string]any{}},
		{TS: ts, Node: "m", Ev: "view", Fields: map[string]any{"members": []string{"a.1", "b<2>"}, "none": []string(nil), "empty": []int{},
			"nil": nil, "ids": []int(nil), "flushed": true, "no": false, "i64": int64(-5), "u64": uint64(math.MaxUint64), "i32": int32(-7),
			"u32": uint32(9), "f": 2.5, "big": 1e21, "small": 1e-7, "named": named("a&b"), "marshal": withMarshal{1},
			"map": map[string]any{"z": 1, "a": []any{"x", 2.0}}, "inc": 99, "ev": "shadow"}},
	}
	for i, s := range strs {
		events = append(events, Event{TS: ts, Node: s, Ev: s, Fields: map[string]any{s: s, "k" + strconv.Itoa(i): []string{s, s}}})
	}
	for _, e := range events {
		want, err := referenceJSON(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendJSON([]byte("prefix"), e)
		if err != nil || string(got) != "prefix"+string(want) {
			t.Errorf("AppendJSON:\n got %s (%v)\nwant prefix%s", got, err, want)
		}
		if m, err := json.Marshal(e); err != nil || !bytes.Equal(m, want) {
			t.Errorf("json.Marshal:\n got %s (%v)\nwant %s", m, err, want)
		}
	}
}

func TestAppendJSONRefusesWhatJSONCannotWrite(t *testing.T) {
	e := Event{TS: time.Unix(0, 0), Node: "n", Ev: "x", Fields: map[string]any{"a": 1, "f": math.NaN()}}
	got, err := AppendJSON([]byte("keep"), e)
	if err == nil || string(got) != "keep" || !strings.Contains(err.Error(), `field "f"`) {
		t.Fatalf("got %q, %v; want the buffer as it was and an error naming the field", got, err)
	}
	// The Writer logs a log_error line in its place.
	var b bytes.Buffer
	NewWriter(&b, "n", 1, &Clock{}, nil).Write(e)
	events, bad, _ := Read(&b)
	if bad != 0 || len(events) != 1 || events[0].Ev != LogError || events[0].Str(FieldEvent) != "x" {
		t.Fatalf("logged %v, %d unreadable; want one log_error for x", events, bad)
	}
}

func BenchmarkWriterWrite(b *testing.B) {
	w := NewWriter(discard{}, "peer-2", 1795459523355950004, &Clock{}, nil)
	f := map[string]any{"leader": 1, "prev": 0, "alive": []int{1, 2, 3}}
	b.ReportAllocs()
	for b.Loop() {
		w.Log("leader_change", f)
	}
}

func BenchmarkReferenceMarshal(b *testing.B) {
	e := Event{TS: time.Now(), Node: "peer-2", Inc: 1795459523355950004, LC: 1795459524868711, Ev: "leader_change",
		Fields: map[string]any{"leader": 1, "prev": 0, "alive": []int{1, 2, 3}}}
	b.ReportAllocs()
	for b.Loop() {
		referenceJSON(e)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
