package directory

import (
	"fmt"
	"maps"
	"slices"
)

// Bounds of the measured counts the state keeps: at most MaxReporters
// clients' reports, each of at most MaxReportTopics topics.
const (
	// MaxReportTopics bounds the topics of one Report; the decoder
	// refuses more.
	MaxReportTopics = 256
	// MaxReporters bounds the clients whose report the state keeps.
	// Beyond it, the report applied first is dropped.
	MaxReporters = 1024
)

// TopicCount is what a client counted of one topic's events: those it
// handed to a subscription, and those it dropped because it does not
// subscribe to the topic.
type TopicCount struct {
	Topic     string
	Delivered uint64
	Filtered  uint64
}

// Report carries a client's cumulative counts of the events that reached
// it, per topic, and the milliseconds its counting covers (measured by the
// client, so that the replicated state needs no clock). It replaces the
// client's previous report. Topics must be distinct and sorted; the state
// keeps only those of groups in which the client publishes or subscribes
// to a topic, and drops them when it no longer does.
type Report struct {
	Millis uint64
	Topics []TopicCount
}

func (Report) opcode() byte { return opReport }

// counts are a client's counts of one topic.
type counts struct{ delivered, filtered uint64 }

// report is the last report of a client.
type report struct {
	index  uint64 // where it was applied, for dropping the oldest
	millis uint64
	topics map[string]counts // never empty
}

func (s *State) report(client string, index uint64, r Report) Result {
	for i, tc := range r.Topics {
		if tc.Topic == "" || i > 0 && tc.Topic <= r.Topics[i-1].Topic {
			return fail(CodeBadCommand, "a report whose topics are not sorted, repeated or empty")
		}
	}
	kept := map[string]counts{}
	for _, tc := range r.Topics {
		if t, ok := s.topics[tc.Topic]; ok && s.inGroup(client, t.group) {
			kept[tc.Topic] = counts{tc.Delivered, tc.Filtered}
		}
	}
	if len(kept) == 0 {
		delete(s.reports, client)
		return Result{}
	}
	if _, ok := s.reports[client]; !ok && len(s.reports) >= MaxReporters {
		s.dropOldestReport()
	}
	s.reports[client] = &report{index: index, millis: r.Millis, topics: kept}
	// The rates changed: consider moving the topic this client filtered
	// most of (the first by name among equals), or another of its group.
	worst, most := "", uint64(0)
	for _, name := range slices.Sorted(maps.Keys(kept)) {
		if n := kept[name].filtered; n > most {
			worst, most = name, n
		}
	}
	if worst != "" {
		s.consider(worst)
	}
	return Result{}
}

// inGroup reports whether client publishes or subscribes to a topic of
// group gi.
func (s *State) inGroup(client string, gi int) bool {
	g := s.groups[gi]
	return g.pubs[client] > 0 || g.subs[client] > 0
}

// leftGroup drops from client's report the topics of group gi, which it
// no longer publishes or subscribes to.
func (s *State) leftGroup(client string, gi int) {
	r, ok := s.reports[client]
	if !ok {
		return
	}
	for name := range r.topics {
		if s.topics[name].group == gi {
			delete(r.topics, name)
		}
	}
	if len(r.topics) == 0 {
		delete(s.reports, client)
	}
}

// dropOldestReport drops the report applied first (the lowest client id
// among equals).
func (s *State) dropOldestReport() {
	var oldest string
	var at *report
	for c, r := range s.reports {
		if at == nil || r.index < at.index || r.index == at.index && c < oldest {
			oldest, at = c, r
		}
	}
	delete(s.reports, oldest)
}

// appendReports encodes the reports, by client: client index millis, and
// the topics by name: topic delivered filtered.
func (s *State) appendReports(e *enc) {
	e.uint(uint64(len(s.reports)))
	for _, c := range slices.Sorted(maps.Keys(s.reports)) {
		r := s.reports[c]
		e.str(c)
		e.uint(r.index)
		e.uint(r.millis)
		e.uint(uint64(len(r.topics)))
		for _, name := range slices.Sorted(maps.Keys(r.topics)) {
			n := r.topics[name]
			e.str(name)
			e.uint(n.delivered)
			e.uint(n.filtered)
		}
	}
}

// readReports decodes what appendReports wrote into n.
func (n *State) readReports(d *dec) error {
	count := d.count("reports", 6, MaxReporters)
	prev := ""
	for i := 0; i < count && d.err == nil; i++ {
		c := d.str("reporting client", MaxName)
		r := &report{index: d.uint("report index"), millis: d.uint("report milliseconds"), topics: map[string]counts{}}
		pt := ""
		for j, k := 0, d.count("report topics", 3, MaxReportTopics); j < k && d.err == nil; j++ {
			name := d.str("report topic", MaxName)
			dl, fl := d.uint("delivered"), d.uint("filtered")
			if d.err == nil && (name == "" || j > 0 && name <= pt) {
				return fmt.Errorf("report of %q: topic %q listed after %q", c, name, pt)
			}
			pt = name
			r.topics[name] = counts{dl, fl}
		}
		switch {
		case d.err != nil:
		case c == "" || i > 0 && c <= prev:
			return fmt.Errorf("report of %q listed after %q", c, prev)
		default:
			prev = c
			n.reports[c] = r
		}
	}
	return nil
}

// checkReports returns what is wrong with the reports, if anything.
func (s *State) checkReports() []error {
	var errs []error
	if len(s.reports) > MaxReporters {
		errs = append(errs, fmt.Errorf("%d reports, over MaxReporters %d", len(s.reports), MaxReporters))
	}
	for _, c := range slices.Sorted(maps.Keys(s.reports)) {
		r := s.reports[c]
		switch {
		case c == "":
			errs = append(errs, fmt.Errorf("a report of an empty client id"))
		case r.index == 0 || r.index > s.applied:
			errs = append(errs, fmt.Errorf("report of %q applied at %d, applied index %d", c, r.index, s.applied))
		case len(r.topics) == 0 || len(r.topics) > MaxReportTopics:
			errs = append(errs, fmt.Errorf("report of %q has %d topics", c, len(r.topics)))
		}
		for _, name := range slices.Sorted(maps.Keys(r.topics)) {
			if t, ok := s.topics[name]; !ok || !s.inGroup(c, t.group) {
				errs = append(errs, fmt.Errorf("report of %q counts topic %q, not of a group it is in", c, name))
			}
		}
	}
	return errs
}

// measured sums the reports per topic.
type measured struct {
	delivered, filtered uint64
	millis              uint64 // summed over the reports that count the topic
}

// measure returns the sums of the reports, by topic.
func (s *State) measure() map[string]*measured {
	out := map[string]*measured{}
	for _, r := range s.reports {
		for name, n := range r.topics {
			m := out[name]
			if m == nil {
				m = &measured{}
				out[name] = m
			}
			m.delivered += n.delivered
			m.filtered += n.filtered
			m.millis += r.millis
		}
	}
	return out
}

// rate returns events per second: the events that reached the reporting
// clients over the time they counted, a member's view of the topic's rate.
func (m *measured) rate() float64 {
	if m == nil || m.millis == 0 {
		return 0
	}
	return float64(m.delivered+m.filtered) * 1000 / float64(m.millis)
}

// wasteRatio returns filtered / (delivered + filtered), 0 when nothing was
// counted.
func wasteRatio(delivered, filtered uint64) float64 {
	if delivered+filtered == 0 {
		return 0
	}
	return float64(filtered) / float64(delivered+filtered)
}
