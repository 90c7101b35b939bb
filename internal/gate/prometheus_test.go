package gate

import (
	"context"
	"github.com/drover-dev/drover/internal/gate/gatetest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// Scenarios against a real Prometheus. Each starts its own Prometheus
// and exporters and runs in parallel with the others; gate intervals are
// seconds instead of minutes, everything else is as in production.

const testInterval = 3 * time.Second

func f64(v float64) *float64 { return &v }

func testGate(name string, mode plan.GateMode, query string) plan.WaveGate {
	return plan.WaveGate{
		Name: name, Mode: mode, Query: query,
		Interval: plan.Duration(testInterval), Count: 3, FailureLimit: 1,
		Inconclusive: "fail", Direction: "higher-is-worse",
	}
}

func statGate(name, query string) plan.WaveGate {
	g := testGate(name, plan.ModeStatistical, query)
	g.MinSamples, g.Alpha, g.MinEffect = 20, DefaultAlpha, "10%"
	return g
}

// tracked evaluates req's gate as the server's scheduler does (Due,
// Evaluate, Observe) until the Tracker reaches a verdict, and returns
// it with when it was reached and every evaluation made.
func tracked(t *testing.T, ev Evaluator, req Request, timeout time.Duration) (engine.Verdict, string, time.Time, []Evaluation) {
	t.Helper()
	var tr Tracker
	var evs []Evaluation
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		now := time.Now()
		if tr.Due("r/w/"+req.Gate.Name, req.Gate, req.BakeFrom, now) {
			req.Now = now
			e := ev.Evaluate(context.Background(), req)
			evs = append(evs, e)
			t.Logf("+%4.1fs %s: %s", now.Sub(req.BakeFrom).Seconds(), e.Verdict, e.Reason)
			if v, reason, ok := tr.Observe("r/w/"+req.Gate.Name, req.Gate, e, now); ok {
				return v, reason, now, evs
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("gate %s reached no verdict in %s", req.Gate.Name, timeout)
	return "", "", time.Time{}, nil
}

// evalUntil evaluates req every 300ms until done accepts the evaluation.
func evalUntil(t *testing.T, ev Evaluator, req Request, timeout time.Duration, what string, done func(Evaluation) bool) Evaluation {
	t.Helper()
	var last Evaluation
	gatetest.Eventually(t, timeout, what, func() (bool, string) {
		req.Now = time.Now()
		last = ev.Evaluate(context.Background(), req)
		return done(last), string(last.Verdict) + ": " + last.Reason
	})
	return last
}

func hasEnoughData(e Evaluation) bool {
	return !strings.Contains(e.Reason, "no series") && !strings.Contains(e.Reason, "too few samples") && !strings.Contains(e.Reason, "NaN")
}

// warmUp waits until the gate sees data for both sides.
func warmUp(t *testing.T, ev Evaluator, req Request) {
	t.Helper()
	evalUntil(t, ev, req, 20*time.Second, "data for "+req.Gate.Name, hasEnoughData)
}

// Scenario 1: a healthy canary passes the delta, threshold and
// statistical gates.
func TestPrometheusHealthyCanaryPasses(t *testing.T) {
	t.Parallel()
	can := gatetest.StartExporters(t, "can", "gen1", 4, 100)
	base := gatetest.StartExporters(t, "base", "gen1", 4, 200)
	ps := gatetest.StartPrometheus(t, gatetest.AddrsOf(can, base), "")
	p := newTestEvaluator(t, ps)
	req := Request{Rollout: "r", Wave: "canary", Nodes: gatetest.NodesOf(can), Baseline: gatetest.NodesOf(base)}

	req.Gate = testGate("p99-latency", plan.ModeDelta, p99Query)
	req.Gate.MaxIncrease = "20%"
	warmUp(t, p, req)
	req.BakeFrom = time.Now()

	v, reason, _, _ := tracked(t, p, req, 30*time.Second)
	if v != engine.Pass || !strings.Contains(reason, "(3/3 passing evaluations)") {
		t.Fatalf("delta gate on a healthy canary: %s: %s", v, reason)
	}

	thr := req
	thr.Gate = testGate("error-ratio", plan.ModeThreshold, errRatioQuery)
	thr.Gate.Max = f64(0.02)
	if e := p.Evaluate(context.Background(), withNow(thr)); e.Verdict != engine.Pass {
		t.Fatalf("threshold gate on a healthy canary: %s: %s", e.Verdict, e.Reason)
	}

	// The default instance mapping through WithInstance, with the
	// plain `{{ .Nodes | regex }}` form of the query.
	byLabel := newTestEvaluator(t, ps, WithInstance(func(n *fleet.Node) string { return n.Labels["instance"] }))
	plain := req
	plain.Gate.Query = strings.ReplaceAll(p99Query, `.Nodes | label "instance" | regex`, `.Nodes | regex`)
	if e := byLabel.Evaluate(context.Background(), withNow(plain)); e.Verdict != engine.Pass {
		t.Fatalf("delta gate through WithInstance: %s: %s", e.Verdict, e.Reason)
	}

	st := req
	st.Gate = statGate("p99-latency-u", p99PerNodeQuery)
	e := evalUntil(t, p, st, 40*time.Second, "20 samples per side", hasEnoughData)
	t.Logf("statistical: %s", e.Reason)
	if e.Verdict != engine.Pass || len(e.Canary) < 20 || len(e.Baseline) < 20 {
		t.Fatalf("statistical gate on a healthy canary: %s: %s", e.Verdict, e.Reason)
	}
}

func withNow(r Request) Request {
	r.Now = time.Now()
	return r
}

// Scenario 2: the canary's p99 latency rises by 40%. The delta gate
// fails within two evaluation intervals, naming the metric, both values
// and the delta; the before-after and statistical gates fail too.
func TestPrometheusLatencyRegressionFails(t *testing.T) {
	t.Parallel()
	can := gatetest.StartExporters(t, "can", "gen1", 4, 300)
	base := gatetest.StartExporters(t, "base", "gen1", 4, 400)
	ps := gatetest.StartPrometheus(t, gatetest.AddrsOf(can, base), "")
	p := newTestEvaluator(t, ps)
	req := Request{Rollout: "r", Wave: "canary", Nodes: gatetest.NodesOf(can), Baseline: gatetest.NodesOf(base)}
	req.Gate = testGate("p99-latency", plan.ModeDelta, p99Query)
	req.Gate.MaxIncrease = "20%"
	warmUp(t, p, req)
	// Let the before-after gate's "before" window fill with healthy data.
	time.Sleep(testInterval)

	for _, e := range can {
		e.Set(0.140, 0.005) // +40% latency, same errors
	}
	changed := time.Now()
	req.BakeFrom, req.StartedAt = changed, changed

	v, reason, at, evs := tracked(t, p, req, 30*time.Second)
	if v != engine.Fail {
		t.Fatalf("delta gate after +40%% latency: %s: %s", v, reason)
	}
	if took := at.Sub(changed); took > 2*testInterval+time.Second {
		t.Errorf("failed %.1fs after the change, after %d evaluations; want within two intervals (%s)", took.Seconds(), len(evs), 2*testInterval)
	}
	m := regexp.MustCompile(`^p99-latency ([0-9.]+) ms vs baseline ([0-9.]+) ms \(\+([0-9.]+)%\), allowed \+20%: Fail`).FindStringSubmatch(reason)
	if m == nil {
		t.Fatalf("reason %q does not name the metric, both values and the delta", reason)
	}
	c, _ := strconv.ParseFloat(m[1], 64)
	b, _ := strconv.ParseFloat(m[2], 64)
	d, _ := strconv.ParseFloat(m[3], 64)
	if d < 25 || d > 60 || c <= b {
		t.Errorf("delta %.1f%% (%.0f vs %.0f ms), want about +40%%", d, c, b)
	}

	ba := req
	ba.Gate = testGate("p99-before-after", plan.ModeBeforeAfter, p99Query)
	ba.Gate.MaxIncrease = "20%"
	e := p.Evaluate(context.Background(), withNow(ba))
	if e.Verdict != engine.Fail || !strings.Contains(e.Reason, "vs before") {
		t.Errorf("before-after gate: %s: %s", e.Verdict, e.Reason)
	}

	st := req
	st.Gate = statGate("p99-latency-u", p99PerNodeQuery)
	e = evalUntil(t, p, st, 40*time.Second, "20 samples per side", hasEnoughData)
	if e.Verdict != engine.Fail || !regexp.MustCompile(`median .* vs baseline .* p99 .* U-test U=\d+ p=\S+ .* over \d+ samples .*: Fail$`).MatchString(e.Reason) {
		t.Fatalf("statistical gate: %s: %s", e.Verdict, e.Reason)
	}
	t.Logf("statistical: %s", e.Reason)
}

// sameClassBaseline is how the server picks a baseline: unchanged nodes
// of the changed nodes' os family and hardware class.
func sameClassBaseline(changed, all []*fleet.Node) []*fleet.Node {
	kinds := map[[2]string]bool{}
	for _, n := range changed {
		kinds[[2]string{n.Facts.OS.Family, n.Facts.Hardware.Class}] = true
	}
	var out []*fleet.Node
	for _, n := range all {
		if !slices.Contains(changed, n) && kinds[[2]string{n.Facts.OS.Family, n.Facts.Hardware.Class}] {
			out = append(out, n)
		}
	}
	return out
}

// Scenario 3: errors rise only on one hardware class (gen2: 0.5% ->
// 2%). The fleet's usual level is set by gen1 at 4%, so a threshold at
// 5% passes gen1 and misses the regression; the delta gate against a
// baseline of the same class catches it.
func TestPrometheusErrorRiseOnOneHardwareClass(t *testing.T) {
	t.Parallel()
	can := gatetest.StartExporters(t, "gen2-can", "gen2", 2, 500)
	gen2 := gatetest.StartExporters(t, "gen2", "gen2", 2, 600)
	gen1 := gatetest.StartExporters(t, "gen1", "gen1", 2, 700)
	for _, e := range gen1 {
		e.Set(0.100, 0.04)
	}
	all := gatetest.NodesOf(can, gen2, gen1)
	ps := gatetest.StartPrometheus(t, gatetest.AddrsOf(can, gen2, gen1), "")
	p := newTestEvaluator(t, ps)
	changed := gatetest.NodesOf(can)
	baseline := sameClassBaseline(changed, all)
	if len(baseline) != 2 || baseline[0].Facts.Hardware.Class != "gen2" {
		t.Fatalf("baseline %v", baseline)
	}

	threshold := testGate("error-ratio-max", plan.ModeThreshold, errRatioQuery)
	threshold.Max = f64(0.05)
	delta := testGate("error-ratio", plan.ModeDelta, errRatioQuery)
	delta.MaxIncrease = "50%"

	warmUp(t, p, Request{Gate: delta, Nodes: changed, Baseline: baseline})
	// The threshold is at the fleet's usual level: gen1 passes it.
	if e := evalUntil(t, p, Request{Gate: threshold, Nodes: gatetest.NodesOf(gen1)}, 20*time.Second, "gen1 data", hasEnoughData); e.Verdict != engine.Pass {
		t.Fatalf("threshold on gen1 at its usual 4%%: %s: %s", e.Verdict, e.Reason)
	}

	for _, e := range can {
		e.Set(0.100, 0.02)
	}
	changedAt := time.Now()
	time.Sleep(testInterval + time.Second) // one full window after the change

	thr := p.Evaluate(context.Background(), withNow(Request{Gate: threshold, Nodes: changed, BakeFrom: changedAt}))
	del := p.Evaluate(context.Background(), withNow(Request{Gate: delta, Nodes: changed, Baseline: baseline, BakeFrom: changedAt}))
	t.Logf("threshold: %s", thr.Reason)
	t.Logf("delta: %s", del.Reason)
	if thr.Verdict != engine.Pass {
		t.Errorf("the absolute threshold was expected to miss the rise (that is the point): %s: %s", thr.Verdict, thr.Reason)
	}
	if del.Verdict != engine.Fail {
		t.Fatalf("the delta gate against gen2 missed the rise: %s: %s", del.Verdict, del.Reason)
	}
	if len(del.Canary) != 1 || len(del.Baseline) != 1 || del.Canary[0] < 0.015 || del.Baseline[0] > 0.008 {
		t.Errorf("compared %v with %v; want about 0.02 vs 0.005", del.Canary, del.Baseline)
	}
}

// Scenario 4: the canary's exporters disappear. Once their data has
// aged out of the window the gate fails with "no series", and it never
// passes again; onNoData: inconclusive makes it Inconclusive instead.
func TestPrometheusExporterDisappears(t *testing.T) {
	t.Parallel()
	can := gatetest.StartExporters(t, "can", "gen1", 2, 800)
	base := gatetest.StartExporters(t, "base", "gen1", 2, 900)
	ps := gatetest.StartPrometheus(t, gatetest.AddrsOf(can, base), "")
	p := newTestEvaluator(t, ps)
	req := Request{Nodes: gatetest.NodesOf(can), Baseline: gatetest.NodesOf(base)}
	req.Gate = testGate("p99-latency", plan.ModeDelta, p99Query)
	req.Gate.MaxIncrease = "20%"
	warmUp(t, p, req)
	if e := p.Evaluate(context.Background(), withNow(req)); e.Verdict != engine.Pass {
		t.Fatalf("before the exporters disappear: %s: %s", e.Verdict, e.Reason)
	}

	for _, e := range can {
		e.Stop()
	}
	gone := evalUntil(t, p, req, 20*time.Second, "no data after the exporters stopped", func(e Evaluation) bool {
		return e.Verdict != engine.Pass
	})
	if gone.Verdict != engine.Fail || !strings.Contains(gone.Reason, "query returned no series for the canary nodes") {
		t.Fatalf("after the exporters stopped: %s: %s", gone.Verdict, gone.Reason)
	}
	t.Logf("no data: %s", gone.Reason)

	// From now on it never passes, even under the Tracker, and
	// onNoData: inconclusive turns it into Inconclusive.
	var tr Tracker
	for i := range 6 {
		now := time.Now()
		e := p.Evaluate(context.Background(), withNow(req))
		if e.Verdict != engine.Fail {
			t.Fatalf("evaluation %d without data: %s: %s", i, e.Verdict, e.Reason)
		}
		if v, _, ok := tr.Observe("k", req.Gate, e, now); !ok || v != engine.Fail {
			t.Fatalf("tracker without data: %v %s", ok, v)
		}
		time.Sleep(300 * time.Millisecond)
	}
	inc := req
	inc.Gate.Inconclusive = "inconclusive"
	if e := p.Evaluate(context.Background(), withNow(inc)); e.Verdict != engine.Inconclusive || !strings.Contains(e.Reason, "no series") {
		t.Fatalf("onNoData inconclusive: %s: %s", e.Verdict, e.Reason)
	}
	st := req
	st.Gate = statGate("p99-latency-u", p99PerNodeQuery)
	st.BakeFrom = time.Now().Add(-time.Minute)
	if e := p.Evaluate(context.Background(), withNow(st)); e.Verdict == engine.Pass {
		t.Fatalf("statistical gate without canary data passed: %s", e.Reason)
	}
}

const alertRules = `groups:
  - name: drover-test
    interval: 1s
    rules:
      - alert: HighErrorRate
        expr: rate(http_requests_total{code="500"}[3s]) > 0.5
        labels:
          severity: page
`

const alertPlan = `apiVersion: drover.dev/v1
name: alert-block
target:
  selector: node.os.family == "debian"
change:
  actions:
    - package:
        packages: [{name: fwupd, version: "1.9.5"}]
waves:
  - name: all
limits:
  maxInFlight: 2
gates:
  wave:
    - name: errors
      mode: threshold
      query: 'sum(rate(http_requests_total{code="500"}[1m]))'
      max: 1
      blockingAlerts: ['severity="page"']
`

// Scenario 5: an alert fires during a wave. FiringAlerts reports it
// while it fires and not after it clears, and engine.Decide, fed those
// alerts as BlockingAlerts, starts nothing while it fires and starts
// nodes once it has cleared.
func TestPrometheusFiringAlertBlocksStarts(t *testing.T) {
	t.Parallel()
	nodes := gatetest.StartExporters(t, "n", "gen1", 2, 1000)
	for _, e := range nodes {
		e.Set(0.100, 0)
	}
	ps := gatetest.StartPrometheus(t, gatetest.AddrsOf(nodes), alertRules)
	p := newTestEvaluator(t, ps)

	pl, err := plan.Parse("plan.yaml", []byte(alertPlan))
	if err != nil {
		t.Fatal(err)
	}
	var matchers []string
	for _, g := range pl.Gates.Wave {
		matchers = append(matchers, g.AlertMatchers...)
	}
	a, err := engine.Assign(pl, gatetest.NodesOf(nodes), 1)
	if err != nil {
		t.Fatal(err)
	}
	// Every node has passed its pre-flight: the alerts alone decide.
	passed := &engine.PreflightStatus{AskedAt: time.Now().UTC().Add(-time.Minute), Results: map[string]engine.PreflightResult{}}
	for _, n := range a.Nodes {
		passed.Results[n.ID] = engine.PreflightResult{OK: true, At: passed.AskedAt}
	}
	decide := func(alerts []string) engine.Decision {
		return engine.Decide(engine.Input{
			RolloutID: "r1", Author: "alice", Plan: pl, State: engine.RolloutRunning,
			Nodes: a.Nodes, Waves: map[string]engine.WaveStatus{}, Preflight: passed,
			BlockingAlerts: alerts, Now: time.Now().UTC(), Seed: 1,
		})
	}
	firing := func() []string {
		got, err := p.FiringAlerts(context.Background(), matchers)
		if err != nil {
			t.Fatalf("FiringAlerts: %v", err)
		}
		return got
	}

	// Quiet: a few rule evaluations pass without an alert.
	time.Sleep(2 * time.Second)
	if got := firing(); len(got) != 0 {
		t.Fatalf("alerts before any errors: %v", got)
	}

	nodes[0].Set(0.100, 0.05) // 10 errors a second
	var got []string
	gatetest.Eventually(t, 20*time.Second, "HighErrorRate firing", func() (bool, string) {
		got = firing()
		return len(got) > 0, strings.Join(got, ", ")
	})
	want := `HighErrorRate{code="500", instance="` + nodes[0].Addr + `", job="node", severity="page"}`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("firing alerts %q, want [%s]", got, want)
	}
	d := decide(got)
	if len(d.Starts) != 0 {
		t.Fatalf("starts while %s fires: %+v", got[0], d.Starts)
	}
	if len(d.Waits) == 0 || !strings.Contains(d.Waits[0].Reason, "HighErrorRate") {
		t.Errorf("waits while firing: %+v", d.Waits)
	}

	nodes[0].Set(0.100, 0)
	gatetest.Eventually(t, 30*time.Second, "HighErrorRate cleared", func() (bool, string) {
		got = firing()
		return len(got) == 0, strings.Join(got, ", ")
	})
	if d := decide(got); len(d.Starts) == 0 {
		t.Fatalf("no starts after the alert cleared: waits %+v", d.Waits)
	}
}
