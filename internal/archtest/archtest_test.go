package archtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// root is the root of this module.
const root = "../.."

func TestPurePackages(t *testing.T) {
	for _, d := range Pure {
		if _, err := os.Stat(filepath.Join(root, d)); err != nil {
			t.Logf("%s is not in the tree: skipped", d)
		}
	}
	vs, err := CheckPure(root, Pure)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Error(v)
	}
}

func TestPackageDocs(t *testing.T) {
	vs, err := CheckDocs(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Error(v)
	}
}

func TestBinaryDoesNotLinkTesting(t *testing.T) {
	vs, err := CheckLinks(root, "./cmd/conclave", "testing")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Error(v)
	}
}

// fake is a module of packages that break the rules, one way each.
const fake = "testdata/fake"

// expect checks that got is exactly want: each violation at its place, with
// a message containing the given text.
func expect(t *testing.T, got []Violation, want [][2]string) {
	t.Helper()
	for i := 0; i < max(len(got), len(want)); i++ {
		switch {
		case i >= len(want):
			t.Errorf("unexpected violation %s", got[i])
		case i >= len(got):
			t.Errorf("missing violation at %s containing %q", want[i][0], want[i][1])
		case got[i].Pos != want[i][0] || !strings.Contains(got[i].Msg, want[i][1]):
			t.Errorf("violation %d is %s\nwant one at %s containing %q", i, got[i], want[i][0], want[i][1])
		}
	}
}

func TestCheckPureReportsViolations(t *testing.T) {
	// "missing" is not in the tree: skipped, as "directory" is here until
	// it exists. clean keeps the rules outside its test file.
	got, err := CheckPure(fake, []string{"netuser", "clock", "spawn", "clean", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, got, [][2]string{
		{"clock/clock.go:11", `uses time.Now: time must arrive as an input`},
		{"clock/clock.go:14", `uses time.Sleep`},
		{"clock/clock.go:17", `uses time.Now`},
		{"clock/clock.go:29", `uses math/rand/v2.IntN, global randomness`},
		{"clock/dot.go:3", `pure package clock dot-imports "time", which hides what it uses`},
		{"netuser/netuser.go:6", `pure package netuser imports "net": sockets belong to the runtime`},
		{"netuser/netuser.go:8", `imports "os/signal": files, processes, signals`},
		{"netuser/netuser.go:9", `imports "syscall"`},
		{"spawn/spawn.go:6", `pure package spawn starts a goroutine`},
	})
}

func TestCheckDocsReportsViolations(t *testing.T) {
	got, err := CheckDocs(fake)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, got, [][2]string{
		{"baddoc/baddoc.go:1", `the doc comment of package example.com/fake/baddoc should begin "Package baddoc "`},
		{"nodoc/nodoc.go:1", `package example.com/fake/nodoc has no doc comment`},
	})
}

func TestCheckLinksReportsViolations(t *testing.T) {
	got, err := CheckLinks(fake, "./cmd/fake", "testing", "net/http")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, got, [][2]string{
		{"helper/helper.go:4", `example.com/fake/helper imports "testing", so ./cmd/fake links it: example.com/fake/cmd/fake -> example.com/fake/helper -> testing`},
	})
}
