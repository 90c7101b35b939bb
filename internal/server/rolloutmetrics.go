package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store"
)

// rolloutCollector exports the rollout metrics the essays ask for
// (duration, outcome, failure to halt, halt to rollback dispatched and
// complete, time to recovery, prediction error) and what rollouts are
// doing now. A scrape
// reads them from the store (store.RolloutTimes, set by the transactions
// that cause each moment), never from this process's memory: they
// survive restarts and every server sharing a database exports the same
// figures, whichever server heard the agent or led at the time. So
// aggregate them across servers with max, not sum.
type rolloutCollector struct {
	st    store.Store
	sched *scheduler
	log   *slog.Logger

	rollouts, nodes, uncovered                    *prometheus.Desc
	ended, duration, failToHalt, haltToDispatch   *prometheus.Desc
	haltToComplete, recovery, predictionError     *prometheus.Desc
	durationBuckets, haltBuckets, dispatchBuckets []float64
	completeBuckets, errorBuckets                 []float64
}

// terminalStates are the states a rollout ends in, the outcomes of
// drover_rollouts_ended_total.
var terminalStates = []engine.RolloutState{engine.RolloutSucceeded, engine.RolloutHalted, engine.RolloutFailed, engine.RolloutAborted}

func newRolloutCollector(st store.Store, sched *scheduler, log *slog.Logger) *rolloutCollector {
	d := prometheus.NewDesc
	return &rolloutCollector{st: st, sched: sched, log: log,
		rollouts: d("drover_rollouts", "Rollouts by current state.", []string{"state"}, nil),
		nodes: d("drover_rollout_nodes", "Target nodes of the rollouts not ended, by rollout and phase "+
			"(exposure: nodes that carry or are taking the change vs. pending).", []string{"rollout", "phase"}, nil),
		uncovered: d("drover_rollout_canary_uncovered_strata", "Strata (os family, hardware class, zone) of a rollout's target "+
			"that its canary wave does not cover; rollouts not ended whose plan this server has read.", []string{"rollout"}, nil),
		ended: d("drover_rollouts_ended_total", "Rollouts ended, by final state: succeeded; halted (stopped on a failure "+
			"and every rollback succeeded); failed (a rollback failed); aborted (by an operator). Success rate: "+
			"succeeded / all.", []string{"state"}, nil),
		duration: d("drover_rollout_duration_seconds", "From a rollout's start (leaving pending-approval) to its end, "+
			"by final state.", []string{"state"}, nil),
		failToHalt: d("drover_fail_to_halt_seconds", "From a rollout's first failure (a node failed, reported by its "+
			"agent or judged by the scheduler, or a wave gate failed) to its first halt after it (paused, rolling back "+
			"or ended).", nil, nil),
		haltToDispatch: d("drover_halt_to_rollback_dispatch_seconds", "From a rollout's halt (or an operator's rollback) "+
			"to its first rollback step dispatched.", nil, nil),
		haltToComplete: d("drover_halt_to_rollback_complete_seconds", "From a rollout's halt (or an operator's rollback) "+
			"to the report of its last rollback step, for rollouts whose rollbacks all succeeded (ended halted).", nil, nil),
		recovery: d("drover_recovery_seconds", "Time to recovery: from a rollout's first failure to every node of it "+
			"healthy or rolled back (it ended halted with every rollback done, or succeeded with no node failed, "+
			"quarantined or unknown). Mean time to recovery: _sum / _count. Rollouts that end otherwise after a "+
			"failure are not recovered and not counted.", nil, nil),
		predictionError: d("drover_rollout_prediction_error_ratio", "Absolute error of the makespan predicted at a "+
			"rollout's creation, |actual - predicted| / predicted, the actual makespan from its creation to its end; "+
			"rollouts that ended with a stored prediction (the error rollout get shows).", nil, nil),
		durationBuckets: []float64{30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 57600, 86400, 172800},
		haltBuckets:     prometheus.ExponentialBuckets(0.1, 2, 14),
		dispatchBuckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		completeBuckets: prometheus.ExponentialBuckets(1, 2, 16),
		errorBuckets:    []float64{0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5},
	}
}

func (c *rolloutCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rollouts, c.nodes, c.uncovered, c.ended, c.duration, c.failToHalt,
		c.haltToDispatch, c.haltToComplete, c.recovery, c.predictionError} {
		ch <- d
	}
}

// histogram accumulates observations for a const histogram.
type histogram struct {
	buckets []float64
	counts  map[float64]uint64
	n       uint64
	sum     float64
}

func newHistogram(buckets []float64) *histogram {
	return &histogram{buckets: buckets, counts: make(map[float64]uint64, len(buckets))}
}

// between observes to-from, when both happened (to before from counts 0:
// clocks of several servers).
func (h *histogram) between(from, to time.Time) {
	if from.IsZero() || to.IsZero() {
		return
	}
	h.observe(max(to.Sub(from).Seconds(), 0))
}

func (h *histogram) observe(v float64) {
	h.n++
	h.sum += v
	for _, b := range h.buckets {
		if v <= b {
			h.counts[b]++
		}
	}
}

func (h *histogram) metric(d *prometheus.Desc, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstHistogram(d, h.n, h.sum, h.counts, labels...)
}

func (c *rolloutCollector) Collect(ch chan<- prometheus.Metric) {
	// A scrape has no context of its own; the store must answer within
	// the scrape timeout Prometheus uses by default.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tls, err := c.st.ListRolloutTimes(ctx)
	if err != nil {
		c.log.Warn("rollout metrics: read rollout times", "err", err)
		return
	}
	states := map[engine.RolloutState]int{}
	durations := map[engine.RolloutState]*histogram{}
	for _, st := range terminalStates {
		durations[st] = newHistogram(c.durationBuckets)
	}
	failToHalt, toDispatch := newHistogram(c.haltBuckets), newHistogram(c.dispatchBuckets)
	toComplete, recovery := newHistogram(c.completeBuckets), newHistogram(c.completeBuckets)
	for _, tl := range tls {
		states[tl.State]++
		t := tl.Times
		if h := durations[tl.State]; h != nil && !t.Ended.IsZero() {
			h.between(t.Started, t.Ended)
		}
		failToHalt.between(t.FirstFailure, t.Halted)
		toDispatch.between(t.Halted, t.RollbackDispatched)
		toComplete.between(t.Halted, t.RollbackDone)
		recovery.between(t.FirstFailure, t.Recovered)
	}
	for _, st := range []engine.RolloutState{engine.RolloutPendingApproval, engine.RolloutRunning, engine.RolloutPaused,
		engine.RolloutRollingBack, engine.RolloutHalted, engine.RolloutSucceeded, engine.RolloutFailed, engine.RolloutAborted} {
		ch <- prometheus.MustNewConstMetric(c.rollouts, prometheus.GaugeValue, float64(states[st]), string(st))
	}
	for _, st := range terminalStates {
		ch <- prometheus.MustNewConstMetric(c.ended, prometheus.CounterValue, float64(states[st]), string(st))
		ch <- durations[st].metric(c.duration, string(st))
	}
	ch <- failToHalt.metric(c.failToHalt)
	ch <- toDispatch.metric(c.haltToDispatch)
	ch <- toComplete.metric(c.haltToComplete)
	ch <- recovery.metric(c.recovery)
	c.collectPredictions(ctx, ch)
	c.collectActive(ctx, ch)
}

// collectPredictions exports the prediction error of the rollouts that
// ended, from their stored predictions and times.
func (c *rolloutCollector) collectPredictions(ctx context.Context, ch chan<- prometheus.Metric) {
	ps, err := c.st.EndedPredictions(ctx)
	if err != nil {
		c.log.Warn("rollout metrics: read predictions", "err", err)
		return
	}
	h := newHistogram(c.errorBuckets)
	for _, p := range ps {
		var pred api.Prediction
		if err := json.Unmarshal(p.Prediction, &pred); err != nil {
			c.log.Warn("rollout metrics: stored prediction", "rollout", p.Rollout, "err", err)
			continue
		}
		if e := errorPercent(&pred.MakespanSeconds, p.Ended.Sub(p.CreatedAt).Seconds()); e != nil {
			h.observe(math.Abs(*e) / 100)
		}
	}
	ch <- h.metric(c.predictionError)
}

// collectActive exports the node phases and canary coverage of the
// rollouts not ended.
func (c *rolloutCollector) collectActive(ctx context.Context, ch chan<- prometheus.Metric) {
	phases, err := c.st.ActiveNodePhases(ctx)
	if err != nil {
		c.log.Warn("rollout metrics: read node phases", "err", err)
		return
	}
	for id, byPhase := range phases {
		for ph, n := range byPhase {
			ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(n), id, string(ph))
		}
	}
	for id, n := range c.sched.uncoveredStrata() {
		if _, active := phases[id]; !active {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.uncovered, prometheus.GaugeValue, float64(n), id)
	}
}

var _ prometheus.Collector = (*rolloutCollector)(nil)
