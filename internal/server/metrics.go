package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drover-dev/drover/internal/engine"
)

// metrics are the server's Prometheus metrics, registered on the registry
// passed to New (never the global one).
type metrics struct {
	reports         *prometheus.CounterVec
	starts          prometheus.Counter
	rollbacks       prometheus.Counter
	conflicts       prometheus.Counter
	decideLatency   prometheus.Histogram
	dispatchLatency prometheus.Histogram
	apiLatency      *prometheus.HistogramVec
	agents          prometheus.Gauge
	stepDuration    prometheus.Histogram
	gateEvals       *prometheus.CounterVec
	leader          prometheus.Gauge
	preflights      *prometheus.CounterVec
	preflightTook   prometheus.Histogram
	routes          []string // every route of the API and the agent channel (Server.handle), for the OpenAPI sync test
}

func newMetrics(reg *prometheus.Registry) *metrics {
	lat := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m := &metrics{
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_node_step_reports_total",
			Help: "Agent step reports by reported phase."}, []string{"phase"}),
		starts:    prometheus.NewCounter(prometheus.CounterOpts{Name: "drover_node_steps_started_total", Help: "Apply steps dispatched."}),
		rollbacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "drover_node_rollbacks_started_total", Help: "Rollback steps dispatched."}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "drover_scheduler_conflicts_total",
			Help: "Decisions re-taken because the state moved between load and commit."}),
		decideLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "drover_decide_seconds",
			Help: "Time engine.Decide took.", Buckets: lat}),
		dispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "drover_dispatch_commit_seconds",
			Help: "Time to commit a decision and its dispatches.", Buckets: lat}),
		apiLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "drover_api_request_seconds",
			Help: "REST API latency by route.", Buckets: lat}, []string{"route"}),
		agents: prometheus.NewGauge(prometheus.GaugeOpts{Name: "drover_agents_connected", Help: "Agents holding a poll on this server."}),
		stepDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "drover_node_step_duration_seconds",
			Help: "From start decided to node succeeded.", Buckets: prometheus.ExponentialBuckets(1, 2, 14)}),
		gateEvals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_gate_evaluations_total",
			Help: "Wave-gate evaluations by result."}, []string{"result"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "drover_leader", Help: "1 while this server schedules."}),
		preflights: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_node_preflights_total",
			Help: "Node pre-flight answers by result (passed, failed, unavailable), the agents' and the server's own."}, []string{"result"}),
		preflightTook: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "drover_node_preflight_seconds",
			Help: "How long an agent's node pre-flight took on its node.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
	}
	for _, v := range []engine.Verdict{engine.Pass, engine.Fail, engine.Inconclusive} {
		m.gateEvals.WithLabelValues(string(v)) // every result shows, 0 before the first gate runs
	}
	reg.MustRegister(m.reports, m.starts, m.rollbacks, m.conflicts, m.decideLatency, m.dispatchLatency,
		m.apiLatency, m.agents, m.stepDuration, m.gateEvals, m.leader,
		m.preflights, m.preflightTook, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// pathMetrics serves the Prometheus metrics: on the API listener, or on
// Config.Metrics.Listen alone.
const pathMetrics = "GET /metrics"

// metricsHandler serves the registry, requiring an API token of any role
// (or an agent's certificate) unless Config.Metrics.Auth is "none".
// Failures count like every failed authentication (authlimit.go).
func (s *Server) metricsHandler() http.HandlerFunc {
	h := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Metrics.Auth != MetricsAuthNone {
			if _, err := s.authenticateLimited(w, r); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		h.ServeHTTP(w, r)
	}
}

// serveMetrics serves /metrics alone on Config.Metrics.Listen (plain
// HTTP) until ctx ends; ready gets the bound address.
func (s *Server) serveMetrics(ctx context.Context, ready func(addr string)) (func(), error) {
	ln, err := net.Listen("tcp", s.cfg.Metrics.Listen)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", s.cfg.Metrics.Listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle(pathMetrics, s.metricsHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener failed", "addr", ln.Addr().String(), "err", err)
		}
	}()
	s.log.Info("metrics listening", "addr", ln.Addr().String(), "auth", orElse(s.cfg.Metrics.Auth, MetricsAuthToken))
	if ready != nil {
		ready(ln.Addr().String())
	}
	return func() {
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}, nil
}
