package report

import (
	"fmt"
	"math"
)

const (
	maxZooms = 40    // close-ups drawn at most
	minZoom  = 0.020 // narrowest close-up window, in seconds
)

// faultRow is one row of the table of faults.
type faultRow struct {
	N         int
	At        string
	Label     string
	Kind      string
	Step      string
	Conv      bool
	Early     bool // converged before the fault was logged
	ConvMS    string
	Leader    int
	NotConv   string
	Reported  string
	ZoomID    string
	LeaderStr string
}

// zoomView is the close-up of the lanes after a fault.
type zoomView struct {
	ID, Heading string
	SVG         *svgView
}

// faultTable lays out the table of faults, a row per fault with the
// convergence after it, and a close-up of the lanes after each of the first
// maxZooms; note says if some have none.
func (r *run) faultTable() (rows []faultRow, zooms []zoomView, note string) {
	win := (2*r.suspect() + 200) / 1000
	for k, f := range r.faults {
		row := faultRow{N: k + 1, At: fmt.Sprintf("%.3f", f.At), Label: f.Label, Kind: f.Kind,
			Step: f.Step, Conv: f.Conv, Leader: f.Leader, LeaderStr: leaderLabel(f.Leader), Reported: f.RepText}
		if f.Kind == "initial" {
			row.Label += " (first start)"
		}
		switch {
		case f.Conv:
			row.ConvMS = fmtMS(f.ConvMS)
			if f.ConvMS < 0 {
				row.Early = true
			}
		case f.NoneUp:
			row.NotConv = "no peer left running"
		case f.HasNext:
			row.NotConv = fmt.Sprintf("not before the next fault (%.0f ms later)", (f.End-f.Ref)*1000)
		default:
			row.NotConv = "not by the end of the run"
		}
		if k < maxZooms && len(r.lanes) > 0 {
			row.ZoomID = fmt.Sprintf("zoom-%d", k+1)
			to := math.Max(math.Min(f.Ref+win, r.end), f.Ref+minZoom)
			from := f.At - 0.05*(to-f.At)
			h := fmt.Sprintf("#%d %s at %.3f s", k+1, row.Label, f.At)
			if f.Step != "" {
				h += fmt.Sprintf(" (step %q)", clip(f.Step, labelMax))
			}
			if f.Conv {
				h += fmt.Sprintf(": converged on leader %s after %s ms", leaderLabel(f.Leader), row.ConvMS)
			} else {
				h += ": no convergence, " + row.NotConv
			}
			zooms = append(zooms, zoomView{ID: row.ZoomID, Heading: h,
				SVG: r.view(row.ZoomID, from, to, true, f.At)})
		}
		rows = append(rows, row)
	}
	if len(r.faults) > maxZooms {
		note = fmt.Sprintf("Close-ups are drawn for the first %d of %d faults.", maxZooms, len(r.faults))
	}
	return rows, zooms, note
}
