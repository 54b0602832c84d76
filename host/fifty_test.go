package host_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/group"
	"github.com/conclave/conclave/host"
	"github.com/conclave/conclave/node"
	"github.com/conclave/conclave/peer"
	"github.com/conclave/conclave/transport"
)

const groups = 50

// TestMain lets the test binary play the other process of
// TestOneListenerForFiftyGroups.
func TestMain(m *testing.M) {
	if os.Getenv("CONCLAVE_FIFTY_OTHER") != "" {
		if err := other(); err != nil {
			fmt.Fprintln(os.Stderr, "other process:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// other is the second process: peer 1 of the cluster and a member of
// every group, through the first process's address, once told on its
// standard input that the groups exist. It stays until its input ends.
func other() error {
	addrs := strings.Split(os.Getenv("CONCLAVE_FIFTY_PEERS"), ",")
	key, err := transport.ParseKey(os.Getenv("CONCLAVE_FIFTY_KEY"))
	if err != nil {
		return err
	}
	h, err := host.New(host.Config{Listen: addrs[1], Key: key})
	if err != nil {
		return err
	}
	n, err := node.New(node.Config{Peer: peer.Config{ID: 1}, Addrs: addrs, Host: h})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	go n.Run(ctx)
	defer cancel()
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil { // the groups are founded
		return err
	}
	for i := range groups {
		jctx, jcancel := context.WithTimeout(context.Background(), 20*time.Second)
		g, err := group.Join(jctx, group.Config{Name: fmt.Sprintf("g%d", i), Stack: "total", Host: h,
			Member: "other", Contacts: []string{addrs[0]}})
		jcancel()
		if err != nil {
			return err
		}
		go func() {
			for range g.Deliveries() {
			}
		}()
	}
	fmt.Println("joined")
	io.Copy(io.Discard, in)
	return nil
}

// TestOneListenerForFiftyGroups runs, in this process, a peer core and a
// member of 50 groups on one host, with another process as the other peer
// and the other member of every group. The process has exactly one
// listening socket, and its goroutines grow by a small constant per group.
func TestOneListenerForFiftyGroups(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts sockets in /proc")
	}
	key := transport.NewKey()
	h, err := host.New(host.Config{Listen: "127.0.0.1:0", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	free, err := host.New(host.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{h.Addr(), free.Addr()}
	free.Close() // its port is for the other process
	leader := make(chan int, 16)
	n, err := node.New(node.Config{Peer: peer.Config{ID: 0}, Addrs: addrs, Host: h, OnEvent: func(e eventlog.Event) {
		if l, ok := e.Int("leader"); ok && e.Ev == "leader_change" {
			leader <- l
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- n.Run(ctx) }()
	defer func() { cancel(); <-ran }()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CONCLAVE_FIFTY_OTHER=1", "CONCLAVE_FIFTY_PEERS="+strings.Join(addrs, ","), "CONCLAVE_FIFTY_KEY="+key.String())
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	if l := <-leader; l != 0 {
		t.Fatalf("leader %d, want 0", l)
	}
	base := runtime.NumGoroutine()

	jctx, jcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer jcancel()
	var gs []*group.Group
	for i := range groups {
		g, err := group.Join(jctx, group.Config{Name: fmt.Sprintf("g%d", i), Stack: "total", Host: h, Member: "this"})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		gs = append(gs, g)
	}
	io.WriteString(stdin, "founded\n")
	out := bufio.NewScanner(stdout)
	if !out.Scan() || out.Text() != "joined" {
		t.Fatalf("the other process did not join: %q", out.Text())
	}
	for i, g := range gs {
		for len(g.View().Members) != 2 {
			select {
			case <-g.Views():
			case <-jctx.Done():
				t.Fatalf("group %d never had 2 members: %v", i, g.View().IDs())
			}
		}
		// A message returns once the other member has it: each group's
		// traffic reaches its own member.
		if err := g.Send(jctx, []byte("hello")); err != nil {
			t.Fatalf("group %d: %v", i, err)
		}
		if d := <-g.Deliveries(); string(d.Data) != "hello" {
			t.Fatalf("group %d delivered %q", i, d.Data)
		}
	}
	perGroup := float64(runtime.NumGoroutine()-base) / groups
	t.Logf("goroutines: %d with the peer core, %.2f more per group (one peer, 2 connections per group)", base, perGroup)
	// Per group: its loop, a reader and a writer for each of its two
	// connections, and the pump of its stream of views, which holds views
	// this test did not read.
	if perGroup > 7 {
		t.Errorf("%.2f goroutines per group, want at most 7", perGroup)
	}
	if ls := listeningSockets(t); ls != 1 {
		t.Errorf("%d listening sockets, want 1", ls)
	}
}

// listeningSockets counts this process's TCP sockets in state LISTEN.
func listeningSockets(t *testing.T) int {
	t.Helper()
	mine := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			mine[strings.TrimSuffix(inode, "]")] = true
		}
	}
	n := 0
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 9 && f[3] == "0A" && mine[f[9]] {
				n++
			}
		}
	}
	return n
}
