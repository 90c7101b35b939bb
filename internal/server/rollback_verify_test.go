package server

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

const rollbackVerifyPlan = `apiVersion: drover.dev/v1
name: app-upgrade
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - package:
        packages: [{name: app, version: "2.0.0"}]
waves:
  - name: all
    failureBudget:
      maxFailures: 0
      onBreach: rollback-wave
limits:
  maxInFlight: 2
gates:
  node:
    healthyDeadline: 2s
    probes:
      - kind: command
        command: [check-app]
        interval: 200ms
`

// appRunner answers the probe command check-app: exit 0 unless broken.
type appRunner struct{ broken *atomic.Bool }

func (r appRunner) Run(_ context.Context, _ []string, name string, _ ...string) ([]byte, []byte, error) {
	if name == "check-app" && r.broken.Load() {
		return nil, []byte("app answers 500"), &driver.ExitError{Code: 1, Stderr: "app answers 500"}
	}
	return []byte("ok"), nil, nil
}

// TestRollbackLeavesNodeUnhealthy runs a real server and real agents on
// simulated nodes. The change breaks p2's app, and its rollback does not
// repair it (the damage outlives the package): the rollback is verified
// by the node's probes, p2 is caught as rollback-unhealthy with the
// probes' evidence, p1 is verified healthy, and the rollout ends failed
// naming the unhealthy node.
func TestRollbackLeavesNodeUnhealthy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, base := runTestServer(t, ctx, func(c *Config) { c.Tick, c.PollWait = 100*time.Millisecond, time.Second })
	for _, id := range []string{"p1", "p2"} {
		st := driver.NewSimState(id, "debian", "6.1.0-26-amd64", map[string]string{"app": "1.9.0"})
		st.ApplyDelay = 100 * time.Millisecond
		broken := &atomic.Bool{}
		if id == "p2" {
			st.OnApply = func(plan.Action) { broken.Store(true) } // a rollback does not mend it
		}
		reg := &driver.Registry{}
		reg.Register(plan.ActionPackage, driver.NewSim(st))
		startSimAgent(t, ctx, base, srv.cfg.AgentToken, id, st, reg, appRunner{broken}, fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}})
	}
	c := &api.Client{Base: base, Token: "alice-token-0123456789"}
	waitNodes(t, ctx, c, 2)
	ro, err := c.CreateRollout(ctx, "app.yaml", rollbackVerifyPlan)
	if err != nil {
		t.Fatal(err)
	}
	ro = waitEnded(t, ctx, c, ro.ID, 60*time.Second)
	if ro.State != engine.RolloutFailed || !strings.Contains(ro.Reason, "1 node still unhealthy after the rollback (kept out of service") {
		t.Fatalf("rollout %s: %q, want failed naming the node unhealthy after its rollback", ro.State, ro.Reason)
	}
	for _, n := range ro.Nodes {
		switch {
		case n.ID == "p1" && n.Phase != engine.PhaseRolledBack:
			t.Errorf("p1 %s (%s), want rolled-back", n.Phase, n.Reason)
		case n.ID == "p2" && (n.Phase != engine.PhaseRollbackUnhealthy || !strings.Contains(n.Reason, "rollback done but still unhealthy: node probes did not pass within 2s of the rollback: command check-app: exit status 1")):
			t.Errorf("p2 %s (%q), want rollback-unhealthy with the probe's reason", n.Phase, n.Reason)
		}
	}
	if ro.Counts[string(engine.PhaseRollbackUnhealthy)] != 1 || ro.Counts[string(engine.PhaseRolledBack)] != 1 {
		t.Errorf("counts %v, want 1 rolled-back and 1 rollback-unhealthy", ro.Counts)
	}
	// The rollback step keeps its result, its evidence and its times.
	raw, ok := srv.st.(interface {
		ExecRaw(ctx context.Context, query string, args ...any) (int64, error)
	})
	if !ok {
		t.Fatalf("store %T cannot run raw statements", srv.st)
	}
	n, err := raw.ExecRaw(ctx, `UPDATE steps SET result = result WHERE node_id = 'p2' AND kind = 'rollback' AND result = 'rollback-unhealthy'
AND evidence LIKE '%probesAfterRollback%check-app%' AND finished_at > created_at`)
	if err != nil || n != 1 {
		t.Fatalf("p2's rollback step row: matched %d rows, %v; want its result, evidence and times", n, err)
	}
}
