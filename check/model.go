package check

import (
	"time"

	"github.com/conclave/conclave/eventlog"
)

// settings are the peers' settings, read from their start events.
type settings struct {
	quorum       bool
	heartbeat    time.Duration
	suspectAfter time.Duration
}

// runSettings returns the settings in the first start event of h; ok is
// false if there is none. Every peer of a run is started with the same
// settings.
func runSettings(h []eventlog.Event) (s settings, ok bool) {
	for _, e := range h {
		if PeerID(e.Node) >= 0 && e.Ev == eventlog.Start {
			return startSettings(e), true
		}
	}
	return s, false
}

func startSettings(e eventlog.Event) settings {
	return settings{
		quorum:       boolField(e, eventlog.FieldQuorum),
		heartbeat:    msField(e, eventlog.FieldHeartbeatMS),
		suspectAfter: msField(e, eventlog.FieldSuspectAfterMS),
	}
}

func boolField(e eventlog.Event, k string) bool {
	switch v := e.Fields[k].(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

// msField reads a field in milliseconds.
func msField(e eventlog.Event, k string) time.Duration {
	f, _ := number(e.Fields[k])
	return time.Duration(f * float64(time.Millisecond))
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// ints reads a list of ids, as recorded ([]int) or read back from JSON
// ([]any of numbers).
func ints(v any) []int {
	switch x := v.(type) {
	case []int:
		return x
	case []any:
		out := make([]int, 0, len(x))
		for _, y := range x {
			if f, ok := number(y); ok {
				out = append(out, int(f))
			}
		}
		return out
	}
	return nil
}

// groups reads a list of lists of ids.
func groups(v any) [][]int {
	switch x := v.(type) {
	case [][]int:
		return x
	case []any:
		out := make([][]int, 0, len(x))
		for _, y := range x {
			out = append(out, ints(y))
		}
		return out
	}
	return nil
}

// network replays the network faults of the control events: which pairs
// of peers are cut apart, and the delay injected on each pair.
type network struct {
	n       int
	blocked map[[2]int]bool
	extra   map[[2]int]time.Duration
	// maxExtra is the largest delay injected so far.
	maxExtra time.Duration
	// lateUntil is when the answer to the last message sent before a delay
	// was lifted or shortened may arrive (a round trip at the old delay):
	// until then the link is still that slow.
	lateUntil time.Time
}

func newNetwork(n int) *network {
	return &network{n: n, blocked: map[[2]int]bool{}, extra: map[[2]int]time.Duration{}}
}

func pair(a, b int) [2]int {
	if a > b {
		a, b = b, a
	}
	return [2]int{a, b}
}

// apply updates the network with a control event and reports whether it
// was a network event.
func (nw *network) apply(e eventlog.Event) bool {
	if e.Node != eventlog.Control {
		return false
	}
	switch e.Ev {
	case eventlog.NetPartition:
		side := map[int]int{}
		for g, ids := range groups(e.Fields[eventlog.FieldGroups]) {
			for _, i := range ids {
				side[i] = g + 1
			}
		}
		nw.blocked = map[[2]int]bool{}
		for a := 0; a < nw.n; a++ {
			for b := a + 1; b < nw.n; b++ {
				if side[a] == 0 || side[a] != side[b] {
					nw.blocked[[2]int{a, b}] = true
				}
			}
		}
	case eventlog.NetBridge:
		nw.blocked = map[[2]int]bool{}
		for _, x := range ints(e.Fields[eventlog.FieldA]) {
			for _, y := range ints(e.Fields[eventlog.FieldB]) {
				nw.blocked[pair(x, y)] = true
			}
		}
	case eventlog.NetCut:
		nw.blocked[pair(intField(e, eventlog.FieldFrom), intField(e, eventlog.FieldTo))] = true
	case eventlog.NetHeal:
		nw.blocked = map[[2]int]bool{}
	case eventlog.NetDelay:
		d := msField(e, eventlog.FieldMS)
		k := pair(intField(e, eventlog.FieldA), intField(e, eventlog.FieldB))
		if old := nw.extra[k]; d < old && e.TS.Add(2*old).After(nw.lateUntil) {
			nw.lateUntil = e.TS.Add(2 * old)
		}
		if d == 0 {
			delete(nw.extra, k)
		} else {
			nw.extra[k] = d
		}
		nw.maxExtra = max(nw.maxExtra, d)
	case eventlog.NetReset:
	default:
		return false
	}
	return true
}

// linked reports whether a and b can reach each other.
func (nw *network) linked(a, b int) bool { return a == b || !nw.blocked[pair(a, b)] }

// clean reports whether reachability is an equivalence relation: the
// peers are split into sides (perhaps one) and each side is fully
// connected, with no cut inside a side and no bridge between two.
func (nw *network) clean() bool {
	for a := 0; a < nw.n; a++ {
		for b := 0; b < nw.n; b++ {
			if a == b || !nw.linked(a, b) {
				continue
			}
			for c := 0; c < nw.n; c++ {
				if nw.linked(b, c) && !nw.linked(a, c) {
					return false
				}
			}
		}
	}
	return true
}

// delays returns the largest delay injected on any pair now.
func (nw *network) delays() time.Duration {
	var d time.Duration
	for _, x := range nw.extra {
		d = max(d, x)
	}
	return d
}

// runClock measures how long a process has been able to run (started and
// not paused): silence is only counted against others while one runs.
type runClock struct {
	total   time.Duration // run time up to at
	at      time.Time
	running bool
}

func (c *runClock) now(t time.Time) time.Duration {
	if c.running && t.After(c.at) {
		return c.total + t.Sub(c.at)
	}
	return c.total
}

func (c *runClock) set(t time.Time, running bool) {
	c.total = c.now(t)
	c.at = t
	c.running = running
}
