package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/store/storetest"
)

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "drover.db")
	s, err := store.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, openSQLite)
}

func TestSQLiteOpenForms(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, dsn := range []string{
		filepath.Join(dir, "plain.db"),
		"sqlite://" + filepath.Join(dir, "url.db"),
		"sqlite:" + filepath.Join(dir, "short.db"),
	} {
		s, err := store.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatalf("Open(%q): %v", dsn, err)
		}
		s.Close()
		// Reopening a migrated database changes nothing and works.
		s, err = store.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatalf("reopen %q: %v", dsn, err)
		}
		s.Close()
	}
	if _, err := os.Stat(filepath.Join(dir, "plain.db")); err != nil {
		t.Fatal(err)
	}
}

func TestSQLiteUnreachable(t *testing.T) {
	dsn := "sqlite:///nonexistent-dir/drover/drover.db"
	_, err := store.Open(context.Background(), dsn, nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent-dir/drover/drover.db") {
		t.Fatalf("Open(%s) = %v; want an error naming the DSN", dsn, err)
	}
}

func TestSQLiteReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ro.db")
	s, err := store.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	dsn := "sqlite://" + path
	if os.Geteuid() == 0 {
		// Root ignores file modes; ask SQLite for a read-only connection
		// so the same path is exercised.
		dsn += "?mode=ro"
	}
	_, err = store.Open(ctx, dsn, nil)
	if err == nil || !strings.Contains(err.Error(), "read-only") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of a read-only database = %v; want an error naming the DSN and saying read-only", err)
	}
}

func TestUnsupportedDSN(t *testing.T) {
	_, err := store.Open(context.Background(), "mysql://root:hunter2@db/drover", nil)
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "mysql") {
		t.Fatalf("Open(mysql://...) = %v", err)
	}
	if errors.Is(err, store.ErrNotFound) {
		t.Fatal("unexpected sentinel")
	}
}
