package check

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// DirOp is one operation a client made on the directory, as the client
// saw it: from its first request to the answer it accepted, across every
// replica it tried.
type DirOp struct {
	Client int
	// Kind is DirAnnounce or DirLookup (a subscribe or a read of a topic).
	Kind  string
	Topic string
	QoS   string // the QoS an announce asked for
	// Known is false when the client gave up: the operation may or may
	// not have taken effect, and Code, GotQoS and Group mean nothing.
	Known bool
	// Code is the outcome: DirOK, DirConflict, DirUnknown or DirNoGroup.
	Code string
	// GotQoS and Group are the topic's QoS and group as answered, and
	// Moves the number of times it had moved between groups.
	GotQoS string
	Group  string
	Moves  uint64
	// Call and Return are when the client asked and had its answer.
	Call, Return time.Duration
}

// Kinds and outcomes of a DirOp.
const (
	DirAnnounce = "announce"
	DirLookup   = "lookup"

	DirOK       = "ok"
	DirConflict = "qos-conflict"
	DirUnknown  = "unknown-topic"
	DirNoGroup  = "no-group"
)

// dirTopic is what the model knows of one topic. An empty group with
// announced set is a group not seen yet: an announce that timed out
// placed the topic, somewhere. moves counts the topic's moves as last
// seen.
type dirTopic struct {
	announced bool
	qos       string
	group     string
	moves     uint64
}

// DirModel is the directory's sequential specification, one topic at a
// time (topics are independent): the first announce fixes the topic's
// QoS and group; later announces with the same QoS get that group, with
// another a conflict; a lookup sees the topic as announced, or not at all
// before. A topic may move to another group between two operations (a
// command on another topic can move it): its move count only grows, and
// while it stays the same, so does the group.
var DirModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var topics []string
		for _, op := range h {
			t := op.Input.(DirOp).Topic
			if _, ok := by[t]; !ok {
				topics = append(topics, t)
			}
			by[t] = append(by[t], op)
		}
		var parts [][]porcupine.Operation
		for _, t := range topics {
			parts = append(parts, by[t])
		}
		return parts
	},
	Init: func() any { return dirTopic{} },
	Step: func(state, input, _ any) (bool, any) {
		return dirStep(state.(dirTopic), input.(DirOp))
	},
	Equal: func(a, b any) bool { return a.(dirTopic) == b.(dirTopic) },
	DescribeOperation: func(input, _ any) string {
		op := input.(DirOp)
		if !op.Known {
			return fmt.Sprintf("%s %s %s -> ?", op.Kind, op.Topic, op.QoS)
		}
		return fmt.Sprintf("%s %s %s -> %s %s %s (moves %d)", op.Kind, op.Topic, op.QoS, op.Code, op.GotQoS, op.Group, op.Moves)
	},
	DescribeState: func(state any) string {
		s := state.(dirTopic)
		if !s.announced {
			return "not announced"
		}
		return fmt.Sprintf("%s in %q (moves %d)", s.qos, s.group, s.moves)
	},
}

func dirStep(s dirTopic, op DirOp) (bool, dirTopic) {
	// sameGroup matches an answered group with the one known, and learns
	// it if none is known yet, or if the topic moved since.
	sameGroup := func(g string) (bool, dirTopic) {
		switch {
		case op.Moves < s.moves:
			return false, s
		case op.Moves > s.moves:
			s.group, s.moves = g, op.Moves
			return true, s
		case s.group != "" && s.group != g:
			return false, s
		}
		s.group = g
		return true, s
	}
	switch op.Kind {
	case DirAnnounce:
		if !op.Known {
			if !s.announced {
				s = dirTopic{announced: true, qos: op.QoS}
			}
			return true, s
		}
		switch op.Code {
		case DirOK:
			if !s.announced {
				return true, dirTopic{announced: true, qos: op.QoS, group: op.Group, moves: op.Moves}
			}
			if s.qos != op.QoS {
				return false, s
			}
			return sameGroup(op.Group)
		case DirConflict:
			return s.announced && s.qos != op.QoS && (op.GotQoS == "" || op.GotQoS == s.qos), s
		case DirNoGroup:
			return !s.announced, s
		}
	case DirLookup:
		if !op.Known {
			return true, s
		}
		switch op.Code {
		case DirOK:
			if !s.announced || s.qos != op.GotQoS {
				return false, s
			}
			return sameGroup(op.Group)
		case DirUnknown:
			return !s.announced, s
		}
	}
	return false, s
}

// Linearizable checks a directory history against DirModel within
// timeout. It returns nil when the history is linearizable, and
// otherwise an error that names the topics whose operations cannot be
// ordered, with those operations; porcupine.Unknown (the check ran out
// of time) is an error too.
func Linearizable(ops []DirOp, timeout time.Duration) error {
	h := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		ret := op.Return
		if !op.Known {
			ret = 1<<63 - 1 // it may take effect at any time after its call
		}
		h = append(h, porcupine.Operation{ClientId: op.Client, Input: op, Call: int64(op.Call), Output: nil, Return: int64(ret)})
	}
	res := porcupine.CheckOperationsTimeout(DirModel, h, timeout)
	switch res {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return fmt.Errorf("directory history of %d operations: the linearizability check ran out of time (%v)", len(ops), timeout)
	}
	var bad []string
	topics := map[string][]DirOp{}
	for _, op := range ops {
		topics[op.Topic] = append(topics[op.Topic], op)
	}
	for _, t := range slices.Sorted(maps.Keys(topics)) {
		var m porcupine.Model = DirModel
		m.Partition = nil
		var sub []porcupine.Operation
		for _, op := range h {
			if op.Input.(DirOp).Topic == t {
				sub = append(sub, op)
			}
		}
		if porcupine.CheckOperations(m, sub) {
			continue
		}
		var lines []string
		for _, op := range topics[t] {
			lines = append(lines, "  "+describeDirOp(op))
		}
		bad = append(bad, fmt.Sprintf("topic %q:\n%s", t, strings.Join(lines, "\n")))
	}
	return fmt.Errorf("directory history not linearizable:\n%s", strings.Join(bad, "\n"))
}

func describeDirOp(op DirOp) string {
	ret := "never answered"
	if op.Known {
		ret = fmt.Sprintf("answered at %v: %s", op.Return, op.Code)
		if op.GotQoS != "" || op.Group != "" {
			ret += fmt.Sprintf(" (qos %s, group %s)", op.GotQoS, op.Group)
		}
	}
	what := op.Kind + " " + op.Topic
	if op.QoS != "" {
		what += " " + op.QoS
	}
	return fmt.Sprintf("client %d: %s, asked at %v, %s", op.Client, what, op.Call, ret)
}
