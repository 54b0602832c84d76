package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/peer"
)

// only returns the events of h recorded by nodes named with prefix, and
// the faults.
func only(h []eventlog.Event, prefix string) []eventlog.Event {
	var out []eventlog.Event
	for _, e := range h {
		if e.Node == "control" || strings.HasPrefix(e.Node, prefix) {
			out = append(out, e)
		}
	}
	return out
}

// TestProcessHostsPeerAndMember runs a peer core and a group member in each
// process of one network, as the runtime will: a crash or a hang of a
// process hits both its machines, a restart brings both back as a new
// incarnation, and each kind still keeps its guarantees.
func TestProcessHostsPeerAndMember(t *testing.T) {
	eachSeed(t, func(t *testing.T, seed uint64) {
		net, err := NewNet(NetConfig{N: 4, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		peers, err := NewOn(net, Config{Peer: peer.Config{Heartbeat: hb, SuspectAfter: suspect}})
		if err != nil {
			t.Fatal(err)
		}
		group := NewGroupOn(net, GroupConfig{Stack: groupStack(t, []string{"vsync", "total"}[seed%2])})
		both := func() bool { l, ok := peers.Converged(); return ok && l == 0 && group.Agreed() }
		settled := func(what string) {
			t.Helper()
			if !net.RunUntil(net.Now()+5*time.Second, both) {
				t.Fatalf("%s: peers' leaders %v, group agreed %v", what, leaders(peers), group.Agreed())
			}
		}
		net.StartAll()
		settled("start")
		quiet := net.Now() + 2*time.Second // traffic stops
		traffic(group, 2*time.Millisecond, quiet)

		net.Crash(0)
		if peers.Running(0) || group.Running(0) {
			t.Fatal("a crashed process still runs one of its machines")
		}
		if !net.RunUntil(net.Now()+suspect, func() bool {
			l, ok := peers.Converged()
			v, _ := group.View(1)
			return ok && l == 1 && !v.Has(group.Member(0)) && group.Agreed()
		}) {
			t.Fatalf("after the crash of process 0: leaders %v, group agreed %v", leaders(peers), group.Agreed())
		}

		net.Pause(2)
		if group.Running(2) || !peers.Running(2) || !peers.Paused(2) {
			t.Fatal("a paused process: its member still runs, or its peer is not paused")
		}
		net.RunFor(2 * suspect)
		for _, i := range []int{1, 3} {
			if st, _ := peers.Status(i); st.Leader != 1 || len(st.Alive) != 2 {
				t.Fatalf("peer %d sees %v while process 2 hangs", i, st.Alive)
			}
			if v, _ := group.View(i); v.Has(group.Member(2)) {
				t.Fatalf("member m%d's view %v still holds the hung member", i, v.IDs())
			}
		}
		net.Resume(2)
		net.Start(0)
		settled("after the restart")
		if got := group.Member(0); got != "m0.2" {
			t.Fatalf("restarted member is %s, want the second incarnation m0.2", got)
		}
		net.RunUntil(quiet, nil)
		settled("once traffic stopped")
		net.RunFor(100 * time.Millisecond)

		for _, v := range check.Peer(only(net.History(), "peer-"), check.Options{N: 4, AllHeartbeats: false, MaxDelay: peers.Config().MaxDelay}) {
			t.Error(v)
		}
		for _, v := range check.Group(only(net.History(), "m"), check.GroupOptions{Total: seed%2 == 1, Quiet: true}) {
			t.Error(v)
		}
	})
}
