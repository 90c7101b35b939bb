package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// sqlStore implements Store on database/sql for both dialects.
type sqlStore struct {
	db    *sql.DB
	d     *dialect
	dsn   string // as given to Open; never logged unredacted
	log   *slog.Logger
	clock func() time.Time
	opts  options

	mu     sync.Mutex
	term   int64     // leadership term held, 0 when not leading
	leader *sql.Conn // PostgreSQL: the connection holding the advisory lock

	audit auditSigning // the audit key (SetAuditKey); see audittree.go

	stmts *stmtCache // SQLite only; nil: every statement is parsed anew

	budgets budgetIndex // fleet budgets over the fleet, for commits (fleet.go)

	// writer, on SQLite, is held by the one write transaction in
	// progress: writers queue here, in this process, instead of in
	// SQLite's busy handler, which polls with sleeps of up to 100 ms and
	// holds a pooled connection while it waits (readers then starve for
	// connections). nil on PostgreSQL, whose writers lock rows.
	writer chan struct{}
}

// lockWrites takes the SQLite writer slot (a no-op on PostgreSQL); the
// returned function gives it back.
func (s *sqlStore) lockWrites(ctx context.Context) (func(), error) {
	if s.writer == nil {
		return func() {}, nil
	}
	select {
	case s.writer <- struct{}{}:
		return func() { <-s.writer }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

var _ Store = (*sqlStore)(nil)

func (s *sqlStore) Close() error {
	s.mu.Lock()
	if s.leader != nil {
		s.leader.Close()
		s.leader = nil
	}
	s.term = 0
	s.mu.Unlock()
	s.stmts.close()
	return s.db.Close()
}

// Dialect names the backend: "sqlite" or "postgres".
func (s *sqlStore) Dialect() string { return s.d.name }

// Reopen opens another, independent store on the same database, as a
// second server process would (its own pool and leadership state).
func (s *sqlStore) Reopen(ctx context.Context) (Store, error) {
	return Open(ctx, s.dsn, s.log, func(o *options) { *o = s.opts })
}

// ExecRaw runs one statement ('?' placeholders) outside the store's
// rules and returns the rows affected. It exists for tests and repair
// tools: anything written through it bypasses the audit chain, which
// VerifyAudit will then report.
func (s *sqlStore) ExecRaw(ctx context.Context, query string, args ...any) (int64, error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	res, err := s.db.ExecContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// tx is one write transaction. Audit entries recorded with audit are
// appended when the transaction function returns, just before COMMIT, so
// that the chain's head row is always the last lock taken.
type tx struct {
	ctx     context.Context
	tx      *sql.Tx
	d       *dialect
	stmts   *stmtCache
	pending []AuditEntry
}

func (t *tx) exec(q string, args ...any) (sql.Result, error) {
	q = t.d.rebind(q)
	if st := t.stmts.get(q); st != nil {
		return t.tx.StmtContext(t.ctx, st).ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, q, args...)
}

func (t *tx) query(q string, args ...any) (*sql.Rows, error) {
	q = t.d.rebind(q)
	if st := t.stmts.get(q); st != nil {
		return t.tx.StmtContext(t.ctx, st).QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, q, args...)
}

func (t *tx) queryRow(q string, args ...any) *sql.Row {
	q = t.d.rebind(q)
	if st := t.stmts.get(q); st != nil {
		return t.tx.StmtContext(t.ctx, st).QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, q, args...)
}

// audit records an entry to append at commit.
func (t *tx) audit(e AuditEntry) { t.pending = append(t.pending, e) }

const maxAttempts = 5

// errRetry asks write to run the transaction again: a concurrent writer
// won a race (two first registrations of one node) that a second run
// resolves.
var errRetry = errors.New("retry the transaction")

// write runs fn in a write transaction, appends the audit entries it
// recorded, and commits. A transient failure (lock timeout, deadlock,
// serialization failure) runs fn again from the start; fn must therefore
// have no effects outside the transaction.
func (s *sqlStore) write(ctx context.Context, fn func(t *tx) error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = s.writeOnce(ctx, fn)
		if err == nil || !(s.d.isRetryable(err) || errors.Is(err, errRetry)) || ctx.Err() != nil {
			return err
		}
		s.log.Debug("transaction retried", "attempt", attempt, "err", err)
	}
	return err
}

func (s *sqlStore) writeOnce(ctx context.Context, fn func(t *tx) error) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t := &tx{ctx: ctx, tx: sqlTx, d: s.d, stmts: s.stmts}
	if err := fn(t); err != nil {
		sqlTx.Rollback()
		return err
	}
	if len(t.pending) > 0 {
		if err := t.appendAudit(&s.audit, s.clock); err != nil {
			sqlTx.Rollback()
			return err
		}
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// read runs fn in a read-only transaction (one consistent snapshot).
func (s *sqlStore) read(ctx context.Context, fn func(t *tx) error) error {
	sqlTx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: s.d.snapshot})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer sqlTx.Rollback()
	return fn(&tx{ctx: ctx, tx: sqlTx, d: s.d, stmts: s.stmts})
}

// nanos encodes t as Unix nanoseconds UTC; the zero time is 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos decodes nanos; 0 is the zero time.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func fromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// notFound wraps ErrNotFound for a missing row.
func notFound(what, id string) error { return fmt.Errorf("%s %s: %w", what, id, ErrNotFound) }

// conflictOnUnique turns a unique violation into ErrConflict.
func (t *tx) conflictOnUnique(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if t.d.isUnique(err) {
		return fmt.Errorf(format+": %w", append(args, ErrConflict)...)
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

func rowsAffected(res sql.Result) (int64, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("rows affected: %w", err)
	}
	return n, nil
}

// isNoRows reports sql.ErrNoRows.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
