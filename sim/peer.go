package sim

import (
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/peer"
	"github.com/conclave/conclave/wire"
)

// Epoch is the wall-clock time of simulated time zero in recorded events.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Config configures a simulation of peers.
type Config struct {
	// N is the number of peers.
	N int
	// Seed decides every delay and random choice.
	Seed uint64
	// Peer is the peers' configuration; ID and N are set per peer.
	Peer peer.Config
	// MinDelay and MaxDelay bound the one-way delay of a message
	// (defaults 50µs and 2ms).
	MinDelay, MaxDelay time.Duration
	// DialTimeout bounds a connection attempt's connect and, again, its
	// handshake (default PeerDialTimeout).
	DialTimeout time.Duration
	// LogHeartbeats records hb_sent and hb_recv events (default off: they
	// dominate the history). LogSentHeartbeats records hb_sent only, all
	// that check.NoHeartbeatAfterClose needs, at half the cost.
	LogHeartbeats, LogSentHeartbeats bool
}

// Sim is a simulated cluster of peers: process i hosts peer i. Its
// network and faults are its Net's.
type Sim struct {
	*Net
	cfg   Config
	peers []*peerNode
}

// peerNode is the machine of a peer core in its process.
type peerNode struct {
	s     *Sim
	p     *proc
	id    int
	name  string // eventlog.PeerName(id)
	core  *peer.Core
	timer timer
	clock eventlog.Clock
}

// New returns a simulation of cfg.N peers, none started.
func New(cfg Config) (*Sim, error) {
	net, err := NewNet(NetConfig{N: cfg.N, Seed: cfg.Seed, MinDelay: cfg.MinDelay, MaxDelay: cfg.MaxDelay})
	if err != nil {
		return nil, err
	}
	return NewOn(net, cfg)
}

// NewOn puts a peer core on each process of net: peer i in process i.
// cfg.N, Seed, MinDelay and MaxDelay are the net's.
func NewOn(net *Net, cfg Config) (*Sim, error) {
	cfg.N, cfg.Seed, cfg.MinDelay, cfg.MaxDelay = net.N(), net.cfg.Seed, net.cfg.MinDelay, net.cfg.MaxDelay
	pc := cfg.Peer
	pc.N = cfg.N
	if err := pc.Validate(); err != nil {
		return nil, err
	}
	cfg.Peer = pc
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = PeerDialTimeout(pc)
	}
	s := &Sim{Net: net, cfg: cfg}
	for i := range cfg.N {
		m := &peerNode{s: s, p: net.procs[i], id: i, name: eventlog.PeerName(i)}
		s.peers = append(s.peers, m)
		net.host(i, m)
	}
	return s, nil
}

// PeerDialTimeout is the default Config.DialTimeout: twice suspect-after.
// A peer must connect over any link whose one-way delay stays below
// suspect-after (the core suspects nobody correct on such links, see
// docs/peer-core.md); a connect takes a round trip, and so does the
// handshake after it, so each needs more than twice the largest one-way
// delay. With suspect-after alone a link slower than half of it never
// connects (TestSlowLinkNeedsDialTimeout).
func PeerDialTimeout(c peer.Config) time.Duration { return 2 * c.SuspectAfter }

// Config returns the configuration with defaults filled in.
func (s *Sim) Config() Config { return s.cfg }

// Leader returns what peer i reports as leader, or peer.None if it is not
// running.
func (s *Sim) Leader(i int) int {
	if m := s.peers[i]; m.p.running {
		return m.core.Leader()
	}
	return peer.None
}

// Status returns peer i's status; ok is false if it is not running.
func (s *Sim) Status(i int) (st peer.Status, ok bool) {
	if m := s.peers[i]; m.p.running {
		return m.core.Status(), true
	}
	return st, false
}

// Converged reports whether every running, unpaused peer reports the same
// leader, and returns it.
func (s *Sim) Converged() (int, bool) {
	leader, seen := peer.None, false
	for _, m := range s.peers {
		if !m.p.running || m.p.paused {
			continue
		}
		l := m.core.Leader()
		if seen && l != leader {
			return peer.None, false
		}
		leader, seen = l, true
	}
	return leader, seen
}

func (m *peerNode) start() {
	pc := m.s.cfg.Peer
	pc.ID = m.id
	core, err := peer.New(pc)
	if err != nil {
		panic(err) // validated in NewOn
	}
	m.core = core
	m.clock = eventlog.Clock{}
	m.step(peer.Start{})
}

func (m *peerNode) tick()      { m.step(peer.Tick{}) }
func (m *peerNode) stop()      { m.step(peer.Stop{}) }
func (m *peerNode) down()      {}
func (m *peerNode) done() bool { return false }

// step feeds one input to the core and carries out the effects.
func (m *peerNode) step(in peer.Input) error {
	err := m.core.Step(m.s.now, in)
	m.effects()
	return err
}

func (m *peerNode) effects() {
	s := m.s
	for _, e := range m.core.Ready() {
		switch e := e.(type) {
		case peer.Send:
			if c := m.p.conns[uint64(e.Conn)]; c != nil {
				m.sendFrame(c, c.side(m.id), e.Frame, m.clock.Tick(s.wall()))
				if e.Urgent {
					m.sendFrame(c, c.side(m.id), wire.Hint{}, 0)
				}
			}
		case peer.Close:
			if c := m.p.conns[uint64(e.Conn)]; c != nil {
				s.close(c, c.side(m.id))
			}
		case peer.Dial:
			m.dial(e.Peer)
		case peer.Log:
			if !s.cfg.LogHeartbeats && (e.Ev == eventlog.HBRecv || e.Ev == eventlog.HBSent && !s.cfg.LogSentHeartbeats) {
				continue
			}
			s.record(eventlog.Event{TS: s.wall(), Node: m.name, Inc: m.p.inc,
				LC: m.clock.Tick(s.wall()), Ev: e.Ev, Fields: e.Fields})
		}
	}
	s.arm(m.p, &m.timer, m.core.Deadline(), m.tick)
}

// dial connects to peer to: the acceptor's core admits the connection and
// answers Hello, then the dialer's core admits it in turn.
func (m *peerNode) dial(to int) {
	s, target := m.s, m.s.peers[to]
	inc := m.p.inc
	var tinc uint64 // the acceptor's incarnation
	s.connect(m.p, target.p, s.cfg.DialTimeout, handshake{
		accept: func(c *conn) error {
			err := target.core.Step(s.now, peer.Handshake{Peer: m.id, Conn: peer.ConnID(c.id), Incarnation: inc, Addr: m.name})
			if err != nil {
				target.effects()
				return err
			}
			c.onEnd = [2]func(string){m.ended(c, to), target.ended(c, m.id)}
			tinc = target.p.inc
			s.answer(c) // Hello goes first, then whatever admission sent
			target.effects()
			return nil
		},
		connected: func(c *conn) {
			if err := m.step(peer.Handshake{Peer: to, Conn: peer.ConnID(c.id), Incarnation: tinc, Dialed: true, Addr: target.name}); err != nil {
				s.close(c, 0)
			}
		},
		failed: func(why string) { m.step(peer.DialFailed{Peer: to, Err: why}) },
	})
}

// ended returns how the core learns that c, with peer from, ended.
func (m *peerNode) ended(c *conn, from int) func(string) {
	return func(reason string) {
		m.step(peer.Closed{Peer: from, Conn: peer.ConnID(c.id), Reason: reason})
	}
}

func (m *peerNode) sendFrame(c *conn, side int, f wire.Frame, lc uint64) {
	s := m.s
	f = wire.Stamp(f, lc)
	dst := s.peers[c.ends[1-side]]
	s.send(c, side, func() {
		if c.closed[1-side] {
			return
		}
		if lc != 0 {
			dst.clock.Witness(lc, s.wall())
		}
		dst.step(peer.Recv{Peer: m.id, Conn: peer.ConnID(c.id), Frame: f})
	})
}
