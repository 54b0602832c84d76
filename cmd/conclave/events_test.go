package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/conclave/conclave/eventlog"
)

func TestEventsFDRefusesBadDescriptors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"peer", "--id", "0", "--peers", "127.0.0.1:1,127.0.0.1:2", "--events-fd", "-1"}, "--events-fd must be"},
		{[]string{"peer", "--id", "0", "--peers", "127.0.0.1:1,127.0.0.1:2", "--events-fd", "987654"}, "not an open file descriptor"},
		{[]string{"group", "--group", "g", "--events-fd", "987654"}, "not an open file descriptor"},
	}
	for _, c := range cases {
		code, stderr := runCaptured(t, c.args)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("conclave %s: status %d, stderr %q; want status 2 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}

// TestGroupEventsOnStdout runs a member with --events-fd 1: its standard
// output is its event log, JSON lines only, deliveries included.
func TestGroupEventsOnStdout(t *testing.T) {
	m := startMember(t, "--group", "g", "--member", "solo", "--events-fd", "1", "--log-deliveries")
	io.WriteString(m.in, "hello\n")
	m.in.Close()
	var evs []string
	for l := range m.lines {
		var e eventlog.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not an event: %q: %v", l, err)
		}
		if e.Node != "solo" || !strings.HasPrefix(e.Str(eventlog.FieldMember), "solo.") {
			t.Errorf("event of another member: %q", l)
		}
		switch e.Ev {
		case eventlog.View:
			if ms, _ := e.Fields[eventlog.FieldMembers].([]any); len(ms) != 1 {
				t.Errorf("view members %v, want solo alone", e.Fields[eventlog.FieldMembers])
			}
		case eventlog.Deliver:
			if e.Str(eventlog.FieldMsg) != "hello" {
				t.Errorf("delivered %q, want hello", e.Str(eventlog.FieldMsg))
			}
		}
		evs = append(evs, e.Ev)
	}
	if err := <-m.done; err != nil {
		t.Fatal(err)
	}
	got := strings.Join(evs, " ")
	for _, want := range []string{eventlog.Start, eventlog.Found, eventlog.View, eventlog.Send, eventlog.Deliver, eventlog.Acked, eventlog.Left, eventlog.Stop} {
		if !strings.Contains(got, want) {
			t.Errorf("events %q lack %s", got, want)
		}
	}
}

// runWithFD3 runs the conclave binary with f as its file descriptor 3 and
// returns its exit status and stderr.
func runWithFD3(t *testing.T, f *os.File, stdin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(conclaveBinary(t), args...)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// TestEventsFDSameLinesAsTheLog runs a member with a log and --events-fd 3:
// the stream holds the very lines of the log, the last (stop) included.
func TestEventsFDSameLinesAsTheLog(t *testing.T) {
	dir := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	read := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(r); read <- b }()
	code, stderr := runWithFD3(t, w, "hello\n", "group", "--group", "g", "--member", "solo", "--log-dir", dir,
		"--log-deliveries", "--events-fd", "3", "--key-file", testKeyFile)
	w.Close()
	stream := <-read
	if code != 0 {
		t.Fatalf("exit status %d:\n%s", code, stderr)
	}
	log, err := os.ReadFile(filepath.Join(dir, "solo.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stream, log) {
		t.Errorf("the stream and the log differ:\nstream:\n%s\nlog:\n%s", stream, log)
	}
	events, bad, _ := eventlog.Read(bytes.NewReader(stream))
	if bad != 0 || len(events) < 2 || events[0].Ev != eventlog.Start || events[len(events)-1].Ev != eventlog.Stop {
		t.Errorf("the stream holds %d events (%d unreadable), want start to stop:\n%s", len(events), bad, stream)
	}
}

// TestEventsFDOnAFullDevice runs a member whose --events-fd is /dev/full:
// it says so on stderr at once, once, and exits with status 1 counting the
// events lost, as for its log.
func TestEventsFDOnAFullDevice(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full")
	}
	defer full.Close()
	code, stderr := runWithFD3(t, full, "hello\n", "group", "--group", "g", "--member", "solo", "--log-deliveries",
		"--events-fd", "3", "--key-file", testKeyFile)
	if code != 1 {
		t.Errorf("exit status %d, want 1:\n%s", code, stderr)
	}
	first := "conclave: writing events to file descriptor 3: write /dev/fd/3: no space left on device"
	if n := strings.Count(stderr, first); n != 1 {
		t.Errorf("stderr says %d times %q, want once:\n%s", n, first, stderr)
	}
	m := regexp.MustCompile(`writing events to file descriptor 3: (\d+) of (\d+) lines lost, the first by: .*no space left on device`).FindStringSubmatch(stderr)
	if m == nil || m[1] != m[2] {
		t.Errorf("stderr does not count every event lost:\n%s", stderr)
	}
}
