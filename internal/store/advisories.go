package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/advisory"
)

// AdvisoryImport describes one import for its audit entry.
type AdvisoryImport struct {
	Actor   string
	Sources []string // file names or URLs, for the audit
	Hash    string   // SHA-256 of what was imported (the documents' bytes)
	Now     time.Time
}

// AdvisoryImportResult counts what an import did.
type AdvisoryImportResult struct {
	Added     int `json:"added"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	// Older: the catalog holds a newer version (a later modified);
	// kept as it is.
	Older int `json:"older"`
}

// AdvisoryQuery filters ListAdvisories; zero values match everything.
type AdvisoryQuery struct {
	ID          string // the ID or any alias (a CVE, a KB)
	Ecosystem   string // debian:12, or a family alone (debian)
	MinSeverity string // this severity or higher
	After       string // IDs after this one (paging)
	Limit       int    // at most this many (0: 500)
}

// Advisories is the advisory catalog. Both backends implement it (see
// AsAdvisories).
type Advisories interface {
	// ImportAdvisories upserts advs in one transaction: a new ID is
	// added; a known one is replaced when its Modified is newer, or
	// equal with a different content; otherwise it is left as it is.
	// Importing the same advisories again changes nothing and writes
	// no audit entry unless something was added or updated
	// (advisory.import, with the counts, sources and hash). Every
	// advisory must pass Validate; one that does not refuses the whole
	// import.
	ImportAdvisories(ctx context.Context, advs []advisory.Advisory, meta AdvisoryImport) (AdvisoryImportResult, error)
	// GetAdvisory returns the advisory whose ID, or else whose alias, is
	// id (the oldest ID first when an alias names several); ErrNotFound
	// when none.
	GetAdvisory(ctx context.Context, id string) (advisory.Advisory, error)
	// ListAdvisories lists advisories by ID.
	ListAdvisories(ctx context.Context, q AdvisoryQuery) ([]advisory.Advisory, error)
}

// AsAdvisories returns st's advisory catalog, or false when st keeps
// none.
func AsAdvisories(st Store) (Advisories, bool) {
	a, ok := st.(Advisories)
	return a, ok
}

var _ Advisories = (*sqlStore)(nil)

func (s *sqlStore) ImportAdvisories(ctx context.Context, advs []advisory.Advisory, meta AdvisoryImport) (AdvisoryImportResult, error) {
	now := meta.Now
	if now.IsZero() {
		now = s.clock()
	}
	type row struct {
		a    *advisory.Advisory
		doc  string
		hash string
	}
	rows := make([]row, len(advs))
	for i := range advs {
		a := &advs[i]
		if err := a.Validate(); err != nil {
			return AdvisoryImportResult{}, fmt.Errorf("advisory %d (%s): %w", i, a.ID, err)
		}
		b, err := json.Marshal(a)
		if err != nil {
			return AdvisoryImportResult{}, fmt.Errorf("encode advisory %s: %w", a.ID, err)
		}
		h := sha256.Sum256(b)
		rows[i] = row{a: a, doc: string(b), hash: hex.EncodeToString(h[:])}
	}
	var res AdvisoryImportResult
	err := s.write(ctx, func(t *tx) error {
		res = AdvisoryImportResult{}
		type stored struct {
			modified int64
			hash     string
		}
		// What the catalog holds of these IDs, read in chunks.
		have := make(map[string]stored, len(rows))
		for i := 0; i < len(rows); i += 500 {
			chunk := rows[i:min(i+500, len(rows))]
			args := make([]any, len(chunk))
			for j, r := range chunk {
				args[j] = r.a.ID
			}
			q := "SELECT id, modified, hash FROM advisories WHERE id IN (?" + strings.Repeat(", ?", len(chunk)-1) + ")"
			rs, err := t.query(q, args...)
			if err != nil {
				return fmt.Errorf("read advisories: %w", err)
			}
			for rs.Next() {
				var id string
				var st stored
				if err := rs.Scan(&id, &st.modified, &st.hash); err != nil {
					rs.Close()
					return fmt.Errorf("read advisories: %w", err)
				}
				have[id] = st
			}
			if err := rs.Close(); err != nil {
				return fmt.Errorf("read advisories: %w", err)
			}
			if err := rs.Err(); err != nil {
				return fmt.Errorf("read advisories: %w", err)
			}
		}
		for _, r := range rows {
			old, found := have[r.a.ID]
			modified, hash := old.modified, old.hash
			switch {
			case !found:
				if _, err := t.exec("INSERT INTO advisories (id, modified, published, severity, hash, doc, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
					r.a.ID, nanos(r.a.Modified), nanos(r.a.Published), r.a.Severity, r.hash, r.doc, nanos(now)); err != nil {
					return fmt.Errorf("insert advisory %s: %w", r.a.ID, err)
				}
				res.Added++
				have[r.a.ID] = stored{nanos(r.a.Modified), r.hash} // a later duplicate in this import sees it
			case hash == r.hash:
				res.Unchanged++
				continue
			case nanos(r.a.Modified) < modified:
				res.Older++
				continue
			default:
				if _, err := t.exec("UPDATE advisories SET modified = ?, published = ?, severity = ?, hash = ?, doc = ?, imported_at = ? WHERE id = ?",
					nanos(r.a.Modified), nanos(r.a.Published), r.a.Severity, r.hash, r.doc, nanos(now), r.a.ID); err != nil {
					return fmt.Errorf("update advisory %s: %w", r.a.ID, err)
				}
				if _, err := t.exec("DELETE FROM advisory_keys WHERE advisory_id = ?", r.a.ID); err != nil {
					return fmt.Errorf("update advisory %s: %w", r.a.ID, err)
				}
				res.Updated++
				have[r.a.ID] = stored{nanos(r.a.Modified), r.hash}
			}
			if err := t.insertAdvisoryKeys(r.a); err != nil {
				return err
			}
		}
		if res.Added+res.Updated > 0 {
			t.audit(AuditEntry{At: now, Actor: meta.Actor, Action: "advisory.import", Object: "advisories",
				Detail: detail(map[string]any{"added": res.Added, "updated": res.Updated, "unchanged": res.Unchanged, "older": res.Older,
					"advisories": len(rows), "sources": meta.Sources, "sha256": meta.Hash})})
		}
		return nil
	})
	return res, err
}

// insertAdvisoryKeys indexes a's aliases, ecosystems and families,
// in statements of at most 100 rows.
func (t *tx) insertAdvisoryKeys(a *advisory.Advisory) error {
	seen := map[[2]string]bool{}
	var keys [][2]string
	add := func(kind, key string) {
		k := [2]string{kind, key}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for _, al := range a.Aliases {
		add("alias", strings.ToUpper(al))
	}
	for _, f := range a.Affected {
		add("ecosystem", f.Ecosystem)
		add("family", f.Family())
	}
	for i := 0; i < len(keys); i += 100 {
		chunk := keys[i:min(i+100, len(keys))]
		args := make([]any, 0, 3*len(chunk))
		for _, k := range chunk {
			args = append(args, k[0], k[1], a.ID)
		}
		q := "INSERT INTO advisory_keys (kind, key, advisory_id) VALUES (?, ?, ?)" + strings.Repeat(", (?, ?, ?)", len(chunk)-1)
		if _, err := t.exec(q, args...); err != nil {
			return fmt.Errorf("index advisory %s: %w", a.ID, err)
		}
	}
	return nil
}

func (s *sqlStore) GetAdvisory(ctx context.Context, id string) (advisory.Advisory, error) {
	var a advisory.Advisory
	err := s.read(ctx, func(t *tx) error {
		var doc string
		err := t.queryRow("SELECT doc FROM advisories WHERE id = ?", id).Scan(&doc)
		if isNoRows(err) {
			err = t.queryRow("SELECT a.doc FROM advisory_keys k JOIN advisories a ON a.id = k.advisory_id WHERE k.kind = 'alias' AND k.key = ? ORDER BY a.published, a.id LIMIT 1",
				strings.ToUpper(id)).Scan(&doc)
		}
		if isNoRows(err) {
			return notFound("advisory", id)
		}
		if err != nil {
			return fmt.Errorf("read advisory %s: %w", id, err)
		}
		return json.Unmarshal([]byte(doc), &a)
	})
	return a, err
}

func (s *sqlStore) ListAdvisories(ctx context.Context, q AdvisoryQuery) ([]advisory.Advisory, error) {
	if q.MinSeverity != "" && advisory.SeverityRank(q.MinSeverity) < 0 {
		return nil, errors.New("list advisories: unknown severity " + q.MinSeverity)
	}
	limit := q.Limit
	if limit <= 0 || limit > 10_000 {
		limit = 500
	}
	var where []string
	var args []any
	if q.ID != "" {
		where = append(where, "(a.id = ? OR a.id IN (SELECT advisory_id FROM advisory_keys WHERE kind = 'alias' AND key = ?))")
		args = append(args, q.ID, strings.ToUpper(q.ID))
	}
	if q.Ecosystem != "" {
		kind := "ecosystem"
		if !strings.Contains(q.Ecosystem, ":") {
			kind = "family"
		}
		where = append(where, "a.id IN (SELECT advisory_id FROM advisory_keys WHERE kind = ? AND key = ?)")
		args = append(args, kind, q.Ecosystem)
	}
	if q.MinSeverity != "" {
		var sev []string
		for _, s := range []string{advisory.SeverityUnknown, advisory.SeverityNone, advisory.SeverityLow, advisory.SeverityMedium, advisory.SeverityHigh, advisory.SeverityCritical} {
			if advisory.SeverityRank(s) >= advisory.SeverityRank(q.MinSeverity) {
				sev = append(sev, "?")
				args = append(args, s)
			}
		}
		where = append(where, "a.severity IN ("+strings.Join(sev, ", ")+")")
	}
	if q.After != "" {
		where = append(where, "a.id > ?")
		args = append(args, q.After)
	}
	query := "SELECT a.doc FROM advisories a"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += fmt.Sprintf(" ORDER BY a.id LIMIT %d", limit)
	out := []advisory.Advisory{}
	err := s.read(ctx, func(t *tx) error {
		out = out[:0]
		rows, err := t.query(query, args...)
		if err != nil {
			return fmt.Errorf("list advisories: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var doc string
			if err := rows.Scan(&doc); err != nil {
				return fmt.Errorf("list advisories: %w", err)
			}
			var a advisory.Advisory
			if err := json.Unmarshal([]byte(doc), &a); err != nil {
				return fmt.Errorf("list advisories: decode: %w", err)
			}
			out = append(out, a)
		}
		return rows.Err()
	})
	return out, err
}
