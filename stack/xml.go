package stack

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Description is a stack described in XML:
//
//	<stack name="total" doc="view-synchronous total order">
//	  <layer kind="detect" heartbeat="100ms" suspect-after="500ms"/>
//	  <layer kind="membership"/>
//	  <layer kind="vsync" window="512"/>
//	  <layer kind="total"/>
//	</stack>
//
// Layers are listed bottom first. Each layer names a registered kind; its
// other attributes are the kind's parameters, typed and checked, with
// defaults for those left out.
type Description struct {
	Name   string
	Doc    string
	File   string // where it was read from, for errors
	Layers []LayerDesc
	XML    []byte // the text it was parsed from
}

// LayerDesc is one layer of a Description with its parameters resolved.
type LayerDesc struct {
	Kind   string
	Line   int
	Params Params
}

// Canonical returns d's layers with every parameter, defaults included,
// in one canonical text: the same stack written twice, with other spacing,
// attribute order or defaults left out, has the same canonical text. The
// name and doc are not part of it.
func (d *Description) Canonical() string {
	var b strings.Builder
	for i, l := range d.Layers {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(l.Kind)
		b.WriteByte('(')
		for j, k := range slices.Sorted(maps.Keys(l.Params)) {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=%v", k, l.Params[k])
		}
		b.WriteByte(')')
	}
	return b.String()
}

// Hash returns the first 16 hex digits of the SHA-256 of d's canonical
// text.
func (d *Description) Hash() string {
	sum := sha256.Sum256([]byte(d.Canonical()))
	return hex.EncodeToString(sum[:8])
}

// ID names d for a peer that runs another stack: its name and hash, as in
// "total#1a2b3c4d5e6f7a8b". Two members run the same stack if their IDs'
// hashes are equal.
func (d *Description) ID() string { return d.Name + "#" + d.Hash() }

// Kinds returns the layer kinds of d, bottom first.
func (d *Description) Kinds() []string {
	out := make([]string, len(d.Layers))
	for i, l := range d.Layers {
		out[i] = l.Kind
	}
	return out
}

// ParamType is the type of a layer parameter.
type ParamType int

// Parameter types.
const (
	Duration ParamType = iota // Go duration: "100ms"
	Int                       // decimal integer
	Bool                      // true or false
	String
)

func (t ParamType) String() string {
	return [...]string{"duration", "integer", "boolean", "string"}[t]
}

// Param declares one parameter of a layer kind.
type Param struct {
	Name     string
	Type     ParamType
	Default  string
	Doc      string
	Min, Max int64 // bounds for Int and Duration (nanoseconds); Max 0 means none
}

// Params are the typed values of a layer's parameters.
type Params map[string]any

// Duration returns parameter name, which must be a Duration.
func (p Params) Duration(name string) time.Duration { return p[name].(time.Duration) }

// Int returns parameter name, which must be an Int.
func (p Params) Int(name string) int { return int(p[name].(int64)) }

// Bool returns parameter name, which must be a Bool.
func (p Params) Bool(name string) bool { return p[name].(bool) }

// String returns parameter name, which must be a String.
func (p Params) String(name string) string { return p[name].(string) }

// Kind is a registered layer kind.
type Kind struct {
	Name string
	Doc  string
	// Params are the parameters the kind accepts.
	Params []Param
	// Below are kinds that must appear below this one in a stack.
	Below []string
	// Unique means the kind may appear at most once in a stack.
	Unique bool
	// Top means the kind must be the topmost layer of a stack.
	Top bool
	// New builds a layer from checked parameters.
	New func(p Params) Layer
	// Check, if set, checks the parameters together (each is already
	// within its bounds), and returns a sentence saying what is wrong.
	Check func(p Params) error
}

// Registry holds the layer kinds stacks can be built from.
type Registry struct {
	kinds map[string]*Kind
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{kinds: map[string]*Kind{}} }

// Register adds k; it panics on a duplicate name or a bad default, which
// are programming errors.
func (r *Registry) Register(k Kind) {
	if _, dup := r.kinds[k.Name]; dup {
		panic("stack: layer kind registered twice: " + k.Name)
	}
	for _, p := range k.Params {
		if _, err := parseParam(p, p.Default); err != nil {
			panic(fmt.Sprintf("stack: kind %s: default of %s: %v", k.Name, p.Name, err))
		}
	}
	r.kinds[k.Name] = &k
}

// Kind returns the kind called name.
func (r *Registry) Kind(name string) (*Kind, bool) {
	k, ok := r.kinds[name]
	return k, ok
}

// Kinds returns the registered kinds sorted by name.
func (r *Registry) Kinds() []*Kind {
	out := make([]*Kind, 0, len(r.kinds))
	for _, k := range r.kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Build returns a stack for member me as described by d.
func (r *Registry) Build(d *Description, me Member) (*Stack, error) {
	layers := make([]Layer, len(d.Layers))
	for i, l := range d.Layers {
		k, ok := r.kinds[l.Kind]
		if !ok {
			return nil, fmt.Errorf("%s:%d: unknown layer kind %q", d.File, l.Line, l.Kind)
		}
		layers[i] = k.New(l.Params)
	}
	st := New(me, d.Kinds(), layers)
	st.id = d.ID()
	return st, nil
}

// MaxDescription bounds the size of a stack description.
const MaxDescription = 64 << 10

// Error is a problem in a stack description, at a line of a file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Parse reads a stack description from data, naming file in errors, and
// checks it against the registry: known kinds, known and well-typed
// parameters, dependencies below each layer.
func (r *Registry) Parse(file string, data []byte) (*Description, error) {
	fail := func(line int, format string, args ...any) error {
		return &Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	if len(data) > MaxDescription {
		return nil, fail(0, "description is %d bytes, over the limit of %d", len(data), MaxDescription)
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	d := &Description{File: file, XML: slices.Clone(data)}
	depth := 0
	seenStack := false
	for {
		line, _ := dec.InputPos()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, fail(se.Line, "%s", se.Msg)
			}
			return nil, fail(line, "%v", err)
		}
		line, _ = dec.InputPos()
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1 && t.Name.Local == "stack":
				if seenStack {
					return nil, fail(line, "more than one <stack>")
				}
				seenStack = true
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "name":
						d.Name = a.Value
					case "doc":
						d.Doc = a.Value
					default:
						return nil, fail(line, "<stack> has no attribute %q (it takes name and doc)", a.Name.Local)
					}
				}
				if d.Name == "" {
					return nil, fail(line, "<stack> needs a name")
				}
			case depth == 1:
				return nil, fail(line, "the root element must be <stack>, not <%s>", t.Name.Local)
			case depth == 2 && t.Name.Local == "layer":
				l, err := r.layer(t, line, fail)
				if err != nil {
					return nil, err
				}
				d.Layers = append(d.Layers, l)
			default:
				return nil, fail(line, "unexpected element <%s> (a <stack> holds only <layer> elements)", t.Name.Local)
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return nil, fail(line, "unexpected text %q", strings.TrimSpace(string(t)))
			}
		}
	}
	if !seenStack {
		return nil, fail(0, "no <stack> element")
	}
	if len(d.Layers) == 0 {
		return nil, fail(0, "stack %q has no layers", d.Name)
	}
	for i, l := range d.Layers {
		k := r.kinds[l.Kind]
		for _, b := range k.Below {
			if !slices.Contains(d.Kinds()[:i], b) {
				return nil, fail(l.Line, "layer %q needs a %q layer below it", l.Kind, b)
			}
		}
		if k.Unique && slices.Contains(d.Kinds()[:i], l.Kind) {
			return nil, fail(l.Line, "layer %q may appear only once", l.Kind)
		}
		if k.Top && i != len(d.Layers)-1 {
			return nil, fail(l.Line, "layer %q must be the topmost layer", l.Kind)
		}
	}
	return d, nil
}

func (r *Registry) layer(t xml.StartElement, line int, fail func(int, string, ...any) error) (LayerDesc, error) {
	l := LayerDesc{Line: line, Params: Params{}}
	vals := map[string]string{}
	for _, a := range t.Attr {
		if a.Name.Local == "kind" {
			l.Kind = a.Value
			continue
		}
		if _, dup := vals[a.Name.Local]; dup {
			return l, fail(line, "parameter %q given twice", a.Name.Local)
		}
		vals[a.Name.Local] = a.Value
	}
	if l.Kind == "" {
		return l, fail(line, "<layer> needs a kind")
	}
	k, ok := r.kinds[l.Kind]
	if !ok {
		var names []string
		for _, k := range r.Kinds() {
			names = append(names, k.Name)
		}
		return l, fail(line, "unknown layer kind %q (known: %s)", l.Kind, strings.Join(names, ", "))
	}
	for name := range vals {
		if !slices.ContainsFunc(k.Params, func(p Param) bool { return p.Name == name }) {
			return l, fail(line, "layer %q has no parameter %q", l.Kind, name)
		}
	}
	for _, p := range k.Params {
		s, ok := vals[p.Name]
		if !ok {
			s = p.Default
		}
		v, err := parseParam(p, s)
		if err != nil {
			return l, fail(line, "layer %q: %v", l.Kind, err)
		}
		l.Params[p.Name] = v
	}
	if k.Check != nil {
		if err := k.Check(l.Params); err != nil {
			return l, fail(line, "layer %q: %v", l.Kind, err)
		}
	}
	return l, nil
}

func parseParam(p Param, s string) (any, error) {
	var n int64
	var v any
	switch p.Type {
	case Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%s=%q is not a duration (e.g. 100ms)", p.Name, s)
		}
		n, v = int64(d), d
	case Int:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s=%q is not an integer", p.Name, s)
		}
		n, v = i, i
	case Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%s=%q is not true or false", p.Name, s)
		}
		return b, nil
	default:
		return s, nil
	}
	if n < p.Min || (p.Max != 0 && n > p.Max) {
		lo, hi := fmt.Sprint(p.Min), fmt.Sprint(p.Max)
		if p.Type == Duration {
			lo, hi = time.Duration(p.Min).String(), time.Duration(p.Max).String()
		}
		if p.Max == 0 {
			return nil, fmt.Errorf("%s=%s is below the minimum %s", p.Name, s, lo)
		}
		return nil, fmt.Errorf("%s=%s is out of range [%s, %s]", p.Name, s, lo, hi)
	}
	return v, nil
}
