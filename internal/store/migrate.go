package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations
var migrationsFS embed.FS

// migration is one versioned schema change, NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations lists the dialect's migrations in version order.
func (d *dialect) loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationsFS, d.migrations)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", name)
		}
		b, err := fs.ReadFile(migrationsFS, path.Join(d.migrations, name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: versions must be 1, 2, 3... without gaps", m.name)
		}
	}
	return ms, nil
}

// pgMigrationLockKey serializes migrations of servers starting together.
const pgMigrationLockKey int64 = 0x64726f766572_01 // "drover" 01

// migrate applies pending migrations in one transaction and records them
// in schema_migrations. A database migrated by a newer drover is left
// untouched (ErrSchemaTooNew). The transaction ends with a harmless write
// so that a read-only database fails here, at Open, and not at the first
// rollout.
func (s *sqlStore) migrate(ctx context.Context) error {
	ms, err := s.d.loadMigrations()
	if err != nil {
		return err
	}
	latest := len(ms)
	return s.writeOnce(ctx, func(t *tx) error {
		if s.d.name == "postgres" {
			if _, err := t.exec("SELECT pg_advisory_xact_lock(?)", pgMigrationLockKey); err != nil {
				return fmt.Errorf("lock for migration: %w", err)
			}
		}
		if _, err := t.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at BIGINT NOT NULL
)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var current int
		if err := t.queryRow("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if current > latest {
			return fmt.Errorf("%w: database is at version %d, this drover knows up to %d; upgrade drover", ErrSchemaTooNew, current, latest)
		}
		for _, m := range ms[current:] {
			for _, stmt := range splitSQL(m.sql) {
				if _, err := t.exec(stmt); err != nil {
					return fmt.Errorf("migration %s: %w", m.name, err)
				}
			}
			if _, err := t.exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.version, m.name, nanos(s.clock())); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
			s.log.Info("schema migrated", "version", m.version, "migration", m.name)
		}
		if _, err := t.exec("UPDATE leader SET term = term WHERE id = 1"); err != nil {
			return fmt.Errorf("write probe: %w", err)
		}
		return nil
	})
}

// splitSQL splits a migration into statements at semicolons ending a
// line. Migrations hold no semicolon at a line end inside a literal.
func splitSQL(src string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(trimmed, ";") {
			if stmt := strings.TrimSpace(cur.String()); stmt != ";" {
				out = append(out, strings.TrimSuffix(stmt, ";"))
			}
			cur.Reset()
		}
	}
	if stmt := strings.TrimSpace(cur.String()); stmt != "" {
		out = append(out, stmt)
	}
	return out
}
