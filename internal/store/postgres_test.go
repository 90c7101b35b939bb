package store_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/store/storetest"
)

func TestPostgres(t *testing.T) {
	pg := storetest.NewPostgres(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.Open(context.Background(), pg.CreateDB(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestPostgresUnreachable(t *testing.T) {
	dsn := "postgres://drover:hunter2@127.0.0.1:1/drover?sslmode=disable&connect_timeout=5"
	_, err := store.Open(context.Background(), dsn, nil)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Open of an unreachable PostgreSQL = %v; want an error naming the redacted DSN", err)
	}
}

func TestPostgresReadOnly(t *testing.T) {
	pg := storetest.NewPostgres(t)
	ctx := context.Background()
	dsn := pg.CreateDB(t)
	s, err := store.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	name := strings.TrimPrefix(mustParse(t, dsn).Path, "/")
	if _, err := pg.Admin().ExecContext(ctx, "ALTER DATABASE "+name+" SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(ctx, dsn, nil)
	if err == nil || !strings.Contains(err.Error(), "read-only") || !strings.Contains(err.Error(), name) {
		t.Fatalf("Open of a read-only database = %v; want an error naming the DSN and saying read-only", err)
	}
	// A fresh database that is read-only from the start fails the same way.
	dsn2 := pg.CreateDB(t)
	name2 := strings.TrimPrefix(mustParse(t, dsn2).Path, "/")
	if _, err := pg.Admin().ExecContext(ctx, "ALTER DATABASE "+name2+" SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	if _, err = store.Open(ctx, dsn2, nil); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("Open of an empty read-only database = %v", err)
	} else {
		t.Log(err)
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
