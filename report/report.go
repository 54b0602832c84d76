// Package report renders a conclave run, from its merged event log, as one
// self-contained HTML page: first the verdicts of the property checkers of
// package check that apply to the processes in the log, each violation
// linked to its event; then the settings, a timeline with a lane per peer
// (process state, leader beliefs, urgent notices), per group member (views,
// flushes, suspicions, deliveries), per directory replica (role, term) and
// per pub/sub client (announces, subscriptions, moves, views, deliveries),
// the order of deliveries compared across processes, counts per topic, a
// panel per fault (what was done, who detected it when and how, how each
// converged, a close-up), the leader changes tied to the faults they follow
// from, event counts, and the merged log with filters.
package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/conclave/conclave/eventlog"
)

// HTMLFile is the name of the report WriteDir writes.
const HTMLFile = "report.html"

// MaxLogLines is the most lines of the merged log the report includes.
const MaxLogLines = 20000

//go:embed report.html.tmpl
var pageText string

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"f":     f1,
	"color": leaderColor,
	"fms":   fmtMS,
	"fs":    fmtS,
	"sub":   func(a, b int) int { return a - b },
}).Parse(pageText))

// Render writes the report of a run to w. events are in causal order
// (eventlog.Sort).
func Render(w io.Writer, title string, events []eventlog.Event) error {
	return renderNotes(w, title, events, nil)
}

// renderNotes writes the report with notes first among the page's notes.
func renderNotes(w io.Writer, title string, events []eventlog.Event, notes []string) error {
	p := build(title, events)
	p.Notes = append(notes, p.Notes...)
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, p); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteDir writes dir/report.html of the latest run in dir, as WriteRun
// does, and returns its path.
func WriteDir(dir string) (string, error) {
	path, _, err := WriteRun(dir, 0)
	return path, err
}

// WriteRun merges run n of the logs in dir (eventlog.MergeRun: 1 is the
// earliest, 0 the latest) and writes dir/report.html of it, saying which
// run it shows when dir holds several. A directory holding only a merged
// log, dir/run.jsonl, is reported from it (and the Merged returned is
// nil). It returns the path written.
func WriteRun(dir string, n int) (string, *eventlog.Merged, error) {
	var events []eventlog.Event
	var notes []string
	m, err := eventlog.MergeRun(dir, n)
	switch {
	case err == nil:
		events = m.Events
		if len(m.Runs) > 1 {
			notes = append(notes, fmt.Sprintf("This directory holds %d runs; this report shows run %d (%v). The others: %s. "+
				"conclave report --run N shows run N.", len(m.Runs), m.N, m.Run, m.Others()))
		}
		if m.Lost > 0 {
			notes = append(notes, fmt.Sprintf("%s of the log lost: their processes could not write them (log_lost events).",
				plural(m.Lost, "line was", "lines were")))
		}
	case n <= 1:
		// Only a merged log, dir/run.jsonl, perhaps.
		ev, _, rerr := eventlog.ReadFile(filepath.Join(dir, eventlog.RunJSONL))
		if rerr != nil || len(ev) == 0 {
			return "", nil, err
		}
		eventlog.Sort(ev)
		events = ev
	default:
		return "", nil, err
	}
	title := "conclave run " + filepath.Base(filepath.Clean(dir))
	if abs, err := filepath.Abs(dir); err == nil {
		title = "conclave run " + filepath.Base(abs)
	}
	var b bytes.Buffer
	if err := renderNotes(&b, title, events, notes); err != nil {
		return "", nil, err
	}
	out := filepath.Join(dir, HTMLFile)
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return "", nil, err
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return "", nil, err
	}
	return out, m, nil
}

// page is the data of the template.
type page struct {
	Title           string
	Empty           bool
	Start, End, Dur string
	Peers           string
	Events          int
	Nodes           string
	Settings        []kv
	Notes           []string
	States          []legendItem
	Leaders         []legendItem
	Timeline        *svgView
	Verdicts        []verdict
	Checked, Failed int
	Faults          []faultRow
	Panels          []faultPanel
	ZoomNote        string
	Procs           *procView
	ProcKinds       string
	ProcCounts      []kv
	HasMembers      bool
	HasDirs         bool
	HasClients      bool
	CtlInferred     bool // some control events about processes do not name them (proc)
	Orders          []orderTable
	Topics          *topicTable
	Changes         []change
	Counts          countTable
	Log             []logLine
	LogNodes        []string
	LogEvs          []string
	LogLines        int
	LogNote         string
	UrgentMatched   int
	UrgentUnmatched int
	UrgentGone      int // of those, sent to a peer that stopped running soon after
}

// logLine is one line of the merged log, with what the filters match.
type logLine struct {
	ID, Node, Ev, Text string
	Bad                bool // an event a violation names
}

type kv struct{ K, V string }

type legendItem struct {
	Class, Color, Label string
}

type countTable struct {
	Nodes []string
	Rows  []countRow
	Total []int
	All   int
}

type countRow struct {
	Ev    string
	Cells []int
	Total int
}

func build(title string, events []eventlog.Event) *page {
	r := analyze(events)
	p := &page{Title: title, Events: len(events), Empty: len(events) == 0}
	if p.Empty {
		return p
	}
	const tf = "2006-01-02 15:04:05.000 MST"
	if r.hasTime {
		p.Start, p.End = r.t0.UTC().Format(tf), r.t1.UTC().Format(tf)
	} else {
		p.Start, p.End = "?", "?"
	}
	p.Dur = fmt.Sprintf("%.3f s", r.dur)
	switch {
	case r.n > 0 && r.n == len(r.lanes):
		p.Peers = strconv.Itoa(r.n)
	case r.n > 0:
		p.Peers = fmt.Sprintf("%d (n from start events; %d lanes drawn)", r.n, len(r.lanes))
	default:
		p.Peers = fmt.Sprintf("%d (no start events; peers seen in the log)", len(r.lanes))
	}
	for _, k := range settingKeys {
		v := strings.Join(r.settings[k], ", ")
		if v == "" {
			v = "—"
		}
		p.Settings = append(p.Settings, kv{k, v})
	}
	p.Counts = counts(events)
	p.Nodes = strings.Join(p.Counts.Nodes, ", ")

	var inferred []string
	for _, q := range r.lanes {
		if !r.ctrl[q] {
			inferred = append(inferred, strconv.Itoa(q))
		}
	}
	if len(inferred) > 0 {
		if r.hasCtrl {
			p.Notes = append(p.Notes, "No control events for peer "+strings.Join(inferred, ", ")+
				": its process life is inferred from its own events.")
		} else {
			p.Notes = append(p.Notes, "No control events: each peer's process life is inferred from its own start, stop and last events (and paused events).")
		}
	}
	if r.droppedL > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("%s not drawn (at most %d lanes).", plural(r.droppedL, "more peer is", "more peers are"), maxLanes))
	}
	p.UrgentMatched, p.UrgentUnmatched = len(r.urgent), len(r.unsent)
	for _, l := range r.unsent {
		if r.states.at(l.To, l.T1+r.suspect()/1000) != stRunning {
			p.UrgentGone++
		}
	}
	p.Verdicts = verdicts(events, r.n)
	bad := map[int]bool{}
	for _, v := range p.Verdicts {
		if v.Checked {
			p.Checked++
			if !v.Pass {
				p.Failed++
			}
		}
		for _, x := range v.Shown {
			if x.Anchor != "" {
				i, _ := strconv.Atoi(strings.TrimPrefix(x.Anchor, "e"))
				bad[i] = true
			}
		}
	}

	for _, s := range []string{stRunning, stHung, stDown, stStopped, stNotStarted} {
		p.States = append(p.States, legendItem{Class: "st-" + s, Label: stateName[s]})
	}
	for _, l := range r.leaders {
		p.Leaders = append(p.Leaders, legendItem{Color: leaderColor(l), Label: leaderLabel(l)})
	}
	if len(r.lanes) > 0 {
		p.Timeline = r.view("timeline", 0, r.end, false, 0)
	}
	if len(r.procs) > 0 {
		p.Procs = r.procsView("processes", 0, r.end, false, 0)
		kinds := map[string][]string{}
		var ks []string
		for _, q := range r.procs {
			if kinds[q.Kind] == nil {
				ks = append(ks, q.Kind)
			}
			kinds[q.Kind] = append(kinds[q.Kind], q.Node)
		}
		for k, kind := range ks {
			p.ProcCounts = append(p.ProcCounts, kv{K: kind + "s", V: fmt.Sprintf("%d: %s", len(kinds[kind]), strings.Join(kinds[kind], ", "))})
			ks[k] = kind + "s"
		}
		p.ProcKinds = strings.Join(ks, ", ")
		p.HasMembers, p.HasDirs, p.HasClients = kinds[kindMember] != nil, kinds[kindDir] != nil, kinds[kindClient] != nil
	}
	for _, e := range events {
		if e.Node == eventlog.Control && isProc(e.Ev) && ctlProc(e) == "" {
			p.CtlInferred = true
			break
		}
	}
	p.Orders = r.orderTables()
	p.Topics = r.topicTable()

	p.Faults, p.Panels, p.ZoomNote = r.faultTable()
	p.Changes = r.changes

	nodes, evs := map[string]bool{}, map[string]bool{}
	for k, e := range events {
		if k == MaxLogLines {
			p.LogNote = fmt.Sprintf("… %d more lines not shown (the report includes at most %d).", len(events)-k, MaxLogLines)
			break
		}
		p.Log = append(p.Log, logLine{ID: logAnchor(k), Node: e.Node, Ev: e.Ev, Text: eventlog.Format(e), Bad: bad[k]})
		if !nodes[e.Node] {
			nodes[e.Node] = true
			p.LogNodes = append(p.LogNodes, e.Node)
		}
		evs[e.Ev] = true
		p.LogLines++
	}
	sort.Slice(p.LogNodes, func(i, j int) bool { return natLess(p.LogNodes[i], p.LogNodes[j]) })
	for ev := range evs {
		p.LogEvs = append(p.LogEvs, ev)
	}
	sort.Strings(p.LogEvs)
	return p
}

// counts tabulates events per type per node: control first, then peers by
// id, then other nodes by name.
func counts(events []eventlog.Event) countTable {
	byNode := map[string]map[string]int{}
	evs := map[string]bool{}
	for _, e := range events {
		if byNode[e.Node] == nil {
			byNode[e.Node] = map[string]int{}
		}
		byNode[e.Node][e.Ev]++
		evs[e.Ev] = true
	}
	var t countTable
	for n := range byNode {
		t.Nodes = append(t.Nodes, n)
	}
	rank := func(n string) int {
		if n == eventlog.Control {
			return 0
		}
		if _, ok := peerID(n); ok {
			return 1
		}
		return 2
	}
	sort.Slice(t.Nodes, func(i, j int) bool {
		a, b := t.Nodes[i], t.Nodes[j]
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		pa, _ := peerID(a)
		pb, _ := peerID(b)
		if pa != pb {
			return pa < pb
		}
		return a < b
	})
	var names []string
	for ev := range evs {
		names = append(names, ev)
	}
	sort.Strings(names)
	t.Total = make([]int, len(t.Nodes))
	for _, ev := range names {
		row := countRow{Ev: ev}
		for k, n := range t.Nodes {
			c := byNode[n][ev]
			row.Cells = append(row.Cells, c)
			row.Total += c
			t.Total[k] += c
		}
		t.All += row.Total
		t.Rows = append(t.Rows, row)
	}
	return t
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
