package check

import (
	"testing"

	"github.com/conclave/conclave/eventlog"
)

func psEv(node, ev, topic string, kv ...any) eventlog.Event {
	f := map[string]any{eventlog.FieldTopic: topic}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	return eventlog.Event{Node: node, Inc: 1, Ev: ev, Fields: f}
}

func psDeliver(node, topic, from string, seq int64) eventlog.Event {
	return psEv(node, eventlog.PSDeliver, topic, "group", "g0", "view", "1@p", "from", from, "seq", seq)
}

func TestPubSubChecks(t *testing.T) {
	good := []eventlog.Event{
		psEv("s1", eventlog.PSSubscribe, "a"), psEv("s2", eventlog.PSSubscribe, "a"),
		psDeliver("s1", "a", "p", 1), psDeliver("s1", "a", "q", 1), psDeliver("s1", "a", "p", 2),
		psDeliver("s2", "a", "p", 1), psDeliver("s2", "a", "q", 1), psDeliver("s2", "a", "p", 2),
	}
	o := PubSubOptions{Total: map[string]bool{"a": true}}
	if v := PubSub(good, o); len(v) != 0 {
		t.Fatalf("a good history: %v", v)
	}
	for name, c := range map[string]struct {
		h    []eventlog.Event
		rule string
	}{
		"another topic": {append(append([]eventlog.Event{}, good...), psDeliver("s1", "b", "p", 3)), "TopicIsolation"},
		"after unsubscribing": {append(append([]eventlog.Event{}, good...), psEv("s2", eventlog.PSUnsub, "a"),
			psDeliver("s2", "a", "p", 3)), "TopicIsolation"},
		"twice": {append(append([]eventlog.Event{}, good...), psDeliver("s1", "a", "q", 1)), "NoDuplicate"},
		"reordered": {[]eventlog.Event{psEv("s1", eventlog.PSSubscribe, "a"), psEv("s2", eventlog.PSSubscribe, "a"),
			psDeliver("s1", "a", "p", 1), psDeliver("s1", "a", "q", 1),
			psDeliver("s2", "a", "q", 1), psDeliver("s2", "a", "p", 1)}, "TopicOrder"},
	} {
		v := PubSub(c.h, o)
		if len(v) != 1 || v[0].Rule != c.rule {
			t.Errorf("%s: %v, want one %s violation", name, v, c.rule)
		}
	}
	// Without total order, the same reordering is allowed.
	reordered := []eventlog.Event{psEv("s1", eventlog.PSSubscribe, "a"), psEv("s2", eventlog.PSSubscribe, "a"),
		psDeliver("s1", "a", "p", 1), psDeliver("s1", "a", "q", 1), psDeliver("s2", "a", "q", 1), psDeliver("s2", "a", "p", 1)}
	if v := PubSub(reordered, PubSubOptions{}); len(v) != 0 {
		t.Fatalf("vsync: %v", v)
	}
}
