package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/drover-dev/drover/internal/engine"
)

// Command applies a human action. The rules are the engine's
// (engine.CommandInput.Apply: approve, pause, resume, abort, rollback,
// resolve, stop); this loads what they read, calls them and persists the
// result: the rollout's new state, the approval, the resolved node (its
// unfinished step closed so that a late report of it is refused), and
// the cancellations of steps not begun (abort, stop). A refusal is
// ErrConflict (not in this state), ErrForbidden (an author approving)
// or ErrNotFound (no such rollout, wave or node). The version is bumped
// and the action audited (actor cmd.Actor) in the same transaction; a
// repeated approval changes nothing and succeeds.
func (s *sqlStore) Command(ctx context.Context, id string, ifVersion int64, cmd Command, now time.Time) (Rollout, error) {
	if now.IsZero() {
		now = s.clock()
	}
	if cmd.Actor == "" {
		return Rollout{}, fmt.Errorf("%s rollout %s: no actor", cmd.Action, id)
	}
	var out Rollout
	err := s.write(ctx, func(t *tx) error {
		ro, err := t.getRollout(id, true)
		if err != nil {
			return err
		}
		in, err := t.commandInput(ro, cmd, now)
		if err != nil {
			return err
		}
		res, err := in.Apply(engine.Command{Action: engine.Action(cmd.Action), Actor: cmd.Actor, Reason: cmd.Reason,
			Wave: cmd.Wave, Node: cmd.NodeID, Resolution: cmd.Resolution})
		if err != nil {
			return ruleError(err)
		}
		if res.Repeat {
			out = ro
			return nil
		}
		if ifVersion != 0 && ro.Version != ifVersion {
			return fmt.Errorf("rollout is at version %d, not %d: %w", ro.Version, ifVersion, ErrConflict)
		}
		d := map[string]any{"from": ro.State, "to": res.State}
		if cmd.Reason != "" {
			d["reason"] = cmd.Reason
		}
		if a := res.Approval; a != nil {
			if _, err := t.exec("INSERT INTO approvals (rollout_id, wave, by_user, plan_sha256, assignment_sha256, at) VALUES (?, ?, ?, ?, ?, ?)",
				id, a.Wave, a.By, ro.PlanSHA256, ro.AssignmentSHA256, nanos(now)); err != nil {
				return fmt.Errorf("record approval: %w", err)
			}
			d["wave"], d["plan_sha256"], d["assignment_sha256"] = a.Wave, ro.PlanSHA256, ro.AssignmentSHA256
		}
		if cmd.Action == string(engine.ActRollback) {
			d["scope"] = cmd.Wave
		}
		if st := res.Resolved; st != nil {
			if err := t.resolve(id, cmd.NodeID, *st, now); err != nil {
				return err
			}
			d["node"], d["node_from"], d["node_to"] = cmd.NodeID, in.Node.Phase, st.Phase
		}
		if len(res.Cancels) > 0 {
			if err := t.cancel(id, res.Cancels, now); err != nil {
				return err
			}
			d["cancelled"], d["cancel_requested"] = countCancels(res.Cancels)
		}
		if _, err := t.exec("UPDATE rollouts SET state = ?, reason = ?, rollback_scope = ?, version = version + 1, updated_at = ? WHERE id = ?",
			string(res.State), res.Reason, res.RollbackScope, nanos(now), id); err != nil {
			return fmt.Errorf("update rollout: %w", err)
		}
		if err := t.advanceTimes(ro, timesEvent{At: now, From: ro.State, To: res.State}); err != nil {
			return err
		}
		t.audit(AuditEntry{At: now, Actor: cmd.Actor, Action: "rollout." + cmd.Action, Object: "rollout/" + id, Rollout: id, Detail: detail(d)})
		out, err = t.getRollout(id, false)
		return err
	})
	if err != nil {
		return Rollout{}, fmt.Errorf("%s rollout %s: %w", cmd.Action, id, err)
	}
	return out, nil
}

// ruleError maps the engine's rule errors to the store's sentinels.
func ruleError(err error) error {
	switch {
	case errors.Is(err, engine.ErrNotNow):
		return fmt.Errorf("%w (%w)", ErrConflict, err)
	case errors.Is(err, engine.ErrForbidden):
		return fmt.Errorf("%w (%w)", ErrForbidden, err)
	case errors.Is(err, engine.ErrNotFound):
		return fmt.Errorf("%w (%w)", ErrNotFound, err)
	}
	return err
}

func countCancels(cs []engine.Cancellation) (now, requested int) {
	for _, c := range cs {
		if c.Now {
			now++
		} else {
			requested++
		}
	}
	return now, requested
}

// commandInput loads what the command rules read.
func (t *tx) commandInput(ro Rollout, cmd Command, now time.Time) (engine.CommandInput, error) {
	in := engine.CommandInput{Author: ro.Author, State: ro.State, Reason: ro.Reason, RollbackScope: ro.RollbackScope, Now: now}
	switch engine.Action(cmd.Action) {
	case engine.ActApprove:
		rows, err := t.query("SELECT by_user, wave FROM approvals WHERE rollout_id = ? AND plan_sha256 = ? AND assignment_sha256 = ?",
			ro.ID, ro.PlanSHA256, ro.AssignmentSHA256)
		if err != nil {
			return in, fmt.Errorf("approvals: %w", err)
		}
		for rows.Next() {
			var a engine.Approval
			if err := rows.Scan(&a.By, &a.Wave); err != nil {
				rows.Close()
				return in, fmt.Errorf("approvals: %w", err)
			}
			in.Approvals = append(in.Approvals, a)
		}
		if err := closeRows(rows); err != nil {
			return in, fmt.Errorf("approvals: %w", err)
		}
	case engine.ActRollback:
		rows, err := t.query("SELECT name FROM waves WHERE rollout_id = ?", ro.ID)
		if err != nil {
			return in, fmt.Errorf("waves: %w", err)
		}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return in, fmt.Errorf("waves: %w", err)
			}
			in.Waves = append(in.Waves, name)
		}
		if err := closeRows(rows); err != nil {
			return in, fmt.Errorf("waves: %w", err)
		}
	case engine.ActResolve:
		if cmd.NodeID == "" {
			break
		}
		n, err := t.getRolloutNode(ro.ID, cmd.NodeID, true)
		switch {
		case err == nil:
			in.Node = &n.State
		case !isNotFound(err):
			return in, err
		}
	case engine.ActAbort, engine.ActStop:
		steps, err := t.openSteps(ro.ID)
		if err != nil {
			return in, err
		}
		in.Steps = steps
	}
	return in, nil
}

// openSteps lists a rollout's unfinished current steps with their
// nodes' phases.
func (t *tx) openSteps(rollout string) ([]engine.OpenStep, error) {
	rows, err := t.query(`SELECT s.id, s.node_id, s.kind, s.delivered_at IS NOT NULL, s.begun_at IS NOT NULL, s.cancel_requested_at IS NOT NULL, rn.phase
FROM steps s JOIN rollout_nodes rn ON rn.rollout_id = s.rollout_id AND rn.node_id = s.node_id AND rn.step_id = s.id
WHERE s.rollout_id = ? AND s.finished_at IS NULL ORDER BY rn.idx`, rollout)
	if err != nil {
		return nil, fmt.Errorf("open steps of rollout %s: %w", rollout, err)
	}
	var out []engine.OpenStep
	for rows.Next() {
		var st engine.OpenStep
		var kind, phase string
		if err := rows.Scan(&st.StepID, &st.Node, &kind, &st.Delivered, &st.Begun, &st.CancelRequested, &phase); err != nil {
			rows.Close()
			return nil, fmt.Errorf("open steps of rollout %s: %w", rollout, err)
		}
		st.Rollback, st.Phase = StepKind(kind) == StepRollback, engine.Phase(phase)
		out = append(out, st)
	}
	return out, closeRows(rows)
}

// cancel persists cancellations (engine.Cancellation): a step never
// handed out is closed and its node goes back to pending at once; a
// handed-out one is marked for the agent to acknowledge.
func (t *tx) cancel(rollout string, cs []engine.Cancellation, now time.Time) error {
	rev, err := t.nextNodeRev(rollout)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.Now {
			if _, err := t.exec("UPDATE steps SET finished_at = ?, result = ? WHERE id = ? AND finished_at IS NULL",
				nanos(now), string(engine.PhaseCancelled), c.StepID); err != nil {
				return fmt.Errorf("cancel step %s: %w", c.StepID, err)
			}
			if _, err := t.exec("UPDATE rollout_nodes SET phase = ?, since = ?, reason = ?, gate = '', healthy_since = 0, rev = ? WHERE rollout_id = ? AND node_id = ? AND step_id = ?",
				string(c.To), nanos(now), c.Reason, rev, rollout, c.Node, c.StepID); err != nil {
				return fmt.Errorf("cancel step %s: %w", c.StepID, err)
			}
			continue
		}
		if _, err := t.exec("UPDATE steps SET cancel_requested_at = ? WHERE id = ? AND finished_at IS NULL", nanos(now), c.StepID); err != nil {
			return fmt.Errorf("request cancel of step %s: %w", c.StepID, err)
		}
		if _, err := t.exec("UPDATE rollout_nodes SET reason = ?, rev = ? WHERE rollout_id = ? AND node_id = ? AND step_id = ?",
			c.Reason, rev, rollout, c.Node, c.StepID); err != nil {
			return fmt.Errorf("request cancel of step %s: %w", c.StepID, err)
		}
	}
	return nil
}

// resolve persists an operator's resolution of a node and closes its
// unfinished step.
func (t *tx) resolve(rollout, node string, st engine.NodeState, now time.Time) error {
	rev, err := t.nextNodeRev(rollout)
	if err != nil {
		return err
	}
	if _, err := t.exec(`UPDATE rollout_nodes SET phase = ?, since = ?, reason = ?, gate = '', healthy_since = 0, rev = ?
WHERE rollout_id = ? AND node_id = ?`, string(st.Phase), nanos(st.Since), st.Reason, rev, rollout, node); err != nil {
		return fmt.Errorf("resolve node %s: %w", node, err)
	}
	if _, err := t.exec("UPDATE steps SET finished_at = ?, result = ? WHERE rollout_id = ? AND node_id = ? AND finished_at IS NULL",
		nanos(now), "resolved:"+string(st.Phase), rollout, node); err != nil {
		return fmt.Errorf("close steps of node %s: %w", node, err)
	}
	return nil
}
