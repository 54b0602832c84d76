package launch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch/launchtest"
)

// members launches n "conclave group" processes of one group, each
// joining through all the others, with stdin pipes and delivery logs.
func members(t *testing.T, n int, stackName string) *Cluster {
	t.Helper()
	dir := t.TempDir()
	c, err := Start(Config{Binary: binary, N: n, Dir: dir, Stdin: true, Args: GroupArgs("test", stackName, dir)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			launchtest.Keep(t, c.Dir())
		}
	})
	return c
}

// TestRealGroupSurvivesKilledMembers runs four real members under steady
// traffic, SIGKILLs one, then the coordinator (the sequencer in total),
// restarts the first, and checks view agreement, view synchrony, sender
// FIFO, total order and acknowledged delivery on their event logs.
func TestRealGroupSurvivesKilledMembers(t *testing.T) {
	for _, st := range []string{"vsync", "total"} {
		t.Run(st, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			c := members(t, 4, st)
			must(c.StartPeer(0))
			must(c.WaitOutput(ctx, 0, "joined group"))
			for i := 1; i < 4; i++ {
				must(c.StartPeer(i))
			}
			for i := range 4 {
				must(c.WaitView(ctx, i, "m0", "m1", "m2", "m3"))
			}

			tr := NewTraffic()
			for i := range 4 {
				tr.Send(c, i, fmt.Sprintf("m%d", i), 2*time.Millisecond)
			}
			// Progress marks are a member's own messages: under load a
			// member may be suspected and excluded for a while, and miss
			// others' messages meanwhile.
			must(c.WaitDelivered(ctx, 3, "m3-100"))
			_, err := c.Kill(1)
			must(err)
			for _, i := range []int{0, 2, 3} {
				must(c.WaitView(ctx, i, "m0", "m2", "m3"))
			}
			must(c.WaitDelivered(ctx, 3, "m3-300"))
			_, err = c.Kill(0) // the coordinator
			must(err)
			for _, i := range []int{2, 3} {
				must(c.WaitView(ctx, i, "m2", "m3"))
			}
			must(c.WaitDelivered(ctx, 2, "m2-500"))
			must(c.StartPeer(1)) // a new incarnation
			tr.Send(c, 1, "m1again", 2*time.Millisecond)
			for _, i := range []int{1, 2, 3} {
				must(c.WaitView(ctx, i, "m1", "m2", "m3"))
			}
			must(c.WaitDelivered(ctx, 1, "m1again-100"))
			tr.Stop()

			// Every survivor sends what it has read, leaves, and exits 0:
			// none of its messages was reported possibly lost.
			for _, i := range []int{1, 2, 3} {
				c.CloseStdin(i)
			}
			for _, i := range []int{1, 2, 3} {
				if err := c.WaitExit(ctx, i); err != nil {
					t.Errorf("m%d: %v; its output ends %q", i, err, tail(c.Output(i), 5))
				}
			}
			h, err := eventlog.MergeDir(c.Dir())
			must(err)
			delivered, fromOthers := 0, 0
			for _, e := range h {
				if e.Ev == "deliver" {
					delivered++
					if e.Str("from") != e.Str("member") {
						fromOthers++
					}
				}
			}
			t.Logf("%d events, %d deliveries, %d of others' messages", len(h), delivered, fromOthers)
			if fromOthers < 1000 {
				t.Errorf("only %d deliveries of others' messages", fromOthers)
			}
			for _, v := range check.Group(h, check.GroupOptions{Total: st == "total"}) {
				t.Error(v)
			}
		})
	}
}

func tail(xs []string, n int) []string { return xs[max(len(xs)-n, 0):] }

// TestRealGroupMergesBackWithoutFounderContacts starts the group as the
// README does: m0 founds it without --contacts, m1 and m2 join through m0.
// A member paused until the others exclude it, the founder included, must
// find its way back once resumed. Before, it went on alone for ever: the
// founder had no contacts to probe, and ignored the probes of others.
func TestRealGroupMergesBackWithoutFounderContacts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	c, err := Start(Config{Binary: binary, N: 3, Dir: dir, Stdin: true, Args: func(i int, addrs []string) []string {
		args := []string{"group", "--group", "readme", "--listen", addrs[i], "--member", eventlog.MemberName(i), "--log-dir", dir}
		if i > 0 {
			args = append(args, "--contacts", addrs[0])
		}
		return args
	}})
	must(err)
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			launchtest.Keep(t, c.Dir())
		}
	})
	must(c.StartPeer(0))
	must(c.WaitOutput(ctx, 0, "joined group"))
	must(c.StartPeer(1))
	must(c.StartPeer(2))
	all := []string{"m0", "m1", "m2"}
	for i := range 3 {
		must(c.WaitView(ctx, i, all...))
	}
	for _, paused := range []int{2, 0} {
		_, err := c.Pause(paused)
		must(err)
		var others []string
		for i, name := range all {
			if i != paused {
				others = append(others, name)
			}
		}
		for i := range 3 {
			if i != paused {
				must(c.WaitView(ctx, i, others...))
			}
		}
		_, err = c.Resume(paused)
		must(err)
		for i := range 3 {
			must(c.WaitView(ctx, i, all...))
		}
	}
	h, err := eventlog.MergeDir(c.Dir())
	must(err)
	for _, v := range check.Group(h, check.GroupOptions{}) {
		t.Error(v)
	}
}
