package netns

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/dirclient"
	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/launch/launchtest"
	"github.com/conclave/conclave/transport"
)

// The directory's replicas run as `conclave directory` processes, one per
// host; the clients run in the test process, each a goroutine with a
// dirclient of its own, and dial from a host of their own, the last one,
// which every fault leaves reaching every replica (see Bridge and Do).
// Every operation is recorded as the client saw it, and the whole history
// is checked for linearizability at the end (check.Linearizable), along
// with the replicas' logs (the same command at each index everywhere).
// Each scenario also asserts what its fault must and must not do, from
// the replicas' events and the clients' answers, without timing anything:
// it waits for events, never for a while.

const (
	dirPort = "7300"
	// roaming is the number of clients that go to any replica, following
	// the leader; besides them, one client per replica talks only to
	// that replica, which forwards to the leader, or cannot answer.
	roaming = 2
	// dirTopics is the number of topics the clients work on at a time;
	// each phase of a scenario has topics of its own (see dirLoad.next).
	dirTopics = 6
	// attempt bounds one request to one replica, and opDeadline one
	// operation, across replicas: an operation still unanswered then is
	// recorded with an unknown outcome.
	attempt    = 200 * time.Millisecond
	opDeadline = 2 * time.Second
	// perPhase is how many operations with a known outcome each phase
	// waits for.
	perPhase = 50
	// finalTopic is the topic of the final announce and lookup, which
	// must succeed within finalDeadline once the faults are over.
	finalTopic    = "final"
	finalDeadline = 20 * time.Second
)

// dirNet is a directory of real replicas on hosts 0..n-1 of a Net, with
// the clients' host n.
type dirNet struct {
	t     *testing.T
	nw    *Net
	c     *launch.Cluster
	n     int
	key   transport.Key
	start time.Time // the origin of the operations' Call and Return
}

// startDirNet starts n replicas, each on its own host.
func startDirNet(t *testing.T, n int) *dirNet {
	t.Helper()
	nw := newNet(t, n+1)
	var addrs []string
	for i := range n {
		addrs = append(addrs, net.JoinHostPort(nw.Addr(i), dirPort))
	}
	dir := t.TempDir()
	c, err := launch.Start(launch.Config{
		Binary: binary, N: n, Dir: dir, Addrs: addrs,
		Args: func(i int, addrs []string) []string {
			return []string{"directory", "--id", strconv.Itoa(i), "--peers", strings.Join(addrs, ","),
				"--data", filepath.Join(dir, "data", strconv.Itoa(i)), "--log-dir", dir}
		},
		Command: func(i int, args []string) *exec.Cmd { return nw.Command(i, binary, args...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			launchtest.Keep(t, c.Dir())
		}
	})
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	key, err := transport.ReadKeyFile(filepath.Join(dir, launch.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	return &dirNet{t: t, nw: nw, c: c, n: n, key: key, start: time.Now()}
}

// since is the time since the start of the operations, on the clock of
// their Call and Return.
func (d *dirNet) since() time.Duration { return time.Since(d.start) }

// clientNet is a transport.Network whose connections are made inside
// host of nw. If wrote is set, every write on them is signalled on it,
// without blocking.
type clientNet struct {
	nw    *Net
	host  int
	wrote chan struct{}
}

func (clientNet) Listen(string) (transport.Listener, error) {
	return nil, errors.New("the clients' network does not listen")
}

func (cn clientNet) Dial(ctx context.Context, addr string) (transport.Stream, error) {
	var s transport.Stream
	var err error
	if derr := cn.nw.Do(cn.host, func() { s, err = transport.TCP{}.Dial(ctx, addr) }); derr != nil {
		return nil, derr
	}
	if err != nil || cn.wrote == nil {
		return s, err
	}
	return signalled{s, cn.wrote}, nil
}

// signalled is a Stream that signals its writes.
type signalled struct {
	transport.Stream
	wrote chan struct{}
}

func (s signalled) Write(b []byte) (int, error) {
	n, err := s.Stream.Write(b)
	select {
	case s.wrote <- struct{}{}:
	default:
	}
	return n, err
}

// client returns a new client of every replica, on the clients' host.
func (d *dirNet) client() *dirclient.Client { return d.clientOf(nil, d.c.Addrs()...) }

// clientOf returns a new client that knows only the replicas at addrs;
// its writes are signalled on wrote if it is not nil.
func (d *dirNet) clientOf(wrote chan struct{}, addrs ...string) *dirclient.Client {
	d.t.Helper()
	cl, err := dirclient.New(dirclient.Config{Replicas: addrs, Key: d.key, Attempt: attempt,
		Network: clientNet{d.nw, d.n, wrote}})
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { cl.Close() })
	return cl
}

// others returns the replicas not in ids.
func (d *dirNet) others(ids ...int) []int {
	var out []int
	for i := range d.n {
		if !slices.Contains(ids, i) {
			out = append(out, i)
		}
	}
	return out
}

// split cuts the replicas a from the replicas b; the clients' host
// reaches both. To the replicas it is a partition, and it is logged as
// one.
func (d *dirNet) split(a, b []int) {
	d.t.Helper()
	d.step("the clients, on host %d, reach both sides of the partition that follows", d.n)
	d.c.Log(eventlog.NetPartition, "groups", [][]int{a, b})
	if err := d.nw.Bridge(a, b, d.n); err != nil {
		d.t.Fatal(err)
	}
}

// step logs a step of the scenario in the control log, with the time
// on the clock of the operations' Call and Return.
func (d *dirNet) step(format string, args ...any) {
	d.c.Log(eventlog.Step, eventlog.FieldName, fmt.Sprintf(format, args...)+fmt.Sprintf(" (%v into the operations)", d.since()))
}

// role is what a dir_role event says.
type role struct {
	role   string
	term   int
	leader int
}

func roleOf(e eventlog.Event) (role, bool) {
	if e.Ev != eventlog.DirRole {
		return role{}, false
	}
	term, _ := e.Int(eventlog.FieldTerm)
	leader, ok := e.Int(eventlog.FieldLeader)
	if !ok {
		leader = -1
	}
	return role{e.Str(eventlog.FieldRole), term, leader}, true
}

// leader returns the replica that leads now and its term: the leader a
// successful lookup named, once its own events say it leads.
func (d *dirNet) leader(cl *dirclient.Client) (int, int) {
	d.t.Helper()
	ctx := ctx(d.t)
	for {
		lctx, cancel := context.WithTimeout(ctx, opDeadline)
		_, err := cl.Lookup(lctx, finalTopic)
		cancel()
		if ctx.Err() != nil {
			d.t.Fatalf("no leader found: %v", err)
		}
		l := cl.Leader()
		if err != nil || l < 0 {
			continue
		}
		if _, err := d.c.WaitEvent(ctx, l, func(e eventlog.Event) bool {
			r, ok := roleOf(e)
			return ok && r.role == "leader"
		}); err != nil {
			continue
		}
		if r, ok := d.lastRole(l); ok && r.role == "leader" {
			return l, r.term
		}
	}
}

// lastRole returns the last role replica i logged.
func (d *dirNet) lastRole(i int) (role, bool) {
	evs := d.c.Events(i)
	for _, e := range slices.Backward(evs) {
		if r, ok := roleOf(e); ok {
			return r, true
		}
	}
	return role{}, false
}

// waitRole waits until one of the replicas ids logs a role for which
// match holds, and returns the replica and the role.
func (d *dirNet) waitRole(what string, ids []int, match func(role) bool) (int, role) {
	d.t.Helper()
	ctx, cancel := context.WithCancel(ctx(d.t))
	defer cancel()
	type found struct {
		i int
		r role
	}
	ch := make(chan found, len(ids))
	var wg sync.WaitGroup
	for _, i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r role
			_, err := d.c.WaitEvent(ctx, i, func(e eventlog.Event) bool {
				var ok bool
				r, ok = roleOf(e)
				return ok && match(r)
			})
			if err == nil {
				ch <- found{i, r}
			}
		}()
	}
	go func() { wg.Wait(); close(ch) }()
	f, ok := <-ch
	if !ok {
		d.t.Fatalf("%s: none of replicas %v logged it (last roles: %s)", what, ids, d.roles())
	}
	return f.i, f.r
}

func (d *dirNet) roles() string {
	var parts []string
	for i := range d.n {
		r, _ := d.lastRole(i)
		parts = append(parts, fmt.Sprintf("%d: %s term %d leader %d", i, r.role, r.term, r.leader))
	}
	return strings.Join(parts, ", ")
}

// newLeader waits until one of ids leads in a term after term.
func (d *dirNet) newLeader(ids []int, term int) (int, int) {
	d.t.Helper()
	i, r := d.waitRole(fmt.Sprintf("a leader among %v in a term after %d", ids, term), ids,
		func(r role) bool { return r.role == "leader" && r.term > term })
	return i, r.term
}

// rejoined waits until replica i follows a leader other than itself in
// a term after term.
func (d *dirNet) rejoined(i, term int) {
	d.t.Helper()
	d.waitRole(fmt.Sprintf("replica %d following another replica in a term after %d", i, term), []int{i},
		func(r role) bool { return r.leader >= 0 && r.leader != i && r.term > term })
}

// mark returns how many events each replica's current process has
// logged: what they log from now on comes after.
func (d *dirNet) mark() []int {
	out := make([]int, d.n)
	for i := range d.n {
		out[i] = len(d.c.Events(i))
	}
	return out
}

// cutOff checks what the replicas ids, cut off from a majority since
// mark, logged until now: none became candidate or leader, and none
// entered a term after term or applied an entry of one (PreVote keeps a
// minority from raising its term, and nothing of the majority's new
// terms can reach it).
func (d *dirNet) cutOff(ids []int, mark []int, term int) {
	d.t.Helper()
	for _, i := range ids {
		for _, e := range d.c.Events(i)[mark[i]:] {
			t, _ := e.Int(eventlog.FieldTerm)
			switch r, ok := roleOf(e); {
			case ok && (r.role == "candidate" || r.role == "leader"):
				d.t.Errorf("replica %d, cut off from a majority, became %s: %s", i, r.role, eventlog.Format(e))
			case (ok || e.Ev == eventlog.DirApply) && t > term:
				d.t.Errorf("replica %d, cut off from a majority, reached term %d after %d: %s", i, t, term, eventlog.Format(e))
			}
		}
	}
}

// steppedDown waits until leader l, cut off, logs a role other than
// leader after mark: CheckQuorum makes it step down on its own.
func (d *dirNet) steppedDown(l int, mark []int) {
	d.t.Helper()
	n := 0
	_, err := d.c.WaitEvent(ctx(d.t), l, func(e eventlog.Event) bool {
		n++
		r, ok := roleOf(e)
		return n > mark[l] && ok && r.role != "leader"
	})
	if err != nil {
		d.t.Fatalf("leader %d, cut off from the majority, never stepped down: %v (last roles: %s)", l, err, d.roles())
	}
}

// dirRec is an operation and, when its outcome is known, the leader the
// answering replica named, or else the error the client had.
type dirRec struct {
	check.DirOp
	Named int
	Err   error
	// Unexpected marks an error that is neither an answer nor the
	// directory's unavailability.
	Unexpected bool
}

// dirLoad is the clients' work: each worker runs random operations on
// the current phase's topics until stopped. Workers 0..roaming-1 roam;
// worker roaming+i talks only to replica i, so that a replica cut off,
// stopped or behind keeps being asked.
type dirLoad struct {
	d     *dirNet
	stop  chan struct{}
	wg    sync.WaitGroup
	phase atomic.Int64

	mu         sync.Mutex
	recs       []dirRec
	unexpected []string
	changed    chan struct{}
}

func (d *dirNet) load() *dirLoad {
	l := &dirLoad{d: d, stop: make(chan struct{}), changed: make(chan struct{})}
	d.step("%d clients start on topics p0.t0 to p0.t%d", l.workers(), dirTopics-1)
	for w := range l.workers() {
		var cl *dirclient.Client
		if w < roaming {
			cl = d.client()
		} else {
			cl = d.clientOf(nil, d.c.Addrs()[w-roaming])
		}
		l.wg.Add(1)
		go l.work(w, cl)
	}
	d.t.Cleanup(l.halt)
	return l
}

// workers is the number of workers.
func (l *dirLoad) workers() int { return roaming + l.d.n }

func (l *dirLoad) work(w int, cl *dirclient.Client) {
	defer l.wg.Done()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
	qos := []string{"vsync", "total"}
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		topic := fmt.Sprintf("p%d.t%d", l.phase.Load(), rng.IntN(dirTopics))
		var r dirRec
		switch k := rng.IntN(10); {
		case k < 4:
			r = l.d.announce(opDeadline, cl, w, topic, qos[rng.IntN(2)])
		case k < 6:
			r = l.d.subscribe(opDeadline, cl, w, topic)
		default:
			r = l.d.lookup(opDeadline, cl, w, topic)
		}
		l.add(r)
		// A little room for the replicas on a small machine; the
		// workers' operations still overlap.
		time.Sleep(time.Duration(2+rng.IntN(6)) * time.Millisecond)
	}
}

// next moves the workers on to the topics of a new phase: topics that
// no one announced yet, whose first announce is a new write that reads
// must see from then on.
func (l *dirLoad) next(what string) {
	p := l.phase.Add(1)
	l.d.step("%s: the clients move on to topics p%d.t0 to p%d.t%d", what, p, p, dirTopics-1)
}

func (l *dirLoad) add(r dirRec) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	if r.Unexpected {
		l.unexpected = append(l.unexpected, describeRec(r))
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// waitKnown waits until perPhase operations called at since or later
// have a known outcome.
func (l *dirLoad) waitKnown(what string, since time.Duration) {
	l.d.t.Helper()
	ctx := ctx(l.d.t)
	for {
		l.mu.Lock()
		n, all := 0, 0
		for _, r := range l.recs {
			if r.Call >= since {
				all++
				if r.Known {
					n++
				}
			}
		}
		ch := l.changed
		l.mu.Unlock()
		if n >= perPhase {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			l.d.t.Fatalf("%s: %d of %d operations answered, want %d (last roles: %s)", what, n, all, perPhase, l.d.roles())
		}
	}
}

// waitGaveUp waits until worker w gave up on an operation at since or
// later.
func (l *dirLoad) waitGaveUp(w int, since time.Duration) {
	l.d.t.Helper()
	ctx := ctx(l.d.t)
	for {
		l.mu.Lock()
		done := slices.ContainsFunc(l.recs, func(r dirRec) bool { return r.Client == w && !r.Known && r.Return >= since })
		ch := l.changed
		l.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			l.d.t.Fatalf("worker %d never gave up on an operation after %v", w, since)
		}
	}
}

// during waits, the replicas ids having been cut off, killed or stopped
// at from, until the other replicas have answered perPhase operations
// and the worker of each replica of ids has given up on one, and returns
// the time then.
func (l *dirLoad) during(what string, ids []int, from time.Duration) time.Duration {
	l.d.t.Helper()
	l.waitKnown(what, l.d.since())
	for _, i := range ids {
		l.waitGaveUp(roaming+i, from)
	}
	return l.d.since()
}

// unanswered checks what the clients had from the replicas ids,
// which could not serve from from to to, while leader led the others:
// announces were acknowledged under leader, the operations answered
// all named another leader than ids, and those the ids' own workers
// called in between were not answered.
func (l *dirLoad) unanswered(ids []int, leader int, from, to time.Duration, while string) {
	l.d.t.Helper()
	recs := l.answeredBetween(from, to)
	if !slices.ContainsFunc(recs, func(r dirRec) bool {
		return r.Kind == check.DirAnnounce && r.Code == check.DirOK && r.Named == leader
	}) {
		l.d.t.Errorf("no announce was acknowledged under replica %d, the new leader, while %s (%d operations answered)", leader, while, len(recs))
	}
	for _, r := range recs {
		if slices.Contains(ids, r.Named) {
			l.d.t.Errorf("while %s, an answer named replica %d leader: %s", while, r.Named, describeRec(r))
		}
		if slices.Contains(ids, r.Client-roaming) {
			l.d.t.Errorf("while %s, replica %d answered: %s", while, r.Client-roaming, describeRec(r))
		}
	}
}

// announced returns the topics of the current phase whose announce was
// answered ok.
func (l *dirLoad) announced() []string {
	prefix := fmt.Sprintf("p%d.", l.phase.Load())
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if r.Kind == check.DirAnnounce && r.Known && r.Code == check.DirOK && strings.HasPrefix(r.Topic, prefix) && !slices.Contains(out, r.Topic) {
			out = append(out, r.Topic)
		}
	}
	return out
}

// prober is a client of one replica alone whose writes are signalled.
type prober struct {
	cl    *dirclient.Client
	wrote chan struct{}
}

// probers returns k clients of replica i alone, each connected to it.
func (d *dirNet) probers(i, k int) []prober {
	d.t.Helper()
	var out []prober
	for range k {
		p := prober{wrote: make(chan struct{}, 1)}
		p.cl = d.clientOf(p.wrote, d.c.Addrs()[i])
		ctx, cancel := context.WithTimeout(ctx(d.t), 10*time.Second)
		_, err := p.cl.Lookup(ctx, finalTopic)
		cancel()
		if err != nil {
			d.t.Fatalf("a client of replica %d alone: %v", i, err)
		}
		out = append(out, p)
	}
	return out
}

// probe has each prober look up one of topics, at once, in the
// background, recording the lookups as workers' after the others. It
// returns once every prober has sent its request, with a function that
// waits for the answers.
func (l *dirLoad) probe(ps []prober, topics []string) (wait func()) {
	l.d.t.Helper()
	var wg sync.WaitGroup
	for k, p := range ps {
		select {
		case <-p.wrote: // the writes of the connection's set-up
		default:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.add(l.d.lookup(opDeadline, p.cl, l.workers()+1+k, topics[k%len(topics)]))
		}()
	}
	for k, p := range ps {
		select {
		case <-p.wrote:
		case <-ctx(l.d.t).Done():
			l.d.t.Fatalf("prober %d never sent its lookup", k)
		}
	}
	return wg.Wait
}

// halt stops the workers and waits for them.
func (l *dirLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// answeredBetween returns the operations called at from or later that
// were answered by to.
func (l *dirLoad) answeredBetween(from, to time.Duration) []dirRec {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []dirRec
	for _, r := range l.recs {
		if r.Known && r.Call >= from && r.Return <= to {
			out = append(out, r)
		}
	}
	return out
}

// do runs one operation within timeout and records it as the client saw
// it.
func (d *dirNet) do(timeout time.Duration, cl *dirclient.Client, op check.DirOp, f func(ctx context.Context) (directory.Result, error)) dirRec {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	op.Call = d.since()
	res, err := f(ctx)
	op.Return = d.since()
	r := dirRec{DirOp: op, Named: -1, Err: err}
	switch {
	case err == nil:
		r.Known, r.Code, r.GotQoS, r.Group, r.Moves = true, check.DirOK, res.QoS, res.Group, res.Moves
	case errors.Is(err, directory.ErrQoSConflict):
		r.Known, r.Code, r.GotQoS = true, check.DirConflict, res.QoS
	case errors.Is(err, directory.ErrUnknownTopic):
		r.Known, r.Code = true, check.DirUnknown
	case errors.Is(err, directory.ErrNoGroup):
		r.Known, r.Code = true, check.DirNoGroup
	case errors.Is(err, dirclient.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		// Unknown: it may have taken effect, or may yet.
	default:
		// Unknown too, and not an answer a client should ever get.
		r.Unexpected = true
	}
	if r.Known {
		r.Named = cl.Leader()
	}
	return r
}

func (d *dirNet) announce(timeout time.Duration, cl *dirclient.Client, w int, topic, qos string) dirRec {
	return d.do(timeout, cl, check.DirOp{Client: w, Kind: check.DirAnnounce, Topic: topic, QoS: qos},
		func(ctx context.Context) (directory.Result, error) {
			return cl.Announce(ctx, topic, qos, nil)
		})
}

// subscribe is a lookup to the checker: it reads the topic, through the
// log.
func (d *dirNet) subscribe(timeout time.Duration, cl *dirclient.Client, w int, topic string) dirRec {
	return d.do(timeout, cl, check.DirOp{Client: w, Kind: check.DirLookup, Topic: topic},
		func(ctx context.Context) (directory.Result, error) {
			return cl.Subscribe(ctx, topic)
		})
}

func (d *dirNet) lookup(timeout time.Duration, cl *dirclient.Client, w int, topic string) dirRec {
	return d.do(timeout, cl, check.DirOp{Client: w, Kind: check.DirLookup, Topic: topic},
		func(ctx context.Context) (directory.Result, error) {
			f, err := cl.Lookup(ctx, topic)
			switch {
			case err != nil:
				return directory.Result{}, err
			case !f.Found:
				return directory.Result{}, directory.ErrUnknownTopic
			}
			return directory.Result{QoS: f.Topic.QoS, Group: f.Topic.Group, Moves: f.Topic.Moves}, nil
		})
}

func describeRec(r dirRec) string {
	out := fmt.Sprintf("client %d: %s %s", r.Client, r.Kind, r.Topic)
	if r.QoS != "" {
		out += " " + r.QoS
	}
	out += fmt.Sprintf(", asked at %v, ", r.Call)
	switch {
	case r.Known:
		out += fmt.Sprintf("answered at %v: %s (qos %q, group %q), naming leader %d", r.Return, r.Code, r.GotQoS, r.Group, r.Named)
	case r.Unexpected:
		out += fmt.Sprintf("failed at %v with an unexpected error: %v", r.Return, r.Err)
	default:
		out += fmt.Sprintf("outcome unknown at %v: %v", r.Return, r.Err)
	}
	return out
}

// finish heals nothing itself: called once every fault is gone, it stops
// the load, checks that an announce and a lookup of a new topic succeed
// and that every replica applies that announce, stops the cluster, and
// checks the history for linearizability and the replicas' logs for
// agreement.
func (d *dirNet) finish(l *dirLoad) {
	d.t.Helper()
	l.halt()
	d.step("the clients stopped; a last announce and lookup of %q", finalTopic)
	cl := d.client()
	live := d.announce(finalDeadline, cl, l.workers(), finalTopic, "total")
	if !live.Known || live.Code != check.DirOK {
		d.t.Fatalf("after the faults, the final announce: %s", describeRec(live))
	}
	look := d.lookup(finalDeadline, cl, l.workers(), finalTopic)
	if !look.Known || look.Code != check.DirOK || look.Group != live.Group {
		d.t.Errorf("after the faults, the final lookup: %s (announced in group %s)", describeRec(look), live.Group)
	}
	for i := range d.n {
		if _, err := d.c.WaitEvent(ctx(d.t), i, func(e eventlog.Event) bool {
			return e.Ev == eventlog.DirApply && e.Str("topic") == finalTopic
		}); err != nil {
			d.t.Errorf("replica %d never applied the final announce: %v", i, err)
		}
	}
	l.add(live)
	l.add(look)
	l.mu.Lock()
	recs := slices.Clone(l.recs)
	unexpected := l.unexpected
	l.mu.Unlock()
	for _, u := range unexpected {
		d.t.Errorf("unexpected error: %s", u)
	}
	ops := make([]check.DirOp, len(recs))
	known := 0
	for i, r := range recs {
		ops[i] = r.DirOp
		if r.Known {
			known++
		}
	}
	d.t.Logf("%d operations, %d with a known outcome", len(ops), known)
	began := time.Now()
	if err := check.Linearizable(ops, time.Minute); err != nil {
		d.t.Error(err)
	}
	d.t.Logf("checked in %v", time.Since(began).Round(time.Millisecond))
	if d.t.Failed() {
		d.keepHistory(recs)
	}
	if err := d.c.Close(); err != nil {
		d.t.Error(err)
	}
	h, err := eventlog.MergeDir(d.c.Dir())
	if err != nil {
		d.t.Fatal(err)
	}
	sameApplies(d.t, h)
}

// keepHistory writes the operations to client-ops.txt in the cluster's
// directory, for launchtest.Keep.
func (d *dirNet) keepHistory(recs []dirRec) {
	var b strings.Builder
	fmt.Fprintf(&b, "operations timed from %s\n", d.start.Format(time.RFC3339Nano))
	for _, r := range recs {
		fmt.Fprintln(&b, describeRec(r))
	}
	if err := os.WriteFile(filepath.Join(d.c.Dir(), "client-ops.txt"), []byte(b.String()), 0o644); err != nil {
		d.t.Log(err)
	}
}

// sameApplies checks that the replicas applied the same command at each
// index, in the same term with the same outcome, whatever they went
// through: a replica restarted applies its log again from its snapshot.
func sameApplies(t *testing.T, h []eventlog.Event) {
	t.Helper()
	type applied struct {
		node string
		desc string
	}
	at := map[int]applied{}
	n := 0
	for _, e := range h {
		if e.Ev != eventlog.DirApply {
			continue
		}
		n++
		i, _ := e.Int(eventlog.FieldIndex)
		term, _ := e.Int(eventlog.FieldTerm)
		seq, _ := e.Int("seq")
		desc := fmt.Sprintf("term %d: %s %s %s seq %d: %s qos %s group %s", term, e.Str("op"), e.Str("topic"),
			e.Str("client"), seq, e.Str("result"), e.Str("qos"), e.Str("group"))
		if a, ok := at[i]; !ok {
			at[i] = applied{e.Node, desc}
		} else if a.desc != desc {
			t.Errorf("index %d: %s applied %s, %s applied %s", i, a.node, a.desc, e.Node, desc)
		}
	}
	if n == 0 {
		t.Error("no replica logged an applied command")
	}
}

// TestNetDirectoryIsolateLeader cuts the leader's host off from the two
// others under load: they elect one of themselves and go on answering;
// the cut-off leader steps down on its own, neither raises its term nor
// answers; after the heal it follows the new leader.
func TestNetDirectoryIsolateLeader(t *testing.T) {
	d := startDirNet(t, 3)
	l := d.load()
	l.waitKnown("before the fault", 0)
	leader, term := d.leader(d.client())

	rest := d.others(leader)
	mark := d.mark()
	l.next(fmt.Sprintf("cut off replica %d, the leader in term %d", leader, term))
	d.split([]int{leader}, rest)
	from := d.since()
	newLeader, newTerm := d.newLeader(rest, term)
	d.steppedDown(leader, mark)
	to := l.during("with the leader cut off", []int{leader}, from)
	d.cutOff([]int{leader}, mark, term)
	heal(t, d.c, d.nw)
	l.unanswered([]int{leader}, newLeader, from, to, fmt.Sprintf("replica %d was cut off", leader))

	l.next("healed")
	d.rejoined(leader, term)
	l.waitKnown("after the heal", d.since())
	t.Logf("replica %d led in term %d; cut off, the others elected %d in term %d", leader, term, newLeader, newTerm)
	d.finish(l)
}

// TestNetDirectoryHalves splits five replicas 2 | 3 with the leader on the
// minority side: the majority elects a leader and answers, the minority
// neither elects one nor raises its terms, and after the heal both of its
// replicas follow again.
func TestNetDirectoryHalves(t *testing.T) {
	d := startDirNet(t, 5)
	l := d.load()
	l.waitKnown("before the fault", 0)
	leader, term := d.leader(d.client())

	minority := []int{leader, (leader + 1) % d.n}
	majority := d.others(minority...)
	mark := d.mark()
	l.next(fmt.Sprintf("split replicas %v from %v; replica %d leads in term %d", minority, majority, leader, term))
	d.split(minority, majority)
	from := d.since()
	newLeader, newTerm := d.newLeader(majority, term)
	d.steppedDown(leader, mark)
	to := l.during("with the network split", minority, from)
	d.cutOff(minority, mark, term)
	heal(t, d.c, d.nw)
	l.unanswered(minority, newLeader, from, to, fmt.Sprintf("replicas %v were cut off", minority))

	l.next("healed")
	for _, i := range minority {
		d.rejoined(i, term)
	}
	l.waitKnown("after the heal", d.since())
	t.Logf("replica %d led in term %d; split from it with %d, %v elected %d in term %d", leader, term, minority[1], majority, newLeader, newTerm)
	d.finish(l)
}

// TestNetDirectoryKillLeader SIGKILLs the leader under load: the others
// elect one of themselves and go on answering; restarted from its data
// directory, the old leader remembers its term and follows the new
// leader.
func TestNetDirectoryKillLeader(t *testing.T) {
	d := startDirNet(t, 3)
	l := d.load()
	l.waitKnown("before the kill", 0)
	leader, term := d.leader(d.client())

	rest := d.others(leader)
	l.next(fmt.Sprintf("kill replica %d, the leader in term %d", leader, term))
	if _, err := d.c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	from := d.since()
	newLeader, newTerm := d.newLeader(rest, term)
	to := l.during("with the leader dead", []int{leader}, from)
	d.step("restart replica %d", leader)
	if err := d.c.StartPeer(leader); err != nil {
		t.Fatal(err)
	}
	l.unanswered([]int{leader}, newLeader, from, to, fmt.Sprintf("replica %d was dead", leader))
	e, err := d.c.WaitEvent(ctx(t), leader, func(e eventlog.Event) bool { return e.Ev == eventlog.DirStart })
	if err != nil {
		t.Fatal(err)
	}
	if saved, _ := e.Int(eventlog.FieldTerm); saved < term {
		t.Errorf("replica %d led in term %d, but restarted from term %d: %s", leader, term, saved, eventlog.Format(e))
	}

	l.next(fmt.Sprintf("restarted replica %d", leader))
	d.rejoined(leader, term)
	l.waitKnown("after the restart", d.since())
	t.Logf("replica %d led in term %d; killed, the others elected %d in term %d", leader, term, newLeader, newTerm)
	d.finish(l)
}

// TestNetDirectoryPauseLeader SIGSTOPs the leader under load until the
// others have elected one of themselves (an election timeout at least)
// and answered, then SIGCONTs it: it learns the new term and follows.
// Lookups of topics announced during the pause wait at the stopped
// leader, and the clients' first operations after the resume are on new
// topics, so that an answer from the old leader's stale state would
// show.
func TestNetDirectoryPauseLeader(t *testing.T) {
	d := startDirNet(t, 3)
	l := d.load()
	l.waitKnown("before the pause", 0)
	leader, term := d.leader(d.client())
	probes := d.probers(leader, 2*dirTopics)

	rest := d.others(leader)
	l.next(fmt.Sprintf("stop replica %d, the leader in term %d", leader, term))
	if _, err := d.c.Pause(leader); err != nil {
		t.Fatal(err)
	}
	from := d.since()
	newLeader, newTerm := d.newLeader(rest, term)
	to := l.during("with the leader stopped", []int{leader}, from)
	topics := l.announced()
	if len(topics) == 0 {
		t.Fatal("no topic announced while the leader was stopped")
	}
	d.step("%d lookups of %v sent to the stopped replica %d", len(probes), topics, leader)
	waitProbes := l.probe(probes, topics)
	l.next(fmt.Sprintf("resume replica %d", leader))
	if _, err := d.c.Resume(leader); err != nil {
		t.Fatal(err)
	}
	l.unanswered([]int{leader}, newLeader, from, to, fmt.Sprintf("replica %d was stopped", leader))
	d.rejoined(leader, term)
	waitProbes()
	l.waitKnown("after the resume", d.since())
	t.Logf("replica %d led in term %d; stopped, the others elected %d in term %d", leader, term, newLeader, newTerm)
	d.finish(l)
}
