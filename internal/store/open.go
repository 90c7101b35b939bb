package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

// Option adjusts a store opened by Open.
type Option func(*options)

type options struct {
	clock func() time.Time
	// Audit checkpoint retention (see WithCheckpointRetention).
	checkpointSpan, checkpointRecent int64
}

// Audit checkpoint retention by default: every checkpoint of the last
// 10,000 entries, and older ones one per 1,000 entries.
const (
	DefaultCheckpointSpan   = 1000
	DefaultCheckpointRecent = 10000
)

// WithCheckpointRetention sets which signed audit checkpoints are kept.
// A checkpoint is stored by every transaction that appends entries; the
// newest vouches for the whole log (a tree of size N commits to every
// leaf below it), the older ones let an auditor check consistency with a
// checkpoint it kept and narrow down where a rewrite starts. Kept: every
// checkpoint of the last recent entries, and before them the first
// checkpoint of every span entries (span > 0, recent >= span).
func WithCheckpointRetention(span, recent int64) Option {
	return func(o *options) { o.checkpointSpan, o.checkpointRecent = span, recent }
}

// WithClock sets the clock used for the few timestamps the callers do not
// supply (label changes, deletions, leadership changes). The default is
// time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// Open opens the store named by dsn, applies pending migrations and
// returns it:
//
//   - "sqlite:///var/lib/drover/drover.db", "sqlite:relative.db" or a
//     plain path: SQLite (WAL, busy timeout, foreign keys, immediate
//     write transactions). Query parameters are passed to the driver, so
//     "sqlite:///x.db?mode=ro" opens read-only (and then fails: the store
//     needs to write).
//   - "postgres://user:password@host:port/db?sslmode=disable" (or
//     "postgresql://"): PostgreSQL through pgx.
//
// An unreachable or read-only database, or one whose schema is newer than
// this binary knows (ErrSchemaTooNew), is an error naming the DSN with
// its password redacted. A nil logger discards.
func Open(ctx context.Context, dsn string, logger *slog.Logger, opts ...Option) (Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := options{clock: time.Now, checkpointSpan: DefaultCheckpointSpan, checkpointRecent: DefaultCheckpointRecent}
	for _, opt := range opts {
		opt(&o)
	}
	if o.checkpointSpan <= 0 || o.checkpointRecent < o.checkpointSpan {
		return nil, fmt.Errorf("open %s: checkpoint retention: span %d must be positive and recent %d at least the span", RedactDSN(dsn), o.checkpointSpan, o.checkpointRecent)
	}
	d, driverDSN, err := parseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", RedactDSN(dsn), err)
	}
	s, err := openSQL(ctx, d, dsn, driverDSN, logger, o)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", RedactDSN(dsn), err)
	}
	return s, nil
}

// parseDSN picks the dialect and returns the driver's own DSN.
func parseDSN(dsn string) (*dialect, string, error) {
	switch {
	case dsn == "":
		return nil, "", errors.New("empty DSN")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := url.Parse(dsn); err != nil {
			return nil, "", fmt.Errorf("parse PostgreSQL URL: %w", err)
		}
		return postgresDialect(), dsn, nil
	case strings.HasPrefix(dsn, "sqlite://"):
		return sqliteDialect(), sqliteDriverDSN(strings.TrimPrefix(dsn, "sqlite://")), nil
	case strings.HasPrefix(dsn, "sqlite:"):
		return sqliteDialect(), sqliteDriverDSN(strings.TrimPrefix(dsn, "sqlite:")), nil
	case strings.Contains(dsn, "://"):
		return nil, "", fmt.Errorf("unsupported database scheme %q (want sqlite:// or postgres://)", dsn[:strings.Index(dsn, "://")])
	default:
		return sqliteDialect(), sqliteDriverDSN(dsn), nil
	}
}

// sqliteDriverDSN builds modernc's "file:" URI for path (which may carry
// its own query), adding the settings the store relies on.
func sqliteDriverDSN(path string) string {
	query := ""
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	params := []string{
		"_txlock=immediate", // a write transaction takes the lock at BEGIN: no upgrade deadlocks
		"_pragma=busy_timeout(10000)",
		"_pragma=foreign_keys(1)",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(NORMAL)",
	}
	if query != "" {
		params = append([]string{query}, params...)
	}
	return "file:" + path + "?" + strings.Join(params, "&")
}

// sqliteFile is the database file a SQLite DSN names; "" for an
// in-memory or read-only database.
func sqliteFile(dsn string) string {
	path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite://"), "sqlite:")
	path, query, _ := strings.Cut(path, "?")
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.Contains(query, "mode=memory") || strings.Contains(query, "mode=ro") {
		return ""
	}
	return path
}

// privateFiles makes the database file and its WAL and shared-memory
// files readable by the server's user only (0600), creating the
// database file so, whatever the mode of its directory or the umask:
// SQLite creates its -wal and -shm files with the database file's mode.
// A file that cannot be created or changed is left to SQLite, which
// reports why it cannot open it.
func privateFiles(path string, logger *slog.Logger) {
	if path == "" {
		return
	}
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		// Take group's and others' bits only: a file the operator made
		// read-only stays read-only.
		if err := os.Chmod(p, fi.Mode().Perm()&^0o077); err != nil {
			logger.Warn("database file readable by others; could not make it private", "file", p, "mode", fi.Mode().Perm().String(), "err", err)
		} else {
			logger.Info("database file made private", "file", p, "was", fi.Mode().Perm().String())
		}
	}
}

// RedactDSN returns dsn with any password replaced by "xxxxx", for error
// messages and logs.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return dsn
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "password") {
			q.Set(k, "xxxxx")
		}
	}
	if len(q) > 0 && u.RawQuery != "" {
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// openSQL opens the pool, checks it is reachable, migrates and probes
// that it is writable.
func openSQL(ctx context.Context, d *dialect, dsn, driverDSN string, logger *slog.Logger, o options) (*sqlStore, error) {
	if d.name == "sqlite" {
		privateFiles(sqliteFile(dsn), logger)
	}
	db, err := sql.Open(d.driver, driverDSN)
	if err != nil {
		return nil, err
	}
	d.configurePool(db)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		if c, ok := sqliteCode(err); ok && c == sqliteCantOpen {
			return nil, fmt.Errorf("cannot open the database file (does its directory exist, and may drover write to it?): %w", err)
		}
		return nil, fmt.Errorf("connect: %w", err)
	}
	s := &sqlStore{db: db, d: d, dsn: dsn, log: logger.With("store", d.name), clock: o.clock, opts: o}
	s.audit.span, s.audit.recent = o.checkpointSpan, o.checkpointRecent
	if err := s.migrate(ctx); err != nil {
		db.Close()
		if d.isReadOnly(err) {
			return nil, fmt.Errorf("database is read-only: %w", err)
		}
		return nil, err
	}
	if d.name == "sqlite" {
		// After migrating: no statement is prepared against an old schema.
		s.stmts = newStmtCache(db)
		s.writer = make(chan struct{}, 1)
	}
	return s, nil
}
