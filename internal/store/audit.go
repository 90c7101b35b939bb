package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
)

// AuditHash is the one definition of the chain: SHA-256 of prev followed
// by the canonical encoding of the entry (its Seq, At, Actor, Action,
// Object, Rollout and Detail; Prev and Hash excluded). Anything that
// verifies or checkpoints the log (Merkle tree heads included) must hash
// through it.
func AuditHash(prev []byte, e AuditEntry) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(canonicalAudit(e))
	return h.Sum(nil)
}

// canonicalAudit is the entry as JSON with a fixed key order, At in Unix
// nanoseconds and Detail compacted.
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

// appendAudit appends the transaction's pending entries to the chain.
// The head row's lock (FOR UPDATE on PostgreSQL; the write lock on
// SQLite) allocates sequence numbers without gaps even with several
// servers writing.
func (t *tx) appendAudit() error {
	var seq int64
	var head []byte
	if err := t.queryRow("SELECT seq, hash FROM audit_head WHERE id = 1"+t.d.forUpdate).Scan(&seq, &head); err != nil {
		return fmt.Errorf("lock audit head: %w", err)
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
		head = e.Hash
	}
	if _, err := t.exec("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", seq, head); err != nil {
		return fmt.Errorf("advance audit head: %w", err)
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
	if limit <= 0 {
		limit = 500
	}
	q := "SELECT " + auditColumns + " FROM audit WHERE seq > ?"
	args := []any{after}
	if rollout != "" {
		q += " AND rollout = ?"
		args = append(args, rollout)
	}
	q += " ORDER BY seq LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.d.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}

// VerifyAudit walks the chain from seq 1 to the head recorded in
// audit_head and reports the first entry that is missing (deleted),
// linked to the wrong predecessor (reordered or inserted) or whose hash
// does not match its content (edited). Entries appended while it runs
// are not checked.
func (s *sqlStore) VerifyAudit(ctx context.Context) (AuditVerification, error) {
	var headSeq int64
	var headHash []byte
	if err := s.db.QueryRowContext(ctx, "SELECT seq, hash FROM audit_head WHERE id = 1").Scan(&headSeq, &headHash); err != nil {
		return AuditVerification{}, fmt.Errorf("verify audit: read head: %w", err)
	}
	const page = 1000
	var prev []byte
	expect := int64(1)
	bad := func(seq int64, format string, args ...any) (AuditVerification, error) {
		return AuditVerification{Entries: expect - 1, Head: prev, FirstBad: seq, Problem: fmt.Sprintf(format, args...)}, nil
	}
	for expect <= headSeq {
		rows, err := s.db.QueryContext(ctx, s.d.rebind("SELECT "+auditColumns+" FROM audit WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?"), expect, headSeq, page)
		if err != nil {
			return AuditVerification{}, fmt.Errorf("verify audit: %w", err)
		}
		var entries []AuditEntry
		for rows.Next() {
			e, err := scanAudit(rows)
			if err != nil {
				rows.Close()
				return AuditVerification{}, fmt.Errorf("verify audit: %w", err)
			}
			entries = append(entries, e)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return AuditVerification{}, fmt.Errorf("verify audit: %w", err)
		}
		if len(entries) == 0 {
			return bad(expect, "entries %d to %d are missing: the log was truncated (deleted)", expect, headSeq)
		}
		for _, e := range entries {
			if e.Seq != expect {
				return bad(expect, "entry %d is missing: deleted (next entry is %d)", expect, e.Seq)
			}
			if !bytes.Equal(e.Prev, prev) {
				return bad(e.Seq, "entry %d does not link to entry %d (prev hash mismatch): entries were reordered or inserted", e.Seq, e.Seq-1)
			}
			if want := AuditHash(prev, e); !bytes.Equal(want, e.Hash) {
				return bad(e.Seq, "entry %d does not match its hash: its content was edited", e.Seq)
			}
			prev = e.Hash
			expect++
		}
	}
	if headSeq > 0 && !bytes.Equal(prev, headHash) {
		return bad(headSeq, "entry %d does not match the recorded head of the log: edited or replaced", headSeq)
	}
	return AuditVerification{OK: true, Entries: headSeq, Head: prev}, nil
}
