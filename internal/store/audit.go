package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"
)

// AuditRecord is the one canonical encoding of an entry: JSON with a
// fixed key order (its Seq, At in Unix nanoseconds, Actor, Action,
// Object, Rollout and compacted Detail; Prev and Hash excluded).
// Everything that verifies or checkpoints the log hashes it: the chain
// (AuditHash) and the Merkle tree, whose leaf for entry Seq is
// tlog.RecordHash(AuditRecord(e)) at index Seq-1.
func AuditRecord(e AuditEntry) []byte { return canonicalAudit(e) }

// AuditHash is the chain's link: SHA-256 of prev followed by
// AuditRecord(e).
func AuditHash(prev []byte, e AuditEntry) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(canonicalAudit(e))
	return h.Sum(nil)
}

// canonicalAudit is AuditRecord.
func canonicalAudit(e AuditEntry) []byte {
	detail := e.Detail
	if len(detail) == 0 {
		detail = json.RawMessage("null")
	}
	b, err := json.Marshal(struct {
		Seq     int64           `json:"seq"`
		At      int64           `json:"at"`
		Actor   string          `json:"actor"`
		Action  string          `json:"action"`
		Object  string          `json:"object"`
		Rollout string          `json:"rollout"`
		Detail  json.RawMessage `json:"detail"`
	}{e.Seq, nanos(e.At), e.Actor, e.Action, e.Object, e.Rollout, detail})
	if err != nil {
		// Detail was not valid JSON (only possible for a row edited by
		// hand): hash its raw bytes so that the mismatch is reported, not
		// hidden.
		b = fmt.Appendf(nil, `{"seq":%d,"at":%d,"actor":%q,"action":%q,"object":%q,"rollout":%q,"detail":%q}`,
			e.Seq, nanos(e.At), e.Actor, e.Action, e.Object, e.Rollout, string(detail))
	}
	return b
}

// compactDetail validates and compacts a detail; empty means null.
func compactDetail(d json.RawMessage) (json.RawMessage, error) {
	if len(d) == 0 {
		return json.RawMessage("null"), nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, d); err != nil {
		return nil, fmt.Errorf("audit detail is not valid JSON: %w", err)
	}
	return b.Bytes(), nil
}

// detail encodes v as an audit detail.
func detail(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

// appendAudit appends the transaction's pending entries to the chain
// and to the Merkle tree and, when the store holds an audit key, stores a
// checkpoint of the new tree signed with it: the entries and the
// checkpoint covering them commit together, so every entry appended
// through the store is covered by a signed checkpoint once visible. The
// head row's lock (FOR UPDATE on PostgreSQL; the write lock on SQLite)
// allocates sequence numbers without gaps even with several servers
// writing, and serializes the tree.
func (t *tx) appendAudit(sig *auditSigning, clock func() time.Time) error {
	var seq, treeSize int64
	var head []byte
	if err := t.queryRow("SELECT seq, hash, tree_size FROM audit_head WHERE id = 1"+t.d.forUpdate).Scan(&seq, &head, &treeSize); err != nil {
		return fmt.Errorf("lock audit head: %w", err)
	}
	key := sig.key.Load()
	if key != nil {
		if err := t.checkCovered(sig, seq, key, clock); err != nil {
			return err
		}
	}
	if treeSize > seq {
		return fmt.Errorf("%w: the Merkle tree has %d leaves but the log only %d entries", ErrAuditTampered, treeSize, seq)
	}
	tree := newTreeWriter(t, treeSize)
	if treeSize < seq {
		// Entries from before the tree existed (a database migrated from
		// schema version 1) join it once.
		if err := tree.catchUp(seq); err != nil {
			return err
		}
	}
	for _, e := range t.pending {
		d, err := compactDetail(e.Detail)
		if err != nil {
			return err
		}
		seq++
		e.Seq, e.Detail, e.Prev = seq, d, head
		e.At = fromNanos(nanos(e.At))
		e.Hash = AuditHash(e.Prev, e)
		if _, err := t.exec(`INSERT INTO audit (seq, at, actor, action, object, rollout, detail, prev, hash)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.Seq, nanos(e.At), e.Actor, e.Action, e.Object, e.Rollout, string(e.Detail), nonNil(e.Prev), e.Hash); err != nil {
			return fmt.Errorf("append audit %s: %w", e.Action, err)
		}
		if err := t.outbox(e); err != nil {
			return err
		}
		if err := tree.add(AuditRecord(e)); err != nil {
			return err
		}
		head = e.Hash
	}
	if err := tree.flush(); err != nil {
		return err
	}
	if _, err := t.exec("UPDATE audit_head SET seq = ?, hash = ?, tree_size = ? WHERE id = 1", seq, head, seq); err != nil {
		return fmt.Errorf("advance audit head: %w", err)
	}
	if key != nil {
		if err := t.signCheckpoint(sig, tree, key, clock, treeSize); err != nil {
			return err
		}
	}
	t.pending = nil
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

const auditColumns = "seq, at, actor, action, object, rollout, detail, prev, hash"

type scanner interface{ Scan(dest ...any) error }

func scanAudit(r scanner) (AuditEntry, error) {
	var e AuditEntry
	var at int64
	var d string
	if err := r.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Object, &e.Rollout, &d, &e.Prev, &e.Hash); err != nil {
		return e, err
	}
	e.At, e.Detail = fromNanos(at), json.RawMessage(d)
	if len(e.Prev) == 0 {
		e.Prev = nil
	}
	return e, nil
}

func (s *sqlStore) ListAudit(ctx context.Context, after int64, limit int, rollout string) ([]AuditEntry, error) {
	es, _, err := s.AuditPage(ctx, AuditQuery{After: after, Limit: limit, Rollout: rollout})
	return es, err
}

func (s *sqlStore) AuditPage(ctx context.Context, aq AuditQuery) ([]AuditEntry, bool, error) {
	limit := aq.Limit
	if limit <= 0 {
		limit = 500
	}
	q := "SELECT " + auditColumns + " FROM audit WHERE seq > ?"
	args := []any{aq.After}
	if aq.Rollout != "" {
		q += " AND rollout = ?"
		args = append(args, aq.Rollout)
	}
	if aq.Before > 0 {
		q += " AND seq < ?"
		args = append(args, aq.Before)
	}
	if aq.Newest {
		q += " ORDER BY seq DESC LIMIT ?"
	} else {
		q += " ORDER BY seq LIMIT ?"
	}
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.d.rebind(q), args...)
	if err != nil {
		return nil, false, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	size := 0
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, false, fmt.Errorf("list audit: %w", err)
		}
		size += len(e.Detail)
		if aq.MaxBytes > 0 && size > aq.MaxBytes && len(out) > 0 {
			return out, true, nil
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("list audit: %w", err)
	}
	return out, len(out) == limit, nil
}

func (s *sqlStore) AuditHead(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.db.QueryRowContext(ctx, "SELECT seq FROM audit_head WHERE id = 1").Scan(&seq); err != nil {
		return 0, fmt.Errorf("audit head: %w", err)
	}
	return seq, nil
}
