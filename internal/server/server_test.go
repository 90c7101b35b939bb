package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/store"
)

// testConfig is a valid configuration with one user per role.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AgentToken = "agent-token-0123456789"
	cfg.Users = []User{
		{Name: "alice", Role: RoleOperator, Token: "alice-token-0123456789"},
		{Name: "bob", Role: RoleApprover, Token: "bob-token-0123456789ab"},
		{Name: "vera", Role: RoleViewer, Token: "vera-token-0123456789a"},
		{Name: "root", Role: RoleAdmin, Token: "root-token-0123456789a"},
	}
	return cfg
}

// newTestServer builds a server on a real SQLite store in a temp dir.
func newTestServer(t testing.TB) *Server {
	t.Helper()
	cfg := testConfig(t)
	st, err := store.Open(context.Background(), filepath.Join(cfg.DataDir, "drover.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(cfg, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWakerIdleMarks: a read that found no pending step marks the node
// idle only if nothing was notified since the read began; a notification,
// a change of leadership or the TTL ends the mark.
func TestWakerIdleMarks(t *testing.T) {
	w := newWaker()
	now := time.Now()
	if w.isIdle("n1", now) {
		t.Fatal("idle before any read")
	}
	m := w.stamp("n1", now)
	w.markIdle("n1", m)
	if !w.isIdle("n1", now) {
		t.Fatal("not idle after an empty read")
	}
	w.notify("n1")
	if w.isIdle("n1", now) {
		t.Fatal("idle after a step was notified")
	}
	// A read that began before a notification must not mark the node
	// idle: the step committed meanwhile may not be in what it read.
	m = w.stamp("n1", now)
	w.notify("n1")
	w.markIdle("n1", m)
	if w.isIdle("n1", now) {
		t.Fatal("a stale empty read marked the node idle")
	}
	w.markIdle("n1", w.stamp("n1", now))
	w.newEpoch()
	if w.isIdle("n1", now) {
		t.Fatal("idle mark survived a change of leadership")
	}
	w.markIdle("n1", w.stamp("n1", now))
	if w.isIdle("n1", now.Add(idleTTL)) || w.isIdle("n1", now.Add(-time.Second)) {
		t.Fatal("idle mark trusted past its TTL or before it was taken")
	}
	if !w.isIdle("n1", now.Add(time.Second)) || w.isIdle("n2", now) {
		t.Fatal("idle marks mixed up")
	}
}
