package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/gate"
	"github.com/drover-dev/drover/internal/plan"
)

// basePlan is a canary, a 25% wave and the rest, under zone caps.
const basePlan = `apiVersion: drover.dev/v1
name: sim-test
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - package:
        packages:
          - name: openssl
            version: 3.0.16
waves:
  - name: canary
    nodes: 6
    canary: true
    spread: [os.family, hardware.class, zone]
    failureBudget:
      maxFailures: 0
      onBreach: rollback-wave
  - name: early
    nodes: 25%
    failureBudget:
      maxFailures: 2
  - name: rest
    failureBudget:
      maxFailures: 5%
      onBreach: pause
limits:
  maxInFlight: 10
  caps:
    zone: 4
failureBudget:
  maxFailures: 10%
gates:
  bakeTime: 10m
  node:
    minHealthy: 2m
`

func mustPlan(t testing.TB, src string) *plan.Plan {
	t.Helper()
	p, err := plan.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse plan:\n%v", err)
	}
	return p
}

func genFleet(t testing.TB, n int) []*fleet.Node {
	t.Helper()
	mix, err := fleet.ParseMix("debian:30,ubuntu:20,rhel:20,suse:10,windows:10,macos:10")
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := fleet.Generate(fleet.GenSpec{N: n, Mix: mix, Zones: 3, HardwareClasses: 3}, 42)
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

func run(t testing.TB, cfg Config) *Result {
	t.Helper()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.InvariantViolations > 0 {
		t.Errorf("%d invariant violations:\n%s", res.InvariantViolations, Summary(res))
	}
	return res
}

func TestRunGoodChangeSucceeds(t *testing.T) {
	p := mustPlan(t, basePlan)
	res := run(t, Config{Plan: p, Nodes: genFleet(t, 300), Seed: 1})
	if !res.Succeeded() || res.Halted {
		t.Fatalf("state %s (%s), want succeeded\n%s", res.State, res.HaltReason, Summary(res))
	}
	if res.Nodes.Succeeded != 300 || res.Nodes.Touched != 300 {
		t.Errorf("nodes %+v, want all 300 succeeded", res.Nodes)
	}
	if res.PeakInFlight > 10 || res.PeakInFlight < 5 {
		t.Errorf("peak in flight %d, want at most 10 and near it", res.PeakInFlight)
	}
	for zone, peak := range res.PeakInFlightByDomain["zone"] {
		if peak > 4 {
			t.Errorf("zone %s peaked at %d, cap 4", zone, peak)
		}
	}
	if got := len(res.Waves); got != 3 {
		t.Fatalf("%d waves", got)
	}
	prevEnd := 0.0
	for _, w := range res.Waves {
		if w.StartedAtSeconds == nil || w.EndedAtSeconds == nil || w.State != engine.WaveSucceeded {
			t.Fatalf("wave %s: %+v", w.Name, w)
		}
		if *w.StartedAtSeconds < prevEnd {
			t.Errorf("wave %s started at %.0fs, before the previous ended at %.0fs", w.Name, *w.StartedAtSeconds, prevEnd)
		}
		prevEnd = *w.EndedAtSeconds
	}
	if res.MakespanSeconds < prevEnd {
		t.Errorf("makespan %.0fs before the last wave ended %.0fs", res.MakespanSeconds, prevEnd)
	}
}

func TestRunCanaryCatchesHardwareClass(t *testing.T) {
	p := mustPlan(t, basePlan)
	nodes := genFleet(t, 300)
	fail := Failure{Selector: `node.hardware.class == "gen3"`, Probability: 1}
	res := run(t, Config{Plan: p, Nodes: nodes, Seed: 1, Failures: []Failure{fail}})
	if !res.Halted || res.Succeeded() {
		t.Fatalf("state %s, want halted\n%s", res.State, Summary(res))
	}
	if res.NodesTouchedBeforeHalt > 6 {
		t.Errorf("%d nodes touched before the halt, want at most the 6 canaries", res.NodesTouchedBeforeHalt)
	}
	if len(res.HurtTouchedBeforeHalt) == 0 {
		t.Fatalf("no hurt node touched: the canary missed gen3\n%s", Summary(res))
	}
	byID := map[string]*fleet.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	for _, id := range res.HurtTouchedBeforeHalt {
		if c := byID[id].Facts.Hardware.Class; c != "gen3" {
			t.Errorf("hurt node %s is %s", id, c)
		}
	}
	if res.Nodes.Touched != res.Waves[0].Nodes {
		t.Errorf("touched %d nodes, canary has %d: nothing outside the canary may be touched", res.Nodes.Touched, res.Waves[0].Nodes)
	}
	for _, w := range res.Waves[1:] {
		if w.StartedAtSeconds != nil {
			t.Errorf("wave %s started", w.Name)
		}
	}
	if !strings.Contains(res.HaltReason, "canary") {
		t.Errorf("halt reason %q does not name the canary", res.HaltReason)
	}
	if res.Nodes.RolledBack == 0 {
		t.Errorf("nothing rolled back: %+v", res.Nodes)
	}
}

// The wave gate, not a node gate, catches a change that degrades nodes
// while their own probes pass: simulated here by a quarantining wave whose
// budget tolerates the node failures.
func TestWaveGateReason(t *testing.T) {
	p := mustPlan(t, strings.Replace(basePlan, "    failureBudget:\n      maxFailures: 0\n      onBreach: rollback-wave\n",
		"    failureBudget:\n      maxFailures: 3\n      quarantine: true\n", 1))
	fail := Failure{Selector: `node.hardware.class == "gen2"`, Probability: 1}
	res := run(t, Config{Plan: p, Nodes: genFleet(t, 120), Seed: 3, Failures: []Failure{fail}})
	if !res.Halted {
		t.Fatalf("not halted:\n%s", Summary(res))
	}
	found := false
	for _, e := range res.Events {
		if strings.Contains(e.Text, "wave gate health of wave canary: fail: simulated:") && strings.Contains(e.Text, "hardware.class=gen2") {
			found = true
		}
	}
	if !found {
		t.Errorf("no wave gate failure naming gen2 in the timeline:\n%s", Timeline(res))
	}
}

// A delta gate of the last wave has no unchanged node left to compare
// with: the dry run says it compares the wave with itself before the
// change, as a server does, where earlier waves had a baseline.
func TestWaveGateWithoutUnchangedNodes(t *testing.T) {
	p := mustPlan(t, basePlan+`  wave:
    - name: p99
      mode: delta
      maxIncrease: 20%
      query: 'max(up{instance=~"{{ .Nodes | regex }}"})'
`)
	res := run(t, Config{Plan: p, Nodes: genFleet(t, 120), Seed: 3})
	if res.Halted {
		t.Fatalf("halted:\n%s", Summary(res))
	}
	var before []string
	for _, e := range res.Events {
		if strings.Contains(e.Text, gate.NoUnchanged) {
			before = append(before, e.Text)
		}
	}
	want := "wave gate p99 of wave rest: " + gate.NoUnchanged
	if len(before) != 1 || before[0] != want {
		t.Errorf("events about the fallback: %q, want only %q\n%s", before, want, Timeline(res))
	}
}

func TestRunDeterministic(t *testing.T) {
	p := mustPlan(t, basePlan)
	cfg := func() Config {
		return Config{Plan: p, Nodes: genFleet(t, 200), Seed: 9,
			StepDuration: Dist{Kind: DistLogNormal, A: 4 * time.Minute, Sigma: 0.4},
			Failures:     []Failure{{Selector: `node.os.family == "suse"`, Probability: 0.3, Kind: FailApply}}}
	}
	a, _ := json.Marshal(run(t, cfg()))
	b, _ := json.Marshal(run(t, cfg()))
	if string(a) != string(b) {
		t.Fatal("two runs with the same seed differ")
	}
	c := cfg()
	c.Seed = 10
	d, _ := json.Marshal(run(t, c))
	if string(a) == string(d) {
		t.Fatal("runs with different seeds are identical")
	}
}

func TestRunApprovalsAndWindows(t *testing.T) {
	src := basePlan + `approvals:
  start: 2
windows:
  definitions:
    nights:
      timeZone: Europe/Berlin
      spans:
        - days: [Mon, Tue, Wed, Thu, Fri]
          start: "22:00"
          duration: 6h
  default: nights
  cutoff: 1h
`
	p := mustPlan(t, src)
	res := run(t, Config{Plan: p, Nodes: genFleet(t, 100), Seed: 1})
	if !res.Succeeded() {
		t.Fatalf("state %s: %s\n%s", res.State, res.HaltReason, Summary(res))
	}
	if !slices.ContainsFunc(res.Notes, func(s string) bool { return strings.Contains(s, "auto-approved the start") }) {
		t.Errorf("notes %q do not mention the auto-approval", res.Notes)
	}
	// Nothing may start before the first window: Mon 22:00 Berlin = 21:00 UTC.
	first := *res.Waves[0].StartedAtSeconds
	if first < 0 || res.MakespanSeconds < 21*3600 {
		t.Errorf("makespan %.0fs, first wave at %.0fs: nodes started outside the window", res.MakespanSeconds, first)
	}
}

func TestRunErrors(t *testing.T) {
	p := mustPlan(t, basePlan)
	if _, err := Run(context.Background(), Config{Plan: p}); err == nil {
		t.Error("no nodes: want an error")
	}
	_, err := Run(context.Background(), Config{Plan: p, Nodes: genFleet(t, 10), Failures: []Failure{{Selector: "node.(", Probability: 1}}})
	if err == nil {
		t.Error("bad failure selector: want an error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Config{Plan: p, Nodes: genFleet(t, 50)}); err == nil {
		t.Error("cancelled context: want an error")
	}
}

func TestSummaryReadable(t *testing.T) {
	p := mustPlan(t, basePlan)
	res := run(t, Config{Plan: p, Nodes: genFleet(t, 60), Seed: 2,
		Failures: []Failure{{Selector: `node.hardware.class == "gen1"`, Probability: 1}}})
	s := Summary(res)
	for _, want := range []string{"rollout sim-test: halted", "WAVE", "canary", "ROLLED BACK", "invariants   0 violations", "by zone:"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	// Columns are aligned: every table line has the same length.
	var widths []int
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "  WAVE") || strings.HasPrefix(l, "  canary") || strings.HasPrefix(l, "  early") || strings.HasPrefix(l, "  rest") {
			widths = append(widths, len(strings.TrimRight(l, " ")))
		}
	}
	if len(widths) != 4 {
		t.Fatalf("table rows: %v\n%s", widths, s)
	}
	t.Log("\n" + s)
}

func BenchmarkRun(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			p := mustPlan(b, sixWavePlan)
			nodes := genFleet(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				// Live heap of the simulation itself (the fleet excluded),
				// sampled at every progress report.
				var ms runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms)
				base, peak := ms.HeapAlloc, ms.HeapAlloc
				sample := func(Progress) {
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapAlloc)
				}
				res, err := Run(context.Background(), Config{Plan: p, Nodes: nodes, Seed: 1, Progress: sample})
				if err != nil || !res.Succeeded() || res.InvariantViolations > 0 {
					b.Fatalf("run: %v %s %s", err, res.State, res.HaltReason)
				}
				b.ReportMetric(float64(res.Stats.Decisions), "decisions")
				b.ReportMetric(res.MakespanSeconds/3600, "virtual-h")
				b.ReportMetric(float64(peak-base)/float64(n), "heap-B/node")
			}
		})
	}
}

// sixWavePlan is the benchmark plan: a canary, a 1% wave, then a ramp.
const sixWavePlan = `apiVersion: drover.dev/v1
name: bench
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - package:
        packages:
          - name: openssl
            version: 3.0.16
waves:
  - name: canary
    nodes: 10
    canary: true
  - name: pilot
    nodes: 1%
    failureBudget: {maxFailures: 1%}
  - name: fleet
    ramp: ["10%", "30%", "60%", "100%"]
    failureBudget: {maxFailures: 2%}
limits:
  maxInFlight: 10%
  caps:
    zone: 40%
failureBudget:
  maxFailures: 2%
gates:
  bakeTime: 10m
  node:
    minHealthy: 2m
`

// TestInterruptedSteps: steps interrupted on every attempt are retried
// once and then fail (onInterrupted: retry, the default), breaching the
// canary's budget; with onInterrupted: fail they fail at the first
// interruption. The checker allows exactly the retries.
func TestInterruptedSteps(t *testing.T) {
	nodes := genFleet(t, 20)
	text := func(policy string) string {
		return `apiVersion: drover.dev/v1
name: crashy
target:
  selector: node.os.family != ""
change:
  actions:
    - package:
        packages: [{name: openssl, version: "3.0.16-1"}]
waves:
  - name: canary
    nodes: 2
  - name: rest
limits:
  maxInFlight: 2
gates:
  onInterrupted: ` + policy + "\n"
	}
	run := func(t *testing.T, policy string, f Failure) *Result {
		p, err := plan.Parse("p.yaml", []byte(text(policy)))
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(context.Background(), Config{Plan: p, Nodes: nodes, Seed: 1, Failures: []Failure{f}})
		if err != nil {
			t.Fatal(err)
		}
		if res.InvariantViolations > 0 {
			t.Fatalf("violations: %v", res.Violations)
		}
		return res
	}
	always := Failure{Selector: `node.os.family != ""`, Probability: 1, Kind: FailInterrupt}
	res := run(t, "retry", always)
	if res.State != engine.RolloutHalted || res.Waves[0].Failed != 2 || !strings.Contains(res.HaltReason, "interrupted 2 times") {
		t.Fatalf("interrupted on every attempt, retry: %s %q, canary failed %d", res.State, res.HaltReason, res.Waves[0].Failed)
	}
	res = run(t, "fail", always)
	if res.State != engine.RolloutHalted || !strings.Contains(res.HaltReason, "onInterrupted: fail") {
		t.Fatalf("interrupted, fail: %s %q", res.State, res.HaltReason)
	}
}
