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
	// Refused, if set, is told of every accepted connection the Host
	// refuses itself (garbage, another protocol version, a kind and scope
	// nobody here serves, no proof of the key), with its Hello if one was
	// read. It is called from the accepting goroutine and must not block;
	// nothing the Hello claims is proved.
	Refused func(addr string, h *wire.Hello, reason string)
}

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

// Service is what a machine registers to take the connections routed to
// it.
type Service struct {
	// Answer returns the Hello that answers hello: who this end is. It is
	// called from the accepting goroutine before the other end has proved
	// the key, so it must not act on hello.
	Answer func(hello wire.Hello) wire.Hello
	// Accept takes an authenticated connection. It must answer it, with
	// Accept or Reject, and may do so later from another goroutine; it is
	// called from the accepting goroutine and must not block.
	Accept func(a *transport.Accepted)
}

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

	mu     sync.Mutex
	routes map[Route]Service
}

// New listens on cfg.Listen and starts accepting.
func New(cfg Config) (*Host, error) {
	if cfg.Network == nil {
		cfg.Network = transport.TCP{}
	}
	if _, tcp := cfg.Network.(transport.TCP); tcp && cfg.Key == nil && !cfg.Insecure && !loopback(cfg.Listen) {
		return nil, fmt.Errorf("%w: refusing to listen on %s without a cluster key (give one, or listen on loopback, or say it is insecure)", ErrUnprotected, cfg.Listen)
	}
	ln, err := cfg.Network.Listen(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	h := &Host{cfg: cfg, ln: ln, routes: map[Route]Service{}, closed: make(chan struct{})}
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

// Authenticated reports whether the host has a key.
func (h *Host) Authenticated() bool { return h.cfg.Key != nil }

// Handle routes connections asking for r to s until the returned function
// is called.
func (h *Host) Handle(r Route, s Service) (remove func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, taken := h.routes[r]; taken {
		return nil, fmt.Errorf("%w: %s", ErrRouteTaken, r)
	}
	h.routes[r] = s
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.routes, r)
			h.mu.Unlock()
		})
	}, nil
}

// Close stops accepting and waits for the accepting goroutines. Routed
// connections belong to their machines, which close them.
func (h *Host) Close() error {
	h.once.Do(func() {
		close(h.closed)
		h.ln.Close()
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
		h.wg.Add(1)
		go h.route(s)
	}
}

// route reads an accepted stream's Hello and hands it to its handler.
func (h *Host) route(s transport.Stream) {
	defer h.wg.Done()
	a, err := transport.ReadHello(s, h.cfg.Handshake)
	if err != nil {
		h.refuse(s, nil, err.Error())
		return
	}
	r := Route{Kind: a.Hello.Kind, Scope: a.Hello.Scope}
	h.mu.Lock()
	svc, ok := h.routes[r]
	h.mu.Unlock()
	if !ok {
		h.refuse(s, &a.Hello, fmt.Sprintf("no %s here", r))
		return
	}
	if err := a.Authenticate(svc.Answer(a.Hello), h.cfg.Key); err != nil {
		if h.cfg.Refused != nil {
			h.cfg.Refused(s.RemoteAddr(), &a.Hello, err.Error())
		}
		return
	}
	svc.Accept(a)
}

func (h *Host) refuse(s transport.Stream, hello *wire.Hello, reason string) {
	if h.cfg.Refused != nil {
		h.cfg.Refused(s.RemoteAddr(), hello, reason)
	}
	transport.Refuse(s, reason, 0)
}
