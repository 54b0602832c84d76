// Package archtest checks the architecture rules of DESIGN.md §5 on a Go
// module: pure packages stay free of sockets, files, processes, clocks,
// goroutines and global randomness; every package has a doc comment; a
// shipped binary does not link test-only packages. The checks read the
// source with go/parser and ask the go command (go list) for packages and
// their dependencies; the tests of this package run them on this module
// and on fake modules under testdata.
package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Pure lists the pure packages of this module, as directories relative to
// the module root: protocol cores that take time, messages and randomness
// as inputs and hand sends, timers and log events back as effects. A
// package not (yet) in the tree is skipped.
var Pure = []string{"peer", "stack", "layers", "check", "sim", "directory"}

// A Violation is one breach of a rule.
type Violation struct {
	// Pos is where: file:line, relative to the module root when the file
	// is inside it.
	Pos string
	// Msg says what is wrong and what to do instead.
	Msg string
}

// String formats v as "file:line: message".
func (v Violation) String() string { return v.Pos + ": " + v.Msg }

// impure maps imports forbidden in pure packages to the reason. A path
// listed here also forbids the packages below it ("os" forbids "os/exec"),
// except those in pureBelow.
var impure = map[string]string{
	"net":                   "sockets belong to the runtime",
	"os":                    "files, processes, signals and the environment belong to the caller",
	"syscall":               "system calls belong to the runtime",
	"golang.org/x/sys/unix": "system calls belong to the runtime",
	"io/ioutil":             "files belong to the caller",
	"crypto/rand":           "global randomness: take a seed or a *rand.Rand",
}

// pureBelow lists packages below an impure path that do no I/O.
var pureBelow = map[string]bool{"net/netip": true, "net/url": true}

// clockReads lists the functions of package time that read or wait on the
// real clock.
var clockReads = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"AfterFunc": true, "Tick": true, "NewTimer": true, "NewTicker": true,
}

// seededRand lists what pure packages may use of math/rand and
// math/rand/v2: constructors of seeded generators and their types; the
// package-level functions use a global, unseeded source.
var seededRand = map[string]bool{
	"New": true, "NewSource": true, "NewPCG": true, "NewChaCha8": true, "NewZipf": true,
	"Rand": true, "Source": true, "Source64": true, "PCG": true, "ChaCha8": true, "Zipf": true,
}

// forbiddenImport returns why a pure package may not import path, or "".
func forbiddenImport(path string) string {
	if pureBelow[path] {
		return ""
	}
	for p := path; p != "."; p = pathDir(p) {
		if why, ok := impure[p]; ok {
			return why
		}
	}
	return ""
}

// pathDir is path.Dir for import paths, returning "." at the top.
func pathDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "."
	}
	return p[:i]
}

// CheckPure checks the non-test Go files of the packages in dirs
// (directories relative to root, the module root; missing ones are
// skipped): no impure imports, no reads of the real clock, no goroutines,
// no global randomness.
func CheckPure(root string, dirs []string) ([]Violation, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	var patterns []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(root, d)); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		patterns = append(patterns, "./"+filepath.ToSlash(d))
	}
	if len(patterns) == 0 {
		return nil, nil
	}
	pkgs, err := goList(root, patterns...)
	if err != nil {
		return nil, err
	}
	var vs []Violation
	for _, p := range pkgs {
		fset := token.NewFileSet()
		for _, name := range p.files() {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
			if err != nil {
				return nil, err
			}
			vs = append(vs, pureFile(root, fset, p.Name, f)...)
		}
	}
	sortViolations(vs)
	return vs, nil
}

// pureFile checks one file of pure package pkg.
func pureFile(root string, fset *token.FileSet, pkg string, f *ast.File) []Violation {
	var vs []Violation
	report := func(n ast.Node, format string, args ...any) {
		vs = append(vs, Violation{Pos: position(root, fset, n.Pos()), Msg: fmt.Sprintf(format, args...)})
	}
	// local names of the imports whose members are checked
	watched := map[string]string{}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if why := forbiddenImport(path); why != "" {
			report(imp, "pure package %s imports %q: %s", pkg, path, why)
			continue
		}
		if path != "time" && path != "math/rand" && path != "math/rand/v2" {
			continue
		}
		name := pathBase(path)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		if name == "." {
			report(imp, "pure package %s dot-imports %q, which hides what it uses from this check: import it by name", pkg, path)
			continue
		}
		watched[name] = path
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			report(n, "pure package %s starts a goroutine: concurrency belongs to the runtime that drives the machine", pkg)
		case *ast.SelectorExpr:
			id, ok := n.X.(*ast.Ident)
			if !ok || id.Obj != nil { // id.Obj is set for a local name shadowing the import
				return true
			}
			switch path := watched[id.Name]; {
			case path == "time" && clockReads[n.Sel.Name]:
				report(n, "pure package %s uses time.%s: time must arrive as an input (a tick or a now argument), and timers leave as effects", pkg, n.Sel.Name)
			case path != "" && path != "time" && !seededRand[n.Sel.Name]:
				report(n, "pure package %s uses %s.%s, global randomness: draw from a *rand.Rand made from a seed", pkg, path, n.Sel.Name)
			}
		}
		return true
	})
	return vs
}

// pathBase returns the default name of the package at import path p.
func pathBase(p string) string {
	if p == "math/rand/v2" {
		return "rand"
	}
	return p[strings.LastIndexByte(p, '/')+1:]
}

// CheckDocs checks that every package of the module at root (go list ./...)
// has a package doc comment, and that a library package's begins
// "Package <name>".
func CheckDocs(root string) ([]Violation, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	pkgs, err := goList(root, "./...")
	if err != nil {
		return nil, err
	}
	var vs []Violation
	for _, p := range pkgs {
		files := p.files()
		if len(files) == 0 {
			continue // only tests: nothing to document
		}
		fset := token.NewFileSet()
		var first, doc *ast.File
		for _, name := range files {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				return nil, err
			}
			if first == nil {
				first = f
			}
			if f.Doc != nil && doc == nil {
				doc = f
			}
		}
		switch {
		case doc == nil:
			vs = append(vs, Violation{Pos: position(root, fset, first.Package),
				Msg: fmt.Sprintf("package %s has no doc comment: write one (\"// Package %s ...\") above the package clause of one file, e.g. doc.go", p.ImportPath, p.Name)})
		case p.Name != "main" && !startsWithPackage(doc.Doc.Text(), p.Name):
			vs = append(vs, Violation{Pos: position(root, fset, doc.Doc.Pos()),
				Msg: fmt.Sprintf("the doc comment of package %s should begin \"Package %s \"", p.ImportPath, p.Name)})
		}
	}
	sortViolations(vs)
	return vs, nil
}

func startsWithPackage(doc, name string) bool {
	rest, ok := strings.CutPrefix(doc, "Package "+name)
	return ok && (rest == "" || strings.ContainsAny(rest[:1], " \n"))
}

// CheckLinks checks that the main package main (a go list pattern such as
// "./cmd/conclave", relative to the module root) links none of the
// packages forbidden. A violation names the import that pulls each one in
// and the chain of imports from main.
func CheckLinks(root, main string, forbidden ...string) ([]Violation, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	pkgs, err := goList(root, "-deps", main)
	if err != nil {
		return nil, err
	}
	byPath := map[string]*listed{}
	var top *listed
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
		if !p.DepOnly {
			top = p
		}
	}
	if top == nil {
		return nil, fmt.Errorf("go list -deps %s: no such package", main)
	}
	var vs []Violation
	for _, bad := range forbidden {
		if byPath[bad] == nil {
			continue
		}
		chain := importChain(byPath, top.ImportPath, bad)
		importer := byPath[chain[len(chain)-2]]
		pos, err := importPos(root, importer, bad)
		if err != nil {
			return nil, err
		}
		vs = append(vs, Violation{Pos: pos, Msg: fmt.Sprintf("%s imports %q, so %s links it: %s; move what needs it to a package only tests import (as net/http/httptest)",
			importer.ImportPath, bad, main, strings.Join(chain, " -> "))})
	}
	sortViolations(vs)
	return vs, nil
}

// importChain returns a shortest chain of imports from pkg from to pkg to.
func importChain(byPath map[string]*listed, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			break
		}
		for _, imp := range byPath[p].Imports {
			if _, seen := prev[imp]; !seen && byPath[imp] != nil {
				prev[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	var chain []string
	for p := to; p != ""; p = prev[p] {
		chain = append(chain, p)
	}
	slices.Reverse(chain)
	return chain
}

// importPos returns file:line of p's first import of path.
func importPos(root string, p *listed, path string) (string, error) {
	for src, dst := range p.ImportMap {
		if dst == path {
			path = src
		}
	}
	fset := token.NewFileSet()
	for _, name := range p.files() {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.ImportsOnly)
		if err != nil {
			return "", err
		}
		for _, imp := range f.Imports {
			if imp.Path.Value == strconv.Quote(path) {
				return position(root, fset, imp.Pos()), nil
			}
		}
	}
	return p.Dir, nil
}

// listed is what this package reads of go list -json.
type listed struct {
	ImportPath string
	Name       string
	Dir        string
	GoFiles    []string
	CgoFiles   []string
	Imports    []string
	ImportMap  map[string]string
	DepOnly    bool
	Error      *struct{ Err string }
}

// files returns the non-test Go files of p.
func (p *listed) files() []string {
	return slices.Sorted(slices.Values(append(slices.Clip(p.GoFiles), p.CgoFiles...)))
}

// goList runs go list -e -json with args in dir. It ignores GOWORK, so
// that the module is checked as its go.mod declares it.
func goList(dir string, args ...string) ([]*listed, error) {
	cmd := exec.Command("go", append([]string{"list", "-e", "-json"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var pkgs []*listed
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(listed)
		if err := dec.Decode(p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list %s: %v", strings.Join(args, " "), err)
		}
		if p.Error != nil && len(p.files()) > 0 {
			return nil, fmt.Errorf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("go list %s: no packages", strings.Join(args, " "))
	}
	return pkgs, nil
}

// position formats pos as file:line, the file relative to root if inside it.
func position(root string, fset *token.FileSet, pos token.Pos) string {
	p := fset.Position(pos)
	file := p.Filename
	if rel, err := filepath.Rel(root, file); err == nil && filepath.IsLocal(rel) {
		file = filepath.ToSlash(rel)
	}
	return fmt.Sprintf("%s:%d", file, p.Line)
}

func sortViolations(vs []Violation) {
	slices.SortFunc(vs, func(a, b Violation) int {
		if c := comparePos(a.Pos, b.Pos); c != 0 {
			return c
		}
		return strings.Compare(a.Msg, b.Msg)
	})
}

// comparePos orders file:line positions by file, then by line as a number.
func comparePos(a, b string) int {
	fa, la, _ := strings.Cut(a, ":")
	fb, lb, _ := strings.Cut(b, ":")
	if c := strings.Compare(fa, fb); c != 0 {
		return c
	}
	na, _ := strconv.Atoi(la)
	nb, _ := strconv.Atoi(lb)
	return na - nb
}
