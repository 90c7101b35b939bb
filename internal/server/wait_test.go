package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/gate/gatetest"
)

// waitNodes waits until the server lists n nodes (its agents registered).
func waitNodes(t *testing.T, ctx context.Context, c *api.Client, n int) {
	t.Helper()
	gatetest.Eventually(t, 30*time.Second, "agents registered", func() (bool, string) {
		ns, err := c.AllNodes(ctx, "")
		return err == nil && len(ns) == n, fmt.Sprintf("%d nodes, %v", len(ns), err)
	})
}

// waitEnded waits until rollout id reaches a terminal state and returns
// it with its nodes.
func waitEnded(t *testing.T, ctx context.Context, c *api.Client, id string, within time.Duration) api.Rollout {
	t.Helper()
	var ro api.Rollout
	gatetest.Eventually(t, within, "rollout ends", func() (bool, string) {
		var err error
		ro, err = c.GetRollout(ctx, id, true)
		return err == nil && ro.State.Terminal(), fmt.Sprintf("%s %s %v", ro.State, ro.Reason, err)
	})
	return ro
}

// startSimAgent runs a real agent for node id, with labels env=prod, on
// the simulated node st (its drivers reg, probe commands answered by
// runner) against the server at base, until the test ends.
func startSimAgent(t *testing.T, ctx context.Context, base, token, id string, st *driver.SimState, reg *driver.Registry, runner driver.Runner, facts fleet.Facts) {
	t.Helper()
	acfg := agent.Config{ServerURL: base, StateDir: t.TempDir(), NodeID: id, Token: token,
		Labels: map[string]string{"env": "prod"}, Drivers: reg, Runner: runner, AllowCommandProbes: true,
		Facts:     func(context.Context) (fleet.Facts, error) { return st.Facts(facts), nil },
		Heartbeat: 500 * time.Millisecond}
	agentCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = agent.Run(agentCtx, acfg) }()
	t.Cleanup(func() { stop(); <-done })
}
