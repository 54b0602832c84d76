package dashboard_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/launch/launchtest"
)

// pubsubRun starts three directory replicas, a publisher of topic news
// (process 0, reading its events from stdin) and a subscriber of it
// (process 1) with --http, and waits until both are in news's group. It
// returns the clients and the subscriber's HTTP address.
func pubsubRun(t *testing.T) (*launch.Cluster, string) {
	t.Helper()
	dir := t.TempDir()
	keep := func(c *launch.Cluster) {
		t.Cleanup(func() {
			c.Close()
			if t.Failed() {
				launchtest.Keep(t, c.Dir())
			}
		})
	}
	d, err := launch.Start(launch.Config{Binary: binary, N: 3, Dir: dir, Args: func(i int, addrs []string) []string {
		return []string{"directory", "--id", strconv.Itoa(i), "--peers", strings.Join(addrs, ","),
			"--data", filepath.Join(dir, "data", strconv.Itoa(i)), "--log-dir", dir, "--move-spacing", "-1"}
	}})
	if err != nil {
		t.Fatal(err)
	}
	keep(d)
	if err := d.StartAll(); err != nil {
		t.Fatal(err)
	}
	web, err := launch.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	cdir := filepath.Join(dir, "clients")
	c, err := launch.Start(launch.Config{Binary: binary, N: 2, Dir: cdir, Stdin: true, KeyFile: filepath.Join(dir, launch.KeyFileName),
		Args: func(i int, addrs []string) []string {
			common := []string{"--directory", strings.Join(d.Addrs(), ","), "--topic", "news", "--listen", addrs[i], "--log-dir", cdir}
			if i == 0 {
				return append([]string{"publish", "--name", "pub", "--qos", "total"}, common...)
			}
			return append([]string{"subscribe", "--name", "sub", "--http", web[0]}, common...)
		}})
	if err != nil {
		t.Fatal(err)
	}
	keep(c)
	for i := range 2 {
		if err := c.StartPeer(i); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// The subscriber finds the topic announced.
			if _, err := c.WaitEvent(ctx(t), 0, func(e eventlog.Event) bool { return e.Ev == eventlog.PSAnnounce }); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 2 {
		if _, err := c.WaitEvent(ctx(t), i, func(e eventlog.Event) bool {
			ms, _ := e.Fields[eventlog.FieldMembers].([]any)
			return e.Ev == eventlog.PSView && len(ms) == 2
		}); err != nil {
			t.Fatal(err)
		}
	}
	return c, web[0]
}

// TestRealPubSubDashboardInBrowser opens a subscriber's dashboard in
// headless Chromium, checks its topic, role and group, and sees the
// topic's delivered count rise, without a reload, as the publisher
// publishes; it saves screenshots.
func TestRealPubSubDashboardInBrowser(t *testing.T) {
	path := chromium(t)
	c, web := pubsubRun(t)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx(t), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1200, 800))...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	shot := func(name string) {
		t.Helper()
		b, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		p := filepath.Join(t.ArtifactDir(), name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
	row := `#ps-topics tr[data-topic="news"]`
	if err := chromedp.Do(browser,
		chromedp.Navigate("http://"+web+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#live.on`)),
		chromedp.WaitVisible(chromedp.CSS(row+`[data-delivered="0"]`)),
	); err != nil {
		t.Fatalf("opening the subscriber's dashboard: %v", err)
	}
	cells, err := chromedp.Run(browser, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('`+row+` td')).map(td => td.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) < 4 || cells[0] != "news" || cells[1] != "subscriber" || cells[2] != "total" || !strings.HasPrefix(cells[3], "g") {
		t.Fatalf("news's row reads %q: want news, subscriber, total and its group", cells)
	}
	if _, err := chromedp.Run(browser, chromedp.Evaluate[bool](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	shot("pubsub-before.png")
	sent := 0
	for _, n := range []int{3, 4} {
		for range n {
			if err := c.Write(0, fmt.Sprintf("event %d", sent)); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		start := time.Now()
		if err := chromedp.Do(browser, chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`%s[data-delivered="%d"]`, row, sent)))); err != nil {
			t.Fatalf("the dashboard never showed %d delivered: %v", sent, err)
		}
		t.Logf("the dashboard showed %d delivered %v after they were written", sent, time.Since(start).Round(time.Millisecond))
	}
	shot("pubsub-after.png")
	got, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(row+` td.delivered`)))
	if err != nil || got != strconv.Itoa(sent) {
		t.Errorf("the delivered cell reads %q (%v), want %d", got, err, sent)
	}
	notReloaded, err := chromedp.Run(browser, chromedp.Evaluate[bool](`window.notReloaded === true`))
	if err != nil {
		t.Fatal(err)
	}
	if !notReloaded {
		t.Error("the page was reloaded")
	}
}
