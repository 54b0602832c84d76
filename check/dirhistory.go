package check

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// DirHistory reads the operations the directory's clients logged
// (dir_call, dir_return; docs/events.md) into a history for Linearizable:
// every announce, and every subscribe and lookup of a topic (as
// DirLookup), timed from the first event of h. Call is when its dir_call
// was logged, Return when its dir_return was: the operation took effect
// in between. An announce that got no answer (dir_return says error, or
// its process ended first) is not Known: it may have taken effect or
// not. Left out are the subscribes and lookups that got no answer, which
// constrain nothing, the commands that change no topic, and the answers
// that change none (bad-qos, bad-command, stale). at gives, for each
// operation, the index in h of its dir_return, or of its dir_call when
// there is none.
//
// The times come from the clocks of the processes that logged them: on
// one host they are comparable; across hosts the check is only as good
// as the agreement of the clocks.
func DirHistory(h []eventlog.Event) (ops []DirOp, at []int) {
	type key struct {
		node, client string
		inc          uint64
		call         int
	}
	type pending struct {
		op   DirOp
		i    int
		done bool
	}
	var t0 time.Time
	for _, e := range h {
		if !e.TS.IsZero() && (t0.IsZero() || e.TS.Before(t0)) {
			t0 = e.TS
		}
	}
	clients := map[[3]string]int{}
	calls := map[key]*pending{}
	var order []key
	for i, e := range h {
		if e.Ev != eventlog.DirCall && e.Ev != eventlog.DirReturn {
			continue
		}
		call, ok := e.Int(eventlog.FieldCall)
		if !ok {
			continue
		}
		k := key{e.Node, e.Str(eventlog.FieldClient), e.Inc, call}
		kind := dirKind(e.Str(eventlog.FieldOp))
		if kind == "" {
			continue
		}
		if e.Ev == eventlog.DirCall {
			if calls[k] != nil {
				continue
			}
			ck := [3]string{e.Node, k.client, fmt.Sprint(e.Inc)}
			id, ok := clients[ck]
			if !ok {
				id = len(clients)
				clients[ck] = id
			}
			calls[k] = &pending{i: i, op: DirOp{Client: id, Kind: kind, Topic: e.Str(eventlog.FieldTopic),
				QoS: e.Str(eventlog.FieldQoS), Call: e.TS.Sub(t0)}}
			order = append(order, k)
			continue
		}
		p := calls[k]
		if p == nil || p.done {
			continue
		}
		p.done, p.i = true, i
		p.op.Return = e.TS.Sub(t0)
		switch r := e.Str(eventlog.FieldResult); r {
		case DirOK, DirConflict, DirUnknown, DirNoGroup:
			p.op.Known, p.op.Code = true, r
			p.op.GotQoS, p.op.Group = e.Str(eventlog.FieldQoS), e.Str(eventlog.FieldGroup)
			if m, ok := e.Int(eventlog.FieldMoves); ok && m > 0 {
				p.op.Moves = uint64(m)
			}
			if kind == DirAnnounce && r == DirOK && p.op.GotQoS != "" {
				// A QoS is one stack, whatever name an announce gave it:
				// the directory answers with the name it keeps.
				p.op.QoS = p.op.GotQoS
			}
		case "error":
		default:
			p.op.Kind = "" // an answer that changed nothing
		}
	}
	for _, k := range order {
		p := calls[k]
		switch {
		case p.op.Kind == "":
		case !p.op.Known && p.op.Kind == DirLookup:
		default:
			ops = append(ops, p.op)
			at = append(at, p.i)
		}
	}
	return ops, at
}

// dirKind is the kind of DirOp of a logged operation, "" for the
// operations the model leaves out.
func dirKind(op string) string {
	switch op {
	case "announce":
		return DirAnnounce
	case "subscribe", "lookup":
		return DirLookup
	}
	return ""
}

// DirLinearizable checks the directory operations the clients logged in h
// (DirHistory) with Linearizable, topic by topic, within timeout for
// each. Each topic whose operations cannot be ordered is a violation,
// at the dir_return of the operation that first makes its history
// impossible: the operations answered up to it, with those begun by then
// as pending, cannot be ordered; with one fewer they can. A topic whose
// check ran out of time is a violation too.
func DirLinearizable(h []eventlog.Event, timeout time.Duration) []Violation {
	ops, at := DirHistory(h)
	byTopic := map[string][]int{}
	for k, op := range ops {
		byTopic[op.Topic] = append(byTopic[op.Topic], k)
	}
	var out []Violation
	for _, t := range slices.Sorted(maps.Keys(byTopic)) {
		idx := byTopic[t]
		sub := make([]DirOp, len(idx))
		for j, k := range idx {
			sub[j] = ops[k]
		}
		err := Linearizable(sub, timeout)
		if err == nil {
			continue
		}
		if strings.Contains(err.Error(), "ran out of time") {
			out = append(out, Violation{Rule: "linearizable", Event: h[at[idx[len(idx)-1]]],
				Msg: fmt.Sprintf("topic %q: %v", t, err)})
			continue
		}
		first := firstImpossible(sub, timeout)
		what := make([]string, 0, len(sub))
		for _, op := range sub {
			if op.Return <= sub[first].Return {
				what = append(what, describeDirOp(op))
			}
		}
		out = append(out, Violation{Rule: "linearizable", Event: h[at[idx[first]]],
			Msg: fmt.Sprintf("topic %q: no order of its operations agrees with the directory's specification, once %s: %s",
				t, describeDirOp(sub[first]), strings.Join(what, "; "))})
	}
	return out
}

// firstImpossible returns the operation of ops (a history of one topic
// that is not linearizable) whose answer first makes it so: the
// operations answered up to it, with those begun before its answer as
// pending, cannot be ordered.
func firstImpossible(ops []DirOp, timeout time.Duration) int {
	byReturn := make([]int, 0, len(ops))
	for k, op := range ops {
		if op.Known {
			byReturn = append(byReturn, k)
		}
	}
	slices.SortStableFunc(byReturn, func(a, b int) int { return cmp.Compare(ops[a].Return, ops[b].Return) })
	if len(byReturn) == 0 {
		return 0
	}
	for _, k := range byReturn {
		by := ops[k].Return
		var prefix []DirOp
		for _, op := range ops {
			switch {
			case op.Call > by:
			case op.Known && op.Return <= by:
				prefix = append(prefix, op)
			case op.Kind == DirAnnounce:
				op.Known, op.Return = false, math.MaxInt64
				prefix = append(prefix, op)
			}
		}
		if Linearizable(prefix, timeout) != nil {
			return k
		}
	}
	return byReturn[len(byReturn)-1]
}
