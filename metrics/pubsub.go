package metrics

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conclave/conclave/eventlog"
)

// Bounds of the label values a pub/sub client's metrics take from what
// other processes choose. The topics a process declares (Topics) always
// have their own series; of the others (topics of a shared group that it
// only filters, say), the first MaxTopics do, and the rest count under
// OtherTopic. The groups are the directory's (at most its --max-groups);
// past MaxGroups, a group's views are counted in views_total only.
const (
	MaxTopics  = 64
	OtherTopic = "_other"
	MaxGroups  = 64
)

// Values of the result label of pubsub_moves_total.
const (
	MoveSwitched = "switched" // after every subscriber (publisher) or publisher (subscriber) it waited for
	MoveLate     = "late"     // switched without waiting longer for some
	MoveFailed   = "failed"   // could not join the new group; tried again later
)

// pubsubMetrics are a pub/sub client's own metrics.
type pubsubMetrics struct {
	published *prometheus.CounterVec // by topic and result
	delivered *prometheus.CounterVec // by topic
	filtered  *prometheus.CounterVec // by topic
	latency   prometheus.Histogram
	moves     *prometheus.CounterVec // by kind and result
	members   *prometheus.GaugeVec   // by group
	views     *prometheus.CounterVec // by group

	mu       sync.Mutex
	topics   map[string]bool // topic label values in use
	declared map[string]bool // of which declared
	groups   map[string]bool // group label values in use
}

func newPubSubMetrics() pubsubMetrics {
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	}
	return pubsubMetrics{
		published: counterVec("pubsub_published_total", "Events published, by topic and outcome (ok: every member of the view has it; lost; error).", "topic", "result"),
		delivered: counterVec("pubsub_delivered_total", "Events handed to the application's subscriptions, by topic.", "topic"),
		filtered:  counterVec("pubsub_filtered_total", "Events dropped because this client does not subscribe to their topic, by topic.", "topic"),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "pubsub_publish_latency_seconds",
			Help:    "Time a Publish took that returned ok: until every member of the topic's group view had the event.",
			Buckets: LatencyBuckets}),
		moves: counterVec("pubsub_moves_total", "Moves of this client's publishers and subscriptions to another group, by kind (publisher, subscriber) and result (switched, late, failed).", "kind", "result"),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "pubsub_group_members",
			Help: "Members of the last view this client's member of the group installed (0 once it left)."}, []string{"group"}),
		views:    counterVec("pubsub_group_views_total", "Views this client's member of the group installed.", "group"),
		topics:   map[string]bool{},
		declared: map[string]bool{},
		groups:   map[string]bool{},
	}
}

func (p *pubsubMetrics) register(reg *prometheus.Registry) {
	reg.MustRegister(p.published, p.delivered, p.filtered, p.latency, p.moves, p.members, p.views)
}

// topic returns the label value of topic t: t made valid UTF-8, or
// OtherTopic past the bound.
func (p *pubsubMetrics) topic(t string) string {
	t = strings.ToValidUTF8(t, "\uFFFD")
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.topics[t] {
		return t
	}
	if len(p.topics)-len(p.declared) >= MaxTopics {
		return OtherTopic
	}
	p.topics[t] = true
	return t
}

// group returns the label value of group g, or "" past the bound.
func (p *pubsubMetrics) group(g string) string {
	g = strings.ToValidUTF8(g, "\uFFFD")
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.groups[g] {
		if len(p.groups) >= MaxGroups {
			return ""
		}
		p.groups[g] = true
	}
	return g
}

// Topics declares the topics a pub/sub client publishes or subscribes
// to: each has series of its own whatever the bound, at zero until the
// first count.
func (m *Metrics) Topics(topics ...string) {
	p := &m.ps
	for _, t := range topics {
		t = strings.ToValidUTF8(t, "\uFFFD")
		p.mu.Lock()
		if !p.declared[t] {
			if p.topics[t] { // counted before, among the bounded ones
				delete(p.topics, t)
			}
			p.topics[t], p.declared[t] = true, true
		}
		p.mu.Unlock()
		p.published.WithLabelValues(t, "ok")
		p.delivered.WithLabelValues(t)
		p.filtered.WithLabelValues(t)
	}
}

// FilteredTopic counts an event of topic a pub/sub client dropped because
// it does not subscribe to it (pubsub.Config.OnFiltered): in
// pubsub_filtered_total and in messages_total{state="filtered"}.
func (m *Metrics) FilteredTopic(topic string) {
	m.ps.filtered.WithLabelValues(m.ps.topic(topic)).Inc()
	m.messages.WithLabelValues(StateFiltered).Inc()
}

// PublishLatency records how long a Publish took that returned ok.
func (m *Metrics) PublishLatency(d time.Duration) { m.ps.latency.Observe(d.Seconds()) }

// observePubSub counts a pub/sub client's event.
func (m *Metrics) observePubSub(e eventlog.Event) {
	p := &m.ps
	switch e.Ev {
	case eventlog.PSPublish:
		p.published.WithLabelValues(p.topic(e.Str(eventlog.FieldTopic)), publishResult(e.Str(eventlog.FieldResult))).Inc()
	case eventlog.PSDeliver:
		p.delivered.WithLabelValues(p.topic(e.Str(eventlog.FieldTopic))).Inc()
	case eventlog.PSView:
		m.views.Inc()
		if f, _ := e.Fields[eventlog.FieldFlushed].(bool); f {
			m.flushes.Inc()
		}
		if g := p.group(e.Str(eventlog.FieldGroup)); g != "" {
			p.views.WithLabelValues(g).Inc()
			p.members.WithLabelValues(g).Set(float64(members(e)))
		}
	case eventlog.PSLeave:
		if g := p.group(e.Str(eventlog.FieldGroup)); g != "" {
			p.members.WithLabelValues(g).Set(0)
		}
	case eventlog.PSMove:
		kind := e.Str(eventlog.FieldKind)
		if kind != "publisher" && kind != "subscriber" {
			kind = "other"
		}
		p.moves.WithLabelValues(kind, moveResult(e.Str(eventlog.FieldResult))).Inc()
	case eventlog.PSDirLeader:
		if l, ok := e.Int(eventlog.FieldLeader); ok {
			m.directoryLeader(l)
		}
	}
}

// members is the number of members of a view event.
func members(e eventlog.Event) int {
	switch ms := e.Fields[eventlog.FieldMembers].(type) {
	case []string:
		return len(ms)
	case []any:
		return len(ms)
	}
	return 0
}

// publishResult bounds ps_publish's result: ok, lost, error or other.
func publishResult(r string) string {
	switch r {
	case "ok", "lost", "error":
		return r
	}
	return "other"
}

// moveResult sorts ps_move's result into MoveSwitched, MoveLate or
// MoveFailed.
func moveResult(r string) string {
	switch {
	case strings.HasPrefix(r, "failed"):
		return MoveFailed
	case strings.Contains(r, "without waiting"):
		return MoveLate
	}
	return MoveSwitched
}
