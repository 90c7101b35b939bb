package bench_test

import (
	"context"
	"os"
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
