package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
)

const nodeColumns = "id, facts, labels, version, agent_version, protocol, registered_at, last_seen, lease_until"

func scanNode(r scanner) (NodeRecord, error) {
	var n NodeRecord
	var facts, labels string
	var reg, seen, lease int64
	if err := r.Scan(&n.ID, &facts, &labels, &n.Version, &n.AgentVersion, &n.Protocol, &reg, &seen, &lease); err != nil {
		return n, err
	}
	if err := json.Unmarshal([]byte(facts), &n.Facts); err != nil {
		return n, fmt.Errorf("node %s: decode facts: %w", n.ID, err)
	}
	if err := json.Unmarshal([]byte(labels), &n.Labels); err != nil {
		return n, fmt.Errorf("node %s: decode labels: %w", n.ID, err)
	}
	n.RegisteredAt, n.LastSeen, n.LeaseUntil = fromNanos(reg), fromNanos(seen), fromNanos(lease)
	return n, nil
}

func encodeLabels(l map[string]string) (string, error) {
	if l == nil {
		l = map[string]string{}
	}
	b, err := json.Marshal(l) // map keys are sorted: equal labels encode equally
	return string(b), err
}

func (t *tx) getNode(id string, lock bool) (NodeRecord, error) {
	q := "SELECT " + nodeColumns + " FROM nodes WHERE id = ?"
	if lock {
		q += t.d.forUpdate
	}
	n, err := scanNode(t.queryRow(q, id))
	if isNoRows(err) {
		return n, notFound("node", id)
	}
	if err != nil {
		return n, fmt.Errorf("get node %s: %w", id, err)
	}
	return n, nil
}

// UpsertNode registers a node (version 1, labels as given) or refreshes
// it: facts, agent version, protocol, last seen and lease are replaced;
// stored labels and registration time are kept. Version is bumped, and
// the change audited, only when the facts change; the audit records the
// new facts' digest and a bounded diff (factsAudit), not the facts.
func (s *sqlStore) UpsertNode(ctx context.Context, n NodeRecord) (NodeRecord, error) {
	if n.ID == "" {
		return NodeRecord{}, fmt.Errorf("upsert node: empty ID")
	}
	factsJSON, err := json.Marshal(n.Facts)
	if err != nil {
		return NodeRecord{}, fmt.Errorf("upsert node %s: encode facts: %w", n.ID, err)
	}
	var out NodeRecord
	err = s.write(ctx, func(t *tx) error {
		old, err := t.getNode(n.ID, true)
		switch {
		case err == nil:
			oldFacts, _ := json.Marshal(old.Facts)
			version := old.Version
			if !bytes.Equal(oldFacts, factsJSON) {
				version++
				d := factsAudit(old.Facts, n.Facts, factsJSON)
				d["version"] = version
				d["previous_sha256"] = digest(oldFacts)
				t.audit(AuditEntry{At: n.LastSeen, Actor: "agent:" + n.ID, Action: "node.facts", Object: "node/" + n.ID,
					Detail: detail(d)})
			}
			agentVersion := n.AgentVersion
			if agentVersion == "" { // a poll's facts refresh does not say; keep the registration's
				agentVersion = old.AgentVersion
			}
			if _, err := t.exec(`UPDATE nodes SET facts = ?, version = ?, agent_version = ?, protocol = ?, last_seen = ?, lease_until = ? WHERE id = ?`,
				string(factsJSON), version, agentVersion, n.Protocol, nanos(n.LastSeen), nanos(n.LeaseUntil), n.ID); err != nil {
				return fmt.Errorf("update node %s: %w", n.ID, err)
			}
		case isNotFound(err):
			labels, err := encodeLabels(n.Labels)
			if err != nil {
				return fmt.Errorf("encode labels: %w", err)
			}
			reg := n.RegisteredAt
			if reg.IsZero() {
				reg = n.LastSeen
			}
			if reg.IsZero() {
				reg = s.clock()
			}
			if _, err := t.exec(`INSERT INTO nodes (`+nodeColumns+`) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)`,
				n.ID, string(factsJSON), labels, n.AgentVersion, n.Protocol, nanos(reg), nanos(n.LastSeen), nanos(n.LeaseUntil)); err != nil {
				if t.d.isUnique(err) {
					return fmt.Errorf("register node %s: registered concurrently: %w", n.ID, errRetry)
				}
				return fmt.Errorf("register node %s: %w", n.ID, err)
			}
			d := factsAudit(fleet.Facts{}, n.Facts, factsJSON)
			d["labels"], d["agent_version"] = n.Labels, n.AgentVersion
			t.audit(AuditEntry{At: reg, Actor: "agent:" + n.ID, Action: "node.register", Object: "node/" + n.ID,
				Detail: detail(d)})
		default:
			return err
		}
		out, err = t.getNode(n.ID, false)
		return err
	})
	if err != nil {
		return NodeRecord{}, fmt.Errorf("upsert node %s: %w", n.ID, err)
	}
	return out, nil
}

// An audit entry of a change of facts holds no more than this many
// changes, each path and value cut to factsAuditValue bytes: the facts
// themselves are in the nodes table, the log records their digest and a
// bounded diff (see factsAudit).
const (
	factsAuditChanges = 50
	factsAuditValue   = 128
)

// factsAudit is the detail of a facts change from old to new (encoded as
// newJSON): the new facts' digest and size and a bounded diff. The whole
// facts object never goes into the log, so that the audit of one
// change is small whatever the facts' size.
func factsAudit(old, new fleet.Facts, newJSON []byte) map[string]any {
	diff := fleet.DiffFacts(old, new, factsAuditChanges, factsAuditValue)
	d := map[string]any{"sha256": digest(newJSON), "bytes": len(newJSON), "changes": diff.Changes}
	if diff.More > 0 {
		d["more"] = diff.More
	}
	return d
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (s *sqlStore) GetNode(ctx context.Context, id string) (NodeRecord, error) {
	n, err := scanNode(s.db.QueryRowContext(ctx, s.d.rebind("SELECT "+nodeColumns+" FROM nodes WHERE id = ?"), id))
	if isNoRows(err) {
		return NodeRecord{}, notFound("node", id)
	}
	if err != nil {
		return NodeRecord{}, fmt.Errorf("get node %s: %w", id, err)
	}
	return n, nil
}

func (s *sqlStore) ListNodes(ctx context.Context, f NodeFilter) ([]NodeRecord, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind("SELECT "+nodeColumns+" FROM nodes WHERE id > ? ORDER BY id LIMIT ?"), f.After, limit)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	var out []NodeRecord
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

func (s *sqlStore) SetNodeLabels(ctx context.Context, id string, labels map[string]string, ifVersion int64, actor string) (NodeRecord, error) {
	enc, err := encodeLabels(labels)
	if err != nil {
		return NodeRecord{}, fmt.Errorf("set labels of node %s: %w", id, err)
	}
	var out NodeRecord
	err = s.write(ctx, func(t *tx) error {
		n, err := t.getNode(id, true)
		if err != nil {
			return err
		}
		if ifVersion != 0 && n.Version != ifVersion {
			return fmt.Errorf("node is at version %d, not %d: %w", n.Version, ifVersion, ErrConflict)
		}
		if old, _ := encodeLabels(n.Labels); old == enc {
			out = n
			return nil
		}
		if _, err := t.exec("UPDATE nodes SET labels = ?, version = version + 1 WHERE id = ?", enc, id); err != nil {
			return fmt.Errorf("update labels: %w", err)
		}
		t.audit(AuditEntry{At: s.clock(), Actor: actor, Action: "node.labels", Object: "node/" + id,
			Detail: detail(map[string]any{"from": nonNilMap(n.Labels), "to": nonNilMap(labels)})})
		out, err = t.getNode(id, false)
		return err
	})
	if err != nil {
		return NodeRecord{}, fmt.Errorf("set labels of node %s: %w", id, err)
	}
	return out, nil
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

// TouchNodes records many heartbeats in one transaction; not audited.
func (s *sqlStore) TouchNodes(ctx context.Context, beats []Heartbeat) ([]string, error) {
	var missing []string
	err := s.write(ctx, func(t *tx) error {
		missing = missing[:0]
		for _, b := range beats {
			res, err := t.exec("UPDATE nodes SET last_seen = ?, lease_until = ? WHERE id = ?", nanos(b.Seen), nanos(b.LeaseUntil), b.NodeID)
			if err != nil {
				return fmt.Errorf("touch node %s: %w", b.NodeID, err)
			}
			n, err := rowsAffected(res)
			if err != nil {
				return fmt.Errorf("touch node %s: %w", b.NodeID, err)
			}
			if n == 0 {
				missing = append(missing, b.NodeID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("touch %d nodes: %w", len(beats), err)
	}
	return missing, nil
}

// TouchNode is a heartbeat: it is not audited.
func (s *sqlStore) TouchNode(ctx context.Context, id string, seen, leaseUntil time.Time) error {
	q := s.d.rebind("UPDATE nodes SET last_seen = ?, lease_until = ? WHERE id = ?")
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return fmt.Errorf("touch node %s: %w", id, err)
	}
	defer unlock()
	var res sql.Result
	if st := s.stmts.get(q); st != nil {
		res, err = st.ExecContext(ctx, nanos(seen), nanos(leaseUntil), id)
	} else {
		res, err = s.db.ExecContext(ctx, q, nanos(seen), nanos(leaseUntil), id)
	}
	if err != nil {
		return fmt.Errorf("touch node %s: %w", id, err)
	}
	n, err := rowsAffected(res)
	if err != nil {
		return fmt.Errorf("touch node %s: %w", id, err)
	}
	if n == 0 {
		return notFound("node", id)
	}
	return nil
}

func (s *sqlStore) DeleteNode(ctx context.Context, id, actor string) error {
	err := s.write(ctx, func(t *tx) error {
		res, err := t.exec("DELETE FROM nodes WHERE id = ?", id)
		if err != nil {
			return err
		}
		n, err := rowsAffected(res)
		if err != nil {
			return err
		}
		// A removed node's certificate is refused from now on; it must
		// enrol again with a new token (see credentials.go).
		res, err = t.exec("DELETE FROM node_certs WHERE node_id = ?", id)
		if err != nil {
			return err
		}
		certs, err := rowsAffected(res)
		if err != nil {
			return err
		}
		if n == 0 && certs == 0 {
			return notFound("node", id)
		}
		t.audit(AuditEntry{At: s.clock(), Actor: actor, Action: "node.delete", Object: "node/" + id, Detail: detail(nil)})
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete node %s: %w", id, err)
	}
	return nil
}
