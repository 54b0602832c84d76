package directory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// Defaults of ReplicaConfig.
const (
	DefaultTick           = 20 * time.Millisecond
	DefaultElectionTicks  = 10
	DefaultHeartbeatTicks = 1
	DefaultSnapshotEvery  = 1000
	DefaultCatchUp        = 256
	// DefaultFastStep is how long each replica waits after the one ranked
	// before it when the leader's connection closes (see peerDown): more
	// than a pre-vote's round trip with a disk sync at each end, so that
	// the next in rank does not campaign against an election about to be
	// won, splitting the vote (the simulator measured 5 ms too short for
	// syncs of up to 5 ms: the failover's p99 doubled).
	DefaultFastStep = 15 * time.Millisecond
)

// ReplicaConfig configures a Replica.
type ReplicaConfig struct {
	// ID is this replica's Raft id, one of Peers; Raft ids are not 0.
	ID uint64
	// Peers are the Raft ids of every replica, this one included.
	Peers []uint64
	// Incarnation tells this run of the replica from its earlier runs
	// (the runtime uses its start time), so that requests it proposed
	// before a restart are never taken for new ones.
	Incarnation uint64
	// App is the state machine; Saved is what the store held at start.
	App   App
	Saved Saved
	// Tick is Raft's tick; elections time out after ElectionTicks to
	// 2×ElectionTicks ticks, heartbeats go every HeartbeatTicks.
	Tick           time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	// SnapshotEvery is how many applied entries trigger a snapshot;
	// CatchUp entries stay in the log behind it for slow followers.
	SnapshotEvery uint64
	CatchUp       uint64
	// FastStep spaces the campaigns that follow the close of the leader's
	// connection.
	FastStep time.Duration
	// RequestTimeout bounds how long a request waits for its entry to
	// commit or its read to be confirmed (default 2 election timeouts).
	RequestTimeout time.Duration
	// Logger receives Raft's own diagnostics (default: none).
	Logger raft.Logger
}

func (c *ReplicaConfig) defaults() {
	if c.Tick <= 0 {
		c.Tick = DefaultTick
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.HeartbeatTicks <= 0 {
		c.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = DefaultSnapshotEvery
	}
	if c.CatchUp == 0 {
		c.CatchUp = DefaultCatchUp
	}
	if c.FastStep <= 0 {
		c.FastStep = DefaultFastStep
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 2 * time.Duration(c.ElectionTicks) * c.Tick
	}
	if c.Logger == nil {
		c.Logger = discard{}
	}
}

// InKind says what an input to a Replica is.
type InKind uint8

// Inputs of a Replica.
const (
	// InTick: time passed.
	InTick InKind = iota
	// InMsg: Msg arrived from another replica.
	InMsg
	// InPeerDown: the connection with replica Peer closed.
	InPeerDown
	// InPropose: a client asks for Req.Data to be applied.
	InPropose
	// InRead: a client asks for Req.Data to be answered by App.Query at a
	// linearizable point.
	InRead
	// InUnreachable: a message to replica Peer was dropped (its
	// connection's queue is full); the connection may still be up.
	InUnreachable
)

// In is one input of a Replica.
type In struct {
	Kind InKind
	Msg  *pb.Message
	Peer uint64
	Req  Request
}

// Request is a client's request, told apart by Handle in the reply.
type Request struct {
	Handle uint64
	Data   []byte
}

// OutKind says what an effect of a Replica is.
type OutKind uint8

// Effects of a Replica.
const (
	// OutPersist: make Persist durable before carrying out any later
	// effect, of this Ready or of a later one.
	OutPersist OutKind = iota
	// OutSend: send Msg to replica Msg.To.
	OutSend
	// OutReply: answer the request Reply.Handle.
	OutReply
	// OutApplied: the command Cmd committed at Index was applied, with
	// Result; Mine says this replica proposed it.
	OutApplied
	// OutRole: the replica's role, term or known leader changed.
	OutRole
	// OutUnreachable: a message could not be sent; the driver reports it
	// with In{Kind: InPeerDown} if the connection is gone.
	OutUnreachable
)

// Out is one effect of a Replica.
type Out struct {
	Kind    OutKind
	Persist *Persist
	Msg     *pb.Message
	Reply   Reply
	Applied Applied
	Role    Role
}

// Status says how a request ended.
type Status uint8

// Request outcomes.
const (
	StatusOK Status = iota
	// StatusNoLeader: this replica knows no leader; Reply.Leader is 0.
	StatusNoLeader
	// StatusTimeout: the request did not commit or was not confirmed in
	// time; it may still commit later.
	StatusTimeout
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNoLeader:
		return "no leader"
	case StatusTimeout:
		return "timeout"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Reply answers a request.
type Reply struct {
	Handle uint64
	Status Status
	// Leader is the leader this replica knows (0: none).
	Leader uint64
	// Data is App.Apply's result for a proposal, App.Query's for a read.
	Data []byte
}

// Applied is a command applied to the App.
type Applied struct {
	Index  uint64
	Term   uint64
	Cmd    []byte
	Result []byte
	Mine   bool
}

// Role is the replica's role, term and known leader.
type Role struct {
	State  raft.StateType
	Term   uint64
	Leader uint64
}

// RoleName is the name of a Raft state in logs and status: follower,
// precandidate, candidate or leader.
func RoleName(s raft.StateType) string {
	switch s {
	case raft.StateLeader:
		return "leader"
	case raft.StateCandidate:
		return "candidate"
	case raft.StatePreCandidate:
		return "precandidate"
	}
	return "follower"
}

// Replica replicates an App with Raft. It is a pure machine: the driver
// steps inputs in, carries out the effects Ready returns in order, and
// steps InTick when Deadline comes.
type Replica struct {
	cfg     ReplicaConfig
	rn      *raft.RawNode
	storage *raft.MemoryStorage
	conf    *pb.ConfState
	now     time.Duration
	ticked  time.Duration // time of the last tick
	applied uint64
	snapped uint64 // index of the latest snapshot
	role    Role
	out     []Out

	nonce   uint64
	pending map[uint64]pending // by nonce: proposals and reads of this run
	reads   []readWait         // confirmed reads waiting for their index to apply

	fast        *fast    // campaigns after the leader's connection closed
	parked      []parked // requests waiting for a leader to be known
	parkedBytes int

	// preVoted is when a pre-vote request last arrived while this replica
	// followed a leader (and so refused it).
	preVoted time.Duration
}

type pending struct {
	handle  uint64
	read    bool
	data    []byte // the client's command or query
	expires time.Duration
}

type parked struct {
	req     Request
	read    bool
	expires time.Duration
}

type readWait struct {
	nonce uint64
	index uint64
}

type fast struct {
	next     time.Duration
	attempts int
	term     uint64 // the term when the leader's connection closed
	waited   bool   // a turn passed with its campaign under way
}

// Bounds on the requests held while no leader is known; beyond them a
// request is answered StatusNoLeader at once.
const (
	maxParked      = 4096
	maxParkedBytes = 64 << 20
)

// fastAttempts bounds the campaigns a replica makes after the leader's
// connection closed; then Raft's election timeout takes over.
const fastAttempts = 3

// ErrConfig marks a ReplicaConfig that cannot work.
var ErrConfig = errors.New("directory: bad replica configuration")

// NewReplica returns a replica that starts from cfg.Saved.
func NewReplica(cfg ReplicaConfig) (*Replica, error) {
	cfg.defaults()
	if cfg.ID == 0 || !slices.Contains(cfg.Peers, cfg.ID) {
		return nil, fmt.Errorf("%w: id %d is not one of the peers %v (ids start at 1)", ErrConfig, cfg.ID, cfg.Peers)
	}
	if slices.Contains(cfg.Peers, 0) {
		return nil, fmt.Errorf("%w: peer ids start at 1: %v", ErrConfig, cfg.Peers)
	}
	if cfg.App == nil {
		return nil, fmt.Errorf("%w: no App", ErrConfig)
	}
	peers := slices.Sorted(slices.Values(cfg.Peers))
	if len(slices.Compact(slices.Clone(peers))) != len(peers) {
		return nil, fmt.Errorf("%w: peer ids repeat: %v", ErrConfig, cfg.Peers)
	}
	r := &Replica{cfg: cfg, storage: raft.NewMemoryStorage(), conf: &pb.ConfState{Voters: peers},
		pending: map[uint64]pending{}}
	snap := cfg.Saved.Snapshot
	if raft.IsEmptySnap(snap) {
		snap = bootstrap(r.conf, cfg.App.Snapshot())
	}
	if err := r.storage.ApplySnapshot(snap); err != nil {
		return nil, fmt.Errorf("directory: restoring the snapshot: %w", err)
	}
	if err := cfg.App.Restore(snap.GetData()); err != nil {
		return nil, fmt.Errorf("directory: restoring the snapshot at index %d: %w", snap.GetMetadata().GetIndex(), err)
	}
	r.applied = snap.GetMetadata().GetIndex()
	r.snapped = r.applied
	if cs := snap.GetMetadata().GetConfState(); cs != nil && !slices.Equal(slices.Sorted(slices.Values(cs.GetVoters())), peers) {
		return nil, fmt.Errorf("%w: the store's replicas are %v, the configuration's %v", ErrConfig, cs.GetVoters(), peers)
	}
	if h := cfg.Saved.Hard; !raft.IsEmptyHardState(h) {
		if err := r.storage.SetHardState(h); err != nil {
			return nil, err
		}
	}
	if len(cfg.Saved.Entries) > 0 {
		if err := r.storage.Append(cfg.Saved.Entries); err != nil {
			return nil, fmt.Errorf("directory: restoring the log: %w", err)
		}
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   r.storage,
		Applied:                   r.applied,
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  4 << 20,
		MaxUncommittedEntriesSize: 64 << 20,
		MaxInflightMsgs:           256,
		CheckQuorum:               true,
		PreVote:                   true,
		Logger:                    cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	r.rn = rn
	return r, nil
}

// bootstrap is the snapshot every replica of a new cluster starts from:
// index 1, term 1, the replicas as voters, the App's empty state.
func bootstrap(conf *pb.ConfState, data []byte) *pb.Snapshot {
	return &pb.Snapshot{Data: data, Metadata: &pb.SnapshotMetadata{
		Index: new(uint64(1)), Term: new(uint64(1)), ConfState: conf}}
}

// Step feeds one input at now.
func (r *Replica) Step(now time.Duration, in In) error {
	r.now = now
	switch in.Kind {
	case InTick:
		r.tick()
	case InMsg:
		if in.Msg == nil {
			return errors.New("directory: no message")
		}
		if !slices.Contains(r.cfg.Peers, in.Msg.GetFrom()) || in.Msg.GetTo() != r.cfg.ID || isLocal(in.Msg.GetType()) {
			return fmt.Errorf("directory: message %v from %d to %d refused", in.Msg.GetType(), in.Msg.GetFrom(), in.Msg.GetTo())
		}
		if in.Msg.GetType() == pb.MessageType_MsgPreVote && r.rn.BasicStatus().Lead != raft.None {
			r.preVoted = now
		}
		return r.rn.Step(in.Msg)
	case InPeerDown:
		r.peerDown(in.Peer)
	case InUnreachable:
		r.unreachable(in.Peer)
	case InPropose:
		r.submit(in.Req, false)
	case InRead:
		r.submit(in.Req, true)
	default:
		return fmt.Errorf("directory: unknown input %d", in.Kind)
	}
	return nil
}

// isLocal reports message types that only the replica itself may make.
func isLocal(t pb.MessageType) bool {
	switch t {
	case pb.MessageType_MsgHup, pb.MessageType_MsgBeat, pb.MessageType_MsgUnreachable,
		pb.MessageType_MsgSnapStatus, pb.MessageType_MsgCheckQuorum, pb.MessageType_MsgForgetLeader,
		pb.MessageType_MsgStorageAppend, pb.MessageType_MsgStorageAppendResp,
		pb.MessageType_MsgStorageApply, pb.MessageType_MsgStorageApplyResp:
		return true
	}
	return false
}

func (r *Replica) tick() {
	for n := 0; r.now-r.ticked >= r.cfg.Tick && n < 2*r.cfg.ElectionTicks; n++ {
		r.rn.Tick()
		r.ticked += r.cfg.Tick
	}
	if r.now-r.ticked >= r.cfg.Tick { // paused for long: skip the ticks missed
		r.ticked = r.now
	}
	if f := r.fast; f != nil && r.now >= f.next {
		r.fastCampaign(f)
	}
	keep := r.parked[:0]
	for _, w := range r.parked {
		if r.now >= w.expires {
			r.parkedBytes -= len(w.req.Data)
			r.reply(w.req.Handle, StatusNoLeader, nil)
		} else {
			keep = append(keep, w)
		}
	}
	r.parked = keep
	for _, nonce := range slices.Sorted(maps.Keys(r.pending)) {
		if p := r.pending[nonce]; r.now >= p.expires {
			delete(r.pending, nonce)
			r.reply(p.handle, StatusTimeout, nil)
		}
	}
}

// unreachable tells Raft that messages to id were lost. A snapshot among
// them would leave a leader waiting for it for good (Raft sends nothing
// more to a replica in StateSnapshot until told how the snapshot went), so
// it is reported failed; the leader sends it again once id answers.
// Nothing happens if no snapshot is pending for id.
func (r *Replica) unreachable(id uint64) {
	r.rn.ReportUnreachable(id)
	r.rn.ReportSnapshot(id, raft.SnapshotFailure)
}

// peerDown tells Raft that the connection with replica id closed, and
// what was sent on it may be lost. A follower forgets a leader whose
// connection closed and campaigns, the replicas that remain taking turns
// by id: the leader's process is most likely gone, and PreVote keeps a
// replica cut off alone from disrupting a leader the others still hear.
func (r *Replica) peerDown(id uint64) {
	r.unreachable(id)
	st := r.rn.BasicStatus()
	if id == r.cfg.ID || st.Lead != id || st.RaftState == raft.StateLeader {
		return
	}
	_ = r.rn.ForgetLeader()
	r.resubmit()
	rank := 0
	for _, p := range r.cfg.Peers {
		if p != id && p < r.cfg.ID {
			rank++
		}
	}
	if r.preVoted > 0 && r.now-r.preVoted < time.Duration(len(r.cfg.Peers))*r.cfg.FastStep {
		// Another replica saw the close first and asked for a pre-vote,
		// which this one refused while it still followed the leader; that
		// one now waits as a pre-candidate, and grants ours.
		rank = 0
	}
	r.fast = &fast{next: r.now + time.Duration(rank)*r.cfg.FastStep, term: st.HardState.GetTerm()}
	if rank == 0 {
		r.fastCampaign(r.fast)
	}
}

// resubmit takes back the requests waiting here, which this follower
// passed to a leader whose connection closed: they are likely lost with
// it, so they wait for the next leader and go to it. A proposal that did
// reach the old leader may then be applied twice; the App applies a
// client's command once (by its sequence number), and the copy proposed
// again answers the client.
func (r *Replica) resubmit() {
	for _, nonce := range slices.Sorted(maps.Keys(r.pending)) {
		p := r.pending[nonce]
		delete(r.pending, nonce)
		r.submit(Request{Handle: p.handle, Data: p.data}, p.read)
	}
}

// fastCampaign campaigns, when a replica's turn comes after the leader's
// connection closed, unless that is no longer useful: a leader is known;
// the attempts are spent; or the replica voted for another in a later
// term than the leader's, so that another's election is under way, which
// its own campaign would disrupt (the winner's first message may still be
// on its way). If its own campaign is still under way (a pre-candidate or
// a candidate), it lets it run until the next turn, and only then starts
// over, taking it for a split vote: starting over at once would abandon
// an election that its slow votes were about to win.
func (r *Replica) fastCampaign(f *fast) {
	st := r.rn.BasicStatus()
	switch {
	case st.Lead != raft.None || f.attempts >= fastAttempts:
		r.fast = nil
		return
	case st.HardState.GetTerm() > f.term && st.HardState.GetVote() != r.cfg.ID:
		r.fast = nil
		return
	}
	f.next += time.Duration(len(r.cfg.Peers)-1) * r.cfg.FastStep
	if st.RaftState != raft.StateFollower && !f.waited {
		f.waited = true
		return
	}
	f.attempts++
	f.waited = false
	_ = r.rn.Campaign()
}

// envelope is an entry's data: who proposed it, in which run, under
// which nonce, and the App's command.
const envelopeSize = 24

// submit proposes or reads now if a leader is known, and otherwise parks
// the request until one is: a client asking during an election waits for
// its outcome rather than being sent round the replicas.
func (r *Replica) submit(req Request, read bool) {
	if r.rn.BasicStatus().Lead == raft.None {
		if len(r.parked) >= maxParked || r.parkedBytes+len(req.Data) > maxParkedBytes {
			r.reply(req.Handle, StatusNoLeader, nil)
			return
		}
		r.parked = append(r.parked, parked{req: req, read: read, expires: r.now + r.cfg.RequestTimeout})
		r.parkedBytes += len(req.Data)
		return
	}
	if read {
		r.read(req)
	} else {
		r.propose(req)
	}
}

// unpark submits the parked requests once a leader is known.
func (r *Replica) unpark() {
	p := r.parked
	r.parked, r.parkedBytes = nil, 0
	for _, w := range p {
		r.submit(w.req, w.read)
	}
}

func (r *Replica) propose(req Request) {
	r.nonce++
	data := make([]byte, envelopeSize, envelopeSize+len(req.Data))
	binary.BigEndian.PutUint64(data, r.cfg.ID)
	binary.BigEndian.PutUint64(data[8:], r.cfg.Incarnation)
	binary.BigEndian.PutUint64(data[16:], r.nonce)
	data = append(data, req.Data...)
	if err := r.rn.Propose(data); err != nil {
		r.reply(req.Handle, StatusNoLeader, nil)
		return
	}
	r.pending[r.nonce] = pending{handle: req.Handle, data: req.Data, expires: r.now + r.cfg.RequestTimeout}
}

func (r *Replica) read(req Request) {
	r.nonce++
	var ctx [16]byte
	binary.BigEndian.PutUint64(ctx[:], r.cfg.Incarnation)
	binary.BigEndian.PutUint64(ctx[8:], r.nonce)
	r.pending[r.nonce] = pending{handle: req.Handle, read: true, data: req.Data, expires: r.now + r.cfg.RequestTimeout}
	r.rn.ReadIndex(ctx[:])
}

func (r *Replica) reply(handle uint64, s Status, data []byte) {
	r.out = append(r.out, Out{Kind: OutReply, Reply: Reply{Handle: handle, Status: s, Leader: r.rn.BasicStatus().Lead, Data: data}})
}

// Deadline is when the replica next needs InTick.
func (r *Replica) Deadline() time.Duration {
	d := r.ticked + r.cfg.Tick
	if r.fast != nil {
		d = min(d, r.fast.next)
	}
	return d
}

// Ready returns the effects of the inputs stepped since the last call,
// in the order they must be carried out.
func (r *Replica) Ready() []Out {
	for r.rn.HasReady() {
		r.handle(r.rn.Ready())
	}
	out := r.out
	r.out = nil
	return out
}

func (r *Replica) handle(rd raft.Ready) {
	if ss := rd.SoftState; ss != nil || rd.HardState != nil {
		r.noteRole(rd)
	}
	p := &Persist{Hard: rd.HardState, Entries: rd.Entries, Sync: rd.MustSync}
	if !raft.IsEmptySnap(rd.Snapshot) {
		p.Snapshot, p.Reset = rd.Snapshot, true
		p.Sync = true
	}
	if !raft.IsEmptyHardState(p.Hard) || len(p.Entries) > 0 || p.Snapshot != nil {
		r.out = append(r.out, Out{Kind: OutPersist, Persist: p})
	}
	if p.Snapshot != nil {
		if err := r.storage.ApplySnapshot(p.Snapshot); err == nil {
			if err := r.cfg.App.Restore(p.Snapshot.GetData()); err != nil {
				r.cfg.Logger.Panicf("directory: the leader's snapshot at index %d does not restore: %v", p.Snapshot.GetMetadata().GetIndex(), err)
			}
			r.applied = p.Snapshot.GetMetadata().GetIndex()
			r.snapped = r.applied
		}
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		_ = r.storage.SetHardState(rd.HardState)
	}
	if len(rd.Entries) > 0 {
		_ = r.storage.Append(rd.Entries)
	}
	for _, m := range rd.Messages {
		r.out = append(r.out, Out{Kind: OutSend, Msg: m})
	}
	for _, e := range rd.CommittedEntries {
		r.apply(e)
	}
	for _, rs := range rd.ReadStates {
		if len(rs.RequestCtx) != 16 || binary.BigEndian.Uint64(rs.RequestCtx) != r.cfg.Incarnation {
			continue
		}
		r.reads = append(r.reads, readWait{nonce: binary.BigEndian.Uint64(rs.RequestCtx[8:]), index: rs.Index})
	}
	r.answerReads()
	r.rn.Advance(rd)
	r.maybeSnapshot()
}

func (r *Replica) noteRole(rd raft.Ready) {
	st := r.rn.BasicStatus()
	role := Role{State: st.RaftState, Term: st.HardState.GetTerm(), Leader: st.Lead}
	if role != r.role {
		r.role = role
		r.out = append(r.out, Out{Kind: OutRole, Role: role})
	}
	if st.Lead != raft.None {
		r.fast = nil
		r.unpark()
	}
}

func (r *Replica) apply(e *pb.Entry) {
	if e.GetIndex() <= r.applied {
		return
	}
	r.applied = e.GetIndex()
	if e.GetType() != pb.EntryType_EntryNormal || len(e.GetData()) < envelopeSize {
		return // the empty entry of a new leader's term
	}
	data := e.GetData()
	from, inc, nonce := binary.BigEndian.Uint64(data), binary.BigEndian.Uint64(data[8:]), binary.BigEndian.Uint64(data[16:])
	cmd := data[envelopeSize:]
	result := r.cfg.App.Apply(e.GetIndex(), cmd)
	mine := from == r.cfg.ID && inc == r.cfg.Incarnation
	r.out = append(r.out, Out{Kind: OutApplied, Applied: Applied{Index: e.GetIndex(), Term: e.GetTerm(), Cmd: cmd, Result: result, Mine: mine}})
	if !mine {
		return
	}
	if p, ok := r.pending[nonce]; ok && !p.read {
		delete(r.pending, nonce)
		r.reply(p.handle, StatusOK, result)
	}
}

func (r *Replica) answerReads() {
	keep := r.reads[:0]
	for _, w := range r.reads {
		if w.index > r.applied {
			keep = append(keep, w)
			continue
		}
		if p, ok := r.pending[w.nonce]; ok && p.read {
			delete(r.pending, w.nonce)
			r.reply(p.handle, StatusOK, r.cfg.App.Query(p.data))
		}
	}
	r.reads = keep
}

func (r *Replica) maybeSnapshot() {
	if r.applied-r.snapped < r.cfg.SnapshotEvery {
		return
	}
	snap, err := r.storage.CreateSnapshot(r.applied, r.conf, r.cfg.App.Snapshot())
	if err != nil {
		return
	}
	r.snapped = r.applied
	if r.applied > r.cfg.CatchUp {
		_ = r.storage.Compact(r.applied - r.cfg.CatchUp)
	}
	r.out = append(r.out, Out{Kind: OutPersist, Persist: &Persist{Snapshot: snap, Sync: true}})
}

// Status is the replica's role, term, leader, commit and applied index.
func (r *Replica) Status() ReplicaStatus {
	st := r.rn.BasicStatus()
	return ReplicaStatus{ID: r.cfg.ID, State: st.RaftState, Term: st.HardState.GetTerm(),
		Leader: st.Lead, Commit: st.HardState.GetCommit(), Applied: r.applied}
}

// ReplicaStatus is a snapshot of a replica's state.
type ReplicaStatus struct {
	ID      uint64
	State   raft.StateType
	Term    uint64
	Leader  uint64
	Commit  uint64
	Applied uint64
}

// discard is a raft.Logger that says nothing.
type discard struct{}

func (discard) Debug(...any)            {}
func (discard) Debugf(string, ...any)   {}
func (discard) Error(...any)            {}
func (discard) Errorf(string, ...any)   {}
func (discard) Info(...any)             {}
func (discard) Infof(string, ...any)    {}
func (discard) Warning(...any)          {}
func (discard) Warningf(string, ...any) {}
func (discard) Fatal(v ...any)          { panic(fmt.Sprint(v...)) }
func (discard) Fatalf(f string, v ...any) {
	panic(fmt.Sprintf(f, v...))
}
func (discard) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (discard) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
