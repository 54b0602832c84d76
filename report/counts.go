package report

import "github.com/conclave/conclave/eventlog"

// countsOf is what one incarnation of a pub/sub client logged of its
// counts (ps_stats): the last of each topic, since it connected.
type countsOf struct {
	Inc      uint64
	Filtered map[string]int
	Final    bool    // it logged its final counts (at Close)
	T        float64 // when it logged the last
}

// logCounts takes in a ps_stats event of p, logged at t.
func (p *proc) logCounts(e eventlog.Event, t float64) {
	n := len(p.counts)
	if n == 0 || p.counts[n-1].Inc != e.Inc {
		p.counts = append(p.counts, countsOf{Inc: e.Inc, Filtered: map[string]int{}})
		n++
	}
	c := &p.counts[n-1]
	f, _ := e.Int(eventlog.FieldFiltered)
	c.Filtered[e.Str(eventlog.FieldTopic)] = f
	c.T = t
	if final, _ := e.Fields[eventlog.FieldFinal].(bool); final {
		c.Final = true
	}
}

// Where the filtered counts of a client in the table of topics come from.
const (
	countsFinal     = "final"     // the final counts the client logged at its end
	countsLast      = "last"      // the last it logged before it ended without its final counts (killed)
	countsEstimated = "estimated" // estimated from the log: the client logged no counts
)

// loggedFiltered sums, per topic, what p's incarnations logged of the
// events they filtered, and says where the sums come from: final counts,
// or the last logged by an incarnation that ended without its final
// counts; ok is false if p logged none.
func (p *proc) loggedFiltered() (by map[string]int, source string, ok bool) {
	if len(p.counts) == 0 {
		return nil, countsEstimated, false
	}
	by, source = map[string]int{}, countsFinal
	for _, c := range p.counts {
		for t, n := range c.Filtered {
			by[t] += n
		}
		if !c.Final {
			source = countsLast
		}
	}
	return by, source, true
}
