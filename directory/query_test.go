package directory_test

import (
	"encoding/json"
	"testing"

	"github.com/conclave/conclave/directory"
)

func TestQueryAnswers(t *testing.T) {
	m := newMachine(t, directory.StateConfig{MaxGroups: 4})
	if r := m.do("p", directory.Announce{Topic: "prices", QoS: "total"}); r.Err() != nil {
		t.Fatal(r.Err())
	}
	var f directory.Found
	if err := json.Unmarshal(m.s.Query(directory.LookupQuery("prices")), &f); err != nil {
		t.Fatal(err)
	}
	if !f.Found || f.Topic.QoS != "total" || f.Topic.Group != "g0" || len(f.XML) == 0 || f.Error != "" {
		t.Fatalf("lookup prices: %+v", f)
	}
	f = directory.Found{}
	if err := json.Unmarshal(m.s.Query(directory.LookupQuery("news")), &f); err != nil || f.Found {
		t.Fatalf("lookup of a topic nobody announced: %+v, %v", f, err)
	}
	var l directory.Listing
	if err := json.Unmarshal(m.s.Query([]byte{directory.QueryList}), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Topics) != 1 || l.Topics[0].Topic != "prices" || len(l.Groups) != 4 || l.Groups[0].Topics[0] != "prices" {
		t.Fatalf("list: %+v", l)
	}
	if r := m.do("p", directory.Contacts{Group: "g0", Addrs: []string{"127.0.0.1:7001", "127.0.0.1:7000"}}); r.Err() != nil {
		t.Fatal(r.Err())
	}
	var g directory.GroupFound
	if err := json.Unmarshal(m.s.Query(directory.GroupQuery("g0")), &g); err != nil {
		t.Fatal(err)
	}
	if !g.Found || g.Group.Name != "g0" || g.Group.QoS != "total" || len(g.Group.Topics) != 1 ||
		len(g.Group.Contacts) != 2 || g.Group.Contacts[0] != "127.0.0.1:7000" {
		t.Fatalf("group g0: %+v", g)
	}
	for _, name := range []string{"g4", "x", ""} {
		g = directory.GroupFound{}
		if err := json.Unmarshal(m.s.Query(directory.GroupQuery(name)), &g); err != nil || g.Found {
			t.Errorf("group %q: %+v, %v: want none", name, g, err)
		}
	}
	for _, q := range [][]byte{nil, {0}, {directory.QueryList, 1}} {
		l = directory.Listing{}
		if err := json.Unmarshal(m.s.Query(q), &l); err != nil || l.Error == "" {
			t.Errorf("query %v: %+v, %v: want an error", q, l, err)
		}
	}
}
