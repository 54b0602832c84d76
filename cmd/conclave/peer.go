package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/conclave/conclave/dashboard"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/metrics"
	"github.com/conclave/conclave/node"
	"github.com/conclave/conclave/peer"
)

func runPeer(args []string) error {
	fs := newFlags("peer", "peer --id I --peers A0,A1,...,AN-1 [flags]")
	var cfg node.Config
	id := fs.Int("id", -1, "this peer's id, from 0 to N-1 (required)")
	peers := fs.String("peers", "", "comma-separated host:port of every peer, in id order; this peer listens on its own entry (required)")
	fs.StringVar(&cfg.LogDir, "log-dir", "conclave-logs", "directory for the event log peer-<id>.jsonl (empty: no log)")
	httpAddr := fs.String("http", "", httpFlagHelp)
	fs.DurationVar(&cfg.Peer.Heartbeat, "heartbeat", peer.DefaultHeartbeat, "interval between heartbeats to each peer")
	fs.DurationVar(&cfg.Peer.SuspectAfter, "suspect-after", peer.DefaultSuspectAfter, "declare a peer down after this long without a heartbeat (a hung process or a partition)")
	noticeDelay := fs.Duration("notice-delay", peer.DefaultNoticeDelay, "wait this long after a change of leader before sending the urgent notices, which name the leader of that moment (0: at once)")
	fs.StringVar(&cfg.Cluster, "cluster", node.DefaultCluster, "cluster name; peers of another cluster are refused")
	fs.BoolVar(&cfg.Peer.Quorum, "quorum", false, "recognise a leader only while a majority of the peers is seen correct")
	fs.BoolVar(&cfg.LogHeartbeats, "log-heartbeats", false, "log every heartbeat (default: the first on each connection and every 50th)")
	fs.Uint64Var(&cfg.Incarnation, "incarnation", 0, "incarnation number (default: start time in nanoseconds, so a restart is a newer incarnation)")
	eventsFD := eventsFlag(fs)
	keys := addKeyFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *peers == "" {
		return usagef("--peers is required: the host:port of every peer, in id order")
	}
	if *id < 0 {
		return usagef("--id is required and must be 0 or more")
	}
	for _, err := range []error{positive("heartbeat", cfg.Peer.Heartbeat), positive("suspect-after", cfg.Peer.SuspectAfter)} {
		if err != nil {
			return err
		}
	}
	if cfg.Peer.NoticeDelay = *noticeDelay; *noticeDelay == 0 {
		cfg.Peer.NoticeDelay = -1
	} else if *noticeDelay < 0 {
		return usagef("--notice-delay must be 0 or more, not %v", *noticeDelay)
	}
	if *httpAddr != "" {
		if err := checkAddr("http", *httpAddr, true); err != nil {
			return err
		}
	}
	if err := checkDir("log-dir", cfg.LogDir); err != nil {
		return err
	}
	cfg.Addrs = strings.Split(*peers, ",")
	for i, a := range cfg.Addrs {
		cfg.Addrs[i] = strings.TrimSpace(a)
	}
	cfg.Peer.ID = *id
	cfg.Stdout = os.Stdout
	key, err := keys.load(os.Stderr)
	if err != nil {
		return err
	}
	cfg.Key, cfg.Insecure, cfg.TLS = key, *keys.insecure, *keys.tls
	events, err := openEvents(*eventsFD, os.Stdout, os.Stderr)
	if err != nil {
		return err
	}
	if events != nil {
		defer events.s.Close() // on an early return; the end reports its Err
		cfg.Events = events.s
		if *eventsFD == 1 {
			cfg.Stdout = nil
		}
	}
	var n *node.Node
	var obs *observers
	if *httpAddr != "" {
		obs = newObservers(metrics.Peer, dashboard.Config{State: func(context.Context) dashboard.State { return peerState(n.Status()) }})
		cfg.OnEvent = obs.observe(cfg.OnEvent)
	}
	n, err = node.New(cfg)
	if err != nil {
		var ne *node.ConfigError
		if errors.As(err, &ne) {
			return usageError{err.Error()}
		}
		return unprotected(err)
	}
	if obs != nil {
		stop, err := obs.serve(*httpAddr, n.Handler())
		if err != nil {
			return err
		}
		defer stop()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var errs []error
	if err := n.Run(ctx); err != nil {
		var lost *eventlog.LostError
		if errors.As(err, &lost) {
			err = fmt.Errorf("event log: %w", err)
		}
		errs = append(errs, fmt.Errorf("peer %d: %w", *id, err))
	}
	if events != nil {
		errs = append(errs, events.Close())
	}
	return errors.Join(errs...)
}

// peerState is what the dashboard shows of a peer.
func peerState(st node.Status) dashboard.State {
	p := &dashboard.Peer{ID: st.ID, Incarnation: st.Incarnation, Leader: st.Leader, Quorum: st.Quorum}
	for _, o := range st.Peers {
		p.Peers = append(p.Peers, dashboard.PeerInfo{ID: o.ID, Up: o.Up, Connected: o.Connected,
			Incarnation: o.Incarnation, SilenceMS: o.SilenceMS})
	}
	return dashboard.State{Title: st.Node, Kind: "peer", Addr: st.Addr, Cluster: st.Cluster, Peer: p}
}
