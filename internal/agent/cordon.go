package agent

import (
	"context"
	"errors"

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/plan"
)

// uncordoner is implemented by the drivers whose Apply takes the node out
// of service for the actions after it in the plan (kubernetes-node:
// cordon, and drain). Uncordon returns the node to service according to
// the action's snapshot: it is idempotent, and leaves cordoned a node the
// snapshot shows was cordoned before the step (an operator's cordon). The
// driver's Rollback does the same.
//
// The agent's obligations (see the package doc, "Kubernetes nodes"):
// uncordon once every action of the step is applied and verified and the
// step's reboot, if any, is done; never before; and never after a failed
// restore of an action the cordon covers.
type uncordoner interface {
	Uncordon(ctx context.Context, a plan.Action, s driver.Snapshot) (driver.Outcome, error)
}

var (
	_ uncordoner = (*driver.KubernetesNode)(nil)
	_ uncordoner = (*driver.Sim)(nil)
)

// uncordonTries bounds the tries of one Uncordon (or the Rollback of an
// uncordoner) with the agent's backoff between them (1s, 2s, 4s ... up
// to MaxBackoff, jittered): about one to two minutes, time for an API
// server to restart.
const uncordonTries = 8

// isUncordoner reports whether act is a kubernetes-node action whose
// driver on this node is an uncordoner (the simulated driver, which
// handles every kind, uncordons only those).
func (a *agent) isUncordoner(act plan.Action) (uncordoner, bool) {
	if kind, err := driver.KindOf(act); err != nil || kind != plan.ActionKubernetesNode {
		return nil, false
	}
	d, err := a.cfg.Drivers.For(act, a.currentFacts())
	if err != nil {
		return nil, false
	}
	u, ok := d.(uncordoner)
	return u, ok
}

// retryUncordon calls fn (an Uncordon or an uncordoner's Rollback) until
// it succeeds, ctx ends or uncordonTries are spent, and returns its last
// error (errStopped when ctx ended).
func (a *agent) retryUncordon(ctx context.Context, id, what string, fn func(context.Context) (driver.Outcome, error)) (driver.Outcome, error) {
	for n := 0; ; n++ {
		out, err := fn(ctx)
		if err == nil {
			return out, nil
		}
		if stopped(ctx, err) {
			return out, errStopped
		}
		// A node not Ready was waited for already, for the action's timeout.
		if n+1 >= uncordonTries || errors.Is(err, driver.ErrNotReady) {
			return out, err
		}
		d := a.c.backoff(n)
		a.log.Warn("uncordon failed; retrying", "step", id, "action", what, "try", n+1, "in", d, "error", err)
		if a.c.sleep(ctx, d) != nil {
			return out, errStopped
		}
	}
}

// returnToService uncordons, last first, every action of apply step id
// that owes it (journaled: uncordoned), and returns why it could not (""
// when the node is back in service, or was never taken out).
func (a *agent) returnToService(ctx context.Context, id string) (string, error) {
	st, _ := a.j.step(id)
	fam := a.currentFacts().OS.Family
	for i := len(st.Payload.Actions) - 1; i >= 0; i-- {
		as := st.Actions[i]
		if !as.owesUncordon() {
			continue
		}
		act := st.Payload.Actions[i]
		u, ok := a.isUncordoner(act)
		if !ok {
			continue
		}
		what := describe(act, fam)
		if !as.Uncordoning {
			if err := a.j.append(record{Type: recAction, Step: id, At: a.clock.Now(), Action: i, Stage: stageUncordoning}); err != nil {
				return "", err
			}
		}
		snap := *as.Snapshot
		out, err := a.retryUncordon(ctx, id, what, func(ctx context.Context) (driver.Outcome, error) {
			return u.Uncordon(ctx, act, snap)
		})
		if errors.Is(err, errStopped) {
			return "", errStopped
		}
		if err != nil {
			return what + ": every action applied, but uncordon failed: " + err.Error(), nil
		}
		if err := a.j.append(record{Type: recAction, Step: id, At: a.clock.Now(), Action: i, Stage: stageUncordoned, Outcome: &out}); err != nil {
			return "", err
		}
		a.log.Info("node back in service", "step", id, "action", what, "outcome", out.Summary)
	}
	return "", nil
}

// toService returns the node to service after the step's actions (and
// reboot), then runs the node probes; an uncordon that fails fails the
// step.
func (a *agent) toService(ctx context.Context, id string) error {
	reason, err := a.returnToService(ctx, id)
	if err != nil {
		return err
	}
	if reason != "" {
		return a.fail(ctx, id, reason)
	}
	return a.verifyPhase(ctx, id)
}

// holdCovers reports whether the uncordoner action i of apply step ref
// covers an action that ref left changed: one after it that was applied
// (snapshot taken) and not rolled back in-step. Only then does a rollback
// step need the node drained again.
func holdCovers(ref stepState, i int) bool {
	for j := i + 1; j < len(ref.Payload.Actions); j++ {
		if as := ref.Actions[j]; as != nil && as.Snapshot != nil && !as.RolledBack {
			return true
		}
	}
	return false
}

// hold cordons and drains the node again (the uncordoner's Apply) for
// rollback step st, before anything of ref is restored, for every
// uncordoner action of ref that covers a change still in place. It
// returns why it could not ("" when held, or nothing needs holding);
// then nothing is restored and the node is not uncordoned: it still runs
// the change the rollback was for.
func (a *agent) hold(ctx context.Context, st, ref stepState) (string, error) {
	fam := a.currentFacts().OS.Family
	for i, act := range ref.Payload.Actions {
		as := ref.Actions[i]
		if as == nil || as.Snapshot == nil || !holdCovers(ref, i) {
			continue
		}
		if mine := st.Actions[i]; mine != nil && (mine.Held || mine.RolledBack) {
			continue
		}
		d, err := a.cfg.Drivers.For(act, a.currentFacts())
		if err != nil {
			continue // reported by the restore
		}
		if _, ok := a.isUncordoner(act); !ok {
			continue
		}
		what := describe(act, fam)
		a.log.Info("holding the node again before the rollback", "step", st.ID, "action", what)
		out, err := d.Apply(ctx, act)
		if stopped(ctx, err) {
			return "", errStopped
		}
		if err != nil {
			return what + ": could not cordon and drain the node before restoring (" + err.Error() + "); nothing was restored and the node is not uncordoned", nil
		}
		if err := a.j.append(record{Type: recAction, Step: st.ID, At: a.clock.Now(), Action: i, Stage: stageHeld, Driver: d.Name(), Outcome: &out}); err != nil {
			return "", err
		}
	}
	return "", nil
}
