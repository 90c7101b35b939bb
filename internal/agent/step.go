package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/hostcheck"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/probe"
)

// errStopped means ctx ended while a step ran: the agent stops without a
// result, and the next start resumes the step from the journal.
var errStopped = errors.New("agent stopped")

// execute takes on a new step: journal it before anything else, check
// it, then run it. It returns when the step has a result or ctx ends.
func (a *agent) execute(ctx context.Context, p api.StepPayload) {
	boot, err := a.bootID(ctx)
	if err != nil {
		a.log.Warn("boot ID unknown", "error", err)
	}
	rec := record{Type: recStep, Step: p.ID, At: a.clock.Now(), BootID: boot, Payload: &p}
	var ref stepState
	var refOK bool
	if p.Kind == kindRollback {
		if rollout, node, _, _, ok := parseStepID(p.ID); ok {
			ref, refOK = a.j.latestApply(rollout, node, -1)
			if refOK {
				rec.From = &rollbackReference{Step: ref.ID}
			}
		}
	}
	if err := a.j.append(rec); err != nil {
		a.log.Error("journal write failed; step not taken on", "step", p.ID, "error", err)
		return
	}
	a.log.Info("step taken on", "step", p.ID, "kind", p.Kind, "actions", len(p.Actions))
	st, _ := a.j.step(p.ID)
	if reason := a.check(p); reason != "" {
		a.finish(ctx, p.ID, api.StepReport{Phase: engine.PhaseFailed, Reason: reason, BootID: boot})
		return
	}
	a.progress(ctx, api.StepReport{StepID: p.ID, Phase: engine.PhaseRunning, BootID: boot})
	switch p.Kind {
	case kindApply:
		err = a.apply(ctx, st)
	case kindRollback:
		if !refOK {
			err = a.finish(ctx, p.ID, api.StepReport{Phase: engine.PhaseFailed, BootID: boot,
				Reason: "rollback failed: no apply step of rollout " + p.Rollout + " for this node in the agent's journal, so no snapshot to restore"})
			break
		}
		err = a.rollback(ctx, st, ref)
	}
	if err != nil && !errors.Is(err, errStopped) {
		a.log.Error("step not finished", "step", p.ID, "error", err)
	}
}

// check returns why a step cannot run ("" when it can): a malformed
// payload, an unknown kind, or an action kind outside the allow-list.
func (a *agent) check(p api.StepPayload) string {
	if p.Kind == kindMalformed {
		a.mu.Lock()
		why := a.malformed[p.ID]
		a.mu.Unlock()
		if why == "" {
			why = "see the agent's log"
		}
		return "malformed step: payload does not decode (" + why + "); nothing was run"
	}
	if p.Kind != kindApply && p.Kind != kindRollback {
		return fmt.Sprintf("malformed step: unknown step kind %q (want apply or rollback)", p.Kind)
	}
	if _, _, _, _, ok := parseStepID(p.ID); !ok {
		return fmt.Sprintf("malformed step: ID %q is not ROLLOUT/NODE/KIND/ATTEMPT", p.ID)
	}
	switch p.Reboot {
	case "", plan.RebootNever, plan.RebootIfRequired, plan.RebootAlways:
	default:
		return fmt.Sprintf("malformed step: unknown reboot policy %q", p.Reboot)
	}
	if p.Kind == kindApply && len(p.Actions) == 0 {
		return "malformed step: no actions"
	}
	for i, act := range p.Actions {
		kind, err := driver.KindOf(act)
		if err != nil {
			return fmt.Sprintf("malformed step: action %d: %v", i+1, err)
		}
		if !slices.Contains(a.cfg.Accepts, kind) {
			return fmt.Sprintf("action kind %s not allowed by this agent's configuration (action %d, %s); nothing was run", kind, i+1, describe(act, ""))
		}
		if c := act.PreRestartCheck; c != nil && p.Kind == kindApply {
			if why := plan.RefusedProbe(c.Probe(), a.policy); why != "" {
				return fmt.Sprintf("pre-restart check of action %d refused by this agent's configuration: %s; nothing was run", i+1, why)
			}
		}
	}
	for i, pr := range p.Probes {
		switch pr.Kind {
		case plan.ProbeHTTP, plan.ProbeTCP, plan.ProbeCommand, plan.ProbeSystemd, plan.ProbeWindowsService:
		default:
			if !pr.Kind.HostCheck() {
				return fmt.Sprintf("malformed step: probe %d has unknown kind %q", i+1, pr.Kind)
			}
			if why := hostcheck.Unsupported(pr.Kind, a.goos()); why != "" && p.Kind == kindApply {
				return fmt.Sprintf("probe %d (%s): %s; nothing was run", i+1, probe.Describe(pr), why)
			}
		}
		// A rollback is not refused for its probes: undoing a change
		// matters more, and the prober refuses them on its own.
		if why := plan.RefusedProbe(pr, a.policy); why != "" && p.Kind == kindApply {
			return fmt.Sprintf("probe %d refused by this agent's configuration: %s; nothing was run", i+1, why)
		}
	}
	return ""
}

// verifyProbeArtifacts verifies the signed artifacts of p's command
// probes before anything changes, as the script driver's preflight
// does for scripts; "" when all verify.
func (a *agent) verifyProbeArtifacts(ctx context.Context, p api.StepPayload) string {
	for i, act := range p.Actions {
		c := act.PreRestartCheck
		if c == nil || c.Artifact == "" {
			continue
		}
		if a.cfg.Verifier == nil {
			return fmt.Sprintf("pre-restart check of action %d: artifact %s refused: %v; nothing was changed", i+1, c.Artifact, driver.ErrNoVerifier)
		}
		if _, err := a.cfg.Verifier.Verify(ctx, c.Artifact); err != nil {
			return fmt.Sprintf("pre-restart check of action %d: artifact %s refused: verify artifact: %v; nothing was changed", i+1, c.Artifact, err)
		}
	}
	for i, pr := range p.Probes {
		if pr.Kind != plan.ProbeCommand || pr.Artifact == "" {
			continue
		}
		if a.cfg.Verifier == nil {
			return fmt.Sprintf("probe %d: artifact %s refused: %v; nothing was changed", i+1, pr.Artifact, driver.ErrNoVerifier)
		}
		if _, err := a.cfg.Verifier.Verify(ctx, pr.Artifact); err != nil {
			return fmt.Sprintf("probe %d: artifact %s refused: verify artifact: %v; nothing was changed", i+1, pr.Artifact, err)
		}
	}
	return ""
}

// stopped turns an error seen while ctx ended into errStopped.
func stopped(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() != nil
}

// bounded derives from ctx the context the drivers' work for step p runs
// under: it ends after the plan's change.timeout (plan.DefaultChangeTimeout
// when the payload has none), which kills a hung driver's processes.
func bounded(ctx context.Context, p api.StepPayload) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, plan.StepTimeout(p.Timeout))
}

// timedOut says whether err came from dctx's deadline (bounded) while
// the agent itself (ctx) goes on: the step fails with timeoutError.
func timedOut(ctx, dctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil && errors.Is(dctx.Err(), context.DeadlineExceeded)
}

// timeoutError says which of a step's driver calls ran past its bound.
func timeoutError(stage string, p api.StepPayload, d driver.Driver) error {
	if stage != "" {
		stage += " "
	}
	return fmt.Errorf("%stimed out after %s (driver %s)", stage, plan.Duration(plan.StepTimeout(p.Timeout)), d.Name())
}

// apply runs a new apply step: per action Preflight, Snapshot, Apply,
// Verify, each journaled; on a failure the applied actions are rolled back
// in reverse; then the reboot, then the node probes.
func (a *agent) apply(ctx context.Context, st stepState) error {
	facts := a.currentFacts()
	p := st.Payload
	drivers := make([]driver.Driver, len(p.Actions))
	for i, act := range p.Actions {
		d, err := a.cfg.Drivers.For(act, facts)
		if err != nil {
			return a.finish(ctx, st.ID, api.StepReport{Phase: engine.PhaseFailed, BootID: st.BootID,
				Reason: describe(act, facts.OS.Family) + ": " + err.Error() + "; nothing was run"})
		}
		drivers[i] = d
	}
	if why := a.verifyProbeArtifacts(ctx, p); why != "" {
		if ctx.Err() != nil {
			return errStopped
		}
		return a.finish(ctx, st.ID, api.StepReport{Phase: engine.PhaseFailed, BootID: st.BootID, Reason: why})
	}
	dctx, cancel := bounded(ctx, p)
	defer cancel()
	changes := make([]driver.Change, len(p.Actions))
	none := true
	for i, act := range p.Actions {
		c, err := drivers[i].Preflight(dctx, act)
		if stopped(ctx, err) {
			return errStopped
		}
		if timedOut(ctx, dctx, err) {
			err = timeoutError("", p, drivers[i])
		}
		if err != nil {
			return a.finish(ctx, st.ID, api.StepReport{Phase: engine.PhaseFailed, BootID: st.BootID,
				Reason: describe(act, facts.OS.Family) + ": preflight: " + err.Error() + "; nothing was changed", Evidence: a.evidence(st.ID)})
		}
		changes[i] = c
		none = none && c.None
		if err := a.j.append(record{Type: recAction, Step: st.ID, At: a.clock.Now(), Action: i, Stage: stagePreflight, Driver: drivers[i].Name(), Change: &c}); err != nil {
			return err
		}
	}
	if none {
		return a.finish(ctx, st.ID, api.StepReport{Phase: engine.PhaseVerifying, Gate: engine.Pass, HealthySince: a.clock.Now(),
			BootID: st.BootID, Reason: "nothing to do: every action is already in its target state", Evidence: a.evidence(st.ID)})
	}
	// The host before anything changes, for the host checks that
	// compare with it; journaled, so that a resumed step keeps it.
	if st.Host == nil {
		if snap := a.prober.HostSnapshot(ctx, p.Probes); snap != nil {
			if ctx.Err() != nil {
				return errStopped
			}
			if err := a.j.append(record{Type: recHost, Step: st.ID, At: a.clock.Now(), Host: snap}); err != nil {
				return err
			}
			st.Host = snap
		}
	}
	for i, act := range p.Actions {
		if changes[i].None {
			continue
		}
		d := drivers[i]
		what := describe(act, facts.OS.Family)
		snap, err := d.Snapshot(dctx, act)
		if stopped(ctx, err) {
			return errStopped
		}
		if timedOut(ctx, dctx, err) {
			return a.fail(ctx, st.ID, what+": "+timeoutError("snapshot", p, d).Error())
		}
		if err != nil {
			return a.fail(ctx, st.ID, what+": snapshot: "+err.Error())
		}
		// The snapshot record is also the mark that Apply may have begun.
		if err := a.j.append(record{Type: recAction, Step: st.ID, At: a.clock.Now(), Action: i, Stage: stageSnapshot, Driver: d.Name(), Snapshot: &snap}); err != nil {
			return err
		}
		a.log.Info("applying", "step", st.ID, "action", what, "driver", d.Name(), "change", changes[i].Summary)
		out, err := a.applyAction(dctx, d, act)
		if stopped(ctx, err) {
			return errStopped
		}
		if timedOut(ctx, dctx, err) {
			err = timeoutError("apply", p, d)
		}
		if err != nil {
			return a.fail(ctx, st.ID, what+": "+err.Error())
		}
		if err := a.j.append(record{Type: recAction, Step: st.ID, At: a.clock.Now(), Action: i, Stage: stageApplied, Outcome: &out}); err != nil {
			return err
		}
		if act.PreRestartCheck != nil {
			why, err := a.checkThenRestart(dctx, d, act, out)
			if stopped(ctx, err) {
				return errStopped
			}
			if timedOut(ctx, dctx, err) {
				return a.fail(ctx, st.ID, what+": "+timeoutError("pre-restart check and restart", p, d).Error())
			}
			if err != nil {
				return err
			}
			if why != "" {
				return a.fail(ctx, st.ID, what+": "+why)
			}
			if err := a.j.append(record{Type: recAction, Step: st.ID, At: a.clock.Now(), Action: i, Stage: stageRestarted}); err != nil {
				return err
			}
		}
		err = d.Verify(dctx, act)
		if stopped(ctx, err) {
			return errStopped
		}
		if timedOut(ctx, dctx, err) {
			return a.fail(ctx, st.ID, what+": applied but "+timeoutError("verify", p, d).Error())
		}
		if err != nil {
			return a.fail(ctx, st.ID, what+": applied but verify failed: "+err.Error())
		}
		if err := a.j.append(record{Type: recAction, Step: st.ID, At: a.clock.Now(), Action: i, Stage: stageVerified}); err != nil {
			return err
		}
	}
	return a.afterActions(ctx, st.ID, false)
}

// applyAction applies act through d: with the service restarts held
// back when act has a pre-restart check (a service-restart action's
// restart is its Apply: nothing is applied before the check).
func (a *agent) applyAction(ctx context.Context, d driver.Driver, act plan.Action) (driver.Outcome, error) {
	switch {
	case act.PreRestartCheck == nil:
		return d.Apply(ctx, act)
	case act.ServiceRestart != nil:
		return driver.Outcome{Summary: "restart held back until the pre-restart check passed"}, nil
	}
	rd, ok := d.(driver.RestartDeferrer)
	if !ok {
		return driver.Outcome{}, fmt.Errorf("preRestartCheck: the %s driver cannot hold back service restarts: %w", d.Name(), driver.ErrUnsupported)
	}
	return rd.ApplyDeferred(ctx, act)
}

// checkThenRestart runs act's pre-restart check once act is applied with
// its restarts held back, then the restarts: the held-back ones of out,
// or a service-restart action's Apply. It returns why the step fails (""
// when the services restarted): the check's reason, the start of its
// output included when the agent allows (--allow-probe-output), before
// any service restarted on the change.
func (a *agent) checkThenRestart(ctx context.Context, d driver.Driver, act plan.Action, out driver.Outcome) (string, error) {
	res := a.prober.Run(ctx, act.PreRestartCheck.Probe())
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if res.Verdict != engine.Pass {
		return "pre-restart check failed, so no service restarted on the change: " + res.Reason, nil
	}
	var err error
	if act.ServiceRestart != nil {
		_, err = d.Apply(ctx, act)
	} else if len(out.Deferred) > 0 {
		err = d.(driver.RestartDeferrer).RunDeferred(ctx, act, out.Deferred)
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "pre-restart check passed, but the restarts failed: " + err.Error(), nil
	}
	return "", nil
}

// afterActions runs once every action is in place: the reboot if the
// policy wants one (unless the node already rebooted since the step
// began and rebooted is true), then the uncordon of a kubernetes-node
// action, then the node probes.
func (a *agent) afterActions(ctx context.Context, id string, rebooted bool) error {
	st, _ := a.j.step(id)
	policy := st.Payload.Reboot
	if policy == "" {
		policy = plan.RebootIfRequired
	}
	need := policy == plan.RebootAlways
	if policy == plan.RebootIfRequired {
		for _, as := range st.Actions {
			need = need || (as.Outcome != nil && as.Outcome.RebootRequired)
		}
	}
	if need && !rebooted {
		return a.reboot(ctx, id, string(policy))
	}
	return a.toService(ctx, id)
}

// reboot journals and requests a reboot, then waits for it: a simulated
// reboot changes the boot ID at once and the step goes on here; a real one
// kills the agent, and the next start goes on from the journal.
func (a *agent) reboot(ctx context.Context, id, policy string) error {
	if a.cfg.Rebooter == nil {
		return a.fail(ctx, id, "reboot needed (policy "+policy+") but this agent has no rebooter configured")
	}
	before, err := a.bootID(ctx)
	if err != nil {
		return a.fail(ctx, id, "reboot: boot ID unknown: "+err.Error())
	}
	if err := a.j.append(record{Type: recRebooting, Step: id, At: a.clock.Now(), BootID: before}); err != nil {
		return err
	}
	a.log.Warn("rebooting node", "step", id, "policy", policy, "boot_id", before)
	if err := a.cfg.Rebooter.Reboot(ctx, "drover step "+id); err != nil {
		if stopped(ctx, err) {
			return errStopped
		}
		return a.fail(ctx, id, "reboot: "+err.Error())
	}
	if now, err := a.bootID(ctx); err == nil && now != before {
		return a.afterReboot(ctx, id)
	}
	t := a.clock.NewTimer(a.cfg.RebootTimeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return errStopped // killed by the reboot, as expected
	case <-t.C:
	}
	if now, err := a.bootID(ctx); err == nil && now != before {
		return a.afterReboot(ctx, id)
	}
	return a.fail(ctx, id, fmt.Sprintf("reboot requested but the node did not restart within %s (boot ID still %s)", a.cfg.RebootTimeout, before))
}

// afterReboot checks every action again on the new boot, then returns
// the node to service and probes. An action whose uncordon has begun is
// not checked: its Verify (cordoned) no longer holds, by design.
func (a *agent) afterReboot(ctx context.Context, id string) error {
	st, _ := a.j.step(id)
	facts := a.currentFacts()
	for i, act := range st.Payload.Actions {
		if as := st.Actions[i]; as == nil || as.Snapshot == nil || as.pastVerify() {
			continue // not changed by this step, or done with
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
		if err != nil {
			return a.fail(ctx, id, what+": after reboot, verify failed: "+err.Error())
		}
	}
	return a.toService(ctx, id)
}

// fail journals why the step failed, rolls back in reverse every action
// whose snapshot was taken (Rollback is idempotent, so the action that
// failed half-way is restored too) and reports failed.
func (a *agent) fail(ctx context.Context, id, reason string) error {
	if st, _ := a.j.step(id); st.Failing == "" {
		a.captureEvidence(ctx, id, reason)
		if err := a.j.append(record{Type: recFailing, Step: id, At: a.clock.Now(), Reason: reason}); err != nil {
			return err
		}
	}
	a.log.Warn("step failed; rolling back its applied actions", "step", id, "reason", reason)
	return a.rollbackInStep(ctx, id, reason)
}

// interrupt settles a step a crash or a reboot it did not request
// stopped among its actions: what began is undone as for a failure, and
// the step is reported interrupted (failed if the undo fails), so that
// the plan's gates.onInterrupted decides whether it counts.
func (a *agent) interrupt(ctx context.Context, id, reason string) error {
	if st, _ := a.j.step(id); st.Failing == "" {
		if err := a.j.append(record{Type: recFailing, Step: id, At: a.clock.Now(), Reason: reason, Interrupted: true}); err != nil {
			return err
		}
	}
	a.log.Warn("step interrupted; undoing what it began", "step", id, "reason", reason)
	return a.rollbackInStep(ctx, id, reason)
}

// rollbackInStep restores the snapshots of the step's actions not yet
// rolled back, last first, and reports failed with reason and what the
// rollback did. An uncordoner action (kubernetes-node) is rolled back,
// which uncordons, only if every action after it was restored: otherwise
// the node stays cordoned and the reason says so. An action the plan
// accepts no way back for on the node's family is left in place
// (leftInPlace). A rollback that restored everything is verified as a
// rollback step's is: the node's probes run again (their verdict
// journaled), and a node still unhealthy is taken out of service again
// and reported failed, even after an interruption.
func (a *agent) rollbackInStep(ctx context.Context, id, reason string) error {
	st, _ := a.j.step(id)
	facts := a.currentFacts()
	// The restores are bounded as the apply was: one that times out is a
	// failed rollback.
	rctx, cancel := bounded(ctx, st.Payload)
	defer cancel()
	var done, errs, kept, left []string
	for i := len(st.Payload.Actions) - 1; i >= 0; i-- {
		as := st.Actions[i]
		if as == nil || as.Snapshot == nil {
			continue
		}
		act := st.Payload.Actions[i]
		what := describe(act, facts.OS.Family)
		if as.RolledBack {
			done = append(done, what)
			continue
		}
		if why := leftInPlace(act, facts.OS.Family); why != "" {
			left = append(left, what+" left in place: "+why)
			continue
		}
		if act.ServiceRestart != nil && act.PreRestartCheck != nil && !as.Restarted {
			continue // its check failed: the service never restarted, and undoing it would restart it
		}
		d, err := a.cfg.Drivers.For(act, facts)
		var out driver.Outcome
		var why string
		if err == nil {
			// A kernel the node runs is left by a fallback boot first.
			if why, err = a.fallbackFirst(ctx, id, i, act, *as.Snapshot, d); err != nil {
				return err
			}
		}
		switch _, isUncordoner := a.isUncordoner(act); {
		case err != nil:
		case why != "":
			err = errors.New(why)
		case isUncordoner:
			if len(errs) > 0 {
				kept = append(kept, what)
				continue
			}
			snap := *as.Snapshot
			out, err = a.retryUncordon(rctx, id, what, func(ctx context.Context) (driver.Outcome, error) {
				return d.Rollback(ctx, act, snap)
			})
		default:
			out, err = d.Rollback(rctx, act, *as.Snapshot)
		}
		if stopped(ctx, err) {
			return errStopped
		}
		if timedOut(ctx, rctx, err) {
			err = timeoutError("rollback", st.Payload, d)
		}
		if err != nil {
			errs = append(errs, what+": "+err.Error())
			_ = a.j.append(record{Type: recAction, Step: id, At: a.clock.Now(), Action: i, Stage: stageRestoreErr, Reason: err.Error()})
			continue
		}
		if err := a.j.append(record{Type: recAction, Step: id, At: a.clock.Now(), Action: i, Stage: stageRolledBack, Outcome: &out}); err != nil {
			return err
		}
		done = append(done, what)
	}
	switch {
	case len(errs) > 0:
		reason += "; in-step rollback FAILED: " + strings.Join(errs, "; ")
		if len(done) > 0 {
			reason += " (rolled back: " + strings.Join(done, ", ") + ")"
		}
	case len(done) > 0:
		reason += "; rolled back " + strings.Join(done, ", ")
	case len(left) > 0:
		reason += "; nothing undone, by the plan's choice"
	default:
		reason += "; nothing had been changed"
	}
	if len(left) > 0 {
		reason += "; " + strings.Join(left, "; ")
	}
	reason += keptCordoned(kept, "a restore failed")
	phase := engine.PhaseFailed
	if st.Interrupted && len(errs) == 0 && len(kept) == 0 {
		phase = engine.PhaseInterrupted
	}
	ev := a.evidence(id)
	if len(errs) == 0 && len(kept) == 0 && len(done)+len(left) > 0 {
		// Verified as a rollback step is: the node's probes run again,
		// and a node still unhealthy is taken out of service again.
		probed, err := a.probeInStep(ctx, id, reason)
		if err != nil {
			return err
		}
		switch probed.Verdict {
		case engine.Fail:
			out, err := a.holdAgain(ctx, id, st, a.uncordoners(st))
			if err != nil {
				return err
			}
			reason += "; still unhealthy after the rollback: " + probed.Reason + out
			phase = engine.PhaseFailed // not to be retried as a mere interruption
		case engine.Pass:
			reason += "; verified healthy: " + probed.Reason
		default:
			reason += "; not verified: " + probed.Reason
		}
		if ev == nil {
			ev = map[string]any{}
		}
		ev["probesAfterRollback"] = probed.evidence()
		if len(left) > 0 {
			ev["leftInPlace"] = left
		}
	}
	boot, _ := a.bootID(ctx)
	return a.finish(ctx, id, api.StepReport{Phase: phase, Reason: reason, BootID: boot, Evidence: ev})
}

// probeInStep runs the node's probes after the in-step rollback of step
// id and journals their verdict (with undone, what the rollback did), or
// returns the verdict the journal already holds: a resumed step does not
// probe a node it has taken out of service again.
func (a *agent) probeInStep(ctx context.Context, id, undone string) (rollbackProbes, error) {
	st, _ := a.j.step(id)
	if st.Probed != nil {
		return *st.Probed, nil
	}
	probed, err := a.probeAfterRollback(ctx, st.Payload, st.Host)
	if err != nil {
		return probed, err
	}
	if err := a.j.append(record{Type: recProbed, Step: id, At: a.clock.Now(), Reason: undone, Probed: &probed}); err != nil {
		return probed, err
	}
	return probed, nil
}

// keptCordoned says which uncordoner actions were not rolled back, and
// why ("" when none).
func keptCordoned(kept []string, why string) string {
	if len(kept) == 0 {
		return ""
	}
	return "; node left cordoned (" + strings.Join(kept, ", ") + ") because " + why + ": no workloads are sent back to a node in a state nobody chose"
}

// verifyPhase runs the step's probes: probe until every probe passes
// (failed if not within HealthyDeadline), reporting verifying without a
// verdict if the first round does not pass; then keep probing for
// MinHealthy, reporting Gate pass with HealthySince when the soak starts,
// and Gate fail at the first failure. The final report is verifying with
// the last verdict. A node healthy at the first round with no soak thus
// costs one report, not three: reports are what the server's time goes
// to in a large rollout.
func (a *agent) verifyPhase(ctx context.Context, id string) error {
	st, _ := a.j.step(id)
	if !st.Verifying {
		if err := a.j.append(record{Type: recVerifying, Step: id, At: a.clock.Now()}); err != nil {
			return err
		}
	}
	boot, _ := a.bootID(ctx)
	p := st.Payload
	ev := a.evidence(id)
	if len(p.Probes) == 0 {
		return a.finish(ctx, id, api.StepReport{Phase: engine.PhaseVerifying, Gate: engine.Pass, HealthySince: a.clock.Now(),
			BootID: boot, Reason: "no node probes", Evidence: ev})
	}
	interval := plan.DefaultProbeInterval.D()
	for i, pr := range p.Probes {
		if d := pr.Interval.D(); d > 0 && (i == 0 || d < interval) {
			interval = d
		}
	}
	deadline := p.HealthyDeadline.D()
	if deadline <= 0 {
		deadline = plan.DefaultHealthyDeadline.D()
	}
	start := a.clock.Now()
	var since time.Time
	probing := false // reported verifying without a verdict
	for {
		t0 := a.clock.Now()
		reason := a.probeAll(ctx, p.Probes, st.Host)
		if ctx.Err() != nil {
			return errStopped
		}
		if reason == "" {
			since = t0
			break
		}
		if !probing {
			probing = true
			a.progress(ctx, api.StepReport{StepID: id, Phase: engine.PhaseVerifying, BootID: boot, Evidence: ev})
		}
		if a.clock.Now().Add(interval).Sub(start) > deadline {
			err := a.finish(ctx, id, api.StepReport{Phase: engine.PhaseFailed, Gate: engine.Fail, BootID: boot, Evidence: ev,
				Reason: fmt.Sprintf("node probes did not pass within %s: %s", deadline, reason)})
			a.captureEvidence(ctx, id, reason)
			return err
		}
		if err := a.c.sleep(ctx, interval); err != nil {
			return errStopped
		}
	}
	timing := stepTiming(a.stepOf(id), since)
	minHealthy := p.MinHealthy.D()
	if minHealthy <= 0 {
		return a.finish(ctx, id, api.StepReport{Phase: engine.PhaseVerifying, Gate: engine.Pass, HealthySince: since, BootID: boot, Evidence: ev, Timing: timing})
	}
	a.progress(ctx, api.StepReport{StepID: id, Phase: engine.PhaseVerifying, Gate: engine.Pass, HealthySince: since, BootID: boot})
	for a.clock.Now().Sub(since) < minHealthy {
		wait := min(interval, minHealthy-a.clock.Now().Sub(since))
		if err := a.c.sleep(ctx, wait); err != nil {
			return errStopped
		}
		reason := a.probeAll(ctx, p.Probes, st.Host)
		if ctx.Err() != nil {
			return errStopped
		}
		if reason != "" {
			err := a.finish(ctx, id, api.StepReport{Phase: engine.PhaseVerifying, Gate: engine.Fail, BootID: boot, Evidence: ev,
				Reason: fmt.Sprintf("%s (healthy since %s, failed after %s of the %s soak)", reason,
					since.UTC().Format(time.RFC3339), a.clock.Now().Sub(since).Round(time.Second), minHealthy)})
			a.captureEvidence(ctx, id, reason)
			return err
		}
	}
	return a.finish(ctx, id, api.StepReport{Phase: engine.PhaseVerifying, Gate: engine.Pass, HealthySince: since, BootID: boot, Evidence: ev, Timing: timing})
}

func (a *agent) stepOf(id string) stepState {
	st, _ := a.j.step(id)
	return st
}

// stepTiming splits an apply step's time from its start to healthy
// into the actions, the reboot and the probes, from the journal (nil
// when the journal does not show where the probes began).
func stepTiming(st stepState, healthy time.Time) *api.StepTiming {
	if st.Started.IsZero() || st.VerifyAt.IsZero() || healthy.Before(st.VerifyAt) {
		return nil
	}
	end := st.VerifyAt
	t := &api.StepTiming{}
	if !st.RebootAt.IsZero() && st.RebootAt.Before(st.VerifyAt) {
		end = st.RebootAt
		t.RebootSeconds = st.VerifyAt.Sub(st.RebootAt).Seconds()
	}
	t.ExecutionSeconds = max(0, end.Sub(st.Started).Seconds())
	t.ProbeSeconds = healthy.Sub(st.VerifyAt).Seconds()
	return t
}

// probeAll runs every probe and returns the reasons of those that failed,
// or "" when all passed. Host checks compare with base, the host before
// the step.
func (a *agent) probeAll(ctx context.Context, probes []plan.Probe, base *hostcheck.Snapshot) string {
	var reasons []string
	for _, pr := range probes {
		res := a.prober.RunAgainst(ctx, pr, base)
		if res.Verdict != engine.Pass {
			reasons = append(reasons, res.Reason)
		}
	}
	return strings.Join(reasons, "; ")
}

// kernelProbes returns the kernel-errors probes among probes.
func kernelProbes(probes []plan.Probe) []plan.Probe {
	var out []plan.Probe
	for _, p := range probes {
		if p.Kind == plan.ProbeKernelErrors {
			out = append(out, p)
		}
	}
	return out
}

// goos is the node's operating system, as the host checks see it.
func (a *agent) goos() string {
	switch {
	case a.prober.Host != nil && a.prober.Host.GOOS != "":
		return a.prober.Host.GOOS
	case a.prober.GOOS != "":
		return a.prober.GOOS
	}
	return runtime.GOOS
}

// rollbackVerifier is implemented by drivers that can check a rollback
// against its snapshot directly (the simulated driver does).
type rollbackVerifier interface {
	VerifyRollback(ctx context.Context, a plan.Action, s driver.Snapshot) error
}

// rollback runs a rollback step: hold the node again (cordon and drain)
// if ref's kubernetes-node action covers changes still in place; restore,
// last first, the snapshots the journal holds for ref (this node's last
// apply of the rollout) and check each restore; reboot if a restore needs
// it; then uncordon (the kubernetes-node action's Rollback), unless a
// restore failed; report rolled-back. Actions not yet rolled back in st
// are rolled back (Rollback is idempotent, so resuming is safe).
func (a *agent) rollback(ctx context.Context, st, ref stepState) error {
	facts := a.currentFacts()
	boot, _ := a.bootID(ctx)
	if st.Probed != nil {
		// Resumed after the probes: their verdict stands (a node taken
		// out of service again no longer matches the restored snapshots).
		return a.rolledBack(ctx, st.ID, ref, a.uncordoners(ref), st.Undone, *st.Probed, boot)
	}
	if why, err := a.hold(ctx, st, ref); err != nil {
		return err
	} else if why != "" {
		return a.finish(ctx, st.ID, api.StepReport{Phase: engine.PhaseFailed, Reason: "rollback failed: " + why, BootID: boot, Evidence: a.evidence(st.ID)})
	}
	var errs, done, kept, left []string
	var held []int // uncordoner actions, last first: rolled back after the restores and the reboot
	// The restores and their checks are bounded as an apply is: one that
	// times out is a failed rollback.
	rctx, cancel := bounded(ctx, st.Payload)
	defer cancel()
	rebootNeeded := false
	keptKernel := false // a kernel action with onRollback: hold
	// restore rolls back action i of ref (unless st did already) and
	// checks it; it reports false when ctx ended.
	restore := func(i int, d driver.Driver) (bool, error) {
		as, act := ref.Actions[i], ref.Payload.Actions[i]
		what := describe(act, facts.OS.Family)
		if mine := st.Actions[i]; mine == nil || !mine.RolledBack {
			if why, err := a.fallbackFirst(ctx, st.ID, i, act, *as.Snapshot, d); err != nil {
				return false, err
			} else if why != "" {
				errs = append(errs, what+": "+why)
				_ = a.j.append(record{Type: recAction, Step: st.ID, At: a.clock.Now(), Action: i, Stage: stageRestoreErr, Driver: d.Name(), Reason: why})
				return true, nil
			}
			var out driver.Outcome
			var err error
			if _, ok := a.isUncordoner(act); ok {
				out, err = a.retryUncordon(rctx, st.ID, what, func(ctx context.Context) (driver.Outcome, error) {
					return d.Rollback(ctx, act, *as.Snapshot)
				})
			} else {
				out, err = d.Rollback(rctx, act, *as.Snapshot)
			}
			if stopped(ctx, err) {
				return false, errStopped
			}
			if timedOut(ctx, rctx, err) {
				err = timeoutError("rollback", st.Payload, d)
			}
			if err != nil {
				errs = append(errs, what+": "+err.Error())
				_ = a.j.append(record{Type: recAction, Step: st.ID, At: a.clock.Now(), Action: i, Stage: stageRestoreErr, Driver: d.Name(), Reason: err.Error()})
				return true, nil
			}
			if err := a.j.append(record{Type: recAction, Step: st.ID, At: a.clock.Now(), Action: i, Stage: stageRolledBack, Driver: d.Name(), Snapshot: as.Snapshot, Outcome: &out}); err != nil {
				return false, err
			}
			rebootNeeded = rebootNeeded || out.RebootRequired
		}
		if err := verifyRestored(rctx, d, act, *as.Snapshot); err != nil {
			if stopped(ctx, err) {
				return false, errStopped
			}
			if timedOut(ctx, rctx, err) {
				err = timeoutError("rollback verify", st.Payload, d)
			}
			errs = append(errs, what+": "+err.Error())
			return true, nil
		}
		if cur, _ := a.j.step(st.ID); cur.Actions[i] != nil && cur.Actions[i].FallbackConfirmed {
			what += " (" + cur.Actions[i].FallbackReason + ")"
		}
		keptKernel = keptKernel || (act.Kernel != nil && act.Kernel.OnRollback == plan.KernelHold)
		done = append(done, what)
		return true, nil
	}
	for i := len(ref.Payload.Actions) - 1; i >= 0; i-- {
		as := ref.Actions[i]
		if as == nil || as.Snapshot == nil {
			continue // the apply never changed it
		}
		act := ref.Payload.Actions[i]
		if why := leftInPlace(act, facts.OS.Family); why != "" {
			left = append(left, describe(act, facts.OS.Family)+" left in place: "+why)
			continue
		}
		d, err := a.cfg.Drivers.For(act, facts)
		if err != nil {
			errs = append(errs, describe(act, facts.OS.Family)+": "+err.Error())
			continue
		}
		if _, ok := a.isUncordoner(act); ok {
			held = append(held, i)
			continue
		}
		if ok, err := restore(i, d); !ok {
			return err
		}
	}
	if len(errs) == 0 {
		cur, _ := a.j.step(st.ID)
		if rebootNeeded && st.Payload.Reboot != plan.RebootNever && len(cur.Reboots) == 0 {
			if a.cfg.Rebooter == nil {
				return a.finish(ctx, st.ID, api.StepReport{Phase: engine.PhaseFailed, BootID: boot, Evidence: a.evidence(st.ID),
					Reason: "rollback failed: the restore needs a reboot but this agent has no rebooter configured" + keptCordoned(a.describeAll(ref, held), "the restore's reboot did not happen")})
			}
			if err := a.j.append(record{Type: recRebooting, Step: st.ID, At: a.clock.Now(), BootID: boot}); err != nil {
				return err
			}
			if err := a.cfg.Rebooter.Reboot(ctx, "drover rollback "+st.ID); err != nil {
				if stopped(ctx, err) {
					return errStopped
				}
				return a.finish(ctx, st.ID, api.StepReport{Phase: engine.PhaseFailed, BootID: boot, Evidence: a.evidence(st.ID),
					Reason: "rollback failed: reboot: " + err.Error() + keptCordoned(a.describeAll(ref, held), "the restore's reboot did not happen")})
			}
			if now, _ := a.bootID(ctx); now == boot {
				<-ctx.Done() // a real reboot kills us; the next start finishes the step
				return errStopped
			}
			boot, _ = a.bootID(ctx)
		}
	}
	// Back in service last, and only when everything it covers is restored.
	for _, i := range held {
		if len(errs) > 0 {
			kept = append(kept, describe(ref.Payload.Actions[i], facts.OS.Family))
			continue
		}
		d, _ := a.cfg.Drivers.For(ref.Payload.Actions[i], facts)
		if ok, err := restore(i, d); !ok {
			return err
		}
	}
	boot, _ = a.bootID(ctx) // a kernel fallback may have rebooted the node
	if len(errs) > 0 {
		reason := "rollback failed: " + strings.Join(errs, "; ")
		if len(done) > 0 {
			reason += " (restored: " + strings.Join(done, ", ") + ")"
		}
		return a.finish(ctx, st.ID, api.StepReport{Phase: engine.PhaseFailed, Reason: reason + keptCordoned(kept, "a restore failed"), BootID: boot, Evidence: a.evidence(st.ID)})
	}
	var reason string
	switch {
	case len(done) > 0 && keptKernel:
		reason = "undid " + strings.Join(done, ", ") + ": back on the kernel and the state recorded before " + ref.ID +
			"; the new kernel stays installed but held, not booted, as onRollback: hold says"
	case len(done) > 0:
		reason = "undid " + strings.Join(done, ", ") + ": restored the snapshots taken before " + ref.ID
	case len(left) > 0:
		reason = "nothing undone, by the plan's choice"
	default:
		reason = "nothing to restore: " + ref.ID + " changed nothing"
	}
	if len(left) > 0 {
		reason += "; " + strings.Join(left, "; ")
	}
	// The node's probes run again, as after the apply (after the
	// uncordon); their verdict is journaled before a node still unhealthy
	// is taken out of service again.
	probed, err := a.probeAfterRollback(ctx, st.Payload, ref.Host)
	if err != nil {
		return err
	}
	if err := a.j.append(record{Type: recProbed, Step: st.ID, At: a.clock.Now(), Reason: reason, Probed: &probed}); err != nil {
		return err
	}
	return a.rolledBack(ctx, st.ID, ref, held, reason, probed, boot)
}

// rolledBack reports rollback step id of ref rolled back with what the
// node's probes said after it (undone: what the rollback did): a node
// still unhealthy is first taken out of service again through the
// uncordoner actions held of ref.
func (a *agent) rolledBack(ctx context.Context, id string, ref stepState, held []int, undone string, probed rollbackProbes, boot string) error {
	reason := undone
	switch probed.Verdict {
	case engine.Fail:
		out, err := a.holdAgain(ctx, id, ref, held)
		if err != nil {
			return err
		}
		reason = "rollback done but still unhealthy: " + probed.Reason + " (" + reason + ")" + out
	case engine.Pass:
		reason += "; verified healthy: " + probed.Reason
	default:
		reason += "; not verified: " + probed.Reason
	}
	ev := a.evidence(id)
	if ev == nil {
		ev = map[string]any{}
	}
	ev["probesAfterRollback"] = probed.evidence()
	if left := a.leftOf(ref); len(left) > 0 {
		ev["leftInPlace"] = left
	}
	return a.finish(ctx, id, api.StepReport{Phase: engine.PhaseRolledBack, Gate: probed.Verdict, Reason: reason, BootID: boot, Evidence: ev})
}

// leftInPlace says why a rollback leaves act in place on a node of os
// family: the drivers there have no way back (driver.UndoOf) and the plan
// accepts it (rollback: none, or the family in noRollbackOn). "" when
// the rollback undoes act. An action the drivers can undo is undone even
// where the plan would accept no way back.
func leftInPlace(act plan.Action, family string) string {
	switch u := driver.UndoOf(act, family); {
	case !u.None:
		return ""
	case u.ByPlan:
		return "the plan says rollback: none"
	case act.AcceptsNoRollback(family):
		return "the plan accepts no rollback on " + family
	}
	return ""
}

// leftOf lists the actions st changed that a rollback leaves in place,
// each with why.
func (a *agent) leftOf(st stepState) []string {
	fam := a.currentFacts().OS.Family
	var out []string
	for i, act := range st.Payload.Actions {
		if as := st.Actions[i]; as == nil || as.Snapshot == nil {
			continue
		}
		if why := leftInPlace(act, fam); why != "" {
			out = append(out, describe(act, fam)+" left in place: "+why)
		}
	}
	return out
}

// uncordoners lists the uncordoner actions (kubernetes-node) st changed,
// last first.
func (a *agent) uncordoners(st stepState) []int {
	var out []int
	for i := len(st.Payload.Actions) - 1; i >= 0; i-- {
		if as := st.Actions[i]; as == nil || as.Snapshot == nil {
			continue
		}
		if _, ok := a.isUncordoner(st.Payload.Actions[i]); ok {
			out = append(out, i)
		}
	}
	return out
}

// holdAgain takes the node out of service again (cordon, and drain, the
// uncordoner's Apply) for each uncordoner action idx of ref, after a
// rollback that left it unhealthy, and says what it did for the reason
// ("" when ref has no such action).
func (a *agent) holdAgain(ctx context.Context, id string, ref stepState, idx []int) (string, error) {
	if len(idx) == 0 {
		return "", nil
	}
	facts := a.currentFacts()
	var held, errs []string
	for _, i := range idx {
		act := ref.Payload.Actions[i]
		what := describe(act, facts.OS.Family)
		d, err := a.cfg.Drivers.For(act, facts)
		if err != nil {
			errs = append(errs, what+": "+err.Error())
			continue
		}
		out, err := d.Apply(ctx, act)
		if stopped(ctx, err) {
			return "", errStopped
		}
		if err != nil {
			errs = append(errs, what+": "+err.Error())
			continue
		}
		if err := a.j.append(record{Type: recAction, Step: id, At: a.clock.Now(), Action: i, Stage: stageHeld, Driver: d.Name(), Outcome: &out}); err != nil {
			return "", err
		}
		held = append(held, what)
	}
	var s string
	if len(held) > 0 {
		s = "; node taken out of service again (" + strings.Join(held, ", ") + "): it stays so until a human resolves it"
	}
	if len(errs) > 0 {
		s += "; could not take the node out of service again: " + strings.Join(errs, "; ")
	}
	return s, nil
}

// rollbackProbes is what the node's probes said after a rollback:
// verdict Pass (reason names what passed), Fail (reason says why), or ""
// when nothing could be probed (reason says why).
type rollbackProbes struct {
	Verdict engine.Verdict `json:"verdict,omitempty"`
	Reason  string         `json:"reason"`
	Skipped []string       `json:"skipped,omitempty"` // probes this agent's policy does not run
	Took    time.Duration  `json:"took"`
}

func (r rollbackProbes) evidence() map[string]any {
	e := map[string]any{"verdict": string(r.Verdict), "reason": r.Reason, "took": r.Took.String()}
	if r.Verdict == "" {
		e["verdict"] = "not-verified"
	}
	if len(r.Skipped) > 0 {
		e["skipped"] = r.Skipped
	}
	return e
}

// probeAfterRollback runs the step's probes (the plan's node probes, the
// same as after the apply) until they all pass, for at most the step's
// healthy deadline; no soak. Probes this agent's policy refuses (a
// rollback is not refused for them) are left out and named. It returns
// errStopped when ctx ends.
//
// Host checks compare with base, the host before the apply step the
// rollback undoes, except kernel-errors: the errors the failed change
// logged stay in the log, so after a rollback only lines logged since
// its probes began count.
func (a *agent) probeAfterRollback(ctx context.Context, p api.StepPayload, base *hostcheck.Snapshot) (rollbackProbes, error) {
	var out rollbackProbes
	var probes []plan.Probe
	for i, pr := range p.Probes {
		if why := plan.RefusedProbe(pr, a.policy); why != "" {
			out.Skipped = append(out.Skipped, fmt.Sprintf("probe %d: %s", i+1, why))
			continue
		}
		probes = append(probes, pr)
	}
	if len(probes) == 0 {
		out.Reason = "the plan has no node probes"
		if len(out.Skipped) > 0 {
			out.Reason = "this agent runs none of the plan's node probes (" + strings.Join(out.Skipped, "; ") + ")"
		}
		return out, nil
	}
	interval := plan.DefaultProbeInterval.D()
	for i, pr := range probes {
		if d := pr.Interval.D(); d > 0 && (i == 0 || d < interval) {
			interval = d
		}
	}
	deadline := p.HealthyDeadline.D()
	if deadline <= 0 {
		deadline = plan.DefaultHealthyDeadline.D()
	}
	if k := a.prober.HostSnapshot(ctx, kernelProbes(probes)); k != nil {
		b := hostcheck.Snapshot{}
		if base != nil {
			b = *base
			b.Kinds = slices.Clone(base.Kinds)
		}
		b.KernelSeq, b.KernelErr, b.KernelBoot = k.KernelSeq, k.KernelErr, k.KernelBoot
		if !slices.Contains(b.Kinds, plan.ProbeKernelErrors) {
			b.Kinds = append(b.Kinds, plan.ProbeKernelErrors)
		}
		base = &b
	}
	start := a.clock.Now()
	for {
		why := a.probeAll(ctx, probes, base)
		if ctx.Err() != nil {
			return out, errStopped
		}
		out.Took = a.clock.Now().Sub(start)
		if why == "" {
			out.Verdict, out.Reason = engine.Pass, fmt.Sprintf("%d node probes passed", len(probes))
			if len(out.Skipped) > 0 {
				out.Reason += " (not run by this agent: " + strings.Join(out.Skipped, "; ") + ")"
			}
			return out, nil
		}
		if a.clock.Now().Add(interval).Sub(start) > deadline {
			out.Verdict = engine.Fail
			out.Reason = fmt.Sprintf("node probes did not pass within %s of the rollback: %s", deadline, why)
			return out, nil
		}
		if err := a.c.sleep(ctx, interval); err != nil {
			return out, errStopped
		}
	}
}

// describeAll describes actions idx of st.
func (a *agent) describeAll(st stepState, idx []int) []string {
	fam := a.currentFacts().OS.Family
	var out []string
	for _, i := range idx {
		out = append(out, describe(st.Payload.Actions[i], fam))
	}
	return out
}

// verifyRestored checks a rollback: through the driver's VerifyRollback
// when it has one, else by taking a snapshot again and comparing its data
// with the one restored.
func verifyRestored(ctx context.Context, d driver.Driver, act plan.Action, snap driver.Snapshot) error {
	if rv, ok := d.(rollbackVerifier); ok {
		return rv.VerifyRollback(ctx, act, snap)
	}
	now, err := d.Snapshot(ctx, act)
	if err != nil {
		return fmt.Errorf("check restore: %w", err)
	}
	var want, got any
	if json.Unmarshal(snap.Data, &want) != nil || json.Unmarshal(now.Data, &got) != nil || !reflect.DeepEqual(want, got) {
		return fmt.Errorf("state after rollback (%s) differs from the snapshot (%s)", now.Summary, snap.Summary)
	}
	return nil
}

// evidence gathers what the journal holds about a step's actions: the
// driver, the change found by Preflight, the snapshot, the outcome of
// Apply and of any rollback; and the reboots requested.
func (a *agent) evidence(id string) map[string]any {
	st, ok := a.j.step(id)
	if !ok {
		return nil
	}
	actions := st.Payload.Actions
	var ref stepState // the apply a rollback restores: its change records go with the rollback's
	if st.From != "" {
		if r, ok := a.j.step(st.From); ok {
			ref, actions = r, r.Payload.Actions
		}
	}
	fam := a.currentFacts().OS.Family
	var list []map[string]any
	for i, act := range actions {
		as := st.Actions[i]
		if as == nil {
			continue
		}
		e := map[string]any{"index": i, "action": describe(act, fam)}
		if as.Driver != "" {
			e["driver"] = as.Driver
		}
		if as.Change != nil {
			e["change"] = as.Change
		} else if ras := ref.Actions[i]; ras != nil && ras.Change != nil {
			e["change"] = ras.Change
		}
		if as.Snapshot != nil {
			e["snapshot"] = as.Snapshot
		}
		if as.Outcome != nil {
			e["outcome"] = as.Outcome
		}
		if as.Rollback != nil {
			e["rollback"] = as.Rollback
		}
		if as.Uncordon != nil {
			e["uncordon"] = as.Uncordon
		}
		if as.Hold != nil {
			e["hold"] = as.Hold
		}
		if as.Fallback != nil {
			e["fallbackBoot"] = as.Fallback
		}
		if as.FallbackConfirmed {
			e["fallbackConfirmed"] = as.FallbackReason
		}
		list = append(list, e)
	}
	ev := map[string]any{}
	if len(list) > 0 {
		ev["actions"] = list
	}
	if st.From != "" {
		ev["restores"] = st.From
	}
	if len(st.Reboots) > 0 {
		ev["rebootsFromBootIds"] = st.Reboots
	}
	if h := st.Host; h != nil || ref.Host != nil {
		if h == nil {
			h = ref.Host
		}
		ev["hostBefore"] = hostEvidence(h)
	}
	if len(ev) == 0 {
		return nil
	}
	return ev
}

// hostEvidence is the host snapshot a step's host checks compare with,
// for the report: the mounts only by those read-only (a node may have
// hundreds), the rest whole.
func hostEvidence(h *hostcheck.Snapshot) map[string]any {
	e := map[string]any{"taken": h.Taken}
	var ro []string
	for _, m := range h.Mounts {
		if m.ReadOnly {
			ro = append(ro, m.Point)
		}
	}
	for k, v := range map[string]any{"readOnlyMounts": ro, "failedUnits": h.FailedUnits, "firewall": h.Firewall, "mtus": h.MTUs,
		"mountsError": h.MountsErr, "failedUnitsError": h.FailedUnitsErr, "firewallError": h.FirewallErr, "mtusError": h.MTUsErr,
		"kernelError": h.KernelErr} {
		switch v := v.(type) {
		case string:
			if v != "" {
				e[k] = v
			}
		case []string:
			if len(v) > 0 {
				e[k] = v
			}
		case map[string]int:
			if len(v) > 0 {
				e[k] = v
			}
		}
	}
	if h.KernelSeq > 0 {
		e["kernelSeq"] = h.KernelSeq
	}
	return e
}

// describe names an action for people: "package openssl 3.0.15",
// "kernel 6.1.0-27".
func describe(act plan.Action, family string) string {
	kind, err := driver.KindOf(act)
	if err != nil {
		return "action " + act.Name
	}
	switch kind {
	case plan.ActionPackage:
		pins := act.Package.Packages
		if fp, ok := act.Package.Families[family]; ok {
			pins = fp
		}
		var parts []string
		for i, p := range pins {
			if i == 3 {
				parts = append(parts, fmt.Sprintf("(+%d more)", len(pins)-3))
				break
			}
			parts = append(parts, p.Name+" "+p.Version)
		}
		if family == "macos" {
			return "macOS update " + strings.Join(parts, ", ")
		}
		return "package " + strings.Join(parts, ", ")
	case plan.ActionKernel:
		return "kernel " + act.Kernel.Version
	case plan.ActionLivePatch:
		return "livepatch " + act.LivePatch.ID
	case plan.ActionServiceRestart:
		return "service-restart " + act.ServiceRestart.Service
	case plan.ActionContainerRuntime:
		return "container-runtime " + act.ContainerRuntime.Runtime + " " + act.ContainerRuntime.Version
	case plan.ActionKubernetesNode:
		if !act.KubernetesNode.Drain {
			return "kubernetes-node cordon"
		}
		return "kubernetes-node drain"
	case plan.ActionScript:
		return "script " + act.Script.Artifact
	}
	return string(kind)
}

var _ probe.Clock = Clock(nil)
