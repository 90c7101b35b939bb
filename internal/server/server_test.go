package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

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
