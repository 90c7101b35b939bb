package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// EvidenceRecord is one stored evidence bundle. Body is the bundle's
// JSON (uncompressed; the store compresses it); SHA256 and Size are of
// Body. List calls leave Body nil.
type EvidenceRecord struct {
	ID         string
	Node       string
	Rollout    string
	Step       string
	Reason     string // failure | on-demand
	Request    string // the on-demand request answered, if any
	CapturedAt time.Time
	StoredAt   time.Time
	SHA256     string
	Size       int64
	Body       []byte
}

// EvidenceRetention bounds the bundles kept: none older than MaxAge
// (0: no age bound), at most PerNode per node (0: no count bound).
type EvidenceRetention struct {
	MaxAge  time.Duration
	PerNode int
}

// EvidenceAsk is an on-demand evidence request for a node.
type EvidenceAsk struct {
	ID       string
	Node     string
	Actor    string
	AskedAt  time.Time
	Deadline time.Time
	Payload  []byte // the agent's api.EvidenceRequest, JSON
	Bundle   string // the bundle that answered it ("" while open)
}

// AddEvidence stores a bundle (its SHA256 and Size are computed from
// Body), records it in the audit log with its hash, marks the request it
// answers (if any) answered, and prunes bundles past keep. ErrNotFound:
// the request named is not the node's; ErrConflict: it was answered.
func (s *sqlStore) AddEvidence(ctx context.Context, r EvidenceRecord, keep EvidenceRetention) (EvidenceRecord, error) {
	sum := sha256.Sum256(r.Body)
	r.SHA256, r.Size = hex.EncodeToString(sum[:]), int64(len(r.Body))
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(r.Body); err != nil {
		return r, fmt.Errorf("store evidence of node %s: compress: %w", r.Node, err)
	}
	if err := zw.Close(); err != nil {
		return r, fmt.Errorf("store evidence of node %s: compress: %w", r.Node, err)
	}
	err := s.write(ctx, func(t *tx) error {
		if r.Request != "" {
			var node, bundle string
			err := t.queryRow("SELECT node_id, bundle_id FROM evidence_requests WHERE id = ?", r.Request).Scan(&node, &bundle)
			if isNoRows(err) || (err == nil && node != r.Node) {
				return fmt.Errorf("request %s: %w", r.Request, ErrNotFound)
			}
			if err != nil {
				return err
			}
			if bundle != "" {
				return fmt.Errorf("request %s answered by bundle %s: %w", r.Request, bundle, ErrConflict)
			}
			if _, err := t.exec("UPDATE evidence_requests SET bundle_id = ? WHERE id = ?", r.ID, r.Request); err != nil {
				return err
			}
		}
		if _, err := t.exec(`INSERT INTO evidence_bundles (id, node_id, rollout_id, step_id, reason, request_id, captured_at, stored_at, sha256, size, body)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.ID, r.Node, r.Rollout, r.Step, r.Reason, r.Request, nanos(r.CapturedAt), nanos(r.StoredAt), r.SHA256, r.Size, z.Bytes()); err != nil {
			return err
		}
		t.audit(AuditEntry{At: r.StoredAt, Actor: "agent:" + r.Node, Action: "node.evidence", Object: "node/" + r.Node, Rollout: r.Rollout,
			Detail: detail(map[string]any{"bundle": r.ID, "sha256": r.SHA256, "size": r.Size, "reason": r.Reason, "step": r.Step, "request": r.Request})})
		if keep.MaxAge > 0 {
			if _, err := t.exec("DELETE FROM evidence_bundles WHERE stored_at < ?", nanos(r.StoredAt.Add(-keep.MaxAge))); err != nil {
				return fmt.Errorf("prune: %w", err)
			}
			if _, err := t.exec("DELETE FROM evidence_requests WHERE deadline < ?", nanos(r.StoredAt.Add(-keep.MaxAge))); err != nil {
				return fmt.Errorf("prune requests: %w", err)
			}
		}
		if keep.PerNode > 0 {
			if _, err := t.exec(`DELETE FROM evidence_bundles WHERE node_id = ? AND id NOT IN
(SELECT id FROM evidence_bundles WHERE node_id = ? ORDER BY stored_at DESC, id DESC LIMIT ?)`, r.Node, r.Node, keep.PerNode); err != nil {
				return fmt.Errorf("prune node: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("store evidence of node %s: %w", r.Node, err)
	}
	return r, nil
}

// ListEvidence lists node's bundles (of rollout, when not ""), newest
// first, without their bodies.
func (s *sqlStore) ListEvidence(ctx context.Context, node, rollout string) ([]EvidenceRecord, error) {
	var out []EvidenceRecord
	err := s.read(ctx, func(t *tx) error {
		q := `SELECT id, node_id, rollout_id, step_id, reason, request_id, captured_at, stored_at, sha256, size FROM evidence_bundles WHERE node_id = ?`
		args := []any{node}
		if rollout != "" {
			q += " AND rollout_id = ?"
			args = append(args, rollout)
		}
		rows, err := t.query(q+" ORDER BY stored_at DESC, id DESC", args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var r EvidenceRecord
			var captured, stored int64
			if err := rows.Scan(&r.ID, &r.Node, &r.Rollout, &r.Step, &r.Reason, &r.Request, &captured, &stored, &r.SHA256, &r.Size); err != nil {
				rows.Close()
				return err
			}
			r.CapturedAt, r.StoredAt = fromNanos(captured), fromNanos(stored)
			out = append(out, r)
		}
		return closeRows(rows)
	})
	if err != nil {
		return nil, fmt.Errorf("evidence of node %s: %w", node, err)
	}
	return out, nil
}

// GetEvidence returns a bundle with its body; ErrNotFound.
func (s *sqlStore) GetEvidence(ctx context.Context, id string) (EvidenceRecord, error) {
	var r EvidenceRecord
	var z []byte
	err := s.read(ctx, func(t *tx) error {
		var captured, stored int64
		err := t.queryRow(`SELECT id, node_id, rollout_id, step_id, reason, request_id, captured_at, stored_at, sha256, size, body FROM evidence_bundles WHERE id = ?`, id).
			Scan(&r.ID, &r.Node, &r.Rollout, &r.Step, &r.Reason, &r.Request, &captured, &stored, &r.SHA256, &r.Size, &z)
		if isNoRows(err) {
			return ErrNotFound
		}
		r.CapturedAt, r.StoredAt = fromNanos(captured), fromNanos(stored)
		return err
	})
	if err != nil {
		return r, fmt.Errorf("evidence %s: %w", id, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return r, fmt.Errorf("evidence %s: decompress: %w", id, err)
	}
	if r.Body, err = io.ReadAll(io.LimitReader(zr, r.Size+1)); err != nil {
		return r, fmt.Errorf("evidence %s: decompress: %w", id, err)
	}
	if sum := sha256.Sum256(r.Body); hex.EncodeToString(sum[:]) != r.SHA256 {
		return r, fmt.Errorf("evidence %s: body does not match its sha256 %s", id, r.SHA256)
	}
	return r, nil
}

// AskEvidence records an on-demand evidence request, audited.
func (s *sqlStore) AskEvidence(ctx context.Context, a EvidenceAsk) error {
	err := s.write(ctx, func(t *tx) error {
		if _, err := t.exec(`INSERT INTO evidence_requests (id, node_id, actor, asked_at, deadline, payload) VALUES (?, ?, ?, ?, ?, ?)`,
			a.ID, a.Node, a.Actor, nanos(a.AskedAt), nanos(a.Deadline), string(a.Payload)); err != nil {
			return err
		}
		t.audit(AuditEntry{At: a.AskedAt, Actor: a.Actor, Action: "node.evidence-request", Object: "node/" + a.Node,
			Detail: detail(map[string]any{"request": a.ID})})
		return nil
	})
	if err != nil {
		return fmt.Errorf("ask evidence of node %s: %w", a.Node, err)
	}
	return nil
}

// OpenEvidenceRequests returns the payloads of node's unanswered
// requests before their deadline, oldest first.
func (s *sqlStore) OpenEvidenceRequests(ctx context.Context, node string, now time.Time) ([][]byte, error) {
	out, err := s.payloads(ctx, `SELECT payload FROM evidence_requests WHERE node_id = ? AND bundle_id = '' AND deadline > ? ORDER BY asked_at, id`, node, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("open evidence requests of node %s: %w", node, err)
	}
	return out, nil
}

// GetEvidenceRequest returns a request (Bundle set once answered);
// ErrNotFound.
func (s *sqlStore) GetEvidenceRequest(ctx context.Context, id string) (EvidenceAsk, error) {
	a := EvidenceAsk{ID: id}
	err := s.read(ctx, func(t *tx) error {
		var asked, deadline int64
		var payload string
		err := t.queryRow(`SELECT node_id, actor, asked_at, deadline, payload, bundle_id FROM evidence_requests WHERE id = ?`, id).
			Scan(&a.Node, &a.Actor, &asked, &deadline, &payload, &a.Bundle)
		if isNoRows(err) {
			return ErrNotFound
		}
		a.AskedAt, a.Deadline, a.Payload = fromNanos(asked), fromNanos(deadline), []byte(payload)
		return err
	})
	if err != nil {
		return a, fmt.Errorf("evidence request %s: %w", id, err)
	}
	return a, nil
}
