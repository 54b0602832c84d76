package report

import (
	"fmt"
	"sort"
	"strconv"
)

const (
	maxOrderViews = 4  // views shown in the total order tables at most
	orderItems    = 14 // deliveries shown per process and view
)

// orderTable shows the first deliveries of one view at each process that
// delivered in it, so that their order can be compared.
type orderTable struct {
	Group, View string
	Total       bool // the deliveries carry total order numbers
	Same        bool // the processes delivered their common messages in one order
	Common      int  // how many messages every one of them delivered
	Rows        []orderRow
}

type orderRow struct {
	Proc  string
	Count int
	Items []orderItem
	More  int
}

type orderItem struct{ Text, Color, Title string }

// orderTables lays out the deliveries of the views in which the most
// processes delivered (group members, pub/sub clients of total order
// groups), the first orderItems of each process, and whether they agree on
// the order of the messages they all delivered.
func (r *run) orderTables() []orderTable {
	type key struct{ group, view string }
	type seqs struct {
		procs map[string][]delivery
		order []string
		total bool
	}
	by := map[key]*seqs{}
	var keys []key
	for _, p := range r.procs {
		for _, d := range p.dels {
			k := key{d.Group, d.View}
			s := by[k]
			if s == nil {
				s = &seqs{procs: map[string][]delivery{}}
				by[k] = s
				keys = append(keys, k)
			}
			if _, ok := s.procs[p.Node]; !ok {
				s.order = append(s.order, p.Node)
			}
			s.procs[p.Node] = append(s.procs[p.Node], d)
			s.total = s.total || d.Order > 0
		}
	}
	// The views most processes delivered in, then the busiest; total first.
	sort.SliceStable(keys, func(i, j int) bool {
		a, b := by[keys[i]], by[keys[j]]
		if a.total != b.total {
			return a.total
		}
		return len(a.procs) > len(b.procs)
	})
	var out []orderTable
	for _, k := range keys {
		s := by[k]
		if len(s.procs) < 2 || len(out) == maxOrderViews {
			continue
		}
		t := orderTable{Group: k.group, View: k.view, Total: s.total}
		id := func(d delivery) string {
			if d.Msg != "" {
				return d.Msg
			}
			return d.From + "#" + strconv.Itoa(d.Seq)
		}
		// Two processes agree when the messages both delivered come in
		// the same order at each.
		pos := map[string]map[string]int{}
		for _, n := range s.order {
			pos[n] = map[string]int{}
			for i, d := range s.procs[n] {
				pos[n][id(d)] = i
			}
		}
		t.Same = true
		shared := map[string]bool{}
		for a, na := range s.order {
			for _, nb := range s.order[a+1:] {
				last := -1
				for _, d := range s.procs[na] {
					j, ok := pos[nb][id(d)]
					if !ok {
						continue
					}
					shared[id(d)] = true
					if j < last {
						t.Same = false
					}
					last = j
				}
			}
		}
		t.Common = len(shared)
		for _, n := range s.order {
			row := orderRow{Proc: n, Count: len(s.procs[n])}
			for i, d := range s.procs[n] {
				if i == orderItems {
					row.More = len(s.procs[n]) - i
					break
				}
				title := fmt.Sprintf("%s from %s at %s s", id(d), d.From, fmtS(d.T))
				if d.Topic != "" {
					title = d.Topic + ": " + title
				}
				if d.Order > 0 {
					title += fmt.Sprintf(", order %d", d.Order)
				}
				text := id(d)
				if d.Topic != "" {
					text = d.Topic + " " + strconv.Itoa(d.Seq)
				}
				row.Items = append(row.Items, orderItem{Text: clip(text, 16), Color: r.senders[d.From], Title: title})
			}
			t.Rows = append(t.Rows, row)
		}
		out = append(out, t)
	}
	return out
}

// topicTable counts, per pub/sub client, the events of each topic it
// published and handed over, and those it filtered: as it logged them
// (ps_stats), or, in logs written before clients logged their counts,
// estimated from the log.
type topicTable struct {
	Topics    []string
	Rows      []topicRow
	Estimated bool // some rows are estimates
	Last      bool // some rows are the last counts of a client that ended without its final ones
}

type topicRow struct {
	Client      string
	Published   []int
	Delivered   []int
	FilteredBy  []int  // per topic, as the client logged them; nil if it logged none
	Filtered    int    // in all
	Source      string // countsFinal, countsLast or countsEstimated
	SourceTitle string
	Views       int
	Moves       int
	RowSpan     int
}

func (r *run) topicTable() *topicTable {
	topics := map[string]bool{}
	pubIn := map[[2]string]int{} // (group, view) → events published ok
	for _, p := range r.procs {
		for _, d := range p.pubs {
			topics[d.Topic] = true
			pubIn[[2]string{d.Group, d.View}]++
		}
		for _, d := range p.dels {
			topics[d.Topic] = true
		}
		for _, c := range p.counts {
			for tp := range c.Filtered {
				topics[tp] = true
			}
		}
	}
	delete(topics, "")
	if len(topics) == 0 {
		return nil
	}
	t := &topicTable{}
	for tp := range topics {
		t.Topics = append(t.Topics, tp)
	}
	sort.Strings(t.Topics)
	col := map[string]int{}
	for k, tp := range t.Topics {
		col[tp] = k
	}
	for _, p := range r.procs {
		if p.Kind != kindClient {
			continue
		}
		row := topicRow{Client: p.Node, Published: make([]int, len(t.Topics)), Delivered: make([]int, len(t.Topics))}
		for _, d := range p.pubs {
			row.Published[col[d.Topic]]++
		}
		got := map[[2]string]int{}
		for _, d := range p.dels {
			if k, ok := col[d.Topic]; ok {
				row.Delivered[k]++
			}
			got[[2]string{d.Group, d.View}]++
		}
		seen := map[[2]string]bool{}
		estimate := 0 // events published in a view its member was in, not handed over
		for _, v := range p.views {
			k := [2]string{v.Group, v.View}
			if seen[k] {
				continue
			}
			seen[k] = true
			row.Views++
			if n := pubIn[k] - got[k]; n > 0 {
				estimate += n
			}
		}
		row.RowSpan = 2
		by, source, ok := p.loggedFiltered()
		row.Source = source
		switch {
		case !ok:
			row.Filtered = estimate
			row.SourceTitle = "estimated from the log: this client logged no counts"
			t.Estimated = true
		default:
			row.FilteredBy = make([]int, len(t.Topics))
			for tp, n := range by {
				row.FilteredBy[col[tp]] = n
				row.Filtered += n
			}
			row.RowSpan = 3
			row.SourceTitle = "as the client counted them (ps_stats, final)"
			if source == countsLast {
				t.Last = true
				row.SourceTitle = "the last counts the client logged, at " + fmtS(p.counts[len(p.counts)-1].T) + " s: it ended without logging its final ones"
			}
		}
		for _, m := range p.psmarks {
			if m.Kind == "move" {
				row.Moves++
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}
