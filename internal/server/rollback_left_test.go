package server

import (
	"context"
	"fmt"
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

// rollbackLeftPlan is rollbackVerifyPlan accepting no rollback on macOS.
var rollbackLeftPlan = strings.Replace(rollbackVerifyPlan, "version: \"2.0.0\"}]\n", "version: \"2.0.0\"}]\n      noRollbackOn: [macos]\n", 1)

// macOSUpdates is the simulated driver with macOS's honesty: an update
// cannot be uninstalled. It counts the rollbacks asked of it.
type macOSUpdates struct {
	*driver.Sim
	rollbacks *atomic.Int32
}

func (m macOSUpdates) Rollback(context.Context, plan.Action, driver.Snapshot) (driver.Outcome, error) {
	m.rollbacks.Add(1)
	return driver.Outcome{}, fmt.Errorf("softwareupdate: macOS updates cannot be uninstalled: %w", driver.ErrUnsupported)
}

// TestRollbackLeavesAcceptedChange runs a real server and real agents: a
// plan that accepts no rollback on macos (noRollbackOn) fails on its
// Debian node, and its wave is rolled back. The macOS node's rollback
// leaves the update in place by the plan's choice: its driver is never
// asked to undo it, and the node ends rolled-back with a reason saying
// nothing was undone and why, verified by its probes, not a failed
// rollback; the rollout halts on the Debian node's failure.
func TestRollbackLeavesAcceptedChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, base := runTestServer(t, ctx, func(c *Config) { c.Tick, c.PollWait = 100*time.Millisecond, time.Second })
	rollbacks := &atomic.Int32{}
	var mac *driver.SimState
	for _, n := range []struct{ id, family string }{{"d1", "debian"}, {"m1", "macos"}} {
		st := driver.NewSimState(n.id, n.family, "6.1.0-26-amd64", map[string]string{"app": "1.9.0"})
		reg := &driver.Registry{}
		switch n.family {
		case "macos":
			mac = st
			st.ApplyDelay = 100 * time.Millisecond
			reg.Register(plan.ActionPackage, macOSUpdates{driver.NewSim(st), rollbacks})
		default:
			st.ApplyDelay = time.Second
			st.FailApply = func(plan.Action) error { return fmt.Errorf("dpkg: error processing package app (--configure)") }
			reg.Register(plan.ActionPackage, driver.NewSim(st))
		}
		startSimAgent(t, ctx, base, srv.cfg.AgentToken, n.id, st, reg, appRunner{&atomic.Bool{}}, fleet.Facts{OS: fleet.OS{Family: n.family}})
	}
	c := &api.Client{Base: base, Token: "alice-token-0123456789"}
	waitNodes(t, ctx, c, 2)
	ro, err := c.CreateRollout(ctx, "app.yaml", rollbackLeftPlan)
	if err != nil {
		t.Fatal(err)
	}
	ro = waitEnded(t, ctx, c, ro.ID, 60*time.Second)
	if ro.State != engine.RolloutHalted {
		t.Errorf("rollout %s: %q, want halted by d1's failure", ro.State, ro.Reason)
	}
	want := "nothing undone, by the plan's choice; macOS update app 2.0.0 left in place: the plan accepts no rollback on macos; verified healthy: 1 node probes passed"
	for _, n := range ro.Nodes {
		if n.ID == "m1" && (n.Phase != engine.PhaseRolledBack || n.Reason != want) {
			t.Errorf("m1 %s (%q), want rolled-back (%q)", n.Phase, n.Reason, want)
		}
	}
	if v, _ := mac.Version("app"); v != "2.0.0" || rollbacks.Load() != 0 {
		t.Errorf("m1 app %s, %d rollbacks asked of the macOS driver; want 2.0.0 left in place, none", v, rollbacks.Load())
	}
}
