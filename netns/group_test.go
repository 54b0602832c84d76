package netns

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/launch/launchtest"
)

// TestNetGroupPartitionAndHeal runs four group members on four hosts
// under traffic, splits the network in halves (each half goes on as a
// group of its own), heals it (the halves merge into one view), and checks
// the group properties on the members' logs.
func TestNetGroupPartitionAndHeal(t *testing.T) {
	for _, st := range []string{"vsync", "total"} {
		t.Run(st, func(t *testing.T) {
			nw := newNet(t, peers)
			var addrs []string
			for i := range peers {
				addrs = append(addrs, net.JoinHostPort(nw.Addr(i), "7100"))
			}
			dir := t.TempDir()
			c, err := launch.Start(launch.Config{
				Binary: binary, N: peers, Dir: dir, Addrs: addrs, Stdin: true,
				Args:    launch.GroupArgs("net", st, dir),
				Command: func(i int, args []string) *exec.Cmd { return nw.Command(i, binary, args...) },
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				c.Close()
				if t.Failed() {
					launchtest.Keep(t, c.Dir())
				}
			})
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(c.StartPeer(0))
			must(c.WaitOutput(ctx(t), 0, "joined group"))
			for i := 1; i < peers; i++ {
				must(c.StartPeer(i))
			}
			for _, i := range all {
				must(c.WaitView(ctx(t), i, "m0", "m1", "m2", "m3"))
			}
			tr := launch.NewTraffic()
			for _, i := range all {
				tr.Send(c, i, fmt.Sprintf("m%d", i), 5*time.Millisecond)
			}
			must(c.WaitDelivered(ctx(t), 3, "m0-50"))

			c.Log("net_partition", "groups", [][]int{{0, 1}, {2, 3}})
			must(nw.Partition([]int{0, 1}, []int{2, 3}))
			for _, i := range []int{0, 1} {
				must(c.WaitView(ctx(t), i, "m0", "m1"))
			}
			for _, i := range []int{2, 3} {
				must(c.WaitView(ctx(t), i, "m2", "m3"))
			}
			must(c.WaitDelivered(ctx(t), 1, "m0-200"))
			must(c.WaitDelivered(ctx(t), 3, "m2-200"))

			c.Log("net_heal")
			must(nw.Heal())
			for _, i := range all {
				must(c.WaitView(ctx(t), i, "m0", "m1", "m2", "m3"))
			}
			// Messages m2 and m3 sent as their group dissolved stayed
			// in it; what m3 sends from now on reaches m0.
			k := lastSent(c.Output(3), "m3")
			must(c.WaitDelivered(ctx(t), 0, fmt.Sprintf("m3-%d", k+100)))
			tr.Stop()
			for _, i := range all {
				c.CloseStdin(i)
			}
			for _, i := range all {
				// A member whose group dissolved into the other may
				// report messages of its last view as possibly lost
				// (exit 1): the checkers judge what it delivered.
				if err := c.WaitExit(ctx(t), i); err != nil {
					t.Logf("m%d: %v", i, err)
				}
			}
			h, err := eventlog.MergeDir(dir)
			must(err)
			for _, v := range check.Group(h, check.GroupOptions{Total: st == "total"}) {
				t.Error(v)
			}
		})
	}
}

// lastSent returns the highest k of the lines "<prefix>-<k>" a member
// printed as delivered.
func lastSent(lines []string, prefix string) int {
	k := -1
	for _, l := range lines {
		if _, msg, ok := strings.Cut(l, "> "+prefix+"-"); ok {
			if n, err := strconv.Atoi(msg); err == nil {
				k = max(k, n)
			}
		}
	}
	return k
}
