package report

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/conclave/conclave/eventlog"
)

// browser starts headless Chromium for a test. Without one the test is
// skipped, unless CONCLAVE_STRICT is set (as CI sets it): then it fails.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CONCLAVE_STRICT") == "1" {
			t.Fatal("no Chromium to open the report in (apt-get install chromium)")
		}
		t.Skip("no Chromium (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1200, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// The first action starts the browser, which lives as long as ctx.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int]("1")); err != nil {
		t.Fatalf("cannot start %s: %v", path, err)
	}
	return ctx
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// open loads url and waits for the element of id.
func open(t *testing.T, ctx context.Context, url, id string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible("#"+id)); err != nil {
		t.Fatal(err)
	}
}

// writeRecorded writes the report of a recorded run into a directory of its
// own, as conclave report does, and returns its file URL.
func writeRecorded(t *testing.T, name string, edit func([]eventlog.Event)) string {
	t.Helper()
	ev := recorded(t, name)
	if edit != nil {
		edit(ev)
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, eventlog.RunJSONL))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ev {
		b, err := e.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		f.Write(append(b, '\n'))
	}
	f.Close()
	path, err := WriteDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return "file://" + path
}

// screenshot saves the page as the test's artifact name.png.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(80))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.ArtifactDir(), name+".jpg")
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", out)
}

// TestBrowser opens reports of recorded runs in one headless Chromium, a
// tab each.
func TestBrowser(t *testing.T) {
	ctx := browser(t)
	for name, f := range map[string]func(*testing.T, context.Context){
		"demo": browseDemo, "violation": browseViolation, "pubsub": browsePubSub, "pubsub-ops": browsePubSubEvidence,
	} {
		t.Run(name, func(t *testing.T) {
			tab, cancel := chromedp.NewContext(ctx)
			defer cancel()
			if _, err := chromedp.Run(tab, chromedp.Evaluate[int]("1")); err != nil {
				t.Fatal(err)
			}
			// A page that lacks what a test waits for fails it, in time.
			tab, cancel = context.WithTimeout(tab, 30*time.Second)
			defer cancel()
			f(t, tab)
		})
	}
}

// browseDemo opens the report of a recorded conclave demo and checks what
// a reader would: the verdicts first, a lane per peer, the hang's
// failover tied to "stop 1", the close-ups, and the merged log's filters.
func browseDemo(t *testing.T, ctx context.Context) {
	url := writeRecorded(t, "demo", nil)
	open(t, ctx, url, "verdict")
	verdict := eval[string](t, ctx, `document.getElementById("verdict").textContent`)
	pass := eval[int](t, ctx, `document.querySelectorAll('tr.verdict[data-verdict="pass"]').length`)
	lanes := eval[int](t, ctx, `document.querySelectorAll('svg#timeline g.lane').length`)
	zooms := eval[int](t, ctx, `document.querySelectorAll('div.panel svg').length`)
	hang := eval[string](t, ctx, `(function(){var r=document.querySelector('tr.change[data-prev="1"][data-leader="2"]');return r.dataset.since+" "+r.dataset.latency})()`)
	lines := eval[int](t, ctx, `document.querySelectorAll('#merged-log > div').length`)
	peer1 := eval[int](t, ctx, `document.querySelectorAll('#merged-log > div[data-n="peer-1"]').length`)
	screenshot(t, ctx, "demo-report")
	if verdict == "" || pass != 6 {
		t.Errorf("verdict %q, %d checkers passed, want 6", verdict, pass)
	}
	if lanes != 4 || zooms != 6 {
		t.Errorf("%d lanes, %d close-ups; want 4 and 6", lanes, zooms)
	}
	if len(hang) < 8 || hang[:7] != "stop 1 " {
		t.Errorf("hang failover: %q, want after stop 1", hang)
	}
	// Filter the log: peer-1's leader changes only.
	eval[chromedp.Void](t, ctx, `(function(){
		for (const o of document.getElementById("f-node").options) o.selected = o.value === "peer-1";
		for (const o of document.getElementById("f-ev").options) o.selected = o.value === "leader_change";
		document.getElementById("f-ev").dispatchEvent(new Event("change"));
	})()`)
	shown := eval[int](t, ctx, `Array.from(document.querySelectorAll('#merged-log > div')).filter(l => l.offsetParent !== null).length`)
	counted := eval[string](t, ctx, `document.getElementById("f-count").textContent`)
	want := 0
	for _, e := range recorded(t, "demo") {
		if e.Node == "peer-1" && e.Ev == eventlog.LeaderChange {
			want++
		}
	}
	if shown != want || want == 0 || lines <= peer1 {
		t.Errorf("filtered log shows %d lines, want peer-1's %d leader changes (of %d lines)", shown, want, lines)
	}
	if counted != fmt.Sprintf("%d of %d lines", want, lines) {
		t.Errorf("filter says %q", counted)
	}
}

// browseViolation opens the report of a broken run and follows the
// violation's link to its line in the merged log.
func browseViolation(t *testing.T, ctx context.Context) {
	url := writeRecorded(t, "demo", func(ev []eventlog.Event) {
		killed := false
		for _, e := range ev {
			killed = killed || e.Ev == eventlog.ProcKill
			if killed && e.Ev == eventlog.PeerDown {
				e.Fields[eventlog.FieldCause] = eventlog.CauseSilence
				return
			}
		}
	})
	open(t, ctx, url, "verdict")
	fail := eval[int](t, ctx, `document.querySelectorAll('tr.verdict[data-verdict="fail"]').length`)
	if fail != 1 {
		t.Fatalf("%d failing checkers, want 1", fail)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`tr.verdict[data-verdict="fail"] ul.viol a`)); err != nil {
		t.Fatal(err)
	}
	target := eval[string](t, ctx, `location.hash`)
	cls := eval[string](t, ctx, `document.querySelector(location.hash).className + " " + document.querySelector(location.hash).dataset.e`)
	screenshot(t, ctx, "violation")
	if fail != 1 || target == "" || cls != "bad peer_down" {
		t.Errorf("%d failing checkers; the link leads to %q (%q), want the peer_down marked bad", fail, target, cls)
	}
}

// browsePubSub opens the report of a recorded conclave demo pubsub and
// checks its lanes: directory replicas with their roles, and the clients.
func browsePubSub(t *testing.T, ctx context.Context) {
	url := writeRecorded(t, "pubsub", nil)
	open(t, ctx, url, "processes")
	lanes := eval[int](t, ctx, `document.querySelectorAll('svg#processes g.plane').length`)
	leaders := eval[int](t, ctx, `Array.from(document.querySelectorAll('svg#processes text')).filter(x => x.textContent.startsWith("leader t")).length`)
	moves := eval[int](t, ctx, `document.querySelectorAll('svg#processes polygon.ps-move').length`)
	pass := eval[int](t, ctx, `document.querySelectorAll('tr.verdict[data-verdict="pass"]').length`)
	screenshot(t, ctx, "pubsub-report")
	if lanes != 11 || leaders < 2 || moves == 0 || pass != 2 {
		t.Errorf("%d lanes (want 11), %d leader terms (want 2 or more), %d moves, %d verdicts passed (want 2)", lanes, leaders, moves, pass)
	}
}

// browsePubSubEvidence opens the report of a recorded conclave demo pubsub
// whose clients logged their counts and directory operations: the
// directory's history is checked linearizable, and the table of topics
// shows the counts the clients logged, a row of filtered events per topic.
func browsePubSubEvidence(t *testing.T, ctx context.Context) {
	url := writeRecorded(t, "pubsub-ops", nil)
	open(t, ctx, url, "topic-counts")
	lin := eval[string](t, ctx, `document.querySelector('tr.verdict[data-name="Linearizable"]').dataset.verdict`)
	pass := eval[int](t, ctx, `document.querySelectorAll('tr.verdict[data-verdict="pass"]').length`)
	final := eval[int](t, ctx, `document.querySelectorAll('#topic-counts tr[data-counts="final"]').length`)
	rows := eval[int](t, ctx, `document.querySelectorAll('#topic-counts tr.filtered').length`)
	screenshot(t, ctx, "pubsub-ops-report")
	if lin != "pass" || pass != 3 || final != 6 || rows != 7 {
		t.Errorf("Linearizable %q, %d verdicts passed (want 3), %d clients with final counts (want 6), %d rows of filtered counts (want 7)", lin, pass, final, rows)
	}
}
