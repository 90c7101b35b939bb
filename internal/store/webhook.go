package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// OutboxEvent is a webhook event in the outbox: the audit entry it comes
// from (Entry.Seq is its ID), its type, and its place in its stream (the
// rollout it is about; "" for fleet-wide events).
type OutboxEvent struct {
	Type      string
	Stream    string
	StreamSeq int64
	Entry     AuditEntry
}

// ID is the event's unique ID, its audit entry's seq.
func (e OutboxEvent) ID() int64 { return e.Entry.Seq }

// WebhookPending is what waits for one subscription: how many events,
// and when the oldest was committed (zero when none).
type WebhookPending struct {
	Events int
	Oldest time.Time
}

// WebhookEventOf says which webhook event (api.Webhook*) an audit entry
// is, "" for none. It is the one place that decides it: the store
// writes the outbox row for an entry it returns a type for in the
// transaction that appends the entry.
func WebhookEventOf(e AuditEntry) string {
	var d struct {
		From  string `json:"from"`
		To    string `json:"to"`
		State string `json:"state"`
	}
	switch e.Action {
	case "line.stop":
		return api.WebhookLineStopped
	case "line.lift":
		return api.WebhookLineLifted
	case "node.drift":
		return api.WebhookNodeDrift
	case "budget.breach":
		return api.WebhookBudgetBreached
	case "rollout.approve":
		return api.WebhookApprovalGiven
	case "rollout.create":
		if json.Unmarshal(e.Detail, &d) == nil && d.State == string(engine.RolloutPendingApproval) {
			return api.WebhookApprovalRequested
		}
		return ""
	case "gate.verdict":
		if json.Unmarshal(e.Detail, &d) == nil && d.To == string(engine.Inconclusive) && d.From != d.To {
			return api.WebhookGateInconclusive
		}
		return ""
	}
	// rollout.state (the scheduler) and rollout.pause, .abort, .stop ...
	// (people): what matters is the state the rollout moved to.
	if !strings.HasPrefix(e.Action, "rollout.") || json.Unmarshal(e.Detail, &d) != nil || d.From == d.To {
		return ""
	}
	switch engine.RolloutState(d.To) {
	case engine.RolloutHalted:
		return api.WebhookRolloutHalted
	case engine.RolloutPaused:
		return api.WebhookRolloutPaused
	case engine.RolloutSucceeded, engine.RolloutFailed, engine.RolloutAborted:
		return api.WebhookRolloutEnded
	}
	return ""
}

// outbox writes the outbox row of e (appended at e.Seq) if e is a
// webhook event. It runs under the audit head's lock (appendAudit), which
// serializes the stream sequence numbers and makes rows commit in id
// order.
func (t *tx) outbox(e AuditEntry) error {
	typ := WebhookEventOf(e)
	if typ == "" {
		return nil
	}
	if _, err := t.exec(`INSERT INTO webhook_outbox (id, stream, stream_seq, event, at)
VALUES (?, ?, (SELECT COALESCE(MAX(stream_seq), 0) + 1 FROM webhook_outbox WHERE stream = ?), ?, ?)`,
		e.Seq, e.Rollout, e.Rollout, typ, nanos(e.At)); err != nil {
		return fmt.Errorf("webhook outbox %s: %w", typ, err)
	}
	return nil
}

// OpenWebhook registers a subscription the first time it is seen, to be
// sent the events committed from then on (audited as webhook.open with
// the outbox position it starts after); later calls change nothing.
func (s *sqlStore) OpenWebhook(ctx context.Context, name string, now time.Time) error {
	err := s.write(ctx, func(t *tx) error {
		res, err := t.exec(`INSERT INTO webhook_subscriptions (name, start_after, created_at)
SELECT ?, COALESCE(MAX(id), 0), ? FROM webhook_outbox WHERE true ON CONFLICT (name) DO NOTHING`, name, nanos(now))
		if err != nil {
			return err
		}
		if n, err := rowsAffected(res); err != nil || n == 0 {
			return err
		}
		var start int64
		if err := t.queryRow("SELECT start_after FROM webhook_subscriptions WHERE name = ?", name).Scan(&start); err != nil {
			return err
		}
		t.audit(AuditEntry{At: now, Actor: "server", Action: "webhook.open", Object: "webhook/" + name,
			Detail: detail(map[string]any{"name": name, "start_after": start})})
		return nil
	})
	if err != nil {
		return fmt.Errorf("open webhook %s: %w", name, err)
	}
	return nil
}

// eventFilter is the SQL condition and arguments for an events filter
// (empty: every event).
func eventFilter(events []string) (string, []any) {
	if len(events) == 0 {
		return "", nil
	}
	args := make([]any, len(events))
	for i, e := range events {
		args[i] = e
	}
	return " AND o.event IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(events)), ", ") + ")", args
}

// undelivered is the FROM clause of a subscription's events not yet
// acknowledged, with its arguments (subscription, subscription).
const undelivered = ` FROM webhook_outbox o
JOIN webhook_subscriptions s ON s.name = ?
LEFT JOIN webhook_cursors c ON c.subscription = ? AND c.stream = o.stream
WHERE o.id > s.start_after AND o.id > COALESCE(c.last_id, 0)`

// NextWebhookEvents returns, for up to limit streams, the oldest event
// of the stream that the subscription has not acknowledged and that
// its filter (events; empty: all) selects, oldest stream head first.
// An unopened subscription has none.
func (s *sqlStore) NextWebhookEvents(ctx context.Context, name string, events []string, limit int) ([]OutboxEvent, error) {
	if limit <= 0 {
		limit = 100
	}
	cond, fargs := eventFilter(events)
	var out []OutboxEvent
	err := s.read(ctx, func(t *tx) error {
		args := append([]any{name, name}, fargs...)
		args = append(args, limit)
		rows, err := t.query(`SELECT MIN(o.id)`+undelivered+cond+` GROUP BY o.stream ORDER BY MIN(o.id) LIMIT ?`, args...)
		if err != nil {
			return err
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		if err := closeRows(rows); err != nil {
			return err
		}
		for _, id := range ids {
			var ev OutboxEvent
			row := t.queryRow(`SELECT o.event, o.stream, o.stream_seq, `+prefixed("a.", auditColumns)+
				` FROM webhook_outbox o JOIN audit a ON a.seq = o.id WHERE o.id = ?`, id)
			var at int64
			var d string
			e := &ev.Entry
			if err := row.Scan(&ev.Type, &ev.Stream, &ev.StreamSeq, &e.Seq, &at, &e.Actor, &e.Action, &e.Object, &e.Rollout, &d, &e.Prev, &e.Hash); err != nil {
				return fmt.Errorf("event %d: %w", id, err)
			}
			e.At, e.Detail = fromNanos(at), json.RawMessage(d)
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("next webhook events of %s: %w", name, err)
	}
	return out, nil
}

// AckWebhook records that the subscription's receiver acknowledged
// event id of stream (and so every earlier one it was sent): the
// stream's cursor moves to id, never back. ErrFenced if term is not the
// current leadership term: only the leader delivers.
func (s *sqlStore) AckWebhook(ctx context.Context, name, stream string, id, term int64, now time.Time) error {
	err := s.write(ctx, func(t *tx) error {
		if err := t.checkTerm(term); err != nil {
			return err
		}
		_, err := t.exec(`INSERT INTO webhook_cursors (subscription, stream, last_id, delivered_at) VALUES (?, ?, ?, ?)
ON CONFLICT (subscription, stream) DO UPDATE SET last_id = excluded.last_id, delivered_at = excluded.delivered_at
WHERE webhook_cursors.last_id < excluded.last_id`, name, stream, id, nanos(now))
		return err
	})
	if err != nil {
		return fmt.Errorf("acknowledge webhook event %d to %s: %w", id, name, err)
	}
	return nil
}

// PendingWebhook counts the subscription's events not yet acknowledged
// that its filter selects.
func (s *sqlStore) PendingWebhook(ctx context.Context, name string, events []string) (WebhookPending, error) {
	cond, fargs := eventFilter(events)
	var p WebhookPending
	var oldest *int64
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*), MIN(o.at)`+undelivered+cond), append([]any{name, name}, fargs...)...).Scan(&p.Events, &oldest)
	if err != nil {
		return p, fmt.Errorf("pending webhook events of %s: %w", name, err)
	}
	if oldest != nil {
		p.Oldest = fromNanos(*oldest)
	}
	return p, nil
}

// PruneWebhookOutbox deletes the outbox rows of events committed before
// before (delivered or not: a receiver down that long reads the audit
// log instead), except the newest of each stream, which numbers the
// stream's next event; it returns how many.
func (s *sqlStore) PruneWebhookOutbox(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(t *tx) error {
		res, err := t.exec("DELETE FROM webhook_outbox WHERE at < ? AND id NOT IN (SELECT MAX(id) FROM webhook_outbox GROUP BY stream)", nanos(before))
		if err != nil {
			return err
		}
		n, err = rowsAffected(res)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune webhook outbox: %w", err)
	}
	return n, nil
}
