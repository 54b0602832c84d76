package launch

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// TestReadHeadAsEncodingJSON reads the heads of lines as eventlog writes
// them, and others, the quick way and with encoding/json: they agree.
func TestReadHeadAsEncodingJSON(t *testing.T) {
	var lines []string
	for _, node := range []string{"peer-1", `a,"ev":"fake`, `q"uote`, "<&>", "\u00e9"} {
		for _, e := range []eventlog.Event{
			{Ev: eventlog.PeerDown, Fields: map[string]any{"peer": 0, "ev2": `,"ev":"x"`}},
			{Ev: eventlog.LeaderChange, Fields: map[string]any{"leader": 1, "prev": 0, "alive": []int{1, 2}}},
			{Ev: eventlog.View, Fields: map[string]any{"members": []string{"a.1", "b.2"}}},
			{Ev: eventlog.Deliver, Fields: map[string]any{"msg": "he said \"hi\"\n"}},
			{Ev: `we"ird`},
		} {
			e.TS, e.Node, e.Inc, e.LC = time.Unix(1, 2), node, 3, 4
			b, err := eventlog.AppendJSON(nil, e)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, string(b)+"\n")
		}
	}
	lines = append(lines, `{"ev":"peer_up","ts":"2026-01-01T00:00:00Z"}`+"\n", `{"ts":"2026-01-01T00:00:00Z","node":"x","inc":1,"lc":2,"ev":"peer_up","pe`,
		"not json\n", "{}\n", `{"ts":"x","node":"n","inc":1,"lc":1,"ev":"leader_change","leader":}`+"\n")
	for _, l := range lines {
		var want head
		wantOK := json.Unmarshal([]byte(l), &want) == nil && want.Ev != ""
		got, ok := readHead([]byte(l))
		if ok != wantOK || got.Ev != want.Ev || string(got.Leader) != string(want.Leader) ||
			string(got.Members) != string(want.Members) || string(got.Msg) != string(want.Msg) {
			t.Errorf("%s: read %+v %v, encoding/json reads %+v %v", l, got, ok, want, wantOK)
		}
	}
}
