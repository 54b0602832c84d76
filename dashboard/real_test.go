package dashboard_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/launch/launchtest"
)

// binary is the conclave executable built for these tests.
var binary string

func TestMain(m *testing.M) { os.Exit(launchtest.RunTests(m, &binary)) }

// cluster starts n `conclave peer` processes with --http, and returns the
// cluster and the peers' HTTP addresses.
func cluster(t *testing.T, n int) (*launch.Cluster, []string) {
	t.Helper()
	web, err := launch.FreeAddrs(n)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := launch.Start(launch.Config{Binary: binary, N: n, Dir: dir, Args: func(i int, addrs []string) []string {
		return []string{"peer", "--id", strconv.Itoa(i), "--peers", strings.Join(addrs, ","), "--log-dir", dir,
			"--heartbeat", "50ms", "--suspect-after", "400ms", "--log-heartbeats", "--http", web[i]}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			launchtest.Keep(t, c.Dir())
		}
	})
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i
	}
	if _, err := c.WaitLeader(ctx(t), 0, ids...); err != nil {
		t.Fatal(err)
	}
	return c, web
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// observed waits until peer i has logged an event after the first one
// match holds for: the process observed that one (the observer runs
// before the next event is logged), so its metrics and dashboard count it.
func observed(t *testing.T, c *launch.Cluster, i int, match func(eventlog.Event) bool) {
	t.Helper()
	e, err := c.WaitEvent(ctx(t), i, match)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitEvent(ctx(t), i, func(f eventlog.Event) bool { return f.LC > e.LC }); err != nil {
		t.Fatal(err)
	}
}

func leaderIs(l int) func(eventlog.Event) bool {
	return func(e eventlog.Event) bool {
		got, _ := e.Int(eventlog.FieldLeader)
		return e.Ev == eventlog.LeaderChange && got == l
	}
}

// scrape reads the metrics of the process serving addr, as Prometheus
// would parse them, and returns the value of each series by its name and
// labels ("name{label=value}").
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	r, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r.Body)
	if err != nil {
		t.Fatalf("/metrics of %s does not parse: %v", addr, err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestRealMetricsCountFailover scrapes /metrics of a running peer before
// and after its leader is killed: the leader change, the peer down with
// its cause and the heartbeats are counted.
func TestRealMetricsCountFailover(t *testing.T) {
	c, web := cluster(t, 3)
	observed(t, c, 1, leaderIs(0))
	before := scrape(t, web[1])
	for name, want := range map[string]float64{"conclave_leader": 0, "conclave_leader_changes_total": 1, "conclave_peers_up": 2} {
		if before[name] != want {
			t.Errorf("before the kill, %s is %v, want %v", name, before[name], want)
		}
	}
	if _, err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	observed(t, c, 1, leaderIs(1))
	// And some heartbeats, each way.
	for _, ev := range []string{eventlog.HBSent, eventlog.HBRecv} {
		observed(t, c, 1, func(e eventlog.Event) bool {
			seq, _ := e.Int(eventlog.FieldSeq)
			return e.Ev == ev && seq >= 3
		})
	}
	after := scrape(t, web[1])
	for name, want := range map[string]float64{"conclave_leader": 1, "conclave_leader_changes_total": 2, "conclave_peers_up": 1} {
		if after[name] != want {
			t.Errorf("after the kill, %s is %v, want %v", name, after[name], want)
		}
	}
	// Peer 0's end is seen at once (conn_closed), or under heavy load
	// after its silence.
	if n := after["conclave_suspicions_total{cause=conn_closed}"] + after["conclave_suspicions_total{cause=silence}"]; n != 1 {
		t.Errorf("after the kill, %v suspicions, want 1: %v", n, after)
	}
	for _, d := range []string{"sent", "received"} {
		if n := after["conclave_heartbeats_total{direction="+d+"}"]; n < 3 {
			t.Errorf("heartbeats %s: %v, want at least the 3 logged", d, n)
		}
	}
}

// chromium returns the path of a Chromium to drive, or skips the test
// (fails it under CONCLAVE_STRICT=1, as CI sets).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CONCLAVE_STRICT") == "1" {
		t.Fatal("no chromium: install Debian's chromium (apt-get install chromium)")
	}
	t.Skip("no chromium to drive (apt-get install chromium)")
	return ""
}

// TestRealDashboardInBrowser opens a peer's dashboard in headless
// Chromium, checks what a person would (the leader, every peer up, the
// page live), kills the leader and sees the new leader and the dead
// peer's cause appear without a reload, and saves screenshots.
func TestRealDashboardInBrowser(t *testing.T) {
	path := chromium(t)
	c, web := cluster(t, 4)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx(t), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1200, 800))...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	shots := t.ArtifactDir()
	shot := func(name string) {
		t.Helper()
		b, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		p := filepath.Join(shots, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	if err := chromedp.Do(browser,
		chromedp.Navigate("http://"+web[3]+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#live.on`)),
		chromedp.WaitVisible(chromedp.CSS(`#leader[data-leader="0"]`)),
	); err != nil {
		t.Fatalf("opening the dashboard of peer 3: %v", err)
	}
	up, err := chromedp.Run(browser, chromedp.Evaluate[int](`document.querySelectorAll('#peers tr[data-up="true"]').length`))
	if err != nil {
		t.Fatal(err)
	}
	leader, live := text(`#leader`), text(`#live`)
	if leader != "peer 0" || live != "live" || up != 3 {
		t.Fatalf("the dashboard shows leader %q, %d peers up, %q; want peer 0, 3 up, live", leader, up, live)
	}
	// A mark that a reload would wipe.
	if _, err := chromedp.Run(browser, chromedp.Evaluate[bool](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	shot("dashboard-before.png")
	killed, err := c.Kill(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(browser,
		chromedp.WaitVisible(chromedp.CSS(`#leader[data-leader="1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#peers tr[data-peer="0"][data-up="false"]`)),
	); err != nil {
		t.Fatalf("the dashboard never showed the new leader: %v", err)
	}
	t.Logf("the dashboard showed leader 1 %v after the kill", time.Since(killed).Round(time.Millisecond))
	shot("dashboard-after.png")
	if cause := text(`#peers tr[data-peer="0"] td.cause`); !strings.Contains(cause, eventlog.CauseConnClosed) && !strings.Contains(cause, eventlog.CauseSilence) {
		t.Errorf("peer 0's cause reads %q, want %s or %s", cause, eventlog.CauseConnClosed, eventlog.CauseSilence)
	}
	if leader := text(`#leader`); leader != "peer 1" {
		t.Errorf("the leader reads %q, want peer 1", leader)
	}
	notReloaded, err := chromedp.Run(browser, chromedp.Evaluate[bool](`window.notReloaded === true`))
	if err != nil {
		t.Fatal(err)
	}
	if !notReloaded {
		t.Error("the page was reloaded")
	}
}
