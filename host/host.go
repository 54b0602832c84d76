// Package host runs conclave's pure machines — the peer core, group
// stacks, and later directory replicas and publish/subscribe clients — with
// real connections, timers and goroutines.
//
// A Host is one process's presence on the network: one listener, whose
// accepted connections are routed by the Hello that opens them (its Kind
// and Scope) to the machine registered for them. A Loop drives one machine
// (Step, Ready, Deadline) from one goroutine, with a timer, an injected
// clock, a Lamport clock and the machine's event log. Any number of
// machines share one Host; packages node and group are the facades that
// put a peer core or a group member on one.
package host

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conclave/conclave/transport"
	"github.com/conclave/conclave/wire"
)

// Config configures a Host.
type Config struct {
	// Listen is the address to accept connections on (host:port; port 0
	// picks a free one).
	Listen string
	// Network makes the listener and outgoing streams (default
	// transport.TCP{}; transport.Mem in tests).
	Network transport.Network
	// Handshake bounds an accepted connection's handshake, until it is
	// authenticated (default transport.DefaultHandshake).
	Handshake time.Duration
	// Key is the cluster secret that every connection must prove, both
	// ways, before anything it carries is acted on. Without a key the
	// host is unauthenticated: it refuses to listen on any address but
	// loopback, unless Insecure is set.
	Key transport.Key
	// Insecure lets a host without a key listen on any address.
	Insecure bool
	// TLS encrypts every connection, bound to the key (transport.TLS);
	// it needs a key.
	TLS bool
	// MaxConns bounds the accepted connections open at once (default
	// DefaultMaxConns); beyond it a new one is closed at once.
	MaxConns int
	// MaxHandshakes bounds the accepted connections not yet authenticated
	// (default DefaultMaxHandshakes). One more takes the place of the
	// oldest, which is closed: connections held open without a word
	// cannot keep others out.
	MaxHandshakes int
	// Budget is the memory the host's connections may hold for frames
	// larger than 64 KiB while they arrive (default
	// transport.DefaultBudget); a frame that does not fit closes its
	// connection.
	Budget int64
	// Refused, if set, is told of accepted connections the Host refuses
	// itself (garbage, another protocol version, a kind and scope nobody
	// here serves, no proof of the key, too many connections, a handshake
	// closed to make room for a newer one), with the
	// Hello if one was read; nothing it claims is proved. At most
	// RefusalsPerSecond a second are told one by one; the others are
	// counted and told once a second as one refusal, with an empty addr
	// and the count in the reason. It must not block.
	Refused func(addr string, h *wire.Hello, reason string)
}

// Defaults of Config.
const (
	DefaultMaxConns      = 4096
	DefaultMaxHandshakes = 256
	// RefusalsPerSecond is how many refusals a second are reported one by
	// one.
	RefusalsPerSecond = 10
)

// Route is what an accepted connection asks for: a kind of machine and
// its scope (a cluster or group name).
type Route struct {
	Kind  wire.Kind
	Scope string
}

func (r Route) String() string {
	switch r.Kind {
	case wire.KindPeer:
		return fmt.Sprintf("cluster %q", r.Scope)
	case wire.KindGroup:
		return fmt.Sprintf("group %q", r.Scope)
	}
	return fmt.Sprintf("%s %q", r.Kind, r.Scope)
}

// Handler takes an accepted connection routed to it, its Hello proved
// (if the host has a key). It must answer it, with Accept or Reject, and
// may do so later from another goroutine; it is called from the accepting
// goroutine and must not block.
type Handler func(a *transport.Accepted)

// ErrRouteTaken is returned by Handle for a route that already has a
// handler on this Host.
var ErrRouteTaken = errors.New("host: route already served")

// ErrUnprotected is returned by New for a host without a key asked to
// listen beyond loopback.
var ErrUnprotected = errors.New("host: unprotected")

// loopback reports whether a listen address is a loopback one.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Host owns a listener and routes what it accepts.
type Host struct {
	cfg    Config
	ln     transport.Listener
	wg     sync.WaitGroup
	once   sync.Once
	closed chan struct{}

	budget *transport.Budget
	conns  atomic.Int64 // accepted and not closed

	mu     sync.Mutex
	routes map[Route]Handler
	// pending are the accepted streams in their handshake, each with its
	// number in order of arrival: Close closes them, and the oldest is
	// closed when one more arrives than MaxHandshakes.
	pending  map[transport.Stream]uint64
	arrived  uint64 // streams accepted
	told     int    // refusals told this second
	untold   int    // refusals counted, not told
	flushing bool   // a report of the untold is due
}

// New listens on cfg.Listen and starts accepting.
func New(cfg Config) (*Host, error) {
	if cfg.Network == nil {
		cfg.Network = transport.TCP{}
	}
	if _, tcp := cfg.Network.(transport.TCP); tcp && cfg.Key == nil && !cfg.Insecure && !loopback(cfg.Listen) {
		return nil, fmt.Errorf("%w: refusing to listen on %s without a cluster key (give one, or listen on loopback, or say it is insecure)", ErrUnprotected, cfg.Listen)
	}
	if cfg.TLS {
		if cfg.Key == nil {
			return nil, errors.New("host: TLS needs a cluster key, which authenticates the channel")
		}
		t, err := transport.NewTLS(cfg.Network)
		if err != nil {
			return nil, err
		}
		cfg.Network = t
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxHandshakes <= 0 {
		cfg.MaxHandshakes = DefaultMaxHandshakes
	}
	if cfg.Budget <= 0 {
		cfg.Budget = transport.DefaultBudget
	}
	ln, err := cfg.Network.Listen(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	h := &Host{cfg: cfg, ln: ln, routes: map[Route]Handler{}, pending: map[transport.Stream]uint64{}, closed: make(chan struct{}),
		budget: transport.NewBudget(cfg.Budget)}
	h.wg.Add(1)
	go h.acceptLoop()
	return h, nil
}

// Addr is the address others reach this host at.
func (h *Host) Addr() string { return h.ln.Addr() }

// Network is the network the host listens on; machines dial through it.
func (h *Host) Network() transport.Network { return h.cfg.Network }

// Key is the cluster key the host's connections prove, or nil.
func (h *Host) Key() transport.Key { return h.cfg.Key }

// Budget is the memory shared by the host's connections for large frames:
// machines put it in the Limits of their connections.
func (h *Host) Budget() *transport.Budget { return h.budget }

// Conns is the number of accepted connections open now.
func (h *Host) Conns() int { return int(h.conns.Load()) }

// Handle routes connections asking for r to f until the returned function
// is called.
func (h *Host) Handle(r Route, f Handler) (remove func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.routes[r] != nil {
		return nil, fmt.Errorf("%w: %s", ErrRouteTaken, r)
	}
	h.routes[r] = f
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.routes, r)
			h.mu.Unlock()
		})
	}, nil
}

// Close stops accepting, ends the handshakes in progress and waits for
// the accepting goroutines. Routed connections belong to their machines,
// which close them.
func (h *Host) Close() error {
	h.once.Do(func() {
		close(h.closed)
		h.ln.Close()
		h.mu.Lock()
		for s := range h.pending {
			s.Close()
		}
		h.mu.Unlock()
	})
	h.wg.Wait()
	return nil
}

func (h *Host) acceptLoop() {
	defer h.wg.Done()
	for {
		s, err := h.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: pause rather than spin.
			t := time.NewTimer(50 * time.Millisecond)
			select {
			case <-t.C:
				continue
			case <-h.closed:
				t.Stop()
				return
			}
		}
		s = &counted{Stream: s, n: &h.conns}
		if h.conns.Add(1) > int64(h.cfg.MaxConns) {
			s.Close()
			h.tell(s.RemoteAddr(), nil, fmt.Sprintf("too many connections (%d)", h.cfg.MaxConns))
			continue
		}
		// Beyond MaxHandshakes, the newest takes the place of the oldest,
		// which has had the longest to prove the key. Refusing the newest
		// instead would let an outsider keep every peer and member out
		// with MaxHandshakes silent connections, reopened as they time
		// out.
		h.mu.Lock()
		select {
		case <-h.closed: // Close has ended the handshakes it knew of
			h.mu.Unlock()
			s.Close()
			return
		default:
		}
		var oldest transport.Stream
		if len(h.pending) >= h.cfg.MaxHandshakes {
			oldest = h.oldestLocked()
			delete(h.pending, oldest)
		}
		h.arrived++
		h.pending[s] = h.arrived
		h.wg.Add(1)
		h.mu.Unlock()
		if oldest != nil {
			oldest.Close()
			h.tell(oldest.RemoteAddr(), nil, fmt.Sprintf("handshake unfinished when %d more had arrived: closed to make room", h.cfg.MaxHandshakes))
		}
		go h.route(s)
	}
}

// oldestLocked returns the handshake in progress that arrived first.
func (h *Host) oldestLocked() transport.Stream {
	var oldest transport.Stream
	first := uint64(0)
	for s, n := range h.pending {
		if oldest == nil || n < first {
			oldest, first = s, n
		}
	}
	return oldest
}

// counted is an accepted stream counted in a host's connections until it
// is closed.
type counted struct {
	transport.Stream
	n    *atomic.Int64
	once sync.Once
}

// Binding forwards the stream's channel binding (transport.Binder).
func (c *counted) Binding() ([]byte, error) {
	if b, ok := c.Stream.(transport.Binder); ok {
		return b.Binding()
	}
	return nil, nil
}

func (c *counted) Close() error {
	c.once.Do(func() { c.n.Add(-1) })
	return c.Stream.Close()
}

// route reads an accepted stream's Hello and hands it to its handler.
func (h *Host) route(s transport.Stream) {
	defer h.wg.Done()
	// ended ends s's handshake and reports whether it was still one: if
	// not, it was closed to make room for a newer one, and that was told.
	ended := func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		_, ok := h.pending[s]
		delete(h.pending, s)
		return ok
	}
	a, err := transport.ReadHello(s, h.cfg.Handshake, h.cfg.Key)
	if err != nil {
		if ended() {
			h.refuse(s, nil, err.Error())
		}
		return
	}
	r := Route{Kind: a.Hello.Kind, Scope: a.Hello.Scope}
	h.mu.Lock()
	f := h.routes[r]
	h.mu.Unlock()
	if !ended() {
		return // closed to make room: the dialer will try again
	}
	if f == nil {
		h.refuse(s, &a.Hello, fmt.Sprintf("no %s here", r))
		return
	}
	f(a)
}

func (h *Host) refuse(s transport.Stream, hello *wire.Hello, reason string) {
	h.tell(s.RemoteAddr(), hello, reason)
	transport.Refuse(s, reason, 0)
}

// tell reports a refusal, RefusalsPerSecond a second at most; it counts
// the others and reports their number once the second is over.
func (h *Host) tell(addr string, hello *wire.Hello, reason string) {
	if h.cfg.Refused == nil {
		return
	}
	h.mu.Lock()
	if !h.flushing {
		h.flushing = true
		time.AfterFunc(time.Second, h.flushTold)
	}
	if h.told >= RefusalsPerSecond {
		h.untold++
		h.mu.Unlock()
		return
	}
	h.told++
	h.mu.Unlock()
	h.cfg.Refused(addr, hello, reason)
}

// flushTold ends a second of refusals: it reports the ones not told.
func (h *Host) flushTold() {
	h.mu.Lock()
	n := h.untold
	h.told, h.untold, h.flushing = 0, 0, false
	h.mu.Unlock()
	if n > 0 {
		h.cfg.Refused("", nil, fmt.Sprintf("%d more connections refused in the last second, not reported one by one", n))
	}
}
