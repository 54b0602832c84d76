package pubsub

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/conclave/conclave/directory"
)

// DefaultReportEvery is how often a client reports its counts to the
// directory when Config.ReportEvery is 0.
const DefaultReportEvery = 5 * time.Second

// reporter sends the client's counts to the directory now and then.
type reporter struct {
	start time.Time     // when counting began
	stop  chan struct{} // closed by stopReports; nil when reports are off
	done  chan struct{} // closed when the loop ends
}

// startReports starts counting time, and the periodic reports unless
// Config.ReportEvery is negative.
func (c *Client) startReports() {
	c.rep.start = time.Now()
	if c.cfg.ReportEvery == 0 {
		c.cfg.ReportEvery = DefaultReportEvery
	}
	if c.cfg.ReportEvery < 0 {
		return
	}
	c.rep.stop, c.rep.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(c.rep.done)
		t := time.NewTicker(c.cfg.ReportEvery)
		defer t.Stop()
		for {
			select {
			case <-c.rep.stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), max(c.cfg.ReportEvery, time.Second))
			c.Report(ctx) // a failed report is replaced by the next
			cancel()
		}
	}()
}

// stopReports ends the periodic reports and sends the last one.
func (c *Client) stopReports(ctx context.Context) {
	if c.rep.stop == nil {
		return
	}
	close(c.rep.stop)
	<-c.rep.done
	c.Report(ctx)
}

// Report sends the directory this client's counts of every topic (Stats)
// and the time they cover, since Connect; the directory keeps the latest
// report of each client, for the topics of groups the client publishes or
// subscribes in, and shows their sums (conclave topics). The client
// reports by itself every Config.ReportEvery and when it closes. With no
// counts yet, it sends nothing; with counts of more than
// directory.MaxReportTopics topics, it sends the first by name.
func (c *Client) Report(ctx context.Context) error {
	stats := c.Stats()
	if len(stats) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(stats))
	if len(names) > directory.MaxReportTopics {
		names = names[:directory.MaxReportTopics]
	}
	topics := make([]directory.TopicCount, len(names))
	for i, t := range names {
		topics[i] = directory.TopicCount{Topic: t, Delivered: stats[t].Delivered, Filtered: stats[t].Filtered}
	}
	return c.dir.Report(ctx, time.Since(c.rep.start), topics)
}
