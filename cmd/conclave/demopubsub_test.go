package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/report"
)

// TestDemoPubSub runs "conclave demo pubsub" as a user would: it must end
// with status 0, every verdict a pass; the late subscriber must have
// events, and the topic moved by hand must have its publisher and
// subscribers switch groups. Its report checks the directory's history
// linearizable and shows the counts the clients logged.
func TestDemoPubSub(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.Command(conclaveBinary(t), "demo", "pubsub", "--quiet", "--pace", "300ms", "--out", dir).CombinedOutput()
	s := string(out)
	if err != nil {
		t.Fatalf("demo pubsub: %v\n%s", err, s)
	}
	for _, want := range []string{
		"SIGKILL publisher pub-prices mid-stream",
		"SIGKILL the directory's leader",
		"pass  pub/sub: topic isolation",
		"pass  directory: one leader per term",
		"pass  directory: the clients' announces, subscriptions and lookups form a linearizable history",
		"pass  every subscriber got its topics' events without gaps",
		"pass  the subscribers of the killed publisher's topics agree",
		"report:",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the demo's output has no %q:\n%s", want, s)
		}
	}
	moved := false
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "orders.eu: ") && strings.Contains(l, "switched:") {
			moved = strings.Contains(l, "pub-orders") && strings.Contains(l, "sub-eu") && strings.Contains(l, "sub-late")
		}
	}
	if !moved {
		t.Errorf("orders.eu's publisher and subscribers did not all switch groups:\n%s", s)
	}
	if strings.Contains(s, "FAIL") {
		t.Errorf("a check failed:\n%s", s)
	}
	late := 0
	for _, l := range strings.Split(s, "\n") {
		if f := strings.Fields(l); len(f) > 5 && f[0] == "sub-late" && f[2] == "orders.eu" && f[5] != "0" {
			late++
		}
	}
	if late != 1 {
		t.Errorf("the late subscriber got no events of orders.eu:\n%s", s)
	}
	checkDemoPubSubReport(t, dir)
}

// checkDemoPubSubReport checks the report of a pub/sub demo in dir: the
// directory's history was checked and is linearizable, and each client
// that closed has the filtered counts it logged at its end.
func checkDemoPubSubReport(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, report.HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	if !strings.Contains(html, `data-name="Linearizable" data-verdict="pass"`) {
		t.Errorf("the report does not show the directory's history checked linearizable")
	}
	ev, _, err := eventlog.ReadFile(filepath.Join(dir, eventlog.RunJSONL))
	if err != nil {
		t.Fatal(err)
	}
	logged := map[string]int{}
	for _, e := range ev {
		if e.Ev == eventlog.PSStats && e.Fields[eventlog.FieldFinal] == true {
			n, _ := e.Int(eventlog.FieldFiltered)
			logged[e.Node] += n
		}
	}
	shown := map[string]string{}
	for _, m := range regexp.MustCompile(`<tr data-client="([^"]*)" data-filtered="(\d+)" data-counts="final">`).FindAllStringSubmatch(html, -1) {
		shown[m[1]] = m[2]
	}
	for _, cl := range demoCast {
		if cl.name == demoKilledPub || cl.name == demoKilledSub {
			continue
		}
		if n, ok := logged[cl.name]; !ok || shown[cl.name] != strconv.Itoa(n) {
			t.Errorf("%s logged %d filtered at its end (%v), the report shows %q", cl.name, n, ok, shown[cl.name])
		}
	}
}
