package main

import (
	"bufio"
	"context"
	"fmt"
	"github.com/conclave/conclave/transport"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestGroupBadConfigurationExitsWithStatus2(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.xml")
	os.WriteFile(bad, []byte("<stack name=\"b\">\n<layer kind=\"detect\" heartbeat=\"soon\"/></stack>"), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"group"}, "--group is required"},
		{[]string{"group", "--group", "g", "--stack", "fifo"}, `no stack "fifo"`},
		{[]string{"group", "--group", "g", "--stack", bad}, "bad.xml:2: layer \"detect\": heartbeat=\"soon\" is not a duration"},
		{[]string{"group", "--group", "g", "--listen", "nowhere"}, "not host:port"},
		{[]string{"group", "--group", "g", "--contacts", "127.0.0.1:1,x"}, `--contacts "x" is not host:port`},
		{[]string{"group", "--group", "g", "extra"}, "unexpected argument"},
		{[]string{"bench", "group", "--members", "1"}, "at least 2"},
		{[]string{"bench", "group", "--mode", "fast"}, "--mode takes"},
		{[]string{"bench", "group", "--mode", "rate", "--rate", "0"}, "--rate must be at least 1"},
	}
	for _, c := range cases {
		code, stderr := runCaptured(t, c.args)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("conclave %s: status %d, stderr %q; want status 2 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}

// member runs "conclave group" in-process with piped stdin and stdout.
type member struct {
	in    *io.PipeWriter
	lines chan string
	done  chan error
}

// testKeyFile is a cluster key the tests' members share.
var testKeyFile = func() string {
	dir, err := os.MkdirTemp("", "conclave-key-")
	if err != nil {
		panic(err)
	}
	path := filepath.Join(dir, "cluster.key")
	if err := transport.WriteKeyFile(path, transport.NewKey()); err != nil {
		panic(err)
	}
	return path
}()

// startMember runs "conclave group" with args and the tests' key.
func startMember(t *testing.T, args ...string) *member {
	t.Helper()
	args = append(args, "--key-file", testKeyFile)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	m := &member{in: inW, lines: make(chan string, 1024), done: make(chan error, 1)}
	go func() {
		err := groupCmd{stdin: inR, stdout: outW, stderr: io.Discard}.run(args)
		outW.Close()
		m.done <- err
	}()
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			m.lines <- sc.Text()
		}
		close(m.lines)
	}()
	t.Cleanup(func() { inW.Close() })
	return m
}

// expect reads lines until one matches re and returns its submatches.
func (m *member) expect(t *testing.T, re string) []string {
	t.Helper()
	r := regexp.MustCompile(re)
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-m.lines:
			if !ok {
				t.Fatalf("output ended before a line matching %q: %v", re, <-m.done)
			}
			if s := r.FindStringSubmatch(l); s != nil {
				return s
			}
		case <-timeout:
			t.Fatalf("no line matching %q", re)
		}
	}
}

// TestGroupCommand has two members form a group from the command line,
// exchange lines in total order, and leave when their input ends.
func TestGroupCommand(t *testing.T) {
	a := startMember(t, "--group", "chat", "--stack", "total", "--member", "alice")
	addr := a.expect(t, `^joined group "chat" as (alice\.\w+) at (\S+) \(stack total\)$`)
	alice := addr[1]
	a.expect(t, `^view 1@`+alice+`: `+alice+`$`)
	b := startMember(t, "--group", "chat", "--stack", "total", "--member", "bob", "--contacts", addr[2])
	bob := b.expect(t, `^joined group "chat" as (bob\.\w+) at`)[1]
	two := `^view 2@` + alice + `: ` + alice + ` ` + bob
	a.expect(t, two+` \(joined: `+bob+`\)$`)
	b.expect(t, two+`$`)

	io.WriteString(b.in, "hello from bob\n")
	io.WriteString(a.in, "hello from alice\n")
	var got [2][]string
	for i, m := range []*member{a, b} {
		for range 2 {
			got[i] = append(got[i], m.expect(t, `^(\S+> .*)$`)[1])
		}
	}
	if got[0][0] != got[1][0] || got[0][1] != got[1][1] {
		t.Errorf("deliveries in different orders: %q and %q", got[0], got[1])
	}

	b.in.Close()
	a.expect(t, `^view 3@`+alice+`: `+alice+` \(gone: `+bob+`\)$`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, m := range []*member{b, a} {
		if m == a {
			a.in.Close()
		}
		select {
		case err := <-m.done:
			if err != nil {
				t.Errorf("exit: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("a member did not exit at the end of its input")
		}
	}
}

// benchGroupOutput runs "conclave bench group" with args in this process
// and returns what it printed.
func benchGroupOutput(t *testing.T, args ...string) []byte {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	errc := make(chan error, 1)
	go func() {
		errc <- runBenchGroup(args)
		w.Close()
	}()
	out, _ := io.ReadAll(r)
	os.Stdout = old
	if err := <-errc; err != nil {
		t.Fatalf("bench group: %v\n%s", err, out)
	}
	return out
}

// TestBenchGroupRuns runs a short group benchmark and checks it reports
// a rate and latencies for each stack and mode.
func TestBenchGroupRuns(t *testing.T) {
	out := benchGroupOutput(t, "--members", "3", "--duration", "500ms", "--warmup", "300ms", "--inflight", "64")
	row := regexp.MustCompile(`(?m)^(vsync|total) +(async|sync) +key +([0-9]+) +[0-9.]+ +[0-9.]+ +[0-9.]+$`)
	rows := row.FindAllStringSubmatch(string(out), -1)
	if len(rows) != 4 {
		t.Fatalf("want 4 result rows, got %d:\n%s", len(rows), out)
	}
	for _, r := range rows {
		if r[3] == "0" {
			t.Errorf("%s %s delivered nothing:\n%s", r[1], r[2], out)
		}
	}
}

// TestStackValidationMatchesPeer: a stack file whose detector would
// suspect members between heartbeats is refused with status 2 and the
// sentence conclave peer has for the same settings (it used to be
// accepted).
func TestStackValidationMatchesPeer(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "slow.xml")
	os.WriteFile(bad, []byte(`<stack name="slow"><layer kind="detect" heartbeat="1s" suspect-after="500ms"/>
<layer kind="membership"/><layer kind="vsync"/></stack>`), 0o644)
	sentence := "suspect-after (500ms) must be longer than the heartbeat interval (1s)"
	code, stderr := runCaptured(t, []string{"peer", "--id", "0", "--peers", "127.0.0.1:1,127.0.0.1:2", "--heartbeat", "1s", "--suspect-after", "500ms"})
	if code != 2 || !strings.Contains(stderr, sentence) {
		t.Fatalf("conclave peer: status %d, stderr %q; want 2 and %q", code, stderr, sentence)
	}
	code, stderr = runCaptured(t, []string{"group", "--group", "g", "--stack", bad})
	if code != 2 || !strings.Contains(stderr, `slow.xml:1: layer "detect": `+sentence) {
		t.Fatalf("conclave group: status %d, stderr %q; want 2 and %q", code, stderr, sentence)
	}
}

// TestGroupJoinFailures: conclave group exits 1, saying why, when its
// contacts do not answer (unless --found: then it founds the group), and
// when the group runs another stack (naming both). It used to found a
// group of its own and exit 0, or to be let in, excluded, and go on alone.
func TestGroupJoinFailures(t *testing.T) {
	code, stderr := runCaptured(t, []string{"group", "--group", "g", "--contacts", "127.0.0.1:1"})
	if want := "no member of the group answered at 127.0.0.1:1"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("contacts nobody listens on: status %d, stderr %q; want 1 and %q", code, stderr, want)
	}
	m := startMember(t, "--group", "g", "--contacts", "127.0.0.1:1", "--found", "--member", "carol")
	m.expect(t, `^joined group "g" as carol\.\w+`)
	m.expect(t, `^view 1@carol\.\w+: carol\.\w+$`)

	a := startMember(t, "--group", "chat", "--stack", "total", "--member", "alice")
	addr := a.expect(t, `^joined group "chat" as (alice\.\w+) at (\S+) \(stack total\)$`)[2]
	code, stderr = runCaptured(t, []string{"group", "--group", "chat", "--stack", "vsync", "--contacts", addr, "--key-file", testKeyFile})
	if want := `group "chat": the group runs stack "total" (`; code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, `this member stack "vsync" (`) {
		t.Errorf("another stack: status %d, stderr %q; want 1 and %q ... vsync", code, stderr, want)
	}
}

// TestBenchGroupRate runs the fixed-rate mode: each stack reaches the
// rate asked for (the messages scheduled in the window, whatever their
// latency), every one is delivered everywhere, and its percentiles are
// in order.
func TestBenchGroupRate(t *testing.T) {
	out := benchGroupOutput(t, "--members", "3", "--duration", "500ms", "--warmup", "100ms", "--mode", "rate", "--rate", "600", "--security", "none")
	row := regexp.MustCompile(`(?m)^(vsync|total) +rate +none +([0-9]+)  send -> delivered everywhere p50 ([0-9.]+) p99 ([0-9.]+) p999 ([0-9.]+) ms; send -> stable p50 ([0-9.]+) p99 ([0-9.]+) p999 ([0-9.]+) ms$`)
	rows := row.FindAllStringSubmatch(string(out), -1)
	if len(rows) != 2 {
		t.Fatalf("want 2 result rows, got %d:\n%s", len(rows), out)
	}
	for _, r := range rows {
		var v [7]float64
		for i := range v {
			fmt.Sscan(r[i+2], &v[i])
		}
		if v[0] < 540 || v[0] > 660 {
			t.Errorf("%s: %v msgs/s scheduled in the window, want about 600:\n%s", r[1], v[0], out)
		}
		if !(v[1] <= v[2] && v[2] <= v[3] && v[4] <= v[5] && v[5] <= v[6]) {
			t.Errorf("%s: percentiles out of order:\n%s", r[1], out)
		}
	}
}
