package check

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

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
	ls := lives(h)
	var out []Violation
	out = append(out, ViewAgreement(h)...)
	out = append(out, ViewOrder(h)...)
	out = append(out, viewSynchrony(ls)...)
	out = append(out, senderFIFO(ls)...)
	if o.Total {
		out = append(out, totalOrder(h, ls)...)
	}
	out = append(out, ackedDelivered(h, ls, o.Quiet)...)
	return out
}

// ViewAgreement checks that members installing the same view id install
// the same members.
func ViewAgreement(h []eventlog.Event) []Violation {
	var out []Violation
	seen := map[string]eventlog.Event{}
	for _, e := range h {
		if e.Ev != eventlog.View {
			continue
		}
		id := e.Str(eventlog.FieldView)
		if first, ok := seen[id]; ok {
			if a, b := strs(first, eventlog.FieldMembers), strs(e, eventlog.FieldMembers); !slices.Equal(a, b) {
				out = append(out, Violation{"view-agreement", e, fmt.Sprintf("view %s has members %v here and %v at %s", id, b, a, first.Str(eventlog.FieldMember))})
			}
			continue
		}
		seen[id] = e
	}
	return out
}

// ViewOrder checks that the views a member installs are numbered in
// increasing order along its life, whichever group they come from (the
// number is the part of a view id before the @).
func ViewOrder(h []eventlog.Event) []Violation {
	var out []Violation
	last := map[string]eventlog.Event{}
	for _, e := range h {
		if e.Ev != eventlog.View {
			continue
		}
		m := e.Str(eventlog.FieldMember)
		if prev, ok := last[m]; ok && viewSeq(e.Str(eventlog.FieldView)) <= viewSeq(prev.Str(eventlog.FieldView)) {
			out = append(out, Violation{"view-order", e, fmt.Sprintf("member %s installed view %s after %s", m, e.Str(eventlog.FieldView), prev.Str(eventlog.FieldView))})
		}
		last[m] = e
	}
	return out
}

// viewSeq returns the sequence number of a view id "seq@coordinator".
func viewSeq(id string) uint64 {
	n, _ := strconv.ParseUint(id[:max(strings.IndexByte(id, '@'), 0)], 10, 64)
	return n
}

// life is what one member did in one view.
type life struct {
	view      string
	next      string // the view it installed next, through a flush
	delivered []delivery
}

// delivery is a deliver event with the fields the checkers read.
type delivery struct {
	ev         eventlog.Event
	msg, view  string
	from       string
	seq, order int
}

// memberLives is every member's history split into views, members in
// order.
type memberLives struct {
	members []string
	of      map[string][]*life
}

// lives splits each member's history into views.
func lives(h []eventlog.Event) memberLives {
	out := memberLives{of: map[string][]*life{}}
	for _, e := range h {
		if e.Ev != eventlog.View && e.Ev != eventlog.Deliver {
			continue
		}
		m := e.Str(eventlog.FieldMember)
		if m == "" {
			continue
		}
		ls, ok := out.of[m]
		if !ok {
			out.members = append(out.members, m)
		}
		switch e.Ev {
		case eventlog.View:
			if len(ls) > 0 && flagField(e, eventlog.FieldFlushed) {
				ls[len(ls)-1].next = e.Str(eventlog.FieldView)
			}
			out.of[m] = append(ls, &life{view: e.Str(eventlog.FieldView)})
		case eventlog.Deliver:
			if len(ls) > 0 {
				l := ls[len(ls)-1]
				l.delivered = append(l.delivered, delivery{ev: e, msg: e.Str(eventlog.FieldMsg), view: e.Str(eventlog.FieldView),
					from: e.Str(eventlog.FieldFrom), seq: intField(e, eventlog.FieldSeq), order: intField(e, eventlog.FieldOrder)})
			} else {
				out.of[m] = ls
			}
		}
	}
	slices.Sort(out.members)
	return out
}

// ViewSynchrony checks that members that pass together from a view to the
// next delivered the same messages in it, and that every message is
// delivered in one view only, the one its sender delivered it in.
func ViewSynchrony(h []eventlog.Event) []Violation { return viewSynchrony(lives(h)) }

func viewSynchrony(all memberLives) []Violation {
	var out []Violation
	type pass struct{ from, to string }
	sets := map[pass]map[string]bool{}
	firsts := map[pass]string{}
	viewOf := map[string]string{}
	for _, m := range all.members {
		for _, l := range all.of[m] {
			set := make(map[string]bool, len(l.delivered))
			for _, d := range l.delivered {
				set[d.msg] = true
				if d.view != l.view {
					out = append(out, Violation{"view-synchrony", d.ev, fmt.Sprintf("delivered in view %s while in view %s", d.view, l.view)})
				}
				if v, ok := viewOf[d.msg]; ok && v != d.view {
					out = append(out, Violation{"view-synchrony", d.ev, fmt.Sprintf("message %s delivered in views %s and %s", d.msg, v, d.view)})
				}
				viewOf[d.msg] = d.view
			}
			if l.next == "" {
				continue
			}
			p := pass{l.view, l.next}
			if other, ok := sets[p]; ok {
				if diff := symDiff(other, set); len(diff) > 0 {
					ev := eventlog.Event{Node: m, Ev: eventlog.View, Fields: map[string]any{eventlog.FieldMember: m, eventlog.FieldView: l.next}}
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
func SenderFIFO(h []eventlog.Event) []Violation { return senderFIFO(lives(h)) }

func senderFIFO(all memberLives) []Violation {
	var out []Violation
	for _, m := range all.members {
		for _, l := range all.of[m] {
			next := map[string]int{}
			for _, d := range l.delivered {
				want := next[d.from] + 1
				if d.seq != want {
					out = append(out, Violation{"sender-fifo", d.ev, fmt.Sprintf("message %d of %s delivered, expected %d", d.seq, d.from, want)})
				}
				next[d.from] = d.seq
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
func TotalOrder(h []eventlog.Event) []Violation { return totalOrder(h, lives(h)) }

func totalOrder(h []eventlog.Event, all memberLives) []Violation {
	var out []Violation
	type pass struct{ from, to string }
	longest := map[pass][]string{}
	who := map[pass]string{}
	dead := killed(h)
	for _, m := range all.members {
		ls := all.of[m]
		for i, l := range ls {
			if l.next == "" && (i < len(ls)-1 || dead[m]) {
				continue // not a survivor of the view
			}
			p := pass{l.view, l.next}
			seq := make([]string, 0, len(l.delivered))
			for i, d := range l.delivered {
				if d.order != i+1 {
					out = append(out, Violation{"total-order", d.ev, fmt.Sprintf("delivery %d numbered %d", i+1, d.order)})
				}
				seq = append(seq, d.msg)
			}
			ref := longest[p]
			n := min(len(ref), len(seq))
			if !slices.Equal(ref[:n], seq[:n]) {
				i := 0
				for i < n && ref[i] == seq[i] {
					i++
				}
				out = append(out, Violation{"total-order", l.delivered[i].ev, fmt.Sprintf("in view %s, %s delivered %s where %s delivered %s", l.view, m, seq[i], who[p], ref[i])})
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
	return ackedDelivered(h, lives(h), quiet)
}

func ackedDelivered(h []eventlog.Event, all memberLives, quiet bool) []Violation {
	var out []Violation
	acked := map[string]eventlog.Event{}
	final := ""
	for _, e := range h {
		switch e.Ev {
		case eventlog.Acked:
			if !flagField(e, eventlog.FieldLost) {
				acked[e.Str(eventlog.FieldMsg)] = e
			}
		case eventlog.View:
			final = e.Str(eventlog.FieldView)
		}
	}
	// Where each acknowledged message was sent and where its sender went,
	// and the acknowledged messages sent in each view.
	type origin struct {
		msg, next string
	}
	sentIn := map[string][]origin{}
	for _, m := range all.members {
		for _, l := range all.of[m] {
			for _, d := range l.delivered {
				if d.from == m {
					if _, ok := acked[d.msg]; ok {
						sentIn[l.view] = append(sentIn[l.view], origin{d.msg, l.next})
					}
				}
			}
		}
	}
	for _, m := range all.members {
		for _, l := range all.of[m] {
			sent := sentIn[l.view]
			if len(sent) == 0 {
				continue
			}
			got := make(map[string]bool, len(l.delivered))
			for _, d := range l.delivered {
				got[d.msg] = true
			}
			var missing []string
			for _, o := range sent {
				if got[o.msg] {
					continue
				}
				due := (o.next != "" && l.next == o.next) ||
					(o.next == "" && (l.next != "" || quiet && l.view == final))
				if due {
					missing = append(missing, o.msg)
				}
			}
			if len(missing) > 0 {
				slices.Sort(missing)
				first := acked[missing[0]]
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
		if m := e.Str(eventlog.FieldMember); m != "" {
			last[e.Node] = m
		}
		if e.Node == eventlog.Control && e.Ev == eventlog.ProcKill {
			if m := last[eventlog.MemberName(intField(e, eventlog.FieldPeer))]; m != "" {
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
