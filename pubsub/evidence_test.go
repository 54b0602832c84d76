package pubsub_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/pubsub"
)

// logged reads the clients' logs.
func (d *testDir) logged(t *testing.T) []eventlog.Event {
	t.Helper()
	d.logs.mu.Lock()
	h, bad, err := eventlog.Read(bytes.NewReader(d.logs.b.Bytes()))
	d.logs.mu.Unlock()
	if err != nil || bad > 0 {
		t.Fatalf("reading the clients' logs: %v (%d bad lines)", err, bad)
	}
	eventlog.Sort(h)
	return h
}

// TestLogsCountsAndDirectoryOperations: a client logs its final counts
// per topic (ps_stats) as Stats gives them, and its operations on the
// directory (dir_call, dir_return), from which check.DirHistory reads
// the history of the topics.
func TestLogsCountsAndDirectoryOperations(t *testing.T) {
	d := newDir(t, 3)
	ctx := testCtx(t)
	pc, err := d.connect(ctx, "pub")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := d.connect(ctx, "sub")
	if err != nil {
		t.Fatal(err)
	}
	a, err := pc.Announce(ctx, "a", "total")
	if err != nil {
		t.Fatal(err)
	}
	b, err := pc.Announce(ctx, "b", "total")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sc.Subscribe(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WaitMembers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	const n = 7
	for k := range n {
		if err := b.Publish(ctx, fmt.Appendf(nil, "b%d", k)); err != nil {
			t.Fatal(err)
		}
		if err := a.Publish(ctx, fmt.Appendf(nil, "a%d", k)); err != nil {
			t.Fatal(err)
		}
	}
	read(t, s, n)
	for _, c := range []*pubsub.Client{pc, sc} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]map[string]pubsub.Stats{"pub": pc.Stats(), "sub": sc.Stats()}
	// The publisher filters its own events.
	if fmt.Sprint(want["sub"]) != fmt.Sprint(map[string]pubsub.Stats{"a": {Delivered: n}}) ||
		fmt.Sprint(want["pub"]) != fmt.Sprint(map[string]pubsub.Stats{"a": {Filtered: n, Published: n}, "b": {Filtered: n, Published: n}}) {
		t.Fatalf("stats %+v", want)
	}
	// ps_stats logs what the client received, not what it published.
	for _, st := range want {
		for topic, s := range st {
			s.Published = 0
			st[topic] = s
		}
	}
	h := d.logged(t)
	got := map[string]map[string]pubsub.Stats{"pub": {}, "sub": {}}
	for _, e := range h {
		if e.Ev != eventlog.PSStats || e.Fields[eventlog.FieldFinal] != true {
			continue
		}
		del, _ := e.Int(eventlog.FieldDelivered)
		fil, _ := e.Int(eventlog.FieldFiltered)
		got[e.Node][e.Str(eventlog.FieldTopic)] = pubsub.Stats{Delivered: uint64(del), Filtered: uint64(fil)}
	}
	for c := range want {
		if fmt.Sprint(got[c]) != fmt.Sprint(want[c]) {
			t.Errorf("%s logged final counts %v, Stats says %v", c, got[c], want[c])
		}
	}
	ops, _ := check.DirHistory(h)
	seen := map[string]int{}
	for _, op := range ops {
		if !op.Known || op.Code != check.DirOK || op.Group == "" || op.Topic == "a" && op.Group != a.Group() {
			t.Errorf("operation %+v", op)
		}
		seen[op.Kind+" "+op.Topic]++
	}
	if seen["announce a"] != 1 || seen["announce b"] != 1 || seen["lookup a"] < 2 {
		t.Errorf("history %v, want the announces of a and b, and the subscription to a and the lookup after the announce", seen)
	}
}
