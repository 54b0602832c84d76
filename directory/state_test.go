package directory_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/layers"
)

// machine applies commands to a State as a replica would: increasing
// indexes, each client numbering its commands 1, 2, 3...
type machine struct {
	t     testing.TB
	s     *directory.State
	index uint64
	seq   map[string]uint64
}

func newMachine(t testing.TB, cfg directory.StateConfig) *machine {
	t.Helper()
	s, err := directory.NewState(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &machine{t: t, s: s, seq: map[string]uint64{}}
}

// do applies op as client's next command and returns its result.
func (m *machine) do(client string, op directory.Op) directory.Result {
	m.t.Helper()
	m.seq[client]++
	return m.apply(directory.Command{Client: client, Seq: m.seq[client], Op: op})
}

// apply applies c at the next index, checks the invariants and decodes the
// result.
func (m *machine) apply(c directory.Command) directory.Result {
	m.t.Helper()
	m.index++
	return m.applyRaw(directory.EncodeCommand(c))
}

func (m *machine) applyRaw(cmd []byte) directory.Result {
	m.t.Helper()
	out := m.s.Apply(m.index, cmd)
	if err := m.s.CheckInvariants(); err != nil {
		m.t.Fatalf("after command %d: %v", m.index, err)
	}
	r, err := directory.DecodeResult(out)
	if err != nil {
		m.t.Fatalf("command %d: %v", m.index, err)
	}
	return r
}

// Stacks used by the tests: the shipped ones, the shipped vsync written
// otherwise, and a QoS of its own.
var (
	vsyncXML, _ = layers.ShippedXML("vsync")
	totalXML, _ = layers.ShippedXML("total")
	// vsync again: other spacing, attribute order, defaults left out, a
	// name and doc of its own.
	vsyncOtherXML = []byte(`<stack name="myvsync"><layer kind="detect"/><layer kind="membership"/>` +
		`<layer window="1024" kind="vsync"/><layer kind="bundle"/></stack>`)
	smallXML = []byte(`<stack name="small">
  <layer kind="detect"/>
  <layer kind="membership"/>
  <layer kind="vsync" window="16"/>
</stack>`)
)

func hashOf(t testing.TB, name string, xml []byte) string {
	t.Helper()
	d, err := layers.Registry().Parse(name, xml)
	if err != nil {
		t.Fatal(err)
	}
	return d.Hash()
}

func TestValidate(t *testing.T) {
	n := len(layers.Shipped())
	for _, tc := range []struct {
		cfg  directory.StateConfig
		want string // "" if valid
	}{
		{directory.StateConfig{MaxGroups: n + 1}, ""},
		{directory.StateConfig{MaxGroups: 64, MaxSessions: 5}, ""},
		{directory.StateConfig{MaxGroups: n}, fmt.Sprintf("max groups is %d: it must be above the number of shipped QoS, %d (total, vsync)", n, n)},
		{directory.StateConfig{MaxGroups: 0}, fmt.Sprintf("max groups is 0: it must be above the number of shipped QoS, %d", n)},
		{directory.StateConfig{MaxGroups: -3}, "max groups is -3"},
		{directory.StateConfig{MaxGroups: directory.MaxGroupsLimit + 1}, "over the limit of 65536"},
		{directory.StateConfig{MaxGroups: 8, MaxSessions: -1}, "max sessions is -1"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want one containing %q", tc.cfg, err, tc.want)
		}
		if _, err2 := directory.NewState(tc.cfg); (err == nil) != (err2 == nil) {
			t.Errorf("%+v: Validate says %v, NewState %v", tc.cfg, err, err2)
		}
	}
}

// step is one command of a scenario and what its result must be.
type step struct {
	client string
	op     directory.Op
	err    error  // the sentinel the result's error must match; nil for OK
	group  string // the group an OK result must name, if set
	qos    string // the QoS name it must name, if set
	msg    string // what the message must contain, if set
}

func TestScenarios(t *testing.T) {
	vsync, total := hashOf(t, "vsync", vsyncXML), hashOf(t, "total", totalXML)
	small := hashOf(t, "small", smallXML)
	ann := func(topic, qos string) directory.Announce { return directory.Announce{Topic: topic, QoS: qos} }
	annXML := func(topic, file string, xml []byte) directory.Announce {
		return directory.Announce{Topic: topic, QoS: file, XML: xml}
	}
	sub := func(topic string) directory.Subscribe { return directory.Subscribe{Topic: topic} }
	for _, tc := range []struct {
		name   string
		groups int
		steps  []step
	}{{
		name: "a topic per group while groups are free", groups: 4,
		steps: []step{
			{client: "p1", op: ann("a", "vsync"), group: "g0", qos: "vsync"},
			{client: "p2", op: ann("b", "total"), group: "g1", qos: "total"},
			{client: "p1", op: ann("c", "vsync"), group: "g2"},
			{client: "p3", op: ann("a", "vsync"), group: "g0"},
			{client: "p1", op: ann("d", "vsync"), group: "g3"},
		},
	}, {
		name: "then the group of the QoS with the fewest subscribers", groups: 3,
		steps: []step{
			{client: "p", op: ann("a", "vsync"), group: "g0"},
			{client: "p", op: ann("b", "vsync"), group: "g1"},
			{client: "p", op: ann("c", "total"), group: "g2"},
			{client: "s1", op: sub("a"), group: "g0"},
			{client: "s2", op: sub("a"), group: "g0"},
			{client: "s1", op: sub("b"), group: "g1"},
			{client: "p", op: ann("d", "vsync"), group: "g1"}, // g0 has 2 subscribers, g1 1
			{client: "s3", op: sub("d"), group: "g1"},         // now g1 has 2 too
			{client: "p", op: ann("e", "vsync"), group: "g0"}, // tie: lowest index
			{client: "p", op: ann("f", "total"), group: "g2"}, // the only group of total
		},
	}, {
		name: "a new QoS with every group taken", groups: 3,
		steps: []step{
			{client: "p", op: ann("a", "total"), group: "g0"},
			{client: "p", op: ann("b", "total"), group: "g1"},
			{client: "p", op: ann("c", "total"), group: "g2"},
			{client: "p", op: ann("d", "vsync"), err: directory.ErrNoGroup,
				msg: "no group left for QoS vsync (hash " + vsync + "): all 3 groups carry other QoS (total: g0 g1 g2)"},
			{client: "p", op: annXML("d", "small.xml", smallXML), err: directory.ErrNoGroup, msg: "for QoS small"},
			{client: "s", op: sub("d"), err: directory.ErrUnknownTopic}, // the refusals created nothing
		},
	}, {
		name: "a conflicting QoS names both", groups: 3,
		steps: []step{
			{client: "p1", op: ann("prices", "total"), group: "g0"},
			{client: "p2", op: ann("prices", "vsync"), err: directory.ErrQoSConflict,
				msg: `topic "prices" has QoS total (hash ` + total + `); this announce asks for vsync (hash ` + vsync + `)`},
			{client: "p2", op: annXML("prices", "small.xml", smallXML), err: directory.ErrQoSConflict,
				msg: "asks for small (hash " + small + ")"},
			{client: "s", op: sub("prices"), group: "g0", qos: "total"},
		},
	}, {
		name: "the same stack written otherwise is the same QoS", groups: 3,
		steps: []step{
			{client: "p1", op: ann("a", "vsync"), group: "g0", qos: "vsync"},
			{client: "p2", op: annXML("a", "mine.xml", vsyncOtherXML), group: "g0", qos: "vsync"},
			{client: "p2", op: annXML("b", "mine.xml", vsyncOtherXML), group: "g1", qos: "vsync"},
			{client: "p3", op: annXML("c", "", vsyncXML), group: "g2", qos: "vsync"},
		},
	}, {
		name: "a QoS of one's own", groups: 3,
		steps: []step{
			{client: "p", op: annXML("a", "small.xml", smallXML), group: "g0", qos: "small"},
			{client: "s", op: sub("a"), group: "g0", qos: "small"},
			{client: "p", op: ann("b", "vsync"), group: "g1"},
			{client: "p", op: ann("a", "vsync"), err: directory.ErrQoSConflict, msg: "has QoS small"},
		},
	}, {
		name: "bad QoS", groups: 3,
		steps: []step{
			{client: "p", op: ann("a", "fifo"), err: directory.ErrBadQoS, msg: `no shipped QoS "fifo" (shipped: total, vsync)`},
			{client: "p", op: ann("a", ""), err: directory.ErrBadQoS, msg: `names no QoS`},
			{client: "p", op: annXML("a", "bad.xml", []byte("<stack name=\"x\">\n  <layer kind=\"teleport\"/>\n</stack>")),
				err: directory.ErrBadQoS, msg: `bad.xml:2: unknown layer kind "teleport"`},
			{client: "p", op: annXML("a", "", []byte("<stack name=\"x\">\n<layer kind=\"detect\" heartbeat=\"fast\"/>")),
				err: directory.ErrBadQoS, msg: `qos.xml:2: layer "detect": heartbeat="fast" is not a duration`},
			{client: "p", op: annXML("a", "cut.xml", []byte("<stack name=\"x\">\n<layer")),
				err: directory.ErrBadQoS, msg: `cut.xml:2:`},
			{client: "s", op: sub("a"), err: directory.ErrUnknownTopic},
		},
	}, {
		name: "subscribers wait for an announce", groups: 3,
		steps: []step{
			{client: "s", op: sub("news"), err: directory.ErrUnknownTopic, msg: `topic "news" is not announced`},
			{client: "s", op: directory.Unsubscribe{Topic: "news"}, err: directory.ErrUnknownTopic},
			{client: "p", op: directory.Withdraw{Topic: "news"}, err: directory.ErrUnknownTopic},
			{client: "p", op: ann("news", "vsync"), group: "g0"},
			{client: "s", op: sub("news"), group: "g0", qos: "vsync"},
		},
	}, {
		name: "withdraw and unsubscribe keep the topic in its group", groups: 3,
		steps: []step{
			{client: "p", op: ann("a", "vsync"), group: "g0"},
			{client: "s", op: sub("a"), group: "g0"},
			{client: "s", op: directory.Unsubscribe{Topic: "a"}},
			{client: "s", op: directory.Unsubscribe{Topic: "a"}}, // not subscribed: nothing to do
			{client: "p", op: directory.Withdraw{Topic: "a"}},
			{client: "p", op: ann("b", "vsync"), group: "g1"},
			{client: "q", op: ann("a", "vsync"), group: "g0"},
			{client: "q", op: ann("a", "total"), err: directory.ErrQoSConflict},
		},
	}, {
		name: "invalid commands", groups: 3,
		steps: []step{
			{client: "p", op: ann("", "vsync"), err: directory.ErrBadCommand, msg: "empty topic"},
			{client: "p", op: sub(""), err: directory.ErrBadCommand},
			{client: "p", op: directory.Contacts{Group: "g3"}, err: directory.ErrBadCommand, msg: `no group "g3": the groups are g0 to g2`},
			{client: "p", op: directory.Contacts{Group: "g01"}, err: directory.ErrBadCommand},
			{client: "p", op: directory.Contacts{Group: "g-1"}, err: directory.ErrBadCommand},
			{client: "p", op: directory.Contacts{Group: "g+1"}, err: directory.ErrBadCommand},
			{client: "p", op: directory.Contacts{Group: "G1"}, err: directory.ErrBadCommand},
			{client: "p", op: directory.Contacts{Group: "g1", Addrs: []string{"a:1", ""}}, err: directory.ErrBadCommand, msg: "empty contact address"},
			{client: "p", op: nil, err: directory.ErrBadCommand, msg: "unknown operation 0"},
			{client: "p", op: directory.Contacts{Group: "g2", Addrs: []string{"a:1"}}},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t, directory.StateConfig{MaxGroups: tc.groups})
			for i, st := range tc.steps {
				r := m.do(st.client, st.op)
				err := r.Err()
				switch {
				case st.err == nil && err != nil:
					t.Fatalf("step %d (%s %T): %v", i, st.client, st.op, err)
				case st.err != nil && !errors.Is(err, st.err):
					t.Fatalf("step %d (%s %T): %v (%+v), want %v", i, st.client, st.op, err, r, st.err)
				case st.msg != "" && (err == nil || !strings.Contains(err.Error(), st.msg)):
					t.Fatalf("step %d: message %q does not contain %q", i, r.Msg, st.msg)
				case st.group != "" && r.Group != st.group:
					t.Fatalf("step %d (%s %T): group %s, want %s", i, st.client, st.op, r.Group, st.group)
				case st.qos != "" && r.QoS != st.qos:
					t.Fatalf("step %d (%s %T): QoS %s, want %s", i, st.client, st.op, r.QoS, st.qos)
				}
				if err == nil && r.Group != "" {
					checkTopicResult(t, m.s, r)
				}
			}
		})
	}
}

// checkTopicResult checks that a result naming a group carries the QoS's
// canonical XML, which parses to its hash, and the group's contacts.
func checkTopicResult(t *testing.T, s *directory.State, r directory.Result) {
	t.Helper()
	if got := hashOf(t, "result.xml", r.XML); got != r.Hash {
		t.Fatalf("result XML hashes to %s, result says %s:\n%s", got, r.Hash, r.XML)
	}
	q, ok := s.QoS(r.Hash)
	if !ok || q.Name != r.QoS || string(q.XML) != string(r.XML) {
		t.Fatalf("result QoS %s %s, state has %+v", r.QoS, r.Hash, q)
	}
	g := s.Groups()[slices.IndexFunc(s.Groups(), func(g directory.GroupInfo) bool { return g.Name == r.Group })]
	if g.Hash != r.Hash || !slices.Equal(g.Contacts, r.Contacts) {
		t.Fatalf("result %+v; group %+v", r, g)
	}
}

func TestContactsReachSubscribers(t *testing.T) {
	m := newMachine(t, directory.StateConfig{MaxGroups: 3})
	if r := m.do("p", directory.Announce{Topic: "a", QoS: "total"}); r.Group != "g0" || r.Contacts != nil {
		t.Fatalf("announce: %+v", r)
	}
	if r := m.do("p", directory.Contacts{Group: "g0", Addrs: []string{"10.0.0.2:7000", "10.0.0.1:7000", "10.0.0.2:7000"}}); r.Err() != nil {
		t.Fatal(r.Err())
	}
	want := []string{"10.0.0.1:7000", "10.0.0.2:7000"}
	if r := m.do("s", directory.Subscribe{Topic: "a"}); !slices.Equal(r.Contacts, want) {
		t.Fatalf("subscribe: contacts %q, want %q", r.Contacts, want)
	}
	if g := m.s.Groups()[0]; !slices.Equal(g.Contacts, want) {
		t.Fatalf("group g0 %+v", g)
	}
	m.do("p", directory.Contacts{Group: "g0"})
	if r := m.do("s2", directory.Subscribe{Topic: "a"}); r.Contacts != nil {
		t.Fatalf("after emptying: contacts %q", r.Contacts)
	}
}

func TestQueries(t *testing.T) {
	m := newMachine(t, directory.StateConfig{MaxGroups: 4})
	m.do("p2", directory.Announce{Topic: "b", QoS: "vsync"})
	m.do("p1", directory.Announce{Topic: "a", QoS: "total"})
	m.do("p1", directory.Announce{Topic: "b", QoS: "vsync"})
	m.do("s2", directory.Subscribe{Topic: "a"})
	m.do("s1", directory.Subscribe{Topic: "a"})
	m.do("s1", directory.Subscribe{Topic: "b"})
	m.do("p1", directory.Contacts{Group: "g1", Addrs: []string{"y:1", "x:1"}})

	want := []directory.TopicInfo{
		{Topic: "a", QoS: "total", Hash: hashOf(t, "total", totalXML), Group: "g1", Publishers: []string{"p1"}, Subscribers: []string{"s1", "s2"}},
		{Topic: "b", QoS: "vsync", Hash: hashOf(t, "vsync", vsyncXML), Group: "g0", Publishers: []string{"p1", "p2"}, Subscribers: []string{"s1"}},
	}
	if got := m.s.Topics(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Topics:\n%+v\nwant\n%+v", got, want)
	}
	if got, ok := m.s.Lookup("a"); !ok || fmt.Sprint(got) != fmt.Sprint(want[0]) {
		t.Fatalf("Lookup(a) = %+v, %v", got, ok)
	}
	if _, ok := m.s.Lookup("c"); ok {
		t.Fatal("Lookup(c) found a topic never announced")
	}
	wantGroups := []directory.GroupInfo{
		{Name: "g0", QoS: "vsync", Hash: want[1].Hash, Topics: []string{"b"}},
		{Name: "g1", QoS: "total", Hash: want[0].Hash, Topics: []string{"a"}, Contacts: []string{"x:1", "y:1"}},
		{Name: "g2"},
		{Name: "g3"},
	}
	if got := m.s.Groups(); fmt.Sprint(got) != fmt.Sprint(wantGroups) {
		t.Fatalf("Groups:\n%+v\nwant\n%+v", got, wantGroups)
	}
	wantClients := []directory.ClientInfo{
		{Client: "p1", Publishes: []string{"a", "b"}},
		{Client: "p2", Publishes: []string{"b"}},
		{Client: "s1", Subscribes: []string{"a", "b"}},
		{Client: "s2", Subscribes: []string{"a"}},
	}
	if got := m.s.Clients(); fmt.Sprint(got) != fmt.Sprint(wantClients) {
		t.Fatalf("Clients:\n%+v\nwant\n%+v", got, wantClients)
	}
	// The queries return copies.
	m.s.Topics()[0].Subscribers[0] = "x"
	m.s.Groups()[1].Contacts[0] = "x"
	q, _ := m.s.QoS(want[0].Hash)
	q.XML[0] = 'x'
	if err := m.s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if got := m.s.Topics(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("a query's result shares the state's memory")
	}
	if q2, _ := m.s.QoS(want[0].Hash); q2.XML[0] != '<' {
		t.Fatalf("QoS shares the state's memory")
	}
}

func TestResultErrors(t *testing.T) {
	for _, tc := range []struct {
		code directory.Code
		err  error
	}{
		{directory.CodeBadCommand, directory.ErrBadCommand},
		{directory.CodeStale, directory.ErrStale},
		{directory.CodeQoSConflict, directory.ErrQoSConflict},
		{directory.CodeUnknownTopic, directory.ErrUnknownTopic},
		{directory.CodeNoGroup, directory.ErrNoGroup},
		{directory.CodeBadQoS, directory.ErrBadQoS},
	} {
		r, err := directory.DecodeResult(directory.EncodeResult(directory.Result{Code: tc.code, Msg: "why"}))
		if err != nil {
			t.Fatal(err)
		}
		got := r.Err()
		if !errors.Is(got, tc.err) || got.Error() != "why" {
			t.Errorf("code %v: %v, want %v", tc.code, got, tc.err)
		}
		for _, other := range []error{directory.ErrBadCommand, directory.ErrStale, directory.ErrQoSConflict, directory.ErrUnknownTopic, directory.ErrNoGroup, directory.ErrBadQoS} {
			if other != tc.err && errors.Is(got, other) {
				t.Errorf("code %v is also %v", tc.code, other)
			}
		}
		var de *directory.Error
		if !errors.As(got, &de) || de.Code != tc.code {
			t.Errorf("code %v: not a *directory.Error with its code: %#v", tc.code, got)
		}
	}
	if (directory.Result{}).Err() != nil {
		t.Error("an OK result has an error")
	}
	// A code from a newer directory: an error, but none of the known ones.
	err := (directory.Result{Code: 200}).Err()
	if err == nil || errors.Is(err, directory.ErrBadCommand) || err.Error() != "directory: code-200" {
		t.Errorf("unknown code: %v", err)
	}
	if err := (directory.Result{Code: directory.CodeStale}).Err(); err.Error() != directory.ErrStale.Error() {
		t.Errorf("no message: %v", err)
	}
}

var _ directory.App = (*directory.State)(nil)
