package check

import (
	"fmt"

	"github.com/conclave/conclave/eventlog"
)

// PubSubOptions describe a publish/subscribe run.
type PubSubOptions struct {
	// Total names the topics of a total order QoS.
	Total map[string]bool
}

// PubSub checks the logs of publish/subscribe clients (ps_subscribe,
// ps_unsubscribe, ps_deliver):
//
//   - TopicIsolation: a client hands the application only events of a
//     topic it subscribes to at that moment.
//   - NoDuplicate: a client hands over each event (its group, view,
//     sender and number) at most once.
//   - TopicOrder: the subscribers of a topic in o.Total hand over the
//     events they have in common in the same order.
func PubSub(h []eventlog.Event, o PubSubOptions) []Violation {
	type life struct {
		node string
		inc  uint64
	}
	type msg struct{ group, view, from, seq string }
	var out []Violation
	subscribed := map[life]map[string]bool{}
	seen := map[life]map[msg]bool{}
	order := map[string]map[life][]msg{} // total topic → client → its deliveries in order
	for _, e := range h {
		l := life{e.Node, e.Inc}
		topic := e.Str(eventlog.FieldTopic)
		switch e.Ev {
		case eventlog.PSSubscribe:
			if subscribed[l] == nil {
				subscribed[l] = map[string]bool{}
			}
			subscribed[l][topic] = true
		case eventlog.PSUnsub:
			delete(subscribed[l], topic)
		case eventlog.PSDeliver:
			if !subscribed[l][topic] {
				out = append(out, Violation{Rule: "TopicIsolation", Event: e,
					Msg: fmt.Sprintf("%s handed over an event of %q, which it does not subscribe to", e.Node, topic)})
			}
			m := msg{e.Str(eventlog.FieldGroup), e.Str(eventlog.FieldView), e.Str(eventlog.FieldFrom), fmt.Sprint(e.Fields[eventlog.FieldSeq])}
			if seen[l] == nil {
				seen[l] = map[msg]bool{}
			}
			if seen[l][m] {
				out = append(out, Violation{Rule: "NoDuplicate", Event: e,
					Msg: fmt.Sprintf("%s handed over event %s#%s of view %s in %s twice", e.Node, m.from, m.seq, m.view, m.group)})
				continue
			}
			seen[l][m] = true
			if o.Total[topic] {
				if order[topic] == nil {
					order[topic] = map[life][]msg{}
				}
				order[topic][l] = append(order[topic][l], m)
			}
		}
	}
	for topic, byClient := range order {
		var first life
		var ref []msg
		for l, ms := range byClient {
			if ref == nil || l.node < first.node || (l.node == first.node && l.inc < first.inc) {
				first, ref = l, ms
			}
		}
		pos := map[msg]int{}
		for i, m := range ref {
			pos[m] = i
		}
		for l, ms := range byClient {
			last := -1
			for _, m := range ms {
				p, ok := pos[m]
				if !ok {
					continue
				}
				if p < last {
					out = append(out, Violation{Rule: "TopicOrder", Event: eventlog.Event{Node: l.node, Inc: l.inc, Ev: eventlog.PSDeliver},
						Msg: fmt.Sprintf("%s handed over the events of %q in another order than %s did (at %s#%s)", l.node, topic, first.node, m.from, m.seq)})
					break
				}
				last = p
			}
		}
	}
	return out
}
