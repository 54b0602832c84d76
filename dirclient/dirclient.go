// Package dirclient talks to a replicated directory: it sends requests to
// any replica, follows the leader the replicas name, retries elsewhere
// when a replica cannot answer, and when none can, says which replicas it
// tried and what each said. It is safe for concurrent use.
package dirclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/transport"
	"github.com/conclave/conclave/wire"
)

// Defaults of Config.
const (
	DefaultCluster = "conclave-directory"
	// DefaultAttempt bounds one request to one replica.
	DefaultAttempt = 2 * time.Second
	// DefaultDeadline bounds a request whose context has no deadline.
	DefaultDeadline = 10 * time.Second
)

// Config configures a Client.
type Config struct {
	// Replicas are the addresses of the directory's replicas, in replica
	// id order.
	Replicas []string
	// Cluster names the directory (DefaultCluster if empty).
	Cluster string
	// Name identifies the client in handshakes (random if empty).
	Name string
	// Key is the cluster key; Network makes connections (TCP if nil).
	Key     transport.Key
	Network transport.Network
	// Attempt bounds one request to one replica (DefaultAttempt).
	Attempt time.Duration
	// OnLeader, if set, is called when an answer names another leader
	// than the answer before (Leader): prev is the one before (-1 at
	// first, or none), leader the new one (-1: none). It runs on the
	// requesting goroutine, after the request's answer is recorded, and
	// must not block.
	OnLeader func(prev, leader int)
	// Log, if set, receives the client's operations as events: dir_call
	// as each command or read of a topic (Lookup) begins, dir_return as
	// it ends (docs/events.md); kv are field keys and values in turn. It
	// is called from the goroutine making the call, and must be safe for
	// concurrent use.
	Log func(ev string, kv ...any)
}

// Client sends requests to a directory.
type Client struct {
	cfg Config

	cmdMu sync.Mutex
	seq   uint64 // the last command's sequence number

	leaderMu sync.Mutex    // orders the calls of Config.OnLeader as the answers are recorded
	calls    atomic.Uint64 // operations logged

	mu     sync.Mutex
	conns  map[int]*conn
	leader int // the replica to try first
	named  int // the leader the last answer named, -1 for none
	nextID uint64
	closed bool
}

type conn struct {
	c       *transport.Conn
	waiting map[uint64]chan wire.Response
	ready   chan struct{} // closed once dialled (c set) or failed (err set)
	err     error
}

// New returns a client; it connects on first use.
func New(cfg Config) (*Client, error) {
	if len(cfg.Replicas) == 0 {
		return nil, errors.New("dirclient: no directory replicas given")
	}
	if cfg.Cluster == "" {
		cfg.Cluster = DefaultCluster
	}
	if cfg.Name == "" {
		var b [6]byte
		rand.Read(b[:])
		cfg.Name = "client-" + hex.EncodeToString(b[:])
	}
	if cfg.Network == nil {
		cfg.Network = transport.TCP{}
	}
	if cfg.Attempt <= 0 {
		cfg.Attempt = DefaultAttempt
	}
	// Sequence numbers start from the time, so that a client that keeps
	// its name across restarts still numbers its commands upwards.
	return &Client{cfg: cfg, conns: map[int]*conn{}, named: -1, seq: uint64(time.Now().UnixNano())}, nil
}

// Leader is the replica the last successful answer named as leader, -1
// if none.
func (c *Client) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.named
}

// Name is the client's name.
func (c *Client) Name() string { return c.cfg.Name }

// Attempt is what one replica said to one request.
type Attempt struct {
	Replica int
	Addr    string
	Err     error
}

// UnavailableError says no replica could answer: which were tried, and
// what each said last.
type UnavailableError struct {
	For      time.Duration
	Attempts []Attempt
}

func (e *UnavailableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "directory unavailable: no majority answered in %v", e.For.Round(time.Millisecond))
	for _, a := range e.Attempts {
		fmt.Fprintf(&b, "; replica %d (%s): %v", a.Replica, a.Addr, a.Err)
	}
	return b.String()
}

// ErrUnavailable matches an *UnavailableError with errors.Is.
var ErrUnavailable = errors.New("directory unavailable")

// Is reports target == ErrUnavailable.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Propose has cmd applied by the directory's state machine and returns
// its result. A command that timed out may still apply: retrying the
// same bytes is safe when the state machine applies them once.
func (c *Client) Propose(ctx context.Context, cmd []byte) ([]byte, error) {
	return c.do(ctx, wire.OpPropose, cmd)
}

// Read answers query at a linearizable point.
func (c *Client) Read(ctx context.Context, query []byte) ([]byte, error) {
	return c.do(ctx, wire.OpRead, query)
}

func (c *Client) do(ctx context.Context, op wire.Op, data []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultDeadline)
		defer cancel()
	}
	start := time.Now()
	n := len(c.cfg.Replicas)
	last := make([]error, n)
	c.mu.Lock()
	try := c.leader
	c.mu.Unlock()
	backoff := 5 * time.Millisecond
	for {
		for k := 0; k < n; k++ {
			i := try
			resp, err := c.attempt(ctx, i, op, data)
			if err == nil {
				switch directory.Status(resp.Status) {
				case directory.StatusOK:
					c.answered(i, resp.Leader)
					return resp.Data, nil
				case directory.StatusNoLeader:
					err = errors.New("knows no leader")
				case directory.StatusTimeout:
					err = errors.New("the request did not commit in time")
				default:
					err = fmt.Errorf("status %d", resp.Status)
				}
				if resp.Leader >= 0 && resp.Leader < n && resp.Leader != i {
					err = fmt.Errorf("%w; it names replica %d as leader", err, resp.Leader)
					try = resp.Leader
				} else {
					try = (i + 1) % n
				}
			} else {
				try = (i + 1) % n
			}
			last[i] = err
			if ctx.Err() != nil {
				return nil, c.unavailable(start, last)
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, c.unavailable(start, last)
		case <-t.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// answered records that replica i answered, naming leader: the replica to
// try first is i, and Config.OnLeader hears of a new leader.
func (c *Client) answered(i, leader int) {
	c.leaderMu.Lock()
	defer c.leaderMu.Unlock()
	c.mu.Lock()
	prev := c.named
	c.leader, c.named = i, leader
	c.mu.Unlock()
	if prev != leader && c.cfg.OnLeader != nil {
		c.cfg.OnLeader(prev, leader)
	}
}

func (c *Client) unavailable(start time.Time, last []error) error {
	e := &UnavailableError{For: time.Since(start)}
	for i, err := range last {
		if err == nil {
			err = errors.New("not tried")
		}
		e.Attempts = append(e.Attempts, Attempt{Replica: i, Addr: c.cfg.Replicas[i], Err: err})
	}
	return e
}

// attempt sends one request to replica i and waits for its answer.
func (c *Client) attempt(ctx context.Context, i int, op wire.Op, data []byte) (wire.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Attempt)
	defer cancel()
	cn, err := c.conn(ctx, i)
	if err != nil {
		return wire.Response{}, err
	}
	ch := make(chan wire.Response, 1)
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	cn.waiting[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(cn.waiting, id)
		c.mu.Unlock()
	}()
	if !cn.c.Send(wire.Request{ID: id, Op: op, Data: data}, false) {
		return wire.Response{}, errors.New("connection closed")
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return wire.Response{}, errors.New("connection closed before the answer")
		}
		return r, nil
	case <-ctx.Done():
		return wire.Response{}, fmt.Errorf("no answer in %v", c.cfg.Attempt)
	}
}

// conn returns the connection to replica i, dialling it if needed.
func (c *Client) conn(ctx context.Context, i int) (*conn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errors.New("client closed")
	}
	cn := c.conns[i]
	if cn == nil || (cn.err != nil && isDone(cn.ready)) {
		cn = &conn{waiting: map[uint64]chan wire.Response{}, ready: make(chan struct{})}
		c.conns[i] = cn
		go c.dial(i, cn)
	}
	c.mu.Unlock()
	select {
	case <-cn.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("connecting: %w", ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cn.err != nil {
		return nil, cn.err
	}
	return cn, nil
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (c *Client) dial(i int, cn *conn) {
	hello := wire.Hello{Version: wire.Version, Kind: wire.KindClient, Scope: c.cfg.Cluster, From: c.cfg.Name}
	tc, _, err := transport.Dial(context.Background(), c.cfg.Network, c.cfg.Replicas[i], hello, c.cfg.Key, c.cfg.Attempt,
		transport.Limits{MaxFrame: 64 << 20, Idle: -1})
	c.mu.Lock()
	if err != nil {
		cn.err = err
		close(cn.ready)
		c.mu.Unlock()
		return
	}
	if c.closed {
		cn.err = errors.New("client closed")
		close(cn.ready)
		c.mu.Unlock()
		tc.Close()
		return
	}
	cn.c = tc
	close(cn.ready)
	c.mu.Unlock()
	tc.Start(func(f wire.Frame) {
		r, ok := f.(wire.Response)
		if !ok {
			return
		}
		c.mu.Lock()
		ch := cn.waiting[r.ID]
		delete(cn.waiting, r.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}, func(reason string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		cn.err = errors.New("connection lost: " + reason)
		if c.conns[i] == cn {
			delete(c.conns, i)
		}
		for id, ch := range cn.waiting {
			close(ch)
			delete(cn.waiting, id)
		}
	})
}

// Close closes the client's connections. It closes them after letting go
// of the client's lock, which their loss callbacks take.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	var open []*conn
	for _, cn := range c.conns {
		if cn.c != nil {
			open = append(open, cn)
		}
	}
	c.conns = map[int]*conn{}
	c.mu.Unlock()
	for _, cn := range open {
		cn.c.Close()
	}
	return nil
}
