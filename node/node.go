// Package node runs a peer core over real TCP: it owns the listener, the
// dialers, the connections' goroutines, the timer, the event log and the
// status endpoint, and feeds everything that happens to a peer.Core from a
// single goroutine.
package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/conclave/conclave/eventlog"
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
	// Now supplies wall-clock time for the log; nil means time.Now.
	Now func() time.Time
	// OnEvent, if set, is called with every event logged (sampled
	// heartbeats excepted), from the node's goroutine: it must not block.
	OnEvent func(eventlog.Event)
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
	cfg    Config
	core   *peer.Core
	id     transport.Identity
	ln     *net.TCPListener
	clock  eventlog.Clock
	log    *eventlog.Writer
	logf   *os.File
	start  time.Time
	events chan event
	quit   chan struct{}

	conns    map[peer.ConnID]*transport.Conn
	nextID   peer.ConnID
	stopping bool
	closing  []*transport.Conn // closed while stopping: wait for them to flush
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

// New validates cfg, opens the log and listens on the node's address.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, &ConfigError{err}
	}
	core, err := peer.New(cfg.Peer)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:    cfg,
		core:   core,
		id:     transport.Identity{Cluster: cfg.Cluster, ID: cfg.Peer.ID, N: cfg.Peer.N, Incarnation: cfg.Incarnation},
		events: make(chan event, 256),
		quit:   make(chan struct{}),
		conns:  map[peer.ConnID]*transport.Conn{},
	}
	var w io.Writer = io.Discard
	if cfg.LogDir != "" {
		f, err := eventlog.Create(cfg.LogDir, n.Name())
		if err != nil {
			return nil, fmt.Errorf("event log: %w", err)
		}
		n.logf, w = f, f
	}
	n.log = eventlog.NewWriter(w, n.Name(), cfg.Incarnation, &n.clock, cfg.Now)
	ln, err := net.Listen("tcp", cfg.Addrs[cfg.Peer.ID])
	if err != nil {
		n.closeLog()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addrs[cfg.Peer.ID], err)
	}
	n.ln = ln.(*net.TCPListener)
	return n, nil
}

// Name is the node's name in logs: "peer-<id>".
func (n *Node) Name() string { return fmt.Sprintf("peer-%d", n.cfg.Peer.ID) }

// Addr is the address the node listens on.
func (n *Node) Addr() string { return n.ln.Addr().String() }

// Status returns the latest snapshot of the node's state.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.status
}

// Run runs the node until ctx is done, then says goodbye to its peers and
// returns. It returns an error only if the node could not run at all.
func (n *Node) Run(ctx context.Context) error {
	defer n.closeLog()
	var srv *http.Server
	if n.cfg.HTTP != "" {
		hl, err := net.Listen("tcp", n.cfg.HTTP)
		if err != nil {
			n.ln.Close()
			return fmt.Errorf("status endpoint: %w", err)
		}
		srv = &http.Server{Handler: n.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(hl)
		defer srv.Close()
	}
	dialCtx, cancelDials := context.WithCancel(ctx)
	defer cancelDials()
	n.start = time.Now()
	n.step(dialCtx, peer.Start{})
	go n.acceptLoop()
	timer := time.NewTimer(n.untilDeadline())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			n.ln.Close()
			n.stopping = true
			n.step(dialCtx, peer.Stop{})
			close(n.quit)
			cancelDials()
			n.waitFlush()
			n.dials.Wait()
			return n.log.Err()
		case <-timer.C:
			n.step(dialCtx, peer.Tick{})
		case e := <-n.events:
			n.handle(dialCtx, e)
		}
		timer.Reset(n.untilDeadline())
	}
}

func (n *Node) closeLog() {
	if n.logf != nil {
		n.logf.Close()
	}
}

func (n *Node) now() time.Duration { return time.Since(n.start) }

func (n *Node) untilDeadline() time.Duration {
	return max(n.core.Deadline()-n.now(), 0)
}

// waitFlush gives the connections a moment to write their goodbyes.
func (n *Node) waitFlush() {
	deadline := time.After(transport.FlushTimeout)
	for _, c := range n.closing {
		select {
		case <-c.Done():
		case <-deadline:
			return
		}
	}
}

// step feeds one input to the core and carries out its effects.
func (n *Node) step(ctx context.Context, in peer.Input) error {
	err := n.core.Step(n.now(), in)
	for _, e := range n.core.Ready() {
		n.apply(ctx, e)
	}
	st := Status{Status: n.core.Status(), Node: n.Name(), Incarnation: n.cfg.Incarnation, Addr: n.Addr(), Cluster: n.cfg.Cluster}
	n.mu.Lock()
	n.status = st
	n.mu.Unlock()
	return err
}

func (n *Node) apply(ctx context.Context, e peer.Effect) {
	switch e := e.(type) {
	case peer.Send:
		if c := n.conns[e.Conn]; c != nil {
			c.Send(wire.Stamp(e.Frame, n.clock.Tick(n.cfg.Now())), e.Urgent)
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
		n.dial(ctx, e.Peer)
	case peer.Log:
		n.logEvent(e)
	}
}

func (n *Node) logEvent(e peer.Log) {
	if (e.Ev == "hb_sent" || e.Ev == "hb_recv") && !n.cfg.LogHeartbeats {
		if seq, _ := e.Fields["seq"].(uint64); seq != 1 && seq%50 != 0 {
			return
		}
	}
	ev := n.log.Log(e.Ev, e.Fields)
	if n.cfg.OnEvent != nil {
		n.cfg.OnEvent(ev)
	}
	if n.cfg.Stdout == nil {
		return
	}
	ts := ev.TS.Local().Format("15:04:05.000")
	switch e.Ev {
	case "leader_change":
		fmt.Fprintf(n.cfg.Stdout, "%s %s: leader is now %s (was %s)\n", ts, n.Name(), leaderName(e.Fields["leader"].(int)), leaderName(e.Fields["prev"].(int)))
	case "peer_up":
		fmt.Fprintf(n.cfg.Stdout, "%s %s: peer %d is up\n", ts, n.Name(), e.Fields["peer"])
	case "peer_down":
		fmt.Fprintf(n.cfg.Stdout, "%s %s: peer %d is down (%s: %s)\n", ts, n.Name(), e.Fields["peer"], e.Fields["cause"], e.Fields["reason"])
	case "start":
		fmt.Fprintf(n.cfg.Stdout, "%s %s: listening on %s, cluster %q, incarnation %d\n", ts, n.Name(), n.Addr(), n.cfg.Cluster, n.cfg.Incarnation)
	case "stop":
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

// Events from the connection goroutines to the loop.
type event interface{}

type evHandshake struct {
	hello  wire.Hello
	tcp    *net.TCPConn
	r      *wire.Reader
	dialed bool
}

type evDialFailed struct {
	peer int
	err  string
}

type evFrame struct {
	peer int
	conn peer.ConnID
	f    wire.Frame
}

type evLost struct {
	peer   int
	conn   peer.ConnID
	reason string
}

type evRefused struct {
	addr   string
	reason string
}

// post hands an event to the loop, unless the node is stopping.
func (n *Node) post(e event) bool {
	select {
	case n.events <- e:
		return true
	case <-n.quit:
		return false
	}
}

func (n *Node) handle(ctx context.Context, e event) {
	switch e := e.(type) {
	case evHandshake:
		n.clock.Witness(e.hello.LC, n.cfg.Now())
		n.nextID++
		id := n.nextID
		addr := e.tcp.RemoteAddr().String()
		c := transport.NewConn(e.tcp, e.r)
		if !e.dialed {
			// Our Hello must precede the heartbeat the admission sends.
			c.Send(n.id.Hello(n.clock.Tick(n.cfg.Now())), false)
		}
		n.conns[id] = c
		err := n.step(ctx, peer.Handshake{Peer: e.hello.ID, Conn: id, Incarnation: e.hello.Incarnation, Dialed: e.dialed, Addr: addr})
		if err != nil {
			delete(n.conns, id)
			go transport.Reject(e.tcp, err.Error(), n.clock.Tick(n.cfg.Now()))
			return
		}
		j := e.hello.ID
		c.Start(func(f wire.Frame) { n.post(evFrame{peer: j, conn: id, f: f}) },
			func(reason string) { n.post(evLost{peer: j, conn: id, reason: reason}) })
	case evDialFailed:
		n.step(ctx, peer.DialFailed{Peer: e.peer, Err: e.err})
	case evFrame:
		if lc := wire.StampOf(e.f); lc != 0 {
			n.clock.Witness(lc, n.cfg.Now())
		}
		n.step(ctx, peer.Recv{Peer: e.peer, Conn: e.conn, Frame: e.f})
	case evLost:
		if c := n.conns[e.conn]; c != nil {
			delete(n.conns, e.conn)
			c.Close()
			n.step(ctx, peer.Closed{Peer: e.peer, Conn: e.conn, Reason: e.reason})
		}
	case evRefused:
		n.logEvent(peer.Log{Ev: "conn_rejected", Fields: map[string]any{"addr": e.addr, "reason": e.reason}})
	}
}

func (n *Node) dial(ctx context.Context, j int) {
	n.dials.Add(1)
	lc := n.clock.Tick(n.cfg.Now())
	go func() {
		defer n.dials.Done()
		tcp, r, h, err := transport.Dial(ctx, n.cfg.Addrs[j], j, n.id, lc, n.cfg.Peer.SuspectAfter, n.cfg.MaxFrame)
		if err != nil {
			n.post(evDialFailed{peer: j, err: err.Error()})
			return
		}
		if !n.post(evHandshake{hello: h, tcp: tcp, r: r, dialed: true}) {
			tcp.Close()
		}
	}()
}

func (n *Node) acceptLoop() {
	for {
		tcp, err := n.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: pause rather than spin.
			select {
			case <-time.After(50 * time.Millisecond):
				continue
			case <-n.quit:
				return
			}
		}
		go n.accept(tcp)
	}
}

func (n *Node) accept(tcp *net.TCPConn) {
	addr := tcp.RemoteAddr().String()
	h, r, err := transport.ReadHello(tcp, n.id, n.cfg.Peer.SuspectAfter, n.cfg.MaxFrame)
	if err != nil {
		n.post(evRefused{addr: addr, reason: err.Error()})
		transport.Reject(tcp, err.Error(), n.clock.Tick(n.cfg.Now()))
		return
	}
	if !n.post(evHandshake{hello: h, tcp: tcp, r: r}) {
		tcp.Close()
	}
}
