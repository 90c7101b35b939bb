package storetest

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

	"github.com/drover-dev/drover/internal/store"
)

// PostgresEnv names the variable holding the URL of a PostgreSQL whose
// user may create databases. scripts/postgres.sh starts one and prints it.
const PostgresEnv = "DROVER_TEST_POSTGRES"

// Postgres is the real PostgreSQL the tests run against. Each test gets
// its own database (CreateDB), dropped when it ends.
type Postgres struct {
	url   *url.URL
	admin *sql.DB
	seq   atomic.Int64
}

// NewPostgres connects to the PostgreSQL named by PostgresEnv. The test
// fails, never skips, when it is not set or not reachable: what needs it
// must not pass without it.
func NewPostgres(t testing.TB) *Postgres {
	t.Helper()
	raw := os.Getenv(PostgresEnv)
	if raw == "" {
		t.Fatalf("%s is not set: this test needs a real PostgreSQL. Start a throwaway one with\n"+
			"\teval \"$(scripts/postgres.sh)\"\nfrom the repository root (or run `make test`), then run the tests again.", PostgresEnv)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	admin, err := sql.Open("pgx", raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if err := admin.PingContext(context.Background()); err != nil {
		t.Fatalf("%s=%s is not reachable: %v\nstart one with: eval \"$(scripts/postgres.sh)\"", PostgresEnv, store.RedactDSN(raw), err)
	}
	return &Postgres{url: u, admin: admin}
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// CreateDB creates an empty database for t and returns its URL.
func (p *Postgres) CreateDB(t testing.TB) string {
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

// Admin is the connection as the server's admin user, for tests that
// change a database behind the store's back.
func (p *Postgres) Admin() *sql.DB { return p.admin }
