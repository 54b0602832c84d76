package check

import (
	"fmt"
	"slices"

	"github.com/conclave/conclave/eventlog"
)

// GroupOptions tune the group checkers.
type GroupOptions struct {
	// Total checks total order as well.
	Total bool
	// Quiet means the history ends quiescent (every fault healed, traffic
	// stopped, views agreed): acknowledged messages must then have reached
	// every member of their view that is still in it.
	Quiet bool
}

// Group runs every group checker over a history of view, send, acked and
// deliver events (fields as docs/events.md gives them).
func Group(h []eventlog.Event, o GroupOptions) []Violation {
	var out []Violation
	out = append(out, ViewAgreement(h)...)
	out = append(out, ViewSynchrony(h)...)
	out = append(out, SenderFIFO(h)...)
	if o.Total {
		out = append(out, TotalOrder(h)...)
	}
	out = append(out, AckedDelivered(h, o.Quiet)...)
	return out
}

// ViewAgreement checks that members installing the same view id install
// the same members.
func ViewAgreement(h []eventlog.Event) []Violation {
	var out []Violation
	seen := map[string]eventlog.Event{}
	for _, e := range h {
		if e.Ev != "view" {
			continue
		}
		id := e.Str("view")
		if first, ok := seen[id]; ok {
			if a, b := strs(first, "members"), strs(e, "members"); !slices.Equal(a, b) {
				out = append(out, Violation{"view-agreement", e, fmt.Sprintf("view %s has members %v here and %v at %s", id, b, a, first.Str("member"))})
			}
			continue
		}
		seen[id] = e
	}
	return out
}

// life is what one member did in one view.
type life struct {
	view      string
	next      string // the view it installed next, through a flush
	delivered []eventlog.Event
}

// lives splits each member's history into views.
func lives(h []eventlog.Event) map[string][]*life {
	out := map[string][]*life{}
	for _, e := range h {
		m := e.Str("member")
		if m == "" {
			continue
		}
		ls := out[m]
		switch e.Ev {
		case "view":
			if len(ls) > 0 && flagField(e, "flushed") {
				ls[len(ls)-1].next = e.Str("view")
			}
			out[m] = append(ls, &life{view: e.Str("view")})
		case "deliver":
			if len(ls) > 0 {
				l := ls[len(ls)-1]
				l.delivered = append(l.delivered, e)
			}
		}
	}
	return out
}

// ViewSynchrony checks that members that pass together from a view to the
// next delivered the same messages in it, and that every message is
// delivered in one view only, the one its sender delivered it in.
func ViewSynchrony(h []eventlog.Event) []Violation {
	var out []Violation
	type pass struct{ from, to string }
	sets := map[pass]map[string]bool{}
	firsts := map[pass]string{}
	viewOf := map[string]string{}
	for m, ls := range lives(h) {
		for _, l := range ls {
			set := map[string]bool{}
			for _, d := range l.delivered {
				msg := d.Str("msg")
				set[msg] = true
				if d.Str("view") != l.view {
					out = append(out, Violation{"view-synchrony", d, fmt.Sprintf("delivered in view %s while in view %s", d.Str("view"), l.view)})
				}
				if v, ok := viewOf[msg]; ok && v != d.Str("view") {
					out = append(out, Violation{"view-synchrony", d, fmt.Sprintf("message %s delivered in views %s and %s", msg, v, d.Str("view"))})
				}
				viewOf[msg] = d.Str("view")
			}
			if l.next == "" {
				continue
			}
			p := pass{l.view, l.next}
			if other, ok := sets[p]; ok {
				if diff := symDiff(other, set); len(diff) > 0 {
					ev := eventlog.Event{Node: m, Ev: "view", Fields: map[string]any{"member": m, "view": l.next}}
					out = append(out, Violation{"view-synchrony", ev, fmt.Sprintf("%s and %s passed from view %s to %s having delivered different messages: %v", firsts[p], m, l.view, l.next, diff)})
				}
				continue
			}
			sets[p], firsts[p] = set, m
		}
	}
	return out
}

func symDiff(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	for k := range b {
		if !a[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	if len(out) > 5 {
		out = append(out[:5], "...")
	}
	return out
}

// SenderFIFO checks that each member delivers each sender's messages of a
// view in the order sent, without gaps or duplicates: numbers 1, 2, 3...
func SenderFIFO(h []eventlog.Event) []Violation {
	var out []Violation
	for _, ls := range lives(h) {
		for _, l := range ls {
			next := map[string]int{}
			for _, d := range l.delivered {
				from := d.Str("from")
				want := next[from] + 1
				if got := intField(d, "seq"); got != want {
					out = append(out, Violation{"sender-fifo", d, fmt.Sprintf("message %d of %s delivered, expected %d", got, from, want)})
				}
				next[from] = intField(d, "seq")
			}
		}
	}
	return out
}

// TotalOrder checks that the members that pass together from a view to the
// same next view (or are still in it together at the end) deliver in it
// prefixes of one sequence, numbered 1, 2, 3... without gaps or
// duplicates. The order is not uniform: a member that crashes, or is
// excluded and goes on alone, may have delivered a different last part.
func TotalOrder(h []eventlog.Event) []Violation {
	var out []Violation
	type pass struct{ from, to string }
	longest := map[pass][]string{}
	who := map[pass]string{}
	dead := killed(h)
	for m, ls := range lives(h) {
		for i, l := range ls {
			if l.next == "" && (i < len(ls)-1 || dead[m]) {
				continue // not a survivor of the view
			}
			p := pass{l.view, l.next}
			var seq []string
			for i, d := range l.delivered {
				if intField(d, "order") != i+1 {
					out = append(out, Violation{"total-order", d, fmt.Sprintf("delivery %d numbered %d", i+1, intField(d, "order"))})
				}
				seq = append(seq, d.Str("msg"))
			}
			ref := longest[p]
			n := min(len(ref), len(seq))
			if !slices.Equal(ref[:n], seq[:n]) {
				i := 0
				for i < n && ref[i] == seq[i] {
					i++
				}
				out = append(out, Violation{"total-order", l.delivered[i], fmt.Sprintf("in view %s, %s delivered %s where %s delivered %s", l.view, m, seq[i], who[p], ref[i])})
				continue
			}
			if len(seq) > len(ref) {
				longest[p], who[p] = seq, m
			}
		}
	}
	return out
}

// AckedDelivered checks that a message acknowledged to its sender in view
// v reaches the members that went on from v with the sender: every member
// that passed from v to the view its sender passed to (through a flush)
// delivered it in v. If the sender did not pass to another view (it
// crashed, or the history ends), every member that passed from v to any
// view delivered it, and, if quiet, so did every member of the last view
// installed.
func AckedDelivered(h []eventlog.Event, quiet bool) []Violation {
	var out []Violation
	acked := map[string]eventlog.Event{}
	for _, e := range h {
		if e.Ev == "acked" && !flagField(e, "lost") {
			acked[e.Str("msg")] = e
		}
	}
	final := ""
	for _, e := range h {
		if e.Ev == "view" {
			final = e.Str("view")
		}
	}
	all := lives(h)
	// Where each acknowledged message was sent and where its sender went.
	type origin struct{ view, next string }
	from := map[string]origin{}
	for m, ls := range all {
		for _, l := range ls {
			for _, d := range l.delivered {
				if msg := d.Str("msg"); d.Str("from") == m && acked[msg].Ev != "" {
					from[msg] = origin{l.view, l.next}
				}
			}
		}
	}
	for m, ls := range all {
		for _, l := range ls {
			got := map[string]bool{}
			for _, d := range l.delivered {
				got[d.Str("msg")] = true
			}
			var missing []string
			var first eventlog.Event
			for msg, a := range acked {
				o, ok := from[msg]
				if !ok || o.view != l.view || got[msg] {
					continue
				}
				due := (o.next != "" && l.next == o.next) ||
					(o.next == "" && (l.next != "" || quiet && l.view == final))
				if !due {
					continue
				}
				if missing == nil {
					first = a
				}
				missing = append(missing, msg)
			}
			if len(missing) > 0 {
				slices.Sort(missing)
				if len(missing) > 5 {
					missing = append(missing[:5], "...")
				}
				out = append(out, Violation{"acked-delivered", first, fmt.Sprintf("%s left view %s without delivering acknowledged %v", m, l.view, missing)})
			}
		}
	}
	return out
}

// killed returns the members whose process was killed: a proc_kill of
// slot i ends the member last seen on node "m<i>".
func killed(h []eventlog.Event) map[string]bool {
	last := map[string]string{}
	dead := map[string]bool{}
	for _, e := range h {
		if m := e.Str("member"); m != "" {
			last[e.Node] = m
		}
		if e.Node == "control" && e.Ev == "proc_kill" {
			if m := last[fmt.Sprintf("m%d", intField(e, "peer"))]; m != "" {
				dead[m] = true
			}
		}
	}
	return dead
}

func strs(e eventlog.Event, k string) []string {
	switch v := e.Fields[k].(type) {
	case []string:
		return v
	case []any:
		out := make([]string, len(v))
		for i, x := range v {
			out[i] = fmt.Sprint(x)
		}
		return out
	}
	return nil
}

// flagField returns a boolean field, false if absent.
func flagField(e eventlog.Event, k string) bool {
	b, _ := e.Fields[k].(bool)
	return b
}
