package store

import (
	"context"
	"fmt"
	"time"
)

// Session is a stored dashboard session. Its token is given and kept as
// its hash (hex SHA-256).
type Session struct {
	Hash string
	Name string
	Role string
	// Source is the credential the session was opened with: "api:HASH"
	// (an API token's hash) or "config:NAME" (a configured user); the
	// session authenticates only while that credential does.
	Source    string
	CreatedAt time.Time
	ExpiresAt time.Time
}

func (s *sqlStore) CreateSession(ctx context.Context, sess Session) error {
	err := s.write(ctx, func(t *tx) error {
		if _, err := t.exec(`DELETE FROM ui_sessions WHERE expires_at < ?`, nanos(sess.CreatedAt)); err != nil {
			return err
		}
		_, err := t.exec(`INSERT INTO ui_sessions (hash, name, role, source, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			sess.Hash, sess.Name, sess.Role, sess.Source, nanos(sess.CreatedAt), nanos(sess.ExpiresAt))
		if err := t.conflictOnUnique(err, "insert session"); err != nil {
			return err
		}
		t.audit(AuditEntry{At: sess.CreatedAt, Actor: sess.Name, Action: "session.open", Object: "user/" + sess.Name,
			Detail: detail(map[string]any{"role": sess.Role, "expiresAt": sess.ExpiresAt})})
		return nil
	})
	if err != nil {
		return fmt.Errorf("create session for %s: %w", sess.Name, err)
	}
	return nil
}

func (s *sqlStore) Session(ctx context.Context, hash string) (Session, error) {
	sess := Session{Hash: hash}
	var ca, ea, ra int64
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT name, role, source, created_at, expires_at, revoked_at FROM ui_sessions WHERE hash = ?`), hash).
		Scan(&sess.Name, &sess.Role, &sess.Source, &ca, &ea, &ra)
	if isNoRows(err) || (err == nil && ra != 0) {
		return Session{}, notFound("session", "")
	}
	if err != nil {
		return Session{}, fmt.Errorf("session: %w", err)
	}
	sess.CreatedAt, sess.ExpiresAt = fromNanos(ca), fromNanos(ea)
	return sess, nil
}

func (s *sqlStore) RevokeSession(ctx context.Context, hash string, now time.Time) error {
	err := s.write(ctx, func(t *tx) error {
		var name string
		err := t.queryRow(`SELECT name FROM ui_sessions WHERE hash = ? AND revoked_at = 0`+t.d.forUpdate, hash).Scan(&name)
		if isNoRows(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE ui_sessions SET revoked_at = ? WHERE hash = ?`, nanos(now), hash); err != nil {
			return err
		}
		t.audit(AuditEntry{At: now, Actor: name, Action: "session.close", Object: "user/" + name})
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}
