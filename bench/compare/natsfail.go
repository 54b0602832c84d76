package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// serverEnv names the environment variable that makes this program a
// NATS server: it holds the server's configuration as JSON.
const serverEnv = "COMPARE_NATS_SERVER"

// serveIfAsked runs a NATS server and exits if serverEnv is set: the
// harness starts its own binary this way to have servers it can SIGKILL.
// The server prints "ready" once it takes connections and stops when its
// standard input closes.
func serveIfAsked() {
	js := os.Getenv(serverEnv)
	if js == "" {
		return
	}
	err := serve(js)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nats server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func serve(js string) error {
	var c serverConfig
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		return err
	}
	o, err := c.options()
	if err != nil {
		return err
	}
	s, err := server.NewServer(o)
	if err != nil {
		return err
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		return errors.New("not ready")
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}

// procCluster is NATS servers running as processes of their own.
type procCluster struct {
	bin    string
	cfgs   []serverConfig
	cmds   []*exec.Cmd
	stdins []io.WriteCloser
	dir    string
}

// startProcs starts a cluster of n JetStream servers as processes.
func startProcs(n int) (*procCluster, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "compare-nats-procs-")
	if err != nil {
		return nil, err
	}
	p := &procCluster{bin: bin, dir: dir, cmds: make([]*exec.Cmd, n), stdins: make([]io.WriteCloser, n)}
	if p.cfgs, err = clusterConfigs(n, dir); err != nil {
		p.Close()
		return nil, err
	}
	for i := range n {
		if err := p.start(i); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// start starts server i and waits until it takes connections.
func (p *procCluster) start(i int) error {
	js, err := json.Marshal(p.cfgs[i])
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin)
	cmd.Env = append(os.Environ(), serverEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmds[i], p.stdins[i] = cmd, stdin
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := sc.Scan() && sc.Text() == "ready"
		ready <- ok
		io.Copy(io.Discard, stdout)
	}()
	select {
	case ok := <-ready:
		if !ok {
			return fmt.Errorf("nats server %d did not start", i)
		}
		return nil
	case <-time.After(20 * time.Second):
		return fmt.Errorf("nats server %d did not start in 20 s", i)
	}
}

// kill sends SIGKILL to server i and returns when it was sent.
func (p *procCluster) kill(i int) (time.Time, error) {
	t := time.Now()
	if err := p.cmds[i].Process.Kill(); err != nil {
		return t, err
	}
	p.cmds[i].Wait()
	p.stdins[i].Close()
	p.cmds[i] = nil
	return t, nil
}

// pause sends SIGSTOP to server i, waits until all its threads have
// stopped, and returns when the signal was sent. A thread may run on
// for a millisecond or more after the signal (seen here): long enough
// to acknowledge a publish sent after it.
func (p *procCluster) pause(i int) (time.Time, error) {
	t := time.Now()
	pid := p.cmds[i].Process.Pid
	if err := p.cmds[i].Process.Signal(syscall.SIGSTOP); err != nil {
		return t, err
	}
	for {
		stopped, err := allStopped(pid)
		if err != nil || stopped {
			return t, err
		}
		if time.Since(t) > 5*time.Second {
			return t, fmt.Errorf("nats server %d did not stop in 5 s", i)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// allStopped says whether every thread of process pid is stopped, as
// /proc tells.
func allStopped(pid int) (bool, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/stat")
		if err != nil {
			return false, err
		}
		// pid (comm) state …: the command may hold spaces and parentheses.
		k := bytes.LastIndexByte(b, ')')
		if k < 0 || k+2 >= len(b) {
			return false, fmt.Errorf("%s/%s/stat: %q", dir, t.Name(), b)
		}
		if b[k+2] != 'T' {
			return false, nil
		}
	}
	return true, nil
}

// resume sends SIGCONT to server i.
func (p *procCluster) resume(i int) error {
	return p.cmds[i].Process.Signal(syscall.SIGCONT)
}

// Close stops the servers and removes their state.
func (p *procCluster) Close() {
	for i, c := range p.cmds {
		if c != nil {
			c.Process.Kill()
			c.Wait()
			p.stdins[i].Close()
		}
	}
	os.RemoveAll(p.dir)
}

// tryEvery is how often the JetStream failover starts a new try to
// publish while none is acknowledged.
const tryEvery = 5 * time.Millisecond

// jetStreamFailover measures, runs times, the time from a signal to the
// leader of an R3 memory stream, served by a cluster of three nats-server
// processes, until the next publish is acknowledged: SIGKILL if mode is
// "crash", SIGSTOP if it is "hang". The publisher is connected to a
// surviving server and starts a new try every 5 ms until one is
// acknowledged, giving each at most a second. Between runs, the killed
// server is started again (the stopped one continued) and the stream
// waits until all its replicas are current.
func jetStreamFailover(runs int, mode string) ([]time.Duration, error) {
	if mode != "crash" && mode != "hang" {
		return nil, fmt.Errorf("failover mode %q, not crash or hang", mode)
	}
	p, err := startProcs(3)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(runs)*90*time.Second)
	defer cancel()
	js := make([]jetstream.JetStream, 3)
	for i, c := range p.cfgs {
		nc, err := nats.Connect(c.url(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		if err != nil {
			return nil, err
		}
		defer nc.Close()
		if js[i], err = jetstream.New(nc); err != nil {
			return nil, err
		}
	}
	if _, err := createStream(ctx, js[0], "FAIL", 3); err != nil {
		return nil, err
	}
	payload := make([]byte, 1024)
	// publish publishes through server i until a publish is acknowledged:
	// it starts a try every tryEvery, each waiting at most a second, so
	// that a try lost with the leader does not hide a new leader's
	// answer to the next one.
	publish := func(i int) error {
		var wg sync.WaitGroup
		defer wg.Wait() // after pcancel has ended the tries
		pctx, pcancel := context.WithCancel(ctx)
		defer pcancel()
		acked := make(chan struct{}, 1)
		var last atomic.Pointer[error]
		tick := time.NewTicker(tryEvery)
		defer tick.Stop()
		for {
			wg.Go(func() {
				actx, acancel := context.WithTimeout(pctx, time.Second)
				defer acancel()
				_, err := js[i].Publish(actx, "fail", payload, jetstream.WithRetryAttempts(0))
				if err != nil {
					last.Store(&err)
					return
				}
				select {
				case acked <- struct{}{}:
				default:
				}
			})
			select {
			case <-acked:
				return nil
			case <-ctx.Done():
				if err := last.Load(); err != nil {
					return fmt.Errorf("no publish was acknowledged: %w", *err)
				}
				return errors.New("no publish was acknowledged")
			case <-tick.C:
			}
		}
	}
	var lat []time.Duration
	for range runs {
		leader, err := awaitReplicas(ctx, js, p.cfgs)
		if err != nil {
			return nil, err
		}
		survivor := (leader + 1) % 3
		if err := publish(survivor); err != nil {
			return nil, err
		}
		stop, restart := p.kill, p.start
		if mode == "hang" {
			stop, restart = p.pause, p.resume
		}
		t0, err := stop(leader)
		if err != nil {
			return nil, err
		}
		if err := publish(survivor); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
		if err := restart(leader); err != nil {
			return nil, err
		}
	}
	return lat, nil
}

// awaitReplicas waits until the stream has a leader and two current
// replicas, and returns the leader's index.
func awaitReplicas(ctx context.Context, js []jetstream.JetStream, cfgs []serverConfig) (int, error) {
	var last error
	for {
		for _, j := range js {
			actx, cancel := context.WithTimeout(ctx, time.Second)
			s, err := j.Stream(actx, "FAIL")
			var info *jetstream.StreamInfo
			if err == nil {
				info, err = s.Info(actx)
			}
			cancel()
			if err != nil {
				last = err
				continue
			}
			cl := info.Cluster
			if cl == nil || cl.Leader == "" || len(cl.Replicas) != len(cfgs)-1 {
				last = errors.New("the stream has no leader or too few replicas")
				continue
			}
			healthy := true
			for _, r := range cl.Replicas {
				healthy = healthy && r.Current && !r.Offline
			}
			leader := slices.IndexFunc(cfgs, func(c serverConfig) bool { return c.Name == cl.Leader })
			if healthy && leader >= 0 {
				return leader, nil
			}
			last = errors.New("a replica is not current")
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("the stream did not recover: %v", last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
