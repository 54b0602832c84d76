package adversary

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/launch/launchtest"
	"github.com/conclave/conclave/node"
	"github.com/conclave/conclave/transport"
	"github.com/conclave/conclave/wire"
)

// bin is the conclave executable built for these tests.
var bin string

func TestMain(m *testing.M) { os.Exit(launchtest.RunTests(m, &bin)) }

// Peers heartbeat every 50 ms and suspect after a second of silence: a
// crash is seen at once (the connection closes), and a slow machine
// shared with other tests does not make false suspicions.
const (
	hb      = 50 * time.Millisecond
	suspect = time.Second
)

// cluster is the cluster name launched peers use.
const cluster = node.DefaultCluster

// startPeers prepares n peers with a fresh cluster key (started by the
// caller) and stops them at the end of the test.
func startPeers(t *testing.T, n int, logHeartbeats bool) *launch.Cluster {
	t.Helper()
	c, err := launch.Start(launch.Config{Binary: bin, N: n, Dir: t.TempDir(), Heartbeat: hb, SuspectAfter: suspect, LogHeartbeats: logHeartbeats})
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

// timeout returns a context that ends after d or with the test.
func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitLeader(t *testing.T, c *launch.Cluster, leader int, ids ...int) {
	t.Helper()
	if _, err := c.WaitLeader(timeout(t, 20*time.Second), leader, ids...); err != nil {
		t.Fatal(err)
	}
}

// clusterKey is the key the launched processes hold.
func clusterKey(t *testing.T, c *launch.Cluster) transport.Key {
	t.Helper()
	k, err := transport.ReadKeyFile(filepath.Join(c.Dir(), launch.KeyFileName))
	must(t, err)
	return k
}

// peerHistory stops the cluster, merges its logs and runs the peer
// checkers and the clock check on them.
func peerHistory(t *testing.T, c *launch.Cluster, n int, allHeartbeats bool) []eventlog.Event {
	t.Helper()
	must(t, c.Close())
	h, err := eventlog.MergeDir(c.Dir())
	must(t, err)
	for _, v := range check.Peer(h, check.Options{N: n, AllHeartbeats: allHeartbeats}) {
		t.Error(v)
	}
	checkClocks(t, c.Dir())
	t.Logf("checkers: %d events of %d peers checked", len(h), n)
	return h
}

// plausible bounds how far a Lamport clock may be from the wall clock: it
// follows the wall clock in microseconds and runs ahead only by what
// messages push it, far less than this.
const plausible = time.Hour

// lcPlausible reports whether Lamport clock lc is within plausible of
// wall time ts.
func lcPlausible(lc uint64, ts time.Time) bool {
	us := ts.UnixMicro()
	return lc < 1<<62 && int64(lc) < us+plausible.Microseconds() && int64(lc) > us-plausible.Microseconds()
}

// checkClocks checks every event log in dir: each event's Lamport clock is
// within an hour of its wall-clock time, and a process's clock never goes
// backwards within its life (one node and incarnation).
func checkClocks(t *testing.T, dir string) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	must(t, err)
	events := 0
	for _, p := range paths {
		if filepath.Base(p) == eventlog.RunJSONL {
			continue
		}
		evs, bad, err := eventlog.ReadFile(p)
		must(t, err)
		if bad > 0 {
			t.Errorf("%s: %d unreadable lines", filepath.Base(p), bad)
		}
		last := map[string]uint64{}
		for _, e := range evs {
			events++
			if !lcPlausible(e.LC, e.TS) {
				t.Errorf("%s: lc %d at %s is not within %v of the wall clock (%d µs): %s", filepath.Base(p), e.LC, e.TS.Format(time.RFC3339Nano), plausible, e.TS.UnixMicro(), eventlog.Format(e))
			}
			life := e.Node + "/" + strconv.FormatUint(e.Inc, 10)
			if e.LC < last[life] {
				t.Errorf("%s: lc went back from %d to %d: %s", filepath.Base(p), last[life], e.LC, eventlog.Format(e))
			}
			last[life] = e.LC
		}
	}
	t.Logf("clocks: %d events in %d logs, every lc within %v of its time and never going back", events, len(paths), plausible)
}

// The outsider: a connection from the test process that speaks the wire
// format by hand.

// outsider is a raw connection to a conclave process.
type outsider struct {
	c net.Conn
	r *wire.Reader
}

func dialOutsider(addr string) (*outsider, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &outsider{c: c, r: wire.NewReader(c, 1<<20)}, nil
}

// send writes frames in one write.
func (o *outsider) send(fs ...wire.Frame) error {
	var b []byte
	for _, f := range fs {
		b = wire.Append(b, f)
	}
	return o.write(b)
}

func (o *outsider) write(b []byte) error {
	o.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := o.c.Write(b)
	return err
}

// next reads a frame, waiting at most 10 s.
func (o *outsider) next() (wire.Frame, error) {
	o.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return o.r.Next()
}

// refusal reads until the other end closes the connection and returns
// the reason of the Reject it sent. A connection reset after the Reject is
// a close; one that is still open after 10 s is an error, as is an
// answering Hello: it admits the outsider.
func (o *outsider) refusal() (string, error) {
	reason := ""
	for {
		f, err := o.next()
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReset(err):
			return reason, nil
		case err != nil:
			return reason, fmt.Errorf("not closed: %w", err)
		}
		switch f := f.(type) {
		case wire.Reject:
			reason = f.Reason
		case wire.Hello:
			return "", errors.New("admitted")
		}
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

func (o *outsider) close() { o.c.Close() }

// nonce returns fresh random bytes for a Hello.
func nonce() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// dialProof is the proof a dialer holding key k puts in its Hello: what
// package transport computes (HMAC-SHA256 of a label, the empty channel
// binding of plain TCP and the Hello), written out here so that an
// outsider can send a proof under a key of its own. Under the cluster key
// it is admitted (TestImpostorCannotEvictThePeer checks that first), so a
// refusal under another key is the key's doing, not a malformed proof's.
// With no key the proof is empty, as a process without a key sends it.
func dialProof(k transport.Key, dialer wire.Hello) []byte {
	if k == nil {
		return nil
	}
	dialer.Proof = nil
	m := hmac.New(sha256.New, k)
	m.Write([]byte("conclave v2 dial\x00"))
	m.Write(binary.AppendUvarint(nil, 0)) // no channel binding without TLS
	m.Write(wire.Append(nil, dialer))
	return m.Sum(nil)
}

// peerHello is a Hello claiming peer from of a cluster of n, to peer to.
func peerHello(from, to, n int, addr string, inc, lc uint64) wire.Hello {
	return wire.Hello{Version: wire.Version, Kind: wire.KindPeer, Scope: cluster, From: strconv.Itoa(from), Addr: addr,
		To: strconv.Itoa(to), N: n, Incarnation: inc, LC: lc, Nonce: nonce()}
}

// attempt is one handshake an outsider tries.
type attempt struct {
	hello wire.Hello
	// hold is how long the outsider keeps its Hello unfinished (all of it
	// sent but the last byte) before it sends the rest.
	hold time.Duration
	// key proves the outsider's Hello (nil: an empty proof).
	key transport.Key
	// then, if set, is sent right after the Hello, without waiting for
	// the answer: frames that forge traffic without authenticating.
	then []wire.Frame
}

// result is what an attempt saw.
type result struct {
	reason string // the reason the other end gave for refusing
}

// try runs a handshake attempt against addr and returns once the other
// end has closed the connection. It is an error if it admits the
// outsider.
func try(addr string, a attempt) (result, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return result{}, err
	}
	return tryOn(c, a)
}

// tryOn is try on a connection made; it closes it.
func tryOn(c net.Conn, a attempt) (result, error) {
	o := &outsider{c: c, r: wire.NewReader(c, 1<<20)}
	defer o.close()
	h := a.hello
	h.Proof = dialProof(a.key, h)
	b := wire.Append(nil, h)
	if a.hold > 0 {
		if err := o.write(b[:len(b)-1]); err != nil {
			return result{}, err
		}
		time.Sleep(a.hold) // part of the attack: a handshake held open
		b = b[len(b)-1:]
	}
	for _, f := range a.then {
		b = wire.Append(b, f)
	}
	if err := o.write(b); err != nil && !isReset(err) {
		return result{}, err
	}
	reason, err := o.refusal()
	return result{reason: reason}, err
}

// keyName names an outsider's key in messages.
func keyName(k transport.Key) string {
	if k == nil {
		return "no key"
	}
	return "another key"
}

// eventsOf returns the events ev of peer i's current process for which
// ok holds.
func eventsOf(c *launch.Cluster, i int, ev string, ok func(eventlog.Event) bool) []eventlog.Event {
	var out []eventlog.Event
	for _, e := range c.Events(i) {
		if e.Ev == ev && (ok == nil || ok(e)) {
			out = append(out, e)
		}
	}
	return out
}

// reasonHas matches events whose reason contains s.
func reasonHas(s string) func(eventlog.Event) bool {
	return func(e eventlog.Event) bool { return strings.Contains(e.Str(eventlog.FieldReason), s) }
}

// aboutPeer matches events whose peer field is p.
func aboutPeer(p int) func(eventlog.Event) bool {
	return func(e eventlog.Event) bool { q, ok := e.Int(eventlog.FieldPeer); return ok && q == p }
}

// waitEvent waits until peer i logs ev with ok.
func waitEvent(t *testing.T, c *launch.Cluster, i int, ev string, ok func(eventlog.Event) bool) eventlog.Event {
	t.Helper()
	e, err := c.WaitEvent(timeout(t, 20*time.Second), i, func(e eventlog.Event) bool { return e.Ev == ev && (ok == nil || ok(e)) })
	if err != nil {
		t.Fatalf("process %d never logged the %s expected: %v", i, ev, err)
	}
	return e
}

// refusalsLogged counts the refusals events report: one for each line ev
// naming one, plus the numbers in the lines that count those not reported
// one by one (host.RefusalsPerSecond). It returns both.
func refusalsLogged(events []eventlog.Event, ev string) (lines, counted int) {
	for _, e := range events {
		if e.Ev != ev {
			continue
		}
		var k int
		if _, err := fmt.Sscanf(e.Str(eventlog.FieldReason), "%d more connections refused", &k); err == nil {
			counted += k
		} else {
			lines++
		}
	}
	return lines, counted
}

// waitRefusals waits until process i of c has logged (as ev) at least k
// refusals, one by one or counted.
func waitRefusals(t *testing.T, c *launch.Cluster, i int, ev string, k int) {
	t.Helper()
	var seen []eventlog.Event
	if _, err := c.WaitEvent(timeout(t, 20*time.Second), i, func(e eventlog.Event) bool {
		seen = append(seen, e)
		l, n := refusalsLogged(seen, ev)
		return l+n >= k
	}); err != nil {
		l, n := refusalsLogged(seen, ev)
		t.Fatalf("process %d logged %d refusals and counted %d more, want %d in all: %v", i, l, n, k, err)
	}
}
