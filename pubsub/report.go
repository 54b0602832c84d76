package pubsub

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/eventlog"
)

// DefaultReportEvery is how often a client reports its counts to the
// directory when Config.ReportEvery is 0.
const DefaultReportEvery = 5 * time.Second

// StatsEvery is how often, at most, a client with a log logs the counts
// that changed (ps_stats), or less often when it reports them to the
// directory more often (Config.ReportEvery).
const StatsEvery = time.Second

// reporter sends the client's counts to the directory now and then, and
// logs them.
type reporter struct {
	start  time.Time        // when counting began
	stop   chan struct{}    // closed by stopReports; nil when the loop is off
	done   chan struct{}    // closed when the loop ends
	logged map[string]Stats // the counts logged last, by topic; of the loop, then of Close
}

// startReports starts counting time, and the loop that reports the
// counts unless Config.ReportEvery is negative and logs them if the
// client has a log.
func (c *Client) startReports() {
	c.rep.start = time.Now()
	if c.cfg.ReportEvery == 0 {
		c.cfg.ReportEvery = DefaultReportEvery
	}
	every := c.cfg.ReportEvery
	if c.log != nil && (every < 0 || every > StatsEvery) {
		every = StatsEvery
	}
	if every < 0 {
		return
	}
	c.rep.stop, c.rep.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(c.rep.done)
		t := time.NewTicker(every)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-c.rep.stop:
				return
			case <-t.C:
			}
			c.logStats(false)
			if c.cfg.ReportEvery < 0 || time.Since(last) < c.cfg.ReportEvery-every/2 {
				continue
			}
			last = time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), max(c.cfg.ReportEvery, time.Second))
			c.Report(ctx) // a failed report is replaced by the next
			cancel()
		}
	}()
}

// stopReports ends the loop, sends the last report and logs the final
// counts.
func (c *Client) stopReports(ctx context.Context) {
	if c.rep.stop != nil {
		close(c.rep.stop)
		<-c.rep.done
		if c.cfg.ReportEvery > 0 {
			c.Report(ctx)
		}
	}
	c.logStats(true)
}

// logStats logs ps_stats for every topic whose counts changed since they
// were last logged, or, final, for every topic.
func (c *Client) logStats(final bool) {
	if c.log == nil {
		return
	}
	stats := c.Stats()
	if c.rep.logged == nil {
		c.rep.logged = map[string]Stats{}
	}
	for _, t := range slices.Sorted(maps.Keys(stats)) {
		s := stats[t]
		if !final && c.rep.logged[t] == s {
			continue
		}
		c.rep.logged[t] = s
		c.logEv(eventlog.PSStats, eventlog.FieldTopic, t, eventlog.FieldDelivered, s.Delivered,
			eventlog.FieldFiltered, s.Filtered, eventlog.FieldFinal, final)
	}
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
