package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/drover-dev/drover/internal/engine"
)

const rolloutColumns = "id, name, author, plan, plan_sha256, state, reason, rollback_scope, seed, version, created_at, updated_at, node_rev, approvals_needed, approval_floor, assignment_sha256, dry_run, " + timesColumns

func scanRollout(r scanner) (Rollout, error) {
	var ro Rollout
	var seed, created, updated int64
	var state string
	var c [7]int64
	if err := r.Scan(&ro.ID, &ro.Name, &ro.Author, &ro.Plan, &ro.PlanSHA256, &state, &ro.Reason, &ro.RollbackScope,
		&seed, &ro.Version, &created, &updated, &ro.NodeRev, &ro.ApprovalsNeeded, &ro.ApprovalFloor, &ro.AssignmentSHA256, &ro.DryRun,
		&c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6]); err != nil {
		return ro, err
	}
	ro.Times = scanTimes(c[0], c[1], c[2], c[3], c[4], c[5], c[6])
	ro.State, ro.Seed = engine.RolloutState(state), uint64(seed)
	ro.CreatedAt, ro.UpdatedAt = fromNanos(created), fromNanos(updated)
	return ro, nil
}

// terminalStates is the SQL list of the states engine.RolloutState.Terminal
// reports.
const terminalStates = "'succeeded', 'failed', 'aborted', 'halted'"

func (t *tx) getRollout(id string, lock bool) (Rollout, error) {
	q := "SELECT " + rolloutColumns + " FROM rollouts WHERE id = ?"
	if lock {
		q += t.d.forUpdate
	}
	ro, err := scanRollout(t.queryRow(q, id))
	if isNoRows(err) {
		return ro, notFound("rollout", id)
	}
	if err != nil {
		return ro, fmt.Errorf("get rollout %s: %w", id, err)
	}
	return ro, nil
}

// CreateRollout stores the rollout at version 1 with its nodes (Index is
// their position in nodes) and waves (in the order given). PlanSHA256 is
// computed when empty and must match Plan otherwise; State defaults to
// pending-approval and CreatedAt to now.
func (s *sqlStore) CreateRollout(ctx context.Context, r Rollout, nodes []RolloutNode, waves []Wave, actor string) (Rollout, error) {
	if r.ID == "" {
		return Rollout{}, fmt.Errorf("create rollout: empty ID")
	}
	sum := sha256.Sum256(r.Plan)
	if h := hex.EncodeToString(sum[:]); r.PlanSHA256 == "" {
		r.PlanSHA256 = h
	} else if !strings.EqualFold(r.PlanSHA256, h) {
		return Rollout{}, fmt.Errorf("create rollout %s: PlanSHA256 %s does not match the plan (%s)", r.ID, r.PlanSHA256, h)
	}
	if r.State == "" {
		r.State = engine.RolloutPendingApproval
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.clock()
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = r.CreatedAt
	}
	if r.Plan == nil {
		r.Plan = []byte{}
	}
	r.Version, r.NodeRev = 1, 0
	if r.State == engine.RolloutRunning && r.Times.Started.IsZero() {
		r.Times.Started = r.CreatedAt
	}
	r.CreatedAt, r.UpdatedAt = fromNanos(nanos(r.CreatedAt)), fromNanos(nanos(r.UpdatedAt))
	err := s.write(ctx, func(t *tx) error {
		if _, err := t.exec("INSERT INTO rollouts ("+rolloutColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			r.ID, r.Name, r.Author, r.Plan, r.PlanSHA256, string(r.State), r.Reason, r.RollbackScope,
			int64(r.Seed), r.Version, nanos(r.CreatedAt), nanos(r.UpdatedAt), r.NodeRev, r.ApprovalsNeeded, r.ApprovalFloor, r.AssignmentSHA256, r.DryRun,
			nanos(r.Times.Started), nanos(r.Times.FirstFailure), nanos(r.Times.Halted), nanos(r.Times.RollbackDispatched),
			nanos(r.Times.RollbackDone), nanos(r.Times.Recovered), nanos(r.Times.Ended)); err != nil {
			return t.conflictOnUnique(err, "rollout %s exists", r.ID)
		}
		for i, n := range nodes {
			st := n.State
			if st.Phase == "" {
				st.Phase = engine.PhasePending
			}
			if _, err := t.exec(`INSERT INTO rollout_nodes (rollout_id, node_id, idx, phase, wave, attempt, since, started_at,
	healthy_since, gate, reason, rollback, step_id, interruptions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				r.ID, n.NodeID, i, string(st.Phase), st.Wave, st.Attempt, nanos(st.Since), nanos(st.StartedAt),
				nanos(st.HealthySince), string(st.Gate), st.Reason, boolInt(st.Rollback), n.StepID, st.Interruptions); err != nil {
				return t.conflictOnUnique(err, "node %s listed twice", n.NodeID)
			}
		}
		for i, w := range waves {
			if err := t.insertWave(r.ID, i, w); err != nil {
				return t.conflictOnUnique(err, "wave %s listed twice", w.Name)
			}
		}
		waveNames := make([]string, len(waves))
		for i, w := range waves {
			waveNames[i] = w.Name
		}
		d := map[string]any{"name": r.Name, "author": r.Author, "plan_sha256": r.PlanSHA256,
			"state": r.State, "nodes": len(nodes), "waves": waveNames, "approvals_needed": r.ApprovalsNeeded,
			"approval_floor": r.ApprovalFloor, "commands": r.Commands, "assignment_sha256": r.AssignmentSHA256}
		if r.DryRun != "" {
			d["dry_run"] = r.DryRun
		}
		if r.PolicyApproval != "" {
			d["approved_by_policy"] = r.PolicyApproval
		}
		ov, err := t.overlapCounts(r.ID)
		if err != nil {
			return err
		}
		if len(ov) > 0 {
			d["overlaps"] = ov // active rollouts sharing target nodes, by the count shared: those nodes wait for them
		}
		t.audit(AuditEntry{At: r.CreatedAt, Actor: actor, Action: "rollout.create", Object: "rollout/" + r.ID, Rollout: r.ID, Detail: detail(d)})
		return nil
	})
	if err != nil {
		return Rollout{}, fmt.Errorf("create rollout %s: %w", r.ID, err)
	}
	return r, nil
}

func (t *tx) insertWave(rollout string, pos int, w Wave) error {
	_, err := t.exec(`INSERT INTO waves (rollout_id, name, pos, state, started_at, bake_from, ended_at, reason)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, rollout, w.Name, pos, string(w.State), nanos(w.StartedAt), nanos(w.BakeFrom), nanos(w.EndedAt), w.Reason)
	return err
}

func (s *sqlStore) GetRollout(ctx context.Context, id string) (Rollout, error) {
	ro, err := scanRollout(s.db.QueryRowContext(ctx, s.d.rebind("SELECT "+rolloutColumns+" FROM rollouts WHERE id = ?"), id))
	if isNoRows(err) {
		return Rollout{}, notFound("rollout", id)
	}
	if err != nil {
		return Rollout{}, fmt.Errorf("get rollout %s: %w", id, err)
	}
	return ro, nil
}

func (s *sqlStore) ListRollouts(ctx context.Context) ([]Rollout, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+rolloutColumns+" FROM rollouts ORDER BY created_at DESC, id DESC")
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	defer rows.Close()
	var out []Rollout
	for rows.Next() {
		ro, err := scanRollout(rows)
		if err != nil {
			return nil, fmt.Errorf("list rollouts: %w", err)
		}
		out = append(out, ro)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	return out, nil
}

func (s *sqlStore) ActiveRollouts(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT id FROM rollouts WHERE state NOT IN ("+terminalStates+") ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("active rollouts: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("active rollouts: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("active rollouts: %w", err)
	}
	return out, nil
}

const rolloutNodeColumns = "node_id, idx, phase, wave, attempt, since, started_at, healthy_since, gate, reason, rollback, step_id, interruptions"

func scanRolloutNode(r scanner) (RolloutNode, error) {
	var n RolloutNode
	var phase, gate string
	var since, started, healthy int64
	var rollback int
	if err := r.Scan(&n.NodeID, &n.Index, &phase, &n.State.Wave, &n.State.Attempt, &since, &started, &healthy,
		&gate, &n.State.Reason, &rollback, &n.StepID, &n.State.Interruptions); err != nil {
		return n, err
	}
	n.State.Phase, n.State.Gate, n.State.Rollback = engine.Phase(phase), engine.Verdict(gate), rollback != 0
	n.State.Since, n.State.StartedAt, n.State.HealthySince = fromNanos(since), fromNanos(started), fromNanos(healthy)
	return n, nil
}

func (t *tx) getRolloutNode(rollout, node string, lock bool) (RolloutNode, error) {
	q := "SELECT " + rolloutNodeColumns + " FROM rollout_nodes WHERE rollout_id = ? AND node_id = ?"
	if lock {
		q += t.d.forUpdate
	}
	n, err := scanRolloutNode(t.queryRow(q, rollout, node))
	if isNoRows(err) {
		return n, fmt.Errorf("node %s in rollout %s: %w", node, rollout, ErrNotFound)
	}
	if err != nil {
		return n, fmt.Errorf("get node %s of rollout %s: %w", node, rollout, err)
	}
	return n, nil
}

// nextNodeRev bumps the rollout's node revision and returns it, for the
// nodes the transaction changes. The caller holds the rollout row's lock
// (see the lock order), so revisions commit in the order they are taken.
func (t *tx) nextNodeRev(rollout string) (int64, error) {
	var rev int64
	if err := t.queryRow("UPDATE rollouts SET node_rev = node_rev + 1 WHERE id = ? RETURNING node_rev", rollout).Scan(&rev); err != nil {
		return 0, fmt.Errorf("bump node revision of rollout %s: %w", rollout, err)
	}
	return rev, nil
}

// LoadRollout reads the rollout in one snapshot.
func (s *sqlStore) LoadRollout(ctx context.Context, id string) (RolloutData, error) {
	return s.LoadRolloutSince(ctx, id, -1)
}

// LoadRolloutSince reads the rollout in one snapshot, with only the nodes
// changed after node revision rev.
func (s *sqlStore) LoadRolloutSince(ctx context.Context, id string, rev int64) (RolloutData, error) {
	var out RolloutData
	err := s.read(ctx, func(t *tx) error {
		// The header first: its NodeRev covers every node read below.
		ro, err := t.getRollout(id, false)
		if err != nil {
			return err
		}
		out.Rollout = ro
		rows, err := t.query("SELECT "+rolloutNodeColumns+" FROM rollout_nodes WHERE rollout_id = ? AND rev > ? ORDER BY idx", id, rev)
		if err != nil {
			return fmt.Errorf("nodes: %w", err)
		}
		for rows.Next() {
			n, err := scanRolloutNode(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("nodes: %w", err)
			}
			out.Nodes = append(out.Nodes, n)
		}
		if err := closeRows(rows); err != nil {
			return fmt.Errorf("nodes: %w", err)
		}
		if out.Waves, err = t.waves(id); err != nil {
			return err
		}
		if out.Gates, err = t.latestGates(id); err != nil {
			return err
		}
		rows, err = t.query("SELECT by_user, wave, plan_sha256, assignment_sha256, at FROM approvals WHERE rollout_id = ? AND plan_sha256 = ? AND assignment_sha256 = ? ORDER BY at, by_user",
			id, ro.PlanSHA256, ro.AssignmentSHA256)
		if err != nil {
			return fmt.Errorf("approvals: %w", err)
		}
		for rows.Next() {
			var a Approval
			var at int64
			if err := rows.Scan(&a.By, &a.Wave, &a.PlanSHA256, &a.AssignmentSHA256, &at); err != nil {
				rows.Close()
				return fmt.Errorf("approvals: %w", err)
			}
			a.At = fromNanos(at)
			out.Approvals = append(out.Approvals, a)
		}
		if err := closeRows(rows); err != nil {
			return fmt.Errorf("approvals: %w", err)
		}
		return nil
	})
	if err != nil {
		return RolloutData{}, fmt.Errorf("load rollout %s: %w", id, err)
	}
	return out, nil
}

func closeRows(rows interface {
	Err() error
	Close() error
}) error {
	err := rows.Err()
	rows.Close()
	return err
}

func (t *tx) waves(rollout string) ([]Wave, error) {
	rows, err := t.query("SELECT name, state, started_at, bake_from, ended_at, reason FROM waves WHERE rollout_id = ? ORDER BY pos", rollout)
	if err != nil {
		return nil, fmt.Errorf("waves: %w", err)
	}
	var out []Wave
	for rows.Next() {
		var w Wave
		var state string
		var started, bake, ended int64
		if err := rows.Scan(&w.Name, &state, &started, &bake, &ended, &w.Reason); err != nil {
			rows.Close()
			return nil, fmt.Errorf("waves: %w", err)
		}
		w.State = engine.WaveState(state)
		w.StartedAt, w.BakeFrom, w.EndedAt = fromNanos(started), fromNanos(bake), fromNanos(ended)
		out = append(out, w)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("waves: %w", err)
	}
	return out, nil
}

// latestGates returns the latest result (by At, then insertion) of every
// (wave, gate) of the rollout.
func (t *tx) latestGates(rollout string) ([]GateResult, error) {
	rows, err := t.query(`SELECT g.wave, g.gate, g.verdict, g.reason, g.at FROM gate_results g
WHERE g.rollout_id = ? AND NOT EXISTS (
	SELECT 1 FROM gate_results h WHERE h.rollout_id = g.rollout_id AND h.wave = g.wave AND h.gate = g.gate
	AND (h.at > g.at OR (h.at = g.at AND h.id > g.id)))
ORDER BY g.wave, g.gate`, rollout)
	if err != nil {
		return nil, fmt.Errorf("gate results: %w", err)
	}
	var out []GateResult
	for rows.Next() {
		var g GateResult
		var verdict string
		var at int64
		if err := rows.Scan(&g.Wave, &g.Gate, &verdict, &g.Reason, &at); err != nil {
			rows.Close()
			return nil, fmt.Errorf("gate results: %w", err)
		}
		g.Rollout, g.Verdict, g.At = rollout, engine.Verdict(verdict), fromNanos(at)
		out = append(out, g)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("gate results: %w", err)
	}
	return out, nil
}

// AddGateResults stores the results (At defaults to now) and audits each
// whose verdict differs from the gate's latest stored one. It does not
// bump the rollout's version: the scheduler asked for the evaluation.
func (s *sqlStore) AddGateResults(ctx context.Context, rollout string, rs []engine.GateResult) error {
	err := s.write(ctx, func(t *tx) error {
		ro, err := t.getRollout(rollout, true)
		if err != nil {
			return err
		}
		latest, err := t.latestGates(rollout)
		if err != nil {
			return err
		}
		verdicts := make(map[[2]string]engine.Verdict, len(latest))
		for _, g := range latest {
			verdicts[[2]string{g.Wave, g.Gate}] = g.Verdict
		}
		for _, r := range rs {
			if r.At.IsZero() {
				r.At = s.clock()
			}
			if _, err := t.exec("INSERT INTO gate_results (rollout_id, wave, gate, verdict, reason, at) VALUES (?, ?, ?, ?, ?, ?)",
				rollout, r.Wave, r.Gate, string(r.Verdict), r.Reason, nanos(r.At)); err != nil {
				return fmt.Errorf("insert gate result: %w", err)
			}
			key := [2]string{r.Wave, r.Gate}
			if prev, ok := verdicts[key]; !ok || prev != r.Verdict {
				t.audit(AuditEntry{At: r.At, Actor: "scheduler", Action: "gate.verdict", Object: "rollout/" + rollout + "/wave/" + r.Wave,
					Rollout: rollout, Detail: detail(map[string]any{"wave": r.Wave, "gate": r.Gate, "from": string(prev), "to": r.Verdict, "reason": r.Reason})})
			}
			verdicts[key] = r.Verdict
			if r.Verdict == engine.Fail {
				ev := timesEvent{At: r.At, From: ro.State, To: ro.State, Failed: true}
				if err := t.advanceTimes(ro, ev); err != nil {
					return err
				}
				ro.Times = ro.Times.advance(ev)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add gate results to %s: %w", rollout, err)
	}
	return nil
}
