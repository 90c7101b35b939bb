package demo

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/drover-dev/drover/internal/gate"
	"github.com/drover-dev/drover/internal/gate/localprom"
)

// The demo's metrics: every simulated node exports, as a real service
// behind a Prometheus scrape would,
//
//	http_request_duration_seconds_p99{job="demo", instance="<node>"}  gauge, ~300 ms
//	http_requests_total{job="demo", instance="<node>", code="200"|"500"}  counter, 100/s
//	up{job="demo", instance="<node>"}  1
//
// A node the change hurts answers 38% slower and fails 8% of requests
// (0.1% when healthy). The scraper appends them every scrapeInterval to
// the embedded Prometheus, which the server's wave gates query through
// the production evaluator: the plan's PromQL, rendered by the gate
// templates, run by Prometheus's engine, judged by the gate's mode.
const (
	scrapeInterval = 250 * time.Millisecond
	// gateStep is the demo's WithStep (statistical gates' resolution
	// and .Window), gateMinWindow its WithMinWindow: eight scrapes.
	gateStep      = time.Second
	gateMinWindow = 2 * time.Second
	// lookback is the engine's lookback delta: a node's series is
	// stale after 40 missed scrapes.
	lookback  = 10 * time.Second
	requests  = 100.0 // per second per node
	latency   = 0.300 // seconds, p99 of a healthy node
	hurtSlow  = 1.38
	errsOK    = 0.001
	errsHurt  = 0.08
	noiseFrac = 0.05
)

// metrics is the embedded Prometheus and the gate evaluator over it.
type metrics struct {
	prom  *localprom.Prometheus
	gates *gate.Prometheus
}

func newMetrics(log *slog.Logger) (*metrics, error) {
	prom := localprom.New(localprom.Options{Lookback: lookback, Logger: log})
	ev, err := gate.NewEvaluator("the demo's embedded Prometheus", prom,
		gate.WithStep(gateStep), gate.WithMinWindow(gateMinWindow), gate.WithTimeout(5*time.Second),
		gate.WithLogger(log.With("component", "gates")))
	if err != nil {
		return nil, err
	}
	return &metrics{prom: prom, gates: ev}, nil
}

// scrape appends every node's metrics every scrapeInterval until ctx
// ends. The noise is seeded, so a run's numbers are reproducible.
func (m *metrics) scrape(ctx context.Context, f *simFleet, log *slog.Logger) {
	rng := rand.New(rand.NewPCG(7, 7))
	ok := make([]float64, len(f.list))
	bad := make([]float64, len(f.list))
	tick := time.NewTicker(scrapeInterval)
	defer tick.Stop()
	for {
		now := time.Now()
		samples := make([]localprom.Sample, 0, 4*len(f.list))
		for i, n := range f.list {
			slow, errs := 1.0, errsOK
			if !n.state.Healthy() {
				slow, errs = hurtSlow, errsHurt
			}
			reqs := requests * scrapeInterval.Seconds()
			ok[i] += reqs * (1 - errs)
			bad[i] += reqs * errs
			p99 := latency * slow * math.Exp(noiseFrac*rng.NormFloat64())
			id := n.node.ID
			samples = append(samples,
				localprom.Sample{Labels: map[string]string{"__name__": "http_request_duration_seconds_p99", "job": "demo", "instance": id}, Value: p99},
				localprom.Sample{Labels: map[string]string{"__name__": "http_requests_total", "job": "demo", "instance": id, "code": "200"}, Value: ok[i]},
				localprom.Sample{Labels: map[string]string{"__name__": "http_requests_total", "job": "demo", "instance": id, "code": "500"}, Value: bad[i]},
				localprom.Sample{Labels: map[string]string{"__name__": "up", "job": "demo", "instance": id}, Value: 1},
			)
		}
		if err := m.prom.Append(now, samples); err != nil {
			log.Error("demo metrics: append", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
