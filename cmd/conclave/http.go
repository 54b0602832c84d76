package main

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/conclave/conclave/dashboard"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/metrics"
)

// httpFlagHelp describes the --http flag of the daemons.
const httpFlagHelp = "address for the live dashboard (GET /), its status (GET /status, JSON) and Prometheus metrics (GET /metrics) (empty: none)"

// observers is what a daemon with --http feeds its events to: its
// metrics and its dashboard.
type observers struct {
	metrics *metrics.Metrics
	dash    *dashboard.Dashboard
}

// newObservers returns the metrics and dashboard of a daemon whose state
// cfg.State reads.
func newObservers(part metrics.Part, cfg dashboard.Config) *observers {
	return &observers{metrics: metrics.New(part), dash: dashboard.New(cfg)}
}

// observe is a runtime's OnEvent: it feeds the metrics and the dashboard,
// then next (if set).
func (o *observers) observe(next func(eventlog.Event)) func(eventlog.Event) {
	return func(e eventlog.Event) {
		o.metrics.Observe(e)
		o.dash.Observe(e)
		if next != nil {
			next(e)
		}
	}
}

// serve listens on addr and serves status (GET /status), the metrics and
// the dashboard until the returned function is called.
func (o *observers) serve(addr string, status http.Handler) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /status", status)
	mux.Handle("GET /metrics", o.metrics.Handler())
	mux.Handle("/", o.dash.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	return func() { srv.Close() }, nil
}
