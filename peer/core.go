// Package peer is the peer core: failure detection and lowest-id leader
// election for a fixed set of N peers, as a pure state machine.
//
// Core has no sockets, goroutines or clock. A driver (the runtime with real
// TCP, or the simulator) feeds it inputs with Step, each stamped with the
// current time as a duration since some fixed origin, and carries out the
// effects it returns from Ready: frames to send, connections to close or
// dial, and events to log. Core is not safe for concurrent use.
//
// The rules (docs/peer-core.md explains them at length):
//
//   - Peer i dials every peer j > i; j accepts. A connection is admitted once
//     its Hello checks out; a Hello from an older incarnation than one
//     already seen, or a second connection from the same incarnation, is
//     refused. A newer incarnation replaces the old connection.
//   - A heartbeat goes on every admitted connection at once and then every
//     Heartbeat interval; never on a connection after it closed.
//   - A peer is up (correct) from the first heartbeat received on its
//     current connection. It is down as soon as that connection closes
//     (cause conn_closed) or has been silent longer than SuspectAfter (cause
//     silence; the connection is then closed, and redialed). A connection
//     has twice SuspectAfter to bring its first heartbeat, which needs a
//     round trip.
//   - The leader is the lowest id among the peers this peer considers up,
//     itself included, but it is none (-1) until this peer has accounted for
//     every peer, and, with Quorum, whenever fewer than a majority of the N
//     peers are up. A peer is accounted for once a heartbeat has come from it
//     at some time in this incarnation (it need not be up still), or when a
//     peer that is up and already elects says in its heartbeats that it is
//     down. Nobody elects before someone has heard all N peers, so the first
//     leader of a cluster is 0 whenever 0 is up when elections open; a peer
//     that lost a peer before it had seen all up at once, or restarted while
//     another is down, still gets to elect.
//   - A change of leader is announced NoticeDelay later with a LeaderChange
//     frame followed by one urgent byte on every admitted connection, naming
//     the leader of that moment and the one announced before; changes in
//     between go out as one notice, and none if the leader is back to the
//     one announced. In a crash every survivor sees the connection close by
//     itself, so the N*(N-1) notices wait until the detections are done
//     rather than compete with them for the CPU. A received notice naming a
//     leader this peer cannot see makes it redial that peer at once;
//     correctness never depends on the notice.
package peer

import (
	"fmt"
	"slices"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/wire"
)

// None is the leader value meaning no leader.
const None = -1

// Never is the Deadline of a core that has nothing to do.
const Never = time.Duration(1<<63 - 1)

// Core is the state machine of one peer.
type Core struct {
	cfg     Config
	now     time.Duration
	due     time.Duration // the Deadline after the previous Step
	started bool
	stopped bool
	ready   bool // every peer has been accounted for: elections are open
	leader  int
	told    int           // the leader last announced in urgent notices
	tellAt  time.Duration // when to announce a change; Never if none is due
	nextHB  time.Duration
	peers   []peerState // indexed by id; peers[cfg.ID] is unused
	out     []Effect
	hints   uint64 // urgent hint bytes received
}

type peerState struct {
	conn      ConnID // admitted connection, 0 if none
	inc       uint64 // incarnation on conn
	maxInc    uint64 // highest incarnation ever admitted
	up        bool
	heard     bool // a heartbeat came from it at some time in this incarnation of ours
	lastHeard time.Duration
	hbSeq     uint64 // heartbeats sent on conn
	bye       string // reason in a Bye received on conn
	told      []int  // alive list in its last heartbeat, if its elections are open

	dialing    bool          // a Dial is outstanding
	dialAt     time.Duration // when to dial next; Never if not scheduled
	backoff    time.Duration
	dialFailed bool // the last attempt failed and was logged
}

// New returns a Core for cfg, after validating it.
func New(cfg Config) (*Core, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Core{cfg: cfg, leader: None, told: None, tellAt: Never, peers: make([]peerState, cfg.N)}
	for i := range c.peers {
		c.peers[i].dialAt = Never
	}
	return c, nil
}

// Config returns the validated configuration.
func (c *Core) Config() Config { return c.cfg }

// Leader returns the current leader, or None.
func (c *Core) Leader() int { return c.leader }

// Step applies one input at time now. It returns an error only for a
// refused Handshake (the reason to send back) or an input that makes no
// sense, such as an unknown peer id.
func (c *Core) Step(now time.Duration, in Input) error {
	if now > c.now {
		c.now = now
	}
	if c.stopped {
		return nil
	}
	if c.started && c.now > c.due {
		c.overslept(c.now - c.due)
	}
	defer func() { c.due = c.Deadline() }()
	if _, ok := in.(Start); !ok && !c.started {
		return fmt.Errorf("peer: %T before Start", in)
	}
	var err error
	switch in := in.(type) {
	case Start:
		if c.started {
			return fmt.Errorf("peer: started twice")
		}
		c.started = true
		c.nextHB = c.now + c.cfg.Heartbeat
		c.log(eventlog.Start, eventlog.FieldID, c.cfg.ID, eventlog.FieldN, c.cfg.N, eventlog.FieldQuorum, c.cfg.Quorum,
			eventlog.FieldHeartbeatMS, ms(c.cfg.Heartbeat), eventlog.FieldSuspectAfterMS, ms(c.cfg.SuspectAfter),
			eventlog.FieldNoticeDelayMS, ms(max(c.cfg.NoticeDelay, 0)))
		for j := c.cfg.ID + 1; j < c.cfg.N; j++ {
			c.peers[j].dialAt = c.now
		}
	case Tick:
	case Handshake:
		err = c.handshake(in)
	case DialFailed:
		err = c.dialFailed(in)
	case Closed:
		if err = c.checkPeer(in.Peer); err == nil && c.current(in.Peer, in.Conn) {
			p := &c.peers[in.Peer]
			reason := in.Reason
			if p.bye != "" {
				reason = "bye: " + p.bye
			}
			c.drop(in.Peer, eventlog.CauseConnClosed, reason)
		}
	case Recv:
		if err = c.checkPeer(in.Peer); err == nil && c.current(in.Peer, in.Conn) {
			c.recv(in.Peer, in.Frame)
		}
	case Stop:
		c.stop()
		return nil
	default:
		return fmt.Errorf("peer: unknown input %T", in)
	}
	c.advance()
	return err
}

// Ready returns the effects produced since the last call, in order.
func (c *Core) Ready() []Effect {
	out := c.out
	c.out = nil
	return out
}

// Deadline is the time by which the driver must call Step (with Tick if
// nothing else happens).
func (c *Core) Deadline() time.Duration {
	if !c.started || c.stopped {
		return Never
	}
	d := min(c.nextHB, c.tellAt)
	for j := range c.peers {
		p := &c.peers[j]
		if p.conn != 0 {
			d = min(d, p.lastHeard+c.silenceLimit(p)+1)
		}
		if !p.dialing {
			d = min(d, p.dialAt)
		}
	}
	return d
}

func (c *Core) checkPeer(j int) error {
	if j < 0 || j >= c.cfg.N || j == c.cfg.ID {
		return fmt.Errorf("peer: no peer %d", j)
	}
	return nil
}

func (c *Core) current(j int, conn ConnID) bool {
	return conn != 0 && c.peers[j].conn == conn
}

func (c *Core) handshake(h Handshake) error {
	j := h.Peer
	if err := c.checkPeer(j); err != nil {
		return c.refuse(h, fmt.Sprintf("peer id %d is out of range or our own", j))
	}
	p := &c.peers[j]
	switch {
	case h.Conn == 0:
		return fmt.Errorf("peer: handshake without a connection id")
	case h.Dialed && !p.dialing:
		return c.refuse(h, "connection we did not dial")
	case !h.Dialed && j > c.cfg.ID:
		return c.refuse(h, fmt.Sprintf("peer %d dialed us but lower ids dial higher ones", j))
	case h.Incarnation < p.maxInc:
		return c.refuse(h, fmt.Sprintf("stale incarnation %d of peer %d (seen %d)", h.Incarnation, j, p.maxInc))
	case p.conn != 0 && h.Incarnation == p.inc:
		return c.refuse(h, fmt.Sprintf("peer %d incarnation %d is already connected", j, h.Incarnation))
	}
	if h.Dialed {
		p.dialing = false
	}
	if p.conn != 0 {
		// A new incarnation: the old process is gone.
		c.emit(Close{Peer: j, Conn: p.conn, Reason: "superseded by a new incarnation"})
		c.drop(j, eventlog.CauseConnClosed, fmt.Sprintf("new incarnation %d replaced %d", h.Incarnation, p.inc))
	}
	*p = peerState{conn: h.Conn, inc: h.Incarnation, maxInc: h.Incarnation, heard: p.heard, lastHeard: c.now, dialAt: Never}
	c.log(eventlog.ConnUp, eventlog.FieldPeer, j, eventlog.FieldPeerInc, h.Incarnation, eventlog.FieldDialed, h.Dialed, eventlog.FieldAddr, h.Addr)
	c.heartbeat(j)
	if c.cfg.NoticeDelay >= 0 && c.leader != c.told {
		c.tellLater()
	}
	return nil
}

func (c *Core) refuse(h Handshake, reason string) error {
	c.log(eventlog.ConnRejected, eventlog.FieldPeer, h.Peer, eventlog.FieldAddr, h.Addr, eventlog.FieldReason, reason)
	if h.Dialed && h.Peer >= 0 && h.Peer < c.cfg.N && c.peers[h.Peer].dialing {
		c.peers[h.Peer].dialing = false
		c.scheduleDial(h.Peer)
	}
	return fmt.Errorf("%s", reason)
}

func (c *Core) dialFailed(d DialFailed) error {
	if err := c.checkPeer(d.Peer); err != nil {
		return err
	}
	p := &c.peers[d.Peer]
	if !p.dialing {
		return nil
	}
	p.dialing = false
	if !p.dialFailed {
		p.dialFailed = true
		c.log(eventlog.DialFailed, eventlog.FieldPeer, d.Peer, eventlog.FieldError, d.Err)
	}
	c.scheduleDial(d.Peer)
	return nil
}

// scheduleDial plans the next attempt to connect to j, if this peer dials j.
func (c *Core) scheduleDial(j int) {
	if j < c.cfg.ID {
		return
	}
	p := &c.peers[j]
	if p.backoff == 0 {
		p.backoff = c.cfg.RedialMin
	} else {
		p.backoff = min(2*p.backoff, c.cfg.RedialMax)
	}
	p.dialAt = c.now + p.backoff
}

func (c *Core) recv(j int, f wire.Frame) {
	p := &c.peers[j]
	switch f := f.(type) {
	case wire.Heartbeat:
		p.lastHeard = c.now
		c.log(eventlog.HBRecv, eventlog.FieldFrom, j, eventlog.FieldSeq, f.Seq)
		p.told = nil
		if f.Open {
			p.told = f.Alive
		}
		if !p.up {
			p.up = true
			p.heard = true
			c.log(eventlog.PeerUp, eventlog.FieldPeer, j, eventlog.FieldPeerInc, p.inc)
			c.elect()
		} else if !c.ready {
			c.elect()
		}
	case wire.LeaderChange:
		c.log(eventlog.UrgentRecv, eventlog.FieldFrom, j, eventlog.FieldLeader, f.Leader, eventlog.FieldPrev, f.Prev)
		// The sender sees a leader we cannot: try to reach it now.
		l := f.Leader
		if l > c.cfg.ID && l < c.cfg.N && c.peers[l].conn == 0 && !c.peers[l].dialing {
			c.peers[l].dialAt = c.now
		}
	case wire.Bye:
		p.bye = f.Reason
	case wire.Hint:
		c.hints++
	}
}

// drop marks j's connection gone, logging why, and plans a redial.
func (c *Core) drop(j int, cause, reason string) {
	p := &c.peers[j]
	p.conn = 0
	p.bye = ""
	p.told = nil
	if p.up {
		p.up = false
		c.log(eventlog.PeerDown, eventlog.FieldPeer, j, eventlog.FieldCause, cause, eventlog.FieldReason, reason)
		c.elect()
	} else {
		c.log(eventlog.ConnDown, eventlog.FieldPeer, j, eventlog.FieldReason, reason)
	}
	p.backoff = 0
	c.scheduleDial(j)
}

// advance does what is due at c.now: silence checks, notices, heartbeats,
// dials.
func (c *Core) advance() {
	for j := range c.peers {
		p := &c.peers[j]
		if p.conn != 0 && c.now-p.lastHeard > c.silenceLimit(p) {
			reason := fmt.Sprintf("no heartbeat for %v", c.now-p.lastHeard)
			c.emit(Close{Peer: j, Conn: p.conn, Reason: "silence: " + reason})
			c.drop(j, eventlog.CauseSilence, reason)
		}
	}
	if c.now >= c.tellAt {
		c.announce(c.told)
	}
	if c.now >= c.nextHB {
		c.nextHB = c.now + c.cfg.Heartbeat
		for j := range c.peers {
			if c.peers[j].conn != 0 {
				c.heartbeat(j)
			}
		}
	}
	for j := range c.peers {
		p := &c.peers[j]
		if !p.dialing && p.conn == 0 && c.now >= p.dialAt {
			p.dialing = true
			p.dialAt = Never
			c.emit(Dial{Peer: j})
		}
	}
}

// silenceLimit is how long p's connection may go without a heartbeat:
// SuspectAfter, or twice that before its first one. The first heartbeat
// needs a round trip: the dialer sends it when the acceptor's answer to its
// Hello arrives, and the acceptor counts from its answer. With one-way
// delays up to SuspectAfter minus the heartbeat interval (under which no
// correct peer is suspected) that round trip is longer than SuspectAfter,
// and the connection would be closed before it was ever up, again and
// again (sweep seed 38).
func (c *Core) silenceLimit(p *peerState) time.Duration {
	if p.up {
		return c.cfg.SuspectAfter
	}
	return 2 * c.cfg.SuspectAfter
}

// overslept handles a Step that comes later than the deadline this core
// asked for. For that long this process did not run (SIGSTOP, a VM pause,
// starvation), so its peers' silence during that time says nothing about
// them: silence is counted only while this peer was able to listen.
func (c *Core) overslept(over time.Duration) {
	if over > c.cfg.Heartbeat {
		c.log(eventlog.Paused, eventlog.FieldForMS, ms(over))
	}
	for j := range c.peers {
		if p := &c.peers[j]; p.conn != 0 {
			p.lastHeard = min(p.lastHeard+over, c.now)
		}
	}
}

func (c *Core) heartbeat(j int) {
	p := &c.peers[j]
	p.hbSeq++
	hb := wire.Heartbeat{Seq: p.hbSeq, Open: c.ready}
	if c.ready {
		hb.Alive = c.Alive()
	}
	c.emit(Send{Peer: j, Conn: p.conn, Frame: hb})
	c.log(eventlog.HBSent, eventlog.FieldTo, j, eventlog.FieldSeq, p.hbSeq)
}

// elect recomputes the leader and announces a change.
func (c *Core) elect() {
	alive := c.Alive()
	if !c.ready {
		if via, ok := c.accounted(); ok {
			c.ready = true
			c.log(eventlog.ElectionOpen, eventlog.FieldVia, via)
		}
	}
	leader := None
	switch {
	case !c.ready:
	case c.cfg.Quorum && 2*len(alive) <= c.cfg.N:
	default:
		leader = alive[0]
	}
	if leader == c.leader {
		return
	}
	prev := c.leader
	c.leader = leader
	c.log(eventlog.LeaderChange, eventlog.FieldLeader, leader, eventlog.FieldPrev, prev, eventlog.FieldAlive, alive)
	if c.cfg.NoticeDelay < 0 {
		c.announce(prev)
	} else {
		c.tellLater()
	}
}

// tellLater plans the notices of a change not yet announced, if none are
// planned.
func (c *Core) tellLater() {
	if c.tellAt == Never {
		c.tellAt = c.now + c.cfg.NoticeDelay
	}
}

// announce sends the urgent notices of a change of leader, naming prev as
// the one before, on every admitted connection. With a NoticeDelay it
// sends nothing if the leader is back to the one last announced, or if no
// connection is admitted: then the change waits for one (handshake).
func (c *Core) announce(prev int) {
	c.tellAt = Never
	if c.cfg.NoticeDelay >= 0 && (c.leader == c.told || !c.connected()) {
		return
	}
	c.told = c.leader
	for j := range c.peers {
		if p := &c.peers[j]; p.conn != 0 {
			c.emit(Send{Peer: j, Conn: p.conn, Frame: wire.LeaderChange{Leader: c.leader, Prev: prev}, Urgent: true})
			c.log(eventlog.UrgentSent, eventlog.FieldTo, j, eventlog.FieldLeader, c.leader)
		}
	}
}

// connected reports whether any connection is admitted.
func (c *Core) connected() bool {
	for j := range c.peers {
		if c.peers[j].conn != 0 {
			return true
		}
	}
	return false
}

// accounted reports whether this peer has accounted for every peer: it
// has heard a heartbeat from it at some time in this incarnation, or an up
// peer whose elections are open says it is down. The first is the
// assignment's rule; counting a peer heard once, not only one up now, means
// nobody is stranded without a leader because a peer died before all were
// seen up at once. The second lets a restarted peer join a cluster whose
// first election is long past while some peer is still down. via is the
// peer that told, or -1 if every peer was heard.
func (c *Core) accounted() (via int, ok bool) {
	via = None
	for k := range c.peers {
		if k == c.cfg.ID || c.peers[k].heard {
			continue
		}
		told := None
		for j := range c.peers {
			if p := &c.peers[j]; p.up && p.told != nil && !slices.Contains(p.told, k) {
				told = j
				break
			}
		}
		if told == None {
			return None, false
		}
		via = told
	}
	return via, true
}

func (c *Core) stop() {
	for j := range c.peers {
		if p := &c.peers[j]; p.conn != 0 {
			c.emit(Send{Peer: j, Conn: p.conn, Frame: wire.Bye{Reason: "shutdown"}})
			c.emit(Close{Peer: j, Conn: p.conn, Reason: "shutdown"})
			p.conn = 0
		}
	}
	c.stopped = true
	c.log(eventlog.Stop, eventlog.FieldLeader, c.leader)
}

// Alive returns the sorted ids this peer considers correct, itself included.
func (c *Core) Alive() []int {
	alive := []int{}
	for j := range c.peers {
		if j == c.cfg.ID || c.peers[j].up {
			alive = append(alive, j)
		}
	}
	return alive
}

func (c *Core) emit(e Effect) { c.out = append(c.out, e) }

func (c *Core) log(ev string, kv ...any) {
	f := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	c.emit(Log{Ev: ev, Fields: f})
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Status is a snapshot of what the peer believes.
type Status struct {
	ID        int          `json:"id"`
	Leader    int          `json:"leader"`
	Alive     []int        `json:"alive"`
	Ready     bool         `json:"election_open"`
	Quorum    bool         `json:"quorum"`
	HintsRecv uint64       `json:"urgent_hints_recv"`
	Peers     []PeerStatus `json:"peers"`
}

// PeerStatus is what the peer knows of one other peer.
type PeerStatus struct {
	ID          int     `json:"id"`
	Up          bool    `json:"up"`
	Connected   bool    `json:"connected"`
	Incarnation uint64  `json:"inc,omitempty"`
	SilenceMS   float64 `json:"silence_ms,omitempty"`
}

// Status returns a snapshot of the peer's state.
func (c *Core) Status() Status {
	s := Status{ID: c.cfg.ID, Leader: c.leader, Alive: c.Alive(), Ready: c.ready, Quorum: c.cfg.Quorum, HintsRecv: c.hints}
	for j := range c.peers {
		if j == c.cfg.ID {
			continue
		}
		p := c.peers[j]
		ps := PeerStatus{ID: j, Up: p.up, Connected: p.conn != 0, Incarnation: p.inc}
		if p.conn != 0 {
			ps.SilenceMS = ms(c.now - p.lastHeard)
		}
		s.Peers = append(s.Peers, ps)
	}
	return s
}
