package report

import (
	"strings"
	"testing"

	"github.com/conclave/conclave/eventlog"
)

// demoPubSubCast is the process of each launch slot of the recorded
// conclave demo pubsub.
var demoPubSubCast = []string{"dir-0", "dir-1", "dir-2", "pub-orders", "pub-news", "pub-prices",
	"sub-eu", "sub-us", "sub-desk", "sub-quant", "sub-late"}

// withProc adds to every control event about a process its node name,
// name(slot), as launch writes it.
func withProc(ev []eventlog.Event, name func(int) string) {
	for _, e := range ev {
		if p, ok := e.Int(eventlog.FieldPeer); ok && e.Node == eventlog.Control && isProc(e.Ev) {
			e.Fields[eventlog.FieldProc] = name(p)
		}
	}
}

// misleadKill makes the step of the publisher's kill in the recorded
// pub/sub demo name another publisher.
func misleadKill(t *testing.T, ev []eventlog.Event) {
	t.Helper()
	for _, e := range ev {
		if e.Node == eventlog.Control && e.Ev == eventlog.Step && strings.Contains(e.Str(eventlog.FieldName), "SIGKILL publisher pub-prices") {
			e.Fields[eventlog.FieldName] = "SIGKILL publisher pub-news mid-stream"
			return
		}
	}
	t.Fatal("no step of the publisher's kill")
}

// killPanel returns the label and outcome of the fault that killed slot 5.
func killPanel(t *testing.T, ev []eventlog.Event) (label, outcome string) {
	t.Helper()
	r := analyze(ev)
	_, panels, _ := r.faultTable()
	for k, f := range r.faults {
		if f.Kind == "kill" && f.Peers[0] == 5 {
			return f.Label, panels[k].Outcome
		}
	}
	t.Fatal("no kill of slot 5")
	return "", ""
}

// TestFaultNamesProcessFromField: a control event that names its process
// (proc) is taken at its word, where the inference from the log would
// take another: the step of the publisher's kill names the wrong
// publisher, and the panel names the one killed all the same. Without the
// field, the inference is misled (which shows the field is what the
// report goes by).
func TestFaultNamesProcessFromField(t *testing.T) {
	ev := recorded(t, "pubsub")
	misleadKill(t, ev)
	if label, outcome := killPanel(t, ev); !strings.HasPrefix(outcome, "pub-news killed") {
		t.Fatalf("without proc, the misleading step should mislead the inference: %s: %q", label, outcome)
	}
	withProc(ev, func(i int) string { return demoPubSubCast[i] })
	label, outcome := killPanel(t, ev)
	if label != "kill pub-prices" || !strings.HasPrefix(outcome, "pub-prices killed") {
		t.Errorf("with proc: %s: %q, want pub-prices killed", label, outcome)
	}
	r := analyze(ev)
	for n, w := range demoPubSubCast {
		if p := r.procOf[n]; p == nil || p.Node != w {
			got := "none"
			if p != nil {
				got = p.Node
			}
			t.Errorf("control's process %d taken for %s, want %s", n, got, w)
		}
	}
	html := render(t, "pubsub", ev)
	if !strings.Contains(html, "kill pub-prices at") {
		t.Errorf("no panel headed by the kill of pub-prices")
	}
	if strings.Contains(html, `<g class="lane"`) {
		t.Errorf("control events naming clients gave peer lanes")
	}
}

// TestPeerFaultsFromField: in a peer run whose control events name their
// peers, the faults and failovers are tied as before.
func TestPeerFaultsFromField(t *testing.T) {
	ev := recorded(t, "demo")
	withProc(ev, eventlog.PeerName)
	r := analyze(ev)
	checkAttribution(t, r)
	if len(r.lanes) != 4 || !r.hasCtrl {
		t.Errorf("%d lanes, control events %v; want 4 lanes from control events", len(r.lanes), r.hasCtrl)
	}
}
