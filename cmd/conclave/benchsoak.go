package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/peer"
)

func runBenchSoak(args []string) error {
	fs := newFlags("bench soak", "bench soak [--n 4] [--duration 10m] [--burners 2] [--heartbeat 100ms --suspect-after 500ms]")
	n := fs.Int("n", 4, "number of peers")
	duration := fs.Duration("duration", 10*time.Minute, "how long the peers run, with no fault, once they agree on a leader")
	burners := fs.Int("burners", 2, "processes that burn CPU beside the peers the whole time")
	hb := fs.Duration("heartbeat", peer.DefaultHeartbeat, "heartbeat interval")
	suspect := fs.Duration("suspect-after", peer.DefaultSuspectAfter, "silence before a peer is declared down")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *n < 2 || *burners < 0 {
		return usagef("--n must be at least 2 and --burners not negative")
	}
	for _, err := range []error{positive("duration", *duration), positive("heartbeat", *hb), positive("suspect-after", *suspect)} {
		if err != nil {
			return err
		}
	}
	if *suspect <= *hb {
		return usagef("--suspect-after (%v) must be longer than --heartbeat (%v)", *suspect, *hb)
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "conclave-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("soak: %d peers on loopback, heartbeat %v, suspect-after %v, %v with no fault, beside %d CPU-burning processes\n",
		*n, *hb, *suspect, *duration, *burners)
	fmt.Println("counted: every peer_down (a peer declared down when none failed: a false suspicion) and every leader change after the first agreement")
	var burning []*exec.Cmd
	defer func() {
		for _, b := range burning {
			b.Process.Kill()
			b.Wait()
		}
	}()
	for range *burners {
		b := exec.Command("sh", "-c", "while :; do :; done")
		if err := b.Start(); err != nil {
			return fmt.Errorf("starting a CPU burner: %w", err)
		}
		burning = append(burning, b)
	}
	c, err := launch.Start(launch.Config{Binary: bin, N: *n, Dir: dir, Heartbeat: *hb, SuspectAfter: *suspect})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.StartAll(); err != nil {
		return err
	}
	all := ids(0, *n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second+10**suspect)
	defer cancel()
	if _, err := c.WaitLeader(ctx, 0, all...); err != nil {
		return fmt.Errorf("the peers did not agree on leader 0: %w", err)
	}
	// Count from here: what each peer logged before is the start.
	before := make([]int, *n)
	for i := range *n {
		before[i] = len(c.Events(i))
	}
	time.Sleep(*duration) // the soak itself: time passing with no fault
	downs := map[string]int{}
	changes := 0
	var first []string
	for i := range *n {
		for _, e := range c.Events(i)[before[i]:] {
			switch e.Ev {
			case eventlog.PeerDown:
				downs[e.Str(eventlog.FieldCause)]++
				if len(first) < 5 {
					first = append(first, eventlog.Format(e))
				}
			case eventlog.LeaderChange:
				changes++
			}
		}
		if c.PID(i) == 0 {
			return fmt.Errorf("peer %d exited during the soak", i)
		}
	}
	total := 0
	var causes []string
	for cause, k := range downs {
		total += k
		causes = append(causes, fmt.Sprintf("%s %d", cause, k))
	}
	sort.Strings(causes)
	fmt.Printf("false suspicions: %d %v; leader changes: %d\n", total, causes, changes)
	for _, f := range first {
		fmt.Println("  " + f)
	}
	return nil
}
