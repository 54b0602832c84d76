package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDemoPubSub runs "conclave demo pubsub" as a user would: it must end
// with status 0, every verdict a pass; the late subscriber must have
// events, and the topic moved by hand must have its publisher and
// subscribers switch groups.
func TestDemoPubSub(t *testing.T) {
	out, err := exec.Command(conclaveBinary(t), "demo", "pubsub", "--quiet", "--pace", "300ms", "--out", t.TempDir()).CombinedOutput()
	s := string(out)
	if err != nil {
		t.Fatalf("demo pubsub: %v\n%s", err, s)
	}
	for _, want := range []string{
		"SIGKILL publisher pub-prices mid-stream",
		"SIGKILL the directory's leader",
		"pass  pub/sub: topic isolation",
		"pass  directory: one leader per term",
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
}
