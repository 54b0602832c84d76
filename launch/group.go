package launch

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// GroupArgs returns a Config.Args that starts "conclave group" members of
// one group: member i is named m<i>, listens on its address and joins
// through all the others, founding the group if none answers (--found),
// logging every delivery into dir (which WaitDelivered needs).
func GroupArgs(group, stackName, dir string) func(i int, addrs []string) []string {
	return func(i int, addrs []string) []string {
		var others []string
		for j, a := range addrs {
			if j != i {
				others = append(others, a)
			}
		}
		return []string{"group", "--group", group, "--stack", stackName, "--listen", addrs[i],
			"--contacts", strings.Join(others, ","), "--found", "--member", eventlog.MemberName(i),
			"--log-dir", dir, "--log-deliveries"}
	}
}

// LastView returns the member names (m<i>, sorted) of the last view a
// "conclave group" member printed in lines, its human output. Cluster.View
// gives the same from the member's events.
func LastView(lines []string) []string {
	for _, l := range slices.Backward(lines) {
		if rest, ok := strings.CutPrefix(l, "view "); ok {
			_, ids, _ := strings.Cut(rest, ": ")
			ids, _, _ = strings.Cut(ids, " (")
			var names []string
			for _, id := range strings.Fields(ids) {
				name, _, _ := strings.Cut(id, ".")
				names = append(names, name)
			}
			slices.Sort(names)
			return names
		}
	}
	return nil
}

// View returns the member names (m<i>, sorted) of the last view the
// current process of group member i logged, or nil.
func (c *Cluster) View(i int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[i]; p != nil {
		return slices.Clone(p.view)
	}
	return nil
}

// WaitView waits until the last view group member i logged has exactly
// the members named.
func (c *Cluster) WaitView(ctx context.Context, i int, names ...string) error {
	want := slices.Sorted(slices.Values(names))
	if err := c.waitProc(ctx, i, func(p *proc) bool { return slices.Equal(p.view, want) }); err != nil {
		return fmt.Errorf("m%d never installed a view of %v (last: %v): %w", i, want, c.View(i), err)
	}
	return nil
}

// WaitDelivered waits until group member i logs the delivery of msg; the
// member must log deliveries (--log-deliveries, as GroupArgs has it).
func (c *Cluster) WaitDelivered(ctx context.Context, i int, msg string) error {
	if err := c.waitProc(ctx, i, func(p *proc) bool { return p.delivered[msg] }); err != nil {
		return fmt.Errorf("m%d never delivered %q: %w", i, msg, err)
	}
	return nil
}

// Traffic writes numbered lines ("<prefix>-<k>") to group members' stdin.
type Traffic struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

// NewTraffic returns a Traffic with no sender yet.
func NewTraffic() *Traffic { return &Traffic{stop: make(chan struct{})} }

// Send has member i send a line every interval, until Stop or until its
// stdin breaks (it was killed).
func (t *Traffic) Send(c *Cluster, i int, prefix string, every time.Duration) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for k := 0; ; k++ {
			if c.Write(i, fmt.Sprintf("%s-%d", prefix, k)) != nil {
				return
			}
			select {
			case <-tick.C:
			case <-t.stop:
				return
			}
		}
	}()
}

// Stop stops every sender and waits for them.
func (t *Traffic) Stop() {
	close(t.stop)
	t.wg.Wait()
}
