// Package dirnode runs a directory replica as a process: the pure
// directory.Replica on the host runtime, with real connections, timers, a
// durable store and an event log. Replicas talk to each other over
// directory connections; clients send requests over client connections,
// to any replica.
package dirnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/host"
	"github.com/conclave/conclave/transport"
	"github.com/conclave/conclave/wire"
)

// DefaultCluster is the cluster name replicas use when none is given.
const DefaultCluster = "conclave-directory"

// Limits of directory connections.
const (
	// MaxRaftFrame bounds a message between replicas: a batch of entries
	// or a snapshot of the whole directory.
	MaxRaftFrame = 64 << 20
	// MaxRequest bounds a client's request (a stack description is at
	// most 64 KiB).
	MaxRequest = 1 << 20
	// sendQueue is how many frames may wait for a replica.
	sendQueue = 4096
	// redialAfter spaces the attempts to reach a replica that cannot be
	// reached.
	redialAfter = 50 * time.Millisecond
)

// Config configures a Server.
type Config struct {
	// ID is this replica's index in Peers.
	ID int
	// Peers lists every replica's host:port; the replica listens on
	// Peers[ID].
	Peers []string
	// Cluster names the directory; replicas and clients of another are
	// refused, and a store of another is not opened.
	Cluster string
	// Store holds the replica's durable state (it must be open).
	Store directory.Store
	// App is the replicated state machine, empty.
	App directory.App
	// Describe, if set, gives the fields of the event logged for an
	// applied command.
	Describe func(cmd, result []byte) map[string]any
	// Incarnation identifies this run (zero: the current time in ns).
	Incarnation uint64
	// LogTo, if set, receives the event log.
	LogTo io.Writer
	// OnEvent, if set, sees every event logged, on the replica's
	// goroutine; it must not block.
	OnEvent func(eventlog.Event)
	// Events, if set, receives every line of the event log (the
	// --events-fd stream), written by the stream's own goroutine; Close
	// flushes it.
	Events *eventlog.Stream
	// Tick and ElectionTicks set Raft's timing (directory defaults).
	Tick          time.Duration
	ElectionTicks int
	// Host, if set, is the host to run on, listening on Peers[ID];
	// otherwise the server makes its own with Network, Key, Insecure and
	// TLS, and closes it at the end.
	Host     *host.Host
	Network  transport.Network
	Key      transport.Key
	Insecure bool
	TLS      bool
}

// Validate reports what is wrong with c.
func (c *Config) Validate() error {
	switch {
	case len(c.Peers) != 3 && len(c.Peers) != 5:
		return fmt.Errorf("a directory has 3 or 5 replicas, not %d", len(c.Peers))
	case c.ID < 0 || c.ID >= len(c.Peers):
		return fmt.Errorf("replica id %d is not in 0..%d", c.ID, len(c.Peers)-1)
	case c.Store == nil:
		return errors.New("no store")
	case c.App == nil:
		return errors.New("no state machine")
	}
	seen := map[string]bool{}
	for _, a := range c.Peers {
		if seen[a] {
			return fmt.Errorf("replica address %s is listed twice", a)
		}
		seen[a] = true
	}
	return nil
}

// Name is the event-log name of directory replica id: "dir-<id>".
func Name(id int) string { return "dir-" + strconv.Itoa(id) }

// Server is a running directory replica.
type Server struct {
	cfg     Config
	host    *host.Host
	ownHost bool
	unroute []func()
	loop    *host.Loop[directory.In, directory.Out]
	r       *directory.Replica
	fatal   error // a store failure: the replica stopped
	started bool  // the loop runs

	out     map[uint64]*peerOut
	clients map[uint64]clientReq
	handle  uint64

	mu       sync.Mutex
	status   Status
	accepted map[*transport.Conn]bool // nil once closed
	dials    sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
}

type peerOut struct {
	conn    *transport.Conn
	dialing bool
	pending []wire.Frame
	retry   time.Time // no dial before
}

type clientReq struct {
	conn *transport.Conn
	id   uint64
}

// Start loads the store, starts the replica and starts serving.
func Start(cfg Config) (*Server, error) {
	if cfg.Cluster == "" {
		cfg.Cluster = DefaultCluster
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Incarnation == 0 {
		cfg.Incarnation = uint64(time.Now().UnixNano())
	}
	id := directory.Identity{Cluster: cfg.Cluster, Replica: uint64(cfg.ID)}
	if err := cfg.Store.Init(id); err != nil {
		return nil, err
	}
	saved, err := cfg.Store.Load()
	if err != nil {
		return nil, err
	}
	peers := make([]uint64, len(cfg.Peers))
	for i := range peers {
		peers[i] = uint64(i + 1)
	}
	r, err := directory.NewReplica(directory.ReplicaConfig{ID: uint64(cfg.ID + 1), Peers: peers,
		Incarnation: cfg.Incarnation, App: cfg.App, Saved: saved, Tick: cfg.Tick, ElectionTicks: cfg.ElectionTicks})
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, r: r, host: cfg.Host, out: map[uint64]*peerOut{}, clients: map[uint64]clientReq{},
		accepted: map[*transport.Conn]bool{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.loop = host.NewLoop[directory.In, directory.Out](r, host.LoopConfig[directory.In, directory.Out]{
		Tick: directory.In{Kind: directory.InTick}, Apply: s.apply, AfterBatch: s.snapshot,
		Name: Name(cfg.ID), Inc: cfg.Incarnation, LogTo: cfg.LogTo, Observe: cfg.OnEvent, Stream: cfg.Events,
	})
	if s.host == nil {
		s.host, err = host.New(host.Config{Listen: cfg.Peers[cfg.ID], Network: cfg.Network,
			Key: cfg.Key, Insecure: cfg.Insecure, TLS: cfg.TLS})
		if err != nil {
			return nil, err
		}
		s.ownHost = true
	}
	for _, rt := range []struct {
		kind wire.Kind
		f    host.Handler
	}{{wire.KindDirectory, s.admitPeer}, {wire.KindClient, s.admitClient}} {
		remove, err := s.host.Handle(host.Route{Kind: rt.kind, Scope: cfg.Cluster}, rt.f)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.unroute = append(s.unroute, remove)
	}
	st := r.Status()
	s.status = statusOf(st)
	s.started = true
	s.loop.Start(func() {
		s.loop.Log(eventlog.DirStart, map[string]any{eventlog.FieldAddr: s.host.Addr(), eventlog.FieldReplicas: len(cfg.Peers),
			eventlog.FieldApplied: st.Applied, eventlog.FieldTerm: st.Term})
	})
	return s, nil
}

// Addr is the address the replica listens on.
func (s *Server) Addr() string { return s.host.Addr() }

// Status is a replica's role, term, known leader and log indexes.
type Status struct {
	ID      int    `json:"id"`
	Role    string `json:"role"` // follower, precandidate, candidate or leader
	Term    uint64 `json:"term"`
	Leader  int    `json:"leader"` // a replica id, -1 for none
	Commit  uint64 `json:"commit"`
	Applied uint64 `json:"applied"`
}

func statusOf(st directory.ReplicaStatus) Status {
	return Status{ID: int(st.ID) - 1, Role: directory.RoleName(st.State), Term: st.Term, Leader: int(st.Leader) - 1,
		Commit: st.Commit, Applied: st.Applied}
}

// Status is the replica's latest role, term, leader and indexes.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Do runs f on the replica's goroutine, where the App may be read, and
// waits for it; it reports false if the replica has stopped.
func (s *Server) Do(ctx context.Context, f func()) bool {
	done := make(chan struct{})
	if !s.loop.Do(func() { f(); close(done) }) {
		return false
	}
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	case <-s.loop.Done():
		return false
	}
}

// Done is closed when the replica has stopped, by Close or because its
// store failed (Err says why).
func (s *Server) Done() <-chan struct{} { return s.loop.Done() }

// Err is why the replica stopped on its own, or the event log's loss.
func (s *Server) Err() error {
	select {
	case <-s.loop.Done():
	default:
		return nil
	}
	if s.fatal != nil {
		return s.fatal
	}
	return s.loop.LogErr()
}

// Close stops the replica, closes its connections and its own host, and
// returns Err. It does not close the store.
func (s *Server) Close() error {
	for _, f := range s.unroute {
		f()
	}
	if s.started {
		s.loop.Do(func() {
			s.loop.Log(eventlog.DirStop, nil)
			s.loop.Stop()
		})
		<-s.loop.Done()
	}
	s.cancel()
	s.dials.Wait()
	for _, o := range s.out {
		if o.conn != nil {
			o.conn.Close()
		}
	}
	s.mu.Lock()
	accepted := s.accepted
	s.accepted = nil
	s.mu.Unlock()
	for c := range accepted {
		c.Close()
	}
	if s.ownHost {
		s.host.Close()
	}
	if s.cfg.Events != nil {
		s.cfg.Events.Flush()
	}
	return s.Err()
}

func (s *Server) snapshot() {
	st := statusOf(s.r.Status())
	s.mu.Lock()
	s.status = st
	s.mu.Unlock()
}

func (s *Server) apply(o directory.Out) {
	switch o.Kind {
	case directory.OutPersist:
		if s.fatal != nil {
			return
		}
		if err := s.cfg.Store.Save(*o.Persist); err != nil {
			s.fatal = fmt.Errorf("directory replica %d: the store failed, so the replica stopped: %w", s.cfg.ID, err)
			s.loop.Log(eventlog.DirStop, map[string]any{eventlog.FieldError: err.Error()})
			s.loop.Stop()
		}
	case directory.OutSend:
		if s.fatal == nil {
			s.send(o.Msg)
		}
	case directory.OutReply:
		c, ok := s.clients[o.Reply.Handle]
		if !ok {
			return
		}
		delete(s.clients, o.Reply.Handle)
		c.conn.Send(wire.Response{ID: c.id, Status: uint8(o.Reply.Status), Leader: int(o.Reply.Leader) - 1, Data: o.Reply.Data}, false)
	case directory.OutApplied:
		if !s.loop.Logging() {
			return
		}
		f := map[string]any{eventlog.FieldIndex: o.Applied.Index, eventlog.FieldTerm: o.Applied.Term, eventlog.FieldMine: o.Applied.Mine}
		if s.cfg.Describe != nil {
			for k, v := range s.cfg.Describe(o.Applied.Cmd, o.Applied.Result) {
				f[k] = v
			}
		}
		s.loop.Log(eventlog.DirApply, f)
	case directory.OutRole:
		s.loop.Log(eventlog.DirRole, map[string]any{eventlog.FieldRole: directory.RoleName(o.Role.State), eventlog.FieldTerm: o.Role.Term,
			eventlog.FieldLeader: int(o.Role.Leader) - 1})
	}
}

// send carries a Raft message to its replica, dialling it if needed.
func (s *Server) send(m *pb.Message) {
	to := m.GetTo()
	data, err := proto.Marshal(m)
	if err != nil || to == 0 || int(to) > len(s.cfg.Peers) {
		return
	}
	f := wire.Raft{LC: s.loop.Lamport().Tick(s.loop.Wall()), Data: data}
	o := s.out[to]
	if o == nil {
		o = &peerOut{}
		s.out[to] = o
	}
	if o.conn != nil {
		o.conn.Send(f, false)
		return
	}
	if len(o.pending) < sendQueue {
		o.pending = append(o.pending, f)
	} else {
		s.loop.Step(directory.In{Kind: directory.InUnreachable, Peer: to})
	}
	if !o.dialing && !s.loop.Wall().Before(o.retry) {
		o.dialing = true
		s.dials.Add(1)
		go s.dial(to, o)
	}
}

func (s *Server) hello() wire.Hello {
	return wire.Hello{Version: wire.Version, Kind: wire.KindDirectory, Scope: s.cfg.Cluster,
		From: strconv.Itoa(s.cfg.ID), Addr: s.cfg.Peers[s.cfg.ID], N: len(s.cfg.Peers),
		Incarnation: s.cfg.Incarnation, LC: s.loop.Lamport().Tick(s.loop.Wall())}
}

func (s *Server) dialTimeout() time.Duration {
	return time.Duration(max(s.cfg.ElectionTicks, directory.DefaultElectionTicks)) * max(s.cfg.Tick, directory.DefaultTick)
}

// dial connects to replica to (a Raft id) for sending.
func (s *Server) dial(to uint64, o *peerOut) {
	defer s.dials.Done()
	hello := s.hello()
	hello.To = strconv.Itoa(int(to - 1))
	c, _, err := transport.Dial(s.ctx, s.host.Network(), s.cfg.Peers[to-1], hello, s.host.Key(), s.dialTimeout(),
		transport.Limits{MaxFrame: transport.HelloMax, Idle: -1, SendQueue: sendQueue})
	if !s.loop.Do(func() {
		o.dialing = false
		if err != nil {
			o.pending = nil
			o.retry = s.loop.Wall().Add(redialAfter)
			s.loop.Log(eventlog.DialFailed, map[string]any{eventlog.FieldTo: int(to - 1), eventlog.FieldError: err.Error()})
			s.loop.Step(directory.In{Kind: directory.InPeerDown, Peer: to})
			return
		}
		o.conn = c
		c.Start(func(wire.Frame) {}, func(string) {
			s.loop.Do(func() {
				if o.conn == c {
					o.conn = nil
					s.loop.Step(directory.In{Kind: directory.InPeerDown, Peer: to})
				}
			})
		})
		for _, f := range o.pending {
			c.Send(f, false)
		}
		o.pending = nil
	}) && c != nil {
		c.Close()
	}
}

// track keeps c to close it at the end, and forgets it when it ends; it
// reports false, having closed c, if the server is closing.
func (s *Server) track(c *transport.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accepted == nil {
		c.Close()
		return false
	}
	s.accepted[c] = true
	return true
}

func (s *Server) untrack(c *transport.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.accepted, c)
}

// admitPeer reads the Raft messages of another replica.
func (s *Server) admitPeer(a *transport.Accepted) {
	h := a.Hello
	from, err := strconv.Atoi(h.From)
	switch {
	case err != nil || from < 0 || from >= len(s.cfg.Peers) || from == s.cfg.ID:
		a.Reject(fmt.Sprintf("no replica %q in a directory of %d", h.From, len(s.cfg.Peers)), 0)
		return
	case h.N != len(s.cfg.Peers):
		a.Reject(fmt.Sprintf("this directory has %d replicas, not %d", len(s.cfg.Peers), h.N), 0)
		return
	case h.To != "" && h.To != strconv.Itoa(s.cfg.ID):
		a.Reject(fmt.Sprintf("this is replica %d, not %s", s.cfg.ID, h.To), 0)
		return
	}
	raftID := uint64(from + 1)
	c := a.Accept(s.hello(), transport.Limits{MaxFrame: MaxRaftFrame, Idle: -1, SendQueue: 16, Budget: s.host.Budget()})
	if !s.track(c) {
		return
	}
	s.loop.Lamport().Witness(h.LC, time.Now())
	c.Start(func(f wire.Frame) {
		rf, ok := f.(wire.Raft)
		if !ok {
			return
		}
		s.loop.Lamport().Witness(rf.LC, time.Now())
		m := &pb.Message{}
		if err := proto.Unmarshal(rf.Data, m); err != nil || m.GetFrom() != raftID {
			c.Close()
			return
		}
		s.loop.Do(func() {
			if err := s.loop.Step(directory.In{Kind: directory.InMsg, Msg: m}); err != nil {
				s.loop.Log(eventlog.BadMsg, map[string]any{eventlog.FieldFrom: from, eventlog.FieldError: err.Error()})
			}
		})
	}, func(string) {
		s.untrack(c)
		s.loop.Do(func() { s.loop.Step(directory.In{Kind: directory.InPeerDown, Peer: raftID}) })
	})
}

// admitClient serves a client's requests.
func (s *Server) admitClient(a *transport.Accepted) {
	reply := s.hello()
	reply.Kind = wire.KindClient
	c := a.Accept(reply, transport.Limits{MaxFrame: MaxRequest, SendQueue: 1024, Budget: s.host.Budget()})
	if !s.track(c) {
		return
	}
	c.Start(func(f wire.Frame) {
		req, ok := f.(wire.Request)
		if !ok {
			return
		}
		s.loop.Do(func() {
			s.handle++
			s.clients[s.handle] = clientReq{conn: c, id: req.ID}
			kind := directory.InPropose
			if req.Op == wire.OpRead {
				kind = directory.InRead
			}
			s.loop.Step(directory.In{Kind: kind, Req: directory.Request{Handle: s.handle, Data: req.Data}})
		})
	}, func(string) { s.untrack(c) })
}

// OpenLog creates the event log of replica id in dir.
func OpenLog(dir string, id int) (*os.File, error) { return eventlog.Create(dir, Name(id)) }
