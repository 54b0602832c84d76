package group

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTotalTCP multicasts 1 KiB messages under the total stack among
// 4 members on loopback, every member sending; an op is one message sent
// and delivered at every member. allocs/delivery is the process's
// allocations (senders, readers, loops, connections) per message per
// member; cpu-µs/msg is the process's CPU time (user and system) per
// message.
func BenchmarkTotalTCP(b *testing.B) { benchGroup(b, "total", 4, 1024) }

// BenchmarkVsyncTCP is BenchmarkTotalTCP under the vsync stack.
func BenchmarkVsyncTCP(b *testing.B) { benchGroup(b, "vsync", 4, 1024) }

// startBench starts n members of a group under stackName on loopback, and
// returns them once each has seen the others, its views read.
func startBench(b *testing.B, ctx context.Context, stackName string, n int) []*Group {
	var gs []*Group
	contact := ""
	for i := range n {
		cfg := Config{Name: "bench", Stack: stackName, Listen: "127.0.0.1:0", Member: fmt.Sprintf("m%d", i), Key: testKey}
		if contact != "" {
			cfg.Contacts = []string{contact}
		}
		g, err := Join(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { g.Close() })
		contact = g.Me().Addr
		gs = append(gs, g)
	}
	for _, g := range gs {
		for len(g.View().Members) != n {
			select {
			case <-g.Views():
			case <-ctx.Done():
				b.Fatal("no full view")
			}
		}
	}
	for _, g := range gs {
		for len(g.Views()) > 0 {
			<-g.Views()
		}
	}
	return gs
}

func benchGroup(b *testing.B, stackName string, n, size int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gs := startBench(b, ctx, stackName, n)
	payload := make([]byte, size)
	per := (b.N + n - 1) / n
	total := per * n
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for got := 0; got < total; {
				select {
				case <-g.Deliveries():
					got++
				case v := <-g.Views():
					b.Errorf("%s installed view %v while measuring (a member suspected)", g.Me().ID, v.IDs())
					return
				case <-ctx.Done():
					b.Error("deliveries stopped")
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			window := make(chan (<-chan error), 256)
			for range per {
				if len(window) == cap(window) {
					if err := <-<-window; err != nil {
						b.Error(err)
						return
					}
				}
				done, err := g.Go(payload)
				if err != nil {
					b.Error(err)
					return
				}
				window <- done
			}
			for len(window) > 0 {
				<-<-window
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-µs/msg")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(total*n), "allocs/delivery")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(total*n), "B/delivery")
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkTotalSyncTCP sends 1 KiB messages under the total stack among
// 4 members on loopback, one at a time from the coordinator: an op is one
// Send, which returns once every member holds the message. ns/op is the
// mean latency of a synchronous send; p50-µs its median.
func BenchmarkTotalSyncTCP(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gs := startBench(b, ctx, "total", 4)
	for _, g := range gs {
		go func() {
			for range g.Deliveries() {
			}
		}()
	}
	payload := make([]byte, 1024)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := gs[0].Send(ctx, payload); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
}
