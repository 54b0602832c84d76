package check

import (
	"fmt"

	"github.com/conclave/conclave/eventlog"
)

// Directory checks the event logs of directory replicas (dir_role,
// dir_apply) for Raft's safety properties, as the replicas report them:
//
//   - OneLeaderPerTerm: no two replicas are leader in the same term.
//   - SameCommands: every replica, in every incarnation, that applied an
//     index applied the same command there with the same result (client,
//     seq, op, topic, qos, group, result agree).
//   - AppliedInOrder: within one incarnation, a replica applies increasing
//     indexes.
func Directory(h []eventlog.Event) []Violation {
	type key struct {
		node string
		inc  uint64
	}
	var out []Violation
	leaders := map[uint64]eventlog.Event{} // term → the first leader event
	applied := map[uint64]eventlog.Event{} // index → the first apply seen
	last := map[key]uint64{}
	for _, e := range h {
		switch e.Ev {
		case eventlog.DirRole:
			if e.Str(eventlog.FieldRole) != "leader" {
				continue
			}
			term := uintOf(e, eventlog.FieldTerm)
			if first, ok := leaders[term]; ok && first.Node != e.Node {
				out = append(out, Violation{Rule: "OneLeaderPerTerm", Event: e,
					Msg: fmt.Sprintf("%s leads term %d, which %s led", e.Node, term, first.Node)})
				continue
			}
			leaders[term] = e
		case eventlog.DirApply:
			i := uintOf(e, eventlog.FieldIndex)
			k := key{e.Node, e.Inc}
			if prev, ok := last[k]; ok && i <= prev {
				out = append(out, Violation{Rule: "AppliedInOrder", Event: e,
					Msg: fmt.Sprintf("%s applied index %d after %d", e.Node, i, prev)})
			}
			last[k] = i
			first, ok := applied[i]
			if !ok {
				applied[i] = e
				continue
			}
			for _, f := range []string{eventlog.FieldClient, eventlog.FieldSeq, eventlog.FieldOp, eventlog.FieldTopic,
				eventlog.FieldQoS, eventlog.FieldGroup, eventlog.FieldResult, eventlog.FieldTerm} {
				if a, b := fmt.Sprint(first.Fields[f]), fmt.Sprint(e.Fields[f]); a != b {
					out = append(out, Violation{Rule: "SameCommands", Event: e,
						Msg: fmt.Sprintf("%s applied at index %d %s=%s, where %s applied %s=%s", e.Node, i, f, b, first.Node, f, a)})
					break
				}
			}
		}
	}
	return out
}

// uintOf returns the unsigned integer field k of e (0 if absent).
func uintOf(e eventlog.Event, k string) uint64 {
	switch v := e.Fields[k].(type) {
	case uint64:
		return v
	case int64:
		return uint64(v)
	case int:
		return uint64(v)
	case float64:
		return uint64(v)
	}
	return 0
}
