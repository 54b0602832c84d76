package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conclave/conclave/dirclient"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/transport"
)

func runBenchDirectory(args []string) error {
	fs := newFlags("bench directory", "bench directory [--replicas 3] [--runs 20] [--duration 3s]")
	n := fs.Int("replicas", 3, "number of replicas (3 or 5)")
	runs := fs.Int("runs", 20, "failovers to measure per mode")
	duration := fs.Duration("duration", 3*time.Second, "how long to measure announce throughput")
	clients := fs.Int("clients", 16, "concurrent clients in the throughput run, each with its own connections")
	mode := fs.String("mode", "both", "what to do to the leader: crash (SIGKILL), hang (SIGSTOP) or both")
	keep := fs.String("log-dir", "", "keep the replicas' logs and data here; earlier ones there are replaced (default: a temporary directory, removed)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case *n != 3 && *n != 5:
		return usagef("--replicas must be 3 or 5, not %d", *n)
	case *runs < 0 || *clients < 1:
		return usagef("--runs must be 0 or more and --clients at least 1")
	case *mode != "crash" && *mode != "hang" && *mode != "both":
		return usagef("--mode must be crash, hang or both, not %q", *mode)
	}
	if err := positive("duration", *duration); err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	dir := *keep
	if dir == "" {
		if dir, err = os.MkdirTemp("", "conclave-bench-dir-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.RemoveAll(filepath.Join(dir, "data")); err != nil {
		return err
	}
	c, err := launch.Start(launch.Config{Binary: bin, N: *n, Dir: dir, Args: func(i int, addrs []string) []string {
		return []string{"directory", "--id", strconv.Itoa(i), "--peers", strings.Join(addrs, ","),
			"--data", filepath.Join(dir, "data", strconv.Itoa(i)), "--log-dir", dir}
	}})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.StartAll(); err != nil {
		return err
	}
	key, err := transport.ReadKeyFile(filepath.Join(dir, launch.KeyFileName))
	if err != nil {
		return err
	}
	newClient := func(attempt time.Duration) (*dirclient.Client, error) {
		return dirclient.New(dirclient.Config{Replicas: c.Addrs(), Key: key, Attempt: attempt})
	}
	// The first announce waits for the first election.
	warm, err := newClient(dirclient.DefaultAttempt)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	_, err = warm.Announce(ctx, "warm-up", "total", nil)
	cancel()
	warm.Close()
	if err != nil {
		return err
	}
	fmt.Printf("directory benchmark: %d replicas on loopback (conclave directory, bbolt stores syncing every write), %d clients, %v\n", *n, *clients, *duration)
	if err := benchAnnounces(newClient, *clients, *duration); err != nil {
		return err
	}
	if *runs == 0 {
		return nil
	}
	fmt.Println("failover: from the signal to the leader until an announce (a new topic) is acknowledged; the client tries each replica for at most 50 ms")
	for _, m := range []string{"crash", "hang"} {
		if *mode != "both" && *mode != m {
			continue
		}
		lat, err := benchDirFailover(c, newClient, m, *runs)
		if err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		slices.Sort(lat)
		what := "SIGKILL (its connections close)"
		if m == "hang" {
			what = "SIGSTOP (election timeout)"
		}
		fmt.Printf("%-5s %-32s p50 %8.2f ms   p99 %8.2f ms   max %8.2f ms   min %8.2f ms   (%d runs)\n",
			m, what, ms(pct(lat, 50)), ms(pct(lat, 99)), ms(lat[len(lat)-1]), ms(lat[0]), len(lat))
	}
	return nil
}

// benchAnnounces measures acknowledged announces: one client at a time
// for latency, then clients at once for throughput.
func benchAnnounces(newClient func(time.Duration) (*dirclient.Client, error), clients int, d time.Duration) error {
	run := func(k int) ([]time.Duration, time.Duration, error) {
		var (
			mu   sync.Mutex
			lat  []time.Duration
			errs []error
			wg   sync.WaitGroup
		)
		start := time.Now()
		for j := 0; j < k; j++ {
			cl, err := newClient(dirclient.DefaultAttempt)
			if err != nil {
				return nil, 0, err
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer cl.Close()
				var mine []time.Duration
				for i := 0; time.Since(start) < d; i++ {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					t0 := time.Now()
					_, err := cl.Announce(ctx, fmt.Sprintf("topic-%d", (j*7919+i)%1000), "total", nil)
					cancel()
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return lat, time.Since(start), errors.Join(errs...)
	}
	for _, k := range []int{1, clients} {
		lat, took, err := run(k)
		if err != nil {
			return err
		}
		if len(lat) == 0 {
			return errors.New("no announce was acknowledged")
		}
		slices.Sort(lat)
		fmt.Printf("announce, %2d client(s): %8.0f acknowledged/s   p50 %6.2f ms   p99 %6.2f ms   max %6.2f ms\n",
			k, float64(len(lat))/took.Seconds(), ms(pct(lat, 50)), ms(pct(lat, 99)), ms(lat[len(lat)-1]))
	}
	return nil
}

// benchDirFailover fails the leader runs times and measures how long
// until an announce is acknowledged again.
func benchDirFailover(c *launch.Cluster, newClient func(time.Duration) (*dirclient.Client, error), mode string, runs int) ([]time.Duration, error) {
	cl, err := newClient(50 * time.Millisecond)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	announce := func(topic string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := cl.Announce(ctx, topic, "total", nil)
		return err
	}
	var lat []time.Duration
	for r := 0; r < runs; r++ {
		if err := announce(fmt.Sprintf("%s-warm-%d", mode, r)); err != nil {
			return nil, err
		}
		l := cl.Leader()
		if l < 0 {
			return nil, errors.New("the directory named no leader")
		}
		var t0 time.Time
		if mode == "crash" {
			t0, err = c.Kill(l)
		} else {
			t0, err = c.Pause(l)
		}
		if err != nil {
			return nil, err
		}
		if err := announce(fmt.Sprintf("%s-%d", mode, r)); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
		var back time.Time
		if mode == "crash" {
			back, err = time.Now(), c.StartPeer(l)
		} else {
			back, err = c.Resume(l)
		}
		if err != nil {
			return nil, err
		}
		// The replica is back once it follows the new leader.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err = c.WaitEvent(ctx, l, func(e eventlog.Event) bool {
			lead, ok := e.Int(eventlog.FieldLeader)
			return e.Ev == eventlog.DirRole && !e.TS.Before(back) && e.Str(eventlog.FieldRole) == "follower" && ok && lead >= 0 && lead != l
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("replica %d did not follow a new leader after its %s: %w", l, mode, err)
		}
	}
	return lat, nil
}
