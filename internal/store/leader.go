package store

import (
	"context"
	"fmt"
)

// pgLeaderLockKey is the session advisory lock that makes one server the
// leader of a PostgreSQL database ("drover" in ASCII).
const pgLeaderLockKey int64 = 0x64726f766572

// Campaign makes this store the leader if it can. The stored term is
// incremented (and the election audited) on every win, so each new
// leader's term exceeds every earlier one and fences the writes of the
// previous leader. Campaigning while already leading returns the held
// term.
//
// SQLite: the campaign always wins (one server owns the file).
// PostgreSQL: the win is pg_try_advisory_lock on a dedicated connection
// kept open until Resign or Close; while another store holds it Campaign
// returns false, and when that store's connection dies the lock (and
// leadership) is released by the server.
func (s *sqlStore) Campaign(ctx context.Context, serverID string) (int64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.term != 0 {
		if s.leadingLocked(ctx) {
			return s.term, true, nil
		}
		s.dropLocked(ctx)
	}
	if s.d.name == "postgres" {
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return 0, false, fmt.Errorf("campaign: connect: %w", err)
		}
		// A leader that crashes closes its socket and PostgreSQL frees the
		// lock at once; one whose host dies or is cut off sends nothing,
		// and the lock would stay held until TCP keepalive gives up (two
		// hours by default). Probe this connection so that PostgreSQL
		// drops it, and the lock, within about 15s.
		if _, err := conn.ExecContext(ctx, `SELECT set_config('tcp_keepalives_idle', '5', false),
	set_config('tcp_keepalives_interval', '2', false), set_config('tcp_keepalives_count', '3', false)`); err != nil {
			s.log.Warn("campaign: TCP keepalives not set on the leader connection", "err", err)
		}
		if _, err := conn.ExecContext(ctx, "SELECT set_config('tcp_user_timeout', '15000', false)"); err != nil {
			s.log.Debug("campaign: tcp_user_timeout not set (PostgreSQL before 12)", "err", err)
		}
		var won bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", pgLeaderLockKey).Scan(&won); err != nil {
			conn.Close()
			return 0, false, fmt.Errorf("campaign: try lock: %w", err)
		}
		if !won {
			conn.Close()
			return 0, false, nil
		}
		s.leader = conn
	}
	term, err := s.bumpTerm(ctx, serverID)
	if err != nil {
		s.dropLocked(ctx)
		return 0, false, fmt.Errorf("campaign: %w", err)
	}
	s.term = term
	s.log.Info("leadership won", "server", serverID, "term", term)
	return term, true, nil
}

func (s *sqlStore) bumpTerm(ctx context.Context, serverID string) (int64, error) {
	var term int64
	err := s.write(ctx, func(t *tx) error {
		now := s.clock()
		if err := t.queryRow("SELECT term FROM leader WHERE id = 1" + t.d.forUpdate).Scan(&term); err != nil {
			return fmt.Errorf("read term: %w", err)
		}
		term++
		if _, err := t.exec("UPDATE leader SET term = ?, holder = ?, since = ? WHERE id = 1", term, serverID, nanos(now)); err != nil {
			return fmt.Errorf("write term: %w", err)
		}
		t.audit(AuditEntry{At: now, Actor: serverID, Action: "leader.elect", Object: "server/" + serverID,
			Detail: detail(map[string]any{"term": term})})
		return nil
	})
	return term, err
}

// Leading reports whether this store still leads: its term is the
// stored one and, on PostgreSQL, its lock connection is alive and holds
// the lock. A store that finds it lost leadership forgets its term.
func (s *sqlStore) Leading(ctx context.Context) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.term == 0 {
		return false
	}
	if s.leadingLocked(ctx) {
		return true
	}
	s.log.Warn("leadership lost", "term", s.term)
	s.dropLocked(ctx)
	return false
}

func (s *sqlStore) leadingLocked(ctx context.Context) bool {
	var term int64
	if s.leader == nil {
		if s.d.name == "postgres" {
			return false
		}
		err := s.db.QueryRowContext(ctx, "SELECT term FROM leader WHERE id = 1").Scan(&term)
		return err == nil && term == s.term
	}
	var held bool
	err := s.leader.QueryRowContext(ctx, `SELECT (SELECT term FROM leader WHERE id = 1), EXISTS (
	SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
	AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1)`,
		pgLeaderLockKey>>32, pgLeaderLockKey&0xffffffff).Scan(&term, &held)
	return err == nil && held && term == s.term
}

// dropLocked forgets leadership, releasing the PostgreSQL lock if the
// connection still works.
func (s *sqlStore) dropLocked(ctx context.Context) {
	if s.leader != nil {
		s.leader.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", pgLeaderLockKey)
		s.leader.Close()
		s.leader = nil
	}
	s.term = 0
}

// Resign releases leadership if held. The term is not changed: the next
// leader's campaign increments it.
func (s *sqlStore) Resign(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.term != 0 {
		s.log.Info("leadership resigned", "term", s.term)
	}
	s.dropLocked(ctx)
	return nil
}
