// Package launchtest holds helpers for tests that start real conclave
// processes with package launch: building the binary once per test binary,
// and keeping a failed test's logs. Only tests import it, so the conclave
// binary does not link package testing.
package launchtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Build compiles the conclave command into dir and returns its path.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "conclave")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/conclave/conclave/cmd/conclave").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building conclave: %v\n%s", err, out)
	}
	return bin, nil
}

// RunTests is a TestMain for packages whose tests start conclave
// processes: it builds the binary into a temporary directory, sets *bin to
// its path, runs the tests and removes the directory. It returns the exit
// status for os.Exit.
func RunTests(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "conclave-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// Keep copies a failed test's logs in dir to $CONCLAVE_KEEP/<test name>, if
// CONCLAVE_KEEP is set, for reading after the test's temporary directory
// is gone.
func Keep(t *testing.T, dir string) {
	dst := os.Getenv("CONCLAVE_KEEP")
	if dst == "" {
		return
	}
	dst = filepath.Join(dst, t.Name())
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Logf("keeping logs: %v", err)
		return
	}
	t.Logf("logs kept in %s", dst)
}
