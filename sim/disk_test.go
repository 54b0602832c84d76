package sim

import (
	"slices"
	"testing"
	"time"
)

func newDiskNet(t *testing.T, seed uint64) *Net {
	t.Helper()
	n, err := NewNet(NetConfig{N: 2, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	n.StartAll()
	return n
}

// TestDiskCrashKeepsSyncedOnly: what was synced before a crash survives
// it, what was written after the last sync is lost, and so is a write
// whose sync was still under way.
func TestDiskCrashKeepsSyncedOnly(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		n := newDiskNet(t, seed)
		d := n.Disk(0)
		d.Write("log", 0, []byte("one"))
		d.Write("state", 0, []byte("x"))
		synced := false
		d.Sync("log", func() { synced = true })
		if !n.RunUntil(n.Now()+time.Second, func() bool { return synced }) {
			t.Fatal("the sync never completed")
		}
		d.Write("log", 3, []byte("two")) // never synced
		d.Write("new", 0, []byte("y"))   // never synced
		if got := string(d.Read("log")); got != "onetwo" {
			t.Fatalf("the process reads %q before the crash, want onetwo", got)
		}
		n.Crash(0)
		n.Start(0)
		if got := string(d.Read("log")); got != "one" {
			t.Fatalf("after the crash the log holds %q, want the synced one", got)
		}
		if d.Read("state") != nil || d.Read("new") != nil {
			t.Fatalf("files never synced survived the crash: %v", d.Files())
		}
		// A sync under way at the crash loses its writes, and its
		// callback never runs.
		d.Write("log", 3, []byte("three"))
		called := false
		d.Sync("log", func() { called = true })
		n.Crash(0)
		n.RunFor(time.Second)
		n.Start(0)
		n.RunFor(time.Second)
		if got := string(d.Read("log")); got != "one" || called {
			t.Fatalf("a sync cut short by a crash: the log holds %q (want one), callback ran: %v", got, called)
		}
	})
}

// TestDiskSurvivesCleanExit: a process that exits cleanly (SIGTERM) loses
// nothing it wrote: the page cache outlives it.
func TestDiskSurvivesCleanExit(t *testing.T) {
	n := newDiskNet(t, 1)
	d := n.Disk(1)
	d.Write("f", 0, []byte("kept"))
	n.Stop(1)
	n.Start(1)
	if got := string(d.Read("f")); got != "kept" {
		t.Fatalf("after a clean exit the file holds %q", got)
	}
}

// TestDiskSyncsInOrder: syncs complete in the order they were asked for,
// after times drawn from the seed: the same seed gives the same times.
func TestDiskSyncsInOrder(t *testing.T) {
	run := func(seed uint64) []time.Duration {
		n := newDiskNet(t, seed)
		d := n.Disk(0)
		var done []time.Duration
		for i := range 20 {
			d.Write("log", i, []byte{byte(i)})
			d.Sync("log", func() { done = append(done, n.Now()) })
		}
		n.RunFor(time.Second)
		if len(done) != 20 || !slices.IsSorted(done) {
			t.Fatalf("seed %d: syncs completed at %v", seed, done)
		}
		return done
	}
	if a, b := run(7), run(7); !slices.Equal(a, b) {
		t.Fatalf("one seed, two runs: syncs completed at %v and %v", a, b)
	}
	if a, b := run(7), run(8); slices.Equal(a, b) {
		t.Fatalf("seeds 7 and 8 drew the same sync times %v", a)
	}
}
