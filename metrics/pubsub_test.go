package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/conclave/conclave/eventlog"
)

// A pub/sub client's story: views of two groups, publishes, deliveries,
// filtered events, a move, a directory failover, and a leave.
func TestPubSubEvents(t *testing.T) {
	m := New(PubSub)
	m.Topics("a")
	for _, e := range []eventlog.Event{
		ev("c", eventlog.PSDirLeader, 0, eventlog.FieldLeader, 1, eventlog.FieldPrev, -1),
		ev("c", eventlog.PSView, 1, eventlog.FieldGroup, "g0", eventlog.FieldView, "1@c.1", eventlog.FieldMembers, []string{"c.1"}, eventlog.FieldFlushed, false),
		ev("c", eventlog.PSView, 2, eventlog.FieldGroup, "g0", eventlog.FieldView, "2@c.1", eventlog.FieldMembers, []any{"c.1", "d.1"}, eventlog.FieldFlushed, true),
		ev("c", eventlog.PSView, 3, eventlog.FieldGroup, "g1", eventlog.FieldView, "1@c.1", eventlog.FieldMembers, []string{"c.1"}, eventlog.FieldFlushed, false),
		ev("c", eventlog.PSPublish, 4, eventlog.FieldTopic, "a", eventlog.FieldResult, "ok"),
		ev("c", eventlog.PSPublish, 5, eventlog.FieldTopic, "a", eventlog.FieldResult, "lost"),
		ev("c", eventlog.PSPublish, 6, eventlog.FieldTopic, "a", eventlog.FieldResult, "something else"),
		ev("c", eventlog.PSDeliver, 7, eventlog.FieldTopic, "a"),
		ev("c", eventlog.PSDeliver, 8, eventlog.FieldTopic, "a"),
		ev("c", eventlog.PSMove, 9, eventlog.FieldTopic, "a", eventlog.FieldKind, "subscriber", eventlog.FieldResult, "switched"),
		ev("c", eventlog.PSMove, 9, eventlog.FieldTopic, "a", eventlog.FieldKind, "publisher", eventlog.FieldResult, "switched without waiting longer for x"),
		ev("c", eventlog.PSMove, 9, eventlog.FieldTopic, "a", eventlog.FieldKind, "publisher", eventlog.FieldResult, "failed: no"),
		ev("c", eventlog.PSDirLeader, 10, eventlog.FieldLeader, -1, eventlog.FieldPrev, 1),
		ev("c", eventlog.PSDirLeader, 11, eventlog.FieldLeader, 2, eventlog.FieldPrev, -1),
		ev("c", eventlog.PSLeave, 12, eventlog.FieldGroup, "g1", eventlog.FieldResult, "ok"),
		ev("c.1", eventlog.Suspect, 13, eventlog.FieldOf, "d.1", eventlog.FieldCause, eventlog.CauseSilence),
	} {
		m.Observe(e)
	}
	m.FilteredTopic("b")
	m.FilteredTopic("b")
	m.PublishLatency(3 * time.Millisecond)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"published a ok", testutil.ToFloat64(m.ps.published.WithLabelValues("a", "ok")), 1},
		{"published a lost", testutil.ToFloat64(m.ps.published.WithLabelValues("a", "lost")), 1},
		{"published a other", testutil.ToFloat64(m.ps.published.WithLabelValues("a", "other")), 1},
		{"delivered a", testutil.ToFloat64(m.ps.delivered.WithLabelValues("a")), 2},
		{"filtered b", testutil.ToFloat64(m.ps.filtered.WithLabelValues("b")), 2},
		{"filtered a", testutil.ToFloat64(m.ps.filtered.WithLabelValues("a")), 0},
		{"messages filtered", testutil.ToFloat64(m.messages.WithLabelValues(StateFiltered)), 2},
		{"views", testutil.ToFloat64(m.views), 3},
		{"flushes", testutil.ToFloat64(m.flushes), 1},
		{"views of g0", testutil.ToFloat64(m.ps.views.WithLabelValues("g0")), 2},
		{"members of g0", testutil.ToFloat64(m.ps.members.WithLabelValues("g0")), 2},
		{"members of g1 (left)", testutil.ToFloat64(m.ps.members.WithLabelValues("g1")), 0},
		{"moves switched", testutil.ToFloat64(m.ps.moves.WithLabelValues("subscriber", MoveSwitched)), 1},
		{"moves late", testutil.ToFloat64(m.ps.moves.WithLabelValues("publisher", MoveLate)), 1},
		{"moves failed", testutil.ToFloat64(m.ps.moves.WithLabelValues("publisher", MoveFailed)), 1},
		{"directory leader", testutil.ToFloat64(m.dirLeader), 2},
		{"directory leader changes", testutil.ToFloat64(m.dirElections), 2},
		{"suspicions", testutil.ToFloat64(m.suspicions.WithLabelValues(eventlog.CauseSilence)), 1},
		{"publish latency", float64(testutil.CollectAndCount(m.ps.latency)), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	fams := scrape(t, m)
	for _, name := range []string{"conclave_pubsub_published_total", "conclave_pubsub_delivered_total", "conclave_pubsub_filtered_total",
		"conclave_pubsub_publish_latency_seconds", "conclave_pubsub_moves_total", "conclave_pubsub_group_members",
		"conclave_pubsub_group_views_total", "conclave_directory_leader", "conclave_views_total", "conclave_messages_total"} {
		if fams[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	for _, name := range []string{"conclave_view_members", "conclave_directory_term", "conclave_leader", "conclave_delivery_latency_seconds"} {
		if fams[name] != nil {
			t.Errorf("a pub/sub client exports %s", name)
		}
	}
}

// Topics chosen by others have series of their own up to MaxTopics, then
// count under OtherTopic; declared ones always have theirs.
func TestPubSubTopicsBounded(t *testing.T) {
	m := New(PubSub)
	for i := range MaxTopics + 10 {
		m.FilteredTopic(fmt.Sprintf("t%d", i))
	}
	m.Topics("mine")
	m.Observe(ev("c", eventlog.PSDeliver, 0, eventlog.FieldTopic, "mine"))
	fams := scrape(t, m)
	series := map[string]float64{}
	for _, name := range []string{"conclave_pubsub_filtered_total", "conclave_pubsub_delivered_total"} {
		for _, s := range fams[name].GetMetric() {
			series[name+"/"+s.GetLabel()[0].GetValue()] = s.GetCounter().GetValue()
		}
	}
	if n := len(fams["conclave_pubsub_filtered_total"].GetMetric()); n != MaxTopics+2 {
		t.Errorf("%d filtered series, want %d (the bound, the others, the declared topic)", n, MaxTopics+2)
	}
	if v := series["conclave_pubsub_filtered_total/"+OtherTopic]; v != 10 {
		t.Errorf("the other topics counted %v, want 10", v)
	}
	if v := series["conclave_pubsub_delivered_total/mine"]; v != 1 {
		t.Errorf("the declared topic delivered %v, want 1", v)
	}
	if v := series["conclave_pubsub_filtered_total/mine"]; v != 0 || !strings.Contains(fmt.Sprint(series), "mine") {
		t.Errorf("the declared topic has no filtered series at zero: %v", series)
	}
}

// A topic that is not UTF-8 (the network's) is made so rather than crash
// the process (the client library refuses such label values).
func TestPubSubTopicNotUTF8(t *testing.T) {
	m := New(PubSub)
	m.FilteredTopic("\xff\xfe")
	m.Observe(ev("c", eventlog.PSDeliver, 0, eventlog.FieldTopic, "a\xff"))
	m.Observe(ev("c", eventlog.PSView, 0, eventlog.FieldGroup, "g\xff", eventlog.FieldMembers, []string{"c.1"}))
	fams := scrape(t, m)
	if v := fams["conclave_pubsub_filtered_total"].GetMetric()[0].GetLabel()[0].GetValue(); v != "\uFFFD" {
		t.Errorf("the topic's label is %q", v)
	}
	if v := fams["conclave_pubsub_delivered_total"].GetMetric()[0].GetLabel()[0].GetValue(); v != "a\uFFFD" {
		t.Errorf("the topic's label is %q", v)
	}
}
