package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/peer"
	"github.com/conclave/conclave/report"
)

func runDemo(args []string) error {
	fs := newFlags("demo", "demo [--n 4] [--out DIR] [--pace 400ms]")
	n := fs.Int("n", 4, "number of peers (at least 3)")
	out := fs.String("out", "demo-out", "directory for the logs and the report (its earlier logs are replaced)")
	hb := fs.Duration("heartbeat", peer.DefaultHeartbeat, "heartbeat interval")
	suspect := fs.Duration("suspect-after", peer.DefaultSuspectAfter, "silence before a peer is declared down")
	quiet := fs.Bool("quiet", false, "do not echo the peers' output")
	pace := fs.Duration("pace", 400*time.Millisecond, "pause after each step has converged, so that the report's timeline shows each step apart")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *n < 3 {
		return usagef("--n must be at least 3, got %d", *n)
	}
	if *out == "" {
		return usagef("--out must name a directory")
	}
	if err := checkDir("out", *out); err != nil {
		return err
	}
	if *pace < 0 {
		return usagef("--pace must not be negative, got %v", *pace)
	}
	for _, err := range []error{positive("heartbeat", *hb), positive("suspect-after", *suspect)} {
		if err != nil {
			return err
		}
	}
	if *suspect <= *hb {
		return usagef("--suspect-after (%v) must be longer than --heartbeat (%v)", *suspect, *hb)
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	if err := clearRunDir(*out); err != nil {
		return err
	}
	echo := io.Writer(os.Stdout)
	if *quiet {
		echo = nil
	}
	c, err := launch.Start(launch.Config{Binary: bin, N: *n, Dir: *out, Heartbeat: *hb, SuspectAfter: *suspect, Echo: echo})
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("== conclave demo: %d peers on %s\n", *n, strings.Join(c.Addrs(), ", "))
	all := ids(0, *n)
	var results []demoResult
	step := func(name string, want int, wait []int, act func() (time.Time, error)) error {
		fmt.Printf("== %s\n", name)
		c.Log(eventlog.Step, eventlog.FieldName, name)
		t0, err := act()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second+4**suspect)
		defer cancel()
		t1, err := c.WaitLeader(ctx, want, wait...)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		took := max(t1.Sub(t0), 0)
		c.Log(eventlog.Converged, eventlog.FieldStep, name, eventlog.FieldLeader, want, eventlog.FieldAfterMS, ms(took))
		results = append(results, demoResult{name, want, wait, took})
		return nil
	}
	now := func() (time.Time, error) { return time.Now(), nil }
	steps := []struct {
		name string
		want int
		wait []int
		act  func() (time.Time, error)
	}{
		{"start all peers: the first election waits for every one", 0, all, func() (time.Time, error) { t, _ := now(); return t, c.StartAll() }},
		{"SIGKILL the leader, peer 0: connections close", 1, ids(1, *n), func() (time.Time, error) { return c.Kill(0) }},
		{"SIGSTOP the new leader, peer 1: heartbeats stop", 2, ids(2, *n), func() (time.Time, error) { return c.Pause(1) }},
		{"SIGCONT peer 1: it reconnects", 1, ids(1, *n), func() (time.Time, error) { return c.Resume(1) }},
		{"restart peer 0 with a new incarnation", 0, all, func() (time.Time, error) { t, _ := now(); return t, c.StartPeer(0) }},
	}
	for _, s := range steps {
		if err := step(s.name, s.want, s.wait, s.act); err != nil {
			return err
		}
		time.Sleep(*pace)
	}
	fmt.Println("== stop every peer cleanly (SIGTERM)")
	c.Log(eventlog.Step, eventlog.FieldName, "stop every peer cleanly")
	if err := c.Close(); err != nil {
		return err
	}
	events, err := eventlog.MergeDir(*out)
	if err != nil {
		return err
	}
	path, err := report.WriteDir(*out)
	if err != nil {
		return err
	}
	fmt.Printf("\n== summary (heartbeat %v, suspect-after %v)\n", *hb, *suspect)
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "step\tleader\tpeers\tall reported after")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%v\t%.1f ms\n", r.name, r.leader, r.peers, ms(r.took))
	}
	tw.Flush()
	fmt.Printf("\nmerged log: %s (%d events), %s\nreport:     %s\n",
		filepath.Join(*out, eventlog.RunJSONL), len(events), filepath.Join(*out, eventlog.RunText), path)
	return nil
}

type demoResult struct {
	name   string
	leader int
	peers  []int
	took   time.Duration
}

func ids(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// clearRunDir removes the logs and the report of an earlier run from dir,
// so the new run's logs are not appended to them.
func clearRunDir(dir string) error {
	if err := eventlog.RemoveLogs(dir); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, report.HTMLFile)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
