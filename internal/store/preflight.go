package store

import (
	"context"
	"fmt"
	"time"
)

// PreflightAsk is one node asked for its pre-flight of a change.
// Answered set (with OK and Reason) is the server's own answer, given at
// once, for a node it need not ask (an agent too old, a compatibility
// rule the node breaks); otherwise the agent answers through
// AnswerPreflight.
type PreflightAsk struct {
	Node     string
	Payload  []byte // the agent's api.PreflightRequest, JSON
	Answered bool
	OK       bool
	Reason   string
}

// Preflight is one node's pre-flight in a rollout or dry run.
type Preflight struct {
	Rollout    string
	Node       string
	AskedAt    time.Time
	Deadline   time.Time
	AnsweredAt time.Time // zero while unanswered
	OK         bool
	Reason     string
	Report     []byte // the agent's api.PreflightReport, JSON; nil when the server answered
}

// AskPreflight records the asks of a rollout's (or dry run's) node
// pre-flight at now, due by deadline. A node already asked for that
// rollout keeps its first ask: asking again changes nothing.
func (s *sqlStore) AskPreflight(ctx context.Context, rollout string, asks []PreflightAsk, now, deadline time.Time) error {
	err := s.write(ctx, func(t *tx) error {
		for _, a := range asks {
			var answered int64
			if a.Answered {
				answered = nanos(now)
			}
			if _, err := t.exec(`INSERT INTO node_preflights (rollout_id, node_id, asked_at, deadline, payload, answered_at, ok, reason)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rollout_id, node_id) DO NOTHING`,
				rollout, a.Node, nanos(now), nanos(deadline), string(a.Payload), answered, boolInt(a.OK), a.Reason); err != nil {
				return fmt.Errorf("node %s: %w", a.Node, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ask pre-flight of rollout %s: %w", rollout, err)
	}
	return nil
}

// OpenPreflights returns the payloads of node's unanswered pre-flights
// whose deadline is after now, oldest first.
func (s *sqlStore) OpenPreflights(ctx context.Context, node string, now time.Time) ([][]byte, error) {
	out, err := s.payloads(ctx, `SELECT payload FROM node_preflights WHERE node_id = ? AND answered_at = 0 AND deadline > ? ORDER BY asked_at, rollout_id`,
		node, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("open pre-flights of node %s: %w", node, err)
	}
	return out, nil
}

// payloads reads the single text column of a query's rows: the JSON
// payloads of requests waiting for a node.
func (s *sqlStore) payloads(ctx context.Context, q string, args ...any) ([][]byte, error) {
	var out [][]byte
	err := s.read(ctx, func(t *tx) error {
		rows, err := t.query(q, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return err
			}
			out = append(out, []byte(p))
		}
		return closeRows(rows)
	})
	return out, err
}

// AnswerPreflight records a node's answer. ErrNotFound: the node was
// never asked for that rollout. ErrConflict: it answered already.
func (s *sqlStore) AnswerPreflight(ctx context.Context, rollout, node string, ok bool, reason string, report []byte, at time.Time) error {
	err := s.write(ctx, func(t *tx) error {
		var answered int64
		err := t.queryRow("SELECT answered_at FROM node_preflights WHERE rollout_id = ? AND node_id = ?", rollout, node).Scan(&answered)
		if isNoRows(err) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if answered != 0 {
			return ErrConflict
		}
		_, err = t.exec("UPDATE node_preflights SET answered_at = ?, ok = ?, reason = ?, report = ? WHERE rollout_id = ? AND node_id = ?",
			nanos(at), boolInt(ok), reason, string(report), rollout, node)
		return err
	})
	if err != nil {
		return fmt.Errorf("pre-flight of node %s for %s: %w", node, rollout, err)
	}
	return nil
}

// Preflights lists a rollout's (or dry run's) node pre-flights, by node.
// ErrNotFound when no node was asked.
func (s *sqlStore) Preflights(ctx context.Context, rollout string) ([]Preflight, error) {
	var out []Preflight
	err := s.read(ctx, func(t *tx) error {
		rows, err := t.query(`SELECT node_id, asked_at, deadline, answered_at, ok, reason, report FROM node_preflights WHERE rollout_id = ? ORDER BY node_id`, rollout)
		if err != nil {
			return err
		}
		for rows.Next() {
			p := Preflight{Rollout: rollout}
			var asked, deadline, answered, ok int64
			var report string
			if err := rows.Scan(&p.Node, &asked, &deadline, &answered, &ok, &p.Reason, &report); err != nil {
				rows.Close()
				return err
			}
			p.AskedAt, p.Deadline, p.AnsweredAt, p.OK = fromNanos(asked), fromNanos(deadline), fromNanos(answered), ok != 0
			if report != "" {
				p.Report = []byte(report)
			}
			out = append(out, p)
		}
		return closeRows(rows)
	})
	if err != nil {
		return nil, fmt.Errorf("pre-flights of %s: %w", rollout, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("pre-flights of %s: %w", rollout, ErrNotFound)
	}
	return out, nil
}

func (s *sqlStore) PreflightTimes(ctx context.Context, limit int) ([]time.Duration, error) {
	var out []time.Duration
	err := s.read(ctx, func(t *tx) error {
		rows, err := t.query(`SELECT answered_at - asked_at FROM node_preflights WHERE answered_at > asked_at ORDER BY answered_at DESC LIMIT ?`, limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			var d int64
			if err := rows.Scan(&d); err != nil {
				rows.Close()
				return err
			}
			out = append(out, time.Duration(d))
		}
		return closeRows(rows)
	})
	if err != nil {
		return nil, fmt.Errorf("pre-flight times: %w", err)
	}
	return out, nil
}
