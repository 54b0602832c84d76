package main

import (
	"os/exec"
	"regexp"
	"testing"
)

// TestBenchSoakCounts runs a short soak beside a CPU burner and checks it
// reports what it counted (not how many: that depends on the machine).
func TestBenchSoakCounts(t *testing.T) {
	out, err := exec.Command(conclaveBinary(t), "bench", "soak", "--n", "3", "--duration", "500ms", "--burners", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("bench soak: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^false suspicions: [0-9]+ \[.*\]; leader changes: [0-9]+$`).Match(out) {
		t.Fatalf("bench soak printed no counts:\n%s", out)
	}
}
