package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/dirclient"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/report"
	"github.com/conclave/conclave/transport"
)

// The pub/sub demo's cast: three directory replicas (processes 0 to 2),
// then the publishers and the subscribers, each a process of its own.
const demoReplicas = 3

// demoClient is a publisher or a subscriber of the pub/sub demo.
type demoClient struct {
	name   string
	pub    bool
	qos    string   // a publisher's
	topics []string // what it publishes or subscribes to
}

var demoCast = []demoClient{
	{name: "pub-orders", pub: true, qos: "total", topics: []string{"orders.eu", "orders.us", "orders.asia", "trades"}},
	{name: "pub-news", pub: true, qos: "vsync", topics: []string{"news", "weather", "sports", "alerts"}},
	{name: "pub-prices", pub: true, qos: "total", topics: []string{"prices.eu", "prices.us", "prices.asia", "fx"}},
	{name: "sub-eu", topics: []string{"orders.eu", "prices.eu", "news"}},
	{name: "sub-us", topics: []string{"orders.us", "prices.us", "weather", "fx"}},
	{name: "sub-desk", topics: []string{"trades", "alerts", "sports", "news"}},
	{name: "sub-quant", topics: []string{"prices.eu", "prices.us", "prices.asia", "fx"}},
	{name: "sub-late", topics: []string{"orders.eu", "news", "fx", "alerts", "trades"}},
}

// Who the story faults, by name.
const (
	demoKilledPub  = "pub-prices"
	demoKilledSub  = "sub-quant"
	demoLateSub    = "sub-late"
	demoMoved      = "orders.eu"
	demoMaxGroups  = 4
	demoEventEvery = 4 * time.Millisecond // one event of some topic, per publisher
)

func runDemoPubSub(args []string) error {
	fs := newFlags("demo pubsub", "demo pubsub [--out DIR] [--quiet]")
	out := fs.String("out", "demo-pubsub-out", "directory for the logs, the directory's data and the report (its earlier run is replaced)")
	quiet := fs.Bool("quiet", false, "do not echo the processes' output")
	pace := fs.Duration("pace", 1500*time.Millisecond, "how long events flow between two steps of the story")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return usagef("--out must name a directory")
	}
	if err := checkDir("out", *out); err != nil {
		return err
	}
	if err := positive("pace", *pace); err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	if err := clearRunDir(*out); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(*out, "data")); err != nil {
		return err
	}
	d := &pubsubDemo{out: *out, pace: *pace, sent: map[string]int{}}
	if !*quiet {
		d.echo = os.Stdout
	}
	return d.run(bin)
}

// pubsubDemo runs the pub/sub story.
type pubsubDemo struct {
	out  string
	pace time.Duration
	echo io.Writer
	c    *launch.Cluster
	key  transport.Key

	mu      sync.Mutex
	sent    map[string]int // topic → events written to its publisher
	stopped map[int]bool   // publishers whose traffic stopped
}

// proc is the launch index of the client named name.
func demoProc(name string) int {
	for i, c := range demoCast {
		if c.name == name {
			return demoReplicas + i
		}
	}
	panic("demo: no client " + name)
}

func (d *pubsubDemo) args(i int, addrs []string) []string {
	dir := strings.Join(addrs[:demoReplicas], ",")
	if i < demoReplicas {
		return []string{"directory", "--id", strconv.Itoa(i), "--peers", dir,
			"--data", filepath.Join(d.out, "data", strconv.Itoa(i)), "--log-dir", d.out,
			"--max-groups", strconv.Itoa(demoMaxGroups)}
	}
	c := demoCast[i-demoReplicas]
	a := []string{"subscribe"}
	if c.pub {
		a = []string{"publish", "--qos", c.qos}
	}
	a = append(a, "--directory", dir, "--listen", addrs[i], "--name", c.name, "--log-dir", d.out)
	for _, t := range c.topics {
		a = append(a, "--topic", t)
	}
	return a
}

func (d *pubsubDemo) run(bin string) error {
	start := time.Now()
	c, err := launch.Start(launch.Config{Binary: bin, N: demoReplicas + len(demoCast), Dir: d.out, Args: d.args,
		Stdin: true, Echo: d.echo})
	if err != nil {
		return err
	}
	d.c = c
	defer c.Close()
	if d.key, err = transport.ReadKeyFile(filepath.Join(d.out, launch.KeyFileName)); err != nil {
		return err
	}
	fmt.Printf("== conclave demo pubsub: %d directory replicas on %s, --max-groups %d; %d topics\n",
		demoReplicas, strings.Join(c.Addrs()[:demoReplicas], ", "), demoMaxGroups, len(d.topics()))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	step := func(name string) {
		fmt.Printf("== %s\n", name)
		c.Log(eventlog.Step, eventlog.FieldName, name)
	}
	step("start the directory: 3 replicas elect a leader")
	for i := range demoReplicas {
		if err := c.StartPeer(i); err != nil {
			return err
		}
	}
	leader, term, err := d.waitDirLeader(ctx, 0, nil)
	if err != nil {
		return err
	}
	fmt.Printf("   replica %d leads (term %d)\n", leader, term)

	step("start the publishers: each announces its topics and joins the groups the directory chose")
	for _, cl := range demoCast {
		if cl.pub {
			if err := c.StartPeer(demoProc(cl.name)); err != nil {
				return err
			}
		}
	}
	if err := d.waitJoined(ctx, func(cl demoClient) bool { return cl.pub }); err != nil {
		return err
	}
	step("start the subscribers: each asks for its topics' QoS and group, and joins them")
	if err := d.startSubscribers(ctx, func(cl demoClient) bool { return !cl.pub && cl.name != demoLateSub }); err != nil {
		return err
	}

	step("publish: every publisher sends an event of one of its topics every " + demoEventEvery.String())
	var traffic sync.WaitGroup
	stop := make(chan struct{})
	for i, cl := range demoCast {
		if cl.pub {
			traffic.Add(1)
			go func() {
				defer traffic.Done()
				d.publish(demoReplicas+i, cl, stop)
			}()
		}
	}
	time.Sleep(d.pace)

	step("SIGKILL publisher " + demoKilledPub + " mid-stream")
	if _, err := c.Kill(demoProc(demoKilledPub)); err != nil {
		return err
	}
	time.Sleep(d.pace)

	step(fmt.Sprintf("SIGKILL the directory's leader, replica %d", leader))
	if _, err := c.Kill(leader); err != nil {
		return err
	}
	leader, term, err = d.waitDirLeader(ctx, term, map[int]bool{leader: true})
	if err != nil {
		return err
	}
	fmt.Printf("   replica %d leads (term %d)\n", leader, term)

	step("start a late subscriber, " + demoLateSub + ", through the new leader")
	if err := d.startSubscribers(ctx, func(cl demoClient) bool { return cl.name == demoLateSub }); err != nil {
		return err
	}
	time.Sleep(d.pace)

	step("move " + demoMoved + " to another group of its QoS while it flows (as conclave move does): its publisher and subscribers follow")
	from, to, err := d.moveTopic(ctx, demoMoved)
	if err != nil {
		return err
	}
	fmt.Printf("   %s: %s -> %s\n", demoMoved, from, to)
	time.Sleep(d.pace)

	step("SIGKILL subscriber " + demoKilledSub)
	if _, err := c.Kill(demoProc(demoKilledSub)); err != nil {
		return err
	}
	time.Sleep(d.pace)

	step("stop publishing; the publishers withdraw and exit")
	close(stop)
	traffic.Wait()
	if err := d.waitCaughtUp(ctx); err != nil {
		return err
	}
	for i, cl := range demoCast {
		if cl.pub && cl.name != demoKilledPub {
			c.CloseStdin(demoReplicas + i)
		}
	}
	for i, cl := range demoCast {
		if cl.pub && cl.name != demoKilledPub {
			if err := c.WaitExit(ctx, demoReplicas+i); err != nil {
				return fmt.Errorf("%s: %w\n%s", cl.name, err, strings.Join(c.Output(demoReplicas+i), "\n"))
			}
		}
	}
	listing, err := d.list(ctx)
	if err != nil {
		return err
	}
	step("stop the subscribers and the directory (SIGTERM)")
	for i, cl := range demoCast {
		if !cl.pub && cl.name != demoKilledSub {
			c.Term(demoReplicas + i)
		}
	}
	if err := c.Close(); err != nil {
		return err
	}
	took := time.Since(start)

	events, err := eventlog.MergeDir(d.out)
	if err != nil {
		return err
	}
	path, err := report.WriteDir(d.out)
	if err != nil {
		return err
	}
	failed := d.summary(events, listing)
	fmt.Printf("\nran in %.1f s\nmerged log: %s (%d events), %s\nreport:     %s\n", took.Seconds(),
		filepath.Join(d.out, eventlog.RunJSONL), len(events), filepath.Join(d.out, eventlog.RunText), path)
	if failed > 0 {
		return fmt.Errorf("%d checks failed", failed)
	}
	return nil
}

// topics returns every topic of the demo, in the cast's order.
func (d *pubsubDemo) topics() []string {
	var out []string
	for _, cl := range demoCast {
		if cl.pub {
			out = append(out, cl.topics...)
		}
	}
	return out
}

// waitDirLeader waits until a replica not in dead logs that it leads in
// a term above after, and returns it.
func (d *pubsubDemo) waitDirLeader(ctx context.Context, after uint64, dead map[int]bool) (int, uint64, error) {
	type won struct {
		id   int
		term uint64
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan won, demoReplicas)
	for i := range demoReplicas {
		if dead[i] {
			continue
		}
		go func() {
			e, err := d.c.WaitEvent(ctx, i, func(e eventlog.Event) bool {
				t, _ := e.Int(eventlog.FieldTerm)
				return e.Ev == eventlog.DirRole && e.Str(eventlog.FieldRole) == "leader" && uint64(t) > after
			})
			if err == nil {
				t, _ := e.Int(eventlog.FieldTerm)
				ch <- won{i, uint64(t)}
			}
		}()
	}
	select {
	case w := <-ch:
		return w.id, w.term, nil
	case <-ctx.Done():
		return 0, 0, errors.New("no directory replica became leader in time")
	}
}

// joinedLine is what a client prints once it has a topic's group.
func joinedLine(topic string) string { return "topic " + topic + ": QoS " }

// waitJoined waits until every client for which pick holds has printed
// the QoS and group of each of its topics.
func (d *pubsubDemo) waitJoined(ctx context.Context, pick func(demoClient) bool) error {
	for i, cl := range demoCast {
		if !pick(cl) {
			continue
		}
		var subs []string
		for _, t := range cl.topics {
			subs = append(subs, joinedLine(t))
		}
		if err := d.c.WaitOutput(ctx, demoReplicas+i, subs...); err != nil {
			return fmt.Errorf("%s did not join its topics' groups: %w\n%s", cl.name, err, strings.Join(d.c.Output(demoReplicas+i), "\n"))
		}
	}
	return nil
}

func (d *pubsubDemo) startSubscribers(ctx context.Context, pick func(demoClient) bool) error {
	for i, cl := range demoCast {
		if pick(cl) {
			if err := d.c.StartPeer(demoReplicas + i); err != nil {
				return err
			}
		}
	}
	return d.waitJoined(ctx, pick)
}

// publish writes "TOPIC N" lines to publisher i, its topics in turn,
// until stop or until its standard input breaks (it was killed).
func (d *pubsubDemo) publish(i int, cl demoClient, stop <-chan struct{}) {
	t := time.NewTicker(demoEventEvery)
	defer t.Stop()
	for k := 0; ; k++ {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		topic := cl.topics[k%len(cl.topics)]
		d.mu.Lock()
		n := d.sent[topic] + 1
		d.mu.Unlock()
		if err := d.c.Write(i, fmt.Sprintf("%s %d", topic, n)); err != nil {
			return
		}
		d.mu.Lock()
		d.sent[topic] = n
		d.mu.Unlock()
	}
}

// waitCaughtUp waits until every running subscriber has printed the last
// event written to each of its topics' running publishers.
func (d *pubsubDemo) waitCaughtUp(ctx context.Context) error {
	live := map[string]bool{}
	for _, cl := range demoCast {
		if cl.pub && cl.name != demoKilledPub {
			for _, t := range cl.topics {
				live[t] = true
			}
		}
	}
	for i, cl := range demoCast {
		if cl.pub || cl.name == demoKilledSub {
			continue
		}
		var want []string
		d.mu.Lock()
		for _, t := range cl.topics {
			if live[t] && d.sent[t] > 0 {
				want = append(want, fmt.Sprintf("%s> %d", t, d.sent[t]))
			}
		}
		d.mu.Unlock()
		err := d.c.WaitLines(ctx, demoReplicas+i, func(lines []string) bool {
			for _, w := range want {
				if !slices.Contains(lines, w) {
					return false
				}
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("%s did not get the last events of its topics (%s): %w", cl.name, strings.Join(want, ", "), err)
		}
	}
	return nil
}

// moveTopic moves topic to another group of its QoS, the one with the
// fewest topics, and returns where it was and where it went.
func (d *pubsubDemo) moveTopic(ctx context.Context, topic string) (from, to string, err error) {
	dc, err := dirclient.New(dirclient.Config{Replicas: d.c.Addrs()[:demoReplicas], Key: d.key, Name: "demo-operator"})
	if err != nil {
		return "", "", err
	}
	defer dc.Close()
	l, err := dc.List(ctx)
	if err != nil {
		return "", "", fmt.Errorf("listing the directory: %w", err)
	}
	var qos string
	for _, t := range l.Topics {
		if t.Topic == topic {
			from, qos = t.Group, t.QoS
		}
	}
	fewest := 0
	for _, g := range l.Groups {
		if g.Name != from && g.QoS == qos && (to == "" || len(g.Topics) < fewest) {
			to, fewest = g.Name, len(g.Topics)
		}
	}
	if to == "" {
		return "", "", fmt.Errorf("no other group carries %s's QoS %s", topic, qos)
	}
	if _, err := dc.Move(ctx, topic, to); err != nil {
		return "", "", fmt.Errorf("moving %s to %s: %w", topic, to, err)
	}
	return from, to, nil
}

// list reads the directory's topics and groups.
func (d *pubsubDemo) list(ctx context.Context) (listing, error) {
	dc, err := dirclient.New(dirclient.Config{Replicas: d.c.Addrs()[:demoReplicas], Key: d.key, Name: "demo"})
	if err != nil {
		return listing{}, err
	}
	defer dc.Close()
	l, err := dc.List(ctx)
	if err != nil {
		return listing{}, fmt.Errorf("listing the directory: %w", err)
	}
	out := listing{group: map[string]string{}, qos: map[string]string{}}
	for _, t := range l.Topics {
		out.group[t.Topic] = t.Group
		out.qos[t.Topic] = t.QoS
	}
	for _, g := range l.Groups {
		if len(g.Topics) > 0 {
			out.groups = append(out.groups, g.Name)
			out.topics = append(out.topics, g.Topics)
		}
	}
	return out, nil
}

// listing is what the demo keeps of the directory's listing.
type listing struct {
	group, qos map[string]string // by topic
	groups     []string          // in use
	topics     [][]string        // of each group in groups
}

// got is what one subscriber printed of one topic.
type got struct {
	events      int
	first, last int
	gaps, dups  int
	outOfOrder  int
}

// received parses a subscriber's printed "TOPIC> N" lines, and its
// "topic T: D delivered, F filtered" counts.
func received(lines []string) (map[string]*got, map[string][2]int) {
	out := map[string]*got{}
	counts := map[string][2]int{}
	seen := map[string]map[int]bool{}
	for _, l := range lines {
		if t, n, ok := strings.Cut(l, "> "); ok {
			k, err := strconv.Atoi(n)
			if err != nil {
				continue
			}
			g := out[t]
			if g == nil {
				g = &got{first: k, last: k - 1}
				out[t] = g
				seen[t] = map[int]bool{}
			}
			g.events++
			switch {
			case seen[t][k]:
				g.dups++
			case k < g.last:
				g.outOfOrder++
			case k > g.last+1:
				g.gaps += k - g.last - 1
			}
			seen[t][k] = true
			g.last = max(g.last, k)
			continue
		}
		var t string
		var del, fil int
		if n, _ := fmt.Sscanf(l, "topic %s %d delivered, %d filtered", &t, &del, &fil); n == 3 {
			counts[strings.TrimSuffix(t, ":")] = [2]int{del, fil}
		}
	}
	return out, counts
}

// summary prints what each subscriber got, the waste, and the checkers'
// verdicts; it returns how many checks failed.
func (d *pubsubDemo) summary(events []eventlog.Event, l listing) int {
	total := map[string]bool{}
	for t, q := range l.qos {
		total[t] = q == "total"
	}
	fmt.Println("\n== what each subscriber got (from its output)")
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "subscriber\ttopic\tQoS\tgroup\tevents\tfirst..last\tsent\tgaps\tduplicates\tout of order\t")
	failed := 0
	var delivered, filtered = map[string]int{}, map[string]int{}
	killedTopics := map[string]bool{}
	for _, cl := range demoCast {
		if cl.name == demoKilledPub {
			for _, t := range cl.topics {
				killedTopics[t] = true
			}
		}
	}
	lastOfKilled := map[string]map[int][]string{} // topic → last event → who ended there
	for i, cl := range demoCast {
		if cl.pub {
			continue
		}
		lines := d.c.Output(demoReplicas + i)
		g, counts := received(lines)
		note := ""
		switch cl.name {
		case demoKilledSub:
			note = " (killed)"
		case demoLateSub:
			note = " (late)"
		}
		for _, t := range cl.topics {
			r := g[t]
			if r == nil {
				r = &got{}
			}
			span := "-"
			if r.events > 0 {
				span = fmt.Sprintf("%d..%d", r.first, r.last)
			}
			d.mu.Lock()
			sent := strconv.Itoa(d.sent[t])
			d.mu.Unlock()
			if killedTopics[t] {
				sent += " (publisher killed)"
				if cl.name != demoLateSub {
					if lastOfKilled[t] == nil {
						lastOfKilled[t] = map[int][]string{}
					}
					lastOfKilled[t][r.last] = append(lastOfKilled[t][r.last], cl.name)
				}
			}
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t\n", cl.name, note, t, l.qos[t], l.group[t],
				r.events, span, sent, r.gaps, r.dups, r.outOfOrder)
			if r.gaps+r.dups+r.outOfOrder > 0 {
				failed++
			}
		}
		for t, c := range counts {
			delivered[l.group[t]] += c[0]
			filtered[l.group[t]] += c[1]
		}
	}
	tw.Flush()

	fmt.Println("\n== groups: the directory's placement, and the waste the subscribers counted")
	tw = tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "group\tQoS\ttopics\tdelivered\tfiltered\twaste\t")
	for i, g := range l.groups {
		waste := "-"
		if n := delivered[g] + filtered[g]; n > 0 {
			waste = fmt.Sprintf("%.0f %%", 100*float64(filtered[g])/float64(n))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t\n", g, l.qos[l.topics[i][0]], strings.Join(l.topics[i], ", "),
			delivered[g], filtered[g], waste)
	}
	tw.Flush()

	fmt.Println("\n== moves: topics the directory moved to groups of less waste, and the one moved by hand")
	type move struct {
		topic, from, to string
		moves           int
	}
	var order []move
	who := map[move][]string{}
	for _, e := range events {
		if e.Ev != eventlog.PSMove {
			continue
		}
		n, _ := e.Int(eventlog.FieldMoves)
		mv := move{e.Str(eventlog.FieldTopic), e.Str(eventlog.FieldPrev), e.Str(eventlog.FieldGroup), n}
		if _, ok := who[mv]; !ok {
			order = append(order, mv)
		}
		r := e.Str(eventlog.FieldResult)
		if r == "switched" {
			r = ""
		} else {
			r = " (" + r + ")"
		}
		who[mv] = append(who[mv], e.Node+r)
	}
	if len(order) == 0 {
		fmt.Println("  none")
	}
	for _, mv := range order {
		fmt.Printf("  %s: %s -> %s (move %d); switched: %s\n", mv.topic, mv.from, mv.to, mv.moves, strings.Join(who[mv], ", "))
	}

	fmt.Println("\n== properties checked on the merged log")
	verdict := func(name string, vs []check.Violation) {
		if len(vs) == 0 {
			fmt.Printf("  pass  %s\n", name)
			return
		}
		failed++
		fmt.Printf("  FAIL  %s: %d violations\n", name, len(vs))
		for _, v := range vs[:min(len(vs), 5)] {
			fmt.Printf("        %v\n", v)
		}
	}
	verdict("pub/sub: topic isolation, no duplicates, each publisher in order, one order per total topic, view synchrony, acknowledged events delivered", check.PubSub(events, check.PubSubOptions{Total: total}))
	verdict("directory: one leader per term, the same command at each index", check.Directory(events))
	verdict("directory: the clients' announces, subscriptions and lookups form a linearizable history", check.DirLinearizable(events, time.Minute))
	if failed == 0 {
		fmt.Println("  pass  every subscriber got its topics' events without gaps, duplicates or reordering")
	} else {
		fmt.Printf("  FAIL  %d topics of subscribers have gaps, duplicates or reordering\n", failed)
	}
	agree := true
	for _, t := range slices.Sorted(maps.Keys(lastOfKilled)) {
		if len(lastOfKilled[t]) > 1 {
			agree = false
			failed++
			fmt.Printf("  FAIL  the subscribers of %s disagree on the last event of its killed publisher: %v\n", t, lastOfKilled[t])
		}
	}
	if agree {
		fmt.Println("  pass  the subscribers of the killed publisher's topics agree on its last event of each")
	}
	return failed
}
