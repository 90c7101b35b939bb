package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Credentials is the part of the store that keeps who may talk to the
// server: enrolment tokens, API tokens, the current certificate of each
// enrolled node, and break-glass overrides of rollouts. Tokens are given
// and kept as their hash (hex SHA-256); the store never sees a token.
// Both backends implement it (see AsCredentials).
type Credentials interface {
	// CreateEnrollToken stores a single-use enrolment token expiring at
	// t.ExpiresAt, audited as token.create (the hash is not audited).
	CreateEnrollToken(ctx context.Context, t EnrollToken) error
	// EnrollNode consumes the enrolment token and records cert as the
	// node's current certificate, in one transaction, audited as
	// node.enroll. Nothing is written when it fails: ErrTokenInvalid
	// (unknown, used or expired token, a token bound to another node, or
	// the node's labels outside the token's), ErrConflict (the node exists: an operator must remove it
	// first). It returns the token's labels.
	EnrollNode(ctx context.Context, tokenHash string, cert NodeCert, now time.Time) (map[string]string, error)
	// RenewNodeCert replaces the node's current certificate if its serial
	// is still oldSerial (ErrConflict otherwise; ErrNotFound when the node
	// was removed), audited as node.renew.
	RenewNodeCert(ctx context.Context, oldSerial string, cert NodeCert) error
	// NodeCert returns the node's current certificate; ErrNotFound.
	NodeCert(ctx context.Context, node string) (NodeCert, error)

	// CreateAPIToken stores an API token of a user with a role, audited
	// as token.create.
	CreateAPIToken(ctx context.Context, t APIToken) error
	// APIToken returns the API token with this hash; ErrNotFound when
	// there is none or it was revoked (a revoked token authenticates no
	// one). Expiry is the caller's to check.
	APIToken(ctx context.Context, hash string) (APIToken, error)
	// ListAPITokens returns every API token, revoked and expired ones
	// included, oldest first. Hash is left empty: a token is named by its
	// ID (APITokenID), never by its hash.
	ListAPITokens(ctx context.Context) ([]APIToken, error)
	// RevokeAPIToken revokes the API token whose hash starts with id (its
	// ID, or a longer prefix of its hash: at least APITokenIDLen lowercase
	// hex digits), audited as token.revoke by actor in the same
	// transaction. ErrNotFound when no token has this ID (or id is not
	// one); ErrConflict when it names several tokens (none is revoked:
	// a longer prefix of the hash tells them apart). Revoking a revoked
	// token is a no-op: nil, nothing written or audited, the first
	// revocation's time and actor kept.
	RevokeAPIToken(ctx context.Context, id, actor string, now time.Time) error

	// CreateSession stores a dashboard session, audited as
	// session.open; sessions expired before now are deleted.
	CreateSession(ctx context.Context, sess Session) error
	// Session returns the session with this hash; ErrNotFound when there
	// is none or it was revoked. Expiry is the caller's to check.
	Session(ctx context.Context, hash string) (Session, error)
	// RevokeSession ends the session with this hash (sign-out), audited
	// as session.close; a revoked or unknown session: nil, nothing
	// written.
	RevokeSession(ctx context.Context, hash string, now time.Time) error

	// BreakGlass records that the rollout may start nodes during freezes
	// (actor, reason), audited as rollout.break-glass; ErrNotFound.
	BreakGlass(ctx context.Context, rollout, actor, reason string, now time.Time) error
	// BreakGlassOf returns the rollout's override; ErrNotFound when none.
	BreakGlassOf(ctx context.Context, rollout string) (BreakGlass, error)
}

// ErrTokenInvalid: an enrolment token is unknown, already used, expired
// or does not allow what was asked. Nothing was written.
var ErrTokenInvalid = errors.New("invalid enrolment token")

// EnrollToken is a stored enrolment token.
type EnrollToken struct {
	Hash      string
	Labels    map[string]string // the node is limited to these labels
	NodeID    string            // only this node may enrol with it; "" any
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
	UsedBy    string
}

// NodeCert is a node's current client certificate.
type NodeCert struct {
	NodeID   string
	Serial   string            // hex
	SPKI     string            // "sha256:HEX" of the certificate's public key
	Labels   map[string]string // from the enrolment token; the node's labels are limited to these
	NotAfter time.Time
	IssuedAt time.Time
}

// APIToken is a stored API token.
type APIToken struct {
	Hash      string // empty in ListAPITokens
	ID        string // APITokenID(Hash): the name shown and revoked by
	Name      string
	Role      string
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: does not expire
	RevokedAt time.Time // zero: not revoked
	RevokedBy string
}

// APITokenIDLen is the length of an API token's ID: the first hex digits
// of its hash. 48 bits name a token among an installation's few without
// helping anyone find it (the token is 256 random bits).
const APITokenIDLen = 12

// APITokenID is the public ID of the API token with this hash.
func APITokenID(hash string) string {
	if len(hash) <= APITokenIDLen {
		return hash
	}
	return hash[:APITokenIDLen]
}

// ValidAPITokenID reports whether id may name an API token: its ID or a
// longer prefix of its hash, APITokenIDLen to 64 lowercase hex digits
// (hashes are lowercase; SQLite's LIKE is not case-sensitive, and no
// LIKE wildcard may slip through).
func ValidAPITokenID(id string) bool {
	if len(id) < APITokenIDLen || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// BreakGlass is an admin's override of a rollout's freezes.
type BreakGlass struct {
	Rollout string
	Actor   string
	Reason  string
	At      time.Time
}

// AsCredentials returns st's credentials store, or false when st does
// not keep credentials.
func AsCredentials(st Store) (Credentials, bool) {
	c, ok := st.(Credentials)
	return c, ok
}

var _ Credentials = (*sqlStore)(nil)

func (s *sqlStore) CreateEnrollToken(ctx context.Context, et EnrollToken) error {
	labels, err := encodeLabels(et.Labels)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(t *tx) error {
		_, err := t.exec(`INSERT INTO enroll_tokens (hash, labels, created_by, created_at, expires_at, node_id) VALUES (?, ?, ?, ?, ?, ?)`,
			et.Hash, labels, et.CreatedBy, nanos(et.CreatedAt), nanos(et.ExpiresAt), et.NodeID)
		if err := t.conflictOnUnique(err, "insert enrolment token"); err != nil {
			return err
		}
		t.audit(AuditEntry{At: et.CreatedAt, Actor: et.CreatedBy, Action: "token.create", Object: "token/enroll",
			Detail: detail(map[string]any{"kind": "enroll", "labels": et.Labels, "expiresAt": et.ExpiresAt})})
		return nil
	})
	if err != nil {
		return fmt.Errorf("create enrolment token: %w", err)
	}
	return nil
}

func (s *sqlStore) EnrollNode(ctx context.Context, tokenHash string, c NodeCert, now time.Time) (map[string]string, error) {
	var labels map[string]string
	err := s.write(ctx, func(t *tx) error {
		var lj, bound string
		var expires, used int64
		err := t.queryRow(`SELECT labels, expires_at, used_at, node_id FROM enroll_tokens WHERE hash = ?`+t.d.forUpdate, tokenHash).Scan(&lj, &expires, &used, &bound)
		switch {
		case isNoRows(err):
			return fmt.Errorf("unknown token: %w", ErrTokenInvalid)
		case err != nil:
			return err
		case used != 0:
			return fmt.Errorf("token already used: %w", ErrTokenInvalid)
		case !now.Before(fromNanos(expires)):
			return fmt.Errorf("token expired at %s: %w", fromNanos(expires).Format(time.RFC3339), ErrTokenInvalid)
		case bound != "" && bound != c.NodeID:
			return fmt.Errorf("token is bound to node %s: %w", bound, ErrTokenInvalid)
		}
		if err := json.Unmarshal([]byte(lj), &labels); err != nil {
			return fmt.Errorf("token labels: %w", err)
		}
		var n int
		if err := t.queryRow(`SELECT COUNT(*) FROM node_certs WHERE node_id = ?`, c.NodeID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if err := t.queryRow(`SELECT COUNT(*) FROM nodes WHERE id = ?`, c.NodeID).Scan(&n); err != nil {
				return err
			}
		}
		if n > 0 {
			return fmt.Errorf("node %s is already enrolled; an operator must remove it first (DELETE /v1/nodes/%s): %w", c.NodeID, c.NodeID, ErrConflict)
		}
		if _, err := t.exec(`UPDATE enroll_tokens SET used_at = ?, used_by = ? WHERE hash = ?`, nanos(now), c.NodeID, tokenHash); err != nil {
			return err
		}
		_, err = t.exec(`INSERT INTO node_certs (node_id, serial, spki, labels, not_after, issued_at) VALUES (?, ?, ?, ?, ?, ?)`,
			c.NodeID, c.Serial, c.SPKI, lj, nanos(c.NotAfter), nanos(c.IssuedAt))
		if err := t.conflictOnUnique(err, "record certificate of node %s", c.NodeID); err != nil {
			return err
		}
		t.audit(AuditEntry{At: now, Actor: "agent:" + c.NodeID, Action: "node.enroll", Object: "node/" + c.NodeID,
			Detail: detail(map[string]any{"serial": c.Serial, "spki": c.SPKI, "notAfter": c.NotAfter, "labels": labels})})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("enrol node %s: %w", c.NodeID, err)
	}
	return labels, nil
}

func (s *sqlStore) RenewNodeCert(ctx context.Context, oldSerial string, c NodeCert) error {
	err := s.write(ctx, func(t *tx) error {
		res, err := t.exec(`UPDATE node_certs SET serial = ?, spki = ?, not_after = ?, issued_at = ? WHERE node_id = ? AND serial = ?`,
			c.Serial, c.SPKI, nanos(c.NotAfter), nanos(c.IssuedAt), c.NodeID, oldSerial)
		if err != nil {
			return err
		}
		n, err := rowsAffected(res)
		if err != nil {
			return err
		}
		if n == 0 {
			var cur int
			if err := t.queryRow(`SELECT COUNT(*) FROM node_certs WHERE node_id = ?`, c.NodeID).Scan(&cur); err != nil {
				return err
			}
			if cur == 0 {
				return notFound("node", c.NodeID)
			}
			return fmt.Errorf("certificate %s is not the node's current one: %w", oldSerial, ErrConflict)
		}
		t.audit(AuditEntry{At: c.IssuedAt, Actor: "agent:" + c.NodeID, Action: "node.renew", Object: "node/" + c.NodeID,
			Detail: detail(map[string]any{"serial": c.Serial, "previous": oldSerial, "notAfter": c.NotAfter})})
		return nil
	})
	if err != nil {
		return fmt.Errorf("renew certificate of node %s: %w", c.NodeID, err)
	}
	return nil
}

func (s *sqlStore) NodeCert(ctx context.Context, node string) (NodeCert, error) {
	c := NodeCert{NodeID: node}
	var na, ia int64
	var lj string
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT serial, spki, labels, not_after, issued_at FROM node_certs WHERE node_id = ?`), node).
		Scan(&c.Serial, &c.SPKI, &lj, &na, &ia)
	if isNoRows(err) {
		return c, notFound("node certificate", node)
	}
	if err != nil {
		return c, fmt.Errorf("node certificate %s: %w", node, err)
	}
	c.NotAfter, c.IssuedAt = fromNanos(na), fromNanos(ia)
	if err := json.Unmarshal([]byte(lj), &c.Labels); err != nil {
		return c, fmt.Errorf("node certificate %s: labels: %w", node, err)
	}
	return c, nil
}

func (s *sqlStore) CreateAPIToken(ctx context.Context, at APIToken) error {
	err := s.write(ctx, func(t *tx) error {
		// One identity, one role: a user's active tokens all carry it.
		var other string
		err := t.queryRow(`SELECT role FROM api_tokens WHERE name = ? AND role <> ? AND revoked_at = 0 AND (expires_at = 0 OR expires_at > ?) LIMIT 1`,
			at.Name, at.Role, nanos(at.CreatedAt)).Scan(&other)
		switch {
		case err == nil:
			return fmt.Errorf("user %s already has role %s through an active token; revoke those tokens first to change the role: %w", at.Name, other, ErrConflict)
		case !isNoRows(err):
			return err
		}
		_, err = t.exec(`INSERT INTO api_tokens (hash, name, role, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			at.Hash, at.Name, at.Role, at.CreatedBy, nanos(at.CreatedAt), nanos(at.ExpiresAt))
		if err := t.conflictOnUnique(err, "insert API token"); err != nil {
			return err
		}
		t.audit(AuditEntry{At: at.CreatedAt, Actor: at.CreatedBy, Action: "token.create", Object: "user/" + at.Name,
			Detail: detail(map[string]any{"kind": "api", "id": APITokenID(at.Hash), "user": at.Name, "role": at.Role, "expiresAt": at.ExpiresAt})})
		return nil
	})
	if err != nil {
		return fmt.Errorf("create API token for %s: %w", at.Name, err)
	}
	return nil
}

func (s *sqlStore) APIToken(ctx context.Context, hash string) (APIToken, error) {
	at := APIToken{Hash: hash, ID: APITokenID(hash)}
	var ca, ea, ra int64
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT name, role, created_by, created_at, expires_at, revoked_at FROM api_tokens WHERE hash = ?`), hash).
		Scan(&at.Name, &at.Role, &at.CreatedBy, &ca, &ea, &ra)
	if isNoRows(err) {
		return at, notFound("API token", "")
	}
	if err != nil {
		return at, fmt.Errorf("API token: %w", err)
	}
	if ra != 0 {
		return APIToken{}, notFound("API token", at.ID+" (revoked)")
	}
	at.CreatedAt, at.ExpiresAt = fromNanos(ca), fromNanos(ea)
	return at, nil
}

func (s *sqlStore) ListAPITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT hash, name, role, created_by, created_at, expires_at, revoked_at, revoked_by FROM api_tokens ORDER BY created_at, hash`)
	if err != nil {
		return nil, fmt.Errorf("list API tokens: %w", err)
	}
	defer rows.Close()
	out := []APIToken{}
	for rows.Next() {
		var at APIToken
		var hash string
		var ca, ea, ra int64
		if err := rows.Scan(&hash, &at.Name, &at.Role, &at.CreatedBy, &ca, &ea, &ra, &at.RevokedBy); err != nil {
			return nil, fmt.Errorf("list API tokens: %w", err)
		}
		at.ID = APITokenID(hash)
		at.CreatedAt, at.ExpiresAt, at.RevokedAt = fromNanos(ca), fromNanos(ea), fromNanos(ra)
		out = append(out, at)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list API tokens: %w", err)
	}
	return out, nil
}

func (s *sqlStore) RevokeAPIToken(ctx context.Context, id, actor string, now time.Time) error {
	if !ValidAPITokenID(id) {
		return fmt.Errorf("revoke API token %q: want %d to 64 lowercase hex digits: %w", id, APITokenIDLen, ErrNotFound)
	}
	err := s.write(ctx, func(t *tx) error {
		// Lock every match: a concurrent revocation waits, then sees
		// revoked_at set and does nothing.
		rows, err := t.query(`SELECT hash, name, role, revoked_at FROM api_tokens WHERE hash LIKE ?`+t.d.forUpdate, id+"%")
		if err != nil {
			return err
		}
		type match struct {
			hash, name, role string
			revoked          int64
		}
		var ms []match
		for rows.Next() {
			var m match
			if err := rows.Scan(&m.hash, &m.name, &m.role, &m.revoked); err != nil {
				rows.Close()
				return err
			}
			ms = append(ms, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		switch {
		case len(ms) == 0:
			return notFound("API token", id)
		case len(ms) > 1:
			return fmt.Errorf("ID %s names %d tokens; give more of the hash: %w", id, len(ms), ErrConflict)
		case ms[0].revoked != 0:
			return nil
		}
		m := ms[0]
		if _, err := t.exec(`UPDATE api_tokens SET revoked_at = ?, revoked_by = ? WHERE hash = ?`, nanos(now), actor, m.hash); err != nil {
			return err
		}
		t.audit(AuditEntry{At: now, Actor: actor, Action: "token.revoke", Object: "user/" + m.name,
			Detail: detail(map[string]any{"kind": "api", "id": APITokenID(m.hash), "user": m.name, "role": m.role})})
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke API token %s: %w", id, err)
	}
	return nil
}

func (s *sqlStore) BreakGlass(ctx context.Context, rollout, actor, reason string, now time.Time) error {
	err := s.write(ctx, func(t *tx) error {
		if _, err := t.getRollout(rollout, true); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM rollout_break_glass WHERE rollout = ?`, rollout); err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO rollout_break_glass (rollout, actor, reason, at) VALUES (?, ?, ?, ?)`,
			rollout, actor, reason, nanos(now)); err != nil {
			return err
		}
		// Bump the version so that a scheduler decision computed before
		// the override is refused and recomputed with it.
		if _, err := t.exec(`UPDATE rollouts SET version = version + 1 WHERE id = ?`, rollout); err != nil {
			return err
		}
		t.audit(AuditEntry{At: now, Actor: actor, Action: "rollout.break-glass", Object: "rollout/" + rollout, Rollout: rollout,
			Detail: detail(map[string]any{"reason": reason, "override": "freezes"})})
		return nil
	})
	if err != nil {
		return fmt.Errorf("break-glass rollout %s: %w", rollout, err)
	}
	return nil
}

func (s *sqlStore) BreakGlassOf(ctx context.Context, rollout string) (BreakGlass, error) {
	b := BreakGlass{Rollout: rollout}
	var at int64
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT actor, reason, at FROM rollout_break_glass WHERE rollout = ?`), rollout).
		Scan(&b.Actor, &b.Reason, &at)
	if isNoRows(err) {
		return b, notFound("break-glass of rollout", rollout)
	}
	if err != nil {
		return b, fmt.Errorf("break-glass of rollout %s: %w", rollout, err)
	}
	b.At = fromNanos(at)
	return b, nil
}
