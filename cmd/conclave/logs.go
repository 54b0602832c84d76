package main

import (
	"fmt"
	"path/filepath"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/report"
)

func runLogs(args []string) error {
	if len(args) == 0 || args[0] != "merge" {
		return usagef("usage: conclave logs merge DIR")
	}
	fs := newFlags("logs merge", "logs merge DIR")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("usage: conclave logs merge DIR")
	}
	dir := fs.Arg(0)
	events, err := eventlog.MergeDir(dir)
	if err != nil {
		return err
	}
	fmt.Printf("merged %d events into %s and %s\n", len(events), filepath.Join(dir, eventlog.RunJSONL), filepath.Join(dir, eventlog.RunText))
	return nil
}

func runReport(args []string) error {
	fs := newFlags("report", "report DIR")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("usage: conclave report DIR")
	}
	path, err := report.WriteDir(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Println("wrote", path)
	return nil
}
