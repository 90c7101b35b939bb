package localprom_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/gate"
	"github.com/drover-dev/drover/internal/gate/localprom"
	"github.com/drover-dev/drover/internal/plan"
)

// t0 is when the fixture's samples begin; every query names its time,
// so nothing depends on the clock.
var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// fixture holds 4 canary nodes (c1..c4) and 6 baseline nodes (b1..b6)
// scraped every second for 3 minutes. From t0+60s the canary is 38%
// slower (p99 300 ms → 414 ms) and fails 8% of requests instead of 0.1%.
func fixture(t *testing.T) (*localprom.Prometheus, []*fleet.Node, []*fleet.Node) {
	t.Helper()
	p := localprom.New(localprom.Options{})
	var can, base []*fleet.Node
	for i := range 4 {
		can = append(can, &fleet.Node{ID: fmt.Sprintf("c%d", i+1)})
	}
	for i := range 6 {
		base = append(base, &fleet.Node{ID: fmt.Sprintf("b%d", i+1)})
	}
	ok, bad := map[string]float64{}, map[string]float64{}
	for s := range 180 {
		var samples []localprom.Sample
		for i, n := range append(append([]*fleet.Node{}, can...), base...) {
			hurt := i < len(can) && s >= 60
			slow, errs := 1.0, 0.001
			if hurt {
				slow, errs = 1.38, 0.08
			}
			ok[n.ID] += 100 * (1 - errs)
			bad[n.ID] += 100 * errs
			noise := 1 + 0.03*math.Sin(float64(7*s+13*i)) // deterministic spread
			samples = append(samples,
				localprom.Sample{Labels: map[string]string{"__name__": "p99_seconds", "instance": n.ID}, Value: 0.3 * slow * noise},
				localprom.Sample{Labels: map[string]string{"__name__": "requests_total", "instance": n.ID, "code": "200"}, Value: ok[n.ID]},
				localprom.Sample{Labels: map[string]string{"__name__": "requests_total", "instance": n.ID, "code": "500"}, Value: bad[n.ID]},
			)
		}
		if err := p.Append(t0.Add(time.Duration(s)*time.Second), samples); err != nil {
			t.Fatal(err)
		}
	}
	return p, can, base
}

func TestQueryResultsAsTheHTTPAPI(t *testing.T) {
	p, _, _ := fixture(t)
	ctx := context.Background()
	at := t0.Add(90 * time.Second)

	v, _, _, err := p.Query(ctx, `p99_seconds{instance=~"c.*"}`, at)
	if err != nil {
		t.Fatal(err)
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) != 4 || !vec[0].Timestamp.Time().Equal(at) || vec[0].Metric["instance"] == "" {
		t.Fatalf("instant vector: %#v", v)
	}
	if got := float64(vec[0].Value); math.Abs(got-0.414) > 0.02 {
		t.Errorf("canary p99 at +90s = %v, want ≈0.414", got)
	}

	v, _, _, err = p.Query(ctx, `scalar(count(p99_seconds))`, at)
	if s, ok := v.(*model.Scalar); err != nil || !ok || s.Value != 10 {
		t.Fatalf("scalar: %#v %v", v, err)
	}

	v, _, _, err = p.QueryRange(ctx, `p99_seconds{instance="b1"}`, v1.Range{Start: t0.Add(10 * time.Second), End: t0.Add(20 * time.Second), Step: 5 * time.Second})
	if m, ok := v.(model.Matrix); err != nil || !ok || len(m) != 1 || len(m[0].Values) != 3 {
		t.Fatalf("range matrix: %#v %v", v, err)
	}

	// Nothing selected: an empty vector, not an error (as Prometheus).
	v, _, _, err = p.Query(ctx, `p99_seconds{instance="nope"}`, at)
	if vec, ok := v.(model.Vector); err != nil || !ok || len(vec) != 0 {
		t.Fatalf("empty selection: %#v %v", v, err)
	}
}

// A query Prometheus would refuse is refused here with the HTTP API's
// error type, so gate reasons read the same as on a server.
func TestQueryErrorsAsTheHTTPAPI(t *testing.T) {
	p, _, _ := fixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, query string
		typ         v1.ErrorType
		msg         string
	}{
		{"syntax", `rate(p99_seconds[1m]`, v1.ErrBadData, "unclosed left parenthesis"},
		{"unknown function", `no_such_fn(p99_seconds)`, v1.ErrBadData, `unknown function with name "no_such_fn"`},
		{"range vector at top", `p99_seconds[1m] + 1`, v1.ErrBadData, "binary expression must contain only scalar and instant vector types"},
	} {
		_, _, _, err := p.Query(ctx, tc.query, t0.Add(time.Minute))
		var apiErr *v1.Error
		if !errors.As(err, &apiErr) || apiErr.Type != tc.typ || !strings.Contains(apiErr.Msg, tc.msg) {
			t.Errorf("%s: %q: got %v, want %s containing %q", tc.name, tc.query, err, tc.typ, tc.msg)
		}
	}
	_, _, _, err := p.QueryRange(ctx, `p99_seconds[1m]`, v1.Range{Start: t0, End: t0.Add(time.Minute), Step: time.Second})
	var apiErr *v1.Error
	if !errors.As(err, &apiErr) || apiErr.Type != v1.ErrBadData || !strings.Contains(apiErr.Msg, "invalid expression type") {
		t.Errorf("range query of a range vector: %v", err)
	}
}

// The production evaluator over the embedded engine: each mode judges as
// its own (a delta gate by its allowed increase, a statistical gate by
// the U-test), and a broken query or template fails the gate.
func TestEvaluatorOnEmbeddedEngine(t *testing.T) {
	p, can, base := fixture(t)
	ev, err := gate.NewEvaluator("embedded", p, gate.WithStep(5*time.Second), gate.WithMinWindow(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	f := func(v float64) *float64 { return &v }
	g := func(mode plan.GateMode, query string) plan.WaveGate {
		return plan.WaveGate{Name: "g", Mode: mode, Query: query, Interval: plan.Duration(10 * time.Second), MinSamples: 20}
	}
	const p99 = `avg_over_time(p99_seconds{instance=~"{{ .Nodes | regex }}"}[{{ .Window }}])`
	const errRatio = `sum(rate(requests_total{code="500", instance=~"{{ .Nodes | regex }}"}[{{ .Window }}])) / sum(rate(requests_total{instance=~"{{ .Nodes | regex }}"}[{{ .Window }}]))`
	delta := g(plan.ModeDelta, p99)
	delta.MaxIncrease = "20%"
	lenient := delta
	lenient.MaxIncrease = "50%"
	threshold := g(plan.ModeThreshold, errRatio)
	threshold.Max = f(0.01)
	stat := g(plan.ModeStatistical, `p99_seconds{instance=~"{{ .Nodes | regex }}"}`)
	before := g(plan.ModeBeforeAfter, p99)
	before.MaxIncrease = "20%"
	for _, tc := range []struct {
		name    string
		gate    plan.WaveGate
		at      time.Duration // Now, after t0
		verdict engine.Verdict
		reason  []string
		not     []string
	}{
		{"delta over its allowed increase", delta, 150 * time.Second, engine.Fail, []string{"+38", "allowed +20%"}, []string{"U-test"}},
		{"delta within its allowed increase", lenient, 150 * time.Second, engine.Pass, []string{"allowed +50%"}, []string{"U-test"}},
		{"delta before the change", delta, 50 * time.Second, engine.Pass, []string{"allowed +20%"}, nil},
		{"threshold on the error ratio", threshold, 150 * time.Second, engine.Fail, nil, []string{"U-test"}},
		{"statistical", stat, 170 * time.Second, engine.Fail, []string{"U-test"}, nil},
		{"before-after", before, 150 * time.Second, engine.Fail, []string{"before"}, nil},
		{"template calls an undefined function", g(plan.ModeThreshold, `p99_seconds{instance=~"{{ .Nodes | nosuch }}"}`), 150 * time.Second,
			engine.Fail, []string{`function "nosuch" not defined`}, nil},
		{"PromQL that does not parse", g(plan.ModeThreshold, `rate(p99_seconds{instance=~"{{ .Nodes | regex }}"}[1m]`), 150 * time.Second,
			engine.Fail, []string{"bad_data", "unclosed left parenthesis"}, nil},
		{"no series", g(plan.ModeThreshold, `nothing_here{instance=~"{{ .Nodes | regex }}"}`), 150 * time.Second,
			engine.Fail, []string{"no series"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gt := tc.gate
			if gt.Mode == plan.ModeThreshold && gt.Max == nil && gt.Min == nil {
				gt.Max = f(1)
			}
			e := ev.Evaluate(context.Background(), gate.Request{Rollout: "r", Wave: "w", Gate: gt, Nodes: can, Baseline: base,
				BakeFrom: t0.Add(60 * time.Second), StartedAt: t0.Add(55 * time.Second), Now: t0.Add(tc.at)})
			t.Logf("%s: %s", e.Verdict, e.Reason)
			if e.Verdict != tc.verdict {
				t.Errorf("verdict %s, want %s: %s", e.Verdict, tc.verdict, e.Reason)
			}
			for _, s := range tc.reason {
				if !strings.Contains(e.Reason, s) {
					t.Errorf("reason lacks %q: %s", s, e.Reason)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(e.Reason, s) {
					t.Errorf("reason has %q: %s", s, e.Reason)
				}
			}
		})
	}
}

// The last wave leaves no unchanged node: delta and statistical gates
// compare the wave's nodes with themselves before the change (the
// samples from before StartedAt), and say so; with neither, they fail.
func TestGatesWithoutUnchangedNodes(t *testing.T) {
	p, can, _ := fixture(t)
	ev, err := gate.NewEvaluator("embedded", p, gate.WithStep(5*time.Second), gate.WithMinWindow(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	g := func(mode plan.GateMode, query, maxIncrease string) plan.WaveGate {
		return plan.WaveGate{Name: "g", Mode: mode, Query: query, Interval: plan.Duration(10 * time.Second), MinSamples: 20, MaxIncrease: maxIncrease}
	}
	const p99 = `avg_over_time(p99_seconds{instance=~"{{ .Nodes | regex }}"}[{{ .Window }}])`
	const perStep = `p99_seconds{instance=~"{{ .Nodes | regex }}"}`
	for _, tc := range []struct {
		name    string
		gate    plan.WaveGate
		started time.Duration // StartedAt after t0; 0: unknown
		verdict engine.Verdict
		reason  []string
	}{
		{"delta over its allowed increase", g(plan.ModeDelta, p99, "20%"), 55 * time.Second, engine.Fail,
			[]string{"vs before", "+38", "allowed +20%: Fail (" + gate.NoUnchanged + ")"}},
		{"delta within its allowed increase", g(plan.ModeDelta, p99, "50%"), 55 * time.Second, engine.Pass,
			[]string{"vs before", "allowed +50%: Pass (" + gate.NoUnchanged + ")"}},
		{"statistical", g(plan.ModeStatistical, perStep, ""), 55 * time.Second, engine.Fail,
			[]string{"U-test", ": Fail (" + gate.NoUnchanged + ")"}},
		{"delta without the wave's start", g(plan.ModeDelta, p99, "20%"), 0, engine.Fail,
			[]string{"no baseline nodes to compare with, nor the same nodes before the change"}},
		{"statistical without the wave's start", g(plan.ModeStatistical, perStep, ""), 0, engine.Fail,
			[]string{"no baseline nodes to compare with, nor the same nodes before the change"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := gate.Request{Rollout: "r", Wave: "last", Gate: tc.gate, Nodes: can, BakeFrom: t0.Add(60 * time.Second), Now: t0.Add(170 * time.Second)}
			if tc.started != 0 {
				req.StartedAt = t0.Add(tc.started)
			}
			e := ev.Evaluate(context.Background(), req)
			t.Logf("%s: %s", e.Verdict, e.Reason)
			if e.Verdict != tc.verdict {
				t.Errorf("verdict %s, want %s: %s", e.Verdict, tc.verdict, e.Reason)
			}
			for _, s := range tc.reason {
				if !strings.Contains(e.Reason, s) {
					t.Errorf("reason lacks %q: %s", s, e.Reason)
				}
			}
		})
	}
}

// A statistical gate's first check, when the tracker first finds it
// due, has its samples: it is judged by the U-test rather than failed
// for too few samples.
func TestStatisticalFirstCheckHasSamples(t *testing.T) {
	p, can, base := fixture(t)
	ev, err := gate.NewEvaluator("embedded", p, gate.WithStep(5*time.Second), gate.WithMinWindow(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// One sample per node at the first check: 4 changed, 6 unchanged.
	g := plan.WaveGate{Name: "g", Mode: plan.ModeStatistical, Query: `p99_seconds{instance=~"{{ .Nodes | regex }}"}`,
		Interval: plan.Duration(10 * time.Second), InitialDelay: plan.Duration(10 * time.Second), MinSamples: len(can)}
	tr := gate.Tracker{Step: gate.StepOf(ev)}
	bake := t0.Add(60 * time.Second)
	now := bake
	for !tr.Due("k", g, bake, now) {
		now = now.Add(time.Second)
	}
	if want := bake.Add(15 * time.Second); !now.Equal(want) {
		t.Errorf("first due %s after the bake, want %s", now.Sub(bake), want.Sub(bake))
	}
	e := ev.Evaluate(context.Background(), gate.Request{Rollout: "r", Wave: "w", Gate: g, Nodes: can, Baseline: base,
		BakeFrom: bake, StartedAt: t0.Add(55 * time.Second), Now: now})
	t.Logf("%s: %s", e.Verdict, e.Reason)
	if strings.Contains(e.Reason, "too few samples") || !strings.Contains(e.Reason, "U-test") {
		t.Errorf("first check not judged: %s", e.Reason)
	}
	if len(e.Canary) != len(can) || len(e.Baseline) != len(base) {
		t.Errorf("samples %d canary, %d baseline; want one per node", len(e.Canary), len(e.Baseline))
	}
}
