package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/eventlog"
)

// PubSubStep is one step of a publish/subscribe schedule: a client's
// action (Op PSAnnounce, PSSubscribe, PSUnsubscribe or PSWithdraw, by
// Client, on Topic, with QoS), an operator's move of Topic to group QoS
// or, if the directory refuses, to the next group that it accepts (Op
// PSMove, directory.Move commands sent by Client's directory client), or a
// fault: crash, start, pause or resume
// process Proc (LeaderPeer: the directory's leader then), isolate it from
// every other process, partition the processes into Side and the rest, or
// heal.
type PubSubStep struct {
	At         time.Duration
	Op         string
	Client     int
	Topic, QoS string
	Proc       int
	Side       []int
}

func (st PubSubStep) String() string {
	at := st.At.String()
	switch st.Op {
	case PSAnnounce:
		return fmt.Sprintf("%s %s announce %s %s", at, ClientName(st.Client), st.Topic, st.QoS)
	case PSSubscribe, PSUnsubscribe, PSWithdraw:
		return fmt.Sprintf("%s %s %s %s", at, ClientName(st.Client), st.Op, st.Topic)
	case PSMove:
		return fmt.Sprintf("%s %s move %s to %s", at, ClientName(st.Client), st.Topic, st.QoS)
	case "partition":
		return fmt.Sprintf("%s partition %v", at, st.Side)
	case "heal":
		return at + " heal"
	}
	p := strconv.Itoa(st.Proc)
	if st.Proc == LeaderPeer {
		p = "leader"
	}
	return fmt.Sprintf("%s %s %s", at, st.Op, p)
}

// PubSubSchedule is a publish/subscribe run: its system, steps in time
// order, and when it ends.
type PubSubSchedule struct {
	Seed              uint64
	Replicas, Clients int
	// QoS is each topic's QoS, as its publishers announce it.
	QoS   map[string]string
	Steps []PubSubStep
	End   time.Duration
}

func (sc PubSubSchedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, %d replicas, %d clients, until %v:", sc.Seed, sc.Replicas, sc.Clients, sc.End)
	for _, st := range sc.Steps {
		b.WriteString("\n  " + st.String())
	}
	return b.String()
}

// Settings of the publish/subscribe sweep's schedules.
const (
	// PubSubTopics is the number of topics, t0 to t<PubSubTopics-1>, over
	// three groups (the directory's MaxGroups, its least).
	PubSubTopics = 6
	psClients    = 5
	psFaultsFrom = time.Second
	psRepair     = 3200 * time.Millisecond
	psEnd        = 6 * time.Second
	// PubSubMoveSpacing is the directory's MoveSpacing in the sweep: small,
	// so that topics move in most runs.
	PubSubMoveSpacing = 4
	// psMoveWait is the clients' MoveWait in the sweep: short enough that
	// a Subscribe held by a move that never finishes (a publisher crashed
	// before it switched, and the directory keeps it pending) returns,
	// and a subscription waiting for a switch marker it will never get
	// (sent while it was cut off) stops waiting (after MovePoll and twice
	// MoveWait), before the run ends.
	psMoveWait = time.Second
)

// RandomPubSubSchedule draws the publish/subscribe sweep's schedule for a
// seed: 3 directory replicas and 5 clients; 6 topics over 3 groups, t0
// vsync and t1 total, announced first by client 0, the others of either
// QoS; each topic with a publisher, some with two; each client subscribed
// to 1 to 3 topics from 0.6 s; then, from 1 s to 3 s, late subscribes,
// unsubscribes, a withdraw (one seed in two), and 2 to 5 faults: a
// replica's crash (the leader half the time) and restart, a client's
// crash (restarted 2 times in 3), the leader paused and resumed, a client
// or the leader isolated, or the processes split at random, then healed.
// At 3.2 s every process is resumed and started and the network healed;
// the run ends at 6 s.
func RandomPubSubSchedule(seed uint64) PubSubSchedule {
	const reps = 3
	rng := rand.New(rand.NewPCG(seed, 0x9b5c))
	sc := PubSubSchedule{Seed: seed, Replicas: reps, Clients: psClients, QoS: map[string]string{}, End: psEnd}
	ms := func(lo, span int) time.Duration {
		return time.Duration(lo+rng.IntN(span)) * time.Millisecond
	}
	topic := func(i int) string { return "t" + strconv.Itoa(i) }
	for i := range PubSubTopics {
		q := "vsync"
		if i == 1 || i > 1 && rng.IntN(2) == 0 {
			q = "total"
		}
		sc.QoS[topic(i)] = q
	}
	add := func(st PubSubStep) { sc.Steps = append(sc.Steps, st) }
	add(PubSubStep{Op: PSAnnounce, Client: 0, Topic: "t0", QoS: "vsync"})
	add(PubSubStep{Op: PSAnnounce, Client: 0, Topic: "t1", QoS: "total"})
	pubs := map[string][]int{"t0": {0}, "t1": {0}}
	for i := 2; i < PubSubTopics; i++ {
		k := 1 + rng.IntN(psClients-1)
		pubs[topic(i)] = []int{k}
		add(PubSubStep{At: ms(600, 400), Op: PSAnnounce, Client: k, Topic: topic(i), QoS: sc.QoS[topic(i)]})
	}
	if rng.IntN(2) == 0 {
		t, k := topic(rng.IntN(PubSubTopics)), rng.IntN(psClients)
		pubs[t] = append(pubs[t], k)
		add(PubSubStep{At: ms(700, 600), Op: PSAnnounce, Client: k, Topic: t, QoS: sc.QoS[t]})
	}
	type sub struct {
		k int
		t string
	}
	var subs []sub
	for k := range psClients {
		for _, i := range rng.Perm(PubSubTopics)[:1+rng.IntN(3)] {
			subs = append(subs, sub{k, topic(i)})
			add(PubSubStep{At: ms(600, 600), Op: PSSubscribe, Client: k, Topic: topic(i)})
		}
	}
	for range 2 {
		k, t := rng.IntN(psClients), topic(rng.IntN(PubSubTopics))
		add(PubSubStep{At: ms(1500, 1200), Op: PSSubscribe, Client: k, Topic: t})
	}
	for range 1 + rng.IntN(2) {
		s := subs[rng.IntN(len(subs))]
		add(PubSubStep{At: ms(1400, 1400), Op: PSUnsubscribe, Client: s.k, Topic: s.t})
	}
	if rng.IntN(2) == 0 {
		t := topic(rng.IntN(PubSubTopics))
		add(PubSubStep{At: ms(1500, 1300), Op: PSWithdraw, Client: pubs[t][0], Topic: t})
	}
	n := reps + psClients
	at := psFaultsFrom
	for range 2 + rng.IntN(4) {
		at += ms(50, 450)
		switch rng.IntN(7) {
		case 0, 1: // a replica's crash
			p := rng.IntN(reps)
			if rng.IntN(2) == 0 {
				p = LeaderPeer
			}
			add(PubSubStep{At: at, Op: "crash", Proc: p})
			if p == LeaderPeer {
				for i := range reps { // the one that led, whichever it was
					add(PubSubStep{At: at + ms(200, 600), Op: "start", Proc: i})
				}
			} else {
				add(PubSubStep{At: at + ms(200, 600), Op: "start", Proc: p})
			}
		case 2: // a client's crash
			p := reps + rng.IntN(psClients)
			add(PubSubStep{At: at, Op: "crash", Proc: p})
			if rng.IntN(3) > 0 {
				add(PubSubStep{At: at + ms(300, 700), Op: "start", Proc: p})
			}
		case 3:
			add(PubSubStep{At: at, Op: "pause", Proc: LeaderPeer})
			for i := range reps {
				add(PubSubStep{At: at + ms(100, 400), Op: "resume", Proc: i})
			}
		case 4:
			add(PubSubStep{At: at, Op: "isolate", Proc: reps + rng.IntN(psClients)})
			add(PubSubStep{At: at + ms(200, 600), Op: "heal"})
		case 5:
			add(PubSubStep{At: at, Op: "isolate", Proc: LeaderPeer})
			add(PubSubStep{At: at + ms(200, 600), Op: "heal"})
		case 6:
			var side []int
			for i := range n {
				if rng.IntN(2) == 0 {
					side = append(side, i)
				}
			}
			if len(side) == 0 || len(side) == n {
				side = []int{rng.IntN(n)}
			}
			add(PubSubStep{At: at, Op: "partition", Side: side})
			add(PubSubStep{At: at + ms(200, 600), Op: "heal"})
		}
	}
	add(PubSubStep{At: psRepair, Op: "heal"})
	for i := range n {
		add(PubSubStep{At: psRepair, Op: "resume", Proc: i})
		add(PubSubStep{At: psRepair, Op: "start", Proc: i})
	}
	// Moves an operator asks for, drawn apart so that the schedules
	// above stay those of the seed: one during the faults, one after the
	// repair.
	mrng := rand.New(rand.NewPCG(seed, 0x9b5d))
	for _, from := range []int{800, 3300} {
		add(PubSubStep{At: time.Duration(from+mrng.IntN(1500)) * time.Millisecond, Op: PSMove, Client: mrng.IntN(psClients),
			Topic: topic(mrng.IntN(PubSubTopics)), QoS: "g" + strconv.Itoa(mrng.IntN(3))})
	}
	slices.SortStableFunc(sc.Steps, func(a, b PubSubStep) int { return int(a.At - b.At) })
	return sc
}

// Apply performs one step now.
func (s *PubSubSim) Apply(st PubSubStep) {
	switch st.Op {
	case PSAnnounce, PSSubscribe, PSUnsubscribe, PSWithdraw:
		s.Do(st.Client, st.Op, st.Topic, st.QoS)
		return
	case PSMove:
		s.move(st.Client, st.Topic, st.QoS, len(s.names))
		return
	}
	p := st.Proc
	if p == LeaderPeer {
		p = max(s.Leader(), 0)
	}
	switch st.Op {
	case "crash":
		s.Crash(p)
	case "start":
		s.Start(p)
	case "pause":
		s.Pause(p)
	case "resume":
		s.Resume(p)
	case "heal":
		s.Heal()
	case "isolate", "partition":
		side := st.Side
		if st.Op == "isolate" {
			side = []int{p}
		}
		var rest []int
		for i := range s.N() {
			if !slices.Contains(side, i) {
				rest = append(rest, i)
			}
		}
		s.Partition(side, rest)
	default:
		panic("sim: unknown step " + st.Op)
	}
}

// move has client k's directory client move topic to group, or if the
// directory refuses (the group carries another QoS, or holds the topic
// already), to the next group, trying tries groups.
func (s *PubSubSim) move(k int, topic, group string, tries int) {
	c := s.clients[k]
	if tries == 0 || !c.p.running {
		return
	}
	c.command(directory.Move{Topic: topic, Group: group}, func(call *DirCall) {
		if call.Op.Known && call.Result.Code != directory.CodeOK {
			i := slices.Index(s.names, group)
			s.move(k, topic, s.names[(i+1)%len(s.names)], tries-1)
		}
	})
}

// PubSubRun is the outcome of a publish/subscribe schedule.
type PubSubRun struct {
	Sim      *PubSubSim
	Schedule PubSubSchedule
}

// RunPubSub runs sc: it starts every process, does each step at its time
// and runs on to sc.End. The replicas draw Raft's election timeouts from
// crypto/rand: a test makes runs replayable with
// testing/cryptotest.SetGlobalRandom.
func RunPubSub(sc PubSubSchedule, tweak func(*PubSubSim)) PubSubRun {
	s, err := NewPubSub(PubSubConfig{Replicas: sc.Replicas, Clients: sc.Clients, Seed: sc.Seed, MoveSpacing: PubSubMoveSpacing,
		MoveWait: psMoveWait})
	if err != nil {
		panic(err)
	}
	if tweak != nil {
		tweak(s)
	}
	s.StartAll()
	for _, st := range sc.Steps {
		s.RunUntil(st.At, nil)
		s.Apply(st)
	}
	s.RunUntil(sc.End, nil)
	return PubSubRun{Sim: s, Schedule: sc}
}

// Check checks a publish/subscribe run: the clients' logs
// (check.PubSub, with the schedule's total order topics), each group's
// members' (check.Group, with total order for a group of QoS total),
// the replicas' (check.Directory), and the directory's operations and
// states (check.Linearizable within timeout, CheckReplicas,
// CheckExactlyOnce), liveness (Starved) and the moves (Moves). It
// returns what is wrong.
func (run PubSubRun) Check(timeout time.Duration) []string {
	s := run.Sim
	h := s.History()
	var out []string
	total := map[string]bool{}
	for t, q := range run.Schedule.QoS {
		if q == "total" { // check.PubSubOptions.Total names them: a key is a total topic
			total[t] = true
		}
	}
	for _, v := range check.PubSub(h, check.PubSubOptions{Total: total}) {
		out = append(out, "pubsub: "+v.String())
	}
	for _, g := range s.names {
		for _, v := range check.Group(GroupHistory(h, g), check.GroupOptions{Total: s.GroupQoS(g) == "total"}) {
			out = append(out, "group "+g+": "+v.String())
		}
	}
	for _, v := range check.Directory(h) {
		out = append(out, "directory: "+v.String())
	}
	if err := check.Linearizable(s.CheckedOps(), timeout); err != nil {
		out = append(out, err.Error())
	}
	out = append(out, s.CheckReplicas()...)
	out = append(out, s.CheckExactlyOnce()...)
	out = append(out, run.Starved()...)
	out = append(out, run.Moves()...)
	return out
}

// Starved checks that the clients are live after the repair: every
// subscription a running client ends with, in a member still in its
// group, handed over an event of its topic in the run's last second if
// the topic has a publisher then (one whose member is in its group).
func (run PubSubRun) Starved() []string {
	s := run.Sim
	from := Epoch.Add(run.Schedule.End - time.Second)
	type sub struct {
		node  string
		inc   uint64
		topic string
	}
	want := map[sub]bool{}
	for k, c := range s.clients {
		if !c.p.running {
			continue
		}
		for t, ps := range c.subs {
			if ps.closed || ps.m.ended != "" {
				continue
			}
			for _, p := range s.clients {
				if pm := p.pubs[t]; p.p.running && pm != nil && pm.m.ended == "" {
					want[sub{ClientName(k), c.p.inc, t}] = true
				}
			}
		}
	}
	h := s.History()
	for i := len(h) - 1; i >= 0 && h[i].TS.After(from); i-- {
		if e := h[i]; e.Ev == eventlog.PSDeliver {
			delete(want, sub{e.Node, e.Inc, e.Str(eventlog.FieldTopic)})
		}
	}
	var out []string
	for w := range want {
		out = append(out, fmt.Sprintf("not live: %s (incarnation %d) subscribes to %s, which has a publisher, and handed over none of its events in the last second",
			w.node, w.inc, w.topic))
	}
	slices.Sort(out)
	return out
}

// GroupHistory returns the events of group's members in h, and the
// faults.
func GroupHistory(h []eventlog.Event, group string) []eventlog.Event {
	var out []eventlog.Event
	for _, e := range h {
		if e.Node == eventlog.Control || e.Str(eventlog.FieldMember) != "" && e.Str(eventlog.FieldGroup) == group {
			out = append(out, e)
		}
	}
	return out
}
