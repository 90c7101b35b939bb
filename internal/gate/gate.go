package gate

import (
	"context"
	"fmt"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// Request asks for one evaluation of one wave gate: the changed nodes of
// the wave against a baseline of unchanged ones.
type Request struct {
	Rollout  string
	Wave     string
	Gate     plan.WaveGate
	Nodes    []*fleet.Node // changed nodes of the wave
	Baseline []*fleet.Node // unchanged nodes to compare with (see Baseline); none: the same nodes before StartedAt
	BakeFrom time.Time     // when the wave's last node finished
	// StartedAt is when the wave's first node started (the wave's
	// WaveStatus.StartedAt): before-after gates evaluate their query at
	// this time for "before". Zero makes a before-after gate Fail (or
	// Inconclusive) rather than compare with a time the change may
	// already have touched.
	StartedAt time.Time
	Now       time.Time
}

// Evaluation is the verdict of one evaluation, with the numbers behind it
// in Reason. Missing data, too few samples or a query error is Fail, or
// Inconclusive when the gate's onNoData says so: never Pass.
type Evaluation struct {
	Verdict engine.Verdict
	Reason  string
	// Canary and Baseline hold the compared values, for charts.
	Canary   []float64
	Baseline []float64
	// Err is the query or transport error behind a non-Pass verdict
	// (nil otherwise), for errors.Is/As. A caller whose own context is
	// done (shutting down) should drop the evaluation rather than record
	// its Fail: the gate was not judged.
	Err error
}

// Evaluator evaluates wave gates and reports firing alerts.
type Evaluator interface {
	Evaluate(ctx context.Context, req Request) Evaluation
	// FiringAlerts returns the names of alerts that fire now and match
	// any of the matchers (PromQL label matchers like
	// `alertname="HighErrorRate"` or `severity="page"`).
	FiringAlerts(ctx context.Context, matchers []string) ([]string, error)
}

// Unconfigured is the evaluator of a server without Prometheus: every
// wave gate fails (no data is never a pass), and alert checks fail.
type Unconfigured struct{}

func (Unconfigured) Evaluate(_ context.Context, req Request) Evaluation {
	return Evaluation{Verdict: noData(req.Gate), Reason: fmt.Sprintf("gate %s: no Prometheus configured; no data is never a pass", req.Gate.Name)}
}

func (Unconfigured) FiringAlerts(context.Context, []string) ([]string, error) {
	return nil, fmt.Errorf("no Prometheus configured to check blocking alerts")
}

// noData is the verdict for missing data under the gate's onNoData.
func noData(g plan.WaveGate) engine.Verdict {
	if g.Inconclusive == "inconclusive" {
		return engine.Inconclusive
	}
	return engine.Fail
}

// Tracker turns single evaluations into gate verdicts under the gate's
// interval, initial delay, count (consecutive passes needed) and failure
// limit (consecutive failures that fail it). It holds state in memory; a
// restarted server starts counting again, which only delays a Pass.
type Tracker struct {
	// Step is the evaluator's step (see StepOf): a statistical gate's
	// first check is due one step after its initial delay, when its
	// sample range holds its first complete step. Zero: no wait.
	Step  time.Duration
	state map[string]*track
}

type track struct {
	last      time.Time
	passes    int
	failures  int
	lastFinal engine.Verdict
}

// Due reports whether the gate should be evaluated now for key (one
// rollout, wave and gate).
func (t *Tracker) Due(key string, g plan.WaveGate, bakeFrom, now time.Time) bool {
	if now.Before(firstCheck(g, bakeFrom, t.Step)) {
		return false
	}
	tr := t.get(key)
	return tr.last.IsZero() || !now.Before(tr.last.Add(g.Interval.D()))
}

func (t *Tracker) get(key string) *track {
	if t.state == nil {
		t.state = map[string]*track{}
	}
	tr := t.state[key]
	if tr == nil {
		tr = &track{}
		t.state[key] = tr
	}
	return tr
}

// firstCheck is when g's first check is due: after the initial delay,
// and for a statistical gate one step later, the time its sample range
// starts (see bakeRange), so that the first check has samples.
func firstCheck(g plan.WaveGate, bakeFrom time.Time, step time.Duration) time.Time {
	at := bakeFrom.Add(g.InitialDelay.D())
	if g.Mode == plan.ModeStatistical {
		at = at.Add(step)
	}
	return at
}

// StepOf is ev's step (WithStep) for a Tracker, zero for an evaluator
// without one.
func StepOf(ev Evaluator) time.Duration {
	if p, ok := ev.(*Prometheus); ok {
		return p.step
	}
	return 0
}

// Observe records an evaluation and returns the gate's verdict once one
// is reached: Pass after Count consecutive passes, Fail after FailureLimit
// consecutive failures, Inconclusive at once. ok is false while the gate
// is still counting.
func (t *Tracker) Observe(key string, g plan.WaveGate, ev Evaluation, now time.Time) (engine.Verdict, string, bool) {
	tr := t.get(key)
	tr.last = now
	count, limit := max(1, g.Count), max(1, g.FailureLimit)
	switch ev.Verdict {
	case engine.Pass:
		tr.passes++
		tr.failures = 0
		if tr.passes >= count {
			return engine.Pass, fmt.Sprintf("%s (%d/%d passing evaluations)", ev.Reason, tr.passes, count), true
		}
		return "", "", false
	case engine.Inconclusive:
		tr.passes = 0
		return engine.Inconclusive, ev.Reason, true
	default:
		tr.passes = 0
		tr.failures++
		if tr.failures >= limit {
			return engine.Fail, fmt.Sprintf("%s (%d consecutive failing evaluations)", ev.Reason, tr.failures), true
		}
		return "", "", false
	}
}

// Forget drops the state of keys with the given prefix (a finished
// rollout).
func (t *Tracker) Forget(prefix string) {
	for k := range t.state {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			delete(t.state, k)
		}
	}
}
