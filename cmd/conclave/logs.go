package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/report"
)

// runFlag adds --run to fs.
func runFlag(fs *flag.FlagSet) *int {
	return fs.Int("run", 0, "which run of DIR, when it holds several (1: the earliest; 0: the latest)")
}

// runDir parses the command line of a command taking one log directory
// and --run.
func runDir(fs *flag.FlagSet, args []string, n *int) (string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usagef("usage: conclave %s", fs.Name()+" DIR [--run N]")
	}
	if *n < 0 {
		return "", usagef("--run must be a run number from 1, or 0 for the latest")
	}
	if st, err := os.Stat(pos[0]); err != nil || !st.IsDir() {
		return "", usagef("%s is not a directory of event logs", pos[0])
	}
	return pos[0], nil
}

// sayRuns tells, on w, which run of a directory holding several was
// taken.
func sayRuns(w io.Writer, dir string, m *eventlog.Merged) {
	if m == nil || len(m.Runs) < 2 {
		return
	}
	fmt.Fprintf(w, "note: %s holds %d runs (processes whose lives overlap make one run):\n", dir, len(m.Runs))
	for i, r := range m.Runs {
		mark := " "
		if i+1 == m.N {
			mark = "*"
		}
		fmt.Fprintf(w, "  %s run %d: %v\n", mark, i+1, r)
	}
	fmt.Fprintf(w, "took run %d (--run N takes another); a log directory best holds one run\n", m.N)
}

func runLogsMerge(args []string) error {
	fs := newFlags("logs merge", "logs merge DIR [--run N]")
	n := runFlag(fs)
	dir, err := runDir(fs, args, n)
	if err != nil {
		return err
	}
	m, err := eventlog.MergeRun(dir, *n)
	if err != nil {
		return err
	}
	sayRuns(os.Stderr, dir, m)
	if m.Lost > 0 {
		fmt.Fprintf(os.Stderr, "warning: the run's processes lost %d lines of their logs (log_lost events)\n", m.Lost)
	}
	fmt.Printf("merged %d events into %s and %s\n", len(m.Events), filepath.Join(dir, eventlog.RunJSONL), filepath.Join(dir, eventlog.RunText))
	return nil
}

func runReport(args []string) error {
	fs := newFlags("report", "report DIR [--run N]")
	n := runFlag(fs)
	dir, err := runDir(fs, args, n)
	if err != nil {
		return err
	}
	path, m, err := report.WriteRun(dir, *n)
	if err != nil {
		return err
	}
	sayRuns(os.Stderr, dir, m)
	fmt.Println("wrote", path)
	return nil
}
