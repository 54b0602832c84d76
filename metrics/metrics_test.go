package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/conclave/conclave/eventlog"
)

var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

func ev(node, name string, ms int, kv ...any) eventlog.Event {
	f := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	return eventlog.Event{TS: t0.Add(time.Duration(ms) * time.Millisecond), Node: node, Ev: name, Fields: f}
}

// A peer's story: heartbeats sampled every 50th, a failover, a refused
// connection, urgent notices.
func TestPeerEvents(t *testing.T) {
	m := New()
	for _, e := range []eventlog.Event{
		ev("peer-1", eventlog.PeerUp, 0, eventlog.FieldPeer, 0),
		ev("peer-1", eventlog.PeerUp, 0, eventlog.FieldPeer, 2),
		ev("peer-1", eventlog.LeaderChange, 1, eventlog.FieldLeader, 0, eventlog.FieldPrev, -1),
		ev("peer-1", eventlog.HBSent, 2, eventlog.FieldTo, 0, eventlog.FieldSeq, uint64(1)),
		ev("peer-1", eventlog.HBSent, 3, eventlog.FieldTo, 0, eventlog.FieldSeq, uint64(50)),
		ev("peer-1", eventlog.HBSent, 3, eventlog.FieldTo, 2, eventlog.FieldSeq, uint64(100)),
		ev("peer-1", eventlog.HBRecv, 4, eventlog.FieldFrom, 0, eventlog.FieldSeq, uint64(50)),
		// A new connection to peer 0 starts counting again.
		ev("peer-1", eventlog.HBSent, 5, eventlog.FieldTo, 0, eventlog.FieldSeq, uint64(1)),
		ev("peer-1", eventlog.PeerDown, 6, eventlog.FieldPeer, 0, eventlog.FieldCause, eventlog.CauseSilence, eventlog.FieldReason, "no heartbeat"),
		ev("peer-1", eventlog.LeaderChange, 7, eventlog.FieldLeader, 1, eventlog.FieldPrev, 0),
		ev("peer-1", eventlog.UrgentSent, 7, eventlog.FieldTo, 2, eventlog.FieldLeader, 1),
		ev("peer-1", eventlog.UrgentRecv, 8, eventlog.FieldFrom, 2, eventlog.FieldLeader, 1),
		ev("peer-1", eventlog.ConnRejected, 9, eventlog.FieldAddr, "127.0.0.1:9", eventlog.FieldReason, "no peer \"other\" here"),
		ev("peer-1", eventlog.ConnRejected, 9, eventlog.FieldAddr, "127.0.0.1:9", eventlog.FieldReason, "peer id \"7\" out of range 0..2"),
	} {
		m.Observe(e)
	}
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"heartbeats sent", testutil.ToFloat64(m.heartbeats.WithLabelValues(Sent)), 1 + 49 + 100 + 1},
		{"heartbeats received", testutil.ToFloat64(m.heartbeats.WithLabelValues(Received)), 50},
		{"suspicions (silence)", testutil.ToFloat64(m.suspicions.WithLabelValues(eventlog.CauseSilence)), 1},
		{"suspicions (conn_closed)", testutil.ToFloat64(m.suspicions.WithLabelValues(eventlog.CauseConnClosed)), 0},
		{"peers up", testutil.ToFloat64(m.peersUp), 1},
		{"leader changes", testutil.ToFloat64(m.leaderChanges), 2},
		{"leader", testutil.ToFloat64(m.leader), 1},
		{"urgent sent", testutil.ToFloat64(m.urgent.WithLabelValues(Sent)), 1},
		{"urgent received", testutil.ToFloat64(m.urgent.WithLabelValues(Received)), 1},
		{"refused (scope)", testutil.ToFloat64(m.refused.WithLabelValues("scope")), 1},
		{"refused (identity)", testutil.ToFloat64(m.refused.WithLabelValues("identity")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}

// A group member's views, flushes, suspicions and messages, with the
// latency from a send to its acknowledgement.
func TestGroupEvents(t *testing.T) {
	m := New()
	for _, e := range []eventlog.Event{
		ev("m0", eventlog.View, 0, eventlog.FieldView, "1@m0", eventlog.FieldMembers, []string{"m0"}, eventlog.FieldFlushed, false),
		ev("m0", eventlog.Flush, 1, eventlog.FieldView, "1@m0"),
		ev("m0", eventlog.View, 2, eventlog.FieldView, "2@m0", eventlog.FieldMembers, []string{"m0", "m1", "m2"}, eventlog.FieldFlushed, true),
		ev("m0", eventlog.Send, 10, eventlog.FieldMsg, "a"),
		ev("m0", eventlog.Send, 11, eventlog.FieldMsg, "a"),
		ev("m0", eventlog.Deliver, 12, eventlog.FieldMsg, "a"),
		ev("m0", eventlog.Acked, 13, eventlog.FieldMsg, "a", eventlog.FieldLost, false), // 3 ms
		ev("m0", eventlog.Deliver, 14, eventlog.FieldMsg, "a"),
		ev("m0", eventlog.Acked, 2011, eventlog.FieldMsg, "a", eventlog.FieldLost, false), // 2 s
		ev("m0", eventlog.Acked, 2012, eventlog.FieldMsg, "never sent", eventlog.FieldLost, false),
		ev("m0", eventlog.Suspect, 3000, eventlog.FieldOf, "m2", eventlog.FieldCause, eventlog.CauseGap),
		ev("m0", eventlog.ConnRefused, 3001, eventlog.FieldAddr, "x", eventlog.FieldReason, "member stopped"),
	} {
		m.Observe(e)
	}
	m.Filtered(5)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"views", testutil.ToFloat64(m.views), 2},
		{"flushes", testutil.ToFloat64(m.flushes), 1},
		{"flush attempts", testutil.ToFloat64(m.flushAttempts), 1},
		{"view members", testutil.ToFloat64(m.viewMembers), 3},
		{"sent", testutil.ToFloat64(m.messages.WithLabelValues(StateSent)), 2},
		{"delivered", testutil.ToFloat64(m.messages.WithLabelValues(StateDelivered)), 2},
		{"filtered", testutil.ToFloat64(m.messages.WithLabelValues(StateFiltered)), 5},
		{"suspicions (gap)", testutil.ToFloat64(m.suspicions.WithLabelValues(eventlog.CauseGap)), 1},
		{"refused (stopping)", testutil.ToFloat64(m.refused.WithLabelValues("stopping")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	want := `
# HELP conclave_delivery_latency_seconds Time from sending a group message until every member of the view has it (its acknowledgement).
# TYPE conclave_delivery_latency_seconds histogram
conclave_delivery_latency_seconds_bucket{le="0.0001"} 0
conclave_delivery_latency_seconds_bucket{le="0.0002"} 0
conclave_delivery_latency_seconds_bucket{le="0.0004"} 0
conclave_delivery_latency_seconds_bucket{le="0.0008"} 0
conclave_delivery_latency_seconds_bucket{le="0.0016"} 0
conclave_delivery_latency_seconds_bucket{le="0.0032"} 1
conclave_delivery_latency_seconds_bucket{le="0.0064"} 1
conclave_delivery_latency_seconds_bucket{le="0.0128"} 1
conclave_delivery_latency_seconds_bucket{le="0.0256"} 1
conclave_delivery_latency_seconds_bucket{le="0.0512"} 1
conclave_delivery_latency_seconds_bucket{le="0.1024"} 1
conclave_delivery_latency_seconds_bucket{le="0.2048"} 1
conclave_delivery_latency_seconds_bucket{le="0.4096"} 1
conclave_delivery_latency_seconds_bucket{le="0.8192"} 1
conclave_delivery_latency_seconds_bucket{le="1.6384"} 1
conclave_delivery_latency_seconds_bucket{le="3.2768"} 2
conclave_delivery_latency_seconds_bucket{le="6.5536"} 2
conclave_delivery_latency_seconds_bucket{le="+Inf"} 2
conclave_delivery_latency_seconds_sum 2.003
conclave_delivery_latency_seconds_count 2
`
	if err := testutil.CollectAndCompare(m.latency, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if len(m.pending) != 0 {
		t.Errorf("%d message texts still await an acknowledgement", len(m.pending))
	}
}

// A directory replica's role, term, leader and applied commands.
func TestDirectoryEvents(t *testing.T) {
	m := New()
	commit := 0.0
	m.GaugeFunc("directory_commit_index", "test", func() float64 { return commit })
	for _, e := range []eventlog.Event{
		ev("dir-0", eventlog.DirRole, 0, eventlog.FieldRole, "follower", eventlog.FieldTerm, uint64(1), eventlog.FieldLeader, -1),
		ev("dir-0", eventlog.DirRole, 1, eventlog.FieldRole, "follower", eventlog.FieldTerm, uint64(2), eventlog.FieldLeader, 1),
		ev("dir-0", eventlog.DirApply, 2, eventlog.FieldIndex, uint64(7), eventlog.FieldTerm, uint64(2)),
		ev("dir-0", eventlog.DirApply, 3, eventlog.FieldIndex, uint64(8), eventlog.FieldTerm, uint64(2)),
		ev("dir-0", eventlog.DirRole, 4, eventlog.FieldRole, "candidate", eventlog.FieldTerm, uint64(3), eventlog.FieldLeader, -1),
		ev("dir-0", eventlog.DirRole, 5, eventlog.FieldRole, "leader", eventlog.FieldTerm, uint64(3), eventlog.FieldLeader, 0),
	} {
		m.Observe(e)
	}
	commit = 9
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"term", testutil.ToFloat64(m.dirTerm), 3},
		{"leader", testutil.ToFloat64(m.dirLeader), 0},
		{"role leader", testutil.ToFloat64(m.dirRole.WithLabelValues("leader")), 1},
		{"role candidate", testutil.ToFloat64(m.dirRole.WithLabelValues("candidate")), 0},
		{"leader changes", testutil.ToFloat64(m.dirElections), 2},
		{"applied", testutil.ToFloat64(m.dirApplied), 2},
		{"applied index", testutil.ToFloat64(m.dirIndex), 8},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	fams := scrape(t, m)
	if g := fams["conclave_directory_commit_index"]; g == nil || g.GetMetric()[0].GetGauge().GetValue() != 9 {
		t.Errorf("the commit index gauge is %v, want 9", g)
	}
}

// What /metrics serves parses as Prometheus' text format, with every
// metric named in the documentation.
func TestHandlerTextFormat(t *testing.T) {
	m := New()
	m.Observe(ev("peer-0", eventlog.LeaderChange, 0, eventlog.FieldLeader, 0, eventlog.FieldPrev, -1))
	fams := scrape(t, m)
	for _, name := range []string{"conclave_heartbeats_total", "conclave_suspicions_total", "conclave_leader_changes_total",
		"conclave_leader", "conclave_peers_up", "conclave_urgent_notices_total", "conclave_views_total", "conclave_flushes_total",
		"conclave_delivery_latency_seconds", "conclave_directory_term", "conclave_directory_applied_total", "go_goroutines"} {
		if fams[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if v := fams["conclave_leader_changes_total"].GetMetric()[0].GetCounter().GetValue(); v != 1 {
		t.Errorf("conclave_leader_changes_total is %v, want 1", v)
	}
	// Two in one process do not collide.
	New().Observe(ev("peer-0", eventlog.LeaderChange, 0, eventlog.FieldLeader, 0, eventlog.FieldPrev, -1))
	if v := testutil.ToFloat64(m.leaderChanges); v != 1 {
		t.Errorf("another Metrics counted in this one: %v", v)
	}
	// A directory replica exports no peer metrics.
	d := scrape(t, New(Directory))
	if d["conclave_leader_changes_total"] != nil || d["conclave_directory_term"] == nil {
		t.Errorf("New(Directory) exports %d families: not those of a replica", len(d))
	}
}

func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

func TestRefusalReason(t *testing.T) {
	for reason, want := range map[string]string{
		"12 more connections refused in the last second, not reported one by one": "throttled",
		"no group \"x\" here":                           "scope",
		"peer id 9 is our own":                          "identity",
		"handshake unfinished when 64 more had arrived": "handshake",
		"authentication failed: no proof of the cluster key (another key, or none)": "auth",
		"protocol version 9, we speak 1":                                            "version",
		"something new":                                                             "other",
		"":                                                                          "other",
	} {
		if got := RefusalReason(reason); got != want {
			t.Errorf("RefusalReason(%q) = %s, want %s", reason, got, want)
		}
	}
}
