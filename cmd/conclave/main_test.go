package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
	cases = append(cases, badFlagCases(t)...)
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

// badFlagCases are command lines with a bad flag or argument, each of
// which used to be accepted, or to fail with status 1.
func badFlagCases(t *testing.T) []struct {
	args []string
	want string
} {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "stack.xml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "cluster.key")
	if code, stderr := runCaptured(t, []string{"keygen", key}); code != 0 {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	peer := []string{"peer", "--id", "0", "--peers", "127.0.0.1:1,127.0.0.1:2"}
	grp := []string{"group", "--group", "g"}
	with := func(base []string, more ...string) []string { return append(append([]string{}, base...), more...) }
	return []struct {
		args []string
		want string
	}{
		{with(peer, "--http", "nonsense"), `--http "nonsense" is not host:port`},
		{with(peer, "--http", "127.0.0.1:99999"), "the port must be a number from 0 to 65535"},
		{with(peer, "--heartbeat", "0s"), "--heartbeat must be positive, not 0s"},
		{with(peer, "--suspect-after", "-1s"), "--suspect-after must be positive"},
		{with(grp, "--listen", "127.0.0.1:x"), "the port must be a number"},
		{with(grp, "--contacts", "127.0.0.1:0"), "the port must be a number from 1 to 65535"},
		{with(grp, "--contacts", ":7400"), "has no host"},
		{with(grp, "--join-timeout", "0s"), "--join-timeout must be positive"},
		{with(grp, "--member", "../../etc/x"), "letters, digits"},
		{with(grp, "--stack", fifo), "no <stack> element"},
		{with(grp, "--stack", "/dev/zero"), "/dev/zero is a device"},
		{with(grp, "--stack", dir+"/"), "is a directory"},
		{[]string{"demo", "--heartbeat", "0s"}, "--heartbeat must be positive"},
		{[]string{"demo", "--out", ""}, "--out must name a directory"},
		{[]string{"demo", "extra"}, "unexpected argument"},
		{[]string{"demo", "--pace", "-1s"}, "--pace must not be negative"},
		{[]string{"demo", "pubsub", "extra"}, "unexpected argument"},
		{[]string{"move", "--topic", "t", "--group", "g1"}, "--directory is required"},
		{[]string{"move", "--directory", "127.0.0.1:1", "--group", "g1"}, "--topic is required"},
		{[]string{"move", "--directory", "127.0.0.1:1", "--topic", "t"}, "--group is required"},
		{[]string{"directory", "--id", "0", "--peers", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "--data", "x", "--move-spacing", "9999999"}, "move spacing is 9999999"},
		{[]string{"demo", "pubsub", "--pace", "0s"}, "--pace must be positive"},
		{[]string{"bench", "failover", "--heartbeat", "0s"}, "--heartbeat must be positive"},
		{[]string{"bench", "failover", "--suspect-after", "50ms"}, "must be longer than --heartbeat"},
		{[]string{"bench", "failover", "--settle", "-1s"}, "--notice-delay and --settle must be 0 or more"},
		{with(peer, "--notice-delay", "-1ms"), "--notice-delay must be 0 or more"},
		{[]string{"bench", "floor-peer", "--id", "0"}, "--peers must list"},
		{[]string{"bench", "failover", "--floor", "--mode", "hang"}, "--floor measures crashes"},
		{[]string{"bench", "group", "--duration", "0s"}, "--duration must be positive"},
		{[]string{"bench", "group", "--warmup", "-1s"}, "--warmup must not be negative"},
		{[]string{"bench", "group", "--size", "2000000"}, "over the largest message"},
		{[]string{"bench"}, "usage: conclave bench failover|directory|group"},
		{[]string{"logs", "merge"}, "usage: conclave logs merge DIR"},
		{[]string{"logs", "merge", dir, "other"}, "usage: conclave logs merge DIR"},
		{[]string{"logs", "merge", filepath.Join(dir, "none")}, "is not a directory"},
		{[]string{"logs", "merge", dir, "--run", "-1"}, "--run must be"},
		{[]string{"report", filepath.Join(dir, "none")}, "is not a directory"},
		{[]string{"report", dir, "--run", "x"}, "invalid value"},
		{[]string{"keygen"}, "usage: conclave keygen FILE"},
		{[]string{"keygen", key}, "already exists"},
		{[]string{"publish", "--topic", "t"}, "--directory is required"},
		{[]string{"publish", "--directory", "127.0.0.1:1"}, "--topic is required"},
		{[]string{"publish", "--directory", "127.0.0.1:1", "--topic", "t", "--qos", "/dev/zero"}, "/dev/zero is a device"},
		{[]string{"publish", "--directory", "127.0.0.1:1", "--topic", "t", "--wait-members", "-1"}, "--wait-members must not be negative"},
		{[]string{"publish", "--directory", "nonsense", "--topic", "t"}, "is not host:port"},
		{[]string{"publish", "--directory", "127.0.0.1:1", "--topic", "a b", "--topic", "c"}, "cannot hold one"},
		{[]string{"publish", "--directory", "127.0.0.1:1", "--topic", "t", "--events-fd", "1"}, "--events-fd 1"},
		{[]string{"subscribe", "--directory", "127.0.0.1:1"}, "--topic is required"},
		{[]string{"subscribe", "--directory", "127.0.0.1:1", "--topic", "t", "--topic", "t"}, "given twice"},
		{[]string{"subscribe", "--directory", "127.0.0.1:1", "--topic", "t", "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"subscribe", "--directory", "127.0.0.1:1", "--topic", "t", "--name", "a/b"}, "letters, digits"},
		{[]string{"subscribe", "--directory", "127.0.0.1:1", "--topic", "t", "extra"}, "unexpected argument"},
		{with(peer, "--log-dir", key), "--log-dir " + key + " is not a directory"},
		{with(grp, "--log-dir", key), "is not a directory"},
		{[]string{"demo", "--out", key}, "is not a directory"},
		{[]string{"bench", "failover", "--log-dir", key}, "is not a directory"},
	}
}

// TestHelpListsEveryCommand checks that conclave --help lists every
// command, and that each of them answers --help with status 0.
func TestHelpListsEveryCommand(t *testing.T) {
	code, help := runCaptured(t, []string{"--help"})
	if code != 0 {
		t.Fatalf("--help: status %d", code)
	}
	for _, cmd := range commands {
		c := cmd.name
		if !strings.Contains(help, "\n  "+c+" ") {
			t.Errorf("conclave --help does not list %q:\n%s", c, help)
		}
		if code, out := runCaptured(t, append(strings.Fields(c), "--help")); code != 0 || !strings.Contains(out, "usage: conclave "+c) {
			t.Errorf("conclave %s --help: status %d:\n%s", c, code, out)
		}
	}
}
