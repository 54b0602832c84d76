package check

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/conclave/conclave/eventlog"
)

// psLog builds a publish/subscribe history: clients are named by a letter,
// their member of group g by the letter and ".1".
type psLog struct{ h []eventlog.Event }

func (l *psLog) add(node, ev string, kv ...any) *psLog {
	f := map[string]any{eventlog.FieldGroup: "g"}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	l.h = append(l.h, eventlog.Event{Node: node, Inc: 1, Ev: ev, Fields: f})
	return l
}

func mem(node string) string { return node + ".1" }

func (l *psLog) view(v string, members []string, nodes ...string) *psLog {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = mem(m)
	}
	for _, n := range nodes {
		l.add(n, eventlog.PSView, "member", mem(n), "view", v, "members", ids)
	}
	return l
}

func (l *psLog) sub(node, topic, qos, since string) *psLog {
	return l.add(node, eventlog.PSSubscribe, "topic", topic, "qos", qos, "member", mem(node), "since", since)
}

func (l *psLog) pub(node, topic, view string, seq int, result string) *psLog {
	return l.add(node, eventlog.PSPublish, "topic", topic, "from", mem(node), "view", view, "seq", seq, "result", result)
}

// deliver logs that node handed over the events of topic named "p#1"...
func (l *psLog) deliver(node, topic, view string, msgs ...string) *psLog {
	for _, m := range msgs {
		var from string
		var seq int
		fmt.Sscanf(m, "%1s#%d", &from, &seq)
		l.add(node, eventlog.PSDeliver, "topic", topic, "member", mem(node), "view", view, "from", mem(from), "seq", seq)
	}
	return l
}

// leave logs that node left the group cleanly, its subscriptions ending
// with it.
func (l *psLog) leave(node string, view string, topics ...string) *psLog {
	for _, t := range topics {
		l.add(node, eventlog.PSUnsub, "topic", t, "member", mem(node), "reason", "ended")
	}
	return l.add(node, eventlog.PSLeave, "member", mem(node), "view", view, "result", "ok")
}

const (
	v1 = "1@p.1"
	v2 = "2@p.1"
)

// psRun1 is a run: publishers p and q and subscribers a, b and c of topic
// t in view v1; p publishes p#1..p#3 and q q#1 (all acknowledged); c
// leaves; the others pass to v2 and leave. deliveries maps each of a, b, c
// to what it hands over in v1 (a default if absent).
func psRun1(qos string, deliveries map[string][]string, extra func(*psLog)) []eventlog.Event {
	l := &psLog{}
	all := []string{"p", "q", "a", "b", "c"}
	l.add("p", eventlog.PSAnnounce, "topic", "t", "qos", qos).add("q", eventlog.PSAnnounce, "topic", "t", "qos", qos)
	l.view(v1, all, all...)
	for _, s := range []string{"a", "b", "c"} {
		l.sub(s, "t", qos, "")
	}
	l.pub("p", "t", v1, 1, "ok").pub("q", "t", v1, 1, "ok").pub("p", "t", v1, 2, "ok").pub("p", "t", v1, 3, "ok")
	def := map[string][]string{"a": {"p#1", "q#1", "p#2", "p#3"}, "b": {"p#1", "q#1", "p#2", "p#3"}, "c": {"p#1", "q#1"}}
	for _, s := range []string{"a", "b", "c"} {
		d, ok := deliveries[s]
		if !ok {
			d = def[s]
		}
		l.deliver(s, "t", v1, d...)
	}
	l.leave("c", v1, "t")
	l.view(v2, []string{"p", "q", "a", "b"}, "p", "q", "a", "b")
	if extra != nil {
		extra(l)
	}
	for _, s := range []string{"a", "b"} {
		l.leave(s, v2, "t")
	}
	return l.h
}

func rules(vs []Violation) []string {
	set := map[string]bool{}
	for _, v := range vs {
		set[v.Rule] = true
	}
	return slices.Sorted(maps.Keys(set))
}

func TestPubSubCatches(t *testing.T) {
	for _, qos := range []string{"total", "vsync"} {
		if v := PubSub(psRun1(qos, nil, nil), PubSubOptions{}); len(v) != 0 {
			t.Fatalf("%s: a good run: %v", qos, v)
		}
	}
	for _, c := range []struct {
		name, qos  string
		deliveries map[string][]string
		extra      func(*psLog)
		want       []string
	}{
		{name: "another topic", qos: "vsync", extra: func(l *psLog) { l.deliver("a", "u", v2, "q#1") }, want: []string{"TopicIsolation"}},
		{name: "after unsubscribing", qos: "vsync", extra: func(l *psLog) {
			l.add("a", eventlog.PSUnsub, "topic", "t", "member", mem("a"), "until", v1).deliver("a", "t", v2, "q#1")
		}, want: []string{"TopicIsolation"}},
		{name: "twice", qos: "vsync", deliveries: map[string][]string{"a": {"p#1", "q#1", "p#1", "p#2", "p#3"}}, want: []string{"NoDuplicate"}},
		{name: "a publisher's events reordered", qos: "vsync", deliveries: map[string][]string{"a": {"p#2", "p#1", "q#1", "p#3"}}, want: []string{"FIFO"}},
		{name: "a publisher's event skipped", qos: "vsync", deliveries: map[string][]string{"c": {"p#1", "q#1", "p#3"}}, want: []string{"FIFO"}},
		{name: "an unacknowledged event skipped", qos: "vsync", deliveries: map[string][]string{"a": {"p#1", "q#1", "p#3"}},
			extra: func(l *psLog) {
				l.h = slices.DeleteFunc(l.h, func(e eventlog.Event) bool {
					return e.Ev == eventlog.PSPublish && e.Node == "p" && intField(e, "seq") == 2
				})
			},
			want: []string{"FIFO", "VSync"}},
		{name: "total order broken", qos: "total", deliveries: map[string][]string{"b": {"q#1", "p#1", "p#2", "p#3"}}, want: []string{"TopicOrder"}},
		{name: "total order broken by a leaver", qos: "total", deliveries: map[string][]string{"c": {"q#1", "p#1"}}, want: []string{"TopicOrder"}},
		{name: "passed on with different events", qos: "vsync", deliveries: map[string][]string{"a": {"p#1", "q#1", "p#2", "p#3", "q#2"}},
			extra: func(l *psLog) { l.pub("q", "t", v1, 2, "lost") }, want: []string{"VSync"}},
		{name: "a leaver handed over what the others did not", qos: "total", deliveries: map[string][]string{"c": {"p#1", "q#1", "q#2"}},
			extra: func(l *psLog) { l.pub("q", "t", v1, 2, "lost") }, want: []string{"VSync"}},
		{name: "acknowledged event lost", qos: "total", extra: func(l *psLog) { l.pub("q", "t", v1, 2, "ok") }, want: []string{"Stable"}},
	} {
		v := PubSub(psRun1(c.qos, c.deliveries, c.extra), PubSubOptions{})
		if got := rules(v); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, v, c.want)
		}
	}
}

// Histories the checkers must accept, close to ones they reject.
func TestPubSubAllows(t *testing.T) {
	for _, c := range []struct {
		name, qos  string
		deliveries map[string][]string
		extra      func(*psLog)
	}{
		{name: "publishers interleaved differently without total order", qos: "vsync", deliveries: map[string][]string{"b": {"q#1", "p#1", "p#2", "p#3"}}},
		{name: "a leaver delivered less", qos: "total", deliveries: map[string][]string{"c": {"p#1"}}},
		{name: "a lost event nobody delivered", qos: "total", extra: func(l *psLog) { l.pub("q", "t", v1, 2, "lost") }},
		{name: "a failed publish", qos: "total", extra: func(l *psLog) {
			l.add("q", eventlog.PSPublish, "topic", "t", "from", mem("q"), "result", "error", "error", "context canceled")
		}},
		{name: "subscribed late in the view", qos: "total", deliveries: map[string][]string{"a": {"p#2", "p#3"}}, extra: func(l *psLog) {
			i := slices.IndexFunc(l.h, func(e eventlog.Event) bool { return e.Ev == eventlog.PSSubscribe && e.Node == "a" })
			l.h[i].Fields["since"] = v1
		}},
		{name: "unsubscribed early in the view", qos: "total", deliveries: map[string][]string{"a": {"p#1"}}, extra: func(l *psLog) {
			l.h = slices.DeleteFunc(l.h, func(e eventlog.Event) bool { return e.Ev == eventlog.PSView && e.Node == "a" && e.Str("view") == v2 })
			l.add("a", eventlog.PSUnsub, "topic", "t", "member", mem("a"), "until", v1)
			l.view(v2, []string{"p", "q", "a", "b"}, "a")
			l.sub("a", "t", "total", v1)
		}},
	} {
		if v := PubSub(psRun1(c.qos, c.deliveries, c.extra), PubSubOptions{}); len(v) != 0 {
			t.Errorf("%s: %v", c.name, v)
		}
	}
	// Crashed before dispatching the rest of v1 (its log ends with the next
	// view), excluded and gone on alone, or split from the others by a
	// partition: not bound to what the others delivered, even when the
	// publisher crashed.
	l := &psLog{}
	all := []string{"p", "a", "b", "x", "y", "z"}
	l.view(v1, all, all...)
	for _, s := range []string{"a", "b", "x", "y", "z"} {
		l.sub(s, "t", "total", "")
	}
	l.pub("p", "t", v1, 1, "ok").pub("p", "t", v1, 2, "ok")
	l.deliver("a", "t", v1, "p#1", "p#2").deliver("b", "t", v1, "p#1", "p#2").deliver("x", "t", v1, "p#1")
	l.deliver("y", "t", v1)
	l.view(v2, []string{"a", "b", "x", "z"}, "a", "b", "x")                    // p crashed
	l.view("3@y.1", []string{"y"}, "y")                                        // excluded
	l.view("2@z.1", []string{"z"}, "z").view("3@z.1", []string{"z", "y"}, "z") // gone alone, then joined by y
	l.leave("a", v2, "t").leave("b", v2, "t")
	l.deliver("y", "t", "3@y.1").leave("y", "3@y.1", "t").leave("z", "3@z.1", "t")
	if v := PubSub(l.h, PubSubOptions{}); len(v) != 0 {
		t.Errorf("crashed, excluded, alone: %v", v)
	}
	// Two sides of a partition may order differently.
	l = &psLog{}
	all = []string{"p", "q", "a", "b", "c"}
	l.view(v1, all, all...)
	for _, s := range []string{"a", "b", "c"} {
		l.sub(s, "t", "total", "")
	}
	l.deliver("a", "t", v1, "p#1", "q#1").deliver("b", "t", v1, "q#1", "p#1").deliver("c", "t", v1, "q#1", "p#1")
	l.leave("c", v1, "t") // which side's flush let it out is not known
	l.view(v2, []string{"p", "a"}, "p", "a").view("2@q.1", []string{"q", "b"}, "q", "b")
	l.leave("a", v2, "t").leave("b", "2@q.1", "t")
	if v := PubSub(l.h, PubSubOptions{}); len(v) != 0 {
		t.Errorf("partition: %v", v)
	}
	// The QoS may come from the options instead of the log.
	h := psRun1("", map[string][]string{"b": {"q#1", "p#1", "p#2", "p#3"}}, nil)
	if v := PubSub(h, PubSubOptions{}); len(v) != 0 {
		t.Errorf("unknown QoS: %v", v)
	}
	if v := PubSub(h, PubSubOptions{Total: map[string]bool{"t": true}}); !slices.Equal(rules(v), []string{"TopicOrder"}) {
		t.Errorf("total by option: %v", v)
	}
}

// With ps_view's flushed flag, a member that goes on alone through a flush
// (the others left) is bound to what they acknowledged; one that goes on
// alone otherwise is not.
func TestPubSubFlushedFlag(t *testing.T) {
	for _, flushed := range []bool{true, false} {
		l := &psLog{}
		l.add("p", eventlog.PSAnnounce, "topic", "t", "qos", "vsync")
		l.view(v1, []string{"p", "a"}, "p", "a").sub("a", "t", "vsync", "")
		l.pub("p", "t", v1, 1, "ok").pub("p", "t", v1, 2, "ok").deliver("a", "t", v1, "p#1")
		l.add("p", eventlog.PSLeave, "member", mem("p"), "view", v1, "result", "ok")
		l.add("a", eventlog.PSView, "member", mem("a"), "view", v2, "members", []string{mem("a")}, "flushed", flushed)
		l.leave("a", v2, "t")
		v := PubSub(l.h, PubSubOptions{})
		if got, want := rules(v), map[bool][]string{true: {"Stable"}, false: {}}[flushed]; !slices.Equal(got, want) {
			t.Errorf("flushed %v: %v, want %v", flushed, v, want)
		}
	}
}

// BenchmarkPubSub checks a run of 10 subscribers of a total topic, each
// handing over 20 views of 500 events of 2 publishers (10,000 each).
func BenchmarkPubSub(b *testing.B) {
	l := &psLog{}
	subs := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	all := append([]string{"p", "q"}, subs...)
	for _, s := range subs {
		l.sub(s, "t", "total", "")
	}
	for v := 1; v <= 20; v++ {
		view := fmt.Sprintf("%d@p.1", v)
		l.view(view, all, all...)
		for k := 1; k <= 250; k++ {
			l.pub("p", "t", view, k, "ok").pub("q", "t", view, k, "ok")
		}
		for _, s := range subs {
			for k := 1; k <= 250; k++ {
				l.deliver(s, "t", view, fmt.Sprintf("p#%d", k), fmt.Sprintf("q#%d", k))
			}
		}
	}
	for _, s := range subs {
		l.leave(s, "20@p.1", "t")
	}
	b.ResetTimer()
	for b.Loop() {
		if v := PubSub(l.h, PubSubOptions{}); len(v) != 0 {
			b.Fatal(v)
		}
	}
	b.ReportMetric(float64(len(l.h)), "events")
}
