package bench_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/bench"
	"github.com/drover-dev/drover/internal/cli"
)

// envAsDrover makes the test binary act as the drover binary: the
// benchmark starts its server and agents by running it again.
const envAsDrover = "DROVER_BENCH_TEST_AS_DROVER"

func TestMain(m *testing.M) {
	if os.Getenv(envAsDrover) == "1" {
		os.Exit(runDrover())
	}
	os.Exit(m.Run())
}

// runDrover runs drover's CLI with this process's arguments until
// SIGTERM, as cmd/drover does.
func runDrover() int {
	ctx, stop := signalContext()
	defer stop()
	return cli.Main(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
}

func self(t *testing.T) bench.Command {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return bench.Command{Path: exe, Env: []string{envAsDrover + "=1"}}
}

// TestRolloutSmall runs the rolling no-op at small scale: 20 real agent
// processes, 5 at a time. It checks that the rollout succeeds and the
// result is coherent, never how fast it was.
func TestRolloutSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := bench.RunRollout(ctx, bench.RolloutConfig{Drover: self(t), Agents: 20, Batch: 5, PollWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.State != "succeeded" || res.Agents != 20 || res.Batch != 5 || res.Rounds != 4 {
		t.Errorf("state %q agents %d batch %d rounds %d; want succeeded 20 5 4", res.State, res.Agents, res.Batch, res.Rounds)
	}
	if res.WallSeconds <= 0 || res.LimitSeconds <= 0 || res.MinStepMs <= 0 || res.AgentStartupSeconds <= 0 {
		t.Errorf("non-positive timings: %+v", res)
	}
	if res.StepP50Ms <= 0 || res.StepP99Ms < res.StepP50Ms {
		t.Errorf("step latency p50 %v p99 %v", res.StepP50Ms, res.StepP99Ms)
	}
	// Every node reports at least its verdict (a step this quick reports
	// nothing else: its running report is coalesced away), and the
	// agent's part and the scheduler's add up to less than the step.
	if res.Reports < 20 {
		t.Errorf("%v reports for 20 nodes", res.Reports)
	}
	if res.AgentP50Ms <= 0 || res.AgentP50Ms > res.StepP99Ms || res.JudgeP50Ms < 0 {
		t.Errorf("agent part p50 %v, scheduler part p50 %v, step p99 %v", res.AgentP50Ms, res.JudgeP50Ms, res.StepP99Ms)
	}
}

// TestAgentsSmall runs the many-agents benchmark at small scale.
func TestAgentsSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := bench.RunAgents(ctx, bench.AgentsConfig{Drover: self(t), Agents: 50, Heartbeat: time.Second,
		Duration: 2 * time.Second, APIDuration: time.Second, APIWorkers: 2, APIPause: 10 * time.Millisecond, SourceAddrs: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Polling < 1 || res.ServerRSSMiB <= 0 || res.PollsPerSecond <= 0 {
		t.Errorf("no polling measured: %+v", res)
	}
	if res.APIRolloutNodes != 50 || len(res.API) != 3 || res.APIErrors != 0 {
		t.Errorf("api load: %d rollout nodes, %d routes, %d errors", res.APIRolloutNodes, len(res.API), res.APIErrors)
	}
}

// TestRolloutStepProbe runs the physical-limit benchmark at small scale:
// 100 real agents, 10 at a time, each step taking 200 ms and each node
// soaking its probe for 100 ms. It checks that the result carries the
// ideal makespan, ceil(N/K) x (step + probe), and the ratio to it, and
// that progress shows every round; never how close the ratio is
// (BenchmarkRolloutStepProbe reports it).
func TestRolloutStepProbe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress strings.Builder
	res, err := bench.RunRollout(ctx, bench.RolloutConfig{Drover: self(t), Agents: 100, Batch: 10, PollWait: 2 * time.Second,
		Step: 200 * time.Millisecond, Probe: 100 * time.Millisecond, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v\n%s", res, progress.String())
	if res.State != "succeeded" || res.Rounds != 10 {
		t.Fatalf("state %q rounds %d; want succeeded 10", res.State, res.Rounds)
	}
	if res.StepSeconds != 0.2 || res.ProbeSeconds != 0.1 || math.Abs(res.IdealSeconds-3) > 1e-9 {
		t.Errorf("step %v probe %v ideal %v; want 0.2 0.1 3", res.StepSeconds, res.ProbeSeconds, res.IdealSeconds)
	}
	if want := res.WallSeconds / res.IdealSeconds; math.Abs(res.Ratio-want) > 0.001 {
		t.Errorf("ratio %v, want wall/ideal = %v", res.Ratio, want)
	}
	// A node's step and soak are real: no node succeeds faster than them.
	if res.StepP50Ms < 300 {
		t.Errorf("step latency p50 %v ms, below step + probe (300 ms)", res.StepP50Ms)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"idealSeconds":3`, `"ratio":`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON lacks %s: %s", key, b)
		}
	}
	for _, line := range []string{"round 1/10: 10/100 nodes succeeded", "round 10/10: 100/100 nodes succeeded", "(ideal 3.00 s)", "ideal 3.000 s, ratio"} {
		if !strings.Contains(progress.String(), line) {
			t.Errorf("progress lacks %q", line)
		}
	}
}

// BenchmarkRolloutStepProbe reports the makespan's ratio to the ideal
// ceil(N/K) x (step + probe) at N = 100, K = 10, step 200 ms, probe
// 100 ms (ideal 3 s). Full scale: `drover bench rollout --agents 1000
// --batch 50 --step 1s --probe 500ms`.
func BenchmarkRolloutStepProbe(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := bench.RunRollout(context.Background(), bench.RolloutConfig{Drover: bench.Command{Path: exe, Env: []string{envAsDrover + "=1"}},
			Agents: 100, Batch: 10, PollWait: 2 * time.Second, Step: 200 * time.Millisecond, Probe: 100 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.Ratio, "ratio")
		b.ReportMetric(res.WallSeconds, "makespan-s")
	}
}
