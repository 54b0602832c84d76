package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/launch/launchtest"
)

var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// binary builds the conclave command once for the tests that run it as a
// process.
func conclaveBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "conclave-bin-"); built.err == nil {
			built.bin, built.err = launchtest.Build(built.dir)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.RemoveAll(filepath.Dir(testKeyFile))
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for a process's output and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a conclave process started by a test.
type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// startProc runs the conclave binary with args, through bash when limit
// is set (a ulimit command run first).
func startProc(t *testing.T, limit string, stdin string, args ...string) *proc {
	t.Helper()
	bin := conclaveBinary(t)
	var cmd *exec.Cmd
	if limit != "" {
		cmd = exec.Command("bash", append([]string{"-c", limit + ` && exec "$0" "$@"`, bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	p := &proc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	cmd.Stdin = strings.NewReader(stdin)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// waitStderr waits until the process has written a line matching re.
func (p *proc) waitStderr(t *testing.T, re string) {
	t.Helper()
	r := regexp.MustCompile(re)
	deadline := time.Now().Add(20 * time.Second)
	for !r.MatchString(p.stderr.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("stderr never matched %q:\n%s", re, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns the exit status.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait(t)
}

func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the process did not exit:\n%s", p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

// checkLossReported checks stderr says at once, once, that the log cannot
// be written, and at the end how many lines were lost.
func checkLossReported(t *testing.T, code int, stderr, name, cause string) (lost, lines int) {
	t.Helper()
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	first := name + ": cannot write the event log"
	if n := strings.Count(stderr, first); n != 1 {
		t.Errorf("stderr says %d times %q, want once:\n%s", n, first, stderr)
	}
	m := regexp.MustCompile(`event log: (\d+) of (\d+) lines lost, the first by: .*` + cause).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("stderr does not count the lines lost by %q:\n%s", cause, stderr)
	}
	fmt.Sscan(m[1], &lost)
	fmt.Sscan(m[2], &lines)
	if lost < 1 || lost > lines {
		t.Errorf("%d of %d lines lost", lost, lines)
	}
	return lost, lines
}

// fullLog makes <dir>/<name>.jsonl a link to /dev/full: every write to it
// fails with "no space left on device".
func fullLog(t *testing.T, name string) string {
	t.Helper()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	dir := t.TempDir()
	if err := os.Symlink("/dev/full", filepath.Join(dir, name+".jsonl")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPeerLogOnAFullDisk runs a peer whose log is on a full device: it
// says so on stderr at once, once, runs on, and exits with status 1
// saying how many lines were lost.
func TestPeerLogOnAFullDisk(t *testing.T) {
	dir := fullLog(t, "peer-0")
	addrs, err := launch.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "", "", "peer", "--id", "0", "--peers", strings.Join(addrs, ","), "--log-dir", dir)
	p.waitStderr(t, "peer-0: cannot write the event log: .*no space left on device")
	// It goes on: a second peer comes up, and peer 0 logs what it sees.
	q := startProc(t, "", "", "peer", "--id", "1", "--peers", strings.Join(addrs, ","), "--log-dir", t.TempDir())
	time.Sleep(500 * time.Millisecond)
	code := p.stop(t)
	q.stop(t)
	lost, lines := checkLossReported(t, code, p.stderr.String(), "peer-0", "no space left on device")
	if lost != lines || lines < 4 {
		t.Errorf("%d of %d lines lost; want every line, at least start, conn_up, peer_up and stop", lost, lines)
	}
}

// TestGroupLogOnAFullDisk runs a group member whose log is on a full
// device: it used to exit 0.
func TestGroupLogOnAFullDisk(t *testing.T) {
	dir := fullLog(t, "solo")
	p := startProc(t, "", "hello\n", "group", "--group", "g", "--member", "solo", "--log-dir", dir, "--log-deliveries")
	code := p.wait(t)
	lost, lines := checkLossReported(t, code, p.stderr.String(), "solo", "no space left on device")
	if lost != lines || lines < 6 {
		t.Errorf("%d of %d lines lost; want every line of start, found, view, send, deliver, acked, left, stop", lost, lines)
	}
}

// TestPeerLogCutShort runs a peer whose log file may not grow past 8 KiB
// (ulimit -f): writes stop in the middle of a line. The log keeps whole
// lines only, the process says so at once and exits with status 1.
func TestPeerLogCutShort(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash for ulimit")
	}
	dir := t.TempDir()
	addrs, err := launch.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	args := func(id string) []string {
		return []string{"peer", "--id", id, "--peers", strings.Join(addrs, ","), "--log-dir", dir,
			"--heartbeat", "10ms", "--suspect-after", "1s", "--log-heartbeats"}
	}
	p := startProc(t, "ulimit -f 8", "", args("0")...)
	q := startProc(t, "", "", args("1")...)
	p.waitStderr(t, "peer-0: cannot write the event log: .*file too large")
	time.Sleep(300 * time.Millisecond)
	code := p.stop(t)
	q.stop(t)
	checkLossReported(t, code, p.stderr.String(), "peer-0", "file too large")
	path := filepath.Join(dir, "peer-0.jsonl")
	events, bad, err := eventlog.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	raw, _ := os.ReadFile(path)
	if bad != 0 || len(raw) == 0 || raw[len(raw)-1] != '\n' {
		t.Errorf("the log holds part of a line (%d unreadable lines, %d bytes); its end:\n%s", bad, st.Size(), raw[max(len(raw)-300, 0):])
	}
	if len(events) == 0 || events[0].Ev != eventlog.Start {
		t.Errorf("the log does not begin with start: %d events", len(events))
	}
}
