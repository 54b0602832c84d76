package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// TestSecondRunIntoOneLogDir runs a group member twice into one --log-dir:
// logs merge and report take the second run alone and say that the
// directory holds two (they used to mix both into one run).
func TestSecondRunIntoOneLogDir(t *testing.T) {
	dir := t.TempDir()
	var incs []uint64
	for range 2 {
		m := startMember(t, "--group", "g", "--member", "solo", "--log-dir", dir)
		m.expect(t, `^view 1@`)
		m.in.Close()
		for range m.lines {
		}
		if err := <-m.done; err != nil {
			t.Fatal(err)
		}
		ev, _, _ := eventlog.ReadFile(filepath.Join(dir, "solo.jsonl"))
		incs = append(incs, ev[len(ev)-1].Inc)
		time.Sleep(10 * time.Millisecond)
	}
	for _, args := range [][]string{{"logs", "merge", dir}, {"report", dir}, {"logs", "merge", "--run", "1", dir}} {
		code, stderr := runCaptured(t, args)
		if code != 0 || !strings.Contains(stderr, dir+" holds 2 runs") {
			t.Errorf("conclave %s: status %d; stderr does not say the directory holds 2 runs:\n%s", strings.Join(args, " "), code, stderr)
		}
		want, n := incs[1], "2"
		if len(args) > 2 && args[2] == "--run" {
			want, n = incs[0], "1"
		}
		if !strings.Contains(stderr, "took run "+n) {
			t.Errorf("conclave %s: stderr does not say it took run %s:\n%s", strings.Join(args, " "), n, stderr)
		}
		merged, _, err := eventlog.ReadFile(filepath.Join(dir, eventlog.RunJSONL))
		if err != nil || len(merged) < 4 {
			t.Fatalf("merged log: %d events, %v", len(merged), err)
		}
		for _, e := range merged {
			if e.Inc != want {
				t.Fatalf("conclave %s: the merged log mixes runs: %v", strings.Join(args, " "), eventlog.Format(e))
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "report.html")); err != nil {
		t.Error(err)
	}
}
