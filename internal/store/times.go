package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/drover-dev/drover/internal/engine"
)

// RolloutTimes are the moments a rollout's metrics are measured between
// (the server's drover_rollout_* and recovery metrics). The transaction
// that causes each one stores it with the rollout, so that the metrics
// survive restarts and read the same on every server of a shared
// database, whichever server heard the agent. Each is set once; zero
// means not (yet).
type RolloutTimes struct {
	// Started: the rollout first ran (left pending-approval).
	Started time.Time
	// FirstFailure: a node of it first failed (reported by its agent, or
	// judged by the scheduler past a deadline or on a failing node gate),
	// or a wave gate first failed.
	FirstFailure time.Time
	// Halted: it first stopped going forward after FirstFailure (paused,
	// rolling back, halted, failed or aborted; at FirstFailure itself
	// when it was already stopped), or first rolled back without a
	// failure (an operator's rollback).
	Halted time.Time
	// RollbackDispatched: its first rollback step was dispatched.
	RollbackDispatched time.Time
	// RollbackDone: its last rollback step was reported done, when every
	// rollback succeeded (the rollout ended halted).
	RollbackDone time.Time
	// Recovered: after FirstFailure, its nodes were all back to healthy
	// or rolled back: it ended halted (RollbackDone), or succeeded with no
	// node failed, quarantined, unknown or rolling back. A rollout that
	// ends otherwise after a failure (its rollback failed, an operator
	// aborted it, failed nodes were set aside) never recovers by itself.
	Recovered time.Time
	// Ended: it reached a terminal state.
	Ended time.Time
}

const timesColumns = "started_at, first_failure_at, halted_at, rollback_dispatched_at, rollback_done_at, recovered_at, ended_at"

// RolloutTimeline is a rollout's state and times: what the server's
// rollout metrics are computed from (ListRolloutTimes).
type RolloutTimeline struct {
	ID    string
	State engine.RolloutState
	Times RolloutTimes
}

// timesEvent is what one transaction did to a rollout, for advance.
type timesEvent struct {
	At       time.Time
	From, To engine.RolloutState // state before and after the transaction
	Failed   bool                // a node became failed or a wave gate failed
	// RollbackDispatched: a rollback step was dispatched.
	RollbackDispatched bool
	// RollbackFinished is when the rollout's last rollback step finished
	// (read only when it leaves rolling-back; zero: At).
	RollbackFinished time.Time
	// Clean: no node is failed, quarantined, unknown or rolling back
	// (read only when it succeeds after a failure).
	Clean bool
}

// stopped reports whether a rollout in st goes forward no more (for
// RolloutTimes.Halted).
func stopped(st engine.RolloutState) bool {
	switch st {
	case engine.RolloutPaused, engine.RolloutRollingBack, engine.RolloutHalted, engine.RolloutFailed, engine.RolloutAborted:
		return true
	}
	return false
}

// advance returns the times after ev (the rules on RolloutTimes).
func (rt RolloutTimes) advance(ev timesEvent) RolloutTimes {
	set := func(t *time.Time, at time.Time) {
		if t.IsZero() {
			*t = at
		}
	}
	at := ev.At
	if ev.To == engine.RolloutRunning {
		set(&rt.Started, at)
	}
	if ev.Failed && !ev.From.Terminal() { // a node settled after the end is no failure of the rollout
		set(&rt.FirstFailure, at)
	}
	if (!rt.FirstFailure.IsZero() && stopped(ev.To)) || ev.To == engine.RolloutRollingBack {
		set(&rt.Halted, at)
	}
	if ev.RollbackDispatched {
		set(&rt.RollbackDispatched, at)
	}
	if ev.From == engine.RolloutRollingBack && ev.To == engine.RolloutHalted && !rt.RollbackDispatched.IsZero() {
		done := ev.RollbackFinished
		if done.IsZero() || done.After(at) {
			done = at
		}
		set(&rt.RollbackDone, done)
	}
	if !rt.FirstFailure.IsZero() {
		switch {
		case ev.To == engine.RolloutHalted && ev.From != ev.To:
			set(&rt.Recovered, orTime(rt.RollbackDone, at))
		case ev.To == engine.RolloutSucceeded && ev.From != ev.To && ev.Clean:
			set(&rt.Recovered, at)
		}
	}
	if ev.To.Terminal() {
		set(&rt.Ended, at)
	}
	return rt
}

func orTime(t, or time.Time) time.Time {
	if t.IsZero() {
		return or
	}
	return t
}

// advanceTimes applies ev to the stored rollout ro (read and locked in
// t), reading what the rules need only when they need it.
func (t *tx) advanceTimes(ro Rollout, ev timesEvent) error {
	if ev.From == engine.RolloutRollingBack && ev.To == engine.RolloutHalted {
		var last sql.NullInt64
		if err := t.queryRow("SELECT MAX(finished_at) FROM steps WHERE rollout_id = ? AND kind = ?", ro.ID, string(StepRollback)).Scan(&last); err != nil {
			return fmt.Errorf("read the last rollback: %w", err)
		}
		ev.RollbackFinished = fromNullNanos(last)
	}
	if ev.To == engine.RolloutSucceeded && ev.From != ev.To && !ro.Times.FirstFailure.IsZero() {
		var n int
		if err := t.queryRow("SELECT COUNT(*) FROM rollout_nodes WHERE rollout_id = ? AND phase IN (?, ?, ?, ?)", ro.ID,
			string(engine.PhaseFailed), string(engine.PhaseQuarantined), string(engine.PhaseUnknown), string(engine.PhaseRollingBack)).Scan(&n); err != nil {
			return fmt.Errorf("count the nodes not healthy: %w", err)
		}
		ev.Clean = n == 0
	}
	nt := ro.Times.advance(ev)
	if nt == ro.Times {
		return nil
	}
	if _, err := t.exec(`UPDATE rollouts SET started_at = ?, first_failure_at = ?, halted_at = ?, rollback_dispatched_at = ?,
	rollback_done_at = ?, recovered_at = ?, ended_at = ? WHERE id = ?`,
		nanos(nt.Started), nanos(nt.FirstFailure), nanos(nt.Halted), nanos(nt.RollbackDispatched), nanos(nt.RollbackDone),
		nanos(nt.Recovered), nanos(nt.Ended), ro.ID); err != nil {
		return fmt.Errorf("update rollout times: %w", err)
	}
	return nil
}

func scanTimes(started, failure, halted, dispatched, done, recovered, ended int64) RolloutTimes {
	return RolloutTimes{Started: fromNanos(started), FirstFailure: fromNanos(failure), Halted: fromNanos(halted),
		RollbackDispatched: fromNanos(dispatched), RollbackDone: fromNanos(done), Recovered: fromNanos(recovered), Ended: fromNanos(ended)}
}

func (s *sqlStore) ListRolloutTimes(ctx context.Context) ([]RolloutTimeline, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT id, state, "+timesColumns+" FROM rollouts ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("list rollout times: %w", err)
	}
	defer rows.Close()
	var out []RolloutTimeline
	for rows.Next() {
		var tl RolloutTimeline
		var state string
		var c [7]int64
		if err := rows.Scan(&tl.ID, &state, &c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6]); err != nil {
			return nil, fmt.Errorf("list rollout times: %w", err)
		}
		tl.State, tl.Times = engine.RolloutState(state), scanTimes(c[0], c[1], c[2], c[3], c[4], c[5], c[6])
		out = append(out, tl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list rollout times: %w", err)
	}
	return out, nil
}

func (s *sqlStore) ActiveNodePhases(ctx context.Context) (map[string]map[engine.Phase]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT rn.rollout_id, rn.phase, COUNT(*) FROM rollout_nodes rn JOIN rollouts r ON r.id = rn.rollout_id
WHERE r.state NOT IN (`+terminalStates+`) GROUP BY rn.rollout_id, rn.phase`)
	if err != nil {
		return nil, fmt.Errorf("active node phases: %w", err)
	}
	defer rows.Close()
	out := map[string]map[engine.Phase]int{}
	for rows.Next() {
		var id, phase string
		var n int
		if err := rows.Scan(&id, &phase, &n); err != nil {
			return nil, fmt.Errorf("active node phases: %w", err)
		}
		if out[id] == nil {
			out[id] = map[engine.Phase]int{}
		}
		out[id][engine.Phase(phase)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("active node phases: %w", err)
	}
	return out, nil
}
