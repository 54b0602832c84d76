package dirnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/dirclient"
	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/host"
	"github.com/conclave/conclave/transport"
)

// kv is a test state machine: "k=v" sets k and returns its old value; a
// query k returns its value.
type kv struct {
	mu sync.Mutex
	m  map[string]string
}

func newKV() *kv { return &kv{m: map[string]string{}} }

func (s *kv) Apply(_ uint64, cmd []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, v, _ := strings.Cut(string(cmd), "=")
	old := s.m[k]
	s.m[k] = v
	return []byte(old)
}
func (s *kv) Snapshot() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(s.m)
	return b
}
func (s *kv) Restore(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	s.m = m
	return nil
}
func (s *kv) Query(q []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return []byte(s.m[string(q)])
}

type testDir struct {
	t      *testing.T
	nw     *transport.Mem
	addrs  []string
	stores []*directory.MemStore
	srv    []*Server
}

func newTestDir(t *testing.T, n int) *testDir {
	d := &testDir{t: t, nw: &transport.Mem{}}
	for i := range n {
		d.addrs = append(d.addrs, fmt.Sprintf("dir%d:1", i))
		d.stores = append(d.stores, &directory.MemStore{})
	}
	d.srv = make([]*Server, n)
	for i := range n {
		d.start(i)
	}
	t.Cleanup(func() {
		for _, s := range d.srv {
			if s != nil {
				s.Close()
			}
		}
	})
	return d
}

func (d *testDir) start(i int) {
	s, err := Start(Config{ID: i, Peers: d.addrs, Store: d.stores[i], App: newKV(), Network: d.nw})
	if err != nil {
		d.t.Fatal(err)
	}
	d.srv[i] = s
}

func (d *testDir) client() *dirclient.Client {
	c, err := dirclient.New(dirclient.Config{Replicas: d.addrs, Network: d.nw})
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { c.Close() })
	return c
}

func TestProposeAndReadThroughAnyReplica(t *testing.T) {
	d := newTestDir(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := d.client()
	for k := range 20 {
		if _, err := c.Propose(ctx, fmt.Appendf(nil, "k%d=%d", k, k)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		one, err := dirclient.New(dirclient.Config{Replicas: []string{d.addrs[i]}, Network: d.nw})
		if err != nil {
			t.Fatal(err)
		}
		v, err := one.Read(ctx, []byte("k19"))
		one.Close()
		if err != nil || string(v) != "19" {
			t.Fatalf("read at replica %d alone: %q, %v", i, v, err)
		}
	}
}

func TestLeaderClosedClientGoesOn(t *testing.T) {
	d := newTestDir(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := d.client()
	if _, err := c.Propose(ctx, []byte("a=1")); err != nil {
		t.Fatal(err)
	}
	l := d.leader()
	d.srv[l].Close()
	d.srv[l] = nil
	if _, err := c.Propose(ctx, []byte("b=2")); err != nil {
		t.Fatalf("after the leader closed: %v", err)
	}
	if v, err := c.Read(ctx, []byte("a")); err != nil || string(v) != "1" {
		t.Fatalf("read a: %q, %v", v, err)
	}
}

func (d *testDir) leader() int {
	for i, s := range d.srv {
		if s != nil && s.Status().Role == "leader" {
			return i
		}
	}
	d.t.Fatal("no leader")
	return -1
}

func TestNoMajorityErrorNamesEveryReplica(t *testing.T) {
	d := newTestDir(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := d.client()
	if _, err := c.Propose(ctx, []byte("a=1")); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		d.srv[i].Close()
		d.srv[i] = nil
	}
	short, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	_, err := c.Propose(short, []byte("b=2"))
	var ue *dirclient.UnavailableError
	if !errors.As(err, &ue) || !errors.Is(err, dirclient.ErrUnavailable) {
		t.Fatalf("without a majority: %v, want an UnavailableError", err)
	}
	for i := range 3 {
		if !strings.Contains(err.Error(), fmt.Sprintf("replica %d (%s)", i, d.addrs[i])) {
			t.Errorf("the error does not name replica %d: %v", i, err)
		}
	}
}

func TestRestartFromStore(t *testing.T) {
	d := newTestDir(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := d.client()
	if _, err := c.Propose(ctx, []byte("a=1")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		d.srv[i].Close()
		d.srv[i] = nil
	}
	for i := range 3 {
		d.start(i)
	}
	if v, err := c.Read(ctx, []byte("a")); err != nil || string(v) != "1" {
		t.Fatalf("after every replica restarted: %q, %v", v, err)
	}
}

func TestStoreOfAnotherReplicaRefused(t *testing.T) {
	st := &directory.MemStore{}
	if err := st.Init(directory.Identity{Cluster: DefaultCluster, Replica: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := Start(Config{ID: 0, Peers: []string{"a:1", "b:1", "c:1"}, Store: st, App: newKV(), Network: &transport.Mem{}})
	if !errors.Is(err, directory.ErrIdentity) {
		t.Fatalf("a store of replica 1 opened as replica 0: %v", err)
	}
}

func TestDirectoryStateThroughReplicas(t *testing.T) {
	nw := &transport.Mem{}
	addrs := []string{"d0:1", "d1:1", "d2:1"}
	for i := range addrs {
		st, err := directory.NewState(directory.StateConfig{MaxGroups: 3})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Start(Config{ID: i, Peers: addrs, Store: &directory.MemStore{}, App: st, Describe: directory.Describe, Network: nw})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub, _ := dirclient.New(dirclient.Config{Replicas: addrs, Network: nw})
	sub, _ := dirclient.New(dirclient.Config{Replicas: addrs, Network: nw})
	defer pub.Close()
	defer sub.Close()
	if _, err := sub.Subscribe(ctx, "prices"); !errors.Is(err, directory.ErrUnknownTopic) {
		t.Fatalf("subscribe before any announce: %v", err)
	}
	a, err := pub.Announce(ctx, "prices", "total", nil)
	if err != nil || a.Group == "" || a.QoS != "total" {
		t.Fatalf("announce: %+v, %v", a, err)
	}
	s, err := sub.Subscribe(ctx, "prices")
	if err != nil || s.Group != a.Group || s.QoS != "total" || len(s.XML) == 0 {
		t.Fatalf("subscribe: %+v, %v (announce gave %s)", s, err, a.Group)
	}
	if _, err := sub.Announce(ctx, "prices", "vsync", nil); !errors.Is(err, directory.ErrQoSConflict) {
		t.Fatalf("a conflicting announce: %v", err)
	}
	l, err := sub.List(ctx)
	if err != nil || len(l.Topics) != 1 || len(l.Topics[0].Subscribers) != 1 || len(l.Topics[0].Publishers) != 1 {
		t.Fatalf("list: %+v, %v", l, err)
	}
	f, err := pub.Lookup(ctx, "prices")
	if err != nil || !f.Found || f.Topic.Group != a.Group {
		t.Fatalf("lookup: %+v, %v", f, err)
	}
	before, err := sub.AddContact(ctx, a.Group, "10.0.0.2:7000")
	if err != nil || len(before) != 0 {
		t.Fatalf("the first contact of %s: told of %v, %v", a.Group, before, err)
	}
	if _, err := pub.SetContacts(ctx, a.Group, []string{"10.0.0.1:7000"}); err != nil {
		t.Fatal(err)
	}
	if before, err = sub.AddContact(ctx, a.Group, "10.0.0.2:7000"); err != nil || len(before) != 1 || before[0] != "10.0.0.1:7000" {
		t.Fatalf("after SetContacts: told of %v, %v", before, err)
	}
}

func TestStartOnATakenRouteFailsCleanly(t *testing.T) {
	nw := &transport.Mem{}
	h, err := host.New(host.Config{Listen: "d0:1", Network: nw})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	peers := []string{"d0:1", "d1:1", "d2:1"}
	a, err := Start(Config{ID: 0, Peers: peers, Store: &directory.MemStore{}, App: newKV(), Host: h})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// The same directory on the same host: its routes are taken. Start
	// must say so and return, leaving nothing running.
	if _, err := Start(Config{ID: 0, Peers: peers, Store: &directory.MemStore{}, App: newKV(), Host: h}); err == nil {
		t.Fatal("a second replica of the same directory started on the same host")
	}
}
