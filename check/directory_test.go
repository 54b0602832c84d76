package check

import (
	"strings"
	"testing"
	"time"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func ann(c int, topic, qos string, call, ret int, code, group string) DirOp {
	op := DirOp{Client: c, Kind: DirAnnounce, Topic: topic, QoS: qos, Known: true, Code: code, Group: group, Call: ms(call), Return: ms(ret)}
	if code == DirOK {
		op.GotQoS = qos
	}
	return op
}

func look(c int, topic string, call, ret int, code, qos, group string) DirOp {
	return DirOp{Client: c, Kind: DirLookup, Topic: topic, Known: true, Code: code, GotQoS: qos, Group: group, Call: ms(call), Return: ms(ret)}
}

// moved is op with the topic's move count set.
func moved(op DirOp, moves uint64) DirOp {
	op.Moves = moves
	return op
}

func TestLinearizableAcceptsDirectoryHistories(t *testing.T) {
	for name, ops := range map[string][]DirOp{
		"sequential": {
			look(0, "a", 0, 1, DirUnknown, "", ""),
			ann(1, "a", "total", 2, 3, DirOK, "g0"),
			look(0, "a", 4, 5, DirOK, "total", "g0"),
			ann(2, "a", "vsync", 6, 7, DirConflict, ""),
			ann(2, "a", "total", 8, 9, DirOK, "g0"),
		},
		"concurrent announces, one wins": {
			ann(1, "a", "total", 0, 10, DirOK, "g1"),
			ann(2, "a", "vsync", 1, 9, DirConflict, ""),
			look(0, "a", 2, 3, DirUnknown, "", ""), // before either took effect
		},
		"an announce that timed out took effect": {
			{Client: 1, Kind: DirAnnounce, Topic: "a", QoS: "total", Call: ms(0)},
			look(0, "a", 5, 6, DirOK, "total", "g3"),
			ann(2, "a", "total", 7, 8, DirOK, "g3"),
		},
		"a move between two reads": {
			ann(1, "a", "total", 0, 1, DirOK, "g0"),
			look(0, "a", 2, 3, DirOK, "total", "g0"),
			moved(look(0, "a", 4, 5, DirOK, "total", "g2"), 1),
			moved(ann(2, "a", "total", 6, 7, DirOK, "g2"), 1),
		},
		"an announce that timed out did not": {
			{Client: 1, Kind: DirAnnounce, Topic: "a", QoS: "total", Call: ms(0)},
			look(0, "a", 5, 6, DirUnknown, "", ""),
			ann(2, "a", "vsync", 7, 8, DirOK, "g2"),
		},
	} {
		if err := Linearizable(ops, time.Minute); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestLinearizableRejectsLostAndSplitAnnounces(t *testing.T) {
	for name, ops := range map[string][]DirOp{
		"an acknowledged announce lost": {
			ann(1, "a", "total", 0, 1, DirOK, "g0"),
			look(0, "a", 2, 3, DirUnknown, "", ""),
		},
		"one topic in two groups": {
			ann(1, "a", "total", 0, 1, DirOK, "g0"),
			ann(2, "a", "total", 2, 3, DirOK, "g1"),
		},
		"two QoS for one topic": {
			ann(1, "a", "total", 0, 1, DirOK, "g0"),
			ann(2, "a", "vsync", 2, 3, DirOK, "g0"),
		},
		"a move undone": {
			ann(1, "a", "total", 0, 1, DirOK, "g0"),
			moved(look(0, "a", 2, 3, DirOK, "total", "g2"), 1),
			look(2, "a", 4, 5, DirOK, "total", "g0"),
		},
		"another group without a move": {
			moved(ann(1, "a", "total", 0, 1, DirOK, "g0"), 1),
			moved(look(0, "a", 2, 3, DirOK, "total", "g2"), 1),
		},
		"a stale read": {
			ann(1, "a", "total", 0, 1, DirOK, "g0"),
			look(0, "a", 5, 6, DirOK, "total", "g0"),
			look(2, "a", 7, 8, DirUnknown, "", ""),
		},
	} {
		err := Linearizable(ops, time.Minute)
		if err == nil || !strings.Contains(err.Error(), `topic "a"`) {
			t.Errorf("%s: %v, want a history that is not linearizable on topic a", name, err)
		}
	}
}
