package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/launch/launchtest"
	"github.com/conclave/conclave/pubsub"
)

// startClients launches a publisher (process 0) of topics news, x, y and
// other, in that order, and a subscriber of news (process 1), both with
// --http, against the directory at dirAddrs, which must have three groups
// and move no topic by itself: other shares news's group, so the
// subscriber filters its events. It returns the clients, their HTTP
// addresses and news's group.
func startClients(t *testing.T, ctx context.Context, dir string, dirAddrs []string) (*launch.Cluster, []string, string) {
	t.Helper()
	web, err := launch.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	cdir := filepath.Join(dir, "clients")
	directory := strings.Join(dirAddrs, ",")
	c, err := launch.Start(launch.Config{Binary: conclaveBinary(t), N: 2, Dir: cdir, Stdin: true,
		KeyFile: filepath.Join(dir, launch.KeyFileName), Args: func(i int, addrs []string) []string {
			common := []string{"--directory", directory, "--listen", addrs[i], "--log-dir", cdir, "--http", web[i]}
			if i == 0 {
				return append([]string{"publish", "--name", "pub", "--topic", "news", "--topic", "x", "--topic", "y",
					"--topic", "other", "--qos", "total"}, common...)
			}
			return append([]string{"subscribe", "--name", "sub", "--topic", "news"}, common...)
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			launchtest.Keep(t, cdir)
		}
	})
	if err := c.StartPeer(0); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitOutput(ctx, 0, "topic news: ", "topic other: "); err != nil {
		t.Fatal(err)
	}
	groups := map[string]string{}
	re := regexp.MustCompile(`^topic (\w+): QoS total, group (\w+)$`)
	for _, l := range c.Output(0) {
		if m := re.FindStringSubmatch(l); m != nil {
			groups[m[1]] = m[2]
		}
	}
	if groups["news"] == "" || groups["other"] != groups["news"] {
		t.Fatalf("news and other do not share a group: %v", groups)
	}
	if err := c.StartPeer(1); err != nil {
		t.Fatal(err)
	}
	return c, web, groups["news"]
}

// counted returns a match for WaitEvent that holds at the nth event ev of
// topic (any topic if ""): WaitEvent shows it each event once.
func counted(ev, topic string, n int) func(eventlog.Event) bool {
	seen := 0
	return func(e eventlog.Event) bool {
		if e.Ev == ev && (topic == "" || e.Str(eventlog.FieldTopic) == topic) {
			seen++
		}
		return seen == n
	}
}

// awaitEvent waits for an event of process i, which the process observed
// before it logged it (pubsub.Config.OnEvent): its metrics and status
// count it.
func awaitEvent(t *testing.T, ctx context.Context, c *launch.Cluster, i int, match func(eventlog.Event) bool) {
	t.Helper()
	if _, err := c.WaitEvent(ctx, i, match); err != nil {
		t.Fatalf("process %d: %v; it printed:\n%s", i, err, strings.Join(c.Output(i), "\n"))
	}
}

// TestPubSubHTTP starts a directory, a publisher and a subscriber with
// --http, publishes in two rounds, and reads after each the clients'
// /status and /metrics: the counts of published, delivered and filtered
// events grow with what flowed; the subscriber's group, view and
// directory leader are there, and its dashboard shows its topic.
func TestPubSubHTTP(t *testing.T) {
	dir := t.TempDir()
	d, _ := startDirectory(t, dir, func(int) []string { return []string{"--max-groups", "3", "--move-spacing", "-1"} })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, web, group := startClients(t, ctx, dir, d.Addrs())
	pub, sub := web[0], web[1]
	// Both in news's view before the first event.
	for i := range 2 {
		awaitEvent(t, ctx, c, i, func(e eventlog.Event) bool {
			ms, _ := e.Fields[eventlog.FieldMembers].([]any)
			return e.Ev == eventlog.PSView && len(ms) == 2
		})
	}
	awaitEvent(t, ctx, c, 1, func(e eventlog.Event) bool {
		l, _ := e.Int(eventlog.FieldLeader)
		return e.Ev == eventlog.PSDirLeader && l >= 0
	})

	news, other := 0, 0
	round := func(nOther, nNews int) {
		t.Helper()
		// other's events first: once the subscriber delivered news's, it
		// filtered other's (one publisher: in order).
		for k := range nOther {
			if err := c.Write(0, fmt.Sprintf("other o%d", other+k)); err != nil {
				t.Fatal(err)
			}
		}
		for k := range nNews {
			if err := c.Write(0, fmt.Sprintf("news n%d", news+k)); err != nil {
				t.Fatal(err)
			}
		}
		news, other = news+nNews, other+nOther
		awaitEvent(t, ctx, c, 1, counted(eventlog.PSDeliver, "news", news))
		awaitEvent(t, ctx, c, 0, counted(eventlog.PSPublish, "news", news))
		awaitEvent(t, ctx, c, 0, counted(eventlog.PSPublish, "", news+other))
	}
	check := func(addr, name string, want float64, labels ...string) {
		t.Helper()
		if got := metricValue(t, httpGet(t, addr, "/metrics"), name, labels...); got != want {
			t.Errorf("%s: %s%v is %v, want %v", addr, name, labels, got, want)
		}
	}
	for _, r := range []struct{ other, news int }{{2, 3}, {1, 4}} {
		round(r.other, r.news)
		check(sub, "conclave_pubsub_delivered_total", float64(news), "topic", "news")
		check(sub, "conclave_pubsub_filtered_total", float64(other), "topic", "other")
		check(sub, "conclave_messages_total", float64(other), "state", "filtered")
		check(sub, "conclave_pubsub_group_members", 2, "group", group)
		check(pub, "conclave_pubsub_published_total", float64(news), "topic", "news", "result", "ok")
		check(pub, "conclave_pubsub_published_total", float64(other), "topic", "other", "result", "ok")
		// Its latency is observed once Publish returned: by the last
		// ps_publish, every one before.
		if n := metricValue(t, httpGet(t, pub, "/metrics"), "conclave_pubsub_publish_latency_seconds"); n < float64(news+other-1) {
			t.Errorf("%v publish latencies, want at least %d", n, news+other-1)
		}

		var st pubsub.Status
		if err := json.Unmarshal([]byte(httpGet(t, sub, "/status")), &st); err != nil {
			t.Fatal(err)
		}
		want := []pubsub.TopicStatus{
			{Topic: "news", QoS: "total", Group: group, Role: pubsub.RoleSubscriber, Delivered: uint64(news)},
			{Topic: "other", Filtered: uint64(other)}}
		if st.Name != "sub" || !slices.Equal(st.Directory, d.Addrs()) || st.DirectoryLeader < 0 || !slices.Equal(st.Topics, want) {
			t.Errorf("the subscriber's /status: %+v, want topics %+v", st, want)
		}
		if len(st.Groups) != 1 || st.Groups[0].Group != group || len(st.Groups[0].Members) != 2 || !slices.Equal(st.Groups[0].Topics, []string{"news"}) {
			t.Errorf("the subscriber's groups: %+v", st.Groups)
		}
		var pst pubsub.Status
		if err := json.Unmarshal([]byte(httpGet(t, pub, "/status")), &pst); err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(pst.Topics, func(ts pubsub.TopicStatus) bool { return ts.Topic == "news" }); i < 0 ||
			pst.Topics[i].Published != uint64(news) || pst.Topics[i].Role != pubsub.RolePublisher {
			t.Errorf("the publisher's topics: %+v", pst.Topics)
		}
	}
	if l := metricValue(t, httpGet(t, sub, "/metrics"), "conclave_directory_leader"); l < 0 {
		t.Errorf("the subscriber knows directory leader %v", l)
	}
	page := httpGet(t, sub, "/")
	for _, want := range []string{fmt.Sprintf(`<tr data-topic="news" data-delivered="%d"><td>news</td><td>subscriber</td><td>total</td><td>%s</td>`, news, group),
		fmt.Sprintf(`<td class="num delivered">%d</td>`, news), `data-group="` + group + `"`, "topics news"} {
		if !strings.Contains(page, want) {
			t.Errorf("the subscriber's dashboard lacks %q", want)
		}
	}
}
