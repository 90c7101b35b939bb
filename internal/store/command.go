package store

import (
	"context"
	"fmt"
	"time"

	"github.com/drover-dev/drover/internal/engine"
)

// Command applies a human action:
//
//   - approve: records an approval of the wave ("" = the start) bound to
//     the plan's hash. The author may not approve their own rollout
//     (ErrForbidden); repeating an approval changes nothing and succeeds.
//   - pause: running -> paused; resume: paused -> running (reason cleared).
//   - abort: any non-terminal state -> aborted.
//   - rollback: -> rolling-back, scope cmd.Wave ("" for every wave).
//   - resolve: a failed or unknown node -> pending (retry; its attempt is
//     kept, so the next start is attempt+1), quarantined or skipped. Its
//     unfinished step, if any, is closed so that a late report of it is
//     refused.
//
// Any other transition is ErrConflict naming the current state. The
// version is bumped and the action audited (actor cmd.Actor) in the same
// transaction.
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
		if cmd.Action == "approve" {
			if done, err := t.approved(ro, cmd); err != nil || done {
				out = ro
				return err
			}
		}
		if ifVersion != 0 && ro.Version != ifVersion {
			return fmt.Errorf("rollout is at version %d, not %d: %w", ro.Version, ifVersion, ErrConflict)
		}
		state, reason, scope := ro.State, ro.Reason, ro.RollbackScope
		notIn := func() error {
			return fmt.Errorf("cannot %s a rollout that is %s: %w", cmd.Action, ro.State, ErrConflict)
		}
		d := map[string]any{"from": ro.State}
		if cmd.Reason != "" {
			d["reason"] = cmd.Reason
		}
		switch cmd.Action {
		case "approve":
			if ro.State.Terminal() {
				return notIn()
			}
			if cmd.Actor == ro.Author {
				return fmt.Errorf("%s is the author of rollout %s and cannot approve it: %w", cmd.Actor, id, ErrForbidden)
			}
			if _, err := t.exec("INSERT INTO approvals (rollout_id, wave, by_user, plan_sha256, at) VALUES (?, ?, ?, ?, ?)",
				id, cmd.Wave, cmd.Actor, ro.PlanSHA256, nanos(now)); err != nil {
				return fmt.Errorf("record approval: %w", err)
			}
			d["wave"], d["plan_sha256"] = cmd.Wave, ro.PlanSHA256
		case "pause":
			if ro.State != engine.RolloutRunning {
				return notIn()
			}
			state, reason = engine.RolloutPaused, "paused by "+cmd.Actor+withReason(cmd.Reason)
		case "resume":
			if ro.State != engine.RolloutPaused {
				return notIn()
			}
			state, reason = engine.RolloutRunning, ""
		case "abort":
			if ro.State.Terminal() {
				return notIn()
			}
			state, reason = engine.RolloutAborted, "aborted by "+cmd.Actor+withReason(cmd.Reason)
		case "rollback":
			if ro.State.Terminal() || ro.State == engine.RolloutRollingBack {
				return notIn()
			}
			if cmd.Wave != "" {
				var n int
				if err := t.queryRow("SELECT COUNT(*) FROM waves WHERE rollout_id = ? AND name = ?", id, cmd.Wave).Scan(&n); err != nil {
					return fmt.Errorf("check wave: %w", err)
				}
				if n == 0 {
					return fmt.Errorf("wave %s of rollout %s: %w", cmd.Wave, id, ErrNotFound)
				}
			}
			state, scope = engine.RolloutRollingBack, cmd.Wave
			reason = "operator ordered a rollback: " + cmd.Reason
			d["scope"] = cmd.Wave
		case "resolve":
			if ro.State.Terminal() {
				return notIn()
			}
			if err := t.resolve(ro, cmd, now, d); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown command %q (want approve, pause, resume, abort, rollback or resolve)", cmd.Action)
		}
		d["to"] = state
		if _, err := t.exec("UPDATE rollouts SET state = ?, reason = ?, rollback_scope = ?, version = version + 1, updated_at = ? WHERE id = ?",
			string(state), reason, scope, nanos(now), id); err != nil {
			return fmt.Errorf("update rollout: %w", err)
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

func withReason(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

// approved reports whether cmd's approval is already recorded for the
// current plan (a repeat, which changes nothing).
func (t *tx) approved(ro Rollout, cmd Command) (bool, error) {
	var n int
	if err := t.queryRow("SELECT COUNT(*) FROM approvals WHERE rollout_id = ? AND wave = ? AND by_user = ? AND plan_sha256 = ?",
		ro.ID, cmd.Wave, cmd.Actor, ro.PlanSHA256).Scan(&n); err != nil {
		return false, fmt.Errorf("check approval: %w", err)
	}
	return n > 0, nil
}

// resolve applies an operator's resolution to a failed or unknown node.
func (t *tx) resolve(ro Rollout, cmd Command, now time.Time, d map[string]any) error {
	to := cmd.Resolution
	switch to {
	case "retry":
		to = engine.PhasePending
	case "quarantine":
		to = engine.PhaseQuarantined
	case "skip":
		to = engine.PhaseSkipped
	case engine.PhasePending, engine.PhaseQuarantined, engine.PhaseSkipped:
	default:
		return fmt.Errorf("resolution %q: want pending (retry), quarantined or skipped", cmd.Resolution)
	}
	if cmd.NodeID == "" {
		return fmt.Errorf("resolve: no node given")
	}
	n, err := t.getRolloutNode(ro.ID, cmd.NodeID, true)
	if err != nil {
		return err
	}
	if n.State.Phase != engine.PhaseFailed && n.State.Phase != engine.PhaseUnknown {
		return fmt.Errorf("node %s is %s; only failed or unknown nodes can be resolved: %w", cmd.NodeID, n.State.Phase, ErrConflict)
	}
	reason := fmt.Sprintf("%s by %s%s", to, cmd.Actor, withReason(cmd.Reason))
	if to == engine.PhasePending {
		reason = "retry ordered by " + cmd.Actor + withReason(cmd.Reason)
	}
	rev, err := t.nextNodeRev(ro.ID)
	if err != nil {
		return err
	}
	if _, err := t.exec(`UPDATE rollout_nodes SET phase = ?, since = ?, reason = ?, gate = '', healthy_since = 0, rev = ?
WHERE rollout_id = ? AND node_id = ?`, string(to), nanos(now), reason, rev, ro.ID, cmd.NodeID); err != nil {
		return fmt.Errorf("resolve node %s: %w", cmd.NodeID, err)
	}
	if _, err := t.exec("UPDATE steps SET finished_at = ?, result = ? WHERE rollout_id = ? AND node_id = ? AND finished_at IS NULL",
		nanos(now), "resolved:"+string(to), ro.ID, cmd.NodeID); err != nil {
		return fmt.Errorf("close steps of node %s: %w", cmd.NodeID, err)
	}
	d["node"], d["node_from"], d["node_to"] = cmd.NodeID, n.State.Phase, to
	return nil
}
