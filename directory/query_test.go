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
	for _, q := range [][]byte{nil, {0}, {directory.QueryList, 1}} {
		l = directory.Listing{}
		if err := json.Unmarshal(m.s.Query(q), &l); err != nil || l.Error == "" {
			t.Errorf("query %v: %+v, %v: want an error", q, l, err)
		}
	}
}
