package netns

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/launch/launchtest"
)

// binary is the conclave executable built for these tests.
var binary string

func TestMain(m *testing.M) { os.Exit(launchtest.RunTests(m, &binary)) }

const (
	peers   = 4
	hb      = 50 * time.Millisecond
	suspect = 400 * time.Millisecond
)

// all is every peer id.
var all = []int{0, 1, 2, 3}

// newNet builds a network of n hosts, or skips the test when namespaces
// cannot be used here (fails instead with CONCLAVE_STRICT=1).
func newNet(t *testing.T, hosts int) *Net {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CONCLAVE_STRICT") == "1" {
			t.Fatalf("network namespaces are required with CONCLAVE_STRICT=1: %v", err)
		}
		t.Skipf("network namespaces unavailable: %v", err)
	}
	nw, err := New(hosts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Error(err)
		}
	})
	return nw
}

// start runs peer i on host i of a fresh network, one per host, and waits
// until all of them report leader 0.
func start(t *testing.T) (*Net, *launch.Cluster) {
	t.Helper()
	nw := newNet(t, peers)
	var addrs []string
	for i := range peers {
		addrs = append(addrs, net.JoinHostPort(nw.Addr(i), "7000"))
	}
	c, err := launch.Start(launch.Config{
		Binary: binary, N: peers, Dir: t.TempDir(), Addrs: addrs,
		Heartbeat: hb, SuspectAfter: suspect, LogHeartbeats: true,
		Command: func(i int, args []string) *exec.Cmd { return nw.Command(i, binary, args...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			launchtest.Keep(t, c.Dir())
		}
	})
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 0, all...)
	return nw, c
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wait(t *testing.T, c *launch.Cluster, leader int, ids ...int) {
	t.Helper()
	if _, err := c.WaitLeader(ctx(t), leader, ids...); err != nil {
		t.Fatal(err)
	}
}

func waitOutput(t *testing.T, c *launch.Cluster, i int, subs ...string) {
	t.Helper()
	if err := c.WaitOutput(ctx(t), i, subs...); err != nil {
		t.Fatal(err)
	}
}

// down lists the lines peer i prints when it declares ids down.
func down(ids ...int) []string {
	var out []string
	for _, id := range ids {
		out = append(out, fmt.Sprintf("peer %d is down", id))
	}
	return out
}

// The faults are logged before they are applied, under the simulator's
// event names and fields, so the checkers know what the network did.

func partition(t *testing.T, c *launch.Cluster, nw *Net, groups ...[]int) {
	t.Helper()
	c.Log("net_partition", "groups", groups)
	if err := nw.Partition(groups...); err != nil {
		t.Fatal(err)
	}
}

func bridge(t *testing.T, c *launch.Cluster, nw *Net, a, b []int, via int) {
	t.Helper()
	c.Log("net_bridge", "a", a, "b", b, "bridge", via)
	if err := nw.Bridge(a, b, via); err != nil {
		t.Fatal(err)
	}
}

func cut(t *testing.T, c *launch.Cluster, nw *Net, from, to int) {
	t.Helper()
	c.Log("net_cut", "from", from, "to", to)
	if err := nw.Cut(from, to); err != nil {
		t.Fatal(err)
	}
}

func heal(t *testing.T, c *launch.Cluster, nw *Net) {
	t.Helper()
	c.Log("net_heal")
	if err := nw.Heal(); err != nil {
		t.Fatal(err)
	}
}

// history stops the cluster, runs every peer checker on its merged log and
// returns the log.
func history(t *testing.T, c *launch.Cluster) []eventlog.Event {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	h, err := eventlog.MergeDir(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	// No ConvergeWithin: how fast real processes recover on a loaded
	// machine is not asserted; WaitLeader's deadline bounds it.
	for _, v := range check.Peer(h, check.Options{N: peers, AllHeartbeats: true}) {
		t.Error(v)
	}
	return h
}

// silentPartition checks what a silent partition must look like: every
// peer declared down while the network was faulty was detected by
// silence, and after the heal nobody was declared down again before the
// cluster was stopped.
func silentPartition(t *testing.T, h []eventlog.Event) {
	t.Helper()
	faulty, healed := false, false
	for _, e := range h {
		switch {
		case e.Node == "control" && strings.HasPrefix(e.Ev, "net_"):
			faulty = e.Ev != "net_heal"
			healed = healed || e.Ev == "net_heal"
		case e.Node == "control" && e.Ev == "proc_term":
			return
		case e.Ev != "peer_down":
		case faulty && e.Str("cause") != "silence":
			t.Errorf("partition detected by %s, not silence: %s", e.Str("cause"), eventlog.Format(e))
		case healed && !faulty:
			t.Errorf("peer declared down after the heal: %s", eventlog.Format(e))
		}
	}
}

// TestNetIsolateLeader cuts the leader's host off: the majority elects 1,
// the leader sees everyone go, and after the heal 0 leads again.
func TestNetIsolateLeader(t *testing.T) {
	nw, c := start(t)
	partition(t, c, nw, []int{0}, []int{1, 2, 3})
	wait(t, c, 1, 1, 2, 3)
	waitOutput(t, c, 0, down(1, 2, 3)...)
	heal(t, c, nw)
	wait(t, c, 0, all...)
	silentPartition(t, history(t, c))
}

// TestNetOneWayCut drops at host 1 what host 0 sends. That alone kills
// the connection both ways: 1 elects itself while 2 and 3 keep 0, two
// leaders with no minority partition, until the heal.
func TestNetOneWayCut(t *testing.T) {
	nw, c := start(t)
	cut(t, c, nw, 0, 1)
	wait(t, c, 1, 1)
	waitOutput(t, c, 0, down(1)...)
	if l, _ := c.Leader(2); l != 0 {
		t.Errorf("peer 2, which still reaches 0, reports leader %d", l)
	}
	heal(t, c, nw)
	wait(t, c, 0, all...)
	history(t, c)
}

// TestNetBridge splits {0} from {2,3} while 1 sees both sides: 2 and 3
// elect 1, the bridge keeps 0, and after the heal everyone agrees on 0.
func TestNetBridge(t *testing.T) {
	nw, c := start(t)
	bridge(t, c, nw, []int{0}, []int{2, 3}, 1)
	wait(t, c, 1, 2, 3)
	waitOutput(t, c, 0, down(2, 3)...)
	if l, _ := c.Leader(1); l != 0 {
		t.Errorf("the bridge, peer 1, reports leader %d, want 0: it still sees 0", l)
	}
	heal(t, c, nw)
	wait(t, c, 0, all...)
	silentPartition(t, history(t, c))
}

// TestNetKill SIGKILLs the leader across the network and restarts it: the
// survivors see its connections close at once.
func TestNetKill(t *testing.T) {
	_, c := start(t)
	if _, err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 1, 1, 2, 3)
	if err := c.StartPeer(0); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 0, all...)
	h := history(t, c)
	if got := causes(h, 0); !slices.Equal(got, []string{"conn_closed", "conn_closed", "conn_closed"}) {
		t.Errorf("peer 0's death was detected by %v, want conn_closed by each survivor", got)
	}
}

// TestNetHang SIGSTOPs the leader and resumes it: the others detect it by
// silence alone, and take it back once it runs.
func TestNetHang(t *testing.T) {
	_, c := start(t)
	if _, err := c.Pause(0); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 1, 1, 2, 3)
	if _, err := c.Resume(0); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 0, all...)
	h := history(t, c)
	if got := causes(h, 0); !slices.Equal(got, []string{"silence", "silence", "silence"}) {
		t.Errorf("peer 0's hang was detected by %v, want silence by each other peer", got)
	}
}

// causes returns the cause of every peer_down about peer id before the
// cluster was stopped.
func causes(h []eventlog.Event, id int) []string {
	var out []string
	for _, e := range h {
		if e.Node == "control" && e.Ev == "proc_term" {
			break
		}
		if p, _ := e.Int("peer"); e.Ev == "peer_down" && p == id {
			out = append(out, e.Str("cause"))
		}
	}
	return out
}

// TestCloseCleansUp leaves a stopped process inside a host, as a failed
// test would: Close kills it and removes every namespace.
func TestCloseCleansUp(t *testing.T) {
	nw := newNet(t, 2)
	cmd := nw.Command(1, "sh", "-c", "echo ready && exec sleep 60")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Once it has printed, it runs inside the host.
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := nw.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-ctx(t).Done():
		t.Fatal("the process inside the host survived Close")
	}
	list, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{nw.sw, nw.hosts[0], nw.hosts[1]} {
		if slices.Contains(strings.Fields(string(list)), ns) {
			t.Errorf("namespace %s is still there after Close", ns)
		}
	}
}
