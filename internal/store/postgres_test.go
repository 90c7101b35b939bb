package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/store/storetest"
)

// postgresEnv names the variable holding the URL of a PostgreSQL whose
// user may create databases. scripts/postgres.sh starts one and prints it.
const postgresEnv = "DROVER_TEST_POSTGRES"

// pgServer is a PostgreSQL reached through postgresEnv. Each test gets
// its own database, dropped when it ends.
type pgServer struct {
	url   *url.URL
	admin *sql.DB
	seq   atomic.Int64
}

func newPGServer(t *testing.T) *pgServer {
	t.Helper()
	raw := os.Getenv(postgresEnv)
	if raw == "" {
		t.Fatalf("%s is not set: the store's PostgreSQL tests need a real PostgreSQL. Start a throwaway one with\n"+
			"\teval \"$(scripts/postgres.sh)\"\nfrom the repository root (or run `make test`), then run the tests again.", postgresEnv)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s: %v", postgresEnv, err)
	}
	admin, err := sql.Open("pgx", raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if err := admin.PingContext(context.Background()); err != nil {
		t.Fatalf("%s=%s is not reachable: %v\nstart one with: eval \"$(scripts/postgres.sh)\"", postgresEnv, store.RedactDSN(raw), err)
	}
	return &pgServer{url: u, admin: admin}
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// createDB creates an empty database for t and returns its URL.
func (p *pgServer) createDB(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	name := nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	name = fmt.Sprintf("drover_t%d_%d_%s", os.Getpid(), p.seq.Add(1), name)
	if _, err := p.admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if _, err := p.admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u := *p.url
	u.Path = "/" + name
	return u.String()
}

func TestPostgres(t *testing.T) {
	pg := newPGServer(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.Open(context.Background(), pg.createDB(t), nil)
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
	pg := newPGServer(t)
	ctx := context.Background()
	dsn := pg.createDB(t)
	s, err := store.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	name := strings.TrimPrefix(mustParse(t, dsn).Path, "/")
	if _, err := pg.admin.ExecContext(ctx, "ALTER DATABASE "+name+" SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(ctx, dsn, nil)
	if err == nil || !strings.Contains(err.Error(), "read-only") || !strings.Contains(err.Error(), name) {
		t.Fatalf("Open of a read-only database = %v; want an error naming the DSN and saying read-only", err)
	}
	// A fresh database that is read-only from the start fails the same way.
	dsn2 := pg.createDB(t)
	name2 := strings.TrimPrefix(mustParse(t, dsn2).Path, "/")
	if _, err := pg.admin.ExecContext(ctx, "ALTER DATABASE "+name2+" SET default_transaction_read_only = on"); err != nil {
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
