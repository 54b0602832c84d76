package launch

import "testing"

// TestNodeName reads the node names of conclave commands from their
// arguments, as the processes name their logs.
func TestNodeName(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"peer", "--id", "2", "--peers", "a,b,c"}, "peer-2"},
		{[]string{"peer", "--peers", "a,b", "-id=1"}, "peer-1"},
		{[]string{"directory", "--id", "0", "--peers", "a"}, "dir-0"},
		{[]string{"group", "--group", "g", "--member", "m3"}, "m3"},
		{[]string{"subscribe", "--directory", "a", "--name", "sub-eu", "--topic", "x"}, "sub-eu"},
		{[]string{"publish", "--qos", "total", "--name=pub-1"}, "pub-1"},
		{[]string{"subscribe", "--topic", "x"}, ""},  // a random name
		{[]string{"peer", "--id"}, ""},               // no value
		{[]string{"peer", "--id", "-1"}, ""},         // no id
		{[]string{"topics", "--directory", "a"}, ""}, // logs nothing
		{nil, ""},
	} {
		if got := NodeName(c.args); got != c.want {
			t.Errorf("NodeName(%q) = %q, want %q", c.args, got, c.want)
		}
	}
}

// TestLearnNode keeps the node of the first event a process wrote.
func TestLearnNode(t *testing.T) {
	var p proc
	p.learnNode([]byte("not json\n"))
	p.learnNode([]byte(`{"ts":"2026-01-01T00:00:00Z","node":"client-1a2b","inc":1,"lc":1,"ev":"ps_announce"}` + "\n"))
	p.learnNode([]byte(`{"ts":"2026-01-01T00:00:00Z","node":"other","inc":1,"lc":2,"ev":"ps_view"}` + "\n"))
	if p.node != "client-1a2b" {
		t.Errorf("learnt %q", p.node)
	}
}
