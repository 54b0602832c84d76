package directory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// kv is a test App: "k=v" sets k and returns the old value; a query k
// returns the value.
type kv map[string]string

func (s kv) Apply(_ uint64, cmd []byte) []byte {
	k, v, _ := strings.Cut(string(cmd), "=")
	old := s[k]
	s[k] = v
	return []byte(old)
}
func (s kv) Snapshot() []byte { b, _ := json.Marshal(map[string]string(s)); return b }
func (s kv) Restore(b []byte) error {
	clear(s)
	return json.Unmarshal(b, (*map[string]string)(&s))
}
func (s kv) Query(q []byte) []byte { return []byte(s[string(q)]) }

// cluster is a deterministic in-memory network of replicas: messages are
// delivered in the order they were sent, time moves only when told.
type cluster struct {
	t       *testing.T
	now     time.Duration
	r       []*Replica
	apps    []kv
	stores  []*MemStore
	down    []bool
	queue   []*pb.Message
	hold    bool // deliver leaves the queue alone
	replies map[uint64]Reply
	handle  uint64
	// lose, if set, says which messages the network loses.
	lose func(m *pb.Message) bool
}

func newCluster(t *testing.T, n int) *cluster {
	c := &cluster{t: t, replies: map[uint64]Reply{}}
	for i := 0; i < n; i++ {
		c.apps = append(c.apps, kv{})
		st := &MemStore{}
		if err := st.Init(Identity{Cluster: "test", Replica: uint64(i)}); err != nil {
			t.Fatal(err)
		}
		c.stores = append(c.stores, st)
		c.down = append(c.down, false)
		c.r = append(c.r, nil)
	}
	for i := range n {
		c.start(i)
	}
	return c
}

func (c *cluster) peers() []uint64 {
	var ids []uint64
	for i := range c.r {
		ids = append(ids, uint64(i+1))
	}
	return ids
}

func (c *cluster) start(i int) {
	c.apps[i] = kv{}
	saved, _ := c.stores[i].Load()
	r, err := NewReplica(ReplicaConfig{ID: uint64(i + 1), Peers: c.peers(), Incarnation: uint64(c.now) + 1,
		App: c.apps[i], Saved: saved, SnapshotEvery: 20, CatchUp: 5})
	if err != nil {
		c.t.Fatal(err)
	}
	r.ticked = c.now
	c.r[i] = r
	c.down[i] = false
}

func (c *cluster) crash(i int) {
	c.down[i] = true
	for j := range c.r {
		if j != i && !c.down[j] {
			c.step(j, In{Kind: InPeerDown, Peer: uint64(i + 1)})
		}
	}
}

func (c *cluster) step(i int, in In) {
	if err := c.r[i].Step(c.now, in); err != nil && in.Kind != InMsg {
		c.t.Fatalf("replica %d: %v", i+1, err)
	}
	c.flush(i)
}

func (c *cluster) flush(i int) {
	for _, o := range c.r[i].Ready() {
		switch o.Kind {
		case OutPersist:
			if err := c.stores[i].Save(*o.Persist); err != nil {
				c.t.Fatalf("replica %d: %v", i+1, err)
			}
		case OutSend:
			c.queue = append(c.queue, o.Msg)
		case OutReply:
			c.replies[o.Reply.Handle] = o.Reply
		}
	}
}

// deliver delivers queued messages until none are left.
func (c *cluster) deliver() {
	for len(c.queue) > 0 && !c.hold {
		m := c.queue[0]
		c.queue = c.queue[1:]
		to := int(m.GetTo()) - 1
		if c.down[to] || c.down[m.GetFrom()-1] || (c.lose != nil && c.lose(m)) {
			continue
		}
		c.step(to, In{Kind: InMsg, Msg: m})
	}
}

// deliverRound delivers the messages queued now, not those they cause.
func (c *cluster) deliverRound() {
	n := len(c.queue)
	msgs := c.queue[:n:n]
	c.queue = c.queue[n:]
	for _, m := range msgs {
		to := int(m.GetTo()) - 1
		if !c.down[to] && !c.down[m.GetFrom()-1] {
			c.step(to, In{Kind: InMsg, Msg: m})
		}
	}
}

// advance moves time on by d in ticks, delivering messages between them.
func (c *cluster) advance(d time.Duration) {
	end := c.now + d
	for c.now < end {
		next := end
		for i, r := range c.r {
			if !c.down[i] {
				next = min(next, r.Deadline())
			}
		}
		c.now = max(next, c.now)
		for i := range c.r {
			if !c.down[i] && c.r[i].Deadline() <= c.now {
				c.step(i, In{Kind: InTick})
			}
		}
		c.deliver()
		if next == end {
			break
		}
	}
}

func (c *cluster) leader() int {
	for i, r := range c.r {
		if !c.down[i] && r.Status().State == raft.StateLeader {
			return i
		}
	}
	return -1
}

func (c *cluster) waitLeader(limit time.Duration) int {
	for start := c.now; c.now-start < limit; c.advance(DefaultTick) {
		if l := c.leader(); l >= 0 {
			return l
		}
	}
	c.t.Fatalf("no leader after %v", limit)
	return -1
}

// do sends a request to replica i and runs the cluster until it is
// answered.
func (c *cluster) do(i int, kind InKind, data string) Reply {
	c.handle++
	h := c.handle
	c.step(i, In{Kind: kind, Req: Request{Handle: h, Data: []byte(data)}})
	for start := c.now; c.now-start < 5*time.Second; c.advance(DefaultTick) {
		c.deliver()
		if rep, ok := c.replies[h]; ok {
			return rep
		}
	}
	c.t.Fatalf("request %q to replica %d: no reply", data, i+1)
	return Reply{}
}

func TestReplicaProposeAndReadAtEveryReplica(t *testing.T) {
	c := newCluster(t, 3)
	c.waitLeader(2 * time.Second)
	for i := range 3 {
		rep := c.do(i, InPropose, fmt.Sprintf("k%d=v%d", i, i))
		if rep.Status != StatusOK {
			t.Fatalf("propose at replica %d: %v", i+1, rep.Status)
		}
	}
	for i := range 3 {
		for j := range 3 {
			rep := c.do(i, InRead, fmt.Sprintf("k%d", j))
			if rep.Status != StatusOK || string(rep.Data) != fmt.Sprintf("v%d", j) {
				t.Fatalf("read k%d at replica %d: %v %q", j, i+1, rep.Status, rep.Data)
			}
		}
	}
}

func TestReplicaLeaderCrashCampaignsAtOnce(t *testing.T) {
	c := newCluster(t, 3)
	old := c.waitLeader(2 * time.Second)
	if rep := c.do(old, InPropose, "a=1"); rep.Status != StatusOK {
		t.Fatal(rep.Status)
	}
	c.crash(old)
	c.deliver()
	// The replicas that remain elect a leader with no tick at all: the
	// closed connection replaced the election timeout.
	l := c.leader()
	if l < 0 || l == old {
		c.advance(DefaultFastStep * 2)
		l = c.leader()
	}
	if l < 0 || l == old {
		t.Fatalf("no new leader one fast step after the leader's connection closed (old %d)", old+1)
	}
	if rep := c.do(l, InRead, "a"); string(rep.Data) != "1" {
		t.Fatalf("read a after failover: %v %q", rep.Status, rep.Data)
	}
}

func TestReplicaWithoutFastFailoverWaitsForTimeout(t *testing.T) {
	// The same crash, with no connection close reported (a hang): no
	// leader until an election timeout has passed.
	c := newCluster(t, 3)
	old := c.waitLeader(2 * time.Second)
	c.down[old] = true
	c.advance(time.Duration(DefaultElectionTicks-1) * DefaultTick)
	if l := c.leader(); l >= 0 {
		t.Fatalf("replica %d leads before an election timeout passed", l+1)
	}
	if l := c.waitLeader(2 * time.Second); l == old {
		t.Fatal("the paused leader leads")
	}
}

func TestReplicaRestartFromStoreKeepsCommitted(t *testing.T) {
	c := newCluster(t, 3)
	l := c.waitLeader(2 * time.Second)
	for k := range 50 { // beyond SnapshotEvery: snapshots and compaction
		if rep := c.do(l, InPropose, fmt.Sprintf("k%d=%d", k, k)); rep.Status != StatusOK {
			t.Fatal(rep.Status)
		}
	}
	for i := range 3 {
		if c.stores[i].saved.Snapshot == nil {
			t.Fatalf("replica %d saved no snapshot after 50 entries", i+1)
		}
		c.down[i] = true
	}
	c.queue = nil
	for i := range 3 {
		c.start(i)
	}
	l = c.waitLeader(2 * time.Second)
	for i := range 3 {
		rep := c.do(i, InRead, "k49")
		if rep.Status != StatusOK || string(rep.Data) != "49" {
			t.Fatalf("replica %d after a full restart: %v %q", i+1, rep.Status, rep.Data)
		}
	}
	for i := range 3 {
		if !bytes.Equal(c.apps[i].Snapshot(), c.apps[l].Snapshot()) {
			t.Fatalf("replica %d's state differs from the leader's", i+1)
		}
	}
}

// TestReplicaSnapshotLostWithItsConnectionIsSentAgain restarts a
// follower that fell behind the leader's compacted log, and loses the
// snapshot the leader sends it with the connection that carried it: the
// leader must send it again rather than wait for it for ever, and the
// follower catches up.
func TestReplicaSnapshotLostWithItsConnectionIsSentAgain(t *testing.T) {
	testSnapshotLost(t, InPeerDown)
}

func TestReplicaSnapshotDroppedFromAFullQueueIsSentAgain(t *testing.T) {
	testSnapshotLost(t, InUnreachable)
}

// testSnapshotLost loses the leader's first snapshot to a follower, and
// tells the leader with an input of kind (the connection closed, or the
// message was dropped).
func testSnapshotLost(t *testing.T, kind InKind) {
	c := newCluster(t, 3)
	l := c.waitLeader(2 * time.Second)
	f := (l + 1) % 3
	c.crash(f)
	for k := range 50 { // beyond SnapshotEvery and CatchUp: compaction
		if rep := c.do(l, InPropose, fmt.Sprintf("k%d=%d", k, k)); rep.Status != StatusOK {
			t.Fatal(rep.Status)
		}
	}
	lost := 0
	c.lose = func(m *pb.Message) bool {
		if m.GetType() != pb.MessageType_MsgSnap || lost > 0 {
			return false
		}
		lost++
		// The driver learns that the connection that carried it closed,
		// or that it dropped it.
		c.step(l, In{Kind: kind, Peer: m.GetTo()})
		return true
	}
	c.start(f)
	c.advance(time.Second)
	if lost == 0 {
		t.Fatal("the leader sent no snapshot to the follower that fell behind")
	}
	if rep := c.do(f, InRead, "k49"); rep.Status != StatusOK || string(rep.Data) != "49" {
		t.Fatalf("read at the follower after its snapshot was lost: %v %q, want ok \"49\"", rep.Status, rep.Data)
	}
}

func TestReplicaRequestsWaitForALeader(t *testing.T) {
	c := newCluster(t, 3)
	if rep := c.do(0, InPropose, "a=1"); rep.Status != StatusOK {
		t.Fatalf("a proposal before any election: %v, want it to wait for the leader and commit", rep.Status)
	}
	if rep := c.do(1, InRead, "a"); rep.Status != StatusOK || string(rep.Data) != "1" {
		t.Fatalf("read: %v %q", rep.Status, rep.Data)
	}
}

func TestReplicaNoLeaderInTimeAnswersSo(t *testing.T) {
	c := newCluster(t, 3)
	c.down[1], c.down[2] = true, true
	if rep := c.do(0, InPropose, "a=1"); rep.Status != StatusNoLeader {
		t.Fatalf("a proposal at a replica alone: %v, want %v", rep.Status, StatusNoLeader)
	}
}

func TestReplicaMinorityTimesOut(t *testing.T) {
	c := newCluster(t, 3)
	l := c.waitLeader(2 * time.Second)
	for i := range 3 {
		if i != l {
			c.down[i] = true
		}
	}
	rep := c.do(l, InPropose, "a=1")
	if rep.Status != StatusTimeout && rep.Status != StatusNoLeader {
		t.Fatalf("a proposal at a leader cut off from both followers: %v", rep.Status)
	}
}

func TestReplicaRefusesForgedAndLocalMessages(t *testing.T) {
	c := newCluster(t, 3)
	for _, m := range []*pb.Message{
		{Type: pb.MessageType_MsgHup.Enum(), From: new(uint64(2)), To: new(uint64(1))},
		{Type: pb.MessageType_MsgApp.Enum(), From: new(uint64(9)), To: new(uint64(1))},
		{Type: pb.MessageType_MsgApp.Enum(), From: new(uint64(2)), To: new(uint64(3))},
	} {
		if err := c.r[0].Step(0, In{Kind: InMsg, Msg: m}); err == nil {
			t.Errorf("message %v from %d to %d accepted", m.GetType(), m.GetFrom(), m.GetTo())
		}
	}
}

func TestNewReplicaRefusesBadConfig(t *testing.T) {
	for _, cfg := range []ReplicaConfig{
		{ID: 0, Peers: []uint64{1, 2, 3}, App: kv{}},
		{ID: 4, Peers: []uint64{1, 2, 3}, App: kv{}},
		{ID: 1, Peers: []uint64{1, 1, 3}, App: kv{}},
		{ID: 1, Peers: []uint64{1, 2, 3}},
	} {
		if _, err := NewReplica(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func TestReplicaHoldsBoundedRequestsWithoutLeader(t *testing.T) {
	c := newCluster(t, 3)
	c.down[1], c.down[2] = true, true
	for k := range maxParked {
		c.step(0, In{Kind: InPropose, Req: Request{Handle: uint64(k + 1), Data: []byte("a=1")}})
	}
	if len(c.replies) != 0 {
		t.Fatalf("%d of %d held requests answered at once", len(c.replies), maxParked)
	}
	c.step(0, In{Kind: InPropose, Req: Request{Handle: maxParked + 1, Data: []byte("a=1")}})
	if rep, ok := c.replies[maxParked+1]; !ok || rep.Status != StatusNoLeader {
		t.Fatalf("a request beyond the bound: %+v, %v; want an answer at once", rep, ok)
	}
}

// campaigning lists the replicas running an election.
func (c *cluster) campaigning() []int {
	var out []int
	for i, r := range c.r {
		if st := r.Status().State; !c.down[i] && (st == raft.StateCandidate || st == raft.StatePreCandidate) {
			out = append(out, i+1)
		}
	}
	return out
}

// TestReplicaFastCampaignLetsItsElectionFinish: the replica that
// campaigns first after the leader's connection closed, still a candidate
// when its next fast attempt comes (the votes are slow), lets its
// election run instead of starting another, which abandoned the first and
// cost a term and a round trip more each time.
func TestReplicaFastCampaignLetsItsElectionFinish(t *testing.T) {
	c := newCluster(t, 3)
	old := c.waitLeader(2 * time.Second)
	term := c.r[old].Status().Term
	c.hold = true
	c.crash(old)
	first := c.campaigning()
	if len(first) != 1 {
		t.Fatalf("replicas %v campaign at once after the leader's crash, want one", first)
	}
	c.deliverRound() // the pre-votes
	c.deliverRound() // their answers: a candidate, asking for votes
	if st := c.r[first[0]-1].Status(); st.State != raft.StateCandidate || st.Term != term+1 {
		t.Fatalf("replica %d is %v in term %d, want a candidate in term %d", first[0], st.State, st.Term, term+1)
	}
	c.advance(3 * DefaultFastStep) // the votes are slow
	c.hold = false
	c.deliver()
	l := c.waitLeader(time.Second)
	if st := c.r[l].Status(); l != first[0]-1 || st.Term != term+1 {
		t.Errorf("replica %d leads in term %d; want replica %d, elected in term %d, its first candidacy", l+1, st.Term, first[0], term+1)
	}
}

// TestReplicaFastCampaignDefersToAnotherElection: a replica that voted in
// the election another began after the leader's connection closed does
// not campaign itself when its turn comes, though it has not heard from
// the new leader yet: its campaign would depose the leader just elected.
func TestReplicaFastCampaignDefersToAnotherElection(t *testing.T) {
	c := newCluster(t, 5)
	old := c.waitLeader(2 * time.Second)
	term := c.r[old].Status().Term
	c.hold = true
	c.crash(old)
	for range 4 { // pre-votes, answers, votes, answers
		c.deliverRound()
	}
	l := c.leader()
	if l < 0 || c.r[l].Status().Term != term+1 {
		t.Fatalf("no leader in term %d after one election", term+1)
	}
	// The new leader's first appends are slow; every other replica's
	// turn to campaign comes.
	c.advance(5 * DefaultFastStep)
	if cs := c.campaigning(); len(cs) > 0 {
		t.Errorf("replicas %v campaign though they voted for replica %d, elected in term %d", cs, l+1, term+1)
	}
	c.hold = false
	c.deliver()
	c.advance(DefaultTick)
	if now := c.leader(); now != l || c.r[l].Status().Term != term+1 {
		t.Errorf("replica %d leads (term %d); want replica %d, still in term %d", now+1, c.r[max(now, 0)].Status().Term, l+1, term+1)
	}
}

func TestReplicaRequestPassedToALeaderThatDiesGoesToTheNext(t *testing.T) {
	c := newCluster(t, 3)
	l := c.waitLeader(2 * time.Second)
	f := (l + 1) % 3
	// The follower passes the proposal and the read to the leader, which
	// dies before it reads them.
	c.lose = func(m *pb.Message) bool {
		t := m.GetType()
		return int(m.GetTo()-1) == l && (t == pb.MessageType_MsgProp || t == pb.MessageType_MsgReadIndex)
	}
	c.handle++
	prop := c.handle
	c.step(f, In{Kind: InPropose, Req: Request{Handle: prop, Data: []byte("a=1")}})
	c.handle++
	read := c.handle
	c.step(f, In{Kind: InRead, Req: Request{Handle: read, Data: []byte("a")}})
	c.deliver()
	c.lose = nil
	c.crash(l)
	// Well within the request timeout (two election timeouts): answered
	// by the next leader.
	for start := c.now; c.now-start < time.Duration(DefaultElectionTicks)*DefaultTick; c.advance(DefaultTick) {
		_, r1 := c.replies[read]
		_, r2 := c.replies[prop]
		if r1 && r2 {
			break
		}
	}
	if rep, ok := c.replies[prop]; !ok || rep.Status != StatusOK {
		t.Fatalf("the proposal passed to the dead leader: %+v, %v; want it answered ok by the next leader", rep, ok)
	}
	// The read and the proposal were concurrent: it may see a=1 or not.
	if rep, ok := c.replies[read]; !ok || rep.Status != StatusOK {
		t.Fatalf("the read passed to the dead leader: %+v, %v", rep, ok)
	}
}
