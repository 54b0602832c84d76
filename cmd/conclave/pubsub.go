package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/conclave/conclave/dirclient"
	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/group"
	"github.com/conclave/conclave/layers"
	"github.com/conclave/conclave/pubsub"
	"github.com/conclave/conclave/transport"
)

// pubsubCmd is one run of "conclave publish" or "conclave subscribe": its
// streams are parameters so tests can drive it.
type pubsubCmd struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func runPublish(args []string) error {
	return pubsubCmd{os.Stdin, os.Stdout, os.Stderr}.publish(args)
}

func runSubscribe(args []string) error {
	return pubsubCmd{os.Stdin, os.Stdout, os.Stderr}.subscribe(args)
}

// clientFlags are the flags both commands share.
type clientFlags struct {
	dir, cluster, listen, name, logDir *string
	http                               *string
	timeout                            *time.Duration
	eventsFD                           *int
	keys                               keyFlags
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		dir:      fs.String("directory", "", "comma-separated host:port of the directory's replicas, in id order (required)"),
		cluster:  fs.String("cluster", dirclient.DefaultCluster, "the directory's name"),
		listen:   fs.String("listen", "127.0.0.1:0", "host:port to accept the other members' connections on (port 0: any free port)"),
		name:     fs.String("name", "", "this client's name, to the directory and in views (default: random)"),
		timeout:  fs.Duration("timeout", 10*time.Second, "give up if the directory or the group does not answer within this time"),
		logDir:   fs.String("log-dir", "conclave-logs", "directory for the client's event log <name>.jsonl (empty: no log)"),
		http:     fs.String("http", "", httpFlagHelp),
		eventsFD: eventsFlag(fs),
		keys:     addKeyFlags(fs),
	}
}

// connect checks the flags and connects a client of topics; done closes
// it, its event log and its --http endpoint (web, nil without one).
func (f clientFlags) connect(ctx context.Context, stderr io.Writer, topics []string) (c *pubsub.Client, web *pubsubHTTP, done func(), err error) {
	if *f.http != "" {
		if err := checkAddr("http", *f.http, true); err != nil {
			return nil, nil, nil, err
		}
		web = newPubSubHTTP(topics)
	}
	c, logf, events, err := f.connectLog(ctx, stderr, web)
	if err != nil {
		return nil, nil, nil, err
	}
	stopWeb := func() {}
	if web != nil {
		if stopWeb, err = web.serve(*f.http, c); err != nil {
			c.Close()
			if logf != nil {
				logf.Close()
			}
			if events != nil {
				events.Close()
			}
			return nil, nil, nil, err
		}
	}
	return c, web, func() {
		c.Close()
		stopWeb()
		if logf != nil {
			logf.Close()
		}
		if events != nil {
			if err := events.Close(); err != nil {
				fmt.Fprintf(stderr, "conclave: %v\n", err)
			}
		}
	}, nil
}

func (f clientFlags) connectLog(ctx context.Context, stderr io.Writer, web *pubsubHTTP) (*pubsub.Client, *os.File, *eventStream, error) {
	if *f.dir == "" {
		return nil, nil, nil, usagef("--directory is required: the host:port of the directory's replicas")
	}
	addrs := splitList(*f.dir)
	for _, a := range addrs {
		if err := checkAddr("directory", a, false); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := checkAddr("listen", *f.listen, true); err != nil {
		return nil, nil, nil, err
	}
	if *f.name != "" {
		if err := checkName("name", *f.name); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := positive("timeout", *f.timeout); err != nil {
		return nil, nil, nil, err
	}
	if *f.eventsFD == 1 {
		return nil, nil, nil, usagef("--events-fd 1: standard output carries the topics' lines; give another descriptor")
	}
	key, err := f.keys.load(stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	var nw transport.Network = transport.TCP{}
	if *f.keys.tls {
		t, err := transport.NewTLS(nil)
		if err != nil {
			return nil, nil, nil, err
		}
		nw = t
	}
	name := *f.name
	if name == "" {
		var b [4]byte
		rand.Read(b[:])
		name = "client-" + hex.EncodeToString(b[:])
	}
	cfg := pubsub.Config{Directory: addrs, Cluster: *f.cluster, Key: key, Network: nw,
		Listen: *f.listen, Insecure: *f.keys.insecure, TLS: *f.keys.tls, Name: name}
	var logf *os.File
	if *f.logDir != "" {
		if err := checkDir("log-dir", *f.logDir); err != nil {
			return nil, nil, nil, err
		}
		if logf, err = eventlog.Create(*f.logDir, name); err != nil {
			return nil, nil, nil, fmt.Errorf("event log: %w", err)
		}
		cfg.LogTo = logf
	}
	events, err := openEvents(*f.eventsFD, io.Discard, stderr)
	if err != nil {
		if logf != nil {
			logf.Close()
		}
		return nil, nil, nil, err
	}
	if events != nil {
		cfg.Events = events.s
	}
	if web != nil {
		web.configure(&cfg)
	}
	c, err := pubsub.Connect(ctx, cfg)
	if err != nil {
		if logf != nil {
			logf.Close()
		}
		if events != nil {
			events.Close()
		}
		return nil, nil, nil, unprotected(err)
	}
	return c, logf, events, nil
}

// checkTopic refuses an empty topic or one over the limit.
func checkTopic(t string) error {
	if t == "" {
		return usagef("--topic is required: the topic's name")
	}
	if len(t) > pubsub.MaxTopic {
		return usagef("--topic is %d bytes, over the limit of %d", len(t), pubsub.MaxTopic)
	}
	return nil
}

func (c pubsubCmd) publish(args []string) error {
	fs := newFlags("publish", "publish --directory A0,A1,A2 --topic T [--topic U ...] [--qos total|vsync|FILE.xml] [flags]")
	var topics topicList
	fs.Var(&topics, "topic", "a topic to publish; repeat for more, and then each line is \"TOPIC DATA\" (at least one)")
	qos := fs.String("qos", "vsync", "the topics' quality of service: vsync, total, or the path of an XML stack description")
	waitMembers := fs.Int("wait-members", 0, "before sending, wait until each topic's group has this many members besides this one")
	cf := addClientFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if err := topics.check("publish"); err != nil {
		return err
	}
	for _, t := range topics {
		if len(topics) > 1 && strings.ContainsAny(t, " \t") {
			return usagef("--topic %q: with several topics, each line starts with its topic and a space, so a topic cannot hold one", t)
		}
	}
	if *waitMembers < 0 {
		return usagef("--wait-members must not be negative, not %d", *waitMembers)
	}
	if layers.IsFile(*qos) {
		if _, err := group.LoadStack(*qos); err != nil {
			return usageError{err.Error()}
		}
	}
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sig, *cf.timeout)
	defer cancel()
	cl, web, done, err := cf.connect(ctx, c.stderr, topics)
	if err != nil {
		return err
	}
	defer done()
	pubs := map[string]*pubsub.Publisher{}
	var errs []error
	defer func() { // on an early return; Close is a no-op the second time
		lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer lcancel()
		for _, t := range topics {
			if p := pubs[t]; p != nil {
				if err := p.Close(lctx); err != nil {
					fmt.Fprintf(c.stderr, "topic %s: withdrawing: %v\n", t, err)
				}
			}
		}
	}()
	for _, t := range topics {
		p, err := cl.Announce(ctx, t, *qos)
		if err != nil {
			if errors.Is(err, directory.ErrBadQoS) {
				return usageError{err.Error()}
			}
			return err
		}
		pubs[t] = p
		fmt.Fprintf(c.stdout, "topic %s: QoS %s, group %s\n", t, p.QoS(), p.Group())
	}
	if *waitMembers > 0 {
		for _, t := range topics {
			if err := pubs[t].WaitMembers(ctx, *waitMembers+1); err != nil {
				return fmt.Errorf("the group of %s did not reach %d other members within %v", t, *waitMembers, *cf.timeout)
			}
		}
	}
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(c.stdin)
		sc.Buffer(make([]byte, 64<<10), group.DefaultMaxMessage)
		for sc.Scan() {
			select {
			case lines <- slices.Clone(sc.Bytes()):
			case <-sig.Done():
				return
			}
		}
		readErr <- sc.Err()
	}()
	failed, unknown := 0, 0
read:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break read
			}
			p, data := pubs[topics[0]], line
			if len(topics) > 1 {
				t, rest, _ := strings.Cut(string(line), " ")
				if p = pubs[t]; p == nil {
					unknown++
					fmt.Fprintf(c.stderr, "not published: %q does not start with one of the topics given and a space\n", line)
					continue
				}
				data = []byte(rest)
			}
			start := time.Now()
			err := p.Publish(sig, data)
			if err == nil {
				web.published(time.Since(start))
			}
			if err != nil {
				failed++
				fmt.Fprintf(c.stderr, "not published for sure: %q: %v\n", line, err)
				if errors.Is(err, group.ErrClosed) || sig.Err() != nil {
					break read
				}
			}
		case <-sig.Done():
			break read
		}
	}
	select {
	case err := <-readErr:
		if err != nil {
			errs = append(errs, fmt.Errorf("reading stdin: %w", err))
		}
	default:
	}
	if failed > 0 {
		errs = append(errs, fmt.Errorf("%d events may not have reached every subscriber", failed))
	}
	if unknown > 0 {
		errs = append(errs, fmt.Errorf("%d lines named no topic given", unknown))
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer lcancel()
	for _, t := range topics {
		if err := pubs[t].Close(lctx); err != nil {
			errs = append(errs, fmt.Errorf("topic %s: withdrawing: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// topicList is a flag that may be given several times.
type topicList []string

// check refuses an empty list, saying what the topic is for, and any
// topic checkTopic refuses.
func (l topicList) check(what string) error {
	if len(l) == 0 {
		return usagef("--topic is required: the topic to %s", what)
	}
	for _, t := range l {
		if err := checkTopic(t); err != nil {
			return err
		}
	}
	return nil
}

func (l *topicList) String() string { return strings.Join(*l, ",") }

func (l *topicList) Set(v string) error {
	if v == "" {
		return errors.New("a topic must not be empty")
	}
	if slices.Contains(*l, v) {
		return fmt.Errorf("topic %q given twice", v)
	}
	*l = append(*l, v)
	return nil
}

func (c pubsubCmd) subscribe(args []string) error {
	fs := newFlags("subscribe", "subscribe --directory A0,A1,A2 --topic T [--topic U ...] [--wait] [flags]")
	var topics topicList
	fs.Var(&topics, "topic", "a topic to subscribe to; repeat for more (at least one)")
	wait := fs.Bool("wait", false, "wait for topics nobody announced yet, instead of failing")
	count := fs.Int("count", 0, "exit after this many events in all (0: run until SIGINT or SIGTERM)")
	cf := addClientFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if err := topics.check("subscribe to"); err != nil {
		return err
	}
	if *count < 0 {
		return usagef("--count must not be negative, not %d", *count)
	}
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cctx, cancel := context.WithTimeout(sig, *cf.timeout)
	defer cancel()
	cl, _, done, err := cf.connect(cctx, c.stderr, topics)
	if err != nil {
		return err
	}
	defer done()
	var opts []pubsub.SubscribeOption
	if *wait {
		opts = append(opts, pubsub.WaitAnnounced())
	}
	var out sync.Mutex // one line at a time
	say := func(format string, a ...any) {
		out.Lock()
		fmt.Fprintf(c.stdout, format+"\n", a...)
		out.Unlock()
	}
	var subs []*pubsub.Subscription
	for _, t := range topics {
		ctx := cctx
		if *wait {
			ctx = sig // waiting for an announce is bounded by the user only
		}
		s, err := cl.Subscribe(ctx, t, opts...)
		if err != nil {
			if errors.Is(err, directory.ErrUnknownTopic) {
				return fmt.Errorf("%w (--wait waits for it)", err)
			}
			return err
		}
		say("topic %s: QoS %s, group %s", t, s.QoS(), s.Group())
		subs = append(subs, s)
	}
	events := make(chan pubsub.Event)
	var wg sync.WaitGroup
	ended := make(chan error, len(subs))
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range s.Events() {
				select {
				case events <- e:
				case <-sig.Done():
					return
				}
			}
			if err := s.Err(); err != nil {
				ended <- fmt.Errorf("topic %s: %w", s.Topic(), err)
			}
		}()
	}
	n := 0
	var runErr error
loop:
	for *count == 0 || n < *count {
		select {
		case e := <-events:
			say("%s> %s", e.Topic, e.Data)
			n++
		case err := <-ended:
			runErr = err
			break loop
		case <-sig.Done():
			break loop
		}
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer lcancel()
	for _, s := range subs {
		s.Unsubscribe(lctx)
	}
	stop() // unblocks the readers
	wg.Wait()
	st := cl.Stats()
	var names []string
	for t := range st {
		names = append(names, t)
	}
	slices.Sort(names)
	for _, t := range names {
		fmt.Fprintf(c.stderr, "topic %s: %d delivered, %d filtered\n", t, st[t].Delivered, st[t].Filtered)
	}
	return runErr
}
