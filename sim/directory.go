package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/eventlog"
)

// DirConfig configures a simulated directory.
type DirConfig struct {
	// Replicas is the number of replicas, 3 or 5: replica i (Raft id i+1)
	// runs in process i.
	Replicas int
	// Clients is the number of clients, in the processes after the
	// replicas.
	Clients int
	// Seed decides every delay and random choice.
	Seed uint64
	// MaxGroups is the directory's number of groups (default 4).
	MaxGroups int
	// MoveSpacing is the directory's StateConfig.MoveSpacing: 0 for the
	// default, negative for no moves but those a Move command asks for.
	MoveSpacing int
	// Tick, ElectionTicks, FastStep, SnapshotEvery, CatchUp and
	// RequestTimeout configure the replicas (directory.ReplicaConfig; its
	// defaults if zero). Small
	// SnapshotEvery and CatchUp make replicas snapshot, compact their logs
	// and send snapshots to followers that fall behind.
	Tick           time.Duration
	ElectionTicks  int
	FastStep       time.Duration
	SnapshotEvery  uint64
	CatchUp        uint64
	RequestTimeout time.Duration
	// MinDelay, MaxDelay, MinSync and MaxSync are the network's and the
	// disks' (NetConfig).
	MinDelay, MaxDelay time.Duration
	MinSync, MaxSync   time.Duration
	// Topics is the number of topics the workload uses at a time
	// (default 6); every TopicEvery (default 200ms) the window moves on
	// by one: at time T, topics t<k> to t<k+Topics-1>, k = T/TopicEvery.
	// New topics keep coming, so that a stale read or a lost announce
	// shows: an old topic's QoS and group never change.
	Topics     int
	TopicEvery time.Duration
	// Think bounds a client's pause between two operations of the
	// workload (default 20ms).
	Think time.Duration
	// Attempt bounds how long a client waits for one replica's answer
	// (default 500ms), and Deadline one operation: then the client gives
	// up, and the operation's outcome is unknown (default 3s).
	Attempt, Deadline time.Duration
}

func (c *DirConfig) defaults() error {
	if c.Replicas != 3 && c.Replicas != 5 {
		return fmt.Errorf("sim: a directory has 3 or 5 replicas, not %d", c.Replicas)
	}
	if c.Clients < 0 {
		return fmt.Errorf("sim: %d clients", c.Clients)
	}
	if c.MaxGroups == 0 {
		c.MaxGroups = 4
	}
	if c.Topics <= 0 {
		c.Topics = 6
	}
	if c.TopicEvery <= 0 {
		c.TopicEvery = 200 * time.Millisecond
	}
	if c.Think <= 0 {
		c.Think = 20 * time.Millisecond
	}
	if c.Attempt <= 0 {
		c.Attempt = 500 * time.Millisecond
	}
	if c.Deadline <= 0 {
		c.Deadline = 3 * time.Second
	}
	return nil
}

// DirSim is a simulated directory: replicas of directory.Replica with a
// directory.State each, in processes 0..Replicas-1, and clients in the
// processes after them, on one Net. It records the replicas' dir_start,
// dir_role and dir_apply events, and every client operation as a
// check.DirOp.
//
// Replicas connect as the directory runtime (package dirnode) does: one
// connection per direction, dialled by the sender, which queues what it
// sends until the handshake is done; a failed dial, and the end of a
// connection either way, is stepped as directory.InPeerDown. A replica
// keeps its state in a DiskStore on its process's disk. It carries out its
// effects in order, and after an OutPersist that must be synced it carries
// out nothing more until the disk's Sync has completed: a crash meanwhile
// loses the write and everything that waited for it. A (re)started
// replica loads its store, with a new directory.State and its process's
// incarnation.
//
// A client dials the replica it asks; the replica answers on the same
// connection. It follows the leader a replica names, tries the replicas
// in turn when one cannot answer (no leader, a timeout, a lost
// connection), backing off between rounds, and retries the same command
// bytes, so the directory applies it once. It gives up after
// DirConfig.Deadline.
type DirSim struct {
	*Net
	cfg     DirConfig
	reps    []*dirReplica
	clients []*dirClient
	crng    *rand.Rand // the clients' choices
	ops     []check.DirOp
	calls   []dirClientCall
	work    bool // the clients run the random workload

	// applied is every command applied, by index, as the first replica
	// to apply it did; diverged lists the replicas that applied another.
	applied  map[uint64]appliedCmd
	diverged []string

	// Test-only switches that break the directory, to show the checkers
	// reject what follows.
	ackBeforeSync bool // carry out effects after OutPersist without waiting for Sync
	freshSeq      bool // a client's retry gets a new sequence number
	localReads    bool // a replica answers a read from its own state at once
}

// dirClientCall is a finished operation with the sequence numbers its
// command was sent with.
type dirClientCall struct {
	client string
	seqs   []uint64
	op     check.DirOp
}

type appliedCmd struct {
	cmd, result []byte
	who         string
}

// NewDir returns a simulated directory, no process started.
func NewDir(cfg DirConfig) (*DirSim, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	net, err := NewNet(NetConfig{N: cfg.Replicas + cfg.Clients, Seed: cfg.Seed, MinDelay: cfg.MinDelay,
		MaxDelay: cfg.MaxDelay, MinSync: cfg.MinSync, MaxSync: cfg.MaxSync})
	if err != nil {
		return nil, err
	}
	if _, err := directory.NewState(directory.StateConfig{MaxGroups: cfg.MaxGroups, MoveSpacing: cfg.MoveSpacing}); err != nil {
		return nil, err
	}
	s := &DirSim{Net: net, cfg: cfg, applied: map[uint64]appliedCmd{},
		crng: rand.New(rand.NewPCG(cfg.Seed, 0xd1c7))}
	for i := range cfg.Replicas {
		m := &dirReplica{s: s, p: net.procs[i], id: i, name: DirName(i)}
		s.reps = append(s.reps, m)
		net.host(i, m)
	}
	for k := range cfg.Clients {
		c := &dirClient{s: s, p: net.procs[cfg.Replicas+k], k: k, id: "c" + strconv.Itoa(k)}
		s.clients = append(s.clients, c)
		net.host(cfg.Replicas+k, c)
	}
	return s, nil
}

// DirName is the node name of directory replica i in events, as the
// runtime's (dirnode.Name): "dir-<i>".
func DirName(i int) string { return "dir-" + strconv.Itoa(i) }

// Config returns the configuration with defaults filled in.
func (s *DirSim) Config() DirConfig { return s.cfg }

// ReplicaStatus returns replica i's status; ok is false if its process
// is not running.
func (s *DirSim) ReplicaStatus(i int) (st directory.ReplicaStatus, ok bool) {
	m := s.reps[i]
	if !m.active {
		return st, false
	}
	return m.r.Status(), true
}

// Leader returns the replica that leads in the highest term among the
// running, unpaused replicas, or -1.
func (s *DirSim) Leader() int {
	l, term := -1, uint64(0)
	for i, m := range s.reps {
		if !m.active || m.p.paused {
			continue
		}
		if st := m.r.Status(); st.State == raft.StateLeader && st.Term >= term {
			l, term = i, st.Term
		}
	}
	return l
}

// State returns replica i's state machine, nil if its process is not
// running. It must only be read.
func (s *DirSim) State(i int) *directory.State {
	if m := s.reps[i]; m.active {
		return m.state
	}
	return nil
}

// Ops returns every client operation finished so far, in the order they
// finished; an operation a client gave up has Known false.
func (s *DirSim) Ops() []check.DirOp { return s.ops }

// Workload starts (on) or stops the clients' random workload: each
// client in turn announces a topic with a QoS (vsync or total), subscribes
// to a topic or looks one up (of the DirConfig.Topics of the moment),
// then pauses up to DirConfig.Think. Stopped,
// a client finishes the operation under way and begins no other.
func (s *DirSim) Workload(on bool) {
	s.work = on
	if on {
		for _, c := range s.clients {
			c.next()
		}
	}
}

// Idle reports whether no client has an operation under way or queued.
func (s *DirSim) Idle() bool {
	for _, c := range s.clients {
		if c.cur != nil || len(c.queue) > 0 || c.waking && s.work {
			return false
		}
	}
	return true
}

// Announce has client k announce topic with qos (a shipped QoS name),
// after the operations it has under way or queued.
func (s *DirSim) Announce(k int, topic, qos string) *DirCall {
	return s.clients[k].submit(&DirCall{Op: check.DirOp{Kind: check.DirAnnounce, Topic: topic, QoS: qos}})
}

// Subscribe has client k subscribe to topic; it is recorded as a
// check.DirLookup, since it answers with the topic's QoS and group.
func (s *DirSim) Subscribe(k int, topic string) *DirCall {
	return s.clients[k].submit(&DirCall{Op: check.DirOp{Kind: check.DirLookup, Topic: topic}, subscribe: true})
}

// Lookup has client k look topic up with a linearizable read.
func (s *DirSim) Lookup(k int, topic string) *DirCall {
	return s.clients[k].submit(&DirCall{Op: check.DirOp{Kind: check.DirLookup, Topic: topic}, read: true})
}

// Command has client k send op, a command of any kind, after the
// operations it has under way or queued, and calls then, if not nil, once
// it is done. An announce or a subscribe is recorded in Ops; other
// commands (unsubscribe, withdraw, contacts) only count for
// CheckExactlyOnce, since the model of check.Linearizable does not cover
// them.
func (s *DirSim) Command(k int, op directory.Op, then func(*DirCall)) *DirCall {
	call := &DirCall{then: then}
	switch o := op.(type) {
	case directory.Announce:
		call.Op = check.DirOp{Kind: check.DirAnnounce, Topic: o.Topic, QoS: o.QoS}
	case directory.Subscribe:
		call.Op, call.subscribe = check.DirOp{Kind: check.DirLookup, Topic: o.Topic}, true
	default:
		call.op = op
		call.Op.Kind = fmt.Sprintf("%T", op)
	}
	return s.clients[k].submit(call)
}

// Query has client k read the state with query q (directory.QueryMoves,
// a directory.LookupQuery, ...), a linearizable read, after the
// operations it has under way or queued, and calls then, if not nil, once
// it is done: Data is the answer. It is kept out of Ops.
func (s *DirSim) Query(k int, q []byte, then func(*DirCall)) *DirCall {
	return s.clients[k].submit(&DirCall{read: true, query: q, then: then})
}

// DirCall is a client operation.
type DirCall struct {
	// Op is the operation as recorded; its outcome once Done.
	Op check.DirOp
	// Done is set when the client has its answer or gave up.
	Done bool
	// Tries counts the requests sent.
	Tries int
	// Result is the command's result, once Done with Op.Known (not for
	// a lookup).
	Result directory.Result
	// Data is the answer to a Query, once Done with Op.Known.
	Data []byte

	query []byte         // a Query's, kept out of Ops
	op    directory.Op   // a command other than announce and subscribe, kept out of Ops
	then  func(*DirCall) // called once Done

	read, subscribe bool
	data            []byte
	seqs            []uint64 // the sequence numbers it was sent with
	deadline        time.Duration
	try             int // the replica to ask next
	round           int // replicas asked in this round
	backoff         time.Duration
	req             uint64 // the request under way; 0: none
	first           int    // 1 + the replica to ask first; 0: the last that answered
}

// dirRequest is a client's request on a connection to a replica.
type dirRequest struct {
	id   uint64
	read bool
	data []byte
}

// --- replicas ---

// dirReplica is the machine of a directory replica in its process.
type dirReplica struct {
	s      *DirSim
	p      *proc
	id     int // process; Raft id id+1
	name   string
	active bool

	store   *DiskStore
	state   *directory.State
	r       *directory.Replica
	started time.Duration // the replica's time zero, as the runtime's loop's
	queue   []directory.Out
	syncing bool // an OutPersist waits for its Sync

	out     map[int]*dirOut // connections to other replicas, by process
	reqs    map[uint64]dirPending
	handles uint64
	timer   timer
	clock   eventlog.Clock
}

// dirOut is a replica's connection to another, as dirnode's peerOut.
type dirOut struct {
	c       *conn // nil while none
	dialing bool
	pending []*pb.Message
	retry   time.Duration // no dial before
}

type dirPending struct {
	c  *conn
	id uint64
}

// Settings of replica connections, as dirnode's.
const (
	dirRedialAfter = 50 * time.Millisecond
	dirSendQueue   = 4096
)

func (m *dirReplica) peers() []uint64 {
	ids := make([]uint64, len(m.s.reps))
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	return ids
}

func (m *dirReplica) start() {
	s := m.s
	m.store = NewDiskStore(s.Disk(m.id), "dir")
	if err := m.store.Init(directory.Identity{Cluster: "sim", Replica: uint64(m.id)}); err != nil {
		panic(fmt.Sprintf("sim: %s: %v", m.name, err))
	}
	saved, err := m.store.Load()
	if err != nil {
		panic(fmt.Sprintf("sim: %s: %v", m.name, err))
	}
	st, err := directory.NewState(directory.StateConfig{MaxGroups: s.cfg.MaxGroups, MoveSpacing: s.cfg.MoveSpacing})
	if err != nil {
		panic(err)
	}
	m.state = st
	m.r, err = directory.NewReplica(directory.ReplicaConfig{ID: uint64(m.id + 1), Peers: m.peers(),
		Incarnation: m.p.inc, App: st, Saved: saved, Tick: s.cfg.Tick, ElectionTicks: s.cfg.ElectionTicks,
		FastStep: s.cfg.FastStep, SnapshotEvery: s.cfg.SnapshotEvery, CatchUp: s.cfg.CatchUp,
		RequestTimeout: s.cfg.RequestTimeout})
	if err != nil {
		panic(fmt.Sprintf("sim: %s: %v", m.name, err))
	}
	m.active, m.syncing, m.queue = true, false, nil
	// The replica's clock starts with the process, at a phase of its own
	// against the others' ticks, drawn from the seed: replicas that tick
	// in step time out together when Raft draws the same timeout, and
	// split the vote more often than real processes do.
	m.started = s.now - time.Duration(s.rng.Int64N(int64(m.tickLen())))
	m.out, m.reqs = map[int]*dirOut{}, map[uint64]dirPending{}
	m.clock = eventlog.Clock{}
	rs := m.r.Status()
	m.log(eventlog.DirStart, eventlog.FieldAddr, Addr(m.id), eventlog.FieldReplicas, len(s.reps),
		eventlog.FieldApplied, rs.Applied, eventlog.FieldTerm, rs.Term)
	m.flush()
}

// tickLen is the replicas' Raft tick.
func (m *dirReplica) tickLen() time.Duration {
	if t := m.s.cfg.Tick; t > 0 {
		return t
	}
	return directory.DefaultTick
}

func (m *dirReplica) tick() { m.step(directory.In{Kind: directory.InTick}) }

func (m *dirReplica) stop() { m.log(eventlog.DirStop) }

func (m *dirReplica) down() {
	m.active, m.syncing = false, false
	m.queue, m.out, m.reqs = nil, nil, nil
}

func (m *dirReplica) done() bool { return false }

// step feeds one input to the replica and carries out its effects.
func (m *dirReplica) step(in directory.In) {
	if !m.active {
		return
	}
	if err := m.r.Step(m.s.now-m.started, in); err != nil {
		m.log(eventlog.BadMsg, eventlog.FieldError, err.Error())
	}
	m.flush()
}

// flush collects the replica's effects and carries them out in order,
// up to one that waits for a sync; it arms the replica's timer.
func (m *dirReplica) flush() {
	if rd := m.r.Ready(); len(m.queue) == 0 {
		m.queue = rd
	} else {
		m.queue = append(m.queue, rd...)
	}
	m.drain()
	m.s.arm(m.p, &m.timer, m.started+m.r.Deadline(), m.tick)
}

func (m *dirReplica) drain() {
	s := m.s
	for !m.syncing && len(m.queue) > 0 && m.active {
		o := m.queue[0]
		m.queue[0] = directory.Out{}
		m.queue = m.queue[1:]
		switch o.Kind {
		case directory.OutPersist:
			if err := m.store.Save(*o.Persist); err != nil {
				panic(fmt.Sprintf("sim: %s: %v", m.name, err))
			}
			if !o.Persist.Sync {
				continue
			}
			if s.ackBeforeSync {
				m.store.Sync(nil)
				continue
			}
			m.syncing = true
			gen := m.p.gen
			m.store.Sync(func() {
				if m.p.gen != gen || !m.active {
					return
				}
				m.syncing = false
				m.drain()
			})
		case directory.OutSend:
			m.send(o.Msg)
		case directory.OutReply:
			m.reply(o.Reply)
		case directory.OutApplied:
			m.applied(o.Applied)
		case directory.OutRole:
			m.log(eventlog.DirRole, eventlog.FieldRole, directory.RoleName(o.Role.State), eventlog.FieldTerm, o.Role.Term,
				eventlog.FieldLeader, int(o.Role.Leader)-1)
		}
	}
}

// applied records an applied command, and any disagreement with what
// another replica applied at the same index.
func (m *dirReplica) applied(a directory.Applied) {
	s := m.s
	f := directory.Describe(a.Cmd, a.Result)
	kv := []any{eventlog.FieldIndex, a.Index, eventlog.FieldTerm, a.Term, eventlog.FieldMine, a.Mine}
	for _, k := range []string{eventlog.FieldClient, eventlog.FieldSeq, eventlog.FieldOp, eventlog.FieldTopic,
		eventlog.FieldQoS, eventlog.FieldGroup, eventlog.FieldResult} {
		if v, ok := f[k]; ok {
			kv = append(kv, k, v)
		}
	}
	m.log(eventlog.DirApply, kv...)
	who := fmt.Sprintf("%s.%d", m.name, m.p.inc)
	prev, ok := s.applied[a.Index]
	if !ok {
		s.applied[a.Index] = appliedCmd{cmd: bytes.Clone(a.Cmd), result: bytes.Clone(a.Result), who: who}
		return
	}
	if !bytes.Equal(prev.cmd, a.Cmd) || !bytes.Equal(prev.result, a.Result) {
		s.diverged = append(s.diverged, fmt.Sprintf("at index %d %s applied %v, %s applied %v",
			a.Index, prev.who, directory.Describe(prev.cmd, prev.result), who, f))
	}
}

func (m *dirReplica) log(ev string, kv ...any) {
	t := m.s.wall()
	m.s.record(eventlog.Event{TS: t, Node: m.name, Inc: m.p.inc, LC: m.clock.Tick(t), Ev: ev, Fields: fields(kv)})
}

// send carries a Raft message to its replica, dialling it if needed, as
// dirnode does: after a failed dial the queued messages are dropped and
// the replica waits dirRedialAfter before it dials again.
func (m *dirReplica) send(msg *pb.Message) {
	to := int(msg.GetTo()) - 1
	if to < 0 || to >= len(m.s.reps) || to == m.id {
		return
	}
	o := m.out[to]
	if o == nil {
		o = &dirOut{}
		m.out[to] = o
	}
	msg = proto.Clone(msg).(*pb.Message) // the receiver shares nothing with the sender
	if o.c != nil {
		m.write(o.c, msg)
		return
	}
	if len(o.pending) < dirSendQueue {
		o.pending = append(o.pending, msg)
	} else {
		m.unreachable(to)
	}
	if !o.dialing && m.s.now >= o.retry {
		o.dialing = true
		m.dial(to, o)
	}
}

// unreachable reports a message to replica to dropped from a full queue
// while dialling, as dirnode does: the replica's next effects join the
// queue being carried out.
func (m *dirReplica) unreachable(to int) {
	if err := m.r.Step(m.s.now-m.started, directory.In{Kind: directory.InUnreachable, Peer: uint64(to + 1)}); err != nil {
		m.log(eventlog.BadMsg, eventlog.FieldError, err.Error())
	}
	m.queue = append(m.queue, m.r.Ready()...)
}

// dirDialTimeout is a replica's dial timeout, as dirnode's: an election
// timeout.
func (s *DirSim) dirDialTimeout() time.Duration {
	tick, el := s.cfg.Tick, s.cfg.ElectionTicks
	return time.Duration(max(el, directory.DefaultElectionTicks)) * max(tick, directory.DefaultTick)
}

func (m *dirReplica) dial(to int, o *dirOut) {
	s, target := m.s, m.s.reps[to]
	from := m.id
	s.connect(m.p, target.p, s.dirDialTimeout(), handshake{
		accept: func(c *conn) error { return target.acceptPeer(c, from) },
		connected: func(c *conn) {
			if !m.active || m.out[to] != o {
				s.close(c, 0)
				return
			}
			o.dialing, o.c = false, c
			c.onEnd[0] = func(string) {
				if m.active && m.out[to] == o && o.c == c {
					o.c = nil
					m.step(directory.In{Kind: directory.InPeerDown, Peer: uint64(to + 1)})
				}
			}
			for _, msg := range o.pending {
				m.write(c, msg)
			}
			o.pending = nil
		},
		failed: func(why string) {
			if !m.active || m.out[to] != o {
				return
			}
			o.dialing, o.pending = false, nil
			o.retry = s.now + dirRedialAfter
			m.log(eventlog.DialFailed, eventlog.FieldTo, to, eventlog.FieldError, why)
			m.step(directory.In{Kind: directory.InPeerDown, Peer: uint64(to + 1)})
		},
	})
}

// acceptPeer takes a connection from replica from, which only sends on it.
func (m *dirReplica) acceptPeer(c *conn, from int) error {
	if !m.active {
		return fmt.Errorf("no replica here")
	}
	c.onEnd[1] = func(string) { m.step(directory.In{Kind: directory.InPeerDown, Peer: uint64(from + 1)}) }
	m.s.answer(c)
	return nil
}

// write sends msg on the replica's connection c.
func (m *dirReplica) write(c *conn, msg *pb.Message) {
	to := m.s.reps[c.ends[1]]
	m.s.send(c, 0, func() {
		if !c.closed[1] {
			to.step(directory.In{Kind: directory.InMsg, Msg: msg})
		}
	})
}

// acceptClient takes a client's connection.
func (m *dirReplica) acceptClient(c *conn) error {
	if !m.active {
		return fmt.Errorf("no replica here")
	}
	c.onEnd[1] = func(string) {}
	m.s.answer(c)
	return nil
}

// request takes a client's request from connection c.
func (m *dirReplica) request(c *conn, r dirRequest) {
	if !m.active {
		return
	}
	m.handles++
	m.reqs[m.handles] = dirPending{c: c, id: r.id}
	if r.read && m.s.localReads {
		m.reply(directory.Reply{Handle: m.handles, Data: m.state.Query(r.data)})
		return
	}
	kind := directory.InPropose
	if r.read {
		kind = directory.InRead
	}
	m.step(directory.In{Kind: kind, Req: directory.Request{Handle: m.handles, Data: r.data}})
}

// reply answers a client on the connection its request came on.
func (m *dirReplica) reply(rep directory.Reply) {
	p, ok := m.reqs[rep.Handle]
	if !ok {
		return
	}
	delete(m.reqs, rep.Handle)
	c := p.c
	if c.closed[1] {
		return
	}
	cl := m.s.clients[c.ends[0]-len(m.s.reps)]
	m.s.send(c, 1, func() {
		if !c.closed[0] {
			cl.answer(c, p.id, rep)
		}
	})
}

// --- clients ---

// dirClient is the machine of a directory client in its process.
type dirClient struct {
	s      *DirSim
	p      *proc
	k      int
	id     string // the client id of its commands
	seq    uint64 // the last command's sequence number
	reqs   uint64 // request ids
	leader int    // the replica to try first
	conns  map[int]*clientConn
	cur    *DirCall
	queue  []*DirCall
	waking bool   // a wake-up for the next operation is pending
	wakes  uint64 // numbers wake-ups: only the last counts
}

type clientConn struct {
	c       *conn // nil while dialling
	waiting []func(c *conn)
}

// start starts the client; a restarted one is a new client, named
// c<k>.<incarnation>, as a restarted process names itself anew.
func (c *dirClient) start() {
	c.conns = map[int]*clientConn{}
	if c.p.inc > 1 {
		c.id, c.seq = "c"+strconv.Itoa(c.k)+"."+strconv.FormatUint(c.p.inc, 10), 0
	}
}
func (c *dirClient) tick() {}
func (c *dirClient) stop() {}

// down ends the client with its process: an operation under way is
// recorded as given up, since it may still take effect.
func (c *dirClient) down() {
	if call := c.cur; call != nil {
		call.Op.Return = c.s.now
		c.s.recordCall(call, c.id)
	}
	c.conns, c.cur, c.queue = nil, nil, nil
	c.waking = false
	c.wakes++
}
func (c *dirClient) done() bool { return false }

// submit queues an operation.
func (c *dirClient) submit(call *DirCall) *DirCall {
	c.queue = append(c.queue, call)
	c.next()
	return call
}

// next begins the next operation if none is under way: a queued one, or
// with the workload on, a random one after a pause. It begins at least
// dirGap after the last ended, so that the checkers see the two in
// order: porcupine takes a call and a return at the same time as
// concurrent, and a step takes no simulated time.
func (c *dirClient) next() {
	s := c.s
	switch {
	case c.cur != nil || !c.p.running:
		return
	case len(c.queue) == 0 && (!s.work || c.waking):
		return
	}
	pause := dirGap
	if len(c.queue) == 0 {
		pause += time.Duration(s.crng.Int64N(int64(s.cfg.Think) + 1))
	}
	c.wakes++
	w := c.wakes
	c.waking = true
	s.after(pause, func() {
		if c.wakes != w {
			return
		}
		c.waking = false
		switch {
		case c.cur != nil:
		case len(c.queue) > 0:
			call := c.queue[0]
			c.queue = c.queue[1:]
			c.begin(call)
		case s.work:
			c.begin(c.random())
		}
	})
}

// dirGap is the least time between two operations of a client.
const dirGap = time.Microsecond

// random draws an operation of the workload. One in three goes first
// to a replica drawn at random rather than to the last that answered,
// so that followers forward proposals and reads.
func (c *dirClient) random() *DirCall {
	call := c.randomOp()
	if c.s.crng.IntN(3) == 0 {
		call.first = c.s.crng.IntN(len(c.s.reps)) + 1
	}
	return call
}

func (c *dirClient) randomOp() *DirCall {
	s := c.s
	topic := "t" + strconv.Itoa(int(s.now/s.cfg.TopicEvery)+s.crng.IntN(s.cfg.Topics))
	switch s.crng.IntN(10) {
	case 0, 1, 2, 3:
		qos := "vsync"
		if s.crng.IntN(2) == 0 {
			qos = "total"
		}
		return &DirCall{Op: check.DirOp{Kind: check.DirAnnounce, Topic: topic, QoS: qos}}
	case 4, 5, 6:
		return &DirCall{Op: check.DirOp{Kind: check.DirLookup, Topic: topic}, subscribe: true}
	}
	return &DirCall{Op: check.DirOp{Kind: check.DirLookup, Topic: topic}, read: true}
}

// command numbers call's command anew and encodes it.
func (c *dirClient) command(call *DirCall) {
	c.seq++
	call.seqs = append(call.seqs, c.seq)
	cmd := directory.Command{Client: c.id, Seq: c.seq}
	switch {
	case call.op != nil:
		cmd.Op = call.op
	case call.subscribe:
		cmd.Op = directory.Subscribe{Topic: call.Op.Topic}
	default:
		cmd.Op = directory.Announce{Topic: call.Op.Topic, QoS: call.Op.QoS}
	}
	call.data = directory.EncodeCommand(cmd)
}

func (c *dirClient) begin(call *DirCall) {
	s := c.s
	c.cur = call
	call.Op.Client = c.k
	call.Op.Call = s.now
	call.deadline = s.now + s.cfg.Deadline
	call.backoff = 5 * time.Millisecond
	call.try = c.leader
	if call.first > 0 {
		call.try = call.first - 1
	}
	if call.query != nil {
		call.data = call.query
	} else if call.read {
		call.data = directory.LookupQuery(call.Op.Topic)
	} else {
		c.command(call)
	}
	c.attempt()
}

// attempt sends the current operation to replica call.try.
func (c *dirClient) attempt() {
	s, call := c.s, c.cur
	if s.now >= call.deadline {
		c.finish(false, directory.Reply{})
		return
	}
	if call.Tries > 0 && !call.read && s.freshSeq {
		c.command(call)
	}
	call.Tries++
	c.reqs++
	id := c.reqs
	call.req = id
	i := call.try
	req := dirRequest{id: id, read: call.read, data: call.data}
	c.withConn(i, func(cn *conn) {
		if c.cur != call || call.req != id {
			return
		}
		if cn == nil {
			c.failed(call, id, false, 0)
			return
		}
		s.send(cn, 0, func() {
			if !cn.closed[1] {
				s.reps[cn.ends[1]].request(cn, req)
			}
		})
	})
	s.after(min(s.cfg.Attempt, call.deadline-s.now), func() { c.failed(call, id, false, 0) })
}

// failed ends attempt id of call without an answer: the next replica is
// tried (leader, if a replica named one), after a back-off at the end of
// a round.
func (c *dirClient) failed(call *DirCall, id uint64, named bool, leader int) {
	s := c.s
	if c.cur != call || call.req != id {
		return
	}
	call.req = 0
	if named && leader != call.try {
		call.try = leader
	} else {
		call.try = (call.try + 1) % len(s.reps)
	}
	call.round++
	if call.round < len(s.reps) {
		c.attempt()
		return
	}
	call.round = 0
	wait := call.backoff
	call.backoff = min(2*call.backoff, 200*time.Millisecond)
	s.after(min(wait, max(call.deadline-s.now, 0)), func() {
		if c.cur == call && call.req == 0 {
			c.attempt()
		}
	})
}

// answer takes a replica's answer to request id on connection cn.
func (c *dirClient) answer(cn *conn, id uint64, rep directory.Reply) {
	call := c.cur
	if call == nil || call.req != id {
		return
	}
	if rep.Status != directory.StatusOK {
		c.failed(call, id, rep.Leader != 0, int(rep.Leader)-1)
		return
	}
	c.leader = cn.ends[1]
	c.finish(true, rep)
}

// finish records the current operation: known, with rep's data, or
// given up.
func (c *dirClient) finish(known bool, rep directory.Reply) {
	s, call := c.s, c.cur
	call.req = 0
	call.Op.Return = s.now
	if known {
		call.Op.Known = true
		if call.query != nil {
			call.Data = rep.Data
		} else if call.read {
			var f directory.Found
			if err := json.Unmarshal(rep.Data, &f); err != nil {
				panic(fmt.Sprintf("sim: a lookup's answer does not decode: %v: %q", err, rep.Data))
			}
			if f.Found {
				call.Op.Code, call.Op.GotQoS, call.Op.Group, call.Op.Moves = check.DirOK, f.Topic.QoS, f.Topic.Group, f.Topic.Moves
			} else {
				call.Op.Code = check.DirUnknown
			}
		} else {
			r, err := directory.DecodeResult(rep.Data)
			if err != nil {
				panic(fmt.Sprintf("sim: a result does not decode: %v", err))
			}
			call.Result = r
			call.Op.GotQoS, call.Op.Group, call.Op.Moves = r.QoS, r.Group, r.Moves
			switch r.Code {
			case directory.CodeOK:
				call.Op.Code = check.DirOK
			case directory.CodeQoSConflict:
				call.Op.Code = check.DirConflict
			case directory.CodeNoGroup:
				call.Op.Code = check.DirNoGroup
			case directory.CodeUnknownTopic:
				call.Op.Code = check.DirUnknown
			default:
				call.Op.Code = r.Code.String()
			}
		}
	}
	c.cur = nil
	s.recordCall(call, c.id)
	if call.then != nil {
		call.then(call)
	}
	c.next()
}

// recordCall records a finished or abandoned call of client id.
func (s *DirSim) recordCall(call *DirCall, id string) {
	call.Done = true
	if call.op == nil && call.query == nil {
		s.ops = append(s.ops, call.Op)
	}
	s.calls = append(s.calls, dirClientCall{client: id, seqs: call.seqs, op: call.Op})
}

// withConn runs f with the connection to replica i once it is made, or
// with nil if it cannot be.
func (c *dirClient) withConn(i int, f func(*conn)) {
	s := c.s
	cc := c.conns[i]
	if cc != nil && cc.c != nil {
		f(cc.c)
		return
	}
	if cc != nil {
		cc.waiting = append(cc.waiting, f)
		return
	}
	cc = &clientConn{waiting: []func(*conn){f}}
	c.conns[i] = cc
	rep := s.reps[i]
	s.connect(c.p, rep.p, s.dirDialTimeout(), handshake{
		accept: rep.acceptClient,
		connected: func(cn *conn) {
			if c.conns[i] != cc {
				s.close(cn, 0)
				return
			}
			cc.c = cn
			cn.onEnd[0] = func(string) {
				if c.conns[i] == cc {
					delete(c.conns, i)
				}
				if call := c.cur; call != nil && call.req != 0 && call.try == i {
					c.failed(call, call.req, false, 0)
				}
			}
			waiting := cc.waiting
			cc.waiting = nil
			for _, g := range waiting {
				g(cn)
			}
		},
		failed: func(string) {
			if c.conns[i] != cc {
				return
			}
			delete(c.conns, i)
			for _, g := range cc.waiting {
				g(nil)
			}
		},
	})
}
