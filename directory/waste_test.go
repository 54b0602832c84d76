package directory_test

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/conclave/conclave/directory"
)

func TestWaste(t *testing.T) {
	interest := map[string][]string{"a": {"p", "s1", "s2"}, "b": {"p", "s3"}, "c": {"q", "s1", "s1"}}
	assign := map[string]int{"a": 0, "b": 0, "c": 1}
	// g0 members p s1 s2 s3: a wastes 1 (s3), b 2 (s1 s2); g1 none.
	f, d := directory.Waste(assign, interest, nil)
	if f != 3 || d != 7 {
		t.Errorf("waste %v delivered %v, want 3 and 7", f, d)
	}
	f, d = directory.Waste(assign, interest, map[string]float64{"b": 10})
	if f != 21 || d != 25 {
		t.Errorf("with b at rate 10: waste %v delivered %v, want 21 and 25", f, d)
	}
	f, _ = directory.Waste(map[string]int{"a": 0, "b": 0, "c": 0}, interest, nil)
	if f != 2+3+3 { // members p q s1 s2 s3
		t.Errorf("all in one group: waste %v, want 8", f)
	}
}

func TestBestAssignment(t *testing.T) {
	interest := map[string][]string{"a": {"x"}, "b": {"x"}, "c": {"y"}, "d": {"y"}, "e": {"z"}}
	got, w, ok := directory.BestAssignment(interest, nil, nil, 3)
	want := map[string]int{"a": 0, "b": 0, "c": 1, "d": 1, "e": 2}
	if !ok || w != 0 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v waste %v %v, want %v with none", got, w, ok, want)
	}
	if _, w, _ := directory.BestAssignment(interest, nil, nil, 2); w != 3 { // z joins x or y: 2 topics × 1 + 1 × 1
		t.Errorf("in 2 groups: waste %v, want 3", w)
	}
	qos := map[string]string{"a": "A", "b": "B", "c": "C"}
	if _, _, ok := directory.BestAssignment(map[string][]string{"a": nil, "b": nil, "c": nil}, qos, nil, 2); ok {
		t.Error("3 QoS in 2 groups: an assignment")
	}
	got, _, ok = directory.BestAssignment(map[string][]string{"a": {"x"}, "b": {"x"}}, map[string]string{"a": "A", "b": "B"}, nil, 2)
	if !ok || got["a"] == got["b"] {
		t.Errorf("two QoS: %v %v", got, ok)
	}
}

func TestFreeThenLeastWaste(t *testing.T) {
	load := func(name, qos string, topics ...directory.TopicInterest) directory.GroupLoad {
		return directory.GroupLoad{Name: name, QoS: qos, Topics: len(topics), Interest: topics}
	}
	ti := func(topic string, clients ...string) directory.TopicInterest {
		return directory.TopicInterest{Topic: topic, Clients: clients}
	}
	for _, tc := range []struct {
		name   string
		groups []directory.GroupLoad
		want   string
	}{
		{"a free one first", []directory.GroupLoad{load("g0", "A", ti("a", "p")), load("g1", "")}, "g1"},
		// g0: p new, 2 topics × 1 + 3 strangers = 5; g1: p a member, 1 stranger.
		{"where the publisher is", []directory.GroupLoad{load("g0", "A", ti("a", "q", "s1"), ti("b", "q", "s2")), load("g1", "A", ti("c", "p", "s1"))}, "g1"},
		// p is new to both: g0 adds 1 topic + 1 stranger = 2, g1 2 topics + 1 stranger = 3.
		{"smaller group", []directory.GroupLoad{load("g0", "A", ti("a", "q")), load("g1", "A", ti("b", "r"), ti("c", "r"))}, "g0"},
		{"other QoS do not count", []directory.GroupLoad{load("g0", "B", ti("a", "p")), load("g1", "A", ti("b", "q", "s"))}, "g1"},
		// p is in both, with no stranger: ties, and g1 has fewer topics.
		{"ties: the fewest topics", []directory.GroupLoad{load("g0", "A", ti("a", "p"), ti("b", "p")), load("g1", "A", ti("c", "p"))}, "g1"},
		{"ties: the lowest", []directory.GroupLoad{load("g0", "B"), load("g1", "A", ti("a", "q")), load("g2", "A", ti("b", "r"))}, "g1"},
		{"no group of the QoS", []directory.GroupLoad{load("g0", "B", ti("a", "q"))}, ""},
	} {
		got, ok := directory.FreeThenLeastWaste{}.Place(directory.NewTopic{Name: "t", QoS: "A", Interested: []string{"p"}}, tc.groups)
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.name, got, ok, tc.want)
		}
	}
}

// instance is a small pub/sub workload: topics t0…, each with one
// publisher, and subscribers each taking a few topics with zipf-like
// popularity. events is the order the directory sees: the announces of
// the topics and, each after its topic's announce, the subscriptions.
type instance struct {
	topics   []string
	interest map[string][]string
	events   []event
}

type event struct {
	at     int
	client string
	op     directory.Op
}

// newInstance draws an instance; interleaved mixes subscriptions with
// announces, otherwise every topic is announced before anyone subscribes.
func newInstance(rng *rand.Rand, interleaved bool) instance {
	nt := 5 + rng.IntN(4)
	np := 1 + rng.IntN(3)
	ns := 3 + rng.IntN(6)
	in := instance{interest: map[string][]string{}}
	announced := map[string]int{}
	for i, k := range rng.Perm(nt) {
		name := fmt.Sprintf("t%d", i)
		in.topics = append(in.topics, name)
		pub := fmt.Sprintf("p%d", rng.IntN(np))
		in.interest[name] = []string{pub}
		announced[name] = 10 * k
		in.events = append(in.events, event{10 * k, pub, directory.Announce{Topic: name, QoS: "vsync"}})
	}
	weights := make([]float64, nt)
	for i := range weights {
		weights[i] = 1 / math.Pow(float64(i+1), 1.1)
	}
	for s := range ns {
		sub := fmt.Sprintf("s%d", s)
		chosen := map[int]bool{}
		for range 1 + rng.IntN(3) {
			x, total := rng.Float64(), 0.0
			for _, w := range weights {
				total += w
			}
			x *= total
			i := 0
			for ; i < nt-1 && x >= weights[i]; i++ {
				x -= weights[i]
			}
			if chosen[i] {
				continue
			}
			chosen[i] = true
			name := in.topics[i]
			in.interest[name] = append(in.interest[name], sub)
			at := 10*nt + 1
			if interleaved {
				at = announced[name] + 1 + rng.IntN(10*nt)
			}
			in.events = append(in.events, event{at, sub, directory.Subscribe{Topic: name}})
		}
	}
	slices.SortStableFunc(in.events, func(a, b event) int { return cmp.Compare(a.at, b.at) })
	return in
}

// placeWith runs the instance's commands through a state with policy and
// moves spaced by spacing (negative: none), and returns where its topics
// went.
func placeWith(t *testing.T, in instance, groups int, p directory.Policy, spacing int) map[string]int {
	m := newMachine(t, directory.StateConfig{MaxGroups: groups, Policy: p, MoveSpacing: spacing})
	for _, e := range in.events {
		if r := m.do(e.client, e.op); r.Code != 0 {
			t.Fatalf("%s %+v: %+v", e.client, e.op, r)
		}
	}
	out, _, _ := directory.Placement(m.s.Topics())
	return out
}

// TestPackingWaste measures the waste ratio of placements on random small
// instances against the optimum found by brute force, for a directory that
// sees every announce before any subscription and for one that sees them
// mixed. Run with -v to see the ratios.
func TestPackingWaste(t *testing.T) {
	const groups, instances = 3, 300
	// bound is how far above the optimum FreeThenLeastWaste's mean waste
	// ratio may be: measured 1.42 to 1.50 over seeds 1 to 4 and 11 (see
	// docs/directory.md).
	const bound = 1.6
	for _, interleaved := range []bool{false, true} {
		name := "announces first"
		if interleaved {
			name = "interleaved"
		}
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, 12))
			names := []string{"one group", "hash", "FreeThenFewest", "FreeThenLeastWaste", "optimum",
				"FreeThenLeastWaste, moves every 16", "FreeThenLeastWaste, moves every 4"}
			sum := make([]float64, len(names))
			worseThanFewest := 0
			for range instances {
				in := newInstance(rng, interleaved)
				one := directory.OneGroupPerQoS(in.topics, nil)
				hash, _ := directory.HashAssignment(in.topics, nil, groups)
				opt, _, ok := directory.BestAssignment(in.interest, nil, nil, groups)
				if !ok {
					t.Fatal("no optimum")
				}
				assigns := []map[string]int{one, hash,
					placeWith(t, in, groups, directory.FreeThenFewest{}, -1),
					placeWith(t, in, groups, directory.FreeThenLeastWaste{}, -1), opt,
					placeWith(t, in, groups, directory.FreeThenLeastWaste{}, 16),
					placeWith(t, in, groups, directory.FreeThenLeastWaste{}, 4)}
				w := make([]float64, len(assigns))
				for i, a := range assigns {
					f, d := directory.Waste(a, in.interest, nil)
					w[i] = f
					sum[i] += f / (f + d)
				}
				if slices.ContainsFunc(w, func(x float64) bool { return x < w[4] }) {
					t.Fatalf("the optimum %v is worse than %v", w[4], w)
				}
				if w[3] > w[2] {
					worseThanFewest++
				}
			}
			for i, n := range names {
				t.Logf("%-35s mean waste ratio %.3f", n, sum[i]/instances)
			}
			t.Logf("FreeThenLeastWaste worse than FreeThenFewest on %d of %d instances", worseThanFewest, instances)
			lw, opt := sum[3]/instances, sum[4]/instances
			t.Logf("FreeThenLeastWaste / optimum: %.2f; with moves every 16: %.2f, every 4: %.2f", lw/opt, sum[5]/instances/opt, sum[6]/instances/opt)
			if sum[6] > sum[3] {
				t.Errorf("moves raise the waste: %.3f with them, %.3f without", sum[6]/instances, lw)
			}
			if lw > sum[1]/instances {
				t.Errorf("FreeThenLeastWaste (%.3f) wastes more than hash placement (%.3f)", lw, sum[1]/instances)
			}
			if lw > sum[2]/instances {
				t.Errorf("FreeThenLeastWaste (%.3f) wastes more than FreeThenFewest (%.3f), the default it replaced", lw, sum[2]/instances)
			}
			if lw > bound*opt {
				t.Errorf("FreeThenLeastWaste (%.3f) over %.1f times the optimum (%.3f)", lw, bound, opt)
			}
		})
	}
}
