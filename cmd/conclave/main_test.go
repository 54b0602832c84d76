package main

import (
	"os"
	"strings"
	"testing"
)

// TestBadConfigurationExitsWithStatus2 checks that invalid command lines
// are refused with status 2 and a sentence naming the problem.
func TestBadConfigurationExitsWithStatus2(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"peer", "--id", "0"}, "--peers is required"},
		{[]string{"peer", "--peers", "127.0.0.1:1,127.0.0.1:2"}, "--id is required"},
		{[]string{"peer", "--id", "5", "--peers", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"}, "id 5 is out of range"},
		{[]string{"peer", "--id", "0", "--peers", "127.0.0.1:1,127.0.0.1:1"}, "same address"},
		{[]string{"peer", "--id", "0", "--peers", "127.0.0.1:1,localhost"}, "not host:port"},
		{[]string{"peer", "--id", "0", "--peers", "127.0.0.1:1,127.0.0.1:2", "--heartbeat", "fast"}, "invalid value"},
		{[]string{"peer", "--id", "0", "--peers", "127.0.0.1:1,127.0.0.1:2", "--heartbeat", "1s", "--suspect-after", "500ms"}, "must be longer"},
		{[]string{"demo", "--n", "2"}, "at least 3"},
		{[]string{"bench", "nothing"}, "usage"},
		{[]string{"logs"}, "usage"},
		{[]string{"nosuchcommand"}, "unknown command"},
	}
	for _, c := range cases {
		code, stderr := runCaptured(t, c.args)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("conclave %s: status %d, stderr %q; want status 2 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}

// runCaptured runs the command line in-process and returns its status and
// what it wrote to stderr.
func runCaptured(t *testing.T, args []string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	code := run(args)
	os.Stderr = old
	w.Close()
	b := make([]byte, 1<<16)
	n, _ := r.Read(b)
	r.Close()
	return code, string(b[:n])
}
