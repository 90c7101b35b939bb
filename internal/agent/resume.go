package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// resume settles a step the journal shows unfinished: the agent crashed,
// was stopped, or the node rebooted while it ran. Nothing is re-applied:
// the drivers' Verify says what the interruption left, and the step is
// finished from there.
//
//   - failing recorded: the in-step rollback goes on (Rollback is
//     idempotent), then failed is reported with the recorded reason.
//   - rebooting recorded: if the boot ID changed, the reboot happened:
//     verify every action, then probe. If not, the reboot is requested
//     once more; a second time without a restart fails the step.
//   - verifying recorded: actions were all in place; verify, probe again.
//   - in every case, a kubernetes-node action that took the node out of
//     service and has no uncordoned record still owes its Uncordon: it
//     is done once the actions verify (and the reboot, if any, happened),
//     before the probes. One whose uncordon has begun (uncordoning
//     record) is not verified again: the node may be schedulable already.
//   - otherwise the step stopped among its actions: if every action
//     verifies, the change is in place (reboot if needed, then probe);
//     if not, the actions whose snapshot was taken are rolled back and
//     the step is reported interrupted, saying where the journal shows
//     it stopped (failed if the rollback fails): the plan's
//     gates.onInterrupted decides whether that counts as a failure.
//
// A rollback step is finished by rolling back what it had not yet
// (idempotent) and checking every restore.
func (a *agent) resume(ctx context.Context, st stepState) {
	err := a.resumeStep(ctx, st)
	if err != nil && !errors.Is(err, errStopped) {
		a.log.Error("interrupted step not settled", "step", st.ID, "error", err)
	}
}

func (a *agent) resumeStep(ctx context.Context, st stepState) error {
	boot, err := a.bootID(ctx)
	if err != nil {
		return fmt.Errorf("resume %s: boot ID: %w", st.ID, err)
	}
	rebooted := st.BootID != "" && boot != st.BootID
	how := "the agent restarted"
	if rebooted {
		how = "the node rebooted (boot ID " + st.BootID + " -> " + boot + ")"
	}
	if reason := a.check(st.Payload); reason != "" {
		return a.finish(ctx, st.ID, api.StepReport{Phase: engine.PhaseFailed, Reason: reason, BootID: boot})
	}
	if st.Payload.Kind == kindRollback {
		ref, ok := a.j.step(st.From)
		if st.From == "" || !ok {
			return a.finish(ctx, st.ID, api.StepReport{Phase: engine.PhaseFailed, BootID: boot,
				Reason: "rollback failed: no apply step of rollout " + st.Payload.Rollout + " for this node in the agent's journal, so no snapshot to restore"})
		}
		a.progress(ctx, api.StepReport{StepID: st.ID, Phase: engine.PhaseRunning, BootID: boot, Reason: "resuming after " + how})
		return a.rollback(ctx, st, ref)
	}
	a.progress(ctx, api.StepReport{StepID: st.ID, Phase: engine.PhaseRunning, BootID: boot, Reason: "resuming after " + how})
	switch {
	case st.Failing != "":
		return a.rollbackInStep(ctx, st.ID, st.Failing+" (rollback resumed after "+how+")")
	case len(st.Reboots) > 0:
		last := st.Reboots[len(st.Reboots)-1]
		if boot != last {
			a.log.Info("node rebooted as requested; verifying", "step", st.ID, "boot_id", boot)
			return a.afterReboot(ctx, st.ID)
		}
		if len(st.Reboots) >= 2 {
			return a.fail(ctx, st.ID, fmt.Sprintf("reboot requested %d times but the node did not restart (boot ID still %s)", len(st.Reboots), boot))
		}
		return a.reboot(ctx, st.ID, string(st.Payload.Reboot))
	case st.Verifying:
		return a.afterReboot(ctx, st.ID) // verifies every changed action, then probes
	}
	// Stopped among the actions: ask the drivers what holds.
	facts := a.currentFacts()
	applied := 0
	for i, act := range st.Payload.Actions {
		as := st.Actions[i]
		if as != nil && as.Snapshot != nil {
			applied++
		}
		if as.pastVerify() {
			continue // returned to service (or about to be): Verify (cordoned) no longer holds
		}
		what := describe(act, facts.OS.Family)
		d, err := a.cfg.Drivers.For(act, facts)
		if err == nil {
			dctx, cancel := bounded(ctx, st.Payload)
			err = d.Verify(dctx, act)
			if timedOut(ctx, dctx, err) {
				err = timeoutError("verify", st.Payload, d)
			}
			cancel()
		}
		if stopped(ctx, err) {
			return errStopped
		}
		if err == nil && act.PreRestartCheck != nil && as != nil && as.Snapshot != nil && !as.Restarted {
			// In place, but never checked: its services still run the
			// old version, and the check decides whether they may not.
			err = errors.New("its pre-restart check and the service restarts it held back had not run")
		}
		if err == nil {
			continue
		}
		var stage string
		switch {
		case as == nil || as.Snapshot == nil:
			stage = "before " + what + " was applied"
		case as.Applied:
			stage = "after " + what + " was applied, before it was verified"
		default:
			stage = "while " + what + " was being applied"
		}
		reason := fmt.Sprintf("interrupted %s: %s (journal's last record: %s); not re-run; %s: verify: %v", stage, how, st.Last, what, err)
		if applied == 0 && (as == nil || as.Snapshot == nil) {
			// Nothing was changed (no snapshot, so no Apply began).
			return a.finish(ctx, st.ID, api.StepReport{Phase: engine.PhaseInterrupted, Reason: reason + "; nothing had been changed", BootID: boot, Evidence: a.evidence(st.ID)})
		}
		return a.interrupt(ctx, st.ID, reason)
	}
	a.log.Info("interrupted step verified in place", "step", st.ID, "how", how)
	return a.afterActions(ctx, st.ID, rebooted)
}
