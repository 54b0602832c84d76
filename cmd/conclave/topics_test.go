package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/conclave/conclave/directory"
)

// TestTopicsPrintsMeasuredWaste prints the listing of a directory state
// whose clients reported their counts, as conclave topics does after
// reading it (in JSON, as --json prints it): each topic's rate and
// counts, each group's waste ratio, "-" where nothing was counted.
func TestTopicsPrintsMeasuredWaste(t *testing.T) {
	// Moves by hand only: the reports below would move w out of a's group.
	s, err := directory.NewState(directory.StateConfig{MaxGroups: 3, MoveSpacing: -1})
	if err != nil {
		t.Fatal(err)
	}
	seq := map[string]uint64{}
	do := func(client string, op directory.Op) {
		t.Helper()
		seq[client]++
		b := s.Apply(s.Applied()+1, directory.EncodeCommand(directory.Command{Client: client, Seq: seq[client], Op: op}))
		if r, err := directory.DecodeResult(b); err != nil || r.Err() != nil {
			t.Fatalf("%+v: %v %v", op, err, r.Err())
		}
	}
	for _, topic := range []string{"a", "x", "y", "w"} { // w shares a's group g0
		do("pub", directory.Announce{Topic: topic, QoS: "total"})
	}
	do("sub", directory.Subscribe{Topic: "a"})
	do("pub", directory.Contacts{Group: "g0", Addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000"}})
	do("sub", directory.Report{Millis: 4000, Topics: []directory.TopicCount{{Topic: "a", Delivered: 30}, {Topic: "w", Filtered: 10}}})
	do("pub", directory.Report{Millis: 4000, Topics: []directory.TopicCount{{Topic: "a", Filtered: 30}, {Topic: "w", Filtered: 10}}})
	do("op", directory.Move{Topic: "y", Group: "g1"})

	var l directory.Listing
	if err := json.Unmarshal(s.Query([]byte{directory.QueryList}), &l); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	printListing(&out, l)
	want := `TOPIC  QOS    GROUP  PUBLISHERS  SUBSCRIBERS  EVENTS/S  DELIVERED  FILTERED  MOVED
a      total  g0     1           1            7.5       30         30        -
w      total  g0     1           0            2.5       0          20        -
x      total  g1     1           0            -         0          0         -
y      total  g1     1           0            -         0          0         from g2, 1 to switch

GROUP  QOS    TOPICS  WASTE  CONTACTS
g0     total  a w     62.5%  10.0.0.1:7000 10.0.0.2:7000
g1     total  x y     -
g2     total          -
0 of 3 groups free
`
	if got := trimLines(out.String()); got != want {
		t.Errorf("conclave topics printed\n%s\nwant\n%s", got, want)
	}
	b, err := json.Marshal(l.Groups[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"delivered":30`, `"filtered":50`, `"waste":0.625`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("--json prints group g0 as %s: no %s", b, field)
		}
	}
}

// trimLines removes the spaces that end the lines of s.
func trimLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}
