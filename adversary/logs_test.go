package adversary

import (
	"crypto/rand"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/host"
)

// garbageBytes are what the garbage connections send, in turn: an HTTP
// request, the start of a TLS handshake, and random bytes.
func garbageBytes(k int) []byte {
	switch k % 3 {
	case 0:
		return []byte("GET /status HTTP/1.1\r\nHost: conclave\r\n\r\n")
	case 1:
		return []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}
	}
	b := make([]byte, 64)
	rand.Read(b)
	b[0] = 0xff // no frame type
	return b
}

// TestGarbageConnectionsDoNotFloodTheLog opens 2,000 connections to a peer
// that each send garbage, as issue 9 did with 27,000 that wrote 5.5 MB of
// log. The peer refuses each, but logs at most host.RefusalsPerSecond of
// them a second (conn_rejected) and counts the others in one line a
// second; the lines and the counts add up to exactly 2,000. The log grows
// by a few KiB, not by 2,000 lines, and the cluster keeps its leader.
func TestGarbageConnectionsDoNotFloodTheLog(t *testing.T) {
	const n, target, garbage, workers = 2, 1, 2000, 20
	c := startPeers(t, n, false)
	must(t, c.StartAll())
	waitLeader(t, c, 0, 0, 1)
	path := c.LogPath(target)
	fi, err := os.Stat(path)
	must(t, err)
	before, skip := fi.Size(), len(c.Events(target))

	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := w; k < garbage; k += workers {
				conn, err := net.DialTimeout("tcp", c.Addrs()[target], 5*time.Second)
				if err != nil {
					t.Errorf("garbage connection %d: %v", k, err)
					return
				}
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				conn.Write(garbageBytes(k))
				io.Copy(io.Discard, conn) // until the peer closes it
				conn.Close()
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	waitRefusals(t, c, target, eventlog.ConnRejected, garbage)
	var refusals []eventlog.Event
	for _, e := range c.Events(target)[skip:] {
		if e.Ev == eventlog.ConnRejected {
			refusals = append(refusals, e)
		}
	}
	lines, counted := refusalsLogged(refusals, eventlog.ConnRejected)
	countLines := len(refusals) - lines
	fi, err = os.Stat(path)
	must(t, err)
	grown := fi.Size() - before
	span := refusals[len(refusals)-1].TS.Sub(refusals[0].TS)
	seconds := int(span/time.Second) + 2 // the seconds the refusals were reported in
	t.Logf("%d garbage connections in %v: %d conn_rejected lines one by one and %d lines counting %d more, over %v; peer %d's log grew by %d bytes (a line for each would be some %d KiB)",
		garbage, took.Round(time.Millisecond), lines, countLines, counted, span.Round(time.Millisecond), target, grown, grown/int64(len(refusals))*garbage>>10)
	if lines+counted != garbage {
		t.Errorf("the log accounts for %d refusals, want %d", lines+counted, garbage)
	}
	if lines > host.RefusalsPerSecond*seconds || countLines > seconds {
		t.Errorf("%d refusals told one by one and %d count lines within %v: want at most %d a second and one count a second", lines, countLines, span, host.RefusalsPerSecond)
	}
	// A refusal told one by one takes one line; 2,000 would take 2,000.
	const bound = 32 << 10
	if grown > bound {
		t.Errorf("the log grew by %d bytes, over %d", grown, bound)
	}
	if len(eventsOf(c, target, eventlog.LeaderChange, nil)) != 1 || len(eventsOf(c, target, eventlog.PeerDown, nil)) != 0 {
		t.Errorf("peer %d changed leader or saw a peer down during the garbage", target)
	}
	peerHistory(t, c, n, false)
}
