// Package eventlog writes and reads conclave's structured event logs: one
// JSON object per line, one file per process, merged into one causally
// ordered run log.
//
// A line looks like
//
//	{"ts":"2026-11-23T18:40:01.123456789Z","node":"peer-2","inc":1732387201,"lc":1732387201123460,"ev":"peer_down","peer":0,"cause":"conn_closed"}
//
// ts is the wall-clock time (RFC 3339, UTC), node the process name, inc its
// incarnation, lc its Lamport clock and ev the event name; the other keys are
// the event's fields. The event names and fields are a public interface,
// declared as constants in names.go and described in docs/events.md.
//
// The Lamport clock here follows the physical clock: each event takes
// max(previous+1, now in microseconds), and a received message moves the
// clock past the sender's stamp. It satisfies Lamport's clock condition (if a
// happened before b then lc(a) < lc(b)), so sorting by lc gives a causal
// order, and between causally unrelated events it stays close to time order,
// which makes the merged log readable even after a process was paused.
package eventlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
)

// Event is one line of an event log.
type Event struct {
	TS     time.Time
	Node   string
	Inc    uint64
	LC     uint64
	Ev     string
	Fields map[string]any // numbers are int64 or float64 after reading
}

// reserved are the keys of the header, which fields may not use.
var reserved = map[string]bool{"ts": true, "node": true, "inc": true, "lc": true, "ev": true}

// MarshalJSON writes the header keys first, then the fields in key order
// (AppendJSON).
func (e Event) MarshalJSON() ([]byte, error) {
	return AppendJSON(nil, e)
}

// UnmarshalJSON reads a line written by MarshalJSON.
func (e *Event) UnmarshalJSON(data []byte) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return err
	}
	*e = Event{Fields: map[string]any{}}
	ts, _ := m["ts"].(string)
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return fmt.Errorf("bad ts %q", ts)
	}
	e.TS = t
	e.Node, _ = m["node"].(string)
	e.Ev, _ = m["ev"].(string)
	if e.Node == "" || e.Ev == "" {
		return fmt.Errorf("missing node or ev")
	}
	if e.Inc, err = uintField(m, "inc"); err != nil {
		return err
	}
	if e.LC, err = uintField(m, "lc"); err != nil {
		return err
	}
	for k, v := range m {
		if !reserved[k] {
			e.Fields[k] = numbers(v)
		}
	}
	return nil
}

func uintField(m map[string]any, k string) (uint64, error) {
	n, ok := m[k].(json.Number)
	if !ok {
		return 0, fmt.Errorf("missing %s", k)
	}
	v, err := strconv.ParseUint(string(n), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad %s %q", k, n)
	}
	return v, nil
}

// numbers turns json.Number into int64 or float64, recursively.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// Int returns an integer field.
func (e Event) Int(key string) (int, bool) {
	switch v := e.Fields[key].(type) {
	case int:
		return v, true
	case int64:
		return int(v), true
	case uint64:
		return int(v), true
	case float64:
		return int(v), v == float64(int(v))
	}
	return 0, false
}

// Str returns a string field, or "".
func (e Event) Str(key string) string {
	s, _ := e.Fields[key].(string)
	return s
}

// Clock is a Lamport clock that never runs behind the physical clock, in
// microseconds since the Unix epoch. It is safe for concurrent use.
type Clock struct {
	mu   sync.Mutex
	last uint64
}

// Tick advances the clock for a local event or a send at wall time now and
// returns the new value.
func (c *Clock) Tick(now time.Time) uint64 {
	return c.Witness(0, now)
}

// Witness advances the clock past a received stamp and returns the new value.
func (c *Clock) Witness(stamp uint64, now time.Time) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := max(inc(c.last), inc(stamp), uint64(now.UnixMicro()))
	c.last = v
	return v
}

// inc is v+1, saturating: a clock never wraps back to small values.
func inc(v uint64) uint64 {
	if v == math.MaxUint64 {
		return v
	}
	return v + 1
}
