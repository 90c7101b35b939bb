package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/drover-dev/drover/internal/engine"
)

// ErrLineStopped: a commit would dispatch a step while a fleet-wide stop
// is in force. Nothing was written.
var ErrLineStopped = errors.New("line stopped: nothing is dispatched")

// LineStop is a fleet-wide stop-the-line in force.
type LineStop struct {
	Reason string
	By     string
	At     time.Time
	// Cancelled and CancelRequested count the steps the stop cancelled
	// at once and those whose agents were asked (set by StopLine only).
	Cancelled, CancelRequested int
}

// Text is the stop as Decide's input and the waits name it.
func (l LineStop) Text() string {
	return "stopped by " + l.By + withReason(l.Reason)
}

func withReason(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

// StopLine stops the line fleet-wide: from its commit on, no server
// dispatches anything (ApplyCommit refuses steps with ErrLineStopped),
// and in the same transaction every active rollout's steps not begun are
// cancelled (engine.Cancel). It returns the stop in force and whether it
// was already in force (then nothing changes and nothing is audited).
// Audited as line.stop with the actor, the reason and the counts.
func (s *sqlStore) StopLine(ctx context.Context, actor, reason string, now time.Time) (LineStop, bool, error) {
	if actor == "" {
		return LineStop{}, false, errors.New("stop the line: no actor")
	}
	if now.IsZero() {
		now = s.clock()
	}
	var out LineStop
	var already bool
	err := s.write(ctx, func(t *tx) error {
		// Lock order: rollouts (ascending ID), then the leader row, held
		// exclusively so that no commit checking the line is in flight.
		ids, err := t.activeRollouts()
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := t.getRollout(id, true); err != nil && !isNotFound(err) {
				return err
			}
		}
		var term int64
		if err := t.queryRow("SELECT term FROM leader WHERE id = 1" + t.d.forUpdate).Scan(&term); err != nil {
			return fmt.Errorf("lock the leader row: %w", err)
		}
		cur, ok, err := t.lineStop()
		if err != nil {
			return err
		}
		if ok {
			out, already = cur, true
			return nil
		}
		out = LineStop{Reason: reason, By: actor, At: now}
		if _, err := t.exec("INSERT INTO line_stop (id, reason, by_user, at) VALUES (1, ?, ?, ?)", reason, actor, nanos(now)); err != nil {
			return fmt.Errorf("record the stop: %w", err)
		}
		cancelled, requested := 0, 0
		for _, id := range ids {
			steps, err := t.openSteps(id)
			if err != nil {
				return err
			}
			cs := engine.Cancel(steps, "line "+out.Text())
			if len(cs) == 0 {
				continue
			}
			if err := t.cancel(id, cs, now); err != nil {
				return err
			}
			n, r := countCancels(cs)
			cancelled, requested = cancelled+n, requested+r
		}
		out.Cancelled, out.CancelRequested = cancelled, requested
		d := map[string]any{"cancelled": cancelled, "cancel_requested": requested, "rollouts": len(ids)}
		if reason != "" {
			d["reason"] = reason
		}
		t.audit(AuditEntry{At: now, Actor: actor, Action: "line.stop", Object: "line", Detail: detail(d)})
		return nil
	})
	if err != nil {
		return LineStop{}, false, fmt.Errorf("stop the line: %w", err)
	}
	return out, already, nil
}

// LiftLine ends the fleet-wide stop; ErrConflict when none is in force.
// Audited as line.lift with the actor, the reason and the stop lifted.
func (s *sqlStore) LiftLine(ctx context.Context, actor, reason string, now time.Time) (LineStop, error) {
	if actor == "" {
		return LineStop{}, errors.New("lift the line stop: no actor")
	}
	if now.IsZero() {
		now = s.clock()
	}
	var lifted LineStop
	err := s.write(ctx, func(t *tx) error {
		var term int64
		if err := t.queryRow("SELECT term FROM leader WHERE id = 1" + t.d.forUpdate).Scan(&term); err != nil {
			return fmt.Errorf("lock the leader row: %w", err)
		}
		cur, ok, err := t.lineStop()
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the line is not stopped: %w", ErrConflict)
		}
		lifted = cur
		if _, err := t.exec("DELETE FROM line_stop WHERE id = 1"); err != nil {
			return fmt.Errorf("lift the stop: %w", err)
		}
		d := map[string]any{"stopped_by": cur.By, "stopped_at": cur.At, "stop_reason": cur.Reason}
		if reason != "" {
			d["reason"] = reason
		}
		t.audit(AuditEntry{At: now, Actor: actor, Action: "line.lift", Object: "line", Detail: detail(d)})
		return nil
	})
	if err != nil {
		return LineStop{}, fmt.Errorf("lift the line stop: %w", err)
	}
	return lifted, nil
}

// GetLineStop returns the stop in force, and false when the line runs.
func (s *sqlStore) GetLineStop(ctx context.Context) (LineStop, bool, error) {
	var out LineStop
	var ok bool
	err := s.read(ctx, func(t *tx) error {
		var err error
		out, ok, err = t.lineStop()
		return err
	})
	if err != nil {
		return LineStop{}, false, fmt.Errorf("read the line stop: %w", err)
	}
	return out, ok, nil
}

func (t *tx) lineStop() (LineStop, bool, error) {
	var l LineStop
	var at int64
	err := t.queryRow("SELECT reason, by_user, at FROM line_stop WHERE id = 1").Scan(&l.Reason, &l.By, &at)
	if isNoRows(err) {
		return LineStop{}, false, nil
	}
	if err != nil {
		return LineStop{}, false, fmt.Errorf("read the line stop: %w", err)
	}
	l.At = fromNanos(at)
	return l, true, nil
}

// InFlight lists, per active rollout, the nodes with a step out on an
// agent: queued (handed out or not; a cancel may be pending), running,
// verifying with an open step, rolling-back, or unknown with an open
// step. A node whose step is finished is not in flight.
func (s *sqlStore) InFlight(ctx context.Context) ([]InFlight, error) {
	var out []InFlight
	err := s.read(ctx, func(t *tx) error {
		// Driven by the unfinished steps (the steps_pending partial
		// index), not by every rollout node ever stored.
		rows, err := t.query(`SELECT rn.rollout_id, rn.node_id, rn.phase, s.cancel_requested_at IS NOT NULL
FROM steps s JOIN rollout_nodes rn ON rn.rollout_id = s.rollout_id AND rn.node_id = s.node_id AND rn.step_id = s.id
WHERE s.finished_at IS NULL AND rn.phase IN (?, ?, ?, ?, ?) ORDER BY rn.rollout_id, rn.idx`,
			string(engine.PhaseQueued), string(engine.PhaseRunning), string(engine.PhaseVerifying),
			string(engine.PhaseRollingBack), string(engine.PhaseUnknown))
		if err != nil {
			return err
		}
		for rows.Next() {
			var f InFlight
			var phase string
			if err := rows.Scan(&f.Rollout, &f.Node, &phase, &f.CancelRequested); err != nil {
				rows.Close()
				return err
			}
			f.Phase = engine.Phase(phase)
			out = append(out, f)
		}
		return closeRows(rows)
	})
	if err != nil {
		return nil, fmt.Errorf("in flight: %w", err)
	}
	return out, nil
}

// InFlight is one node with a step out on its agent.
type InFlight struct {
	Rollout         string
	Node            string
	Phase           engine.Phase
	CancelRequested bool
}

// activeRollouts lists the IDs of the rollouts not in a terminal state,
// in ID order (the lock order).
func (t *tx) activeRollouts() ([]string, error) {
	rows, err := t.query("SELECT id FROM rollouts WHERE state NOT IN (" + terminalStates + ") ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("active rollouts: %w", err)
	}
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("active rollouts: %w", err)
		}
		out = append(out, id)
	}
	return out, closeRows(rows)
}
