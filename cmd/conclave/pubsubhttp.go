package main

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conclave/conclave/dashboard"
	"github.com/conclave/conclave/metrics"
	"github.com/conclave/conclave/pubsub"
)

// pubsubHTTP is the --http endpoint of `conclave publish` and `conclave
// subscribe`: the client's status, dashboard and metrics.
type pubsubHTTP struct {
	obs   *observers
	cl    atomic.Pointer[pubsub.Client] // set once connected
	rates rates
}

// newPubSubHTTP returns the endpoint of a client of the given topics
// (they have metrics of their own, whatever the bound on topics).
func newPubSubHTTP(topics []string) *pubsubHTTP {
	h := &pubsubHTTP{}
	h.obs = newObservers(metrics.PubSub, dashboard.Config{State: h.state})
	h.obs.metrics.Topics(topics...)
	return h
}

// configure has the client feed the metrics and the dashboard.
func (h *pubsubHTTP) configure(cfg *pubsub.Config) {
	cfg.OnEvent = h.obs.observe(cfg.OnEvent)
	cfg.OnFiltered = h.obs.metrics.FilteredTopic
}

// serve serves the endpoint of cl on addr until stop is called.
func (h *pubsubHTTP) serve(addr string, cl *pubsub.Client) (stop func(), err error) {
	h.cl.Store(cl)
	return h.obs.serve(addr, http.HandlerFunc(h.serveStatus))
}

// published records how long a Publish took that returned nil.
func (h *pubsubHTTP) published(d time.Duration) {
	if h != nil {
		h.obs.metrics.PublishLatency(d)
	}
}

// serveStatus answers GET /status with the client's pubsub.Status.
func (h *pubsubHTTP) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(h.cl.Load().Status())
}

// state is what the dashboard shows of the client.
func (h *pubsubHTTP) state(context.Context) dashboard.State {
	cl := h.cl.Load()
	if cl == nil {
		return dashboard.State{Kind: "pubsub"}
	}
	st := cl.Status()
	rates := h.rates.of(st.Topics)
	ps := &dashboard.PubSub{Directory: st.Directory, DirLeader: st.DirectoryLeader}
	for _, t := range st.Topics {
		ps.Topics = append(ps.Topics, dashboard.Topic{Topic: t.Topic, QoS: t.QoS, Group: t.Group, Role: t.Role,
			Published: t.Published, Delivered: t.Delivered, Filtered: t.Filtered, Rate: rates[t.Topic]})
	}
	for _, m := range st.Moves {
		ps.Moves = append(ps.Moves, dashboard.Move{Topic: m.Topic, Kind: m.Kind, From: m.From, To: m.To})
	}
	out := dashboard.State{Title: st.Name, Kind: "pubsub", Addr: st.Addr, Cluster: st.Cluster, PubSub: ps}
	for _, g := range st.Groups {
		out.Groups = append(out.Groups, dashboard.Group{Group: g.Group, Member: g.Member, Stack: g.QoS, View: g.View,
			Members: g.Members, Flushed: g.Flushed, Topics: g.Topics})
	}
	return out
}

// rates measures each topic's events that reached the client (delivered
// and filtered) per second, over the last interval of at least
// rateInterval.
type rates struct {
	mu    sync.Mutex
	at    time.Time
	count map[string]uint64  // at at
	rate  map[string]float64 // over the interval before at
}

const rateInterval = time.Second

// of returns the rates, measured anew if the last measure is old enough.
func (r *rates) of(topics []pubsub.TopicStatus) map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if !r.at.IsZero() && now.Sub(r.at) < rateInterval {
		return r.rate
	}
	count := make(map[string]uint64, len(topics))
	rate := make(map[string]float64, len(topics))
	for _, t := range topics {
		n := t.Delivered + t.Filtered
		count[t.Topic] = n
		if !r.at.IsZero() {
			rate[t.Topic] = float64(n-r.count[t.Topic]) / now.Sub(r.at).Seconds()
		}
	}
	r.at, r.count, r.rate = now, count, rate
	return rate
}
