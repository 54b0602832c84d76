package report

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Geometry of the process lanes, in pixels.
const (
	procLaneH   = 36.0
	maxDelTicks = 3000 // deliveries drawn one by one in a window at most; more make a density strip
)

// procView is a diagram of the lanes of the processes that are not peers.
type procView struct {
	ID, Clip     string
	W, H         float64
	PlotX, PlotW float64
	Top, AxisY   float64
	AxisLabel    string
	Ticks        []tickView
	Lanes        []procLaneView
	BG, Rects    []rectView
	Lines        []lineSpec
	Texts        []textView
	Polys        []polySpec
	Markers      []markerView
}

type procLaneView struct {
	Node, Kind  string
	Y, H, TextY float64
}

type lineSpec struct {
	X1, Y1, X2, Y2 float64
	Color, Title   string
	Width          float64
}

type polySpec struct {
	Points, Fill, Stroke, Title, Class string
}

// role colors of directory replicas.
var roleColor = map[string]string{
	"leader":       "#1f5fa8",
	"follower":     "#b9cde5",
	"candidate":    "#f0ad4e",
	"precandidate": "#f6d79a",
}

// senderColors gives each sender of the deliveries in procs a color.
func senderColors(procs []*proc) map[string]string {
	seen := map[string]bool{}
	for _, p := range procs {
		for _, d := range p.dels {
			seen[d.From] = true
		}
	}
	var ids []string
	for s := range seen {
		ids = append(ids, s)
	}
	sort.Slice(ids, func(i, j int) bool { return natLess(ids[i], ids[j]) })
	out := map[string]string{}
	for k, s := range ids {
		out[s] = palette[k%len(palette)]
	}
	return out
}

// procsView lays out the process lanes over [from, to], as view does the
// peers' lanes.
func (r *run) procsView(id string, from, to float64, zoom bool, ref float64) *procView {
	if !(to > from) {
		to = from + 1
	}
	v := &procView{ID: id, Clip: id + "-clip", W: svgWidth, PlotX: plotLeft + 40, PlotW: svgWidth - plotLeft - 40 - plotRight}
	x := func(t float64) float64 {
		t = math.Max(from-(to-from), math.Min(to+(to-from), t))
		return v.PlotX + (t-from)/(to-from)*v.PlotW
	}
	ms, rows := r.placeMarks(x, from, to, v.W, 6)
	v.Top = 6 + labelRowH*float64(max(rows, 1)) + 4
	v.AxisY = v.Top + procLaneH*float64(len(r.procs)) + 2
	v.H = v.AxisY + 30
	for _, m := range ms {
		m.Y2 = v.AxisY
		v.Markers = append(v.Markers, m)
	}
	v.Ticks, v.AxisLabel = axisTicks(x, from, to, zoom, ref, v.W)
	in := func(t float64) bool { return t >= from && t <= to }
	clipSeg := func(a, b float64) (float64, float64, bool) {
		a, b = math.Max(a, from), math.Min(b, to)
		return a, b, b > a
	}
	ndel := 0
	for _, p := range r.procs {
		for _, d := range p.dels {
			if in(d.T) {
				ndel++
			}
		}
	}
	for k, p := range r.procs {
		y := v.Top + procLaneH*float64(k)
		v.Lanes = append(v.Lanes, procLaneView{Node: p.Node, Kind: p.Kind, Y: y, H: procLaneH, TextY: y + procLaneH/2 + 4})
		// Life: a thin bar while it runs.
		for j, l := range p.lives {
			if a, b, ok := clipSeg(l.From, l.To); ok {
				v.Rects = append(v.Rects, rectView{X: x(a), Y: y + 3, W: math.Max(x(b)-x(a), 1), H: 4, Class: "st-running",
					Title: fmt.Sprintf("%s running %s–%s s", p.Node, fmtS(l.From), fmtS(l.To))})
			}
			end := r.end
			if j+1 < len(p.lives) {
				end = p.lives[j+1].From
			}
			st := stStopped
			if !l.Clean {
				st = stDown
			}
			if l.To < r.end*0.999 {
				if a, b, ok := clipSeg(l.To, end); ok {
					v.BG = append(v.BG, rectView{X: x(a), Y: y, W: x(b) - x(a), H: procLaneH, Class: "bg-" + st})
				}
			}
		}
		for _, h := range p.hung {
			if a, b, ok := clipSeg(h[0], h[1]); ok {
				v.BG = append(v.BG, rectView{X: x(a), Y: y, W: x(b) - x(a), H: procLaneH, Class: "bg-" + stHung})
			}
		}
		bandY, bandH := y+10, 13.0
		// Directory roles.
		for j, ro := range p.roles {
			end := r.end
			if j+1 < len(p.roles) {
				end = p.roles[j+1].T
			}
			for _, l := range p.lives {
				if l.Inc == ro.Incarnated && l.To < end {
					end = l.To
				}
			}
			a, b, ok := clipSeg(ro.T, end)
			if !ok {
				continue
			}
			c := roleColor[ro.Role]
			if c == "" {
				c = noneColor
			}
			lbl := ro.Role + " t" + fmt.Sprint(ro.Term)
			v.Rects = append(v.Rects, rectView{X: x(a), Y: bandY, W: x(b) - x(a), H: bandH, Fill: c,
				Title: fmt.Sprintf("%s: %s in term %d (leader %s) from %s s", p.Node, ro.Role, ro.Term, leaderLabel(ro.Leader), fmtS(ro.T))})
			if w := x(b) - x(a); w >= textW(lbl)+2 {
				cls := "lt"
				if ro.Role != "leader" {
					cls = "lt none"
				}
				v.Texts = append(v.Texts, textView{X: x(a) + w/2, Y: bandY + bandH/2 + 4, Text: lbl, Class: cls})
			}
		}
		// Views: a segment per view installed, for group members; a tick
		// per view for clients (which are in several groups).
		for j, vw := range p.views {
			if p.Kind == kindMember {
				end := r.end
				if j+1 < len(p.views) {
					end = p.views[j+1].T
				}
				for _, l := range p.lives {
					if vw.T >= l.From && vw.T <= l.To && l.To < end {
						end = l.To
					}
				}
				a, b, ok := clipSeg(vw.T, end)
				if !ok {
					continue
				}
				seq, _, _ := strings.Cut(vw.View, "@")
				lbl := fmt.Sprintf("view %s · %d", seq, vw.Members)
				fill := []string{"#dbe7f3", "#e8f0da"}[j%2]
				v.Rects = append(v.Rects, rectView{X: x(a), Y: bandY, W: x(b) - x(a), H: bandH, Fill: fill,
					Title: fmt.Sprintf("%s: view %s, %d members, installed at %s s%s", p.Node, vw.View, vw.Members, fmtS(vw.T), flushedText(vw.Flushed))})
				if w := x(b) - x(a); w >= textW(lbl)+2 {
					v.Texts = append(v.Texts, textView{X: x(a) + w/2, Y: bandY + bandH/2 + 4, Text: lbl, Class: "lt none"})
				}
				continue
			}
			if in(vw.T) {
				vx := x(vw.T)
				v.Lines = append(v.Lines, lineSpec{X1: vx, Y1: bandY, X2: vx, Y2: bandY + bandH, Color: "#6c7fa8", Width: 1.5,
					Title: fmt.Sprintf("%s: view %s of %s, %d members, at %s s%s", p.Node, vw.View, vw.Group, vw.Members, fmtS(vw.T), flushedText(vw.Flushed))})
			}
		}
		// Flushes and suspicions.
		for _, f := range p.flushes {
			if in(f.T) {
				fx := x(f.T)
				v.Polys = append(v.Polys, polySpec{Points: fmt.Sprintf("%s,%s %s,%s %s,%s", f1(fx-3.5), f1(bandY-2), f1(fx+3.5), f1(bandY-2), f1(fx), f1(bandY+4)),
					Class: "pm-flush", Title: fmt.Sprintf("%s s: %s %s", fmtS(f.T), p.Node, f.Title)})
			}
		}
		for _, s := range p.susp {
			if in(s.T) {
				sx, yb := x(s.T), y+procLaneH-1
				v.Polys = append(v.Polys, polySpec{Points: fmt.Sprintf("%s,%s %s,%s %s,%s", f1(sx), f1(yb-6), f1(sx-3.5), f1(yb), f1(sx+3.5), f1(yb)),
					Class: "pm-down", Title: fmt.Sprintf("%s s: %s %s", fmtS(s.T), p.Node, s.Title)})
			}
		}
		// Announces, subscriptions and moves.
		for _, m := range p.psmarks {
			if !in(m.T) {
				continue
			}
			mx, my := x(m.T), bandY+bandH/2
			var pts string
			switch m.Kind {
			case "announce":
				pts = fmt.Sprintf("%s,%s %s,%s %s,%s", f1(mx), f1(my-5), f1(mx-4), f1(my+3), f1(mx+4), f1(my+3))
			case "move":
				pts = fmt.Sprintf("%s,%s %s,%s %s,%s %s,%s", f1(mx), f1(my-5), f1(mx-4), f1(my), f1(mx), f1(my+5), f1(mx+4), f1(my))
			default:
				pts = fmt.Sprintf("%s,%s %s,%s %s,%s %s,%s", f1(mx-3.5), f1(my-3.5), f1(mx+3.5), f1(my-3.5), f1(mx+3.5), f1(my+3.5), f1(mx-3.5), f1(my+3.5))
			}
			v.Polys = append(v.Polys, polySpec{Points: pts, Class: "ps-" + m.Kind, Title: fmt.Sprintf("%s s: %s %s", fmtS(m.T), p.Node, m.Title)})
		}
		// Deliveries: a tick each, colored by sender, or a density strip.
		dy := y + procLaneH - 11
		if ndel <= maxDelTicks {
			for _, d := range p.dels {
				if !in(d.T) {
					continue
				}
				dx := x(d.T)
				t := fmt.Sprintf("%s s: %s delivered a message from %s", fmtS(d.T), p.Node, d.From)
				if d.Topic != "" {
					t = fmt.Sprintf("%s s: %s handed over an event of %s from %s", fmtS(d.T), p.Node, d.Topic, d.From)
				}
				if d.Order > 0 {
					t += fmt.Sprintf(", number %d of the view's total order", d.Order)
				}
				v.Lines = append(v.Lines, lineSpec{X1: dx, Y1: dy, X2: dx, Y2: dy + 8, Color: r.senders[d.From], Width: 1, Title: t})
			}
		} else {
			const bw = 3.0
			buckets := map[int]int{}
			most := 0
			for _, d := range p.dels {
				if in(d.T) {
					b := int((x(d.T) - v.PlotX) / bw)
					buckets[b]++
					most = max(most, buckets[b])
				}
			}
			for b, c := range buckets {
				h := 9 * float64(c) / float64(most)
				v.Rects = append(v.Rects, rectView{X: v.PlotX + float64(b)*bw, Y: dy + 9 - h, W: bw, H: h, Fill: "#7a8699"})
			}
		}
	}
	return v
}

func flushedText(f bool) string {
	if f {
		return ", through a flush of the previous view"
	}
	return ""
}
