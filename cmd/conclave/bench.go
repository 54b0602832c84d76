package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/peer"
)

func runBenchFailover(args []string) error {
	fs := newFlags("bench failover", "bench failover [--n 4] [--runs 20] [--mode both]")
	n := fs.Int("n", 4, "number of peers")
	runs := fs.Int("runs", 20, "failovers to measure per mode")
	mode := fs.String("mode", "both", "what to do to the leader: crash (SIGKILL), hang (SIGSTOP) or both")
	hb := fs.Duration("heartbeat", peer.DefaultHeartbeat, "heartbeat interval")
	suspect := fs.Duration("suspect-after", peer.DefaultSuspectAfter, "silence before a peer is declared down")
	keep := fs.String("log-dir", "", "keep the peers' logs here, in a directory per mode; earlier logs there are replaced (default: a temporary directory, removed)")
	useTLS := fs.Bool("tls", false, "run the peers with --tls")
	noticeDelay := fs.Duration("notice-delay", peer.DefaultNoticeDelay, "the peers' --notice-delay (0: urgent notices at once)")
	settle := fs.Duration("settle", 200*time.Millisecond, "how long the cluster idles after it recovered from one fault before the next")
	floor := fs.Bool("floor", false, "after the crashes, measure the same on the floor: processes that only watch their connections close (bench floor-peer)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *n < 2 || *runs < 1 {
		return usagef("--n must be at least 2 and --runs at least 1")
	}
	for _, err := range []error{positive("heartbeat", *hb), positive("suspect-after", *suspect)} {
		if err != nil {
			return err
		}
	}
	if *suspect <= *hb {
		return usagef("--suspect-after (%v) must be longer than --heartbeat (%v)", *suspect, *hb)
	}
	if *noticeDelay < 0 || *settle < 0 {
		return usagef("--notice-delay and --settle must be 0 or more")
	}
	nd := *noticeDelay
	if nd == 0 {
		nd = -1
	}
	if err := checkDir("log-dir", *keep); err != nil {
		return err
	}
	if *mode != "crash" && *mode != "hang" && *mode != "both" {
		return usagef("--mode must be crash, hang or both, not %q", *mode)
	}
	if *floor && *mode == "hang" {
		return usagef("--floor measures crashes: give --mode crash or both")
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("failover benchmark: %d peers on loopback, heartbeat %v, suspect-after %v, notice delay %v, %d runs per mode, %v idle before each fault, TLS %v\n",
		*n, *hb, *suspect, *noticeDelay, *runs, *settle, *useTLS)
	fmt.Println("measured: from the signal to the leader until every survivor has reported the new leader (its leader_change event)")
	var crash []time.Duration
	for _, m := range []string{"crash", "hang", "floor"} {
		if m == "floor" && !*floor || m != "floor" && *mode != "both" && *mode != m {
			continue
		}
		dir := *keep
		if dir == "" {
			if dir, err = os.MkdirTemp("", "conclave-bench-"); err != nil {
				return err
			}
			defer os.RemoveAll(dir)
		} else {
			dir = dir + "/" + m
		}
		cfg := launch.Config{Binary: bin, N: *n, Dir: dir, Heartbeat: *hb, SuspectAfter: *suspect, NoticeDelay: nd, TLS: *useTLS}
		what := "SIGKILL (detected by connection close)"
		switch m {
		case "hang":
			what = "SIGSTOP (detected by heartbeat silence)"
		case "floor":
			what = "SIGKILL of a floor process"
			cfg = launch.Config{Binary: bin, N: *n, Dir: dir, Unauthenticated: true, Args: func(i int, addrs []string) []string {
				return []string{"bench", "floor-peer", "--id", strconv.Itoa(i), "--peers", strings.Join(addrs, ","), "--heartbeat", hb.String()}
			}}
		}
		lat, err := benchFailover(cfg, m, *runs, *settle)
		if err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		slices.Sort(lat)
		fmt.Printf("%-5s %-40s p50 %8.2f ms   p99 %8.2f ms   max %8.2f ms   min %8.2f ms\n",
			m, what, ms(pct(lat, 50)), ms(pct(lat, 99)), ms(lat[len(lat)-1]), ms(lat[0]))
		switch m {
		case "crash":
			crash = lat
		case "floor":
			fmt.Printf("crash / floor: p50 %.2f   p99 %.2f\n", float64(pct(crash, 50))/float64(pct(lat, 50)), float64(pct(crash, 99))/float64(pct(lat, 99)))
		}
	}
	return nil
}

// benchFailover runs one cluster and fails its leader, peer 0, runs times,
// bringing it back in between and letting it idle for settle before each
// fault. It returns each failover's duration. mode "floor" is a crash.
func benchFailover(cfg launch.Config, mode string, runs int, settle time.Duration) ([]time.Duration, error) {
	c, err := launch.Start(cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.StartAll(); err != nil {
		return nil, err
	}
	wait := func(want int, ids []int) (time.Time, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second+4*cfg.SuspectAfter)
		defer cancel()
		return c.WaitLeader(ctx, want, ids...)
	}
	all, survivors := ids(0, cfg.N), ids(1, cfg.N)
	var lat []time.Duration
	for r := 0; r < runs; r++ {
		if _, err := wait(0, all); err != nil {
			return nil, err
		}
		// The fault comes to a cluster that has settled and idles, as
		// most do: not in the wake of the last recovery.
		time.Sleep(settle)
		var t0 time.Time
		if mode != "hang" {
			t0, err = c.Kill(0)
		} else {
			t0, err = c.Pause(0)
		}
		if err != nil {
			return nil, err
		}
		t1, err := wait(1, survivors)
		if err != nil {
			return nil, err
		}
		lat = append(lat, t1.Sub(t0))
		if mode != "hang" {
			err = c.StartPeer(0)
		} else {
			_, err = c.Resume(0)
		}
		if err != nil {
			return nil, err
		}
	}
	return lat, nil
}

// pct returns the p-th percentile of sorted xs (nearest rank).
func pct(xs []time.Duration, p int) time.Duration {
	k := (p*len(xs) + 99) / 100
	return xs[max(k-1, 0)]
}
