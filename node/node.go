// Package node runs a peer core on a host (package host): the host's loop
// drives the core, and this package carries out what the core asks —
// dialing peers, admitting the connections the host routes to the
// cluster, sending frames — and serves the status endpoint.
package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/host"
	"github.com/conclave/conclave/peer"
	"github.com/conclave/conclave/transport"
	"github.com/conclave/conclave/wire"
)

// Config configures a Node.
type Config struct {
	// Peer is the core's configuration; Peer.N is taken from Addrs.
	Peer peer.Config
	// Addrs lists every peer's host:port, indexed by id. The node listens
	// on Addrs[Peer.ID].
	Addrs []string
	// Cluster names the cluster; peers of another cluster are refused.
	Cluster string
	// Incarnation identifies this run of the process; zero means the
	// current time in nanoseconds, which grows across restarts.
	Incarnation uint64
	// LogDir, if set, receives the event log <LogDir>/peer-<id>.jsonl.
	LogDir string
	// LogHeartbeats logs every heartbeat; otherwise only the first on each
	// connection and every 50th.
	LogHeartbeats bool
	// HTTP, if set, is the address of the status endpoint (GET /status).
	HTTP string
	// Stdout receives one human-readable line per leader change and per
	// peer going up or down; nil means none.
	Stdout io.Writer
	// MaxFrame limits incoming frame payloads (0: wire.DefaultMaxFrame).
	MaxFrame int
	// Host, if set, is the host the peer runs on, shared with other
	// machines; its address must be Addrs[Peer.ID]. By default the node
	// makes its own host, listening on Addrs[Peer.ID], and closes it at
	// the end of Run.
	Host *host.Host
	// Network makes the node's own host's listener and the node's
	// outgoing connections, when Host is not set (default TCP).
	Network transport.Network
	// Key is the cluster key of the node's own host (with Host set, the
	// host's key is used): every connection proves it, both ways. Without
	// a key the node listens on loopback only, unless Insecure is set.
	Key transport.Key
	// Insecure lets a node without a key listen on any address.
	Insecure bool
	// TLS encrypts the node's own host's connections (it needs Key).
	TLS bool
	// Now supplies wall-clock time for the log; nil means time.Now.
	Now func() time.Time
	// OnEvent, if set, is called with every event logged (sampled
	// heartbeats excepted), from the node's goroutine: it must not block.
	OnEvent func(eventlog.Event)
	// Events, if set, receives every event logged (those OnEvent sees) as
	// the JSON lines of the event log, encoded once for the log and the
	// stream, and written by the stream's goroutine, so the node never
	// waits on its reader. Run flushes it before returning; the caller
	// closes it and reports its Err.
	Events *eventlog.Stream
}

// ConfigError is returned by New for an invalid Config.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return "invalid configuration: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// DefaultCluster is the cluster name used when none is given.
const DefaultCluster = "conclave"

// Validate fills in defaults and reports the first problem.
func (c *Config) Validate() error {
	if len(c.Addrs) < 2 {
		return fmt.Errorf("need the addresses of at least 2 peers, got %d", len(c.Addrs))
	}
	seen := map[string]int{}
	for i, a := range c.Addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("address %d (%q) is not host:port: %v", i, a, err)
		}
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			return fmt.Errorf("address %d (%q) has no valid port", i, a)
		}
		if host == "" {
			return fmt.Errorf("address %d (%q) has no host", i, a)
		}
		if j, dup := seen[a]; dup {
			return fmt.Errorf("peers %d and %d have the same address %s", j, i, a)
		}
		seen[a] = i
	}
	c.Peer.N = len(c.Addrs)
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	if c.Incarnation == 0 {
		c.Incarnation = uint64(time.Now().UnixNano())
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c.Peer.Validate()
}

// Node is one running peer.
type Node struct {
	cfg     Config
	core    *peer.Core
	loop    *host.Loop[peer.Input, peer.Effect]
	host    *host.Host
	ownHost bool
	unroute func()
	logf    *os.File

	// Owned by the loop goroutine.
	conns    map[peer.ConnID]*transport.Conn
	nextID   peer.ConnID
	stopping bool
	closing  []*transport.Conn // closed while stopping: wait for them to flush
	dialCtx  context.Context
	dials    sync.WaitGroup

	mu     sync.Mutex
	status Status
}

// Status is what GET /status returns.
type Status struct {
	peer.Status
	Node        string `json:"node"`
	Incarnation uint64 `json:"inc"`
	Addr        string `json:"addr"`
	Cluster     string `json:"cluster"`
}

// New validates cfg, opens the log and starts listening: on the node's own
// host, or on cfg.Host.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, &ConfigError{err}
	}
	core, err := peer.New(cfg.Peer)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, core: core, conns: map[peer.ConnID]*transport.Conn{}, host: cfg.Host}
	lc := host.LoopConfig[peer.Input, peer.Effect]{
		Tick: peer.Tick{}, Apply: n.apply, AfterBatch: n.snapshot, FlushEach: true,
		Clock: clock{cfg.Now}, Name: n.Name(), Inc: cfg.Incarnation, Observe: cfg.OnEvent, Stream: cfg.Events,
	}
	if cfg.LogDir != "" {
		f, err := eventlog.Create(cfg.LogDir, n.Name())
		if err != nil {
			return nil, fmt.Errorf("event log: %w", err)
		}
		n.logf, lc.LogTo = f, f
	}
	n.loop = host.NewLoop[peer.Input, peer.Effect](core, lc)
	if n.host == nil {
		n.host, err = host.New(host.Config{Listen: cfg.Addrs[cfg.Peer.ID], Network: cfg.Network,
			Key: cfg.Key, Insecure: cfg.Insecure, TLS: cfg.TLS, Refused: n.refused})
		if err != nil {
			n.closeLog()
			return nil, err
		}
		n.ownHost = true
	}
	n.unroute, err = n.host.Handle(host.Route{Kind: wire.KindPeer, Scope: cfg.Cluster}, n.accept)
	if err != nil {
		n.closeHost()
		n.closeLog()
		return nil, err
	}
	return n, nil
}

// clock is the system clock with the configured wall-clock source.
type clock struct{ now func() time.Time }

func (c clock) Now() time.Time                      { return c.now() }
func (c clock) NewTimer(d time.Duration) host.Timer { return host.RealClock{}.NewTimer(d) }

// Name is the node's name in logs: "peer-<id>".
func (n *Node) Name() string { return eventlog.PeerName(n.cfg.Peer.ID) }

// Addr is the address the node listens on.
func (n *Node) Addr() string { return n.host.Addr() }

// Status returns the latest snapshot of the node's state.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.status
}

// Run runs the node until ctx is done, then says goodbye to its peers and
// returns, once its events are written (Config.Events flushed). It returns
// an error only if the node could not run at all, or its event log could
// not be written.
func (n *Node) Run(ctx context.Context) error {
	if n.cfg.Events != nil {
		defer n.cfg.Events.Flush()
	}
	defer n.closeLog()
	defer n.closeHost()
	if n.cfg.HTTP != "" {
		hl, err := net.Listen("tcp", n.cfg.HTTP)
		if err != nil {
			n.unroute()
			return fmt.Errorf("status endpoint: %w", err)
		}
		srv := &http.Server{Handler: n.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(hl)
		defer srv.Close()
	}
	dialCtx, cancelDials := context.WithCancel(ctx)
	defer cancelDials()
	n.dialCtx = dialCtx
	n.loop.Start(func() { n.loop.Step(peer.Start{}) })
	<-ctx.Done()
	n.unroute()
	n.loop.Do(func() {
		n.stopping = true
		n.loop.Step(peer.Stop{})
		n.loop.Flush()
		n.loop.Stop()
	})
	<-n.loop.Done()
	cancelDials()
	n.waitFlush()
	n.dials.Wait()
	return n.loop.LogErr()
}

func (n *Node) closeHost() {
	if n.ownHost {
		n.host.Close()
	}
}

func (n *Node) closeLog() {
	if n.logf != nil {
		n.logf.Close()
	}
}

// waitFlush gives the connections a moment to write their goodbyes.
func (n *Node) waitFlush() {
	deadline := time.NewTimer(transport.FlushTimeout)
	defer deadline.Stop()
	for _, c := range n.closing {
		select {
		case <-c.Done():
		case <-deadline.C:
			return
		}
	}
}

func (n *Node) snapshot() {
	st := Status{Status: n.core.Status(), Node: n.Name(), Incarnation: n.cfg.Incarnation, Addr: n.Addr(), Cluster: n.cfg.Cluster}
	n.mu.Lock()
	n.status = st
	n.mu.Unlock()
}

func (n *Node) apply(e peer.Effect) {
	switch e := e.(type) {
	case peer.Send:
		if c := n.conns[e.Conn]; c != nil {
			c.Send(wire.Stamp(e.Frame, n.loop.Lamport().Tick(n.loop.Wall())), e.Urgent)
		}
	case peer.Close:
		if c := n.conns[e.Conn]; c != nil {
			delete(n.conns, e.Conn)
			c.CloseAfterFlush()
			if n.stopping {
				n.closing = append(n.closing, c)
			}
		}
	case peer.Dial:
		n.dial(e.Peer)
	case peer.Log:
		n.logEvent(e)
	}
}

func (n *Node) logEvent(e peer.Log) {
	if (e.Ev == eventlog.HBSent || e.Ev == eventlog.HBRecv) && !n.cfg.LogHeartbeats {
		if seq, _ := e.Fields[eventlog.FieldSeq].(uint64); seq != 1 && seq%50 != 0 {
			return
		}
	}
	n.loop.Log(e.Ev, e.Fields)
	if n.cfg.Stdout == nil {
		return
	}
	ts := n.loop.Wall().Local().Format("15:04:05.000")
	switch e.Ev {
	case eventlog.LeaderChange:
		fmt.Fprintf(n.cfg.Stdout, "%s %s: leader is now %s (was %s)\n", ts, n.Name(), leaderName(e.Fields[eventlog.FieldLeader].(int)), leaderName(e.Fields[eventlog.FieldPrev].(int)))
	case eventlog.PeerUp:
		fmt.Fprintf(n.cfg.Stdout, "%s %s: peer %d is up\n", ts, n.Name(), e.Fields[eventlog.FieldPeer])
	case eventlog.PeerDown:
		fmt.Fprintf(n.cfg.Stdout, "%s %s: peer %d is down (%s: %s)\n", ts, n.Name(), e.Fields[eventlog.FieldPeer], e.Fields[eventlog.FieldCause], e.Fields[eventlog.FieldReason])
	case eventlog.Start:
		fmt.Fprintf(n.cfg.Stdout, "%s %s: listening on %s, cluster %q, incarnation %d\n", ts, n.Name(), n.Addr(), n.cfg.Cluster, n.cfg.Incarnation)
	case eventlog.Stop:
		fmt.Fprintf(n.cfg.Stdout, "%s %s: stopped\n", ts, n.Name())
	}
}

func leaderName(l int) string {
	if l == peer.None {
		return "none"
	}
	return strconv.Itoa(l)
}

// Handler serves GET /status.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(n.Status())
	})
	return mux
}

// hello is this node's Hello to peer to (-1: an answer).
func (n *Node) hello(to int) wire.Hello {
	h := wire.Hello{Version: wire.Version, Kind: wire.KindPeer, Scope: n.cfg.Cluster,
		From: strconv.Itoa(n.cfg.Peer.ID), Addr: n.Addr(), N: n.cfg.Peer.N,
		Incarnation: n.cfg.Incarnation, LC: n.loop.Lamport().Tick(n.loop.Wall())}
	if to >= 0 {
		h.To = strconv.Itoa(to)
	}
	return h
}

// check reports why a peer's Hello is unacceptable, and otherwise its id.
func (n *Node) check(h wire.Hello) (int, error) {
	id, err := strconv.Atoi(h.From)
	switch {
	case h.N != n.cfg.Peer.N:
		return 0, fmt.Errorf("configured with %d peers, we have %d", h.N, n.cfg.Peer.N)
	case err != nil || id < 0 || id >= n.cfg.Peer.N:
		return 0, fmt.Errorf("peer id %q out of range 0..%d", h.From, n.cfg.Peer.N-1)
	case id == n.cfg.Peer.ID:
		return 0, fmt.Errorf("peer id %d is our own", id)
	case h.To != "" && h.To != strconv.Itoa(n.cfg.Peer.ID):
		return 0, fmt.Errorf("this is peer %d, not %s", n.cfg.Peer.ID, h.To)
	}
	return id, nil
}

// refused logs a connection the node's own host refused. Nothing it
// claimed is proved, so nothing of it, its clock included, is used.
func (n *Node) refused(addr string, _ *wire.Hello, reason string) {
	n.loop.Do(func() {
		n.logEvent(peer.Log{Ev: eventlog.ConnRejected, Fields: map[string]any{eventlog.FieldAddr: addr, eventlog.FieldReason: reason}})
	})
}

// accept takes an authenticated connection the host routed to the
// cluster.
func (n *Node) accept(a *transport.Accepted) {
	id, err := n.check(a.Hello)
	if err != nil {
		n.refused(a.RemoteAddr(), &a.Hello, err.Error())
		a.Reject(err.Error(), 0)
		return
	}
	if !n.loop.Do(func() {
		n.loop.Lamport().Witness(a.Hello.LC, n.loop.Wall())
		// Our Hello must precede the heartbeat the admission sends.
		c := a.Accept(n.hello(-1), n.limits())
		n.admit(id, a.Hello, c, false, a.RemoteAddr(), func(reason string) { go a.Reject(reason, 0) })
	}) {
		a.Reject("shutting down", 0)
	}
}

// dialTimeout bounds a dial and its handshake: twice suspect-after. The
// core tolerates one-way delays up to suspect-after less a heartbeat,
// and a connect and a handshake take two round trips of such delays (the
// simulator models the same, sim.PeerDialTimeout).
func (n *Node) dialTimeout() time.Duration { return 2 * n.cfg.Peer.SuspectAfter }

func (n *Node) limits() transport.Limits {
	return transport.Limits{MaxFrame: n.cfg.MaxFrame, Budget: n.host.Budget()}
}

// admit asks the core to admit a handshaken connection; refuse tells the
// other end if it does not.
func (n *Node) admit(j int, h wire.Hello, c *transport.Conn, dialed bool, addr string, refuse func(string)) {
	n.nextID++
	id := n.nextID
	n.conns[id] = c
	err := n.loop.Step(peer.Handshake{Peer: j, Conn: id, Incarnation: h.Incarnation, Dialed: dialed, Addr: addr})
	if err != nil {
		delete(n.conns, id)
		refuse(err.Error())
		return
	}
	c.Start(func(f wire.Frame) {
		n.loop.Do(func() {
			if lc := wire.StampOf(f); lc != 0 {
				n.loop.Lamport().Witness(lc, n.loop.Wall())
			}
			n.loop.Step(peer.Recv{Peer: j, Conn: id, Frame: f})
		})
	}, func(reason string) {
		n.loop.Do(func() {
			if c := n.conns[id]; c != nil {
				delete(n.conns, id)
				c.Close()
				n.loop.Step(peer.Closed{Peer: j, Conn: id, Reason: reason})
			}
		})
	})
}

func (n *Node) dial(j int) {
	n.dials.Add(1)
	hello := n.hello(j)
	go func() {
		defer n.dials.Done()
		c, h, err := transport.Dial(n.dialCtx, n.host.Network(), n.cfg.Addrs[j], hello, n.host.Key(), n.dialTimeout(), n.limits())
		if err == nil {
			var id int
			if id, err = n.check(h); err == nil && id != j {
				err = fmt.Errorf("%s answered as peer %d, expected %d", n.cfg.Addrs[j], id, j)
			}
			if err != nil {
				c.Close()
			}
		}
		if err != nil {
			n.loop.Do(func() { n.loop.Step(peer.DialFailed{Peer: j, Err: err.Error()}) })
			return
		}
		if !n.loop.Do(func() {
			n.loop.Lamport().Witness(h.LC, n.loop.Wall())
			n.admit(j, h, c, true, c.RemoteAddr(), func(string) { c.Close() })
		}) {
			c.Close()
		}
	}()
}
