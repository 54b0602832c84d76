package check

import (
	"strings"
	"testing"

	"github.com/conclave/conclave/eventlog"
)

func dirEv(node string, inc uint64, ev string, kv ...any) eventlog.Event {
	f := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	return eventlog.Event{Node: node, Inc: inc, Ev: ev, Fields: f}
}

func apply(node string, inc uint64, index int64, topic, group string) eventlog.Event {
	return dirEv(node, inc, eventlog.DirApply, "index", index, "term", int64(2), "client", "c", "seq", int64(index),
		"op", "announce", "topic", topic, "group", group, "result", "ok")
}

func TestDirectoryLogChecks(t *testing.T) {
	good := []eventlog.Event{
		dirEv("dir-0", 1, eventlog.DirRole, "role", "leader", "term", int64(2), "leader", int64(0)),
		dirEv("dir-1", 1, eventlog.DirRole, "role", "follower", "term", int64(2), "leader", int64(0)),
		apply("dir-0", 1, 3, "a", "g0"), apply("dir-1", 1, 3, "a", "g0"),
		apply("dir-0", 1, 4, "b", "g1"),
		apply("dir-1", 2, 3, "a", "g0"), apply("dir-1", 2, 4, "b", "g1"), // restarted, applied again
		dirEv("dir-1", 2, eventlog.DirRole, "role", "leader", "term", int64(3), "leader", int64(1)),
	}
	if v := Directory(good); len(v) != 0 {
		t.Fatalf("a good history: %v", v)
	}
	for name, c := range map[string]struct {
		add  eventlog.Event
		rule string
	}{
		"two leaders in a term": {dirEv("dir-2", 1, eventlog.DirRole, "role", "leader", "term", int64(2), "leader", int64(2)), "OneLeaderPerTerm"},
		"another command":       {apply("dir-2", 1, 4, "c", "g1"), "SameCommands"},
		"another group":         {apply("dir-2", 1, 4, "b", "g2"), "SameCommands"},
		"backwards":             {apply("dir-0", 1, 3, "a", "g0"), "AppliedInOrder"},
	} {
		v := Directory(append(append([]eventlog.Event{}, good...), c.add))
		if len(v) != 1 || v[0].Rule != c.rule || !strings.Contains(v[0].String(), c.add.Node) {
			t.Errorf("%s: %v, want one %s violation", name, v, c.rule)
		}
	}
}
