package main

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/conclave/conclave/eventlog"
)

func TestEventsFDRefusesBadDescriptors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"peer", "--id", "0", "--peers", "127.0.0.1:1,127.0.0.1:2", "--events-fd", "-1"}, "--events-fd must be"},
		{[]string{"peer", "--id", "0", "--peers", "127.0.0.1:1,127.0.0.1:2", "--events-fd", "987654"}, "not an open file descriptor"},
		{[]string{"group", "--group", "g", "--events-fd", "987654"}, "not an open file descriptor"},
	}
	for _, c := range cases {
		code, stderr := runCaptured(t, c.args)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("conclave %s: status %d, stderr %q; want status 2 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}

// TestGroupEventsOnStdout runs a member with --events-fd 1: its standard
// output is its event log, JSON lines only, deliveries included.
func TestGroupEventsOnStdout(t *testing.T) {
	m := startMember(t, "--group", "g", "--member", "solo", "--events-fd", "1", "--log-deliveries")
	io.WriteString(m.in, "hello\n")
	m.in.Close()
	var evs []string
	for l := range m.lines {
		var e eventlog.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not an event: %q: %v", l, err)
		}
		if e.Node != "solo" || !strings.HasPrefix(e.Str(eventlog.FieldMember), "solo.") {
			t.Errorf("event of another member: %q", l)
		}
		switch e.Ev {
		case eventlog.View:
			if ms, _ := e.Fields[eventlog.FieldMembers].([]any); len(ms) != 1 {
				t.Errorf("view members %v, want solo alone", e.Fields[eventlog.FieldMembers])
			}
		case eventlog.Deliver:
			if e.Str(eventlog.FieldMsg) != "hello" {
				t.Errorf("delivered %q, want hello", e.Str(eventlog.FieldMsg))
			}
		}
		evs = append(evs, e.Ev)
	}
	if err := <-m.done; err != nil {
		t.Fatal(err)
	}
	got := strings.Join(evs, " ")
	for _, want := range []string{eventlog.Start, eventlog.Found, eventlog.View, eventlog.Send, eventlog.Deliver, eventlog.Acked, eventlog.Left, eventlog.Stop} {
		if !strings.Contains(got, want) {
			t.Errorf("events %q lack %s", got, want)
		}
	}
}
