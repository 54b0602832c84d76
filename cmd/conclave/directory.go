package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/conclave/conclave/dashboard"
	"github.com/conclave/conclave/dirclient"
	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/directory/boltstore"
	"github.com/conclave/conclave/dirnode"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/metrics"
	"github.com/conclave/conclave/transport"
)

// defaultMaxGroups is the number of groups a directory hands out by
// default.
const defaultMaxGroups = 16

// storeFile is the name of a replica's store in its data directory.
const storeFile = "directory.db"

func runDirectory(args []string) error {
	fs := newFlags("directory", "directory --id I --peers A0,A1,A2 --data DIR [flags]")
	id := fs.Int("id", -1, "this replica's id, from 0 to N-1 (required)")
	peers := fs.String("peers", "", "comma-separated host:port of the 3 or 5 replicas, in id order; this replica listens on its own entry (required)")
	data := fs.String("data", "", "data directory: the replica's durable state, "+storeFile+" (required; made if missing)")
	maxGroups := fs.Int("max-groups", defaultMaxGroups, "the most groups the directory hands out (above the number of shipped QoS); every replica must use the same")
	cluster := fs.String("cluster", dirnode.DefaultCluster, "directory name; replicas and clients of another are refused")
	httpAddr := fs.String("http", "", httpFlagHelp)
	logDir := fs.String("log-dir", "conclave-logs", "directory for the event log dir-<id>.jsonl (empty: no log)")
	tick := fs.Duration("tick", directory.DefaultTick, "Raft's tick: heartbeats go every tick, elections time out after 10 to 20 ticks")
	moveSpacing := fs.Int("move-spacing", directory.DefaultMoveSpacing, "the least log entries between two moves of topics to groups of less waste "+
		"the directory decides itself (negative: none; conclave move still moves); every replica must use the same")
	eventsFD := eventsFlag(fs)
	keys := addKeyFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case *peers == "":
		return usagef("--peers is required: the host:port of every replica, in id order")
	case *id < 0:
		return usagef("--id is required and must be 0 or more")
	case *data == "":
		return usagef("--data is required: the directory where this replica keeps its state")
	}
	if err := positive("tick", *tick); err != nil {
		return err
	}
	scfg := directory.StateConfig{MaxGroups: *maxGroups, MoveSpacing: *moveSpacing}
	if err := scfg.Validate(); err != nil {
		return usagef("--max-groups: %v", err)
	}
	addrs := splitList(*peers)
	for _, a := range addrs {
		if err := checkAddr("peers", a, false); err != nil {
			return err
		}
	}
	// The checks that need no store, before anything is made on disk.
	if err := (&dirnode.Config{ID: *id, Peers: addrs, Store: &directory.MemStore{}, App: &directory.State{}}).Validate(); err != nil {
		return usagef("%v", err)
	}
	if *httpAddr != "" {
		if err := checkAddr("http", *httpAddr, true); err != nil {
			return err
		}
	}
	for _, d := range []struct{ flag, dir string }{{"data", *data}, {"log-dir", *logDir}} {
		if err := checkDir(d.flag, d.dir); err != nil {
			return err
		}
	}
	key, err := keys.load(os.Stderr)
	if err != nil {
		return err
	}
	events, err := openEvents(*eventsFD, os.Stdout, os.Stderr)
	if err != nil {
		return err
	}
	state, err := directory.NewState(scfg)
	if err != nil {
		return usagef("%v", err)
	}
	cfg := dirnode.Config{ID: *id, Peers: addrs, Cluster: *cluster, App: state, Describe: directory.Describe,
		Tick: *tick, Key: key, Insecure: *keys.insecure, TLS: *keys.tls}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	store, err := boltstore.Open(filepath.Join(*data, storeFile), nil)
	if err != nil {
		return fmt.Errorf("replica %d: %w", *id, err)
	}
	defer store.Close()
	cfg.Store = store
	if *logDir != "" {
		if err := os.MkdirAll(*logDir, 0o755); err != nil {
			return fmt.Errorf("event log: %w", err)
		}
		f, err := dirnode.OpenLog(*logDir, *id)
		if err != nil {
			return fmt.Errorf("event log: %w", err)
		}
		defer f.Close()
		cfg.LogTo = f
	}
	human := os.Stdout
	if *eventsFD == 1 {
		human = nil
	}
	if events != nil {
		defer events.s.Close() // on an early return; the end reports its Err
		cfg.Events = events.s
	}
	if human != nil {
		cfg.OnEvent = func(e eventlog.Event) { printDirEvent(human, e) }
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	var srv *dirnode.Server
	var obs *observers
	if *httpAddr != "" {
		obs = newObservers(metrics.Directory, dashboard.Config{State: func(ctx context.Context) dashboard.State { return dirState(ctx, srv, state, *cluster) }})
		cfg.OnEvent = obs.observe(cfg.OnEvent)
	}
	srv, err = dirnode.Start(cfg)
	if err != nil {
		if errors.Is(err, directory.ErrIdentity) {
			return usagef("--data %s: %v", *data, err)
		}
		return unprotected(fmt.Errorf("replica %d: %w", *id, err))
	}
	if obs != nil {
		obs.metrics.GaugeFunc("directory_commit_index", "Log index of the last entry this directory replica knows committed.",
			func() float64 { return float64(srv.Status().Commit) })
		stop, err := obs.serve(*httpAddr, dirStatusHandler(srv, state, *cluster))
		if err != nil {
			srv.Close()
			return err
		}
		defer stop()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case <-srv.Done():
	}
	var errs []error
	if err := srv.Close(); err != nil {
		errs = append(errs, fmt.Errorf("replica %d: %w", *id, err))
	}
	if events != nil {
		errs = append(errs, events.Close())
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(a))
	}
	return out
}

// printDirEvent prints the human line of a replica's event, if it has one.
func printDirEvent(w io.Writer, e eventlog.Event) {
	ts := e.TS.Local().Format("15:04:05.000")
	switch e.Ev {
	case eventlog.DirStart:
		fmt.Fprintf(w, "%s %s: listening on %s, %d replicas, restored up to index %v, term %v\n", ts, e.Node,
			e.Fields[eventlog.FieldAddr], e.Fields[eventlog.FieldReplicas], e.Fields[eventlog.FieldApplied], e.Fields[eventlog.FieldTerm])
	case eventlog.DirRole:
		leader := "none"
		if l, ok := e.Int(eventlog.FieldLeader); ok && l >= 0 {
			leader = fmt.Sprintf("replica %d", l)
		}
		fmt.Fprintf(w, "%s %s: %s in term %v, leader %s\n", ts, e.Node, e.Fields[eventlog.FieldRole], e.Fields[eventlog.FieldTerm], leader)
	case eventlog.DirStop:
		if msg := e.Str(eventlog.FieldError); msg != "" {
			fmt.Fprintf(w, "%s %s: stopped: %s\n", ts, e.Node, msg)
		} else {
			fmt.Fprintf(w, "%s %s: stopped\n", ts, e.Node)
		}
	}
}

// dirStatus is what a replica's GET /status returns.
type dirStatus struct {
	dirnode.Status
	Node    string                `json:"node"`
	Addr    string                `json:"addr"`
	Cluster string                `json:"cluster"`
	Topics  []directory.TopicInfo `json:"topics"`
	Groups  []directory.GroupInfo `json:"groups"`
}

// dirState is what the dashboard shows of a replica.
func dirState(ctx context.Context, srv *dirnode.Server, state *directory.State, cluster string) dashboard.State {
	st := srv.Status()
	d := &dashboard.Directory{ID: st.ID, Role: st.Role, Term: st.Term, Leader: st.Leader, Commit: st.Commit, Applied: st.Applied}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var topics []directory.TopicInfo
	var groups []directory.GroupInfo
	if srv.Do(ctx, func() { topics, groups = state.Topics(), state.Groups() }) {
		d.Topics, d.Groups = topics, groups // only once read: a late read writes what nobody reads
	}
	return dashboard.State{Title: dirnode.Name(st.ID), Kind: "directory", Addr: srv.Addr(), Cluster: cluster, Dir: d}
}

func dirStatusHandler(srv *dirnode.Server, state *directory.State, cluster string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st := dirStatus{Status: srv.Status(), Addr: srv.Addr(), Cluster: cluster}
		st.Node = dirnode.Name(st.ID)
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		srv.Do(ctx, func() { st.Topics, st.Groups = state.Topics(), state.Groups() })
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	})
	return mux
}

// dirClientFlags are the flags of the commands that talk to the
// directory as its clients (topics, move).
type dirClientFlags struct {
	dir, cluster *string
	timeout      *time.Duration
	keys         keyFlags
}

func addDirClientFlags(fs *flag.FlagSet) dirClientFlags {
	return dirClientFlags{
		dir:     fs.String("directory", "", "comma-separated host:port of the directory's replicas, in id order (required)"),
		cluster: fs.String("cluster", dirnode.DefaultCluster, "the directory's name"),
		timeout: fs.Duration("timeout", 10*time.Second, "give up after this long without an answer from a majority"),
		keys:    addKeyFlags(fs),
	}
}

// client checks the flags and returns a client of the directory, and a
// context bounded by --timeout.
func (f dirClientFlags) client() (*dirclient.Client, context.Context, func(), error) {
	if *f.dir == "" {
		return nil, nil, nil, usagef("--directory is required: the host:port of the directory's replicas")
	}
	if err := positive("timeout", *f.timeout); err != nil {
		return nil, nil, nil, err
	}
	c, err := newDirClient(*f.dir, *f.cluster, f.keys)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout)
	return c, ctx, func() { cancel(); c.Close() }, nil
}

func runTopics(args []string) error {
	fs := newFlags("topics", "topics --directory A0,A1,A2 [flags]")
	asJSON := fs.Bool("json", false, "print the listing as JSON")
	df := addDirClientFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	c, ctx, done, err := df.client()
	if err != nil {
		return err
	}
	defer done()
	l, err := c.List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(l)
	}
	printListing(os.Stdout, l)
	return nil
}

func runMove(args []string) error {
	fs := newFlags("move", "move --directory A0,A1,A2 --topic T --group G [flags]")
	topic := fs.String("topic", "", "the topic to move (required)")
	group := fs.String("group", "", "the group to move it to: one of its QoS, or a free one (required)")
	df := addDirClientFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case *topic == "":
		return usagef("--topic is required: the topic to move")
	case *group == "":
		return usagef("--group is required: the group to move the topic to")
	}
	c, ctx, done, err := df.client()
	if err != nil {
		return err
	}
	defer done()
	r, err := c.Move(ctx, *topic, *group)
	if err != nil {
		return err
	}
	fmt.Printf("topic %s: moved from %s to %s (move %d); its clients follow it\n", *topic, r.From, r.Group, r.Moves)
	return nil
}

// newDirClient returns a client of the directory at the comma-separated
// addresses list.
func newDirClient(list, cluster string, keys keyFlags) (*dirclient.Client, error) {
	addrs := splitList(list)
	for _, a := range addrs {
		if err := checkAddr("directory", a, false); err != nil {
			return nil, err
		}
	}
	*keys.insecure = true // a client listens nowhere: no note about loopback
	key, err := keys.load(io.Discard)
	if err != nil {
		return nil, err
	}
	var nw transport.Network = transport.TCP{}
	if *keys.tls {
		t, err := transport.NewTLS(nil)
		if err != nil {
			return nil, err
		}
		nw = t
	}
	return dirclient.New(dirclient.Config{Replicas: addrs, Cluster: cluster, Key: key, Network: nw})
}

// printListing prints the topics and the groups that carry a QoS, with
// what the clients' reports measured: each topic's events per second and
// the events delivered and filtered, each group's waste ratio ("-" where
// nothing was counted); and the group each topic last moved from, with
// the publishers yet to switch.
func printListing(w io.Writer, l directory.Listing) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tQOS\tGROUP\tPUBLISHERS\tSUBSCRIBERS\tEVENTS/S\tDELIVERED\tFILTERED\tMOVED")
	for _, t := range l.Topics {
		rate := "-"
		if t.Delivered+t.Filtered > 0 {
			rate = fmt.Sprintf("%.1f", t.Rate)
		}
		moved := "-"
		if t.Moves > 0 {
			moved = "from " + t.From
			if len(t.Pending) > 0 {
				moved += fmt.Sprintf(", %d to switch", len(t.Pending))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%d\t%d\t%s\n", t.Topic, t.QoS, t.Group, len(t.Publishers), len(t.Subscribers),
			rate, t.Delivered, t.Filtered, moved)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tQOS\tTOPICS\tWASTE\tCONTACTS")
	free := 0
	for _, g := range l.Groups {
		if g.QoS == "" {
			free++
			continue
		}
		waste := "-"
		if g.Delivered+g.Filtered > 0 {
			waste = fmt.Sprintf("%.1f%%", 100*g.Waste)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Name, g.QoS, strings.Join(g.Topics, " "), waste, strings.Join(g.Contacts, " "))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d of %d groups free\n", free, len(l.Groups))
}
