package eventlog

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A Run is what the processes of one run logged. Processes belong to one
// run when their lives overlap: a process's life goes from its first
// event to its last (a restart is a new life), and a run goes on while
// some process of it is alive, so a directory that received two runs one
// after the other holds two runs, and a cluster whose peers were
// restarted one at a time holds one. Lives are compared by Lamport clock,
// which follows the physical clock and moves past every stamp received,
// so a process whose clock is behind still overlaps those it heard from.
type Run struct {
	Start, End time.Time
	Nodes      []string // the processes' names, sorted
	Events     []Event  // in causal order (Sort)
}

// String describes r: when it started, how long it lasted, its processes.
func (r Run) String() string {
	nodes := strings.Join(r.Nodes, " ")
	if len(r.Nodes) > 8 {
		nodes = strings.Join(r.Nodes[:4], " ") + " ... " + r.Nodes[len(r.Nodes)-1]
	}
	d := r.End.Sub(r.Start)
	if d >= 10*time.Millisecond {
		d = d.Round(time.Millisecond)
	} else {
		d = d.Round(time.Microsecond)
	}
	procs := "processes"
	if len(r.Nodes) == 1 {
		procs = "process"
	}
	return fmt.Sprintf("started %s UTC, lasted %v, %d events of %d %s (%s)",
		r.Start.UTC().Format("2006-01-02 15:04:05.000"), d, len(r.Events), len(r.Nodes), procs, nodes)
}

// life is the events of one life of one process.
type life struct {
	lo, hi uint64 // first and last Lamport stamps
	events []Event
}

// SplitRuns divides the events of a log directory, each process's in the
// order it wrote them (as ReadDir returns them), into runs, earliest
// first. A process's events begin a new life where its incarnation
// changes, or at a second start event.
func SplitRuns(events []Event) []Run {
	var lives []*life
	var cur *life
	started := false
	for i, e := range events {
		if i == 0 || e.Node != events[i-1].Node || e.Inc != events[i-1].Inc || (e.Ev == Start && started) {
			cur = &life{lo: e.LC, hi: e.LC}
			lives = append(lives, cur)
			started = false
		}
		started = started || e.Ev == Start
		cur.events = append(cur.events, e)
		cur.lo, cur.hi = min(cur.lo, e.LC), max(cur.hi, e.LC)
	}
	slices.SortStableFunc(lives, func(a, b *life) int { return cmp.Compare(a.lo, b.lo) })
	var runs []Run
	var hi uint64 // the last stamp of the run being gathered
	for _, l := range lives {
		if n := len(runs); n > 0 && l.lo <= hi {
			runs[n-1].Events = append(runs[n-1].Events, l.events...)
			hi = max(hi, l.hi)
			continue
		}
		runs = append(runs, Run{Events: slices.Clone(l.events)})
		hi = l.hi
	}
	for i := range runs {
		r := &runs[i]
		Sort(r.Events)
		r.Start, r.End = r.Events[0].TS, r.Events[0].TS
		seen := map[string]bool{}
		for _, e := range r.Events {
			if e.TS.Before(r.Start) {
				r.Start = e.TS
			}
			if e.TS.After(r.End) {
				r.End = e.TS
			}
			if !seen[e.Node] {
				seen[e.Node] = true
				r.Nodes = append(r.Nodes, e.Node)
			}
		}
		slices.Sort(r.Nodes)
	}
	return runs
}

// Merged is a run merged by MergeRun.
type Merged struct {
	Run
	N    int   // the run's number among Runs, from 1
	Runs []Run // every run in the directory, earliest first
	Bad  int   // unreadable lines skipped in the directory
	Lost int   // lines the run's processes could not write, by their log_lost events
}

// Others describes the runs of the directory other than the one merged,
// or returns "" if there are none.
func (m *Merged) Others() string {
	var s []string
	for i, r := range m.Runs {
		if i+1 != m.N {
			s = append(s, fmt.Sprintf("run %d: %v", i+1, r))
		}
	}
	return strings.Join(s, "; ")
}

// MergeRun merges run n of the logs in dir (1 is the earliest, 0 the
// latest; see Run) into dir/run.jsonl and the readable dir/run.log.
func MergeRun(dir string, n int) (*Merged, error) {
	events, bad, err := ReadDir(dir)
	if err != nil {
		return nil, err
	}
	if len(events) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("no events in %s", filepath.Join(dir, "*.jsonl"))
	}
	runs := SplitRuns(events)
	if n == 0 {
		n = len(runs)
	}
	if n < 0 || n > len(runs) {
		return nil, fmt.Errorf("%s holds %d runs: there is no run %d", dir, len(runs), n)
	}
	m := &Merged{Run: runs[n-1], N: n, Runs: runs, Bad: bad}
	for _, e := range m.Events {
		if e.Ev == LogLost {
			l, _ := e.Int(FieldLines)
			m.Lost += l
		}
	}
	if err := m.write(dir); err != nil {
		return nil, err
	}
	return m, nil
}

// RemoveLogs removes the logs of an earlier run from dir (*.jsonl and
// the merged logs), so that a new run does not append to them.
func RemoveLogs(dir string) error {
	paths, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return err
	}
	for _, p := range append(paths, filepath.Join(dir, RunText)) {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// MergeDir merges the logs in dir, which must hold one run, into
// dir/run.jsonl and the readable dir/run.log, and returns the merged
// events.
func MergeDir(dir string) ([]Event, error) {
	m, err := MergeRun(dir, 0)
	if err != nil {
		return nil, err
	}
	if len(m.Runs) > 1 {
		return nil, fmt.Errorf("%s holds %d runs, not one: %s", dir, len(m.Runs), m.Others())
	}
	return m.Events, nil
}
