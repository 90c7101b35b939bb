package store_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/store"
)

// TestCredentials runs the credentials contract on SQLite and, when
// DROVER_TEST_POSTGRES is set, on PostgreSQL.
func TestCredentials(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testCredentials(t, openSQLite(t)) })
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(postgresEnv) == "" {
			t.Fatal(postgresEnv + " is not set: start PostgreSQL with eval \"$(scripts/postgres.sh)\" (make test does)")
		}
		s, err := store.Open(context.Background(), newPGServer(t).createDB(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		testCredentials(t, s)
	})
}

func testCredentials(t *testing.T, st store.Store) {
	ctx := context.Background()
	c, ok := store.AsCredentials(st)
	if !ok {
		t.Fatal("store keeps no credentials")
	}
	now := time.Unix(1_800_000_000, 0).UTC()
	if err := c.CreateEnrollToken(ctx, store.EnrollToken{Hash: "h1", Labels: map[string]string{"zone": "a"}, CreatedBy: "root",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	cert := store.NodeCert{NodeID: "n1", Serial: "s1", SPKI: "sha256:x", NotAfter: now.Add(24 * time.Hour), IssuedAt: now}
	if _, err := c.EnrollNode(ctx, "h1", cert, now.Add(2*time.Hour)); !errors.Is(err, store.ErrTokenInvalid) {
		t.Fatalf("expired token: %v", err)
	}
	labels, err := c.EnrollNode(ctx, "h1", cert, now)
	if err != nil || labels["zone"] != "a" {
		t.Fatalf("enrol: %v %v", labels, err)
	}
	if _, err := c.EnrollNode(ctx, "h1", store.NodeCert{NodeID: "n2", Serial: "s2"}, now); !errors.Is(err, store.ErrTokenInvalid) {
		t.Fatalf("reused token: %v", err)
	}
	if err := c.CreateEnrollToken(ctx, store.EnrollToken{Hash: "h2", CreatedBy: "root", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EnrollNode(ctx, "h2", cert, now); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("enrolled twice: %v", err)
	}
	got, err := c.NodeCert(ctx, "n1")
	if err != nil || got.Serial != "s1" || got.Labels["zone"] != "a" {
		t.Fatalf("node cert: %+v %v", got, err)
	}
	renewed := cert
	renewed.Serial = "s1b"
	if err := c.RenewNodeCert(ctx, "old", renewed); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("renew with a stale serial: %v", err)
	}
	if err := c.RenewNodeCert(ctx, "s1", renewed); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteNode(ctx, "n1", "alice"); err != nil {
		t.Fatalf("remove an enrolled, unregistered node: %v", err)
	}
	if _, err := c.NodeCert(ctx, "n1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("certificate of a removed node: %v", err)
	}
	if err := c.RenewNodeCert(ctx, "s1b", renewed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("renew of a removed node: %v", err)
	}
	if _, err := c.EnrollNode(ctx, "h2", cert, now); err != nil {
		t.Fatalf("re-enrol after removal: %v", err)
	}
	if err := c.CreateAPIToken(ctx, store.APIToken{Hash: "a1", Name: "olga", Role: "viewer", CreatedBy: "root", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if at, err := c.APIToken(ctx, "a1"); err != nil || at.Name != "olga" || at.Role != "viewer" {
		t.Fatalf("api token: %+v %v", at, err)
	}
	if _, err := c.APIToken(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown api token: %v", err)
	}
	if err := c.BreakGlass(ctx, "nope", "root", "why", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("break-glass of no rollout: %v", err)
	}
	v, err := st.VerifyAudit(ctx)
	if err != nil || !v.OK {
		t.Fatalf("audit: %+v %v", v, err)
	}
	es, _ := st.ListAudit(ctx, 0, 100, "")
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
		if string(e.Detail) != "" && (strings.Contains(string(e.Detail), `"h1"`) || strings.Contains(string(e.Detail), `"a1"`)) {
			t.Errorf("audit entry %s holds a token hash: %s", e.Action, e.Detail)
		}
	}
	want := []string{"token.create", "node.enroll", "token.create", "node.renew", "node.delete", "node.enroll", "token.create"}
	if len(actions) != len(want) {
		t.Fatalf("audit actions %v, want %v", actions, want)
	}
}
