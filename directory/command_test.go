package directory_test

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/stack"
)

// sampleCommands has a command of every kind.
var sampleCommands = []directory.Command{
	{Client: "c1", Seq: 1, Op: directory.Announce{Topic: "prices", QoS: "total"}},
	{Client: "c1", Seq: 1 << 40, Op: directory.Announce{Topic: "news", QoS: "small.xml", XML: smallXML}},
	{Client: "c2", Seq: 2, Op: directory.Announce{Topic: "x", XML: vsyncXML}},
	{Client: "c3", Seq: 3, Op: directory.Subscribe{Topic: "prices"}},
	{Client: "c3", Seq: 4, Op: directory.Unsubscribe{Topic: "prices"}},
	{Client: "c1", Seq: 5, Op: directory.Withdraw{Topic: "prices"}},
	{Client: "c4", Seq: 6, Op: directory.Contacts{Group: "g2", Addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000"}}},
	{Client: "c4", Seq: 7, Op: directory.Contacts{Group: "g2"}},
	{Client: "c5", Seq: 1, Op: directory.AddContact{Group: "g1", Addr: "10.0.0.3:7000"}},
	{Client: "ü", Seq: 8, Op: directory.Subscribe{Topic: "日本"}},
	{Client: "c3", Seq: 9, Op: directory.Report{Millis: 5000, Topics: []directory.TopicCount{{Topic: "news", Filtered: 3}, {Topic: "prices", Delivered: 1 << 40, Filtered: 2}}}},
	{Client: "c6", Seq: 1, Op: directory.Report{}},
	{Client: "c5", Seq: 2, Op: directory.RemoveContact{Group: "g1", Addr: "10.0.0.3:7000"}},
	{Client: "c6", Seq: 9, Op: directory.Move{Topic: "x", Group: "g1"}},
	{Client: "c2", Seq: 3, Op: directory.MoveDone{Topic: "x", Moves: 1}},
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range sampleCommands {
		b := directory.EncodeCommand(c)
		got, err := directory.DecodeCommand(b)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("decoded %+v, encoded %+v", got, c)
		}
	}
}

func TestDecodeCommandRefuses(t *testing.T) {
	ok := directory.EncodeCommand(directory.Command{Client: "c", Seq: 1, Op: directory.Subscribe{Topic: "t"}})
	long := strings.Repeat("x", directory.MaxName+1)
	// contacts claims n addresses with none following.
	contacts := func(n uint64) []byte {
		b := directory.EncodeCommand(directory.Command{Client: "c", Seq: 1, Op: directory.Contacts{Group: "g0"}})
		return binary.AppendUvarint(b[:len(b)-1], n)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "version: input ends early"},
		{"version", []byte{2, 2}, "command of version 2"},
		{"no operation", []byte{1}, "operation: input ends early"},
		{"unknown operation", []byte{1, 99, 1, 'c', 1}, "unknown operation 99"},
		{"truncated", ok[:len(ok)-1], "topic: 1 bytes announced, 0 left"},
		{"left over", append(bytes.Clone(ok), 0), "1 bytes left over"},
		{"long topic", directory.EncodeCommand(directory.Command{Client: "c", Seq: 1, Op: directory.Subscribe{Topic: long}}), "topic: 257 bytes, over the limit of 256"},
		{"long client", directory.EncodeCommand(directory.Command{Client: long, Seq: 1, Op: directory.Subscribe{Topic: "t"}}), "client: 257 bytes"},
		{"not UTF-8", directory.EncodeCommand(directory.Command{Client: "c", Seq: 1, Op: directory.Subscribe{Topic: "\xff"}}), "topic: not UTF-8"},
		{"long XML", directory.EncodeCommand(directory.Command{Client: "c", Seq: 1, Op: directory.Announce{Topic: "t", XML: make([]byte, stack.MaxDescription+1)}}), "XML: 65537 bytes, over the limit of 65536"},
		{"long number", []byte{1, 2, 1, 'c', 0x81, 0x00, 1, 't'}, "sequence number: bad number"},
		{"overflow", append([]byte{1, 2, 1, 'c'}, bytes.Repeat([]byte{0xff}, 11)...), "sequence number: bad number"},
		{"too many contacts", contacts(directory.MaxContacts + 1), "contacts: 1025, over the limit of 1024"},
		{"contacts not there", contacts(1000), "contacts: 1000 announced, the input cannot hold them"},
		{"huge length", append([]byte{1, 3, 1, 'c', 1}, binary.AppendUvarint(nil, 1<<62)...), "topic: 4611686018427387904 bytes, over the limit"},
	} {
		c, err := directory.DecodeCommand(tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %+v, %v; want an error containing %q", tc.name, c, err, tc.want)
		}
	}
}

func TestResultRoundTrip(t *testing.T) {
	for _, r := range []directory.Result{
		{},
		{Code: directory.CodeQoSConflict, Msg: "topic \"a\" has QoS total"},
		{QoS: "vsync", Hash: "68dd8f804edf6bed", XML: vsyncXML, Group: "g3", Contacts: []string{"a:1", "b:2"}},
		{Code: 77, Msg: "from the future"},
	} {
		got, err := directory.DecodeResult(directory.EncodeResult(r))
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("decoded %+v, encoded %+v", got, r)
		}
	}
	for _, b := range [][]byte{nil, {2}, {1}, {1, 0x80, 0x02}} {
		if _, err := directory.DecodeResult(b); err == nil {
			t.Errorf("DecodeResult(%q) accepted", b)
		}
	}
}

func TestLongMessagesCut(t *testing.T) {
	m := newMachine(t, directory.StateConfig{MaxGroups: 3})
	// A parse error quoting a long text: the message is cut, and still a
	// valid result.
	xml := "<stack name=\"x\">" + strings.Repeat("é", 2000) + "</stack>"
	r := m.do("p", directory.Announce{Topic: "t", QoS: "f.xml", XML: []byte(xml)})
	if r.Code != directory.CodeBadQoS || len(r.Msg) > directory.MaxMessage || !strings.HasSuffix(r.Msg, "…") || !strings.HasPrefix(r.Msg, "f.xml:1: unexpected text") {
		t.Fatalf("%d bytes: %q", len(r.Msg), r.Msg)
	}
}

// TestDecodeMemory checks that decoding costs memory in proportion to the
// input, whatever lengths and counts the input claims.
func TestDecodeMemory(t *testing.T) {
	var inputs [][]byte
	for _, c := range sampleCommands {
		inputs = append(inputs, directory.EncodeCommand(c))
	}
	many := make([]string, directory.MaxContacts)
	for i := range many {
		many[i] = "a"
	}
	inputs = append(inputs,
		directory.EncodeCommand(directory.Command{Client: "c", Seq: 1, Op: directory.Contacts{Group: "g", Addrs: many}}),
		// claims: the most contacts, of the longest length, then ends
		append([]byte{1, byte(5), 1, 'c', 1, 1, 'g'}, binary.AppendUvarint(binary.AppendUvarint(nil, directory.MaxContacts), directory.MaxName)...),
		append([]byte{1, 1, 1, 'c', 1, 1, 't', 0}, binary.AppendUvarint(nil, stack.MaxDescription)...),
	)
	for _, in := range inputs {
		var before, after runtime.MemStats
		const runs = 100
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range runs {
			directory.DecodeCommand(in)
		}
		runtime.ReadMemStats(&after)
		per := (after.TotalAlloc - before.TotalAlloc) / runs
		if limit := uint64(32*len(in) + 512); per > limit {
			t.Errorf("decoding %d bytes allocates %d bytes, over %d", len(in), per, limit)
		}
	}
}
