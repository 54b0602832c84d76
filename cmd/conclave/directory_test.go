package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/dirclient"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/launch/launchtest"
	"github.com/conclave/conclave/transport"
)

// startDirectory launches three directory replicas with their data in
// dir/data, each also given the arguments extra returns for it, and a
// client of them.
func startDirectory(t *testing.T, dir string, extra ...func(i int) []string) (*launch.Cluster, *dirclient.Client) {
	t.Helper()
	c, err := launch.Start(launch.Config{Binary: conclaveBinary(t), N: 3, Dir: dir, Args: func(i int, addrs []string) []string {
		args := []string{"directory", "--id", strconv.Itoa(i), "--peers", strings.Join(addrs, ","),
			"--data", filepath.Join(dir, "data", strconv.Itoa(i)), "--log-dir", dir}
		for _, f := range extra {
			args = append(args, f(i)...)
		}
		return args
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			launchtest.Keep(t, dir)
		}
	})
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	key, err := transport.ReadKeyFile(filepath.Join(dir, launch.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := dirclient.New(dirclient.Config{Replicas: c.Addrs(), Key: key, Attempt: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return c, cl
}

// TestDirectoryKeepsAcknowledgedAnnouncesAcrossKillingEveryReplica
// announces topics from several clients, SIGKILLs every replica while
// announces are in flight, restarts them all from their data directories,
// and checks that every acknowledged announce is there, with its group;
// twenty times in a row.
func TestDirectoryKeepsAcknowledgedAnnouncesAcrossKillingEveryReplica(t *testing.T) {
	dir := t.TempDir()
	c, reader := startDirectory(t, dir)
	key, _ := transport.ReadKeyFile(filepath.Join(dir, launch.KeyFileName))
	acked := map[string]string{} // topic → group
	var mu sync.Mutex
	for round := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		enough := make(chan struct{})
		var once sync.Once
		for w := range 4 {
			cl, err := dirclient.New(dirclient.Config{Replicas: c.Addrs(), Key: key, Attempt: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer cl.Close()
				for k := 0; ctx.Err() == nil; k++ {
					topic := fmt.Sprintf("r%d-w%d-%d", round, w, k)
					r, err := cl.Announce(ctx, topic, "total", nil)
					if err != nil {
						return
					}
					mu.Lock()
					acked[topic] = r.Group
					if len(acked) >= 5*(round+1) {
						once.Do(func() { close(enough) })
					}
					mu.Unlock()
				}
			}()
		}
		select {
		case <-enough:
		case <-time.After(30 * time.Second):
			cancel()
			t.Fatalf("round %d: too few announces acknowledged", round)
		}
		for i := range 3 { // announces are still in flight
			if _, err := c.Kill(i); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		wg.Wait()
		for i := range 3 {
			if err := c.StartPeer(i); err != nil {
				t.Fatal(err)
			}
		}
		lctx, lcancel := context.WithTimeout(context.Background(), 30*time.Second)
		l, err := reader.List(lctx)
		lcancel()
		if err != nil {
			t.Fatalf("round %d: listing after the restart: %v", round, err)
		}
		have := map[string]string{}
		for _, tp := range l.Topics {
			have[tp.Topic] = tp.Group
		}
		mu.Lock()
		for topic, g := range acked {
			if got, ok := have[topic]; !ok || got != g {
				t.Errorf("round %d: acknowledged announce of %s (group %s) lost after SIGKILL of every replica: now %q, %v", round, topic, g, got, ok)
			}
		}
		n := len(acked)
		mu.Unlock()
		if t.Failed() {
			return
		}
		t.Logf("round %d: %d acknowledged announces, all there after the restart", round, n)
	}
	c.Close()
	h, bad, err := eventlog.ReadDir(dir)
	if err != nil || bad > 0 {
		t.Fatalf("reading the logs: %v (%d bad lines)", err, bad)
	}
	applies := 0
	for _, e := range h {
		if e.Ev == eventlog.DirApply {
			applies++
		}
	}
	if applies == 0 {
		t.Fatal("the replicas logged no applied command: nothing to check")
	}
	for _, v := range check.Directory(h) {
		t.Error(v)
	}
}

// TestDirectoryRefusesBadInputAtStart runs conclave directory with a
// max-groups too small, a data directory of another replica, and a
// corrupt store, and conclave topics with no directory running.
func TestDirectoryRefusesBadInputAtStart(t *testing.T) {
	bin := conclaveBinary(t)
	dir := t.TempDir()
	peers := "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"
	run := func(args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := run("directory", "--id", "0", "--peers", peers, "--data", dir+"/x", "--max-groups", "2"); code != 2 || !strings.Contains(out, "must be above the number of shipped QoS") {
		t.Errorf("--max-groups 2: status %d, %s", code, out)
	}
	if code, out := run("directory", "--id", "0", "--peers", "127.0.0.1:1,127.0.0.1:2", "--data", dir+"/x"); code != 2 || !strings.Contains(out, "3 or 5 replicas") {
		t.Errorf("two replicas: status %d, %s", code, out)
	}
	// A data directory made by replica 1, opened as replica 0.
	c, cl := startDirectory(t, filepath.Join(dir, "run"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.Announce(ctx, "prices", "total", nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
	data1 := filepath.Join(dir, "run", "data", "1")
	if code, out := run("directory", "--id", "0", "--peers", peers, "--data", data1, "--log-dir", ""); code != 2 || !strings.Contains(out, "replica 1") {
		t.Errorf("the data directory of replica 1 as replica 0: status %d, %s", code, out)
	}
	// The same store, cut short inside the pages bbolt uses (its first
	// pages hold the meta pages and the root of the tree).
	db := filepath.Join(data1, storeFile)
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, b[:5000], 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := run("directory", "--id", "1", "--peers", peers, "--data", data1, "--log-dir", ""); code != 1 || !strings.Contains(out, "corrupt") {
		t.Errorf("a truncated store: status %d, %s", code, out)
	}
	if code, out := run("topics", "--directory", peers, "--timeout", "1s"); code != 1 || !strings.Contains(out, "replica 2 (127.0.0.1:3)") {
		t.Errorf("topics with no directory running: status %d, %s", code, out)
	}
}
