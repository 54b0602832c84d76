package report

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/conclave/conclave/eventlog"
)

// The recorded run pubsub-ops.jsonl.gz is conclave demo pubsub --pace
// 300ms of a version whose control events name their processes (proc),
// whose clients log their counts (ps_stats) and their operations on the
// directory (dir_call, dir_return). Its publisher pub-prices was killed
// before it logged any counts.

// finalFiltered sums, per client, the filtered counts of the final
// ps_stats it logged.
func finalFiltered(ev []eventlog.Event) map[string]int {
	out := map[string]int{}
	for _, e := range ev {
		if e.Ev == eventlog.PSStats && e.Fields[eventlog.FieldFinal] == true {
			n, _ := e.Int(eventlog.FieldFiltered)
			out[e.Node] += n
		}
	}
	return out
}

// topicRows returns client → (filtered, where from) as the page's table
// of topics shows them.
func topicRows(html string) map[string][2]string {
	out := map[string][2]string{}
	for _, m := range regexp.MustCompile(`<tr data-client="([^"]*)" data-filtered="(\d+)" data-counts="([a-z]+)">`).FindAllStringSubmatch(html, -1) {
		out[m[1]] = [2]string{m[2], m[3]}
	}
	return out
}

// TestRecordedPubSubEvidence renders the report of a real pub/sub run
// whose clients logged their counts and directory operations: the
// directory's history is checked linearizable, the table of topics shows
// the filtered counts each client logged at its end, exactly (the killed
// ones: what they logged last, or an estimate if they logged nothing),
// and the faults name their processes.
func TestRecordedPubSubEvidence(t *testing.T) {
	ev := recorded(t, "pubsub-ops")
	html := render(t, "pubsub", ev)
	wantVerdicts(t, html, map[string]string{"Directory": "pass", "Linearizable": "pass", "PubSub": "pass"})
	if !regexp.MustCompile(`the \d+ operations of 8 clients on the directory`).MatchString(html) {
		t.Errorf("the Linearizable verdict does not say what it checked")
	}
	rows := topicRows(html)
	want := finalFiltered(ev)
	if len(want) != 6 {
		t.Fatalf("final counts of %d clients in the log, want the 6 not killed", len(want))
	}
	for c, n := range want {
		if got := rows[c]; got != [2]string{strconv.Itoa(n), countsFinal} {
			t.Errorf("%s: the table shows %v filtered, it logged %d at its end", c, got, n)
		}
	}
	if rows["sub-quant"][1] != countsLast || rows["pub-prices"][1] != countsEstimated {
		t.Errorf("killed clients: %v", rows)
	}
	if strings.Contains(html, "filtered (est.)") || !strings.Contains(html, "(est.)") {
		t.Errorf("only the client that logged no counts should be estimated")
	}
	for _, w := range []string{"kill pub-prices", "kill sub-quant", "Each control event names the process it acted on"} {
		if !strings.Contains(html, w) {
			t.Errorf("no %q", w)
		}
	}
}

// TestRecordedPubSubStaleRead doctors the recorded history: a lookup of
// the moved topic answered after another saw the move now says the topic
// is still where it was. The Linearizable verdict fails, linked to that
// answer in the merged log.
func TestRecordedPubSubStaleRead(t *testing.T) {
	ev := recorded(t, "pubsub-ops")
	first := map[string]string{} // topic → group of its first answer
	seen := map[string]bool{}    // topics whose move a lookup saw
	bad := -1
	for i, e := range ev {
		if e.Ev != eventlog.DirReturn || e.Str(eventlog.FieldResult) != "ok" || e.Str(eventlog.FieldGroup) == "" {
			continue
		}
		tp := e.Str(eventlog.FieldTopic)
		if first[tp] == "" {
			first[tp] = e.Str(eventlog.FieldGroup)
		}
		if m, _ := e.Int(eventlog.FieldMoves); m > 0 && e.Str(eventlog.FieldOp) == "lookup" {
			if seen[tp] {
				bad = i
			}
			seen[tp] = true
		}
	}
	if bad < 0 {
		t.Fatal("no two lookups saw a move")
	}
	e := ev[bad]
	e.Fields[eventlog.FieldGroup], e.Fields[eventlog.FieldMoves] = first[e.Str(eventlog.FieldTopic)], int64(0)
	html := render(t, "stale", ev)
	if v := verdictsOf(html)["Linearizable"]; v != "fail" {
		t.Fatalf("Linearizable: %s, want fail", v)
	}
	id := logAnchor(bad)
	if !regexp.MustCompile(`<a href="#` + id + `">linearizable: topic &#34;` + regexp.QuoteMeta(e.Str(eventlog.FieldTopic)) + `&#34;`).MatchString(html) {
		t.Errorf("the violation is not linked to the stale answer, #%s", id)
	}
	if !strings.Contains(html, `<div id="`+id+`" data-n="`+e.Node+`" data-e="dir_return" class="bad">`) {
		t.Errorf("the stale answer's line is not marked")
	}
}
