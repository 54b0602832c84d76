package directory_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/conclave/conclave/directory"
)

func TestFreeThenFewest(t *testing.T) {
	free := func(name string) directory.GroupLoad { return directory.GroupLoad{Name: name} }
	carrying := func(name, qos string, subs int) directory.GroupLoad {
		return directory.GroupLoad{Name: name, QoS: qos, Topics: 1, Subscribers: subs}
	}
	for _, tc := range []struct {
		name   string
		groups []directory.GroupLoad
		want   string // "" for none
	}{
		{"all free: the first", []directory.GroupLoad{free("g0"), free("g1")}, "g0"},
		{"a free one before those of the QoS", []directory.GroupLoad{carrying("g0", "A", 0), free("g1")}, "g1"},
		{"the lowest free", []directory.GroupLoad{carrying("g0", "B", 0), free("g1"), free("g2")}, "g1"},
		{"none free: fewest subscribers", []directory.GroupLoad{carrying("g0", "A", 3), carrying("g1", "A", 1), carrying("g2", "A", 2)}, "g1"},
		{"other QoS do not count", []directory.GroupLoad{carrying("g0", "B", 0), carrying("g1", "A", 5), carrying("g2", "A", 4)}, "g2"},
		{"ties: the lowest", []directory.GroupLoad{carrying("g0", "B", 0), carrying("g1", "A", 2), carrying("g2", "A", 2)}, "g1"},
		{"no group of the QoS", []directory.GroupLoad{carrying("g0", "B", 0), carrying("g1", "C", 0)}, ""},
		{"no groups", nil, ""},
	} {
		got, ok := directory.FreeThenFewest{}.Place(directory.NewTopic{Name: "t", QoS: "A"}, tc.groups)
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.name, got, ok, tc.want)
		}
	}
}

// badPolicy answers what it is told to.
type badPolicy struct{ group string }

func (p badPolicy) Place(directory.NewTopic, []directory.GroupLoad) (string, bool) {
	return p.group, true
}

func TestPolicyAnswersChecked(t *testing.T) {
	m := newMachine(t, directory.StateConfig{MaxGroups: 3, Policy: badPolicy{"g1"}})
	m.do("p", directory.Announce{Topic: "a", QoS: "total"})
	for _, tc := range []struct {
		group, msg string
	}{
		{"g1", `the placement policy chose group g1 for topic "b" of QoS vsync (hash ` + hashOf(t, "vsync", vsyncXML) + `), but it carries QoS total`},
		{"g7", `the placement policy chose "g7" for topic "b", which is not a group`},
	} {
		m.s = restoreWith(t, m.s, directory.StateConfig{MaxGroups: 3, Policy: badPolicy{tc.group}})
		r := m.do("p", directory.Announce{Topic: "b", QoS: "vsync"})
		if r.Code != directory.CodeNoGroup || !strings.HasPrefix(r.Msg, tc.msg) {
			t.Errorf("policy answering %s: %+v\nwant the message %s", tc.group, r, tc.msg)
		}
	}
}

// restoreWith returns a state of configuration cfg restored from s.
func restoreWith(t testing.TB, s *directory.State, cfg directory.StateConfig) *directory.State {
	t.Helper()
	n, err := directory.NewState(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Restore(s.Snapshot()); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPlacementInvariants applies random commands — announces of few
// topics with several QoS, subscriptions, withdrawals, contacts, retries
// and stale retries, garbage — and checks after each what must hold
// whatever the commands: a topic keeps the group and QoS it first got, a
// group the QoS it first carried; results name only groups g0 to
// g<MaxGroups-1>; the invariants hold. Two more replicas apply the same
// commands, one of them restarted from a snapshot now and then: every
// result and snapshot is the same on all three.
func TestPlacementInvariants(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 5
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { randomRun(t, seed, 400) })
	}
}

func randomRun(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	cfg := directory.StateConfig{MaxGroups: 3 + rng.IntN(4), MaxSessions: 3 + rng.IntN(6), MoveSpacing: []int{-1, 1, 4, 0}[rng.IntN(4)]}
	m := newMachine(t, cfg)
	twin := newMachine(t, cfg)
	restarted := newMachine(t, cfg)
	topicGroup, topicQoS, groupQoS := map[string]string{}, map[string]string{}, map[string]string{}
	topicMoves := map[string]uint64{}
	prevInfo := map[string]directory.TopicInfo{} // each topic at the step before
	ownMoves := 0                                // moves of the topic a client's own command named
	sent := map[string][][]byte{}                // each client's commands, by seq-1
	qosChoices := []directory.Announce{
		{QoS: "vsync"}, {QoS: "total"}, {QoS: "small.xml", XML: smallXML}, {QoS: "mine.xml", XML: vsyncOtherXML},
		{QoS: "fifo"}, {XML: []byte("<stack>")},
	}
	for step := range steps {
		client := fmt.Sprintf("c%d", rng.IntN(5))
		topic := fmt.Sprintf("t%d", rng.IntN(10))
		var cmd []byte
		switch k := rng.IntN(20); {
		case k < 2 && len(sent[client]) > 0: // a retry, perhaps stale
			cmds := sent[client]
			cmd = cmds[len(cmds)-1-rng.IntN(min(len(cmds), 3))]
		case k < 3:
			cmd = []byte{1, byte(rng.IntN(8)), byte(rng.IntN(256))}
		default:
			var op directory.Op
			switch k % 6 {
			case 0, 1:
				a := qosChoices[rng.IntN(len(qosChoices))]
				a.Topic = topic
				op = a
			case 2:
				op = directory.Subscribe{Topic: topic}
			case 3:
				if rng.IntN(2) == 0 {
					op = directory.Unsubscribe{Topic: topic}
				} else {
					op = directory.Withdraw{Topic: topic}
				}
			case 4:
				op = directory.Contacts{Group: fmt.Sprintf("g%d", rng.IntN(cfg.MaxGroups+1)), Addrs: []string{fmt.Sprintf("h%d:1", rng.IntN(3))}}
			case 5:
				if rng.IntN(2) == 0 {
					op = directory.Move{Topic: topic, Group: fmt.Sprintf("g%d", rng.IntN(cfg.MaxGroups+1))}
				} else {
					op = directory.MoveDone{Topic: topic, Moves: uint64(rng.IntN(3))}
				}
			}
			cmd = directory.EncodeCommand(directory.Command{Client: client, Seq: uint64(len(sent[client]) + 1), Op: op})
			sent[client] = append(sent[client], cmd)
		}
		m.index += 1 + uint64(rng.IntN(2)) // raft's own entries leave gaps
		out := m.s.Apply(m.index, cmd)
		if err := m.s.CheckInvariants(); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		for _, other := range []*machine{twin, restarted} {
			if o := other.s.Apply(m.index, cmd); !bytes.Equal(o, out) {
				t.Fatalf("step %d: replicas disagree on a result:\n%q\n%q", step, out, o)
			}
		}
		if rng.IntN(25) == 0 {
			restarted.s = restoreWith(t, restarted.s, cfg)
		}
		r, err := directory.DecodeResult(out)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if r.Group != "" {
			c, _ := directory.DecodeCommand(cmd)
			var topic string
			switch op := c.Op.(type) {
			case directory.Announce:
				topic = op.Topic
			case directory.Subscribe:
				topic = op.Topic
			}
			if g, ok := topicGroup[topic]; ok && (g != r.Group && r.Moves == topicMoves[topic] || topicQoS[topic] != r.Hash) {
				t.Fatalf("step %d: topic %s in %s with %s, then in %s with %s", step, topic, g, topicQoS[topic], r.Group, r.Hash)
			}
			if topic != "" {
				topicQoS[topic] = r.Hash
			}
			if q, ok := groupQoS[r.Group]; ok && q != r.Hash {
				t.Fatalf("step %d: group %s carried %s, now %s", step, r.Group, q, r.Hash)
			}
			groupQoS[r.Group] = r.Hash
		}
		// A topic changes groups only by a move, one at a time, from the
		// group it was in, to a group of its QoS.
		for name := range topicQoS {
			info, ok := m.s.Lookup(name)
			g, known := topicGroup[name]
			switch {
			case !ok:
				t.Fatalf("step %d: topic %s is gone", step, name)
			case !known:
			case info.Moves == topicMoves[name] && info.Group != g:
				t.Fatalf("step %d: topic %s given group %s, now %+v", step, name, g, info)
			case info.Moves > topicMoves[name]+1 || info.Moves < topicMoves[name]:
				t.Fatalf("step %d: topic %s moved %d times, then %d", step, name, topicMoves[name], info.Moves)
			case info.Moves == topicMoves[name]+1 && (info.From != g || info.Group == g):
				t.Fatalf("step %d: topic %s in %s moved from %s to %s", step, name, g, info.From, info.Group)
			case info.Moves == topicMoves[name]+1:
				// A client whose own announce or subscribe moved its topic
				// was told the new group: in the role its command gave it,
				// nobody waits for it. In a role it had before (its
				// publisher, when it subscribes), it is in the old group
				// still, and switches as the others do.
				c, _ := directory.DecodeCommand(cmd)
				prev := prevInfo[name]
				pub, sub := slices.Contains(info.Switching, c.Client), slices.Contains(info.Following, c.Client)
				var own, bad bool
				switch op := c.Op.(type) {
				case directory.Announce:
					own = op.Topic == name
					bad = own && !slices.Contains(prev.Publishers, c.Client) && pub ||
						own && slices.Contains(prev.Subscribers, c.Client) && !sub
				case directory.Subscribe:
					own = op.Topic == name
					bad = own && !slices.Contains(prev.Subscribers, c.Client) && sub ||
						own && slices.Contains(prev.Publishers, c.Client) && !pub
				}
				if bad {
					t.Fatalf("step %d: %s's command moved %s, and the move waits for it in its new role, or not in its old one: before %+v, now %+v",
						step, c.Client, name, prev, info)
				}
				if own {
					ownMoves++
				}
			}
			if q, ok := groupQoS[info.Group]; ok && q != info.Hash {
				t.Fatalf("step %d: group %s carried %s, now %s", step, info.Group, q, info.Hash)
			}
			groupQoS[info.Group] = info.Hash
			topicGroup[name], topicMoves[name] = info.Group, info.Moves
			prevInfo[name] = info
		}
		if len(groupQoS) > cfg.MaxGroups {
			t.Fatalf("step %d: %d groups used, MaxGroups %d", step, len(groupQoS), cfg.MaxGroups)
		}
	}
	for _, other := range []*machine{twin, restarted} {
		if !bytes.Equal(m.s.Snapshot(), other.s.Snapshot()) {
			t.Fatal("replicas end with different snapshots")
		}
	}
	t.Logf("%d moves of the topic a client's own announce or subscribe named", ownMoves)
}
