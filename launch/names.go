package launch

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/conclave/conclave/dirnode"
	"github.com/conclave/conclave/eventlog"
)

// NodeName returns the node name a conclave process started with args
// logs under (its event log's "node"): peer-<id> for "peer --id", dir-<id>
// for "directory --id", the --member of "group", the --name of "publish"
// and "subscribe"; "" when the arguments do not say.
func NodeName(args []string) string {
	if len(args) == 0 {
		return ""
	}
	flag := func(name string) string {
		for k, a := range args[1:] {
			a = strings.TrimPrefix(a, "-")
			a = strings.TrimPrefix(a, "-")
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				return v
			}
			if a == name && k+2 < len(args) {
				return args[k+2]
			}
		}
		return ""
	}
	id := func() int {
		n, err := strconv.Atoi(flag("id"))
		if err != nil || n < 0 {
			return -1
		}
		return n
	}
	switch args[0] {
	case "peer":
		if n := id(); n >= 0 {
			return eventlog.PeerName(n)
		}
	case "directory":
		if n := id(); n >= 0 {
			return dirnode.Name(n)
		}
	case "group":
		return flag("member")
	case "publish", "subscribe":
		return flag("name")
	}
	return ""
}

// procName returns the node name of process i, "" if unknown: as
// Config.Name gives it, else as its arguments say (NodeName), else as
// its first event said. Call it without c.mu held.
func (c *Cluster) procName(i int) string {
	if c.cfg.Name != nil {
		if n := c.cfg.Name(i); n != "" {
			return n
		}
	}
	if n := NodeName(c.Args(i)); n != "" {
		return n
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[i]; p != nil {
		return p.node
	}
	return ""
}

// learnNode keeps the node name of the first event line p wrote.
func (p *proc) learnNode(line []byte) {
	if p.node != "" {
		return
	}
	var h struct {
		Node string `json:"node"`
	}
	if json.Unmarshal(line, &h) == nil {
		p.node = h.Node
	}
}

// procFields are the fields of a control event about process i.
func (c *Cluster) procFields(i, pid int) []any {
	kv := []any{eventlog.FieldPeer, i}
	if n := c.procName(i); n != "" {
		kv = append(kv, eventlog.FieldProc, n)
	}
	return append(kv, eventlog.FieldPID, pid)
}
