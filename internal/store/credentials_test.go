package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/store/storetest"
)

// TestCredentials runs the credentials contract on SQLite and on a real
// PostgreSQL (storetest.NewPostgres).
func TestCredentials(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testCredentials(t, openSQLite(t)) })
	t.Run("postgres", func(t *testing.T) {
		s, err := store.Open(context.Background(), storetest.NewPostgres(t).CreateDB(t), nil)
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
	a1 := strings.Repeat("a1", 32) // hex SHA-256 of a token
	if err := c.CreateAPIToken(ctx, store.APIToken{Hash: a1, Name: "olga", Role: "viewer", CreatedBy: "root", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if at, err := c.APIToken(ctx, a1); err != nil || at.Name != "olga" || at.Role != "viewer" || at.ID != a1[:12] {
		t.Fatalf("api token: %+v %v", at, err)
	}
	if _, err := c.APIToken(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown api token: %v", err)
	}
	testAPITokenRevocation(t, c, a1, now)
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
		if string(e.Detail) != "" && (strings.Contains(string(e.Detail), `"h1"`) || strings.Contains(string(e.Detail), a1) ||
			strings.Contains(string(e.Detail), hashP) || strings.Contains(string(e.Detail), hashR)) {
			t.Errorf("audit entry %s holds a token hash: %s", e.Action, e.Detail)
		}
	}
	want := []string{"token.create", "node.enroll", "token.create", "node.renew", "node.delete", "node.enroll", "token.create",
		"token.create", "token.create", "token.create", "token.revoke", "token.revoke"}
	if strings.Join(actions, " ") != strings.Join(want, " ") {
		t.Fatalf("audit actions %v, want %v", actions, want)
	}
	last := es[len(es)-1]
	if last.Actor != "root" || last.Object != "user/rita" || !strings.Contains(string(last.Detail), `"id":"`+hashR[:12]+`"`) {
		t.Fatalf("token.revoke entry: %+v %s", last, last.Detail)
	}
}

// Hashes of API tokens for the revocation tests: P and Q share their ID
// (the first 12 hex digits), R does not.
var (
	hashP = "abcdef012345" + strings.Repeat("1", 52)
	hashQ = "abcdef012345" + strings.Repeat("2", 52)
	hashR = "0123456789ab" + strings.Repeat("c", 52)
)

// testAPITokenRevocation: tokens are listed by ID without their hashes;
// revocation by ID (or a longer prefix of the hash) stops a token from
// authenticating, refuses an ambiguous ID, and is a no-op the second time.
func testAPITokenRevocation(t *testing.T, c store.Credentials, a1 string, now time.Time) {
	t.Helper()
	ctx := context.Background()
	for i, at := range []store.APIToken{
		{Hash: hashP, Name: "pat", Role: "operator", ExpiresAt: now.Add(time.Hour)},
		{Hash: hashQ, Name: "quinn", Role: "viewer"},
		{Hash: hashR, Name: "rita", Role: "admin"},
	} {
		at.CreatedBy, at.CreatedAt = "root", now.Add(time.Duration(i+1)*time.Second)
		if err := c.CreateAPIToken(ctx, at); err != nil {
			t.Fatal(err)
		}
	}
	list, err := c.ListAPITokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, at := range list {
		if at.Hash != "" {
			t.Errorf("listed token %s has its hash", at.ID)
		}
		got = append(got, at.ID+" "+at.Name+" "+at.Role)
	}
	if want := []string{a1[:12] + " olga viewer", "abcdef012345 pat operator", "abcdef012345 quinn viewer", "0123456789ab rita admin"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("listed %q, want %q", got, want)
	}
	if p := list[1]; !p.ExpiresAt.Equal(now.Add(time.Hour)) || !p.CreatedAt.Equal(now.Add(time.Second)) || p.CreatedBy != "root" || !p.RevokedAt.IsZero() {
		t.Fatalf("listed token: %+v", p)
	}

	for _, id := range []string{"ffffffffffff", "abcdef", "ABCDEF012345", "abcdef01234%", "abcdef01234_", hashP + "0"} {
		if err := c.RevokeAPIToken(ctx, id, "root", now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoke %q: %v, want ErrNotFound", id, err)
		}
	}
	if err := c.RevokeAPIToken(ctx, "abcdef012345", "root", now); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("revoke an ID naming two tokens: %v, want ErrConflict", err)
	}
	for _, h := range []string{hashP, hashQ} {
		if _, err := c.APIToken(ctx, h); err != nil {
			t.Fatalf("token %s after a refused ambiguous revocation: %v", h[:13], err)
		}
	}
	if err := c.RevokeAPIToken(ctx, hashP[:13], "root", now); err != nil {
		t.Fatalf("revoke by a longer prefix: %v", err)
	}
	if _, err := c.APIToken(ctx, hashP); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoked token authenticates: %v", err)
	}
	if _, err := c.APIToken(ctx, hashQ); err != nil {
		t.Fatalf("the other token of the ID: %v", err)
	}

	if err := c.RevokeAPIToken(ctx, "0123456789ab", "root", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeAPIToken(ctx, "0123456789ab", "eve", now.Add(2*time.Minute)); err != nil {
		t.Fatalf("revoke twice: %v, want a no-op", err)
	}
	if _, err := c.APIToken(ctx, hashR); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoked token authenticates: %v", err)
	}
	list, err = c.ListAPITokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := list[3]; r.Name != "rita" || !r.RevokedAt.Equal(now.Add(time.Minute)) || r.RevokedBy != "root" {
		t.Fatalf("revoked token listed as %+v, want revoked at %s by root (the second revocation changes nothing)", r, now.Add(time.Minute))
	}
	if p, q := list[1], list[2]; p.RevokedBy != "root" || !p.RevokedAt.Equal(now) || !q.RevokedAt.IsZero() {
		t.Fatalf("listed %+v and %+v", p, q)
	}
}

// TestSessionsAndRoles runs the dashboard-session and one-role-per-user
// contract on SQLite and on a real PostgreSQL.
func TestSessionsAndRoles(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testSessionsAndRoles(t, openSQLite(t)) })
	t.Run("postgres", func(t *testing.T) {
		s, err := store.Open(context.Background(), storetest.NewPostgres(t).CreateDB(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		testSessionsAndRoles(t, s)
	})
}

func testSessionsAndRoles(t *testing.T, st store.Store) {
	ctx := context.Background()
	c, _ := store.AsCredentials(st)
	now := time.Unix(1_800_000_000, 0).UTC()
	sess := store.Session{Hash: "s1", Name: "vera", Role: "viewer", Source: "config:vera", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := c.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	got, err := c.Session(ctx, "s1")
	if err != nil || got.Name != "vera" || got.Role != "viewer" || got.Source != "config:vera" || !got.ExpiresAt.Equal(sess.ExpiresAt) {
		t.Fatalf("session: %+v %v", got, err)
	}
	if err := c.RevokeSession(ctx, "s1", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Session(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoked session: %v", err)
	}
	if err := c.RevokeSession(ctx, "s1", now.Add(2*time.Minute)); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	// Opening a session drops the expired ones.
	if err := c.CreateSession(ctx, store.Session{Hash: "s2", Name: "vera", Role: "viewer", Source: "config:vera", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateSession(ctx, store.Session{Hash: "s3", Name: "vera", Role: "viewer", Source: "config:vera", CreatedAt: now.Add(time.Hour), ExpiresAt: now.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Session(ctx, "s2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session kept: %v", err)
	}
	es, _ := st.ListAudit(ctx, 0, 100, "")
	var opens, closes int
	for _, e := range es {
		switch e.Action {
		case "session.open":
			opens++
		case "session.close":
			closes++
		}
	}
	if opens != 3 || closes != 1 {
		t.Fatalf("audit: %d session.open, %d session.close", opens, closes)
	}

	// One identity, one role among active tokens.
	tok := func(hash, role string, expires time.Time) error {
		return c.CreateAPIToken(ctx, store.APIToken{Hash: hash, Name: "olga", Role: role, CreatedBy: "root", CreatedAt: now, ExpiresAt: expires})
	}
	t1, t2, t3 := strings.Repeat("a1", 32), strings.Repeat("b2", 32), strings.Repeat("c3", 32)
	if err := tok(t1, "operator", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := tok(t2, "admin", time.Time{}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a second role for olga: %v", err)
	}
	if err := tok(t3, "operator", time.Time{}); err != nil {
		t.Fatalf("the same role again: %v", err)
	}
	if err := c.RevokeAPIToken(ctx, store.APITokenID(t3), "root", now); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateAPIToken(ctx, store.APIToken{Hash: strings.Repeat("d4", 32), Name: "olga", Role: "admin", CreatedBy: "root", CreatedAt: now.Add(2 * time.Hour)}); err != nil {
		t.Fatalf("a new role once the others are revoked or expired: %v", err)
	}
}
