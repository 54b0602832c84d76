package sim

import (
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
)

// psSweepCount is the number of schedules of the default
// publish/subscribe sweep.
const psSweepCount = 8

// runPubSubSeeded runs a publish/subscribe schedule with crypto/rand
// drawn from its seed, as runDirSeeded does.
func runPubSubSeeded(t *testing.T, sc PubSubSchedule, tweak func(*PubSubSim)) PubSubRun {
	cryptotest.SetGlobalRandom(t, sc.Seed)
	return RunPubSub(sc, tweak)
}

// psTally sums what the clients of runs handed over and filtered.
type psTally struct {
	runs, delivered, filtered, announces, subscribes, unsubscribes int
}

func (ty *psTally) add(run PubSubRun) {
	ty.runs++
	for _, e := range run.Sim.History() {
		switch e.Ev {
		case eventlog.PSDeliver:
			ty.delivered++
		case eventlog.PSAnnounce:
			ty.announces++
		case eventlog.PSSubscribe:
			ty.subscribes++
		case eventlog.PSUnsub:
			ty.unsubscribes++
		}
	}
	for k := range run.Sim.clients {
		for _, st := range run.Sim.Stats(k) {
			ty.filtered += int(st.Filtered)
		}
	}
}

// TestPubSubSweep runs random publish/subscribe schedules
// (RandomPubSubSchedule: 3 directory replicas, 5 clients, 6 topics of
// both QoS over 2 groups, late subscribes, unsubscribes, withdraws,
// crashes and restarts of replicas and clients, a paused leader,
// partitions) and checks each run (PubSubRun.Check). The schedules run
// one after the other, as the directory sweep's.
// CONCLAVE_PUBSUB_SWEEP=N runs N schedules, CONCLAVE_PUBSUB_SWEEP_FROM=S
// starts at seed S; -seed S runs seed S alone, -history printing its
// events.
// TestPubSubFoundSeeds replays schedules of the sweep that found bugs
// since fixed: 157, a leaving coordinator's Install lost with the
// connection a member closed on suspecting it; 22, a client whose
// subscribe moved a topic it also published not waited for as its
// publisher; 253, 606 and 688, a group split in two parts that never
// heard of each other; 218, a subscription that dropped the events it
// held while Subscribe settled logged them as covered; 450 (events lost
// across a move), 769 and 1028 (a starved subscriber) failed until the
// clients remembered the addresses they learnt of their groups; 1216, a
// subscription that took a second move before the first switched kept
// the first's registration and handed events over twice; 158, a
// subscription made while the move watcher's poll was under way missed a
// move the poll counted as seen; 3852, a subscription whose topic moved
// away and back before it followed registered again in its own member and
// handed events over twice; 3087 and 3650, a starved subscriber: a
// coordinator cut off from its group set the group's contacts to its own
// part, then left and emptied them, and a newcomer founded the group anew
// beside the live part, which had no view change to list itself again,
// until coordinators set their contacts again every second; 6386, 8721,
// 8856 and 11599, events the move check counted as lost, published in a
// view the subscriber's member never installed (excluded, split off, or
// listed but refusing it, its Install queued on a connection dialled
// across a partition), which no member gets, move or not; 11401, a
// subscription logged (ps_subscribe) as it was registered, whose client
// crashed while Subscribe held its events, claimed views it never
// handed over; 13431, a subscriber waiting for a switch marker sent while
// it was cut off handed over its publisher's events of the topic's next
// move back in its group, then the older events it kept from the group it
// was moving to, until events carried their move number. Each took a run
// of hundreds of seeds to find.
func TestPubSubFoundSeeds(t *testing.T) {
	for _, seed := range []uint64{22, 157, 158, 218, 253, 450, 606, 688, 769, 1028, 1216, 3087, 3650, 3852, 6386, 8721, 8856, 11401, 11599, 13431} {
		sc := RandomPubSubSchedule(seed)
		run := runPubSubSeeded(t, sc, nil)
		for _, x := range run.Check(dirCheckTimeout) {
			t.Errorf("seed %d: %s; replay with: go test ./sim -run 'TestPubSubSweep$' -seed %d -history -v", seed, x, seed)
		}
	}
}

func TestPubSubSweep(t *testing.T) {
	count, first := psSweepCount, uint64(1)
	if *seedFlag != 0 {
		count, first = 1, *seedFlag
	}
	if v, err := strconv.Atoi(os.Getenv("CONCLAVE_PUBSUB_SWEEP")); err == nil {
		count = v
	}
	if v, err := strconv.ParseUint(os.Getenv("CONCLAVE_PUBSUB_SWEEP_FROM"), 10, 64); err == nil {
		first = v
	}
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	start := time.Now()
	var ty psTally
	failed := 0
	for seed := first; seed < first+uint64(count) && failed < 3; seed++ {
		sc := RandomPubSubSchedule(seed)
		run := runPubSubSeeded(t, sc, nil)
		ty.add(run)
		if *historyFlag {
			t.Logf("schedule: %v", sc)
			for _, e := range run.Sim.History() {
				t.Log(eventlog.Format(e))
			}
		}
		v := run.Check(dirCheckTimeout)
		if len(v) == 0 {
			continue
		}
		failed++
		t.Errorf("seed %d fails; replay with: go test ./sim -run 'TestPubSubSweep$' -seed %d -history -v\nschedule: %v", seed, seed, sc)
		for _, x := range v[:min(len(v), 5)] {
			t.Errorf("  %s", x)
		}
	}
	el := time.Since(start)
	t.Logf("%d publish/subscribe schedules (seeds %d to %d) in %v: %.1f schedules/s; %d announces, %d subscribes, %d unsubscribes, %d events handed over, %d filtered",
		ty.runs, first, first+uint64(count)-1, el.Round(time.Millisecond), float64(ty.runs)/el.Seconds(),
		ty.announces, ty.subscribes, ty.unsubscribes, ty.delivered, ty.filtered)
	if ty.delivered == 0 || ty.filtered == 0 {
		t.Errorf("the clients handed over %d events and filtered %d: the sweep shows nothing", ty.delivered, ty.filtered)
	}
}

// TestPubSubRunReplays: a publish/subscribe schedule run twice records
// the same history.
func TestPubSubRunReplays(t *testing.T) {
	sc := RandomPubSubSchedule(7)
	var hist [2][]string
	for k := range hist {
		for _, e := range runPubSubSeeded(t, sc, nil).Sim.History() {
			hist[k] = append(hist[k], eventlog.Format(e))
		}
	}
	if !slices.Equal(hist[0], hist[1]) {
		t.Errorf("two runs differ")
	}
}

// brokenPubSub runs the sweep's first schedules with a broken client and
// returns, for each, the rules of check.PubSub that its run breaks.
func brokenPubSub(t *testing.T, seeds int, tweak func(*PubSubSim)) []map[string]bool {
	var out []map[string]bool
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		run := runPubSubSeeded(t, RandomPubSubSchedule(seed), tweak)
		total := map[string]bool{}
		for tp, q := range run.Schedule.QoS {
			if q == "total" { // check.PubSubOptions.Total names them: a key is a total topic
				total[tp] = true
			}
		}
		rules := map[string]bool{}
		for _, v := range check.PubSub(run.Sim.History(), check.PubSubOptions{Total: total}) {
			rules[v.Rule] = true
		}
		out = append(out, rules)
	}
	return out
}

// TestPubSubNoFilterIsCaught: a client that hands over the events of
// every topic of its groups, not only those it subscribes to, breaks
// TopicIsolation, in every schedule tried; the same schedules pass with
// the filter (TestPubSubSweep).
func TestPubSubNoFilterIsCaught(t *testing.T) {
	for i, rules := range brokenPubSub(t, 2, func(s *PubSubSim) { s.noFilter = true }) {
		if !rules["TopicIsolation"] {
			t.Errorf("seed %d: a client without its filter breaks %v, not TopicIsolation", i+1, rules)
		}
	}
}

// TestPubSubReorderIsCaught: clients (every other one) that hand over
// each topic's events two by two, swapped, break FIFO (a publisher's
// events out of their order) or TopicOrder (the subscribers of a total
// order topic disagree), in every schedule tried, though the members
// under them deliver in order and pass the group checkers.
func TestPubSubReorderIsCaught(t *testing.T) {
	for i, rules := range brokenPubSub(t, 2, func(s *PubSubSim) { s.reorder = true }) {
		if !rules["FIFO"] && !rules["TopicOrder"] {
			t.Errorf("seed %d: reordering clients break %v, neither FIFO nor TopicOrder", i+1, rules)
		}
	}
}

// TestPubSubAloneIsCaught: a client that joins a group through none of
// the contacts the directory gave it founds a group of its own, and its
// subscribers get nothing of the topic's publishers elsewhere: the
// safety checkers cannot see it, the liveness check (Starved) does, in
// every schedule tried.
func TestPubSubAloneIsCaught(t *testing.T) {
	for seed := uint64(1); seed <= 2; seed++ {
		run := runPubSubSeeded(t, RandomPubSubSchedule(seed), func(s *PubSubSim) { s.alone = true })
		if len(run.Starved()) == 0 {
			t.Errorf("seed %d: clients that ignore their contacts starve no subscriber", seed)
		}
	}
}

// TestPubSubSkipMoveWaitIsCaught: subscribers that switch to a topic's
// new group as soon as they joined it, without waiting for the
// publishers' switch markers, lose the events the publishers send in the
// old group meanwhile: Moves reports it. A subscriber that switches early
// loses only what its publishers send before they switch in turn, so not
// every schedule shows it: 2 of the first 20 did when this was written
// (6 and 15), schedules whose runs pass without the switch
// (TestPubSubSweep).
func TestPubSubSkipMoveWaitIsCaught(t *testing.T) {
	// A loss needs an event in flight at the switch: some schedules
	// have one. Which do changes with the protocols' timing, so the test
	// asks for one among the first 20.
	var caught []uint64
	for seed := uint64(1); seed <= 20; seed++ {
		run := runPubSubSeeded(t, RandomPubSubSchedule(seed), func(s *PubSubSim) { s.skipWait = true })
		if len(run.Moves()) > 0 {
			caught = append(caught, seed)
		}
	}
	if len(caught) == 0 {
		t.Error("in seeds 1 to 20, subscribers that switch without waiting lose nothing the move check sees")
	}
	t.Logf("caught at seeds %v", caught)
}

// TestPubSubContactsAtRestCostNoCommands: a group at rest keeps its
// contacts by reading them every second; it sends Contacts commands only
// when its views change or the list was changed behind its back, so the
// directory's log does not grow with every group every second.
func TestPubSubContactsAtRestCostNoCommands(t *testing.T) {
	sc := PubSubSchedule{Seed: 1, Replicas: 3, Clients: 2, QoS: map[string]string{"t0": "vsync"}, End: 10 * time.Second,
		Steps: []PubSubStep{
			{At: 100 * time.Millisecond, Op: PSAnnounce, Client: 0, Topic: "t0", QoS: "vsync"},
			{At: 200 * time.Millisecond, Op: PSSubscribe, Client: 1, Topic: "t0"},
		}}
	run := runPubSubSeeded(t, sc, nil)
	h := run.Sim.History()
	var early, late int
	for _, e := range h {
		if e.Ev != eventlog.DirApply || e.Str(eventlog.FieldOp) != "contacts" {
			continue
		}
		if e.TS.Sub(h[0].TS) < 4*time.Second {
			early++
		} else {
			late++
		}
	}
	if early == 0 || late != 0 {
		t.Fatalf("Contacts commands applied by the replicas: %d in the first 4 s, %d in the 6 s at rest after: want some, then none", early, late)
	}
}
