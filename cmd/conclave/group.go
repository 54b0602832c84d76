package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/conclave/conclave/dashboard"
	"github.com/conclave/conclave/group"
	"github.com/conclave/conclave/metrics"
	"github.com/conclave/conclave/stack"
)

// groupCmd is one run of "conclave group": its streams are parameters so
// tests can drive it.
type groupCmd struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func runGroup(args []string) error {
	return groupCmd{os.Stdin, os.Stdout, os.Stderr}.run(args)
}

func (c groupCmd) run(args []string) error {
	fs := newFlags("group", "group --group NAME [--stack vsync|total|FILE.xml] [--listen ADDR] [--contacts A,B,... [--found]] [flags]")
	name := fs.String("group", "", "the group's name; members of other groups are refused (required)")
	stackName := fs.String("stack", "vsync", "quality of service: vsync, total, or the path of an XML stack description")
	listen := fs.String("listen", "127.0.0.1:0", "host:port to accept the other members' connections on (port 0: any free port)")
	contacts := fs.String("contacts", "", "comma-separated host:port of members to join through (none: found the group)")
	found := fs.Bool("found", false, "found the group if none of the --contacts answers (without it, that is an error)")
	member := fs.String("member", "", "this member's name in views and logs; a random suffix makes each run unique (default: member-<process id>)")
	logDir := fs.String("log-dir", "", "directory for the event log <member>.jsonl (empty: no log)")
	logDeliveries := fs.Bool("log-deliveries", false, "log every send, acknowledgement and delivery (what the checkers need)")
	stay := fs.Bool("stay", false, "stay in the group at the end of stdin, until SIGINT or SIGTERM")
	joinTimeout := fs.Duration("join-timeout", 10*time.Second, "give up if no view is installed within this time")
	httpAddr := fs.String("http", "", httpFlagHelp)
	eventsFD := eventsFlag(fs)
	keys := addKeyFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *name == "" {
		return usagef("--group is required: the name of the group to join")
	}
	if err := checkAddr("listen", *listen, true); err != nil {
		return err
	}
	var cs []string
	for _, a := range strings.Split(*contacts, ",") {
		if a = strings.TrimSpace(a); a != "" {
			if err := checkAddr("contacts", a, false); err != nil {
				return err
			}
			cs = append(cs, a)
		}
	}
	if *member != "" {
		if err := checkName("member", *member); err != nil {
			return err
		}
	}
	if err := positive("join-timeout", *joinTimeout); err != nil {
		return err
	}
	if *httpAddr != "" {
		if err := checkAddr("http", *httpAddr, true); err != nil {
			return err
		}
	}
	if err := checkDir("log-dir", *logDir); err != nil {
		return err
	}
	d, err := group.LoadStack(*stackName)
	if err != nil {
		return usageError{err.Error()}
	}
	cfg := group.Config{Name: *name, Description: d, Listen: *listen, Contacts: cs, Found: *found,
		Member: *member, LogDir: *logDir, LogDeliveries: *logDeliveries}
	if err := cfg.Validate(); err != nil {
		return usageError{err.Error()}
	}
	if cfg.Key, err = keys.load(c.stderr); err != nil {
		return err
	}
	cfg.Insecure, cfg.TLS = *keys.insecure, *keys.tls
	events, err := openEvents(*eventsFD, c.stdout, c.stderr)
	if err != nil {
		return err
	}
	human := c.stdout
	if *eventsFD == 1 {
		human = io.Discard
	}
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	jctx, cancel := context.WithTimeout(sig, *joinTimeout)
	defer cancel()
	if events != nil {
		defer events.s.Close() // on an early return; the end reports its Err
		cfg.Events = events.s
	}
	var g *group.Group
	var obs *observers
	var sent, delivered atomic.Uint64
	if *httpAddr != "" {
		obs = newObservers(metrics.Group, dashboard.Config{State: func(context.Context) dashboard.State {
			st := groupState(g, *name, d.Name)
			st.Groups[0].Sent, st.Groups[0].Delivered = sent.Load(), delivered.Load()
			return st
		}})
		cfg.OnEvent = obs.observe(cfg.OnEvent)
	}
	g, err = group.Join(jctx, cfg)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no view installed within %v", *joinTimeout)
		}
		return unprotected(err)
	}
	defer g.Close()
	// The metrics count messages from the events when they are logged,
	// here otherwise.
	count := obs != nil && !*logDeliveries
	if obs != nil {
		stop, err := obs.serve(*httpAddr, groupStatusHandler(g, *name, d.Name))
		if err != nil {
			return err
		}
		defer stop()
	}

	var out sync.Mutex // one line at a time on stdout
	say := func(format string, a ...any) {
		out.Lock()
		fmt.Fprintf(human, format+"\n", a...)
		out.Unlock()
	}
	say("joined group %q as %s at %s (stack %s)", *name, g.Me().ID, g.Me().Addr, d.Name)
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		views, dels := g.Views(), g.Deliveries()
		var prev stack.View
		for views != nil || dels != nil {
			select {
			case v, ok := <-views:
				if !ok {
					views = nil
					continue
				}
				say("%s", viewLine(prev, v))
				prev = v
			case m, ok := <-dels:
				if !ok {
					dels = nil
					continue
				}
				delivered.Add(1)
				if count {
					obs.metrics.Delivered(1)
				}
				say("%s> %s", m.From, m.Data)
			}
		}
	}()

	// Lines of stdin are sent in order, several in flight at once.
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(c.stdin)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-sig.Done():
				return
			}
		}
		if err := sc.Err(); err != nil {
			fmt.Fprintf(c.stderr, "reading stdin: %v\n", err)
		}
	}()
	inflight := make(chan struct{}, 256)
	var wg sync.WaitGroup
	var failMu sync.Mutex
	failed := 0
	fail := func(line string, err error) {
		failMu.Lock()
		failed++
		failMu.Unlock()
		fmt.Fprintf(c.stderr, "not sent for sure: %q: %v\n", line, err)
	}
read:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break read
			}
			inflight <- struct{}{}
			start := time.Now()
			done, err := g.Go([]byte(line))
			if err != nil {
				<-inflight
				fail(line, err)
				break read
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := <-done
				sent.Add(1)
				if count {
					obs.metrics.SentAcked(time.Since(start), err != nil)
				}
				if err != nil {
					fail(line, err)
				}
				<-inflight
			}()
		case <-sig.Done():
			break read
		}
	}
	wg.Wait()
	if *stay && sig.Err() == nil {
		<-sig.Done()
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer lcancel()
	lerr := g.Leave(lctx)
	<-printed
	var errs []error
	if failed > 0 {
		errs = append(errs, fmt.Errorf("%d messages may not have reached every member", failed))
	}
	if lerr != nil {
		errs = append(errs, fmt.Errorf("leaving: %w", lerr))
	}
	if err := g.LogErr(); err != nil {
		errs = append(errs, fmt.Errorf("event log: %w", err))
	}
	if events != nil {
		errs = append(errs, events.Close())
	}
	return errors.Join(errs...)
}

// viewLine describes a view and what changed since prev.
func viewLine(prev, v stack.View) string {
	var b strings.Builder
	fmt.Fprintf(&b, "view %s: %s", v.ID, strings.Join(v.IDs(), " "))
	var joined, gone []string
	for _, m := range v.Members {
		if !prev.Has(m.ID) {
			joined = append(joined, m.ID)
		}
	}
	for _, m := range prev.Members {
		if !v.Has(m.ID) {
			gone = append(gone, m.ID)
		}
	}
	if len(prev.Members) > 0 && len(joined)+len(gone) > 0 {
		b.WriteString(" (")
		sep := ""
		if len(joined) > 0 {
			b.WriteString("joined: " + strings.Join(joined, " "))
			sep = "; "
		}
		if len(gone) > 0 {
			b.WriteString(sep + "gone: " + strings.Join(gone, " "))
		}
		b.WriteString(")")
	}
	return b.String()
}

// groupState is what the dashboard shows of a member.
func groupState(g *group.Group, name, stackName string) dashboard.State {
	v := g.View()
	return dashboard.State{Title: g.Me().ID, Kind: "group", Addr: g.Me().Addr, Groups: []dashboard.Group{{
		Group: name, Member: g.Me().ID, Stack: stackName, View: v.ID.String(), Members: v.IDs(), Flushed: g.Flushed(v.ID)}}}
}

// groupStatus is what a member's GET /status returns.
type groupStatus struct {
	Group   string   `json:"group"`
	Member  string   `json:"member"`
	Addr    string   `json:"addr"`
	Stack   string   `json:"stack"`
	View    string   `json:"view"`
	Members []string `json:"members"`
	Flushed bool     `json:"flushed"`
}

func groupStatusHandler(g *group.Group, name, stackName string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := g.View()
		st := groupStatus{Group: name, Member: g.Me().ID, Addr: g.Me().Addr, Stack: stackName, View: v.ID.String(),
			Members: v.IDs(), Flushed: g.Flushed(v.ID)}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	})
}
