package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/plan"
)

// Lock order, the same in every transaction so that PostgreSQL never
// deadlocks: rollouts rows (ascending ID) -> leader row (shared) ->
// rollout_nodes and steps rows -> node_holds rows -> fleet_budgets rows
// (ascending name) -> audit_head (always last, at commit). Webhook
// acknowledgements take the leader row (shared), then webhook_cursors.

// checkTerm fails with ErrFenced unless term is the stored leadership
// term. On PostgreSQL the leader row is share-locked until commit, so a
// new leader's Campaign waits for this transaction instead of racing it.
func (t *tx) checkTerm(term int64) error {
	var current int64
	if err := t.queryRow("SELECT term FROM leader WHERE id = 1" + t.d.forShare).Scan(&current); err != nil {
		return fmt.Errorf("read leadership term: %w", err)
	}
	if term != current {
		return fmt.Errorf("term %d, current term is %d: %w", term, current, ErrFenced)
	}
	return nil
}

func (s *sqlStore) ApplyCommit(ctx context.Context, c Commit) (int64, error) {
	if c.Now.IsZero() || c.State == "" {
		return 0, fmt.Errorf("commit to rollout %s: Now and State are required", c.Rollout)
	}
	var newVersion int64
	err := s.write(ctx, func(t *tx) error {
		ro, err := t.getRollout(c.Rollout, true)
		if err != nil {
			return err
		}
		if err := t.checkTerm(c.Term); err != nil {
			return err
		}
		if len(c.Steps) > 0 {
			// Enforced here, in the dispatching transaction, so that no
			// server walks around a stop (see StopLine's lock order).
			if l, stopped, err := t.lineStop(); err != nil {
				return err
			} else if stopped {
				return fmt.Errorf("%d step(s) not dispatched: line %s: %w", len(c.Steps), l.Text(), ErrLineStopped)
			}
		}
		if ro.Version != c.Version {
			return fmt.Errorf("rollout is at version %d, not %d: %w", ro.Version, c.Version, ErrConflict)
		}
		newVersion = ro.Version + 1
		if _, err := t.exec("UPDATE rollouts SET state = ?, reason = ?, rollback_scope = ?, version = ?, updated_at = ? WHERE id = ?",
			string(c.State), c.Reason, c.RollbackScope, newVersion, nanos(c.Now), c.Rollout); err != nil {
			return fmt.Errorf("update rollout: %w", err)
		}
		if len(c.Nodes) > 0 {
			rev, err := t.nextNodeRev(c.Rollout)
			if err != nil {
				return err
			}
			for _, u := range c.Nodes {
				if err := t.casNode(c.Rollout, u, rev); err != nil {
					return err
				}
			}
		}
		for _, w := range c.Waves {
			if err := t.upsertWave(c.Rollout, w); err != nil {
				return err
			}
		}
		for _, st := range c.Steps {
			if err := t.insertStep(c, st); err != nil {
				return err
			}
		}
		if err := t.takeHolds(s, c); err != nil {
			return err
		}
		ev := timesEvent{At: c.Now, From: ro.State, To: c.State}
		for _, u := range c.Nodes {
			ev.Failed = ev.Failed || u.To.Phase == engine.PhaseFailed && u.From.Phase != engine.PhaseFailed
		}
		for _, st := range c.Steps {
			ev.RollbackDispatched = ev.RollbackDispatched || st.Kind == StepRollback
		}
		if err := t.advanceTimes(ro, ev); err != nil {
			return err
		}
		for _, tm := range c.Timings {
			if err := t.insertTiming(tm); err != nil {
				return err
			}
		}
		for _, e := range c.Audit {
			if e.At.IsZero() {
				e.At = c.Now
			}
			if e.Actor == "" {
				e.Actor = "scheduler"
			}
			if e.Rollout == "" {
				e.Rollout = c.Rollout
			}
			if e.Object == "" {
				e.Object = "rollout/" + c.Rollout
			}
			t.audit(e)
		}
		if c.InTx != nil {
			c.InTx()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("commit to rollout %s at version %d: %w", c.Rollout, c.Version, err)
	}
	return newVersion, nil
}

// casNode applies u, at node revision rev, only if the node's phase and
// attempt are still From's.
func (t *tx) casNode(rollout string, u NodeUpdate, rev int64) error {
	to := u.To
	res, err := t.exec(`UPDATE rollout_nodes SET phase = ?, wave = ?, attempt = ?, since = ?, started_at = ?, healthy_since = ?,
	gate = ?, reason = ?, rollback = ?, step_id = CASE WHEN ? = '' THEN step_id ELSE ? END, rev = ?, interruptions = ?
WHERE rollout_id = ? AND node_id = ? AND phase = ? AND attempt = ?`,
		string(to.Phase), to.Wave, to.Attempt, nanos(to.Since), nanos(to.StartedAt), nanos(to.HealthySince),
		string(to.Gate), to.Reason, boolInt(to.Rollback), u.StepID, u.StepID, rev, to.Interruptions,
		rollout, u.NodeID, string(u.From.Phase), u.From.Attempt)
	if err != nil {
		return fmt.Errorf("update node %s: %w", u.NodeID, err)
	}
	n, err := rowsAffected(res)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("node %s is no longer %s (attempt %d): %w", u.NodeID, u.From.Phase, u.From.Attempt, ErrConflict)
	}
	// A node the engine settled (succeeded after its soak, failed past a
	// deadline, quarantined, skipped) has no step in progress any more:
	// close it so that it is not handed out again.
	switch to.Phase {
	case engine.PhaseSucceeded, engine.PhaseFailed, engine.PhaseQuarantined, engine.PhaseSkipped, engine.PhaseRolledBack, engine.PhaseRollbackUnhealthy:
		if _, err := t.exec("UPDATE steps SET finished_at = ?, result = ? WHERE rollout_id = ? AND node_id = ? AND finished_at IS NULL AND id <> ?",
			nanos(to.Since), string(to.Phase), rollout, u.NodeID, u.StepID); err != nil {
			return fmt.Errorf("close step of node %s: %w", u.NodeID, err)
		}
	}
	return nil
}

func (t *tx) upsertWave(rollout string, w Wave) error {
	_, err := t.exec(`INSERT INTO waves (rollout_id, name, pos, state, started_at, bake_from, ended_at, reason)
VALUES (?, ?, (SELECT COALESCE(MAX(pos), -1) + 1 FROM waves WHERE rollout_id = ?), ?, ?, ?, ?, ?)
ON CONFLICT (rollout_id, name) DO UPDATE SET state = excluded.state, started_at = excluded.started_at,
	bake_from = excluded.bake_from, ended_at = excluded.ended_at, reason = excluded.reason`,
		rollout, w.Name, rollout, string(w.State), nanos(w.StartedAt), nanos(w.BakeFrom), nanos(w.EndedAt), w.Reason)
	if err != nil {
		return fmt.Errorf("upsert wave %s: %w", w.Name, err)
	}
	return nil
}

func (t *tx) insertStep(c Commit, st Step) error {
	if st.ID == "" {
		return fmt.Errorf("step for node %s has no ID", st.NodeID)
	}
	if st.Rollout == "" {
		st.Rollout = c.Rollout
	}
	if st.Term == 0 {
		st.Term = c.Term
	}
	if st.CreatedAt.IsZero() {
		st.CreatedAt = c.Now
	}
	if st.Kind == "" {
		st.Kind = StepApply
	}
	payload := string(st.Payload)
	if payload == "" {
		payload = "null"
	}
	_, err := t.exec(`INSERT INTO steps (id, rollout_id, node_id, kind, attempt, term, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		st.ID, st.Rollout, st.NodeID, string(st.Kind), st.Attempt, st.Term, payload, nanos(st.CreatedAt))
	return t.conflictOnUnique(err, "step %s already dispatched", st.ID)
}

const stepColumns = "id, rollout_id, node_id, kind, attempt, term, payload, created_at, delivered_at, finished_at, result, cancel_requested_at"

func scanStep(r scanner) (Step, error) {
	var st Step
	var kind, payload string
	var created int64
	var delivered, finished, cancel sql.NullInt64
	if err := r.Scan(&st.ID, &st.Rollout, &st.NodeID, &kind, &st.Attempt, &st.Term, &payload, &created, &delivered, &finished, &st.Result, &cancel); err != nil {
		return st, err
	}
	st.CancelRequested = fromNullNanos(cancel)
	st.Kind, st.Payload = StepKind(kind), json.RawMessage(payload)
	st.CreatedAt, st.DeliveredAt, st.FinishedAt = fromNanos(created), fromNullNanos(delivered), fromNullNanos(finished)
	return st, nil
}

// PendingSteps returns the node's unfinished steps, oldest first, and
// marks those never delivered as delivered at now. Steps of an aborted
// rollout that were never delivered are withheld: the operator stopped
// the rollout before the agent saw them.
func (s *sqlStore) PendingSteps(ctx context.Context, nodeID string, now time.Time) ([]Step, error) {
	// Most polls find nothing new: look in a read transaction first and
	// take the write lock only when a step must be marked delivered.
	var out []Step
	err := s.read(ctx, func(t *tx) error {
		var err error
		out, err = t.pendingSteps(nodeID, out)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pending steps of node %s: %w", nodeID, err)
	}
	if !slices.ContainsFunc(out, func(st Step) bool { return st.DeliveredAt.IsZero() }) {
		return out, nil
	}
	err = s.write(ctx, func(t *tx) error {
		var err error
		if out, err = t.pendingSteps(nodeID, out); err != nil {
			return err
		}
		for i := range out {
			if !out[i].DeliveredAt.IsZero() {
				continue
			}
			if _, err := t.exec("UPDATE steps SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL", nanos(now), out[i].ID); err != nil {
				return fmt.Errorf("mark step %s delivered: %w", out[i].ID, err)
			}
			out[i].DeliveredAt = fromNanos(nanos(now))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pending steps of node %s: %w", nodeID, err)
	}
	return out, nil
}

// pendingSteps reads the node's unfinished steps into out[:0].
func (t *tx) pendingSteps(nodeID string, out []Step) ([]Step, error) {
	out = out[:0]
	rows, err := t.query(`SELECT `+prefixed("s.", stepColumns)+` FROM steps s JOIN rollouts r ON r.id = s.rollout_id
WHERE s.node_id = ? AND s.finished_at IS NULL AND (r.state <> ? OR s.delivered_at IS NOT NULL)
ORDER BY s.created_at, s.id`, nodeID, string(engine.RolloutAborted))
	if err != nil {
		return out, err
	}
	for rows.Next() {
		st, err := scanStep(rows)
		if err != nil {
			rows.Close()
			return out, err
		}
		out = append(out, st)
	}
	return out, closeRows(rows)
}

// prefixed qualifies a column list with a table alias.
func prefixed(alias, columns string) string {
	return alias + strings.ReplaceAll(columns, ", ", ", "+alias)
}

// ReportStep applies an agent's report to the rollout node whose current
// step is r.StepID, by the engine's rules (engine.Accept): a report about
// another step, or about a step already finished with a different
// result, is ErrConflict; one repeating the stored state is a no-op. A
// final report (succeeded, failed, rolled-back, interrupted, cancelled)
// closes the step with its evidence. The rollout's version is not bumped:
// the scheduler's per-node compare-and-set reconciles.
func (s *sqlStore) ReportStep(ctx context.Context, r Report) error {
	if r.At.IsZero() {
		r.At = s.clock()
	}
	err := s.write(ctx, func(t *tx) error {
		if err := t.report(r); err != nil {
			return err
		}
		if r.LeaseUntil.IsZero() {
			return nil
		}
		if _, err := t.exec("UPDATE nodes SET last_seen = ?, lease_until = ? WHERE id = ?", nanos(r.Seen), nanos(r.LeaseUntil), r.NodeID); err != nil {
			return fmt.Errorf("touch node: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("report of step %s from %s: %w", r.StepID, r.NodeID, err)
	}
	return nil
}

// report applies r in t (see ReportStep).
func (t *tx) report(r Report) error {
	var rollout, node, kind, result string
	var finished, cancelReq sql.NullInt64
	err := t.queryRow("SELECT rollout_id, node_id, kind, finished_at, result, cancel_requested_at FROM steps WHERE id = ?", r.StepID).
		Scan(&rollout, &node, &kind, &finished, &result, &cancelReq)
	if isNoRows(err) {
		return fmt.Errorf("unknown step: %w", ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("read step: %w", err)
	}
	if node != r.NodeID {
		return fmt.Errorf("step belongs to node %s, not %s: %w", node, r.NodeID, ErrConflict)
	}
	ro, err := t.getRollout(rollout, true)
	if err != nil {
		return err
	}
	// Read the step's end (and a cancel) again under the rollout's lock: a
	// commit that settled the node (and closed the step) may have committed while this
	// transaction waited for the lock, and PostgreSQL's first read above
	// predates it. Without this, a late soak report moved a succeeded node
	// back to verifying (in flight again, without its hold).
	if err := t.queryRow("SELECT finished_at, result, cancel_requested_at FROM steps WHERE id = ?", r.StepID).Scan(&finished, &result, &cancelReq); err != nil {
		return fmt.Errorf("read step: %w", err)
	}
	n, err := t.getRolloutNode(rollout, node, true)
	if isNotFound(err) {
		return fmt.Errorf("node %s is not in rollout %s: %w", node, rollout, ErrConflict)
	}
	if err != nil {
		return err
	}
	in := engine.ReportInput{State: ro.State, Node: n.State,
		Step: engine.StepStatus{Current: n.StepID == r.StepID, Rollback: StepKind(kind) == StepRollback, Finished: finished.Valid,
			Result: result, CancelRequested: cancelReq.Valid},
		Report: engine.Report{Phase: r.Phase, Gate: r.Gate, HealthySince: r.HealthySince, Reason: r.Reason, At: r.At}}
	if r.Phase == engine.PhaseInterrupted || (r.Phase == engine.PhaseVerifying && ro.State.Terminal()) {
		// Rare: the rules read the plan only for these.
		p, err := plan.Parse(ro.Name+".yaml", ro.Plan)
		if err != nil {
			return fmt.Errorf("rollout %s: stored plan no longer parses: %w", rollout, err)
		}
		in.OnInterrupted, in.MinHealthy = p.Gates.OnInterrupted, p.Gates.Node.MinHealthy.D()
	}
	res, err := engine.Accept(in)
	if err != nil {
		return ruleError(err)
	}
	if !res.Changed && !res.Finish {
		return nil
	}
	st := n.State
	if res.Changed {
		to := res.Node
		rev, err := t.nextNodeRev(rollout)
		if err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE rollout_nodes SET phase = ?, since = ?, gate = ?, healthy_since = ?, reason = ?, interruptions = ?, rev = ?
WHERE rollout_id = ? AND node_id = ?`, string(to.Phase), nanos(to.Since), string(to.Gate), nanos(to.HealthySince), to.Reason,
			to.Interruptions, rev, rollout, node); err != nil {
			return fmt.Errorf("update node: %w", err)
		}
	}
	if res.Changed && res.Node.Phase == engine.PhaseFailed && st.Phase != engine.PhaseFailed {
		if err := t.advanceTimes(ro, timesEvent{At: orTime(r.Seen, r.At), From: ro.State, To: ro.State, Failed: true}); err != nil {
			return err
		}
	}
	evidence := string(r.Evidence)
	if res.Finish {
		begun := sql.NullInt64{Int64: nanos(r.At), Valid: r.Phase != engine.PhaseCancelled} // a cancelled step never began
		if _, err := t.exec("UPDATE steps SET finished_at = ?, result = ?, evidence = ?, delivered_at = COALESCE(delivered_at, ?), begun_at = COALESCE(begun_at, ?) WHERE id = ?",
			nanos(r.At), res.Result, evidence, nanos(r.At), begun, r.StepID); err != nil {
			return fmt.Errorf("finish step: %w", err)
		}
	} else if _, err := t.exec("UPDATE steps SET evidence = CASE WHEN ? = '' THEN evidence ELSE ? END, delivered_at = COALESCE(delivered_at, ?), begun_at = COALESCE(begun_at, ?) WHERE id = ?",
		evidence, evidence, nanos(r.At), nanos(r.At), r.StepID); err != nil {
		return fmt.Errorf("update step: %w", err)
	}
	if len(r.Timing) > 0 {
		if _, err := t.exec("UPDATE steps SET timing = ? WHERE id = ?", string(r.Timing), r.StepID); err != nil {
			return fmt.Errorf("step timing: %w", err)
		}
	}
	if to := res.Node; st.Phase != to.Phase || st.Gate != to.Gate || r.Phase != to.Phase {
		at, d := r.At, map[string]any{"step": r.StepID, "from": st.Phase, "to": to.Phase, "gate": r.Gate, "reason": to.Reason}
		if r.Phase != to.Phase {
			d["reported"] = r.Phase
		}
		if !r.Seen.IsZero() {
			at = r.Seen
		}
		if !r.ClaimedAt.IsZero() {
			d["agent_at"] = r.ClaimedAt.UTC().Format(time.RFC3339Nano)
		}
		t.audit(AuditEntry{At: at, Actor: "agent:" + node, Action: "node.phase", Object: "node/" + node, Rollout: rollout, Detail: detail(d)})
	}
	return nil
}

// ExpireLeases marks in-flight nodes of active rollouts whose agent's
// lease ended before now as unknown, audited, and returns the node IDs
// (sorted, each once).
func (s *sqlStore) ExpireLeases(ctx context.Context, now time.Time, term int64) ([]string, error) {
	inFlight := []any{string(engine.PhaseQueued), string(engine.PhaseRunning), string(engine.PhaseVerifying), string(engine.PhaseRollingBack)}
	const from = ` FROM rollout_nodes rn JOIN rollouts r ON r.id = rn.rollout_id JOIN nodes n ON n.id = rn.node_id
WHERE r.state NOT IN (` + terminalStates + `) AND rn.phase IN (?, ?, ?, ?) AND n.lease_until < ?`
	args := append(slices.Clone(inFlight), nanos(now))
	var expired []string
	err := s.write(ctx, func(t *tx) error {
		expired = expired[:0]
		// Lock the affected rollouts first, in ID order (see the lock order).
		rows, err := t.query("SELECT DISTINCT rn.rollout_id"+from+" ORDER BY rn.rollout_id", args...)
		if err != nil {
			return err
		}
		var rollouts []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			rollouts = append(rollouts, id)
		}
		if err := closeRows(rows); err != nil {
			return err
		}
		if len(rollouts) == 0 {
			return t.checkTerm(term)
		}
		for _, id := range rollouts {
			if _, err := t.getRollout(id, true); err != nil && !isNotFound(err) {
				return err
			}
		}
		if err := t.checkTerm(term); err != nil {
			return err
		}
		type hit struct {
			rollout, node    string
			phase            engine.Phase
			lastSeen, leased time.Time
		}
		var hits []hit
		rows, err = t.query("SELECT rn.rollout_id, rn.node_id, rn.phase, n.last_seen, n.lease_until"+from+" ORDER BY rn.rollout_id, rn.idx", args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var h hit
			var phase string
			var seen, leased int64
			if err := rows.Scan(&h.rollout, &h.node, &phase, &seen, &leased); err != nil {
				rows.Close()
				return err
			}
			h.phase, h.lastSeen, h.leased = engine.Phase(phase), fromNanos(seen), fromNanos(leased)
			hits = append(hits, h)
		}
		if err := closeRows(rows); err != nil {
			return err
		}
		for _, h := range hits {
			tr, ok := engine.Expire(engine.NodeState{Phase: h.phase}, h.lastSeen, h.leased, now)
			if !ok {
				continue
			}
			rev, err := t.nextNodeRev(h.rollout)
			if err != nil {
				return err
			}
			if _, err := t.exec("UPDATE rollout_nodes SET phase = ?, since = ?, reason = ?, rev = ? WHERE rollout_id = ? AND node_id = ? AND phase = ?",
				string(tr.To), nanos(now), tr.Reason, rev, h.rollout, h.node, string(h.phase)); err != nil {
				return fmt.Errorf("mark node %s unknown: %w", h.node, err)
			}
			t.audit(AuditEntry{At: now, Actor: "scheduler", Action: "node.phase", Object: "node/" + h.node, Rollout: h.rollout,
				Detail: detail(map[string]any{"from": h.phase, "to": tr.To, "reason": tr.Reason})})
			expired = append(expired, h.node)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire leases at term %d: %w", term, err)
	}
	slices.Sort(expired)
	return slices.Compact(expired), nil
}

// RestartLeases gives every node a lease of at least until (the new
// leader's first tick plus one lease window: engine.RestartLease over the
// whole fleet), so that the time no server led is never counted against
// an agent. It fails with ErrFenced unless term is current.
func (s *sqlStore) RestartLeases(ctx context.Context, until time.Time, term int64) (int, error) {
	var n int64
	err := s.write(ctx, func(t *tx) error {
		if err := t.checkTerm(term); err != nil {
			return err
		}
		res, err := t.exec("UPDATE nodes SET lease_until = ? WHERE lease_until < ?", nanos(until), nanos(until))
		if err != nil {
			return err
		}
		n, err = rowsAffected(res)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("restart leases at term %d: %w", term, err)
	}
	return int(n), nil
}
