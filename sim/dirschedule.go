package sim

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/directory"
)

// LeaderPeer in a Fault's Peer stands for the directory's leader at the
// time of the fault (DirSim.Apply); schedules write it "leader".
const LeaderPeer = -1

// Apply performs one fault now, as Net.Apply does, with these
// differences: a Peer of LeaderPeer is the replica that leads then
// (replica 0 if none does); crashall crashes every replica at once;
// reset, cut and delay act on the link from replica Peer to the next
// replica. Partitions split the replicas as Net.Apply does, and put
// client 0 with the lower ids (the isolated replica, the first half),
// the other clients with the rest, so that a client may be cut off with
// a minority, even with a deposed leader.
func (s *DirSim) Apply(f Fault) {
	if f.Op == "crashall" {
		for i := range s.reps {
			s.Crash(i)
		}
		return
	}
	if f.Peer == LeaderPeer {
		f.Peer = max(s.Leader(), 0)
	}
	r := len(s.reps)
	next := (f.Peer + 1) % r
	var a, b []int // replicas
	switch f.Op {
	case "reset":
		s.Reset(f.Peer, next)
		return
	case "cut":
		s.Cut(f.Peer, next)
		return
	case "delay":
		s.Delay(f.Peer, next, f.D)
		return
	case "split":
		p := min(f.Peer, r-2) // a split must split the replicas
		for i := range r {
			if i <= p {
				a = append(a, i)
			} else {
				b = append(b, i)
			}
		}
	case "isolate":
		a = []int{f.Peer}
		for i := range r {
			if i != f.Peer {
				b = append(b, i)
			}
		}
	case "bridge":
		a, b = bridgeHalves(r, f.Peer)
	default:
		s.Net.Apply(f)
		return
	}
	for k := range s.clients {
		if k == 0 {
			a = append(a, r+k)
		} else {
			b = append(b, r+k)
		}
	}
	if f.Op == "bridge" {
		s.Bridge(a, b, f.Peer)
	} else {
		s.Partition(a, b)
	}
}

// Settings of the directory sweep's schedules.
const (
	// DirSweepClients is the number of clients of a schedule.
	DirSweepClients = 2
	// dirFaultsFrom is when the first fault may come: the cluster has
	// elected its first leader.
	dirFaultsFrom = 500 * time.Millisecond
	// dirAfterRepair is how long the workload goes on after the repair.
	dirAfterRepair = time.Second
)

// RandomDirSchedule draws the directory sweep's schedule for a seed: 3
// replicas, or 5 for one seed in three; 1 to 8 faults, 50 to 600 ms apart,
// of every kind: crash (the leader half the time), start, pause (the
// leader half the time), resume, a reset of connections, a one-way cut,
// isolating one replica (the leader half the time), splitting the
// replicas in two, a bridge, a delay of up to 300 ms on a link, a heal, or
// a crash of every replica, which restarts them one by one up to 500 ms
// later. It ends with everything repaired: the network healed, every
// replica resumed and started.
func RandomDirSchedule(seed uint64) Schedule {
	n := 3
	if seed%3 == 2 {
		n = 5
	}
	rng := rand.New(rand.NewPCG(seed, 0xd15c))
	sc := Schedule{N: n, Seed: seed}
	kinds := []string{"crash", "crash", "start", "pause", "resume", "reset", "cut", "isolate", "isolate",
		"split", "bridge", "delay", "heal", "crashall"}
	at := dirFaultsFrom
	for k := rng.IntN(8) + 1; k > 0; k-- {
		at += 50*time.Millisecond + time.Duration(rng.Int64N(int64(550*time.Millisecond)))
		f := Fault{At: at, Op: kinds[rng.IntN(len(kinds))], Peer: rng.IntN(n)}
		switch f.Op {
		case "crash", "pause", "isolate":
			if rng.IntN(2) == 0 {
				f.Peer = LeaderPeer
			}
		case "split":
			f.Peer = rng.IntN(n - 1)
		case "heal", "crashall":
			f.Peer = 0
		case "delay":
			f.D = time.Duration(rng.Int64N(int64(300 * time.Millisecond))).Round(time.Millisecond)
		}
		sc.Faults = append(sc.Faults, f)
		if f.Op == "crashall" {
			for i := range n {
				sc.Faults = append(sc.Faults, Fault{At: at + time.Duration(rng.Int64N(int64(500*time.Millisecond))), Op: "start", Peer: i})
			}
		}
	}
	slices.SortStableFunc(sc.Faults, func(a, b Fault) int { return int(a.At - b.At) })
	at = sc.Faults[len(sc.Faults)-1].At + time.Duration(rng.Int64N(int64(500*time.Millisecond)))
	sc.Faults = append(sc.Faults, Fault{At: at, Op: "heal"})
	for i := range n {
		sc.Faults = append(sc.Faults, Fault{At: at, Op: "resume", Peer: i}, Fault{At: at, Op: "start", Peer: i})
	}
	return sc
}

// DirRun is the outcome of a directory schedule.
type DirRun struct {
	Sim *DirSim
	// Final is the liveness check's operations: an announce and a lookup
	// after the repair, which must succeed.
	Final []*DirCall
}

// RunDir runs sc on a simulated directory of sc.N replicas and
// DirSweepClients clients (replicas snapshot every 64 entries and keep 16
// behind; a client waits 300 ms for a replica and gives an operation up
// after a second): it starts every process and the workload,
// applies the faults at their times, lets the workload run on for a
// second after the last fault, then stops it, waits for the clients to
// finish, and has client 0 announce a new topic and look it up. The
// replicas use Raft's randomized election timeouts, drawn from
// crypto/rand: a test makes runs replayable with
// testing/cryptotest.SetGlobalRandom.
func RunDir(sc Schedule, tweak func(*DirSim)) DirRun {
	s, err := NewDir(DirConfig{Replicas: sc.N, Clients: DirSweepClients, Seed: sc.Seed, SnapshotEvery: 64, CatchUp: 16,
		Attempt: 300 * time.Millisecond, Deadline: time.Second})
	if err != nil {
		panic(err)
	}
	if tweak != nil {
		tweak(s)
	}
	s.StartAll()
	s.Workload(true)
	for _, f := range sc.Faults {
		s.RunUntil(f.At, nil)
		s.Apply(f)
	}
	s.RunFor(dirAfterRepair)
	s.Workload(false)
	s.RunUntil(s.Now()+2*s.cfg.Deadline, s.Idle)
	run := DirRun{Sim: s}
	a := s.Announce(0, "final", "vsync")
	l := s.Lookup(0, "final")
	run.Final = []*DirCall{a, l}
	s.RunUntil(s.Now()+3*s.cfg.Deadline, func() bool { return l.Done })
	return run
}

// Check checks a directory run: every client operation is linearizable
// (check.Linearizable, within timeout), the replicas agree and keep the
// State's invariants (CheckReplicas), the commands applied honour every
// operation's exactly-once (CheckExactlyOnce), and the final announce and
// lookup were answered (the announce may be refused with no-group when
// every group carries the other QoS; the lookup then finds no topic,
// which the linearizability check holds it to). It returns what is
// wrong.
func (run DirRun) Check(timeout time.Duration) []string {
	s := run.Sim
	var out []string
	if err := check.Linearizable(s.CheckedOps(), timeout); err != nil {
		out = append(out, err.Error())
	}
	out = append(out, s.CheckReplicas()...)
	out = append(out, s.CheckExactlyOnce()...)
	for _, c := range run.Final {
		// An announce may be refused for want of a group: an answer all
		// the same.
		if !c.Done || !c.Op.Known || c.Op.Code != check.DirOK && c.Op.Code != check.DirNoGroup && c.Op.Code != check.DirUnknown {
			out = append(out, fmt.Sprintf("not live after the repair: %s %s took %d tries and ended %s",
				c.Op.Kind, c.Op.Topic, c.Tries, outcome(c)))
		}
	}
	return out
}

func outcome(c *DirCall) string {
	switch {
	case !c.Done:
		return "without an answer"
	case !c.Op.Known:
		return "given up"
	}
	return c.Op.Code
}

// CheckedOps returns the clients' operations for check.Linearizable: every
// operation, but lookups that were never answered, which constrain
// nothing.
func (s *DirSim) CheckedOps() []check.DirOp {
	var out []check.DirOp
	for _, op := range s.ops {
		if op.Kind == check.DirLookup && !op.Known {
			continue
		}
		out = append(out, op)
	}
	return out
}

// CheckReplicas checks every running replica's State (CheckInvariants),
// that replicas at the same applied index hold the same state (equal
// snapshots), that every command applied at an index was the same, with
// the same result, whichever replica and incarnation applied it, and
// that the clients saw at most MaxGroups groups, each with one QoS.
func (s *DirSim) CheckReplicas() []string {
	out := slices.Clone(s.diverged)
	type seen struct {
		snap []byte
		who  string
	}
	at := map[uint64]seen{}
	for i, m := range s.reps {
		if !m.active {
			continue
		}
		if err := m.state.CheckInvariants(); err != nil {
			out = append(out, fmt.Sprintf("%s: %v", DirName(i), err))
		}
		a := m.r.Status().Applied
		snap := m.state.Snapshot()
		if prev, ok := at[a]; ok && string(prev.snap) != string(snap) {
			out = append(out, fmt.Sprintf("%s and %s have both applied up to index %d, and their states differ", prev.who, DirName(i), a))
		} else if !ok {
			at[a] = seen{snap, DirName(i)}
		}
	}
	qos := map[string]string{}
	for _, op := range s.ops {
		if !op.Known || op.Code != check.DirOK || op.Group == "" {
			continue
		}
		if q, ok := qos[op.Group]; ok && q != op.GotQoS {
			out = append(out, fmt.Sprintf("group %s carries both %s and %s", op.Group, q, op.GotQoS))
		}
		qos[op.Group] = op.GotQoS
	}
	if len(qos) > s.cfg.MaxGroups {
		out = append(out, fmt.Sprintf("%d groups used (%s), more than MaxGroups, %d",
			len(qos), strings.Join(slices.Sorted(maps.Keys(qos)), " "), s.cfg.MaxGroups))
	}
	return out
}

// CheckExactlyOnce checks the commands applied, in index order, against
// the docs/directory.md rules of exactly once and the clients' records:
// a command numbered below its client's last is refused as stale; the
// same number again returns the same outcome; and no operation of a
// client takes effect twice (under two sequence numbers: a retry is the
// same command, with the same number).
func (s *DirSim) CheckExactlyOnce() []string {
	owner := map[string]map[uint64]int{} // client → seq → its operation in s.calls
	for i, c := range s.calls {
		if owner[c.client] == nil {
			owner[c.client] = map[uint64]int{}
		}
		for _, q := range c.seqs {
			owner[c.client][q] = i
		}
	}
	type last struct {
		seq uint64
		res directory.Result
	}
	lasts := map[string]last{}
	took := map[int][]uint64{} // operation → the indexes where it took effect
	var out []string
	for _, idx := range slices.Sorted(maps.Keys(s.applied)) {
		a := s.applied[idx]
		c, err := directory.DecodeCommand(a.cmd)
		if err != nil {
			continue
		}
		r, err := directory.DecodeResult(a.result)
		if err != nil {
			out = append(out, fmt.Sprintf("index %d: the result does not decode: %v", idx, err))
			continue
		}
		l := lasts[c.Client]
		switch {
		case c.Seq < l.seq:
			if r.Code != directory.CodeStale {
				out = append(out, fmt.Sprintf("index %d: command %d of client %s, applied after its command %d, ended %s, not %s",
					idx, c.Seq, c.Client, l.seq, r.Code, directory.CodeStale))
			}
		case c.Seq == l.seq:
			if r.Code != l.res.Code || r.Group != l.res.Group || r.QoS != l.res.QoS {
				out = append(out, fmt.Sprintf("index %d: command %d of client %s again ended %s %s %s, the first time %s %s %s",
					idx, c.Seq, c.Client, r.Code, r.QoS, r.Group, l.res.Code, l.res.QoS, l.res.Group))
			}
		default:
			lasts[c.Client] = last{c.Seq, r}
			if op, ok := owner[c.Client][c.Seq]; ok {
				took[op] = append(took[op], idx)
			}
		}
	}
	for _, op := range slices.Sorted(maps.Keys(took)) {
		if ix := took[op]; len(ix) > 1 {
			c := s.calls[op]
			out = append(out, fmt.Sprintf("client %s's %s %s took effect %d times, at indexes %v (sequence numbers %v)",
				c.client, c.op.Kind, c.op.Topic, len(ix), ix, c.seqs))
		}
	}
	return out
}
