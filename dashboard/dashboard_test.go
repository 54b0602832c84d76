package dashboard

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/eventlog"
)

// fake is a process whose state the test changes.
type fake struct {
	mu sync.Mutex
	st State
}

func (f *fake) state(context.Context) State {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	if f.st.Peer != nil {
		p := *f.st.Peer
		p.Peers = append([]PeerInfo(nil), p.Peers...)
		st.Peer = &p
	}
	return st
}

func (f *fake) set(leader int, up1 bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Peer.Leader = leader
	f.st.Peer.Peers[0].Up = up1
	f.st.Peer.Peers[0].Connected = up1
}

func newFake() *fake {
	return &fake{st: State{Title: "peer-2", Kind: "peer", Addr: "127.0.0.1:7002", Cluster: "c",
		Peer: &Peer{ID: 2, Incarnation: 42, Leader: 1, Peers: []PeerInfo{
			{ID: 1, Up: true, Connected: true, Incarnation: 7, SilenceMS: 3.25},
			{ID: 3, Up: true, Connected: true, Incarnation: 8}}}}}
}

func get(t *testing.T, url string) string {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, r.StatusCode, b)
	}
	return string(b)
}

// The page reads without JavaScript: the leader, the peers and their
// incarnations are in the HTML.
func TestPage(t *testing.T) {
	f := newFake()
	d := New(Config{State: f.state})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	body := get(t, srv.URL+"/")
	for _, want := range []string{`<title>peer-2 · conclave</title>`, `data-leader="1">peer 1</span>`,
		`<tr data-peer="1" data-up="true">`, `<td class="num">7</td>`, `3.2`, `new EventSource("events")`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q:\n%s", want, body)
		}
	}
	if r, err := http.Get(srv.URL + "/nothing"); err != nil || r.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing: %v %v, want 404", r.StatusCode, err)
	}
}

// The stream sends the state at once, then again after an event that
// changed it: the new leader, the peer down with its cause.
func TestEventsStreamUpdates(t *testing.T) {
	f := newFake()
	d := New(Config{State: f.state, Refresh: time.Hour})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events", nil)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if ct := r.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	br := bufio.NewReader(r.Body)
	first := readEvent(t, br)
	if !strings.Contains(first, `data-leader="1"`) || !strings.Contains(first, `data-peer="1" data-up="true"`) {
		t.Fatalf("the first event does not show leader 1 and peer 1 up:\n%s", first)
	}
	ts := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	f.set(2, false)
	d.Observe(eventlog.Event{TS: ts, Node: "peer-2", Ev: eventlog.PeerDown, Fields: map[string]any{
		eventlog.FieldPeer: 1, eventlog.FieldCause: eventlog.CauseConnClosed, eventlog.FieldReason: "eof"}})
	d.Observe(eventlog.Event{TS: ts, Node: "peer-2", Ev: eventlog.LeaderChange, Fields: map[string]any{
		eventlog.FieldLeader: 2, eventlog.FieldPrev: 1}})
	// A burst of events may be sent in more than one update: the last
	// shows them all.
	wants := []string{`data-leader="2"`, `data-peer="1" data-up="false"`, `conn_closed: eof`,
		`leader is now peer 2 (was peer 1)`, `peer 1 is down (conn_closed: eof)`}
	var second string
	for n := 0; ; n++ {
		second = readEvent(t, br)
		missing := 0
		for _, want := range wants {
			if !strings.Contains(second, want) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if n == 2 {
			t.Fatalf("the updates never showed %q; the last:\n%s", wants, second)
		}
	}
	// Newest first.
	if strings.Index(second, "leader is now") > strings.Index(second, "peer 1 is down") {
		t.Errorf("the recent events are not newest first:\n%s", second)
	}
}

// readEvent reads one server-sent event and returns its data.
func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if len(data) > 0 {
				return strings.Join(data, "\n")
			}
			continue
		}
		d, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not a data line: %q", line)
		}
		data = append(data, d)
	}
}

// What the process names is escaped, the directory's tables are drawn.
func TestDirectoryEscaped(t *testing.T) {
	d := New(Config{State: func(context.Context) State {
		return State{Title: "dir-0", Kind: "directory", Dir: &Directory{Role: "leader", Term: 3, Leader: 0,
			Topics: []directory.TopicInfo{{Topic: "<script>x</script>", QoS: "total", Group: "g0", Delivered: 9, Filtered: 1, Rate: 12.5}},
			Groups: []directory.GroupInfo{{Name: "g0", QoS: "total", Topics: []string{"a", "b"}, Delivered: 9, Filtered: 1, Waste: 0.1}}}}
	}})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	body := get(t, srv.URL+"/")
	if strings.Contains(body, "<script>x") {
		t.Errorf("a topic's name is not escaped:\n%s", body)
	}
	for _, want := range []string{`&lt;script&gt;x&lt;/script&gt;`, `12.5`, `10.0%`, `a b`, `id="role" class="big">leader`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestSSEFraming(t *testing.T) {
	got := string(sse([]byte("a\nb\rc")))
	if want := "data: a\ndata: b c\n\n"; got != want {
		t.Errorf("sse = %q, want %q", got, want)
	}
}

// A pub/sub client's page: its topics with their role, group and counts,
// the directory's leader, its groups with their topics, the moves under
// way, and the events of the client among the recent ones.
func TestPubSubPage(t *testing.T) {
	d := New(Config{State: func(context.Context) State {
		return State{Title: "sub", Kind: "pubsub", Addr: "127.0.0.1:9",
			PubSub: &PubSub{Directory: []string{"127.0.0.1:1", "127.0.0.1:2"}, DirLeader: 1, Topics: []Topic{
				{Topic: "news", QoS: "total", Group: "g0", Role: "subscriber", Delivered: 41, Filtered: 0, Rate: 2.5},
				{Topic: "<b>", Filtered: 7}},
				Moves: []Move{{Topic: "news", Kind: "subscriber", From: "g0", To: "g2"}}},
			Groups: []Group{{Group: "g0", Member: "sub.1", Stack: "total", View: "2@pub.1", Members: []string{"pub.1", "sub.1"},
				Topics: []string{"news"}}}}
	}})
	d.Observe(eventlog.Event{Ev: eventlog.PSDirLeader, Fields: map[string]any{eventlog.FieldLeader: 1, eventlog.FieldPrev: -1}})
	d.Observe(eventlog.Event{Ev: eventlog.PSPublish, Fields: map[string]any{eventlog.FieldTopic: "news", eventlog.FieldResult: "ok"}})
	d.Observe(eventlog.Event{Ev: eventlog.PSSubscribe, Fields: map[string]any{eventlog.FieldTopic: "news", eventlog.FieldGroup: "g0"}})
	d.Observe(eventlog.Event{Ev: eventlog.PSPublish, Fields: map[string]any{eventlog.FieldTopic: "news", eventlog.FieldResult: "lost"}})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	body := get(t, srv.URL+"/")
	for _, want := range []string{
		`<tr data-topic="news" data-delivered="41"><td>news</td><td>subscriber</td><td>total</td><td>g0</td>`,
		`<td class="num delivered">41</td>`, `2.5`,
		`<td>&lt;b&gt;</td><td><span class="muted">filtered only</span>`, `<td class="num filtered">7</td>`,
		`data-leader="1">dir-1</span>`, `directory 127.0.0.1:1 127.0.0.1:2`,
		`<tr><td>news</td><td>subscriber</td><td>g0</td><td>g2</td></tr>`,
		`data-group="g0"`, `topics news`,
		`the directory&#39;s leader is now dir-1 (was none)`, `publish of topic news: lost`, `subscribed to topic news in group g0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "publish of topic news: ok") || strings.Contains(body, "sent 0") {
		t.Errorf("the page lists what it should not:\n%s", body)
	}
}
