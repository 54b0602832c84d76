package adversary

import (
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/transport"
	"github.com/conclave/conclave/wire"
)

// now is the wall clock in microseconds, a plausible Lamport clock.
func now() uint64 { return uint64(time.Now().UnixMicro()) }

// forgedHeartbeats are what an impostor of peer 0 sends instead of a
// proof: heartbeats saying every peer is up.
func forgedHeartbeats(lc uint64) []wire.Frame {
	var fs []wire.Frame
	for s := range 10 {
		fs = append(fs, wire.Heartbeat{Seq: uint64(s + 1), LC: lc, Open: true, Alive: []int{0, 1, 2, 3}})
	}
	return fs
}

// TestImpostorCannotEvictThePeer is the attack that once evicted peer 0
// for good and left two leaders: a Hello claiming peer 0 with incarnation
// 2⁶⁴−1, sent to peers 1–3 and held for a second. Now it is refused for
// want of a proof of the key, whether the impostor has no key or another
// one, and whether it then proves or sends heartbeats as peer 0: no peer
// logs peer 0 down and every peer keeps leader 0. An impostor that goes
// on trying while the real peer 0 is killed does not make anyone follow a
// dead leader, and the restarted peer 0 is not refused as stale. Last, a
// listener that takes a killed peer's port and answers as that peer, with
// the largest incarnation and clock, is refused by every peer that dials
// it, and the real peer, restarted, gets back in.
func TestImpostorCannotEvictThePeer(t *testing.T) {
	const n = 4
	c := startPeers(t, n, true)
	must(t, c.StartAll())
	waitLeader(t, c, 0, 0, 1, 2, 3)
	key, other := clusterKey(t, c), transport.NewKey()
	addrs := c.Addrs()

	// The outsider's proofs are well made: under the cluster key, a claim
	// the peer refuses only once authenticated is refused for what it
	// claims, not for its proof.
	r, err := try(addrs[1], attempt{hello: peerHello(9, 1, n, "", 1, now()), key: key})
	if err != nil || !strings.Contains(r.reason, "out of range") {
		t.Fatalf("an outsider proving the cluster key: %v, refused with %q; want it authenticated, then refused for an id out of range", err, r.reason)
	}
	t.Logf("control: a proof made by the outsider under the cluster key passes (the claim is then refused: %q)", r.reason)

	// The impostors of issue 9: peer 0, incarnation 2⁶⁴−1, held a second.
	type outcome struct {
		to         int
		what, want string
		r          result
		err        error
	}
	out := make(chan outcome, 3*n)
	var wg sync.WaitGroup
	for to := 1; to < n; to++ {
		for _, k := range []transport.Key{nil, other} {
			wg.Go(func() {
				r, err := try(addrs[to], attempt{hello: peerHello(0, to, n, addrs[0], math.MaxUint64, now()), hold: time.Second, key: k})
				out <- outcome{to, "held 1s unfinished, with a proof under " + keyName(k), "no proof of the cluster key", r, err}
			})
		}
		wg.Go(func() {
			r, err := try(addrs[to], attempt{hello: peerHello(0, to, n, addrs[0], math.MaxUint64, now()), hold: time.Second, then: forgedHeartbeats(now())})
			out <- outcome{to, "held 1s unfinished, with no proof, then heartbeats as peer 0", "no proof of the cluster key", r, err}
		})
	}
	wg.Wait()
	close(out)
	for o := range out {
		if o.err != nil || !strings.Contains(o.r.reason, o.want) {
			t.Errorf("to peer %d, a Hello as peer 0 with incarnation 2⁶⁴−1, %s: %v, refused with %q; want a refusal naming %q", o.to, o.what, o.err, o.r.reason, o.want)
			continue
		}
		t.Logf("to peer %d, a Hello as peer 0 with incarnation 2⁶⁴−1, %s: refused (%q)", o.to, o.what, o.r.reason)
	}
	for i := 1; i < n; i++ {
		waitNth(t, c, i, eventlog.ConnRejected, reasonHas("no proof of the cluster key"), 3)
	}
	for i := range n {
		if d := eventsOf(c, i, eventlog.PeerDown, aboutPeer(0)); len(d) > 0 {
			t.Errorf("peer %d logged peer 0 down: %s", i, eventlog.Format(d[0]))
		}
		if l := eventsOf(c, i, eventlog.LeaderChange, nil); len(l) != 1 {
			t.Errorf("peer %d changed leader %d times, want once (to 0)", i, len(l))
		}
		if l, _ := c.Leader(i); l != 0 {
			t.Errorf("peer %d follows %d", i, l)
		}
	}
	t.Logf("after the impostors: no peer_down of peer 0 anywhere, every peer's one leader is 0")

	// An impostor that keeps trying while peer 0 dies and comes back.
	stop := make(chan struct{})
	var tries atomic.Int64
	tried := make(chan struct{}, 1024)
	waitTries := func(k int) {
		t.Helper()
		dl := timeout(t, 20*time.Second)
		for range k {
			select {
			case <-tried:
			case <-dl.Done():
				t.Fatalf("the impostor stopped trying")
			}
		}
	}
	var hammer sync.WaitGroup
	for to := 1; to < n; to++ {
		hammer.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				a := attempt{hello: peerHello(0, to, n, addrs[0], math.MaxUint64, now()), key: []transport.Key{nil, other}[k%2]}
				if k%3 == 2 {
					a.then = forgedHeartbeats(now())
				}
				r, err := try(addrs[to], a)
				if err != nil {
					t.Errorf("impostor of peer 0 at peer %d: %v (refused with %q)", to, err, r.reason)
					return
				}
				tries.Add(1)
				select {
				case tried <- struct{}{}:
				default:
				}
				time.Sleep(20 * time.Millisecond) // the impostor's pace, not a wait
			}
		})
	}
	waitTries(30) // the impostor is at work before peer 0 dies
	killed, err := c.Kill(0)
	must(t, err)
	elected, err := c.WaitLeader(timeout(t, 20*time.Second), 1, 1, 2, 3)
	must(t, err)
	t.Logf("impostor of peer 0 at work; SIGKILL of the real peer 0: peers 1–3 follow peer 1 after %v", elected.Sub(killed).Round(time.Millisecond))
	waitTries(30) // and while peer 0 is dead
	restarted := time.Now()
	must(t, c.StartPeer(0))
	back, err := c.WaitLeader(timeout(t, 20*time.Second), 0, 0, 1, 2, 3)
	must(t, err)
	waitTries(30) // and after it is back
	for i := range n {
		if l, _ := c.Leader(i); l != 0 {
			t.Errorf("peer %d follows %d with the impostor at work", i, l)
		}
	}
	close(stop)
	hammer.Wait()
	t.Logf("peer 0 restarted (a new incarnation): every peer follows 0 again after %v; the impostor tried %d times meanwhile, all refused", back.Sub(restarted).Round(time.Millisecond), tries.Load())

	// A listener that takes a killed peer's port and answers as it.
	_, err = c.Kill(3)
	must(t, err)
	for i := range 3 {
		waitEvent(t, c, i, eventlog.PeerDown, aboutPeer(3))
	}
	ln, err := net.Listen("tcp", addrs[3])
	must(t, err)
	dials := make(chan string, 256)
	go fakePeer(ln, n, 3, dials)
	seen := map[string]int{}
	dl := timeout(t, 20*time.Second)
	for seen["0"] < 2 || seen["1"] < 2 || seen["2"] < 2 {
		select {
		case from := <-dials:
			if strings.HasPrefix(from, "error: ") {
				t.Errorf("fake peer 3: %s", from)
				continue
			}
			seen[from]++
		case <-dl.Done():
			t.Fatalf("the peers did not dial the fake peer 3 twice each: %v", seen)
		}
	}
	ln.Close()
	for i := range 3 {
		if up := eventsOf(c, i, eventlog.PeerUp, aboutPeer(3)); len(up) != 1 {
			t.Errorf("peer %d saw peer 3 up %d times, want once (before the fake)", i, len(up))
		}
	}
	t.Logf("a fake peer 3 on the killed peer's port, answering with incarnation 2⁶⁴−1 and clocks 2⁶³ and 2⁶⁴−4: dialed %v times by peers 0–2, each gave up before sending anything", seen)
	must(t, c.StartPeer(3))
	waitLeader(t, c, 0, 0, 1, 2, 3)
	for i := range 3 {
		waitNth(t, c, i, eventlog.PeerUp, aboutPeer(3), 2)
	}
	t.Logf("the real peer 3, restarted, is up at every peer")

	h := peerHistory(t, c, n, true)
	downs := map[string]int{}
	for _, e := range h {
		if e.Ev == eventlog.PeerDown && aboutPeer(0)(e) && !reasonHas("bye:")(e) {
			downs[e.Node]++
		}
		if e.Ev == eventlog.ConnRejected && reasonHas("stale incarnation")(e) {
			t.Errorf("a peer was refused as stale: %s", eventlog.Format(e))
		}
	}
	for i := 1; i < n; i++ {
		if d := downs[eventlog.PeerName(i)]; d != 1 {
			t.Errorf("peer %d logged peer 0 down %d times before the end, want once (its SIGKILL)", i, d)
		}
	}
}

// fakePeer answers every connection ln accepts as peer id of a cluster of
// n would, but with no proof of the key, the largest incarnation and
// Lamport clocks of 2⁶³ and 2⁶⁴−4. It reports the dialer's claimed id on
// dials once the dialer has given up, or "error: ..." if a dialer sent
// anything after the answer.
func fakePeer(ln net.Listener, n, id int, dials chan<- string) {
	lcs := []uint64{1 << 63, 1<<64 - 4}
	for k := 0; ; k++ {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			o := &outsider{c: conn, r: wire.NewReader(conn, transport.HelloMax)}
			f, err := o.next()
			h, ok := f.(wire.Hello)
			if err != nil || !ok {
				dials <- fmt.Sprintf("error: no Hello from a dialer: %v %v", f, err)
				return
			}
			ans := peerHello(id, 0, n, ln.Addr().String(), math.MaxUint64, lcs[k%2])
			ans.To = ""
			ans.Proof = nonce() // a proof under no key anyone holds
			if err := o.send(ans); err != nil {
				dials <- "error: " + err.Error()
				return
			}
			if f, err := o.next(); err == nil {
				dials <- fmt.Sprintf("error: peer %s sent %s after an answer without a proof", h.From, f.Type())
				return
			}
			dials <- h.From
		}()
	}
}

// waitNth waits until peer i has logged ev with ok k times.
func waitNth(t *testing.T, c *launch.Cluster, i int, ev string, ok func(eventlog.Event) bool, k int) {
	t.Helper()
	seen := 0
	if _, err := c.WaitEvent(timeout(t, 20*time.Second), i, func(e eventlog.Event) bool {
		if e.Ev == ev && (ok == nil || ok(e)) {
			seen++
		}
		return seen >= k
	}); err != nil {
		t.Fatalf("process %d logged the %s expected %d times, not %d: %v", i, ev, seen, k, err)
	}
}

// TestRefusedClocksDoNotMove sends each peer Hellos carrying Lamport
// clocks 2⁶³ and 2⁶⁴−4, which once moved every peer's clock and wrapped
// it: refused, for want of a proof or for a cluster nobody serves, they
// move nothing. Each log's clocks stay within an hour of the wall clock and
// never go back, through the attack and a crash after it.
func TestRefusedClocksDoNotMove(t *testing.T) {
	const n = 3
	c := startPeers(t, n, true)
	must(t, c.StartAll())
	waitLeader(t, c, 0, 0, 1, 2)
	key, other := clusterKey(t, c), transport.NewKey()
	addrs := c.Addrs()
	huge := []uint64{1 << 63, 1<<64 - 4}
	refusals := 0
	for i := range n {
		claim := (i + 1) % n
		for _, lc := range huge {
			for _, k := range []transport.Key{nil, other} {
				r, err := try(addrs[i], attempt{hello: peerHello(claim, i, n, addrs[claim], 1, lc), key: k})
				if err != nil || !strings.Contains(r.reason, "no proof of the cluster key") {
					t.Errorf("peer %d, a Hello with lc %d and a proof under %s: %v, refused with %q", i, lc, keyName(k), err, r.reason)
				}
				refusals++
			}
			// Forged heartbeats carrying the huge clock, after no proof.
			r, err := try(addrs[i], attempt{hello: peerHello(claim, i, n, addrs[claim], 1, lc), then: []wire.Frame{wire.Heartbeat{Seq: 1, LC: lc}}})
			if err != nil || !strings.Contains(r.reason, "no proof of the cluster key") {
				t.Errorf("peer %d, a Hello with lc %d, then a heartbeat: %v, refused with %q", i, lc, err, r.reason)
			}
			refusals++
			// A Hello proved under the cluster key, for a cluster nobody
			// serves here.
			o, err := dialOutsider(addrs[i])
			must(t, err)
			h := peerHello(claim, i, n, addrs[claim], 1, lc)
			h.Scope = "elsewhere"
			h.Proof = dialProof(key, h)
			must(t, o.send(h))
			reason, err := o.refusal()
			o.close()
			if err != nil || !strings.Contains(reason, "elsewhere") {
				t.Errorf("peer %d, a Hello of another cluster with lc %d: %v, refused with %q", i, lc, err, reason)
			}
			refusals++
		}
		t.Logf("peer %d: %d Hellos with lc 2⁶³ and 2⁶⁴−4 refused", i, 3*len(huge)+len(huge))
	}
	for i := range n {
		waitRefusals(t, c, i, eventlog.ConnRejected, 8)
	}
	// Events after the attack: a crash seen by the others.
	_, err := c.Kill(2)
	must(t, err)
	waitLeader(t, c, 0, 0, 1)
	for i := range 2 {
		e := waitEvent(t, c, i, eventlog.PeerDown, aboutPeer(2))
		if !lcPlausible(e.LC, e.TS) {
			t.Errorf("peer %d logged peer 2 down with lc %d", i, e.LC)
		}
	}
	t.Logf("%d refusals in all; then SIGKILL of peer 2, logged by peers 0 and 1 with plausible clocks", refusals)
	peerHistory(t, c, n, true)
}
