package store

import (
	"context"
	"encoding/json"
	"fmt"
)

// StepEvidence is one step a rollout dispatched to a node, with what its
// agent reported: Result ("" while unfinished) and Evidence (the agent's
// JSON; nil when it sent none).
type StepEvidence struct {
	ID       string
	Kind     StepKind
	Attempt  int
	Result   string
	Evidence json.RawMessage
}

func (s *sqlStore) LatestRolloutOf(ctx context.Context, node string) (string, error) {
	var id string
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT rn.rollout_id FROM rollout_nodes rn JOIN rollouts r ON r.id = rn.rollout_id
WHERE rn.node_id = ? AND rn.step_id <> '' ORDER BY r.created_at DESC, r.id DESC LIMIT 1`), node).Scan(&id)
	if isNoRows(err) {
		return "", fmt.Errorf("no rollout dispatched a step to node %s: %w", node, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("latest rollout of %s: %w", node, err)
	}
	return id, nil
}

func (s *sqlStore) NodeSteps(ctx context.Context, rollout, node string) ([]StepEvidence, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT id, kind, attempt, result, evidence FROM steps
WHERE rollout_id = ? AND node_id = ? ORDER BY created_at, id`), rollout, node)
	if err != nil {
		return nil, fmt.Errorf("steps of %s in %s: %w", node, rollout, err)
	}
	defer rows.Close()
	var out []StepEvidence
	for rows.Next() {
		var st StepEvidence
		var kind, evidence string
		if err := rows.Scan(&st.ID, &kind, &st.Attempt, &st.Result, &evidence); err != nil {
			return nil, fmt.Errorf("steps of %s in %s: %w", node, rollout, err)
		}
		st.Kind = StepKind(kind)
		if evidence != "" {
			st.Evidence = json.RawMessage(evidence)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("steps of %s in %s: %w", node, rollout, err)
	}
	return out, nil
}
