package directory_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/conclave/conclave/directory"
)

// FuzzDecodeCommand decodes arbitrary bytes: no panic, and what decodes
// encodes back to the same bytes (the encoding is canonical).
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range sampleCommands {
		f.Add(directory.EncodeCommand(c))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 5, 1, 'c', 1, 2, 'g', '0', 200, 7})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := directory.DecodeCommand(b)
		if err != nil {
			return
		}
		again := directory.EncodeCommand(c)
		if !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v from %q, which encodes as %q", c, b, again)
		}
		c2, err := directory.DecodeCommand(again)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("%+v encodes to what decodes as %+v, %v", c, c2, err)
		}
	})
}

// FuzzDecodeResult does the same for results.
func FuzzDecodeResult(f *testing.F) {
	f.Add(directory.EncodeResult(directory.Result{}))
	f.Add(directory.EncodeResult(directory.Result{Code: directory.CodeNoGroup, Msg: "no group left"}))
	f.Add(directory.EncodeResult(directory.Result{QoS: "vsync", Hash: "h", XML: vsyncXML, Group: "g0", Contacts: []string{"a:1"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := directory.DecodeResult(b)
		if err != nil {
			return
		}
		_ = r.Err()
		if again := directory.EncodeResult(r); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v from %q, which encodes as %q", r, b, again)
		}
	})
}

// fuzzConfig is the configuration of the states FuzzApply and FuzzRestore
// work on: few groups and sessions, so that inputs reach their limits.
var fuzzConfig = directory.StateConfig{MaxGroups: 3, MaxSessions: 4}

// script turns fuzz input into commands. The input is a sequence of
// chunks, each a length byte n and n bytes. A chunk whose first byte is
// below 0x80 is applied as it is (an encoded command starts with its
// version, 1); an empty chunk is an empty entry; other chunks build a
// command from their bytes:
//
//	0: 0x80 | operation (announce, subscribe, unsubscribe, withdraw, contacts, report, remove-contact)
//	1: client c0..c3
//	2: sequence number: the client's next (even), its last (odd and < 0xc0), or the byte itself
//	3: topic t0..t7
//	4: QoS (announce: vsync, total, small, vsync written otherwise, unknown, bad XML) or group g0..g3
//	5: contact addresses h0..h7 (a bit each; remove-contact: the lowest); report: topics t0..t7 (a bit each), in order or (bit 0 of byte 4) reversed
//	6: report: milliseconds; each topic counts it delivered and byte 7 filtered
func script(data []byte) [][]byte {
	var out [][]byte
	seq := map[string]uint64{}
	qos := []directory.Announce{
		{QoS: "vsync"}, {QoS: "total"}, {QoS: "small.xml", XML: smallXML}, {QoS: "mine.xml", XML: vsyncOtherXML},
		{QoS: "fifo"}, {QoS: "bad.xml", XML: []byte("<stack name=\"b\">\n<layer kind=\"x\"/>\n</stack>")},
	}
	at := func(b []byte, i int) byte {
		if i < len(b) {
			return b[i]
		}
		return 0
	}
	for len(data) > 0 {
		n := int(data[0])
		data = data[1:]
		chunk := data[:min(n, len(data))]
		data = data[len(chunk):]
		if len(chunk) == 0 || chunk[0] < 0x80 {
			out = append(out, chunk)
			continue
		}
		client := fmt.Sprintf("c%d", at(chunk, 1)%4)
		switch s := at(chunk, 2); {
		case s%2 == 0:
			seq[client]++
		case s < 0xc0:
		default:
			seq[client] = uint64(s)
		}
		topic := fmt.Sprintf("t%d", at(chunk, 3)%8)
		var op directory.Op
		switch chunk[0] & 7 % 7 {
		case 0:
			a := qos[int(at(chunk, 4))%len(qos)]
			a.Topic = topic
			op = a
		case 1:
			op = directory.Subscribe{Topic: topic}
		case 2:
			op = directory.Unsubscribe{Topic: topic}
		case 3:
			op = directory.Withdraw{Topic: topic}
		case 4:
			var addrs []string
			for i := range 8 {
				if at(chunk, 5)>>i&1 != 0 {
					addrs = append(addrs, fmt.Sprintf("h%d", i))
				}
			}
			op = directory.Contacts{Group: fmt.Sprintf("g%d", at(chunk, 4)%4), Addrs: addrs}
		case 5:
			r := directory.Report{Millis: uint64(at(chunk, 6))}
			for i := range 8 {
				if at(chunk, 5)>>i&1 != 0 {
					r.Topics = append(r.Topics, directory.TopicCount{Topic: fmt.Sprintf("t%d", i), Delivered: uint64(at(chunk, 6)), Filtered: uint64(at(chunk, 7))})
				}
			}
			if at(chunk, 4)&1 != 0 {
				slices.Reverse(r.Topics)
			}
			op = r
		case 6:
			i := 0
			for i < 8 && at(chunk, 5)>>i&1 == 0 {
				i++
			}
			op = directory.RemoveContact{Group: fmt.Sprintf("g%d", at(chunk, 4)%4), Addr: fmt.Sprintf("h%d", i)}
		}
		out = append(out, directory.EncodeCommand(directory.Command{Client: client, Seq: seq[client], Op: op}))
	}
	return out
}

// chunks encodes commands as script input.
func chunks(cmds ...[]byte) []byte {
	var b []byte
	for _, c := range cmds {
		b = append(b, byte(len(c)))
		b = append(b, c...)
	}
	return b
}

// FuzzApply applies what script makes of arbitrary bytes to a state, at
// increasing indexes: no panic, results that decode, invariants after
// every command, a topic that changes groups only by a move, and a second state,
// restored from the first's snapshot halfway, that ends equal to it.
func FuzzApply(f *testing.F) {
	var cmds [][]byte
	for _, c := range sampleCommands {
		cmds = append(cmds, directory.EncodeCommand(c))
	}
	f.Add(chunks(cmds...))
	f.Add([]byte{
		3, 0x80, 0, 0, 1, 0x81, 1, 0, 0, 3, 0x80, 2, 0, 1, 5, 0x80, 0, 0, 2, 1, 6, 0x84, 0, 0, 0, 0, 0xff,
		3, 0x80, 0, 0, 3, 0x81, 1, 0, 3, 0x80, 2, 0, 4, 4, 0x80, 0, 0, 5, 2, 3, 0x81, 3, 1, 0, 3, 0x81, 3, 0xc3, 0, 4, 0x83, 0, 1, 0,
	})
	f.Add([]byte{0, 1, 1, 2, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		cmds := script(data)
		a, err := directory.NewState(fuzzConfig)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := directory.NewState(fuzzConfig)
		groups, moves := map[string]string{}, map[string]uint64{}
		for i, cmd := range cmds {
			index := uint64(i + 1)
			out := a.Apply(index, cmd)
			if err := a.CheckInvariants(); err != nil {
				t.Fatalf("command %d (%q): %v", i, cmd, err)
			}
			if len(cmd) == 0 {
				if out != nil {
					t.Fatalf("an empty entry returned %q", out)
				}
			} else if _, err := directory.DecodeResult(out); err != nil {
				t.Fatalf("command %d: result %q: %v", i, out, err)
			}
			if i == len(cmds)/2 {
				if err := b.Restore(a.Snapshot()); err != nil {
					t.Fatalf("restoring a snapshot: %v", err)
				}
			} else if i > len(cmds)/2 {
				if o := b.Apply(index, cmd); !bytes.Equal(o, out) {
					t.Fatalf("command %d: %q from the original, %q from the restored", i, out, o)
				}
			}
			for _, ti := range a.Topics() {
				g, ok := groups[ti.Topic]
				switch {
				case !ok:
				case ti.Moves == moves[ti.Topic] && g != ti.Group:
					t.Fatalf("topic %s went from %s to %s without a move", ti.Topic, g, ti.Group)
				case ti.Moves != moves[ti.Topic] && (ti.Moves != moves[ti.Topic]+1 || ti.From != g):
					t.Fatalf("topic %s in %s after %d moves, now %+v", ti.Topic, g, moves[ti.Topic], ti)
				}
				groups[ti.Topic], moves[ti.Topic] = ti.Group, ti.Moves
			}
		}
		if len(cmds) > 0 && !bytes.Equal(a.Snapshot(), b.Snapshot()) {
			t.Fatal("the original and the restored state end apart")
		}
	})
}

// FuzzRestore restores arbitrary bytes: no panic; a refused snapshot
// leaves the state as it was; an accepted one gives a consistent state
// that snapshots to the same bytes and takes commands.
func FuzzRestore(f *testing.F) {
	f.Add(busy(f).s.Snapshot())
	empty, _ := directory.NewState(fuzzConfig)
	f.Add(empty.Snapshot())
	f.Add([]byte("cdir\x01"))
	if old, err := os.ReadFile("testdata/snapshot-v1.bin"); err == nil {
		f.Add(old)
	}
	f.Fuzz(func(t *testing.T, snap []byte) {
		s, err := directory.NewState(fuzzConfig)
		if err != nil {
			t.Fatal(err)
		}
		s.Apply(1, directory.EncodeCommand(directory.Command{Client: "x", Seq: 1, Op: directory.Announce{Topic: "t", QoS: "vsync"}}))
		before := s.Snapshot()
		if err := s.Restore(snap); err != nil {
			if !bytes.Equal(before, s.Snapshot()) {
				t.Fatalf("a refused snapshot (%v) changed the state", err)
			}
			return
		}
		if err := s.CheckInvariants(); err != nil {
			t.Fatalf("restored an inconsistent state: %v", err)
		}
		again := s.Snapshot()
		if snap[4] == 1 {
			// Version 1 restores, and snapshots as version 3 of the same
			// state.
			s3, _ := directory.NewState(fuzzConfig)
			if err := s3.Restore(again); err != nil || fmt.Sprint(s3.Topics(), s3.Groups(), s3.Clients(), s3.Applied()) !=
				fmt.Sprint(s.Topics(), s.Groups(), s.Clients(), s.Applied()) {
				t.Fatalf("restored version 1 %q, which snapshots as %q, which restores otherwise (%v)", snap, again, err)
			}
		} else if !bytes.Equal(again, snap) {
			t.Fatalf("restored %q, which snapshots as %q", snap, again)
		}
		for i, c := range sampleCommands {
			s.Apply(s.Applied()+1+uint64(i), directory.EncodeCommand(c))
			if err := s.CheckInvariants(); err != nil {
				t.Fatalf("after command %d on the restored state: %v", i, err)
			}
		}
	})
}

// FuzzQuery answers arbitrary queries, as clients send them, on a state
// with topics and groups: no panic, and an answer in JSON.
func FuzzQuery(f *testing.F) {
	f.Add([]byte{directory.QueryList})
	f.Add([]byte{directory.QueryMoves})
	f.Add(directory.LookupQuery("t0"))
	f.Add(directory.GroupQuery("g0"))
	f.Add(directory.GroupQuery("g99999999999999999999"))
	f.Add([]byte{directory.QueryGroup, 'g', '-', '1'})
	f.Add([]byte{})
	s := busy(f).s
	f.Fuzz(func(t *testing.T, q []byte) {
		if out := s.Query(q); !json.Valid(out) {
			t.Fatalf("query %q: answer %q is not JSON", q, out)
		}
	})
}
