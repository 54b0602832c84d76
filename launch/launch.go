// Package launch starts and faults real `conclave peer` processes on one
// machine: the demo, the failover benchmark and the real-process tests use
// it. Each process writes its events as JSON lines to file descriptor 3
// (--events-fd 3), a pipe launch reads to follow leaders, views and
// deliveries; what it prints on stdout is kept as it is. Launch records
// what it does to the processes in <dir>/control.jsonl (node "control",
// each event naming its process as the process's own log does: proc),
// so the run's merged log and report show the faults next to their
// effects.
package launch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/transport"
)

// Config describes a cluster to launch.
type Config struct {
	// Binary is the conclave executable.
	Binary string
	// N is the number of peers.
	N int
	// Dir receives the peers' event logs and control.jsonl; Start removes
	// the logs of an earlier run from it, so that it holds one run.
	Dir string
	// Addrs, if set, are the peers' addresses; otherwise free loopback
	// ports are chosen.
	Addrs []string
	// Heartbeat and SuspectAfter are passed to every peer when non-zero.
	Heartbeat, SuspectAfter time.Duration
	// NoticeDelay is passed to every peer when non-zero; a negative one
	// passes 0 (notices in the step of the change).
	NoticeDelay time.Duration
	// Quorum starts every peer with --quorum.
	Quorum bool
	// LogHeartbeats starts every peer with --log-heartbeats.
	LogHeartbeats bool
	// Echo, if set, receives every line the peers print.
	Echo io.Writer
	// Command, if set, builds the command for peer i from the conclave
	// arguments (to run it inside a network namespace, say). The default
	// runs Binary directly. The command must pass file descriptor 3 on to
	// conclave, and must not set ExtraFiles itself.
	Command func(i int, args []string) *exec.Cmd
	// Args, if set, gives the conclave arguments of process i instead of
	// those of a peer of the cluster (to launch group members, say).
	// Launch appends "--events-fd 3" and the key file to them.
	Args func(i int, addrs []string) []string
	// Stdin gives every process a pipe on its standard input, written with
	// Write and closed with CloseStdin.
	Stdin bool
	// KeyFile is the cluster key every process is given (--key-file). By
	// default Start makes one, Dir/cluster.key, unless Unauthenticated.
	KeyFile string
	// Unauthenticated starts the processes without a key.
	Unauthenticated bool
	// TLS starts the processes with --tls.
	TLS bool
	// Name, if set, gives the node name process i logs under, which the
	// control events name it by (proc). By default launch reads it from
	// the process's arguments (NodeName), and failing that from the first
	// event the process writes.
	Name func(i int) string
}

// KeyFileName is the key file Start makes in Config.Dir.
const KeyFileName = "cluster.key"

// Cluster is a set of launched peers.
type Cluster struct {
	cfg     Config
	addrs   []string
	control *eventlog.Writer
	ctlFile *os.File

	mu      sync.Mutex
	procs   []*proc
	changed chan struct{} // closed and replaced on every report
}

type proc struct {
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	lines     []string         // everything it printed
	events    []eventlog.Event // everything it logged, decoded (see decode)
	raw       [][]byte         // lines it logged, not yet decoded into events
	node      string           // the node name of its first event
	leader    int              // last leader it logged
	since     time.Time        // when that event arrived
	view      []string         // member names of the last view it logged, sorted
	delivered map[string]bool  // data of the messages it logged as delivered
	stopped   bool             // SIGSTOPped
	exited    chan struct{}    // closed once its output is read and it exited
	waitErr   error            // once exited
}

// Start launches no process yet: it prepares the cluster's addresses and
// control log. Call StartPeer or StartAll.
func Start(cfg Config) (*Cluster, error) {
	if cfg.N < 2 {
		return nil, fmt.Errorf("launch: need at least 2 peers")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := eventlog.RemoveLogs(cfg.Dir); err != nil {
		return nil, err
	}
	addrs := cfg.Addrs
	if addrs == nil {
		var err error
		if addrs, err = FreeAddrs(cfg.N); err != nil {
			return nil, err
		}
	}
	if cfg.KeyFile == "" && !cfg.Unauthenticated {
		cfg.KeyFile = filepath.Join(cfg.Dir, KeyFileName)
		if _, err := transport.ReadKeyFile(cfg.KeyFile); err != nil {
			os.Remove(cfg.KeyFile)
			if err := transport.WriteKeyFile(cfg.KeyFile, transport.NewKey()); err != nil {
				return nil, err
			}
		}
	}
	f, err := eventlog.Create(cfg.Dir, eventlog.Control)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, addrs: addrs, ctlFile: f, procs: make([]*proc, cfg.N), changed: make(chan struct{})}
	c.control = eventlog.NewWriter(f, eventlog.Control, 0, &eventlog.Clock{}, nil)
	c.control.OnLoss(func(err error) {
		fmt.Fprintf(os.Stderr, "launch: cannot write the control log: %v: the lines that cannot be written are lost, and counted\n", err)
	})
	return c, nil
}

// FreeAddrs returns n loopback addresses with ports free right now.
func FreeAddrs(n int) ([]string, error) {
	var out []string
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// Addrs returns the peers' addresses.
func (c *Cluster) Addrs() []string { return c.addrs }

// Args returns the conclave arguments that start peer i (StartPeer adds
// --events-fd 3).
func (c *Cluster) Args(i int) []string {
	if c.cfg.Args != nil {
		return c.cfg.Args(i, c.addrs)
	}
	args := []string{"peer", "--id", strconv.Itoa(i), "--peers", strings.Join(c.addrs, ","), "--log-dir", c.cfg.Dir}
	if c.cfg.Heartbeat > 0 {
		args = append(args, "--heartbeat", c.cfg.Heartbeat.String())
	}
	if c.cfg.SuspectAfter > 0 {
		args = append(args, "--suspect-after", c.cfg.SuspectAfter.String())
	}
	switch {
	case c.cfg.NoticeDelay > 0:
		args = append(args, "--notice-delay", c.cfg.NoticeDelay.String())
	case c.cfg.NoticeDelay < 0:
		args = append(args, "--notice-delay", "0s")
	}
	if c.cfg.Quorum {
		args = append(args, "--quorum")
	}
	if c.cfg.LogHeartbeats {
		args = append(args, "--log-heartbeats")
	}
	return args
}

// Log records a control event, such as a story step.
func (c *Cluster) Log(ev string, kv ...any) eventlog.Event {
	f := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	return c.control.Log(ev, f)
}

// StartPeer starts peer i, which must not be running.
func (c *Cluster) StartPeer(i int) error {
	if p := c.proc(i); p != nil && !isDone(p.exited) {
		return fmt.Errorf("launch: peer %d is already running", i)
	}
	args := append(slices.Clone(c.Args(i)), "--events-fd", "3")
	if c.cfg.KeyFile != "" {
		args = append(args, "--key-file", c.cfg.KeyFile)
	}
	if c.cfg.TLS {
		args = append(args, "--tls")
	}
	var cmd *exec.Cmd
	if c.cfg.Command != nil {
		cmd = c.cfg.Command(i, args)
	} else {
		cmd = exec.Command(c.cfg.Binary, args...)
	}
	if len(cmd.ExtraFiles) > 0 {
		return fmt.Errorf("launch: peer %d: the command has ExtraFiles, but file descriptor 3 carries the events", i)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	var in io.WriteCloser
	if c.cfg.Stdin {
		if in, err = cmd.StdinPipe(); err != nil {
			return err
		}
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.ExtraFiles = []*os.File{evW}
	err = cmd.Start()
	evW.Close() // the child has its copy: the pipe ends when the child does
	if err != nil {
		evR.Close()
		return fmt.Errorf("launch: peer %d: %w", i, err)
	}
	p := &proc{cmd: cmd, stdin: in, leader: -1, since: time.Now(), delivered: map[string]bool{}, exited: make(chan struct{})}
	c.mu.Lock()
	c.procs[i] = p
	c.mu.Unlock()
	c.Log(eventlog.ProcStart, c.procFields(i, cmd.Process.Pid)...)
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		defer evR.Close()
		c.readEvents(p, evR)
	}()
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			line := sc.Text()
			if c.cfg.Echo != nil {
				fmt.Fprintln(c.cfg.Echo, line)
			}
			c.mu.Lock()
			p.lines = append(p.lines, line)
			c.notifyLocked()
			c.mu.Unlock()
		}
		io.Copy(io.Discard, out) // after a line too long, so the process never blocks
		<-evDone
		p.waitErr = cmd.Wait()
		close(p.exited)
		c.mu.Lock()
		c.notifyLocked()
		c.mu.Unlock()
	}()
	return nil
}

// StartAll starts every peer.
func (c *Cluster) StartAll() error {
	for i := range c.procs {
		if err := c.StartPeer(i); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// signal sends sig to peer i and records ev; it returns the time just
// before the signal was sent.
func (c *Cluster) signal(i int, sig syscall.Signal, ev string) (time.Time, error) {
	p := c.proc(i)
	if p == nil || isDone(p.exited) {
		return time.Time{}, fmt.Errorf("launch: peer %d is not running", i)
	}
	e := c.Log(ev, c.procFields(i, p.cmd.Process.Pid)...)
	if err := p.cmd.Process.Signal(sig); err != nil {
		return e.TS, err
	}
	c.mu.Lock()
	switch sig {
	case syscall.SIGSTOP:
		p.stopped = true
	case syscall.SIGCONT:
		p.stopped = false
	}
	c.mu.Unlock()
	return e.TS, nil
}

// Kill sends SIGKILL to peer i and waits for it to exit. It returns the
// time the signal was sent.
func (c *Cluster) Kill(i int) (time.Time, error) {
	t, err := c.signal(i, syscall.SIGKILL, eventlog.ProcKill)
	if err == nil {
		<-c.proc(i).exited
	}
	return t, err
}

// Pause sends SIGSTOP to peer i.
func (c *Cluster) Pause(i int) (time.Time, error) {
	return c.signal(i, syscall.SIGSTOP, eventlog.ProcStop)
}

// Resume sends SIGCONT to peer i.
func (c *Cluster) Resume(i int) (time.Time, error) {
	return c.signal(i, syscall.SIGCONT, eventlog.ProcCont)
}

// Term sends SIGTERM to peer i and waits up to 5 s for it to exit, then
// kills it.
func (c *Cluster) Term(i int) error {
	if _, err := c.signal(i, syscall.SIGTERM, eventlog.ProcTerm); err != nil {
		return err
	}
	p := c.proc(i)
	select {
	case <-p.exited:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			return fmt.Errorf("launch: peer %d exited with status %d after SIGTERM", i, code)
		}
		return nil
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("launch: peer %d did not stop within 5s of SIGTERM", i)
	}
}

// ErrExited means a peer being waited for exited.
var ErrExited = errors.New("peer exited")

// WaitOutput waits until the current process of peer i has printed a line
// containing each of subs (in any lines, in any order).
func (c *Cluster) WaitOutput(ctx context.Context, i int, subs ...string) error {
	missing := ""
	err := c.WaitLines(ctx, i, func(lines []string) bool {
		missing = ""
		for _, s := range subs {
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, s) }) {
				missing = s
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("peer %d did not print %q: %w", i, missing, err)
	}
	return nil
}

// WaitLines waits until ok holds for what the current process of peer i
// has printed. ok must not keep or change the lines.
func (c *Cluster) WaitLines(ctx context.Context, i int, ok func(lines []string) bool) error {
	return c.waitProc(ctx, i, func(p *proc) bool { return ok(p.lines) })
}

// waitProc waits until ok, called with c.mu held, holds for the current
// process of peer i.
func (c *Cluster) waitProc(ctx context.Context, i int, ok func(p *proc) bool) error {
	for {
		c.mu.Lock()
		ch, p := c.changed, c.procs[i]
		done := p != nil && ok(p)
		exited := p != nil && isDone(p.exited)
		c.mu.Unlock()
		if done {
			return nil
		}
		if exited {
			return ErrExited
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Write writes a line to the standard input of peer i (Config.Stdin).
func (c *Cluster) Write(i int, line string) error {
	p := c.proc(i)
	if p == nil || p.stdin == nil {
		return fmt.Errorf("launch: peer %d has no standard input", i)
	}
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

// CloseStdin closes the standard input of peer i (Config.Stdin).
func (c *Cluster) CloseStdin(i int) error {
	p := c.proc(i)
	if p == nil || p.stdin == nil {
		return fmt.Errorf("launch: peer %d has no standard input", i)
	}
	return p.stdin.Close()
}

// WaitExit waits until the current process of peer i has exited and
// returns its exit error (nil for status 0).
func (c *Cluster) WaitExit(ctx context.Context, i int) error {
	p := c.proc(i)
	if p == nil {
		return fmt.Errorf("launch: peer %d was never started", i)
	}
	select {
	case <-p.exited:
		return p.waitErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Output returns what the current process of peer i has printed.
func (c *Cluster) Output(i int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[i]; p != nil {
		return slices.Clone(p.lines)
	}
	return nil
}

// PID returns the process id of the current process of peer i, or 0 if
// it was never started or has exited.
func (c *Cluster) PID(i int) int {
	p := c.proc(i)
	if p == nil || isDone(p.exited) {
		return 0
	}
	return p.cmd.Process.Pid
}

func (c *Cluster) proc(i int) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[i]
}

// Close stops every peer still running (resuming paused ones first, then
// SIGTERM, then SIGKILL) and closes the control log. Its error includes
// the lines of the control log that could not be written.
func (c *Cluster) Close() error {
	var errs []error
	for i := range c.procs {
		p := c.proc(i)
		if p == nil || isDone(p.exited) {
			continue
		}
		c.mu.Lock()
		stopped := p.stopped
		c.mu.Unlock()
		if stopped {
			c.Resume(i)
		}
		if err := c.Term(i); err != nil {
			errs = append(errs, err)
		}
	}
	c.ctlFile.Close()
	if err := c.control.Err(); err != nil {
		errs = append(errs, fmt.Errorf("launch: control log: %w", err))
	}
	return errors.Join(errs...)
}

// Dir is where the logs are.
func (c *Cluster) Dir() string { return c.cfg.Dir }

// LogPath returns the path of peer i's event log.
func (c *Cluster) LogPath(i int) string {
	return filepath.Join(c.cfg.Dir, eventlog.PeerName(i)+".jsonl")
}
