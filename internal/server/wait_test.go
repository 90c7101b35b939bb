package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
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
