package dirclient_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/dirclient"
	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/dirnode"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/transport"
)

// logged collects what a client logs, one line per event: its name and
// fields in key order.
type logged struct {
	mu    sync.Mutex
	lines []string
}

func (l *logged) log(ev string, kv ...any) {
	f := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	if f[eventlog.FieldSeq] != nil {
		f[eventlog.FieldSeq] = "N" // numbered from the time
	}
	b, _ := eventlog.AppendJSON(nil, eventlog.Event{TS: time.Unix(0, 0), Node: "x", Ev: ev, Fields: f})
	_, rest, _ := strings.Cut(string(b), `"ev":`)
	l.mu.Lock()
	l.lines = append(l.lines, rest)
	l.mu.Unlock()
}

// TestLogsOperations: a client given a log logs each command and topic
// read as it begins and ends, with what the directory answered, and an
// operation no replica answered as an error.
func TestLogsOperations(t *testing.T) {
	nw := &transport.Mem{}
	key := transport.NewKey()
	addrs := []string{"dir0:1", "dir1:1", "dir2:1"}
	for i := range addrs {
		st, err := directory.NewState(directory.StateConfig{MaxGroups: 3})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := dirnode.Start(dirnode.Config{ID: i, Peers: addrs, Store: &directory.MemStore{}, App: st, Network: nw, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
	}
	var l logged
	c, err := dirclient.New(dirclient.Config{Replicas: addrs, Network: nw, Key: key, Name: "c", Log: l.log})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, "t"); !errors.Is(err, directory.ErrUnknownTopic) {
		t.Fatalf("subscribe before the announce: %v", err)
	}
	if _, err := c.Announce(ctx, "t", "total", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`"dir_call","call":1,"client":"c","op":"subscribe","seq":"N","topic":"t"}`,
		`"dir_return","call":1,"client":"c","op":"subscribe","result":"unknown-topic","topic":"t"}`,
		`"dir_call","call":2,"client":"c","op":"announce","qos":"total","seq":"N","topic":"t"}`,
		`"dir_return","call":2,"client":"c","group":"g0","moves":0,"op":"announce","qos":"total","result":"ok","topic":"t"}`,
		`"dir_call","call":3,"client":"c","op":"lookup","topic":"t"}`,
		`"dir_return","call":3,"client":"c","group":"g0","moves":0,"op":"lookup","qos":"total","result":"ok","topic":"t"}`,
		`"dir_call","call":4,"client":"c","op":"lookup","topic":"u"}`,
		`"dir_return","call":4,"client":"c","op":"lookup","result":"unknown-topic","topic":"u"}`,
	}
	if got := strings.Join(l.lines, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("logged\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}

	// No replica answers.
	var gone logged
	g, err := dirclient.New(dirclient.Config{Replicas: []string{"nowhere:1"}, Network: nw, Key: key, Name: "g", Log: gone.log,
		Attempt: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	short, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if _, err := g.Announce(short, "t", "total", nil); err == nil {
		t.Fatal("an announce nobody answered succeeded")
	}
	if len(gone.lines) != 2 || !strings.Contains(gone.lines[1], `"result":"error"`) || !strings.Contains(gone.lines[1], `"error":`) {
		t.Errorf("logged %s", fmt.Sprint(gone.lines))
	}
}
