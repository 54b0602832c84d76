// Package dashboard serves a live web page of a conclave process on its
// --http address: GET / is the page (html/template, embedded, no
// external assets) and GET /events a stream of server-sent events, each
// the page's state section rendered anew whenever the process logs an
// event or a second passes and it changed. The page replaces its state
// section with each one, so it updates without reload, and it still
// reads without JavaScript.
//
// The state comes from the process (a State function); a Dashboard also
// observes the process's events (Observe, a runtime's OnEvent) to
// remember what no status holds: why and when each peer went down, and
// the last events.
package dashboard

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/eventlog"
)

//go:embed page.html
var files embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"ms":      func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"pct":     func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" },
	"rate":    func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"clock":   func(t time.Time) string { return t.Local().Format("15:04:05.000") },
	"join":    strings.Join,
	"peer":    peerName,
	"replica": replicaName,
}).ParseFS(files, "page.html"))

// State is what the page shows of a process; the process fills the
// sections that apply to it.
type State struct {
	// Title names the process: "peer-0", "dir-1", a member's name.
	Title string
	// Kind says what it is: "peer", "group", "directory", "pubsub".
	Kind    string
	Addr    string
	Cluster string
	Peer    *Peer
	Groups  []Group
	Dir     *Directory
	PubSub  *PubSub
	// Events are the last events logged, newest first (Dashboard fills
	// them in).
	Events []Event
}

// Peer is a peer's view of its cluster.
type Peer struct {
	ID          int
	Incarnation uint64
	Leader      int // -1: none
	Quorum      bool
	Peers       []PeerInfo
}

// PeerInfo is what a peer knows of another.
type PeerInfo struct {
	ID          int
	Up          bool
	Connected   bool
	Incarnation uint64
	SilenceMS   float64
	// Cause and Reason say why it last went down, at Since (filled in by
	// Dashboard from the events it observed).
	Cause, Reason string
	Since         time.Time
}

// Group is a group member's view.
type Group struct {
	Group   string
	Member  string
	Stack   string
	View    string
	Members []string
	Flushed bool
	// Sent and Delivered count the member's messages.
	Sent, Delivered uint64
	// Topics, for a pub/sub client's member, are the client's topics in
	// the group (the page shows them instead of Sent and Delivered).
	Topics []string
}

// Directory is a directory replica's state.
type Directory struct {
	ID      int
	Role    string
	Term    uint64
	Leader  int // -1: none
	Commit  uint64
	Applied uint64
	Topics  []directory.TopicInfo
	Groups  []directory.GroupInfo
}

// PubSub is a pub/sub client's topics and the moves of its topics under
// way; its groups are State.Groups.
type PubSub struct {
	// Directory holds the addresses of the directory's replicas, and
	// DirLeader the one its last answer named as leader (-1: none).
	Directory []string
	DirLeader int
	Topics    []Topic
	Moves     []Move
}

// Topic is what a pub/sub client counted of a topic.
type Topic struct {
	Topic string
	// QoS and Group are the topic's QoS and group, Role the client's role
	// in it (publisher, subscriber, or both); all empty for a topic whose
	// events the client only filters.
	QoS, Group, Role               string
	Published, Delivered, Filtered uint64
	// Rate is events (delivered and filtered) per second, over the last
	// interval.
	Rate float64
}

// Move is the move under way of a client's publisher or subscription
// (Kind) of a topic from group From to group To.
type Move struct {
	Topic, Kind, From, To string
}

// Event is one line of the recent events.
type Event struct {
	TS   time.Time
	Ev   string
	Text string
}

// Config configures a Dashboard.
type Config struct {
	// State returns the process's state now; it is called from the HTTP
	// handlers' goroutines.
	State func(ctx context.Context) State
	// Refresh is how often an open page is sent the state if it changed
	// without an event (default DefaultRefresh).
	Refresh time.Duration
	// Settle is how long after an event the state is read, so that a
	// burst of events makes one update (default DefaultSettle).
	Settle time.Duration
	// Recent is how many of the last events the page lists (default
	// DefaultRecent).
	Recent int
}

// Defaults of Config.
const (
	DefaultRefresh = time.Second
	DefaultSettle  = 30 * time.Millisecond
	DefaultRecent  = 12
)

// Dashboard serves the page of one process.
type Dashboard struct {
	cfg Config

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every event
	down    map[int]PeerInfo
	recent  []Event // a ring
	next    int
}

// New returns a dashboard of the process whose state cfg.State reads.
func New(cfg Config) *Dashboard {
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	if cfg.Recent <= 0 {
		cfg.Recent = DefaultRecent
	}
	return &Dashboard{cfg: cfg, changed: make(chan struct{}), down: map[int]PeerInfo{}}
}

// Observe notes an event of the process and wakes the open pages. It does
// not block: it may be a runtime's OnEvent.
func (d *Dashboard) Observe(e eventlog.Event) {
	text := describe(e)
	if text == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch e.Ev {
	case eventlog.PeerDown:
		p, _ := e.Int(eventlog.FieldPeer)
		d.down[p] = PeerInfo{Cause: e.Str(eventlog.FieldCause), Reason: e.Str(eventlog.FieldReason), Since: e.TS}
	case eventlog.PeerUp:
		p, _ := e.Int(eventlog.FieldPeer)
		d.down[p] = PeerInfo{Since: e.TS}
	}
	ev := Event{TS: e.TS, Ev: e.Ev, Text: text}
	if len(d.recent) < d.cfg.Recent {
		d.recent = append(d.recent, ev)
	} else {
		d.recent[d.next] = ev
	}
	d.next = (d.next + 1) % d.cfg.Recent
	close(d.changed)
	d.changed = make(chan struct{})
}

// describe is an event's line on the page, or "" for events not listed
// (heartbeats, deliveries: too many).
func describe(e eventlog.Event) string {
	f := func(k string) string { return fmt.Sprint(e.Fields[k]) }
	switch e.Ev {
	case eventlog.LeaderChange:
		l, _ := e.Int(eventlog.FieldLeader)
		p, _ := e.Int(eventlog.FieldPrev)
		return "leader is now " + peerName(l) + " (was " + peerName(p) + ")"
	case eventlog.PeerUp:
		return "peer " + f(eventlog.FieldPeer) + " is up"
	case eventlog.PeerDown:
		return "peer " + f(eventlog.FieldPeer) + " is down (" + f(eventlog.FieldCause) + ": " + f(eventlog.FieldReason) + ")"
	case eventlog.UrgentRecv:
		return "urgent notice from peer " + f(eventlog.FieldFrom) + ": leader " + f(eventlog.FieldLeader)
	case eventlog.ConnRejected, eventlog.ConnRefused:
		return "connection from " + f(eventlog.FieldAddr) + " refused: " + f(eventlog.FieldReason)
	case eventlog.View:
		s := "view " + f(eventlog.FieldView) + ": " + fmt.Sprint(e.Fields[eventlog.FieldMembers])
		if fl, _ := e.Fields[eventlog.FieldFlushed].(bool); fl {
			s += " (through a flush)"
		}
		return s
	case eventlog.Suspect:
		return "suspects " + f(eventlog.FieldOf) + " (" + f(eventlog.FieldCause) + ")"
	case eventlog.DirRole:
		l, _ := e.Int(eventlog.FieldLeader)
		return f(eventlog.FieldRole) + " in term " + f(eventlog.FieldTerm) + ", leader " + replicaName(l)
	case eventlog.DirApply:
		s := "applied " + f(eventlog.FieldIndex)
		if op := e.Str(eventlog.FieldOp); op != "" {
			s += ": " + op + " " + e.Str(eventlog.FieldTopic) + " " + e.Str(eventlog.FieldResult)
		}
		return s
	case eventlog.PSView:
		return "group " + f(eventlog.FieldGroup) + " view " + f(eventlog.FieldView)
	case eventlog.PSMove:
		return f(eventlog.FieldKind) + " of topic " + f(eventlog.FieldTopic) + " moved from " + f(eventlog.FieldPrev) + " to " +
			f(eventlog.FieldGroup) + ": " + f(eventlog.FieldResult)
	case eventlog.PSDirLeader:
		l, _ := e.Int(eventlog.FieldLeader)
		p, _ := e.Int(eventlog.FieldPrev)
		return "the directory's leader is now " + replicaName(l) + " (was " + replicaName(p) + ")"
	case eventlog.PSPublish:
		if r := e.Str(eventlog.FieldResult); r != "ok" {
			return "publish of topic " + f(eventlog.FieldTopic) + ": " + r + " " + e.Str(eventlog.FieldError)
		}
	case eventlog.PSAnnounce:
		return "announced topic " + f(eventlog.FieldTopic) + " (QoS " + f(eventlog.FieldQoS) + ", group " + f(eventlog.FieldGroup) + ")"
	case eventlog.PSSubscribe:
		return "subscribed to topic " + f(eventlog.FieldTopic) + " in group " + f(eventlog.FieldGroup)
	case eventlog.PSUnsub:
		s := "unsubscribed from topic " + f(eventlog.FieldTopic) + " in group " + f(eventlog.FieldGroup)
		if r := e.Str(eventlog.FieldReason); r != "" {
			s += ": " + r
		}
		return s
	case eventlog.PSLeave:
		return "left group " + f(eventlog.FieldGroup) + ": " + f(eventlog.FieldResult)
	case eventlog.Start, eventlog.Stop, eventlog.DirStart, eventlog.DirStop, eventlog.Left:
		return e.Ev
	}
	return ""
}

func peerName(id int) string {
	if id < 0 {
		return "none"
	}
	return "peer " + strconv.Itoa(id)
}

func replicaName(id int) string {
	if id < 0 {
		return "none"
	}
	return "dir-" + strconv.Itoa(id)
}

// state reads the process's state and adds what the dashboard observed.
func (d *Dashboard) state(ctx context.Context) State {
	st := d.cfg.State(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	if st.Peer != nil {
		for i, p := range st.Peer.Peers {
			if o, ok := d.down[p.ID]; ok {
				p.Cause, p.Reason, p.Since = o.Cause, o.Reason, o.Since
				if p.Up {
					p.Cause, p.Reason = "", ""
				}
			}
			st.Peer.Peers[i] = p
		}
	}
	n := len(d.recent)
	for i := 0; i < n; i++ {
		st.Events = append(st.Events, d.recent[(d.next-1-i+2*n)%n])
	}
	return st
}

// render renders the state section.
func (d *Dashboard) render(ctx context.Context) ([]byte, error) {
	var b bytes.Buffer
	err := page.ExecuteTemplate(&b, "state", d.state(ctx))
	return b.Bytes(), err
}

// Handler serves GET / (the page) and GET /events (its updates); mount it
// on a mux beside /status and /metrics.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.servePage)
	mux.HandleFunc("GET /events", d.serveEvents)
	return mux
}

func (d *Dashboard) servePage(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	if err := page.Execute(&b, d.state(r.Context())); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
}

// serveEvents streams the state section as server-sent events: at once,
// then after each burst of events and at each refresh if it changed.
func (d *Dashboard) serveEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	ctx := r.Context()
	tick := time.NewTicker(d.cfg.Refresh)
	defer tick.Stop()
	var last []byte
	for {
		d.mu.Lock()
		changed := d.changed
		d.mu.Unlock()
		b, err := d.render(ctx)
		if err != nil {
			return
		}
		if !bytes.Equal(b, last) {
			if _, err := w.Write(sse(b)); err != nil {
				return
			}
			fl.Flush()
			last = b
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-changed:
			settle := time.NewTimer(d.cfg.Settle)
			select {
			case <-ctx.Done():
				settle.Stop()
				return
			case <-settle.C:
			}
		}
	}
}

// sse frames b as one server-sent event: a data line per line of b.
func sse(b []byte) []byte {
	var out bytes.Buffer
	b = bytes.ReplaceAll(b, []byte("\r"), []byte(" "))
	for _, line := range bytes.Split(b, []byte("\n")) {
		out.WriteString("data: ")
		out.Write(line)
		out.WriteByte('\n')
	}
	out.WriteByte('\n')
	return out.Bytes()
}
