package eventlog

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// catalogue is what names.go declares.
type catalogue struct {
	events map[string][]string // event name → sections of docs/events.md that must list it
	fields map[string]bool     // field keys
}

// blocks says, by the first words of a const block's doc comment in
// names.go, which sections of docs/events.md list its events; "fields"
// marks the field keys. A block matching none is an error, so that a new
// block cannot escape the comparison.
type block struct {
	prefix   string
	sections []string
}

var blocks = []block{
	{"Events of peers and group members", []string{"Peer events", "Group member events"}},
	{"Peer events", []string{"Peer events"}},
	{"Group member events", []string{"Group member events"}},
	{"Directory replica events", []string{"Directory replica events"}},
	{"Publish/subscribe client events", []string{"Publish/subscribe client events"}},
	{"Directory client events", []string{"Directory client events"}},
	{"Control events", []string{"Control events"}},
	{"Events any process", []string{"Events of any process"}},
	{"Field keys", []string{"fields"}},
	{"Control is", nil},           // a node name
	{"Values of FieldCause", nil}, // field values
}

// readCatalogue parses the const declarations of a Go file.
func readCatalogue(path string) (catalogue, error) {
	cat := catalogue{events: map[string][]string{}, fields: map[string]bool{}}
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments)
	if err != nil {
		return cat, err
	}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		doc := strings.TrimSpace(g.Doc.Text())
		i := slices.IndexFunc(blocks, func(b block) bool { return strings.HasPrefix(doc, b.prefix) })
		if i < 0 {
			return cat, fmt.Errorf("%s: const block %q belongs to no section of the docs", path, doc)
		}
		for _, s := range g.Specs {
			for _, v := range s.(*ast.ValueSpec).Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return cat, fmt.Errorf("%s: %s is not a string literal", path, doc)
				}
				name, _ := strconv.Unquote(lit.Value)
				switch secs := blocks[i].sections; {
				case slices.Equal(secs, []string{"fields"}):
					cat.fields[name] = true
				case secs != nil:
					cat.events[name] = append(cat.events[name], secs...)
				}
			}
		}
	}
	return cat, nil
}

// docTables is what the tables of docs/events.md list.
type docTables struct {
	events map[string]map[string]bool // section → event names
	fields map[string]bool            // keys in fields columns
	keys   map[string]bool            // keys in key tables
}

var backticked = regexp.MustCompile("`([^`]*)`")

// parseDoc reads the tables of the event reference: tables headed
// "| event | fields | when |" list events of the section (the heading up
// to " ("), tables headed "| key | meaning |" list keys.
func parseDoc(md string) docTables {
	d := docTables{events: map[string]map[string]bool{}, fields: map[string]bool{}, keys: map[string]bool{}}
	section, header := "", ""
	for _, line := range strings.Split(md, "\n") {
		line = strings.TrimSpace(line)
		if h, ok := strings.CutPrefix(line, "## "); ok {
			section, _, _ = strings.Cut(h, " (")
			continue
		}
		if !strings.HasPrefix(line, "|") {
			header = ""
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case header == "":
			header = strings.Join(cells, "|")
			continue
		case strings.HasPrefix(cells[0], "--"):
			continue
		}
		first := backticked.FindStringSubmatch(cells[0])
		if first == nil || len(cells) < 2 {
			continue
		}
		switch header {
		case "event|fields|when":
			if d.events[section] == nil {
				d.events[section] = map[string]bool{}
			}
			d.events[section][first[1]] = true
			for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
				d.fields[m[1]] = true
			}
		case "key|meaning":
			d.keys[first[1]] = true
		}
	}
	return d
}

// compare lists every disagreement between the catalogue and the docs.
func compare(cat catalogue, d docTables) []string {
	var out []string
	for _, ev := range slices.Sorted(maps.Keys(cat.events)) {
		for _, s := range cat.events[ev] {
			if !d.events[s][ev] {
				out = append(out, fmt.Sprintf("event %q is not in the table of %q", ev, s))
			}
		}
	}
	for _, s := range slices.Sorted(maps.Keys(d.events)) {
		for _, ev := range slices.Sorted(maps.Keys(d.events[s])) {
			if !slices.Contains(cat.events[ev], s) {
				out = append(out, fmt.Sprintf("event %q of %q is not in the catalogue there", ev, s))
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cat.fields)) {
		if !d.fields[k] && !d.keys[k] {
			out = append(out, fmt.Sprintf("field %q is in no table", k))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(d.fields)) {
		if !cat.fields[k] {
			out = append(out, fmt.Sprintf("field %q is not in the catalogue", k))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(d.keys)) {
		if !cat.fields[k] && !reserved[k] {
			out = append(out, fmt.Sprintf("key %q is neither a header key nor in the catalogue", k))
		}
	}
	for k := range reserved {
		if !d.keys[k] {
			out = append(out, fmt.Sprintf("header key %q is in no table", k))
		}
	}
	return out
}

func mapKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCatalogueMatchesDocs(t *testing.T) {
	cat, err := readCatalogue("names.go")
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.events) < 40 || len(cat.fields) < 40 {
		t.Fatalf("read only %d events and %d fields from names.go", len(cat.events), len(cat.fields))
	}
	for _, p := range compare(cat, parseDoc(string(md))) {
		t.Errorf("names.go and docs/events.md disagree: %s", p)
	}
}

// TestCompareFindsDisagreements shows the test above can fail.
func TestCompareFindsDisagreements(t *testing.T) {
	cat, err := readCatalogue("names.go")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	row := regexp.MustCompile("(?m)^\\| `leader_change` .*\n")
	if !row.MatchString(md) {
		t.Fatal("no leader_change row in docs/events.md")
	}
	// An event left out, a field not in the catalogue, an event not in
	// the catalogue; a field not documented, an event in a section whose
	// table lacks it.
	md = row.ReplaceAllString(md, "")
	md = strings.Replace(md, "| `found` | |", "| `found` | `whence` |", 1)
	md = strings.Replace(md, "| `net_heal` | |", "| `net_mend` | | mended |\n| `net_heal` | |", 1)
	cat.fields["colour"] = true
	cat.events["conn_up"] = append(cat.events["conn_up"], "Group member events")

	got := compare(cat, parseDoc(md))
	want := []string{
		`event "conn_up" is not in the table of "Group member events"`,
		`event "leader_change" is not in the table of "Peer events"`,
		`event "net_mend" of "Control events" is not in the catalogue there`,
		`field "alive" is in no table`, // only leader_change had it
		`field "colour" is in no table`,
		`field "whence" is not in the catalogue`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("compare found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
