package check

import (
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// dirLog builds the log of directory clients' operations.
type dirLog struct {
	t0 time.Time
	h  []eventlog.Event
}

func (l *dirLog) add(ms int, node, ev string, kv ...any) {
	f := map[string]any{eventlog.FieldClient: node}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	l.h = append(l.h, eventlog.Event{TS: l.t0.Add(time.Duration(ms) * time.Millisecond), Node: node, Inc: 1,
		LC: uint64(len(l.h) + 1), Ev: ev, Fields: f})
}

// op logs an operation of node from ms to ret (no dir_return if ret < 0).
func (l *dirLog) op(node string, call int, kind, topic string, ms, ret int, result string, kv ...any) {
	args := []any{eventlog.FieldCall, call, eventlog.FieldOp, kind, eventlog.FieldTopic, topic}
	if kind == "announce" {
		args = append(args, eventlog.FieldQoS, "total")
	}
	l.add(ms, node, eventlog.DirCall, args...)
	if ret >= 0 {
		l.add(ret, node, eventlog.DirReturn, append([]any{eventlog.FieldCall, call, eventlog.FieldOp, kind,
			eventlog.FieldTopic, topic, eventlog.FieldResult, result}, kv...)...)
	}
}

func (l *dirLog) sorted() []eventlog.Event {
	h := append([]eventlog.Event(nil), l.h...)
	eventlog.Sort(h)
	return h
}

// goodDirLog is a history of two clients around a move of topic "t".
func goodDirLog() *dirLog {
	l := &dirLog{t0: time.Unix(1_800_000_000, 0)}
	in := func(g string, moves int) []any {
		return []any{eventlog.FieldQoS, "total", eventlog.FieldGroup, g, eventlog.FieldMoves, moves}
	}
	l.op("sub", 1, "subscribe", "t", 0, 2, "unknown-topic")
	l.op("pub", 1, "announce", "t", 1, 5, "ok", in("g0", 0)...)
	l.op("pub", 2, "report", "", 6, 7, "ok")
	l.op("sub", 2, "subscribe", "t", 6, 9, "ok", in("g0", 0)...)
	l.op("sub", 3, "lookup", "t", 20, 22, "ok", in("g1", 1)...)                       // it moved
	l.op("pub", 3, "lookup", "t", 21, 30, "ok", in("g0", 0)...)                       // concurrent with the one above: it may come first
	l.op("sub", 4, "lookup", "u", 23, 24, "error", eventlog.FieldError, "no replica") // no answer: constrains nothing
	l.op("pub", 4, "announce", "u", 25, 26, "bad-qos")                                // changed nothing
	l.op("pub", 5, "announce", "v", 27, -1, "")                                       // its process ended first
	l.op("sub", 5, "lookup", "v", 40, 41, "ok", in("g2", 0)...)
	return l
}

// TestDirHistoryFromLog reads the clients' operations from their log and
// finds the history linearizable.
func TestDirHistoryFromLog(t *testing.T) {
	h := goodDirLog().sorted()
	ops, at := DirHistory(h)
	var got []string
	for k, op := range ops {
		got = append(got, op.Kind+" "+op.Topic)
		if h[at[k]].Str(eventlog.FieldTopic) != op.Topic {
			t.Errorf("operation %d is at %s", k, eventlog.Format(h[at[k]]))
		}
	}
	want := "lookup t|announce t|lookup t|lookup t|lookup t|announce v|lookup v"
	if strings.Join(got, "|") != want {
		t.Fatalf("history %s, want %s", strings.Join(got, "|"), want)
	}
	if ops[1].Client == ops[0].Client || ops[1].Call != time.Millisecond || ops[1].Return != 5*time.Millisecond || !ops[1].Known {
		t.Errorf("announce %+v", ops[1])
	}
	if ops[5].Known {
		t.Errorf("an announce never answered is known: %+v", ops[5])
	}
	if vs := DirLinearizable(h, time.Minute); len(vs) > 0 {
		t.Errorf("violations of a linearizable history: %v", vs)
	}
}

// TestDirLinearizableFindsStaleRead: a read that returns the topic's
// group from before a move that a read finished before it saw, or a topic
// unknown after its announce finished, is a violation, at that read.
func TestDirLinearizableFindsStaleRead(t *testing.T) {
	for _, c := range []struct {
		name string
		bad  func(l *dirLog)
	}{
		{"group before the move", func(l *dirLog) {
			l.op("pub", 9, "lookup", "t", 50, 52, "ok", eventlog.FieldQoS, "total", eventlog.FieldGroup, "g0", eventlog.FieldMoves, 0)
		}},
		{"unknown after the announce", func(l *dirLog) {
			l.op("sub", 9, "subscribe", "t", 50, 52, "unknown-topic")
		}},
		{"another QoS", func(l *dirLog) {
			l.op("sub", 9, "lookup", "t", 50, 52, "ok", eventlog.FieldQoS, "vsync", eventlog.FieldGroup, "g1", eventlog.FieldMoves, 1)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := goodDirLog()
			c.bad(l)
			h := l.sorted()
			vs := DirLinearizable(h, time.Minute)
			if len(vs) != 1 {
				t.Fatalf("violations %v, want 1", vs)
			}
			v := vs[0]
			if v.Event.Ev != eventlog.DirReturn || v.Event.Node == "" || !v.Event.TS.Equal(l.t0.Add(52*time.Millisecond)) ||
				!strings.Contains(v.Msg, `topic "t"`) {
				t.Errorf("violation %v, want it at the stale read's dir_return", v)
			}
		})
	}
}
