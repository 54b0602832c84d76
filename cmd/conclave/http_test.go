package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
)

// httpGet returns the body of GET http://addr/path.
func httpGet(t *testing.T, addr, path string) string {
	t.Helper()
	r, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s: %d %v", addr, path, r.StatusCode, err)
	}
	return string(b)
}

// metricValue parses Prometheus text and returns the value of the series
// name with the given labels (name=value pairs; none for an unlabelled
// one), or -1 if there is none.
func metricValue(t *testing.T, text, name string, labels ...string) float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the metrics do not parse: %v", err)
	}
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// TestGroupHTTP runs a member with --http (in this process, beside
// another: each has its own metrics) and reads its status, metrics and
// dashboard once it delivered two messages.
func TestGroupHTTP(t *testing.T) {
	web, err := launch.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	a := startMember(t, "--group", "club", "--stack", "total", "--member", "ann", "--http", web[0])
	m := a.expect(t, `^joined group "club" as (ann\.\w+) at (\S+)`)
	b := startMember(t, "--group", "club", "--stack", "total", "--member", "ben", "--contacts", m[2])
	ben := b.expect(t, `^joined group "club" as (ben\.\w+) at`)[1]
	a.expect(t, `^view 2@`)
	io.WriteString(b.in, "one\n")
	io.WriteString(a.in, "two\n")
	a.expect(t, `> (one|two)$`)
	a.expect(t, `> (one|two)$`)

	var st groupStatus
	if err := json.Unmarshal([]byte(httpGet(t, web[0], "/status")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Group != "club" || st.Member != m[1] || len(st.Members) != 2 || st.Stack != "total" {
		t.Errorf("/status: %+v", st)
	}
	text := httpGet(t, web[0], "/metrics")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"conclave_views_total", nil, 2},
		{"conclave_view_members", nil, 2},
		{"conclave_messages_total", []string{"state", "delivered"}, 2},
	} {
		if got := metricValue(t, text, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v is %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if metricValue(t, text, "conclave_leader_changes_total") != -1 {
		t.Error("a group member exports the metrics of a peer")
	}
	page := httpGet(t, web[0], "/")
	for _, want := range []string{`data-group="club"`, ben, "stack total"} {
		if !strings.Contains(page, want) {
			t.Errorf("the dashboard lacks %q", want)
		}
	}
}

// TestDirectoryHTTP runs three replicas with --http, announces a topic,
// and reads the topic on a replica's dashboard and its applied command,
// term and commit index in its metrics.
func TestDirectoryHTTP(t *testing.T) {
	dir := t.TempDir()
	web, err := launch.FreeAddrs(3)
	if err != nil {
		t.Fatal(err)
	}
	c, cl := startDirectory(t, dir, func(i int) []string { return []string{"--http", web[i]} })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cl.Announce(ctx, "prices<&>", "total", nil); err != nil {
		t.Fatal(err)
	}
	// Replica 2 applied it: its page, read on its goroutine after the
	// apply, shows it, and its metrics counted it.
	if _, err := c.WaitEvent(ctx, 2, func(e eventlog.Event) bool {
		return e.Ev == eventlog.DirApply && e.Str(eventlog.FieldTopic) == "prices<&>"
	}); err != nil {
		t.Fatal(err)
	}
	page := httpGet(t, web[2], "/")
	for _, want := range []string{`<td>prices&lt;&amp;&gt;</td><td>total</td>`, `id="role"`, "dir-2"} {
		if !strings.Contains(page, want) {
			t.Errorf("the dashboard of dir-2 lacks %q", want)
		}
	}
	text := httpGet(t, web[2], "/metrics")
	if v := metricValue(t, text, "conclave_directory_applied_total"); v < 1 {
		t.Errorf("conclave_directory_applied_total is %v", v)
	}
	if v := metricValue(t, text, "conclave_directory_term"); v < 1 {
		t.Errorf("conclave_directory_term is %v", v)
	}
	if v := metricValue(t, text, "conclave_directory_commit_index"); v < metricValue(t, text, "conclave_directory_applied_index") || v < 1 {
		t.Errorf("conclave_directory_commit_index is %v, below what was applied", v)
	}
	roles := 0.0
	for _, r := range []string{"follower", "precandidate", "candidate", "leader"} {
		roles += metricValue(t, text, "conclave_directory_role", "role", r)
	}
	if roles != 1 {
		t.Errorf("conclave_directory_role sums to %v, want 1", roles)
	}
	var st dirStatus
	if err := json.Unmarshal([]byte(httpGet(t, web[2], "/status")), &st); err != nil || len(st.Topics) != 1 {
		t.Errorf("/status: %v, %+v", err, st)
	}
}
