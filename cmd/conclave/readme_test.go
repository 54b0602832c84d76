package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEStandsAlone checks the README against the repository and the
// CLI: it points at no file outside the repository and at no missing
// document, names every command, shows the cluster key in its examples,
// and each conclave command line in its examples is one the CLI accepts.
func TestREADMEStandsAlone(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	if m := regexp.MustCompile(`\.\./\S*`).FindAllString(readme, -1); m != nil {
		t.Errorf("the README points outside the repository: %q", m)
	}
	for _, doc := range regexp.MustCompile(`docs/[\w.-]+\.md`).FindAllString(readme, -1) {
		if _, err := os.Stat(filepath.Join("../..", doc)); err != nil {
			t.Errorf("the README points at %s: %v", doc, err)
		}
	}
	for _, c := range commands {
		if !strings.Contains(readme, "conclave "+c.name) {
			t.Errorf("the README does not describe conclave %s", c.name)
		}
	}

	// The example command lines, from the sh blocks.
	var lines []string
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(readme, -1) {
		for _, l := range strings.Split(block[1], "\n") {
			l, _, _ = strings.Cut(l, "#")
			if _, cmd, ok := strings.Cut(l, "./conclave "); ok {
				cmd, _, _ = strings.Cut(cmd, "&")
				lines = append(lines, strings.TrimSpace(cmd))
			}
		}
	}
	keygen := -1
	for i, l := range lines {
		args := strings.Fields(strings.NewReplacer("$P", "127.0.0.1:7000,127.0.0.1:7001", "$i", "0").Replace(l))
		if args[0] == "keygen" && keygen < 0 {
			keygen = i
		}
		if (args[0] == "peer" || args[0] == "group") && (keygen < 0 || !strings.Contains(l, "--key-file ")) {
			t.Errorf("example %q does not use the key made by conclave keygen before it", l)
		}
		// With --help last, the flags before it are parsed and nothing runs.
		if code, stderr := runCaptured(t, append(args, "--help")); code != 0 {
			t.Errorf("example %q is refused:\n%s", l, stderr)
		}
	}
	if len(lines) < 6 {
		t.Errorf("found %d example command lines: %q", len(lines), lines)
	}
}
