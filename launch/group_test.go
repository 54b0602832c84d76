package launch

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
)

// members launches n "conclave group" processes of one group, each
// joining through all the others, with stdin pipes and delivery logs.
func members(t *testing.T, n int, stackName string) *Cluster {
	t.Helper()
	dir := t.TempDir()
	c, err := Start(Config{Binary: binary, N: n, Dir: dir, Stdin: true,
		Args: func(i int, addrs []string) []string {
			var others []string
			for j, a := range addrs {
				if j != i {
					others = append(others, a)
				}
			}
			return []string{"group", "--group", "test", "--stack", stackName, "--listen", addrs[i],
				"--contacts", strings.Join(others, ","), "--member", fmt.Sprintf("m%d", i),
				"--log-dir", dir, "--log-deliveries"}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			keep(t, c.Dir())
		}
	})
	return c
}

// viewOf returns the members of the last view a member printed.
func viewOf(lines []string) []string {
	for _, l := range slices.Backward(lines) {
		if rest, ok := strings.CutPrefix(l, "view "); ok {
			_, ids, _ := strings.Cut(rest, ": ")
			ids, _, _ = strings.Cut(ids, " (")
			return strings.Fields(ids)
		}
	}
	return nil
}

// names turns member ids ("m1.3fa2...") into member names ("m1").
func names(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i], _, _ = strings.Cut(id, ".")
	}
	slices.Sort(out)
	return out
}

// waitView waits until each of who prints a view of exactly the members
// want (by name).
func waitView(ctx context.Context, t *testing.T, c *Cluster, who []int, want ...string) {
	t.Helper()
	slices.Sort(want)
	for _, i := range who {
		if err := c.WaitLines(ctx, i, func(lines []string) bool { return slices.Equal(names(viewOf(lines)), want) }); err != nil {
			t.Fatalf("m%d never printed a view of %v (last: %v): %v", i, want, viewOf(c.Output(i)), err)
		}
	}
}

// waitDelivered waits until member i has printed the delivery of msg.
func waitDelivered(ctx context.Context, t *testing.T, c *Cluster, i int, msg string) {
	t.Helper()
	if err := c.WaitLines(ctx, i, func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.HasSuffix(l, "> "+msg) })
	}); err != nil {
		t.Fatalf("m%d never delivered %q: %v", i, msg, err)
	}
}

// sender writes numbered lines to members' stdin, one every interval,
// until stopped or the member's stdin breaks (it was killed).
type sender struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func (s *sender) start(c *Cluster, i int, prefix string, every time.Duration) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for k := 0; ; k++ {
			if c.Write(i, fmt.Sprintf("%s-%d", prefix, k)) != nil {
				return
			}
			select {
			case <-tick.C:
			case <-s.stop:
				return
			}
		}
	}()
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
			c := members(t, 4, st)
			if err := c.StartPeer(0); err != nil {
				t.Fatal(err)
			}
			if err := c.WaitOutput(ctx, 0, "joined group"); err != nil {
				t.Fatal(err)
			}
			for i := 1; i < 4; i++ {
				if err := c.StartPeer(i); err != nil {
					t.Fatal(err)
				}
			}
			all := []int{0, 1, 2, 3}
			waitView(ctx, t, c, all, "m0", "m1", "m2", "m3")

			s := &sender{stop: make(chan struct{})}
			for _, i := range all {
				s.start(c, i, fmt.Sprintf("m%d", i), 2*time.Millisecond)
			}
			waitDelivered(ctx, t, c, 2, "m3-100")
			if _, err := c.Kill(1); err != nil {
				t.Fatal(err)
			}
			waitView(ctx, t, c, []int{0, 2, 3}, "m0", "m2", "m3")
			waitDelivered(ctx, t, c, 2, "m3-300")
			if _, err := c.Kill(0); err != nil { // the coordinator
				t.Fatal(err)
			}
			waitView(ctx, t, c, []int{2, 3}, "m2", "m3")
			waitDelivered(ctx, t, c, 3, "m2-500")
			if err := c.StartPeer(1); err != nil { // a new incarnation
				t.Fatal(err)
			}
			s.start(c, 1, "m1again", 2*time.Millisecond)
			waitView(ctx, t, c, []int{1, 2, 3}, "m1", "m2", "m3")
			waitDelivered(ctx, t, c, 2, "m1again-100")
			close(s.stop)
			s.wg.Wait()

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
			if err != nil {
				t.Fatal(err)
			}
			delivered := 0
			for _, e := range h {
				if e.Ev == "deliver" {
					delivered++
				}
			}
			t.Logf("%d events, %d deliveries", len(h), delivered)
			for _, v := range check.Group(h, check.GroupOptions{Total: st == "total"}) {
				t.Error(v)
			}
		})
	}
}

func tail(xs []string, n int) []string { return xs[max(len(xs)-n, 0):] }
