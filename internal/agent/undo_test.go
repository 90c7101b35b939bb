package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/plan"
)

// macUpdates is the simulated driver with macOS's honesty: an update it
// applied cannot be uninstalled (as driver.SoftwareUpdate). It counts the
// rollbacks asked of it: the agent must ask none where the plan accepts
// no way back.
type macUpdates struct {
	*driver.Sim
	rollbacks *int
}

func (m macUpdates) Rollback(context.Context, plan.Action, driver.Snapshot) (driver.Outcome, error) {
	*m.rollbacks++
	return driver.Outcome{}, fmt.Errorf("softwareupdate: macOS updates cannot be uninstalled: %w", driver.ErrUnsupported)
}

// newMacNode is a test node whose facts say macos, with the macOS
// update driver for packages; other actions go to the simulated driver.
func newMacNode(t *testing.T) (*testNode, *fakeServer, Config, *int) {
	n := newTestNode(t)
	n.state.Family = "macos"
	rollbacks := new(int)
	n.reg.Register(plan.ActionPackage, macUpdates{driver.NewSim(n.state), rollbacks}, "macos")
	srv := newFakeServer(t)
	cfg := n.config(t, srv)
	return n, srv, cfg, rollbacks
}

func macUpdate(version string) plan.Action {
	a := pkg("telemetry-agent", version)
	a.NoRollbackOn = []string{"macos"}
	return a
}

// TestRollbackLeavesAcceptedChange: on a macOS node, a package action
// whose plan says noRollbackOn: [macos] is left in place by the rollback
// (its driver is never asked to undo it), the other actions are undone,
// and the report says what stayed and why; with nothing else to undo,
// the rollback says nothing was undone, by the plan's choice. Neither is
// a failed rollback, and both are verified by the node's probes. The
// in-step rollback of a failed apply leaves it in place the same way.
func TestRollbackLeavesAcceptedChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, srv, cfg, rollbacks := newMacNode(t)
		stop, _ := start(t, cfg)
		defer stop()
		rollback := func(rollout string) api.StepPayload {
			p := probedRollback()
			p.ID, p.Rollout = rollout+"/n1/rollback/1", rollout
			return p
		}
		step := applyStep(1, plan.Action{LivePatch: &plan.LivePatchAction{ID: "kpatch-cve-2026-1"}}, macUpdate("7.2.0"))
		step.MinHealthy = 0
		srv.dispatch(step)
		if final, _ := srv.final(t); final.Phase != engine.PhaseVerifying || final.Gate != engine.Pass {
			t.Fatalf("apply: %s/%s %q", final.Phase, final.Gate, final.Reason)
		}
		srv.dispatch(rollback("r1"))
		final, _ := srv.final(t)
		want := "undid livepatch kpatch-cve-2026-1: restored the snapshots taken before r1/n1/apply/1; " +
			"macOS update telemetry-agent 7.2.0 left in place: the plan accepts no rollback on macos; verified healthy: 1 node probes passed"
		if final.Phase != engine.PhaseRolledBack || final.Gate != engine.Pass || final.Reason != want {
			t.Errorf("mixed: %s/%s %q\nwant rolled-back/pass %q", final.Phase, final.Gate, final.Reason, want)
		}
		if left, _ := final.Evidence["leftInPlace"].([]any); len(left) != 1 {
			t.Errorf("evidence leftInPlace = %v", final.Evidence["leftInPlace"])
		}
		if v, _ := n.state.Version("telemetry-agent"); v != "7.2.0" || *rollbacks != 0 {
			t.Errorf("telemetry-agent %s, %d rollbacks asked of the macOS driver; want 7.2.0 left, none", v, *rollbacks)
		}

		// Only the accepted change: nothing undone, by the plan's choice.
		step = applyStep(1, macUpdate("7.3.0"))
		step.ID, step.Rollout, step.MinHealthy = "r2/n1/apply/1", "r2", 0
		srv.dispatch(step)
		srv.final(t)
		srv.dispatch(rollback("r2"))
		final, _ = srv.final(t)
		want = "nothing undone, by the plan's choice; macOS update telemetry-agent 7.3.0 left in place: the plan accepts no rollback on macos; verified healthy: 1 node probes passed"
		if final.Phase != engine.PhaseRolledBack || final.Gate != engine.Pass || final.Reason != want {
			t.Errorf("left only: %s/%s %q\nwant rolled-back/pass %q", final.Phase, final.Gate, final.Reason, want)
		}

		// In-step: the second action fails; the first is left in place.
		step = applyStep(1, macUpdate("7.4.0"), plan.Action{LivePatch: &plan.LivePatchAction{ID: "kpatch-cve-2026-2"}})
		step.ID, step.Rollout, step.MinHealthy = "r3/n1/apply/1", "r3", 0
		n.state.FailApply = func(a plan.Action) error {
			if a.LivePatch != nil {
				return fmt.Errorf("kpatch load %s: module verification failed", a.LivePatch.ID)
			}
			return nil
		}
		srv.dispatch(step)
		final, _ = srv.final(t)
		if final.Phase != engine.PhaseFailed || !strings.HasSuffix(final.Reason,
			"; rolled back livepatch kpatch-cve-2026-2; macOS update telemetry-agent 7.4.0 left in place: the plan accepts no rollback on macos; verified healthy: 1 node probes passed") {
			t.Errorf("in-step: %s %q", final.Phase, final.Reason)
		}
		if strings.Contains(final.Reason, "FAILED") || *rollbacks != 0 {
			t.Errorf("in-step: %q, %d rollbacks asked of the macOS driver", final.Reason, *rollbacks)
		}
	})
}
