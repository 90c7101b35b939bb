package store

import (
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// dialect holds everything that differs between SQLite and PostgreSQL.
// The SQL is written once with '?' placeholders; rebind turns them into
// PostgreSQL's $N.
type dialect struct {
	name       string // "sqlite" or "postgres"
	driver     string // database/sql driver name
	migrations string // directory in migrationsFS
	// forUpdate and forShare are appended to a SELECT that must lock the
	// rows it reads. SQLite needs none: its write transactions are
	// serialized by BEGIN IMMEDIATE.
	forUpdate, forShare string
	numbered            bool // placeholders are $1, $2...
	maxOpen             int
	// snapshot is the isolation level that gives a read transaction one
	// snapshot: SQLite's transactions always do (in WAL mode);
	// PostgreSQL's default, read committed, takes one per statement.
	snapshot sql.IsolationLevel
}

func sqliteDialect() *dialect {
	return &dialect{name: "sqlite", driver: "sqlite", migrations: "migrations/sqlite", maxOpen: 8}
}

func postgresDialect() *dialect {
	return &dialect{name: "postgres", driver: "pgx", migrations: "migrations/postgres",
		forUpdate: " FOR UPDATE", forShare: " FOR SHARE", numbered: true, maxOpen: 16, snapshot: sql.LevelRepeatableRead}
}

func (d *dialect) configurePool(db *sql.DB) {
	db.SetMaxOpenConns(d.maxOpen)
	db.SetMaxIdleConns(d.maxOpen)
}

// rebind rewrites '?' placeholders for the dialect. The store's SQL never
// holds a literal '?' inside a string.
func (d *dialect) rebind(q string) string {
	if !d.numbered || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// SQLite result codes (primary code in the low byte).
const (
	sqliteBusy     = 5
	sqliteLocked   = 6
	sqliteReadOnly = 8
	sqliteCantOpen = 14
	// extended codes
	sqliteConstraintPrimaryKey = 19 | 6<<8
	sqliteConstraintUnique     = 19 | 8<<8
)

func sqliteCode(err error) (int, bool) {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code() & 0xff, true
	}
	return 0, false
}

func pgCode(err error) (string, bool) {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code, true
	}
	return "", false
}

// isUnique reports a primary-key or unique violation.
func (d *dialect) isUnique(err error) bool {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code() == sqliteConstraintPrimaryKey || e.Code() == sqliteConstraintUnique
	}
	c, ok := pgCode(err)
	return ok && c == "23505"
}

// isReadOnly reports a write refused because the database is read-only.
func (d *dialect) isReadOnly(err error) bool {
	if c, ok := sqliteCode(err); ok {
		return c == sqliteReadOnly
	}
	c, ok := pgCode(err)
	return ok && (c == "25006" || c == "25P02" && strings.Contains(err.Error(), "read-only"))
}

// isRetryable reports a transient failure after which the whole
// transaction may run again: lock timeouts, deadlocks, serialization
// failures.
func (d *dialect) isRetryable(err error) bool {
	if c, ok := sqliteCode(err); ok {
		return c == sqliteBusy || c == sqliteLocked
	}
	c, ok := pgCode(err)
	return ok && (c == "40001" || c == "40P01")
}
