package eventlog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// logLife appends to dir/<node>.jsonl the life of a process of incarnation
// inc: a start event at second from, one event a second, a stop at to.
func logLife(t *testing.T, dir, node string, inc uint64, from, to int) {
	t.Helper()
	f, err := Create(dir, node)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var now time.Time
	w := NewWriter(f, node, inc, &Clock{}, func() time.Time { return now })
	for s := from; s <= to; s++ {
		now = time.Unix(1e9+int64(s), 0)
		ev := "step"
		switch s {
		case from:
			ev = Start
		case to:
			ev = Stop
		}
		w.Log(ev, nil)
	}
}

// TestTwoRunsInOneDirectory appends a second run to the logs of a first
// one, as a second "conclave peer" run with the same --log-dir does: merge
// tells them apart, keeps the latest by default, and MergeDir refuses
// to mix them.
func TestTwoRunsInOneDirectory(t *testing.T) {
	dir := t.TempDir()
	for i, node := range []string{"peer-0", "peer-1", "peer-2"} {
		logLife(t, dir, node, uint64(10+i), i, 5)
	}
	logLife(t, dir, "peer-0", 20, 7, 8) // a restart after run 1 ended: a run alone
	for i, node := range []string{"peer-0", "peer-1"} {
		logLife(t, dir, node, uint64(30+i), 20+i, 30)
	}
	if _, err := MergeDir(dir); err == nil || !strings.Contains(err.Error(), "holds 3 runs") {
		t.Fatalf("MergeDir of three runs: %v", err)
	}
	m, err := MergeRun(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.N != 3 || len(m.Runs) != 3 || strings.Join(m.Nodes, " ") != "peer-0 peer-1" || len(m.Events) != 11+10 {
		t.Errorf("latest run: number %d of %d, nodes %v, %d events", m.N, len(m.Runs), m.Nodes, len(m.Events))
	}
	for _, e := range m.Events {
		if e.Inc < 30 {
			t.Fatalf("the latest run holds an event of an earlier one: %v", e)
		}
	}
	text, _ := os.ReadFile(filepath.Join(dir, RunText))
	if !strings.HasPrefix(string(text), "# run 3 of the 3 runs in this directory: started 2001-09-09 01:47:00.000 UTC, lasted 10s, 21 events of 2 processes (peer-0 peer-1)\n") {
		t.Errorf("run.log does not say which run it is:\n%.400s", text)
	}
	m, err = MergeRun(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Events) != 6+5+4 || len(m.Nodes) != 3 {
		t.Errorf("run 1: %d events of %v", len(m.Events), m.Nodes)
	}
	if _, err := MergeRun(dir, 4); err == nil || !strings.Contains(err.Error(), "holds 3 runs: there is no run 4") {
		t.Errorf("MergeRun(4): %v", err)
	}
}

// TestRestartsAreOneRun checks that restarts of processes while others
// run, a process that logged with the same incarnation twice, and a gap
// with no process alive that the launcher's control log spans, do not
// split a run; and that a second start event does split a life.
func TestRestartsAreOneRun(t *testing.T) {
	dir := t.TempDir()
	logLife(t, dir, "peer-0", 1, 0, 4)
	logLife(t, dir, "peer-1", 2, 1, 10)
	logLife(t, dir, "peer-0", 3, 6, 12) // restarted while peer 1 runs
	logLife(t, dir, "peer-2", 4, 20, 22)
	if runs := splitDir(t, dir); len(runs) != 2 {
		t.Fatalf("%d runs, want 2: %v", len(runs), runs)
	}
	logLife(t, dir, "peer-2", 4, 30, 31) // the same incarnation again: a second life
	if runs := splitDir(t, dir); len(runs) != 3 {
		t.Fatalf("%d runs, want 3: %v", len(runs), runs)
	}
	logLife(t, dir, Control, 0, 0, 40) // a launcher saw it all: one run
	if runs := splitDir(t, dir); len(runs) != 1 || len(runs[0].Nodes) != 4 {
		t.Fatalf("with a control log: %v", runs)
	}
}

func splitDir(t *testing.T, dir string) []Run {
	t.Helper()
	events, _, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return SplitRuns(events)
}
