package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/drover-dev/drover/internal/engine"
)

func (s *sqlStore) UnchangedNodes(ctx context.Context, rollout string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT n.node_id, st.evidence FROM rollout_nodes n JOIN steps st ON st.id = n.step_id
WHERE n.rollout_id = ? AND n.phase = ? AND st.kind = ? ORDER BY n.idx`), rollout, "succeeded", string(StepApply))
	if err != nil {
		return nil, fmt.Errorf("unchanged nodes of %s: %w", rollout, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, evidence string
		if err := rows.Scan(&id, &evidence); err != nil {
			return nil, fmt.Errorf("unchanged nodes of %s: %w", rollout, err)
		}
		if changedNothing(evidence) {
			out = append(out, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("unchanged nodes of %s: %w", rollout, err)
	}
	return out, nil
}

func (s *sqlStore) RolledBackFailed(ctx context.Context, rollout string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT n.node_id FROM rollout_nodes n WHERE n.rollout_id = ? AND n.phase = ?
AND EXISTS (SELECT 1 FROM steps st WHERE st.rollout_id = n.rollout_id AND st.node_id = n.node_id AND st.kind = ? AND st.result = ?)
ORDER BY n.idx`), rollout, "rolled-back", string(StepApply), "failed")
	if err != nil {
		return nil, fmt.Errorf("rolled-back failed nodes of %s: %w", rollout, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("rolled-back failed nodes of %s: %w", rollout, err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rolled-back failed nodes of %s: %w", rollout, err)
	}
	return out, nil
}

func (s *sqlStore) RolledBackApplies(ctx context.Context, rollout string) (map[string]engine.Phase, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT n.node_id, st.result FROM rollout_nodes n JOIN steps st
ON st.rollout_id = n.rollout_id AND st.node_id = n.node_id
WHERE n.rollout_id = ? AND n.phase = ? AND st.kind = ? AND st.result IN (?, ?)`),
		rollout, string(engine.PhaseRolledBack), string(StepApply), string(engine.PhaseFailed), string(engine.PhaseSucceeded))
	if err != nil {
		return nil, fmt.Errorf("rolled-back applies of %s: %w", rollout, err)
	}
	defer rows.Close()
	out := map[string]engine.Phase{}
	for rows.Next() {
		var id, result string
		if err := rows.Scan(&id, &result); err != nil {
			return nil, fmt.Errorf("rolled-back applies of %s: %w", rollout, err)
		}
		if out[id] != engine.PhaseFailed {
			out[id] = engine.Phase(result)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rolled-back applies of %s: %w", rollout, err)
	}
	return out, nil
}

// changedNothing reports whether a step's evidence (the agent's, see
// internal/agent) says every action changed nothing: its pre-flight found
// nothing to change (change.none, so it was not applied) or its outcome
// lists no change. Evidence without actions says nothing.
func changedNothing(evidence string) bool {
	var ev struct {
		Actions []struct {
			Change *struct {
				None bool `json:"none"`
			} `json:"change"`
			Outcome *struct {
				Changed []json.RawMessage `json:"changed"`
			} `json:"outcome"`
		} `json:"actions"`
	}
	if json.Unmarshal([]byte(evidence), &ev) != nil || len(ev.Actions) == 0 {
		return false
	}
	for _, a := range ev.Actions {
		switch {
		case a.Outcome != nil:
			if len(a.Outcome.Changed) > 0 {
				return false
			}
		case a.Change == nil || !a.Change.None:
			return false
		}
	}
	return true
}
