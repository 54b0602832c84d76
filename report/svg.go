package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Geometry of the diagrams, in pixels.
const (
	svgWidth   = 1100.0
	plotLeft   = 64.0
	plotRight  = 14.0
	labelRowH  = 13.0
	mainLaneH  = 40.0
	zoomLaneH  = 32.0
	maxHBTicks = 5000 // heartbeat ticks per zoom at most
)

// palette colors leader ids; none (-1) and other negatives are gray.
var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
	"#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79"}

const noneColor = "#c8c8c8"

func leaderColor(l int) string {
	if l < 0 {
		return noneColor
	}
	return palette[l%len(palette)]
}

func leaderLabel(l int) string {
	if l == noLeader {
		return "none"
	}
	return strconv.Itoa(l)
}

// svgView is one timeline diagram ready for the template.
type svgView struct {
	ID, Clip     string
	W, H         float64
	PlotX, PlotW float64
	Top, AxisY   float64
	AxisLabel    string
	Ticks        []tickView
	Lanes        []laneView
	BG, Bars     []rectView
	Leaders      []rectView
	Texts        []textView
	HB           []lineView // heartbeat receipt ticks
	Arrows       []arrowView
	Stubs        []pointView
	PMarks       []polyView
	Markers      []markerView
}

type tickView struct {
	X             float64
	Label, Anchor string
}

type laneView struct {
	Peer        int
	Y, H, TextY float64
}

type rectView struct {
	X, Y, W, H  float64
	Class, Fill string
	Title       string
}

type textView struct {
	X, Y        float64
	Text, Class string
}

type lineView struct {
	X1, Y1, X2, Y2 float64
}

type arrowView struct {
	From, To, Leader int
	X1, Y1, X2, Y2   float64
	Head             string // polygon points
	Color, Title     string
}

type pointView struct {
	X, Y         float64
	Color, Title string
}

type polyView struct {
	Points, Class, Title string
}

type markerView struct {
	X, Y1, Y2   float64
	LX, LY      float64
	Anchor      string
	Kind, Label string
	Title       string
}

// textW estimates the width of a label in the 11px sans-serif font, bold.
func textW(s string) float64 { return 6.8*float64(len([]rune(s))) + 6 }

// view lays out the lanes of r over the window [from, to] (seconds from run
// start). Tick labels are seconds from run start, or, in a zoom,
// milliseconds from ref.
func (r *run) view(id string, from, to float64, zoom bool, ref float64) *svgView {
	if !(to > from) {
		to = from + 1
	}
	v := &svgView{ID: id, Clip: id + "-clip", W: svgWidth, PlotX: plotLeft, PlotW: svgWidth - plotLeft - plotRight}
	x := func(t float64) float64 {
		t = math.Max(from-(to-from), math.Min(to+(to-from), t)) // keep coordinates sane
		return v.PlotX + (t-from)/(to-from)*v.PlotW
	}
	laneH, maxRows := mainLaneH, 6
	if zoom {
		laneH = zoomLaneH
	}

	ms, rows := r.placeMarks(x, from, to, v.W, maxRows)
	v.Top = 6 + labelRowH*float64(max(rows, 1)) + 4
	v.AxisY = v.Top + laneH*float64(len(r.lanes)) + 2
	v.H = v.AxisY + 30
	for _, m := range ms {
		m.Y2 = v.AxisY
		v.Markers = append(v.Markers, m)
	}
	v.Ticks, v.AxisLabel = axisTicks(x, from, to, zoom, ref, v.W)

	center := map[int]float64{}
	for k, p := range r.lanes {
		y := v.Top + laneH*float64(k)
		v.Lanes = append(v.Lanes, laneView{Peer: p, Y: y, H: laneH, TextY: y + laneH/2 + 4})
		barY, barH := y+11, laneH-17
		center[p] = barY + barH/2
		for _, s := range r.states[p] {
			a, b := math.Max(s.From, from), math.Min(s.To, to)
			if b <= a {
				continue
			}
			title := fmt.Sprintf("peer %d %s %.3f–%.3f s", p, stateName[s.State], s.From, s.To)
			v.BG = append(v.BG, rectView{X: x(a), Y: y, W: x(b) - x(a), H: laneH, Class: "bg-" + s.State})
			v.Bars = append(v.Bars, rectView{X: x(a), Y: y + 3, W: x(b) - x(a), H: 5, Class: "st-" + s.State, Title: title})
		}
		for _, s := range r.beliefs[p] {
			a, b := math.Max(s.From, from), math.Min(s.To, to)
			if b <= a {
				continue
			}
			rx, rw := x(a), x(b)-x(a)
			lbl := leaderLabel(s.Leader)
			v.Leaders = append(v.Leaders, rectView{X: rx, Y: barY, W: rw, H: barH, Fill: leaderColor(s.Leader),
				Title: fmt.Sprintf("peer %d: leader %s, %.3f–%.3f s", p, lbl, s.From, s.To)})
			if rw >= textW(lbl)+2 {
				cls := "lt"
				if s.Leader < 0 {
					cls = "lt none"
				}
				v.Texts = append(v.Texts, textView{X: rx + rw/2, Y: barY + barH/2 + 4, Text: lbl, Class: cls})
			}
		}
	}
	for _, m := range r.pmarks {
		k, ok := r.lane[m.Peer]
		if !ok || m.T < from || m.T > to {
			continue
		}
		mx, yb := x(m.T), v.Top+laneH*float64(k+1)-1
		pts := fmt.Sprintf("%s,%s %s,%s %s,%s", f1(mx), f1(yb-6), f1(mx-3.5), f1(yb), f1(mx+3.5), f1(yb))
		if m.Kind == "paused" {
			pts = fmt.Sprintf("%s,%s %s,%s %s,%s %s,%s", f1(mx), f1(yb-7), f1(mx-3.5), f1(yb-3.5), f1(mx), f1(yb), f1(mx+3.5), f1(yb-3.5))
		}
		v.PMarks = append(v.PMarks, polyView{Points: pts, Class: "pm-" + m.Kind, Title: m.Title})
	}

	if zoom {
		for _, h := range r.hbs {
			k, ok := r.lane[h.Peer]
			if !ok || h.T < from || h.T > to || len(v.HB) >= maxHBTicks {
				continue
			}
			hx, yb := x(h.T), v.Top+laneH*float64(k+1)
			v.HB = append(v.HB, lineView{hx, yb - 5, hx, yb - 1})
		}
	}
	inWin := func(a, b float64) bool { return math.Max(a, b) >= from && math.Min(a, b) <= to }
	for _, l := range r.urgent {
		y1, ok1 := center[l.From]
		y2, ok2 := center[l.To]
		if !ok1 || !ok2 || !inWin(l.T1, l.T2) {
			continue
		}
		x1, x2 := x(l.T1), x(l.T2)
		v.Arrows = append(v.Arrows, arrowView{From: l.From, To: l.To, Leader: l.Leader,
			X1: x1, Y1: y1, X2: x2, Y2: y2, Head: arrowHead(x1, y1, x2, y2), Color: leaderColor(l.Leader),
			Title: fmt.Sprintf("urgent notice %d → %d: leader %s (sent %.3f s, received %.3f s, %s ms)",
				l.From, l.To, leaderLabel(l.Leader), l.T1, l.T2, fmtMS((l.T2-l.T1)*1000))})
	}
	for _, l := range r.unsent {
		y, ok := center[l.From]
		if !ok || l.T1 < from || l.T1 > to {
			continue
		}
		v.Stubs = append(v.Stubs, pointView{X: x(l.T1), Y: y, Color: leaderColor(l.Leader),
			Title: fmt.Sprintf("urgent notice %d → %d: leader %s sent at %.3f s, never logged as received",
				l.From, l.To, leaderLabel(l.Leader), l.T1)})
	}
	return v
}

// placeMarks places the control markers within [from, to] and their labels
// in at most maxRows rows that avoid overlaps; it returns them (Y2 left to
// the caller) and the rows used.
func (r *run) placeMarks(x func(float64) float64, from, to, w float64, maxRows int) ([]markerView, int) {
	type placed struct {
		m   mark
		row int
		mx  float64
		lx  float64
		anc string
	}
	var ps []placed
	var rowEnd []float64
	// Control events of one kind a few pixels apart share a marker.
	var marks []mark
	for _, m := range r.marks {
		if m.T < from || m.T > to {
			continue
		}
		if n := len(marks); n > 0 && m.Kind != "step" && marks[n-1].Kind == m.Kind && x(m.T)-x(marks[n-1].T) < 4 {
			last := &marks[n-1]
			last.Peer += "," + m.Peer
			last.Who += "," + m.Who
			last.Label = m.Kind + " " + last.Who
			last.Title += "; " + m.Title
			continue
		}
		marks = append(marks, m)
	}
	for _, m := range marks {
		mx := x(m.T)
		tw := textW(m.Label)
		lx, anc, lo, hi := mx+2, "start", mx, mx+2+tw
		if hi > w-2 {
			lx, anc, lo, hi = mx-2, "end", mx-2-tw, mx
		}
		row := -1
		for k, e := range rowEnd {
			if e < lo {
				row = k
				break
			}
		}
		if row < 0 && len(rowEnd) < maxRows {
			rowEnd = append(rowEnd, 0)
			row = len(rowEnd) - 1
		}
		if row < 0 {
			row = 0
			for k, e := range rowEnd {
				if e < rowEnd[row] {
					row = k
				}
			}
		}
		rowEnd[row] = math.Max(rowEnd[row], hi+4)
		ps = append(ps, placed{m, row, mx, lx, anc})
	}
	var out []markerView
	for _, p := range ps {
		ly := 6 + labelRowH*float64(p.row+1) - 3
		out = append(out, markerView{X: p.mx, Y1: ly - 9, LX: p.lx, LY: ly,
			Anchor: p.anc, Kind: p.m.Kind, Label: p.m.Label, Title: p.m.Title})
	}
	return out, len(rowEnd)
}

// axisTicks lays out the time axis of [from, to]: seconds from run start,
// or, in a zoom, milliseconds from ref.
func axisTicks(x func(float64) float64, from, to float64, zoom bool, ref, w float64) (ticks []tickView, label string) {
	if zoom {
		label = "ms after"
		step := niceStep((to - from) * 1000 / 10)
		for k, t := 0, math.Ceil((from-ref)*1000/step)*step; k < 200 && t <= (to-ref)*1000+1e-9; k, t = k+1, t+step {
			lbl := fmtNum(t, step)
			if t > 0 {
				lbl = "+" + lbl
			}
			ticks = append(ticks, tickView{X: x(ref + t/1000), Label: lbl})
		}
	} else {
		label = "seconds"
		step := niceStep((to - from) / 12)
		for k, t := 0, math.Ceil(from/step)*step; k < 200 && t <= to+1e-9; k, t = k+1, t+step {
			ticks = append(ticks, tickView{X: x(t), Label: fmtNum(t, step)})
		}
	}
	for k := range ticks {
		tk := &ticks[k]
		tk.Anchor = "middle"
		if tk.X+textW(tk.Label)/2 > w {
			tk.Anchor = "end"
		}
	}
	return ticks, label
}

var stateName = map[string]string{
	stNotStarted: "not started",
	stRunning:    "running",
	stHung:       "hung (SIGSTOP)",
	stDown:       "killed / down",
	stStopped:    "stopped cleanly",
}

// arrowHead returns the points of a head at (x2, y2) for a line from (x1, y1).
func arrowHead(x1, y1, x2, y2 float64) string {
	dx, dy := x2-x1, y2-y1
	n := math.Hypot(dx, dy)
	if n < 1 {
		return ""
	}
	ux, uy := dx/n, dy/n
	bx, by := x2-ux*7, y2-uy*7
	px, py := -uy*3.5, ux*3.5
	return strings.Join([]string{
		f1(x2) + "," + f1(y2),
		f1(bx+px) + "," + f1(by+py),
		f1(bx-px) + "," + f1(by-py),
	}, " ")
}

// niceStep rounds raw up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if !(raw > 0) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// fmtNum formats a tick value with as many decimals as step needs.
func fmtNum(v, step float64) string {
	d := 0
	for s := step; s < 1-1e-9 && d < 6; s *= 10 {
		d++
	}
	if math.Abs(v) < step/1e6 {
		v = 0
	}
	return strconv.FormatFloat(v, 'f', d, 64)
}

// fmtS formats seconds from run start, to the millisecond.
func fmtS(t float64) string {
	if math.IsNaN(t) || math.IsInf(t, 0) {
		return "?"
	}
	if math.Abs(t) < 0.0005 {
		t = 0
	}
	return strconv.FormatFloat(t, 'f', 3, 64)
}

// f1 formats a coordinate with one decimal.
func f1(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "0"
	}
	v = math.Round(v*10) / 10
	if v == 0 {
		v = 0 // no "-0"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// fmtMS formats milliseconds to 0.1 ms: the one format of durations on
// the page.
func fmtMS(ms float64) string {
	if math.IsNaN(ms) || math.IsInf(ms, 0) {
		return "?"
	}
	v := math.Round(ms*10) / 10
	if v == 0 {
		v = 0 // no "-0.0"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// fmtDelta formats milliseconds after a moment, signed: "+12.3", "-0.4".
func fmtDelta(ms float64) string {
	s := fmtMS(ms)
	if s != "?" && !strings.HasPrefix(s, "-") {
		s = "+" + s
	}
	return s
}
