package main

import (
	"os/exec"
	"regexp"
	"testing"
)

// TestBenchFailoverFloor runs crash failovers of conclave peers and of the
// floor's processes, and checks both were measured and compared (not how
// fast: that depends on the machine). The floor's survivors must each
// report the new leader, or the bench fails waiting for them.
func TestBenchFailoverFloor(t *testing.T) {
	out, err := exec.Command(conclaveBinary(t), "bench", "failover", "--n", "3", "--runs", "2", "--mode", "crash", "--floor", "--settle", "0s").CombinedOutput()
	if err != nil {
		t.Fatalf("bench failover --floor: %v\n%s", err, out)
	}
	for _, re := range []string{
		`(?m)^crash SIGKILL .* p50 +[0-9.]+ ms +p99 +[0-9.]+ ms`,
		`(?m)^floor SIGKILL of a floor process +p50 +[0-9.]+ ms +p99 +[0-9.]+ ms`,
		`(?m)^crash / floor: p50 [0-9.]+ +p99 [0-9.]+$`,
	} {
		if !regexp.MustCompile(re).Match(out) {
			t.Fatalf("bench failover --floor printed no line matching %s:\n%s", re, out)
		}
	}
}
