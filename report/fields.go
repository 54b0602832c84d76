package report

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/conclave/conclave/eventlog"
)

// Reading and rendering the fields of an event.

// isProc reports whether ev is a control event acting on a peer's process.
func isProc(ev string) bool {
	switch ev {
	case eventlog.ProcStart, eventlog.ProcKill, eventlog.ProcStop, eventlog.ProcCont, eventlog.ProcTerm:
		return true
	}
	return false
}

// peerID parses a node name "peer-<id>".
func peerID(node string) (int, bool) {
	id := eventlog.PeerID(node)
	return id, id >= 0
}

// num returns a numeric field as a finite float64.
func num(e eventlog.Event, k string) (float64, bool) {
	var v float64
	switch x := e.Fields[k].(type) {
	case int:
		v = float64(x)
	case int64:
		v = float64(x)
	case uint64:
		v = float64(x)
	case float64:
		v = x
	default:
		return 0, false
	}
	return v, !math.IsNaN(v) && !math.IsInf(v, 0)
}

// fieldStr renders a field value compactly; "?" if missing.
func fieldStr(e eventlog.Event, k string) string {
	v, ok := e.Fields[k]
	if !ok || v == nil {
		return "?"
	}
	switch x := v.(type) {
	case string:
		return clip(x, labelMax)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool, int, int64, uint64:
		return fmt.Sprint(x)
	}
	return listStr(v)
}

// intStr renders an integer field; "?" if missing.
func intStr(e eventlog.Event, k string) string {
	if v, ok := e.Int(k); ok {
		return strconv.Itoa(v)
	}
	return "?"
}

// leaderStr renders a leader field: "none" for noLeader, "?" if missing.
func leaderStr(e eventlog.Event, k string) string {
	v, ok := e.Int(k)
	switch {
	case !ok:
		return "?"
	case v == noLeader:
		return "none"
	}
	return strconv.Itoa(v)
}

// listStr renders a value as JSON, clipped.
func listStr(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return clip(string(b), 200)
}

// clip shortens s to at most n runes.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	rs := []rune(s)
	if len(rs) <= n {
		return s
	}
	return string(rs[:n-1]) + "…"
}

// downText describes a peer_down event: which peer, the cause, the reason.
func downText(e eventlog.Event) string {
	s := "peer " + intStr(e, eventlog.FieldPeer) + " down"
	if c := e.Str(eventlog.FieldCause); c != "" {
		s += ": " + c
	}
	if rs := e.Str(eventlog.FieldReason); rs != "" {
		s += " (" + clip(rs, 80) + ")"
	}
	return s
}

// msField renders a field of milliseconds as fmtMS does; "?" if missing.
func msField(e eventlog.Event, k string) string {
	if v, ok := num(e, k); ok {
		return fmtMS(v)
	}
	return "?"
}
