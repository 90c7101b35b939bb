package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestSQLiteFilesPrivate: the database and its WAL and shared-memory
// files are 0600 even in a directory that already exists with a looser
// mode, and an existing database readable by others is made private.
func TestSQLiteFilesPrivate(t *testing.T) {
	ctx := context.Background()
	// Not t.TempDir: database/sql may finish opening a pooled connection
	// just after Close returns, and SQLite then recreates its -wal and
	// -shm files while the directory is being removed ("directory not
	// empty"). Removal is retried instead.
	dir, err := os.MkdirTemp("", "drover-private-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	path := filepath.Join(dir, "drover.db")
	check := func() {
		t.Helper()
		s, err := store.Open(ctx, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.UpsertNode(ctx, store.NodeRecord{ID: "n1"}); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(f)
			if os.IsNotExist(err) && f != path {
				continue // removed when the pool closed its last connection
			}
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 0600", filepath.Base(f), fi.Mode().Perm())
			}
		}
	}
	check()
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(f, 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	check()
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
