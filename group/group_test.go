package group

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/host"
	"github.com/conclave/conclave/transport"
)

// testKey is the cluster key of the tests' members.
var testKey = transport.NewKey()

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// start starts n members of a group on loopback, each joining through the
// first.
func start(t *testing.T, n int, stackName, dir string) []*Group {
	t.Helper()
	return startOn(t, nil, n, stackName, dir)
}

// startOn is start on network nw (nil: TCP).
func startOn(t *testing.T, nw transport.Network, n int, stackName, dir string) []*Group {
	t.Helper()
	var gs []*Group
	contact := ""
	for i := range n {
		cfg := Config{Name: "test", Stack: stackName, Listen: "127.0.0.1:0", Network: nw, Member: fmt.Sprintf("m%d", i), LogDir: dir, LogDeliveries: true, Key: testKey}
		if contact != "" {
			cfg.Contacts = []string{contact}
		}
		g, err := Join(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		if contact == "" {
			contact = g.Me().Addr
		}
		gs = append(gs, g)
	}
	// Wait until everyone sees all n.
	for _, g := range gs {
		for len(g.View().Members) != n {
			select {
			case <-g.Views():
			case <-ctx(t).Done():
				t.Fatalf("%s never saw %d members: %v", g.Me().ID, n, g.View().IDs())
			}
		}
	}
	return gs
}

func TestGroupDeliversInTotalOrder(t *testing.T) {
	t.Run("tcp", func(t *testing.T) { testTotalOrder(t, nil) })
	t.Run("memory", func(t *testing.T) { testTotalOrder(t, &transport.Mem{}) })
}

func testTotalOrder(t *testing.T, nw transport.Network) {
	dir := t.TempDir()
	gs := startOn(t, nw, 3, "total", dir)
	const k = 50
	errs := make(chan error, 3*k)
	for i, g := range gs {
		go func() {
			for j := range k {
				errs <- g.Send(ctx(t), fmt.Appendf(nil, "%d:%d", i, j))
			}
		}()
	}
	for range 3 * k {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var seqs [][]string
	for _, g := range gs {
		var got []string
		for len(got) < 3*k {
			select {
			case d := <-g.Deliveries():
				got = append(got, string(d.Data))
			case <-ctx(t).Done():
				t.Fatalf("%s delivered %d of %d", g.Me().ID, len(got), 3*k)
			}
		}
		seqs = append(seqs, got)
	}
	for i := 1; i < len(seqs); i++ {
		if !slices.Equal(seqs[0], seqs[i]) {
			t.Fatalf("member %d delivered in another order", i)
		}
	}
	for _, g := range gs {
		g.Close()
	}
	h, err := eventlog.MergeDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range check.Group(h, check.GroupOptions{Total: true}) {
		t.Error(v)
	}
}

// TestGroupsShareAHost runs members of three groups on each of two hosts:
// each group forms with its own members, its traffic reaches only them,
// and a second member of one group on one host is refused.
func TestGroupsShareAHost(t *testing.T) {
	nw := &transport.Mem{}
	var hosts []*host.Host
	for range 2 {
		h, err := host.New(host.Config{Network: nw, Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		hosts = append(hosts, h)
	}
	names := []string{"a", "b", "c"}
	members := map[string][]*Group{}
	for i, h := range hosts {
		for _, name := range names {
			cfg := Config{Name: name, Host: h, Member: fmt.Sprintf("h%d", i)}
			if i > 0 {
				cfg.Contacts = []string{hosts[0].Addr()}
			}
			g, err := Join(ctx(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { g.Close() })
			members[name] = append(members[name], g)
		}
	}
	if _, err := Join(ctx(t), Config{Name: "a", Host: hosts[0]}); err == nil {
		t.Fatal("a second member of group a joined on the same host")
	}
	for _, name := range names {
		for _, g := range members[name] {
			for len(g.View().Members) != 2 {
				select {
				case <-g.Views():
				case <-ctx(t).Done():
					t.Fatalf("group %s: %s never saw 2 members: %v", name, g.Me().ID, g.View().IDs())
				}
			}
		}
		if err := members[name][1].Send(ctx(t), []byte("to "+name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		for _, g := range members[name] {
			select {
			case d := <-g.Deliveries():
				if string(d.Data) != "to "+name {
					t.Errorf("a member of %s delivered %q", name, d.Data)
				}
			case <-ctx(t).Done():
				t.Fatalf("a member of %s delivered nothing", name)
			}
		}
	}
}

// TestOutsidersStayOut has processes without the key, or with another,
// try to join a group through its member: they are refused before any
// of their messages is read, the member logs why, and its view stays
// its own.
func TestOutsidersStayOut(t *testing.T) {
	refused := make(chan string, 8)
	g, err := Join(ctx(t), Config{Name: "club", Member: "insider", Key: testKey, OnEvent: func(e eventlog.Event) {
		if e.Ev == eventlog.ConnRefused {
			refused <- e.Str(eventlog.FieldReason)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, key := range []transport.Key{nil, transport.NewKey()} {
		// Found: refused, the outsider founds a group of its own.
		o, err := Join(ctx(t), Config{Name: "club", Member: "outsider", Key: key, Contacts: []string{g.Me().Addr}, Found: true})
		if err != nil {
			t.Fatal(err)
		}
		if ids := o.View().IDs(); len(ids) != 1 || ids[0] != o.Me().ID {
			t.Errorf("the outsider's view: %v", ids)
		}
		o.Close()
		select {
		case r := <-refused:
			if !strings.Contains(r, "cluster key") && !strings.Contains(r, "bad handshake") {
				t.Errorf("refused because %q", r)
			}
		case <-ctx(t).Done():
			t.Fatal("the member logged no refusal")
		}
	}
	if ids := g.View().IDs(); len(ids) != 1 {
		t.Errorf("the member's view took in outsiders: %v", ids)
	}
}

// TestGroupOverTLS has members join and deliver over TLS, and a member
// without TLS kept out.
func TestGroupOverTLS(t *testing.T) {
	a, err := Join(ctx(t), Config{Name: "secret", Member: "a", Key: testKey, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Join(ctx(t), Config{Name: "secret", Member: "b", Key: testKey, TLS: true, Contacts: []string{a.Me().Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if n := len(b.View().Members); n != 2 {
		t.Fatalf("b joined a view of %d", n)
	}
	if err := b.Send(ctx(t), []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	if d := <-a.Deliveries(); string(d.Data) != "sealed" {
		t.Fatalf("a delivered %q", d.Data)
	}
	// Found: refused by a, c founds a group of its own (without it, Join
	// fails: no contact answered).
	c, err := Join(ctx(t), Config{Name: "secret", Member: "c", Key: testKey, Contacts: []string{a.Me().Addr}, Found: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := len(c.View().Members); n != 1 {
		t.Fatalf("a member without TLS joined a view of %d", n)
	}
	if _, err := Join(ctx(t), Config{Name: "secret", TLS: true}); err == nil {
		t.Fatal("TLS without a key was taken")
	}
}

// TestJoinOtherStackRefused: a joiner whose stack differs from the
// group's is refused at once, with an error naming both stacks. It used to
// be admitted, then silently excluded, and went on alone.
func TestJoinOtherStackRefused(t *testing.T) {
	a, err := Join(ctx(t), Config{Name: "chat", Stack: "total", Member: "alice", Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	began := time.Now()
	b, err := Join(ctx(t), Config{Name: "chat", Stack: "vsync", Member: "bob", Key: testKey, Contacts: []string{a.Me().Addr}})
	if err == nil {
		b.Close()
		t.Fatalf("bob, running vsync, joined alice's group running total: view %v", b.View().IDs())
	}
	for _, want := range []string{`group "chat"`, `the group runs stack "total" (`, `this member stack "vsync" (`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("refused after %v, want at once", took)
	}
	if v := a.View(); len(v.Members) != 1 {
		t.Errorf("alice's view %v, want alice alone", v.IDs())
	}
}

// TestContactsThatDoNotAnswer: a member whose contacts do not answer fails
// to join, naming them, unless Found lets it found the group. It used to
// found a group of its own silently.
func TestContactsThatDoNotAnswer(t *testing.T) {
	nobody := "127.0.0.1:1"
	g, err := Join(ctx(t), Config{Name: "chat", Member: "carol", Key: testKey, Contacts: []string{nobody}})
	if err == nil {
		g.Close()
		t.Fatalf("joined through a contact nobody listens on: view %v", g.View().IDs())
	}
	if want := "no member of the group answered at " + nobody; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	g, err = Join(ctx(t), Config{Name: "chat", Member: "carol", Key: testKey, Contacts: []string{nobody}, Found: true})
	if err != nil {
		t.Fatalf("with Found: %v", err)
	}
	defer g.Close()
	if v := g.View(); len(v.Members) != 1 || v.Members[0].ID != g.Me().ID {
		t.Fatalf("with Found: view %v, want carol alone", v.IDs())
	}
}

// gate is a destination whose writes wait until the test opens it.
type gate struct {
	open chan struct{}
	mu   sync.Mutex
	b    strings.Builder
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.Write(p)
}

// TestEventsStreamWrittenBeforeLeaveReturns runs a member without a log
// directory whose event stream's reader stalls until the member has
// logged its stop: Leave returns once every event is in the stream, the
// lines OnEvent saw, in order.
func TestEventsStreamWrittenBeforeLeaveReturns(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	stream := eventlog.NewStream(g, 0)
	var mu sync.Mutex
	var seen []eventlog.Event
	stopped := make(chan struct{})
	onEvent := func(e eventlog.Event) {
		mu.Lock()
		seen = append(seen, e)
		mu.Unlock()
		if e.Ev == eventlog.Stop {
			close(stopped)
		}
	}
	m, err := Join(ctx(t), Config{Name: "g", Member: "solo", Key: testKey, LogDeliveries: true, OnEvent: onEvent, Events: stream})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Send(ctx(t), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	left := make(chan error, 1)
	go func() { left <- m.Leave(ctx(t)) }()
	<-stopped
	close(g.open)
	if err := <-left; err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	written := g.b.String()
	g.mu.Unlock()
	got, bad, _ := eventlog.Read(strings.NewReader(written))
	mu.Lock()
	defer mu.Unlock()
	if bad != 0 || len(got) != len(seen) {
		t.Fatalf("the stream holds %d events (%d unreadable), OnEvent saw %d:\n%s", len(got), bad, len(seen), written)
	}
	for i := range got {
		if got[i].Ev != seen[i].Ev || got[i].LC != seen[i].LC {
			t.Errorf("line %d is %s at %d, OnEvent saw %s at %d", i, got[i].Ev, got[i].LC, seen[i].Ev, seen[i].LC)
		}
	}
	if err := stream.Close(); err != nil {
		t.Fatal(err)
	}
}
