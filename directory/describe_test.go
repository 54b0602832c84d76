package directory

import "testing"

// TestDescribeNamesEveryOp: dir_apply names each operation as dir_call
// does (docs/events.md), with its topic or group.
func TestDescribeNamesEveryOp(t *testing.T) {
	for _, c := range []struct {
		op                 Op
		name, topic, group string
	}{
		{Announce{Topic: "t", QoS: "vsync"}, "announce", "t", ""},
		{Subscribe{Topic: "t"}, "subscribe", "t", ""},
		{Unsubscribe{Topic: "t"}, "unsubscribe", "t", ""},
		{Withdraw{Topic: "t"}, "withdraw", "t", ""},
		{Contacts{Group: "g1", Addrs: []string{"a:1"}}, "contacts", "", "g1"},
		{AddContact{Group: "g1", Addr: "a:1"}, "add-contact", "", "g1"},
		{RemoveContact{Group: "g1", Addr: "a:1"}, "remove-contact", "", "g1"},
		{Report{Millis: 1000}, "report", "", ""},
		{Move{Topic: "t", Group: "g1"}, "move", "t", "g1"},
		{MoveDone{Topic: "t", Moves: 1}, "move-done", "t", ""},
	} {
		f := Describe(EncodeCommand(Command{Client: "c", Seq: 1, Op: c.op}), nil)
		if f["op"] != c.name || c.topic != "" && f["topic"] != c.topic || c.group != "" && f["group"] != c.group {
			t.Errorf("%T described as %v, want op %s, topic %q, group %q", c.op, f, c.name, c.topic, c.group)
		}
	}
}
