package directory

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conclave/conclave/layers"
	"github.com/conclave/conclave/stack"
)

// qos is a quality of service: a stack description in canonical form.
// Its identity is hash; name is the stack's name as first announced.
type qos struct {
	name string
	hash string
	xml  []byte
}

// qosFile names an announce's XML in errors when the client gave no file
// name.
const qosFile = "qos.xml"

// resolve returns the QoS an announce asks for, or a result with
// CodeBadQoS.
func (s *State) resolve(a Announce) (qos, *Result) {
	bad := func(format string, args ...any) (qos, *Result) {
		r := fail(CodeBadQoS, format, args...)
		return qos{}, &r
	}
	if len(a.XML) == 0 {
		if a.QoS == "" {
			return bad("the announce of topic %q names no QoS: name a shipped stack (%s) or send a stack's XML", a.Topic, strings.Join(layers.Shipped(), ", "))
		}
		q, ok := s.shipped[a.QoS]
		if !ok {
			return bad("no shipped QoS %q (shipped: %s); to announce another, send its stack's XML", a.QoS, strings.Join(layers.Shipped(), ", "))
		}
		return q, nil
	}
	file := a.QoS
	if file == "" {
		file = qosFile
	}
	q, err := s.parseQoS(file, a.XML)
	if err != nil {
		return bad("%v", err)
	}
	return q, nil
}

// parseQoS parses a stack description and puts it in canonical form.
func (s *State) parseQoS(file string, data []byte) (qos, error) {
	d, err := s.reg.Parse(file, data)
	if err != nil {
		return qos{}, err
	}
	if len(d.Name) > MaxName {
		return qos{}, &stack.Error{File: file, Msg: fmt.Sprintf("stack name is %d bytes, over the limit of %d", len(d.Name), MaxName)}
	}
	q := qos{name: d.Name, hash: d.Hash(), xml: canonicalXML(d)}
	// The canonical text must describe the same stack; a parameter value
	// XML cannot carry (not UTF-8) would not.
	if c, err := s.reg.Parse(file, q.xml); err != nil || c.Hash() != q.hash || c.Name != q.name {
		return qos{}, &stack.Error{File: file, Msg: "the stack's parameters cannot be written back as XML unchanged"}
	}
	return q, nil
}

// canonicalXML writes d as XML: its name, then each layer, bottom first,
// with every parameter (defaults included) in name order; no doc, no
// comments. The same stack written twice gives the same text.
func canonicalXML(d *stack.Description) []byte {
	var b bytes.Buffer
	b.WriteString(`<stack name="`)
	xml.EscapeText(&b, []byte(d.Name))
	b.WriteString("\">\n")
	for _, l := range d.Layers {
		b.WriteString(`  <layer kind="`)
		xml.EscapeText(&b, []byte(l.Kind))
		b.WriteByte('"')
		for _, k := range slices.Sorted(maps.Keys(l.Params)) {
			fmt.Fprintf(&b, " %s=\"", k)
			xml.EscapeText(&b, []byte(paramText(l.Params[k])))
			b.WriteByte('"')
		}
		b.WriteString("/>\n")
	}
	b.WriteString("</stack>\n")
	return b.Bytes()
}

// paramText formats a parameter value as a description writes it.
func paramText(v any) string {
	switch v := v.(type) {
	case time.Duration:
		return v.String()
	case int64:
		return strconv.FormatInt(v, 10)
	case bool:
		return strconv.FormatBool(v)
	case string:
		return v
	}
	return fmt.Sprint(v)
}

// shippedQoS returns the shipped stacks in canonical form, by name.
func shippedQoS(reg *stack.Registry) (map[string]qos, error) {
	out := map[string]qos{}
	for _, name := range layers.Shipped() {
		data, _ := layers.ShippedXML(name)
		s := State{reg: reg}
		q, err := s.parseQoS(name+".xml", data)
		if err != nil {
			return nil, fmt.Errorf("shipped stack %s: %w", name, err)
		}
		out[name] = q
	}
	return out, nil
}
