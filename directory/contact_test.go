package directory_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/conclave/conclave/directory"
)

func TestAddContactTellsWhoWasThere(t *testing.T) {
	m := newMachine(t, directory.StateConfig{MaxGroups: 4})
	if r := m.do("p", directory.Announce{Topic: "prices", QoS: "total"}); r.Err() != nil {
		t.Fatal(r.Err())
	}
	steps := []struct {
		addr   string
		before []string
	}{
		{"10.0.0.2:7000", nil}, // the first is told nobody is there: it founds
		{"10.0.0.1:7000", []string{"10.0.0.2:7000"}},
		{"10.0.0.3:7000", []string{"10.0.0.1:7000", "10.0.0.2:7000"}},
		{"10.0.0.3:7000", []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"}}, // again: no change
	}
	for _, s := range steps {
		r := m.do("c-"+s.addr, directory.AddContact{Group: "g0", Addr: s.addr})
		if r.Err() != nil || r.Group != "g0" || r.QoS != "total" || !slices.Equal(r.Contacts, s.before) {
			t.Fatalf("add %s: %+v (%v), want the contacts before: %v", s.addr, r, r.Err(), s.before)
		}
	}
	if r := m.do("p", directory.Subscribe{Topic: "prices"}); !slices.Equal(r.Contacts, []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"}) {
		t.Fatalf("subscribe after the adds: contacts %v", r.Contacts)
	}
	for _, op := range []directory.AddContact{{Group: "g9", Addr: "a:1"}, {Group: "g0", Addr: ""}, {Group: "g3", Addr: "a:1"}} {
		if r := m.do("x", op); !errors.Is(r.Err(), directory.ErrBadCommand) {
			t.Errorf("%+v: %v, want a bad command", op, r.Err())
		}
	}
	c := directory.Command{Client: "y", Seq: 1, Op: directory.AddContact{Group: "g1", Addr: "b:2"}}
	if got, err := directory.DecodeCommand(directory.EncodeCommand(c)); err != nil || got.Op != c.Op {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
}

func TestRemoveContactRemovesOnlyItsAddress(t *testing.T) {
	m := newMachine(t, directory.StateConfig{MaxGroups: 4})
	m.do("p", directory.Announce{Topic: "prices", QoS: "total"})
	m.do("p", directory.Contacts{Group: "g0", Addrs: []string{"a:1", "b:1", "c:1"}})
	for _, step := range []struct {
		addr string
		left []string
	}{
		{"b:1", []string{"a:1", "c:1"}},
		{"b:1", []string{"a:1", "c:1"}}, // not there: nothing changes
		{"x:1", []string{"a:1", "c:1"}},
		{"a:1", []string{"c:1"}},
		{"c:1", nil},
	} {
		if r := m.do("c", directory.RemoveContact{Group: "g0", Addr: step.addr}); r.Err() != nil {
			t.Fatal(r.Err())
		}
		if got := m.s.Groups()[0].Contacts; !slices.Equal(got, step.left) {
			t.Fatalf("after removing %s: %v, want %v", step.addr, got, step.left)
		}
	}
	if r := m.do("c", directory.RemoveContact{Group: "g9", Addr: "a:1"}); !errors.Is(r.Err(), directory.ErrBadCommand) {
		t.Fatalf("no such group: %v", r.Err())
	}
}

// TestContactsTellWhomTheyReplaced: a coordinator that sets the contacts
// is told the addresses it replaced that its list does not name, so the
// coordinators of two parts of a split group, each listing its own part,
// learn of each other.
func TestContactsTellWhomTheyReplaced(t *testing.T) {
	m := newMachine(t, directory.StateConfig{MaxGroups: 4})
	m.do("p", directory.Announce{Topic: "prices", QoS: "total"})
	for _, step := range []struct {
		addrs, replaced []string
	}{
		{[]string{"a:1", "b:1"}, nil},
		{[]string{"b:1", "c:1"}, []string{"a:1"}},
		{[]string{"x:1"}, []string{"b:1", "c:1"}},
		{[]string{"x:1"}, nil},
	} {
		r := m.do("c", directory.Contacts{Group: "g0", Addrs: step.addrs})
		if r.Err() != nil || !slices.Equal(r.Contacts, step.replaced) {
			t.Fatalf("contacts %v: %+v (%v), want replaced %v", step.addrs, r, r.Err(), step.replaced)
		}
	}
}
