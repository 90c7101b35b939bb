package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// insertTiming completes tm from its step and writes it; a step already
// recorded keeps its row.
func (t *tx) insertTiming(tm StepTiming) error {
	var begun sql.NullInt64
	var timing string
	err := t.queryRow("SELECT begun_at, timing FROM steps WHERE id = ?", tm.StepID).Scan(&begun, &timing)
	if isNoRows(err) {
		return nil // not a dispatched step: nothing to learn
	}
	if err != nil {
		return fmt.Errorf("read step %s for its timing: %w", tm.StepID, err)
	}
	tm.StartedAt = tm.DispatchedAt
	if begun.Valid && begun.Int64 > 0 {
		if b := fromNanos(begun.Int64); !b.Before(tm.DispatchedAt) && !b.After(tm.HealthyAt) {
			tm.StartedAt = b
		}
	}
	tm.Execution, tm.Reboot, tm.Probe = tm.HealthyAt.Sub(tm.StartedAt), 0, 0
	var split struct {
		ExecutionSeconds, RebootSeconds, ProbeSeconds float64
	}
	if timing != "" && json.Unmarshal([]byte(timing), &split) == nil {
		// The agent's split divides the time the server measured; it
		// cannot make the step longer or shorter.
		total := max(0, tm.HealthyAt.Sub(tm.StartedAt))
		tm.Reboot = min(seconds(split.RebootSeconds), total)
		tm.Probe = min(seconds(split.ProbeSeconds), total-tm.Reboot)
		tm.Execution = total - tm.Reboot - tm.Probe
	}
	_, err = t.exec(`INSERT INTO step_timings (step_id, rollout_id, node_id, action, os_family, os_version, hardware_class,
	dispatched_at, started_at, healthy_at, settled_at, execution_ns, reboot_ns, probe_ns)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (step_id) DO NOTHING`,
		tm.StepID, tm.Rollout, tm.NodeID, tm.Action, tm.OSFamily, tm.OSVersion, tm.HardwareClass,
		nanos(tm.DispatchedAt), nanos(tm.StartedAt), nanos(tm.HealthyAt), nanos(tm.SettledAt),
		int64(tm.Execution), int64(tm.Reboot), int64(tm.Probe))
	if err != nil {
		return fmt.Errorf("record timing of step %s: %w", tm.StepID, err)
	}
	return nil
}

func seconds(f float64) time.Duration {
	if f <= 0 || f > 30*24*3600 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

func (s *sqlStore) StepTimings(ctx context.Context, since time.Time, limit int) ([]StepTiming, error) {
	var out []StepTiming
	err := s.read(ctx, func(t *tx) error {
		rows, err := t.query(`SELECT step_id, rollout_id, node_id, action, os_family, os_version, hardware_class,
	dispatched_at, started_at, healthy_at, settled_at, execution_ns, reboot_ns, probe_ns
FROM step_timings WHERE settled_at >= ? ORDER BY settled_at DESC, step_id LIMIT ?`, nanos(since), limit)
		if err != nil {
			return err
		}
		defer closeRows(rows)
		for rows.Next() {
			var tm StepTiming
			var d, st, h, se, ex, rb, pr int64
			if err := rows.Scan(&tm.StepID, &tm.Rollout, &tm.NodeID, &tm.Action, &tm.OSFamily, &tm.OSVersion, &tm.HardwareClass,
				&d, &st, &h, &se, &ex, &rb, &pr); err != nil {
				return err
			}
			tm.DispatchedAt, tm.StartedAt, tm.HealthyAt, tm.SettledAt = fromNanos(d), fromNanos(st), fromNanos(h), fromNanos(se)
			tm.Execution, tm.Reboot, tm.Probe = time.Duration(ex), time.Duration(rb), time.Duration(pr)
			out = append(out, tm)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("step timings: %w", err)
	}
	return out, nil
}

func (s *sqlStore) SavePrediction(ctx context.Context, rollout string, prediction []byte, at time.Time) error {
	err := s.write(ctx, func(t *tx) error {
		_, err := t.exec(`INSERT INTO rollout_predictions (rollout_id, prediction, created_at) VALUES (?, ?, ?)
ON CONFLICT (rollout_id) DO UPDATE SET prediction = excluded.prediction, created_at = excluded.created_at`, rollout, string(prediction), nanos(at))
		return err
	})
	if err != nil {
		return fmt.Errorf("save prediction of rollout %s: %w", rollout, err)
	}
	return nil
}

func (s *sqlStore) PredictionOf(ctx context.Context, rollout string) ([]byte, error) {
	var p string
	err := s.db.QueryRowContext(ctx, s.d.rebind("SELECT prediction FROM rollout_predictions WHERE rollout_id = ?"), rollout).Scan(&p)
	if isNoRows(err) {
		return nil, notFound("prediction of rollout", rollout)
	}
	if err != nil {
		return nil, fmt.Errorf("prediction of rollout %s: %w", rollout, err)
	}
	return []byte(p), nil
}

// EndedPrediction is the stored prediction of a rollout that ended, with
// the rollout's creation and end (RolloutTimes.Ended).
type EndedPrediction struct {
	Rollout    string
	Prediction []byte
	CreatedAt  time.Time
	Ended      time.Time
}

func (s *sqlStore) EndedPredictions(ctx context.Context) ([]EndedPrediction, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT p.rollout_id, p.prediction, r.created_at, r.ended_at
FROM rollout_predictions p JOIN rollouts r ON r.id = p.rollout_id WHERE r.ended_at <> 0 ORDER BY r.created_at, r.id`)
	if err != nil {
		return nil, fmt.Errorf("ended predictions: %w", err)
	}
	defer rows.Close()
	var out []EndedPrediction
	for rows.Next() {
		var e EndedPrediction
		var p string
		var created, ended int64
		if err := rows.Scan(&e.Rollout, &p, &created, &ended); err != nil {
			return nil, fmt.Errorf("ended predictions: %w", err)
		}
		e.Prediction, e.CreatedAt, e.Ended = []byte(p), fromNanos(created), fromNanos(ended)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ended predictions: %w", err)
	}
	return out, nil
}
