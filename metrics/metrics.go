// Package metrics exports what a conclave process does as Prometheus
// metrics. A Metrics is fed the events its process logs (Observe, the
// runtimes' OnEvent hooks), so the protocol cores know nothing of it; a
// few counts the events do not carry (a group member's messages, a
// pub/sub client's filtered events) are added by the process itself.
// Every Metrics has a registry of its own, so several may live in one
// process.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/conclave/conclave/eventlog"
)

// Namespace prefixes every metric's name.
const Namespace = "conclave"

// Values of the direction label.
const (
	Sent     = "sent"
	Received = "received"
)

// Values of the state label of MessagesTotal.
const (
	StateSent      = "sent"
	StateDelivered = "delivered"
	StateFiltered  = "filtered"
)

// LatencyBuckets are the delivery latency histogram's upper bounds, in
// seconds: 100 µs to about 6.5 s.
var LatencyBuckets = prometheus.ExponentialBuckets(0.0001, 2, 17)

// Metrics holds one process's metrics and turns its events into them.
type Metrics struct {
	reg *prometheus.Registry

	heartbeats    *prometheus.CounterVec
	suspicions    *prometheus.CounterVec
	peersUp       prometheus.Gauge
	leader        prometheus.Gauge
	leaderChanges prometheus.Counter
	urgent        *prometheus.CounterVec
	refused       *prometheus.CounterVec
	views         prometheus.Counter
	flushes       prometheus.Counter
	flushAttempts prometheus.Counter
	viewMembers   prometheus.Gauge
	messages      *prometheus.CounterVec
	latency       prometheus.Histogram
	dirTerm       prometheus.Gauge
	dirLeader     prometheus.Gauge
	dirRole       *prometheus.GaugeVec
	dirElections  prometheus.Counter
	dirApplied    prometheus.Counter
	dirIndex      prometheus.Gauge
	ps            pubsubMetrics

	mu            sync.Mutex
	hbSeq         map[hbKey]uint64       // the last heartbeat seq logged, per peer and direction
	up            map[string]bool        // peers up, by "<node>/<peer>"
	pending       map[string][]time.Time // send times of messages awaiting their acknowledgement
	lastDirLeader int
}

type hbKey struct {
	node, dir string
	peer      int
}

// Part names the metrics of one kind of process.
type Part int

// The parts a process may export; New with none exports them all.
const (
	// Peer: heartbeats, peers up, leader, leader changes, urgent notices,
	// suspicions and refused connections.
	Peer Part = 1 << iota
	// Group: views, flushes, view members, messages, delivery latency,
	// suspicions and refused connections.
	Group
	// Directory: the replica's term, role, leader, leader changes and
	// applied commands.
	Directory
	// PubSub: a pub/sub client's events published, delivered and
	// filtered by topic, publish latency, moves, its groups' views and
	// the directory leader it follows, with the views, flushes,
	// suspicions and refused connections of its members.
	PubSub
)

// New returns the metrics of the given parts (all without any), in a
// registry of their own with Go's runtime and process collectors.
func New(parts ...Part) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), hbSeq: map[hbKey]uint64{}, up: map[string]bool{}, pending: map[string][]time.Time{}, lastDirLeader: -1}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help})
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	}
	m.heartbeats = counterVec("heartbeats_total", "Heartbeats sent to and received from other peers, as of the last one logged (every 50th, or each with --log-heartbeats).", "direction")
	m.suspicions = counterVec("suspicions_total", "Peers declared down (peer_down) and group members suspected (suspect), by cause.", "cause")
	m.peersUp = gauge("peers_up", "Other peers this peer currently considers up.")
	m.leader = gauge("leader", "The peer this peer recognises as leader (-1: none).")
	m.leaderChanges = counter("leader_changes_total", "Changes of the leader this peer recognises.")
	m.urgent = counterVec("urgent_notices_total", "Leader-change notices sent with TCP urgent data, and received.", "direction")
	m.refused = counterVec("connections_refused_total", "Incoming connections refused, by reason.", "reason")
	m.views = counter("views_total", "Group views installed.")
	m.flushes = counter("flushes_total", "Group views installed through a flush of the view before.")
	m.flushAttempts = counter("flush_attempts_total", "Flushes this member began as the view's coordinator.")
	m.viewMembers = gauge("view_members", "Members of the last group view installed.")
	m.messages = counterVec("messages_total", "Group messages sent and delivered, and pub/sub events filtered out (of a topic not subscribed to).", "state")
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "delivery_latency_seconds",
		Help:    "Time from sending a group message until every member of the view has it (its acknowledgement).",
		Buckets: LatencyBuckets})
	m.dirTerm = gauge("directory_term", "The directory replica's Raft term.")
	m.dirLeader = gauge("directory_leader", "The directory replica this process knows as leader (a replica, or a pub/sub client from the directory's answers; -1: none).")
	m.dirRole = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "directory_role",
		Help: "1 for the directory replica's current role (follower, precandidate, candidate, leader), 0 for the others."}, []string{"role"})
	m.dirElections = counter("directory_leader_changes_total", "Changes of the directory leader this process knows (a replica, or a pub/sub client from the directory's answers).")
	m.dirApplied = counter("directory_applied_total", "Commands this directory replica applied.")
	m.dirIndex = gauge("directory_applied_index", "Log index of the last command this directory replica applied.")
	m.ps = newPubSubMetrics()
	var p Part
	for _, q := range parts {
		p |= q
	}
	if p == 0 {
		p = Peer | Group | Directory | PubSub
	}
	m.reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	if p&(Peer|Group|PubSub) != 0 {
		m.reg.MustRegister(m.suspicions, m.refused)
	}
	if p&Peer != 0 {
		m.reg.MustRegister(m.heartbeats, m.peersUp, m.leader, m.leaderChanges, m.urgent)
	}
	if p&(Group|PubSub) != 0 {
		m.reg.MustRegister(m.views, m.flushes, m.flushAttempts, m.messages)
	}
	if p&Group != 0 {
		m.reg.MustRegister(m.viewMembers, m.latency)
	}
	if p&(Directory|PubSub) != 0 {
		m.reg.MustRegister(m.dirLeader, m.dirElections)
	}
	if p&Directory != 0 {
		m.reg.MustRegister(m.dirTerm, m.dirRole, m.dirApplied, m.dirIndex)
	}
	if p&PubSub != 0 {
		m.ps.register(m.reg)
	}
	m.leader.Set(-1)
	m.dirLeader.Set(-1)
	// Labels known in advance show as zero before the first count.
	for _, d := range []string{Sent, Received} {
		m.heartbeats.WithLabelValues(d)
		m.urgent.WithLabelValues(d)
	}
	for _, c := range []string{eventlog.CauseConnClosed, eventlog.CauseSilence} {
		m.suspicions.WithLabelValues(c)
	}
	return m
}

// Registry is the registry the metrics are in; a process may register
// more of its own (a replica's commit index, say).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus' text format (GET /metrics).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// GaugeFunc registers a gauge whose value f gives at each scrape; name
// is prefixed with Namespace.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, f))
}

// Observe counts what an event says. It is safe for concurrent use and
// does not block beyond a short lock: it may be a runtime's OnEvent.
func (m *Metrics) Observe(e eventlog.Event) {
	switch e.Ev {
	case eventlog.HBSent:
		m.heartbeat(e, Sent, eventlog.FieldTo)
	case eventlog.HBRecv:
		m.heartbeat(e, Received, eventlog.FieldFrom)
	case eventlog.PeerUp, eventlog.PeerDown:
		p, _ := e.Int(eventlog.FieldPeer)
		m.mu.Lock()
		key := e.Node + "/" + strconv.Itoa(p)
		if e.Ev == eventlog.PeerUp {
			m.up[key] = true
		} else {
			delete(m.up, key)
		}
		m.peersUp.Set(float64(len(m.up)))
		m.mu.Unlock()
		if e.Ev == eventlog.PeerDown {
			m.suspicions.WithLabelValues(label(e.Str(eventlog.FieldCause))).Inc()
		}
	case eventlog.Suspect:
		m.suspicions.WithLabelValues(label(e.Str(eventlog.FieldCause))).Inc()
	case eventlog.LeaderChange:
		m.leaderChanges.Inc()
		if l, ok := e.Int(eventlog.FieldLeader); ok {
			m.leader.Set(float64(l))
		}
	case eventlog.UrgentSent:
		m.urgent.WithLabelValues(Sent).Inc()
	case eventlog.UrgentRecv:
		m.urgent.WithLabelValues(Received).Inc()
	case eventlog.ConnRejected, eventlog.ConnRefused:
		m.refused.WithLabelValues(RefusalReason(e.Str(eventlog.FieldReason))).Inc()
	case eventlog.View:
		m.views.Inc()
		if f, _ := e.Fields[eventlog.FieldFlushed].(bool); f {
			m.flushes.Inc()
		}
		if ms, ok := e.Fields[eventlog.FieldMembers].([]any); ok {
			m.viewMembers.Set(float64(len(ms)))
		} else if ms, ok := e.Fields[eventlog.FieldMembers].([]string); ok {
			m.viewMembers.Set(float64(len(ms)))
		}
	case eventlog.Flush:
		m.flushAttempts.Inc()
	case eventlog.Send:
		m.messages.WithLabelValues(StateSent).Inc()
		m.mu.Lock()
		msg := e.Str(eventlog.FieldMsg)
		if len(m.pending[msg]) < maxPending {
			m.pending[msg] = append(m.pending[msg], e.TS)
		}
		m.mu.Unlock()
	case eventlog.Acked:
		m.mu.Lock()
		msg := e.Str(eventlog.FieldMsg)
		q := m.pending[msg]
		var sent time.Time
		if len(q) > 0 {
			sent = q[0]
			if len(q) == 1 {
				delete(m.pending, msg)
			} else {
				m.pending[msg] = q[1:]
			}
		}
		m.mu.Unlock()
		if lost, _ := e.Fields[eventlog.FieldLost].(bool); !lost && !sent.IsZero() {
			m.latency.Observe(e.TS.Sub(sent).Seconds())
		}
	case eventlog.Deliver:
		m.messages.WithLabelValues(StateDelivered).Inc()
	case eventlog.DirRole:
		if t, ok := e.Int(eventlog.FieldTerm); ok {
			m.dirTerm.Set(float64(t))
		}
		role := e.Str(eventlog.FieldRole)
		for _, r := range []string{"follower", "precandidate", "candidate", "leader"} {
			v := 0.0
			if r == role {
				v = 1
			}
			m.dirRole.WithLabelValues(r).Set(v)
		}
		if l, ok := e.Int(eventlog.FieldLeader); ok {
			m.directoryLeader(l)
		}
	case eventlog.DirApply:
		m.dirApplied.Inc()
		if i, ok := e.Int(eventlog.FieldIndex); ok {
			m.dirIndex.Set(float64(i))
		}
	case eventlog.PSPublish, eventlog.PSDeliver, eventlog.PSView, eventlog.PSLeave, eventlog.PSMove, eventlog.PSDirLeader:
		m.observePubSub(e)
	}
}

// directoryLeader notes that the process knows replica l as the
// directory's leader (-1: none).
func (m *Metrics) directoryLeader(l int) {
	m.mu.Lock()
	prev := m.lastDirLeader
	m.lastDirLeader = l
	m.mu.Unlock()
	m.dirLeader.Set(float64(l))
	if prev != l && l >= 0 {
		m.dirElections.Inc()
	}
}

// maxPending bounds the sends of one message text awaiting their
// acknowledgement, so that a member that never hears back costs bounded
// memory.
const maxPending = 1024

// Delivered counts n messages delivered to the application, for a
// process that does not log its deliveries.
func (m *Metrics) Delivered(n int) { m.messages.WithLabelValues(StateDelivered).Add(float64(n)) }

// SentAcked counts a message sent and, unless lost, its delivery latency
// d: from the send until every member of the view had it. It is for a
// process that does not log its sends.
func (m *Metrics) SentAcked(d time.Duration, lost bool) {
	m.messages.WithLabelValues(StateSent).Inc()
	if !lost {
		m.latency.Observe(d.Seconds())
	}
}

// Filtered counts n events a pub/sub client dropped because it does not
// subscribe to their topic.
func (m *Metrics) Filtered(n uint64) { m.messages.WithLabelValues(StateFiltered).Add(float64(n)) }

func (m *Metrics) heartbeat(e eventlog.Event, dir, field string) {
	seq, _ := e.Int(eventlog.FieldSeq)
	p, _ := e.Int(field)
	if seq <= 0 {
		return
	}
	k := hbKey{e.Node, dir, p}
	m.mu.Lock()
	last := m.hbSeq[k]
	m.hbSeq[k] = uint64(seq)
	m.mu.Unlock()
	// A seq that went back starts a new connection's count.
	n := uint64(seq)
	if uint64(seq) > last {
		n = uint64(seq) - last
	}
	m.heartbeats.WithLabelValues(dir).Add(float64(n))
}

// label bounds a label value taken from an event: a missing one is
// "unknown", an unexpected long one is cut, and any is made valid UTF-8
// (the client library refuses others).
func label(s string) string {
	if s == "" {
		return "unknown"
	}
	if len(s) > 32 {
		s = s[:32]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// RefusalReason sorts a refused connection's reason into one of a few
// label values: auth, scope, version, identity, stale, duplicate,
// handshake, garbage, stopping, throttled or other.
func RefusalReason(reason string) string {
	r := strings.ToLower(reason)
	for _, c := range []struct{ label, words string }{
		{"throttled", "not reported one by one"},
		{"auth", "key|proof|authenticat|mac "},
		{"scope", "no group|no peer|no directory|no client|here|cluster|another group"},
		{"version", "version"},
		{"stale", "incarnation|stale|is gone|left"},
		{"duplicate", "already"},
		{"identity", "out of range|our own|this is peer|configured with|answered as"},
		{"handshake", "handshake|hello|timeout|timed out"},
		{"garbage", "frame|garbage|malformed|too large|decode|invalid"},
		{"stopping", "shutting down|stopped|stopping"},
	} {
		for _, w := range strings.Split(c.words, "|") {
			if strings.Contains(r, w) {
				return c.label
			}
		}
	}
	return "other"
}
