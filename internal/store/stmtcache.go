package store

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// maxCachedStmts bounds the statement cache: queries built at run time
// past it are not cached.
const maxCachedStmts = 256

// stmtCache keeps prepared statements by query text, so that SQLite does
// not parse the same SQL on every call (a fifth of the server's CPU with
// thousands of agents polling). database/sql prepares a statement once
// per pooled connection and reuses it there, inside transactions too.
// A query seen for the first time is prepared in the background, never
// while its caller holds a connection (that could wait on a full pool):
// that first call, and any after a failed prepare, runs unprepared.
type stmtCache struct {
	db     *sql.DB
	mu     sync.Mutex
	m      map[string]*sql.Stmt // nil value: being prepared, or not cacheable
	closed bool
}

func newStmtCache(db *sql.DB) *stmtCache { return &stmtCache{db: db, m: map[string]*sql.Stmt{}} }

// get returns the prepared statement of q, or nil to run q unprepared.
func (c *stmtCache) get(q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[q]; ok || c.closed || len(c.m) >= maxCachedStmts {
		return st
	}
	c.m[q] = nil
	go c.prepare(q)
	return nil
}

func (c *stmtCache) prepare(q string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.db.PrepareContext(ctx, q)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		return
	}
	if c.closed {
		st.Close()
		return
	}
	c.m[q] = st
}

func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, st := range c.m {
		if st != nil {
			st.Close()
		}
	}
}
