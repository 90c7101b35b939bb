package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/drover-dev/drover/internal/baseline"
)

// DriftEvent is one stored drift detection.
type DriftEvent struct {
	ID int64 `json:"id"`
	baseline.Drift
	DetectedAt time.Time `json:"detectedAt"`
}

// DriftQuery filters ListDrift; zero values match everything.
type DriftQuery struct {
	Node   string
	After  int64 // events with ID > After
	Since  time.Time
	Limit  int // 0: 500
	Newest bool
}

// Baselines keeps baselines (every version), exemptions and drift
// events. Both backends implement it (see AsBaselines).
type Baselines interface {
	// PutBaseline stores b as the next version of its name (1 for a new
	// name) and audits baseline.apply; a b whose rules equal the
	// current version's stores nothing and returns that version with
	// changed false. b must pass Validate.
	PutBaseline(ctx context.Context, b baseline.Baseline, actor string, now time.Time) (stored baseline.Baseline, changed bool, err error)
	// GetBaseline returns version (0: the current) of name; ErrNotFound.
	GetBaseline(ctx context.Context, name string, version int) (baseline.Baseline, error)
	// ListBaselines returns the current version of every baseline, by name.
	ListBaselines(ctx context.Context) ([]baseline.Baseline, error)
	// PutExemption records e (replacing the node's earlier exemption
	// from the baseline) and audits baseline.exempt; ErrNotFound when
	// the baseline does not exist.
	PutExemption(ctx context.Context, e baseline.Exemption) error
	// ListExemptions lists a baseline's exemptions (expired ones too).
	ListExemptions(ctx context.Context, name string) ([]baseline.Exemption, error)
	// RecordDrift stores ds and audits each as node.drift (which the
	// webhook outbox delivers), in one transaction.
	RecordDrift(ctx context.Context, ds []baseline.Drift, now time.Time) ([]DriftEvent, error)
	// ListDrift lists drift events, oldest first (Newest: newest first).
	ListDrift(ctx context.Context, q DriftQuery) ([]DriftEvent, error)
	// DriftedNodes counts the nodes with a drift event since since.
	DriftedNodes(ctx context.Context, since time.Time) (int, error)
	// RecentSteps returns node's steps that are not finished or
	// finished at or after since: what may explain its package changes.
	RecentSteps(ctx context.Context, node string, since time.Time) ([]RecentStep, error)
}

// RecentStep is a step's payload and how it ended.
type RecentStep struct {
	Payload json.RawMessage
	Result  string // the final phase reported (succeeded, failed, rolled-back ...); "" in flight
}

// AsBaselines returns st's baselines, or false when st keeps none.
func AsBaselines(st Store) (Baselines, bool) {
	b, ok := st.(Baselines)
	return b, ok
}

var _ Baselines = (*sqlStore)(nil)

func (s *sqlStore) PutBaseline(ctx context.Context, b baseline.Baseline, actor string, now time.Time) (baseline.Baseline, bool, error) {
	if err := b.Validate(); err != nil {
		return baseline.Baseline{}, false, fmt.Errorf("baseline %s: %w", b.Name, err)
	}
	var out baseline.Baseline
	var changed bool
	err := s.write(ctx, func(t *tx) error {
		changed = false
		cur, err := getBaseline(t, b.Name, 0)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		case baseline.SameRules(cur, b):
			out = cur
			return nil
		}
		b.Version, b.Actor, b.At = cur.Version+1, actor, now.UTC()
		doc, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("encode baseline: %w", err)
		}
		if _, err := t.exec("INSERT INTO baselines (name, version, doc, actor, at) VALUES (?, ?, ?, ?, ?)",
			b.Name, b.Version, string(doc), actor, nanos(now)); err != nil {
			return fmt.Errorf("insert baseline %s: %w", b.Name, err)
		}
		t.audit(AuditEntry{At: now, Actor: actor, Action: "baseline.apply", Object: "baseline/" + b.Name,
			Detail: detail(map[string]any{"name": b.Name, "version": b.Version, "from": cur.Version, "baseline": b})})
		out, changed = b, true
		return nil
	})
	return out, changed, err
}

func getBaseline(t *tx, name string, version int) (baseline.Baseline, error) {
	q, args := "SELECT doc FROM baselines WHERE name = ? ORDER BY version DESC LIMIT 1", []any{name}
	if version > 0 {
		q, args = "SELECT doc FROM baselines WHERE name = ? AND version = ?", []any{name, version}
	}
	var doc string
	if err := t.queryRow(q, args...).Scan(&doc); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return baseline.Baseline{}, fmt.Errorf("baseline %s: %w", name, ErrNotFound)
		}
		return baseline.Baseline{}, fmt.Errorf("read baseline %s: %w", name, err)
	}
	var b baseline.Baseline
	if err := json.Unmarshal([]byte(doc), &b); err != nil {
		return baseline.Baseline{}, fmt.Errorf("decode baseline %s: %w", name, err)
	}
	return b, nil
}

func (s *sqlStore) GetBaseline(ctx context.Context, name string, version int) (baseline.Baseline, error) {
	var b baseline.Baseline
	err := s.read(ctx, func(t *tx) (err error) { b, err = getBaseline(t, name, version); return err })
	return b, err
}

func (s *sqlStore) ListBaselines(ctx context.Context) ([]baseline.Baseline, error) {
	out := []baseline.Baseline{}
	err := s.read(ctx, func(t *tx) error {
		rs, err := t.query(`SELECT b.doc FROM baselines b WHERE b.version = (SELECT MAX(version) FROM baselines WHERE name = b.name) ORDER BY b.name`)
		if err != nil {
			return fmt.Errorf("list baselines: %w", err)
		}
		defer rs.Close()
		for rs.Next() {
			var doc string
			if err := rs.Scan(&doc); err != nil {
				return fmt.Errorf("list baselines: %w", err)
			}
			var b baseline.Baseline
			if err := json.Unmarshal([]byte(doc), &b); err != nil {
				return fmt.Errorf("decode baseline: %w", err)
			}
			out = append(out, b)
		}
		return rs.Err()
	})
	return out, err
}

func (s *sqlStore) PutExemption(ctx context.Context, e baseline.Exemption) error {
	if err := e.Validate(e.At); err != nil {
		return fmt.Errorf("baseline %s: %w", e.Baseline, err)
	}
	return s.write(ctx, func(t *tx) error {
		if _, err := getBaseline(t, e.Baseline, 0); err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO baseline_exemptions (baseline, node, by_actor, reason, expires, at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (baseline, node) DO UPDATE SET by_actor = excluded.by_actor, reason = excluded.reason, expires = excluded.expires, at = excluded.at`,
			e.Baseline, e.Node, e.By, e.Reason, nanos(e.Expires), nanos(e.At)); err != nil {
			return fmt.Errorf("exempt %s from %s: %w", e.Node, e.Baseline, err)
		}
		t.audit(AuditEntry{At: e.At, Actor: e.By, Action: "baseline.exempt", Object: "node/" + e.Node,
			Detail: detail(map[string]any{"baseline": e.Baseline, "node": e.Node, "reason": e.Reason, "expires": e.Expires.UTC()})})
		return nil
	})
}

func (s *sqlStore) ListExemptions(ctx context.Context, name string) ([]baseline.Exemption, error) {
	out := []baseline.Exemption{}
	err := s.read(ctx, func(t *tx) error {
		rs, err := t.query("SELECT node, by_actor, reason, expires, at FROM baseline_exemptions WHERE baseline = ? ORDER BY node", name)
		if err != nil {
			return fmt.Errorf("list exemptions: %w", err)
		}
		defer rs.Close()
		for rs.Next() {
			e := baseline.Exemption{Baseline: name}
			var exp, at int64
			if err := rs.Scan(&e.Node, &e.By, &e.Reason, &exp, &at); err != nil {
				return fmt.Errorf("list exemptions: %w", err)
			}
			e.Expires, e.At = fromNanos(exp), fromNanos(at)
			out = append(out, e)
		}
		return rs.Err()
	})
	return out, err
}

func (s *sqlStore) RecordDrift(ctx context.Context, ds []baseline.Drift, now time.Time) ([]DriftEvent, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	var out []DriftEvent
	err := s.write(ctx, func(t *tx) error {
		out = out[:0]
		for _, d := range ds {
			if _, err := t.exec(`INSERT INTO drift_events (node, package, from_ver, to_ver, kind, baseline, reason, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				d.Node, d.Package, d.From, d.To, d.Kind, d.Baseline, d.Reason, nanos(now)); err != nil {
				return fmt.Errorf("record drift of %s: %w", d.Node, err)
			}
			t.audit(AuditEntry{At: now, Actor: "agent:" + d.Node, Action: "node.drift", Object: "node/" + d.Node,
				Detail: detail(map[string]any{"node": d.Node, "package": d.Package, "from": d.From, "to": d.To, "kind": d.Kind,
					"baseline": d.Baseline, "reason": d.Reason})})
			out = append(out, DriftEvent{Drift: d, DetectedAt: now.UTC()})
		}
		return nil
	})
	return out, err
}

func (s *sqlStore) ListDrift(ctx context.Context, q DriftQuery) ([]DriftEvent, error) {
	if q.Limit <= 0 {
		q.Limit = 500
	}
	where, args := "WHERE id > ? AND detected_at >= ?", []any{q.After, nanos(q.Since)}
	if q.Node != "" {
		where += " AND node = ?"
		args = append(args, q.Node)
	}
	order := "id"
	if q.Newest {
		order = "id DESC"
	}
	out := []DriftEvent{}
	err := s.read(ctx, func(t *tx) error {
		rs, err := t.query("SELECT id, node, package, from_ver, to_ver, kind, baseline, reason, detected_at FROM drift_events "+where+
			" ORDER BY "+order+" LIMIT ?", append(args, q.Limit)...)
		if err != nil {
			return fmt.Errorf("list drift: %w", err)
		}
		defer rs.Close()
		for rs.Next() {
			var e DriftEvent
			var at int64
			if err := rs.Scan(&e.ID, &e.Node, &e.Package, &e.From, &e.To, &e.Kind, &e.Baseline, &e.Reason, &at); err != nil {
				return fmt.Errorf("list drift: %w", err)
			}
			e.DetectedAt = fromNanos(at)
			out = append(out, e)
		}
		return rs.Err()
	})
	return out, err
}

func (s *sqlStore) DriftedNodes(ctx context.Context, since time.Time) (int, error) {
	var n int
	err := s.read(ctx, func(t *tx) error {
		return t.queryRow("SELECT COUNT(DISTINCT node) FROM drift_events WHERE detected_at >= ?", nanos(since)).Scan(&n)
	})
	return n, err
}

func (s *sqlStore) RecentSteps(ctx context.Context, node string, since time.Time) ([]RecentStep, error) {
	var out []RecentStep
	err := s.read(ctx, func(t *tx) error {
		rs, err := t.query("SELECT payload, result FROM steps WHERE node_id = ? AND (finished_at IS NULL OR finished_at >= ?)", node, nanos(since))
		if err != nil {
			return fmt.Errorf("recent steps of %s: %w", node, err)
		}
		defer rs.Close()
		for rs.Next() {
			var p, result string
			if err := rs.Scan(&p, &result); err != nil {
				return fmt.Errorf("recent steps of %s: %w", node, err)
			}
			out = append(out, RecentStep{Payload: json.RawMessage(p), Result: result})
		}
		return rs.Err()
	})
	return out, err
}
