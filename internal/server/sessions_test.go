package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/store"
)

// TestSessions: a dashboard session is a token of its own, never the
// user's; it lasts its lifetime, ends at sign-out on every server, ends
// with the API token it was opened with, and cannot open another.
func TestSessions(t *testing.T) {
	cfg := testConfig(t)
	cfg.SessionTTL = time.Hour
	st, err := store.Open(context.Background(), filepath.Join(cfg.DataDir, "drover.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clk := &testClock{t: time.Now()}
	s, err := New(cfg, Deps{Store: st, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	s2, err := New(cfg, Deps{Store: st, Now: clk.Now}) // a second server on the same store
	if err != nil {
		t.Fatal(err)
	}
	h2 := s2.Handler()
	open := func(tok string) api.Session {
		t.Helper()
		status, ae, body := call(t, h, "POST", "/v1/sessions", tok, nil)
		if status != 201 {
			t.Fatalf("open session: %d %v", status, ae)
		}
		var sess api.Session
		_ = json.Unmarshal(body, &sess)
		if !strings.HasPrefix(sess.Token, api.SessionPrefix) || sess.Token == tok || !sess.ExpiresAt.Equal(clk.Now().Add(time.Hour)) {
			t.Fatalf("session: %+v", sess)
		}
		return sess
	}
	whoami := func(h http.Handler, tok string) int {
		status, _, _ := call(t, h, "GET", "/v1/whoami", tok, nil)
		return status
	}

	sess := open(vera)
	if whoami(h, sess.Token) != 200 || whoami(h2, sess.Token) != 200 {
		t.Fatal("session refused")
	}
	if status, _, _ := call(t, h, "POST", "/v1/sessions", sess.Token, nil); status != 403 {
		t.Fatalf("a session opening another: %d", status)
	}
	if status, _, _ := call(t, h, "DELETE", "/v1/sessions/current", vera, nil); status != 400 {
		t.Fatalf("sign-out without a session: %d", status)
	}
	if status, ae, _ := call(t, h, "DELETE", "/v1/sessions/current", sess.Token, nil); status != 204 {
		t.Fatalf("sign-out: %d %v", status, ae)
	}
	if whoami(h, sess.Token) != 401 || whoami(h2, sess.Token) != 401 {
		t.Fatal("a signed-out session still works")
	}

	// Lifetime.
	sess = open(vera)
	clk.Add(time.Hour)
	if whoami(h, sess.Token) != 401 {
		t.Fatal("an expired session still works")
	}

	// A session opened with an API token ends with the token.
	status, ae, body := call(t, h, "POST", "/v1/tokens", root, api.TokenRequest{Kind: api.TokenAPI, User: "pat", Role: "viewer"})
	if status != 201 {
		t.Fatalf("token: %d %v", status, ae)
	}
	var pat api.TokenResponse
	_ = json.Unmarshal(body, &pat)
	sess = open(pat.Token)
	if whoami(h, sess.Token) != 200 {
		t.Fatal("session of an API token refused")
	}
	if status, ae, _ := call(t, h, "DELETE", "/v1/tokens/"+pat.ID, root, nil); status != 204 {
		t.Fatalf("revoke: %d %v", status, ae)
	}
	if whoami(h, sess.Token) != 401 {
		t.Fatal("a session outlived the revoked token it was opened with")
	}

	audit, _ := st.ListAudit(context.Background(), 0, 1000, "")
	var opened, closed int
	for _, e := range audit {
		switch e.Action {
		case "session.open":
			opened++
		case "session.close":
			closed++
		}
		if strings.Contains(string(e.Detail), api.SessionPrefix) {
			t.Fatalf("audit holds a session token: %+v", e)
		}
	}
	if opened != 3 || closed != 1 {
		t.Fatalf("audited %d session.open, %d session.close; want 3, 1", opened, closed)
	}
}

// TestTokenIdentity: an identity is unique across configured users and
// API tokens; a token never gives an existing user another role; TTLs
// must be positive.
func TestTokenIdentity(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	create := func(user, role, ttl string) (int, api.Error, api.TokenResponse) {
		t.Helper()
		status, ae, body := call(t, h, "POST", "/v1/tokens", root, api.TokenRequest{Kind: api.TokenAPI, User: user, Role: role, TTL: ttl})
		var out api.TokenResponse
		_ = json.Unmarshal(body, &out)
		return status, ae, out
	}
	if st, ae, _ := create("bob", "admin", ""); st != 409 || !strings.Contains(ae.Error, "user bob is configured on the server (role approver)") {
		t.Fatalf("a token for configured bob: %d %v", st, ae)
	}
	for _, ttl := range []string{"-1h", "0s", "soon"} {
		if st, ae, _ := create("olga", "operator", ttl); st != 400 || !strings.Contains(ae.Error, "positive duration") {
			t.Fatalf("ttl %s: %d %v", ttl, st, ae)
		}
	}
	if st, _, _ := create("agent:n1", "operator", ""); st != 400 {
		t.Fatalf("an agent's name: %d", st)
	}
	st, ae, _ := create("olga", "operator", "")
	if st != 201 {
		t.Fatalf("olga: %d %v", st, ae)
	}
	if st, ae, _ := create("olga", "admin", ""); st != 409 || !strings.Contains(ae.Error, "already has role operator") {
		t.Fatalf("olga as admin: %d %v", st, ae)
	}
	if st, ae, _ := create("olga", "operator", "1h"); st != 201 {
		t.Fatalf("a second operator token for olga: %d %v", st, ae)
	}
	// Once her tokens are revoked (or expired), the name may take another role.
	ts, _ := s.sec.creds.ListAPITokens(context.Background())
	for _, tk := range ts {
		if tk.Name == "olga" {
			if st, ae, _ := call(t, h, "DELETE", "/v1/tokens/"+tk.ID, root, nil); st != 204 {
				t.Fatalf("revoke %s: %d %v", tk.ID, st, ae)
			}
		}
	}
	if st, ae, _ := create("olga", "admin", ""); st != 201 {
		t.Fatalf("olga as admin after revoking: %d %v", st, ae)
	}
}

// TestConfigTokensAndTransport: configured tokens must be long, varied
// and unique; plain HTTP is refused on addresses that are not loopback
// unless forced; metrics settings are checked.
func TestConfigTokensAndTransport(t *testing.T) {
	cfg := testConfig(t)
	cfg.Users = append(cfg.Users, User{Name: "dup", Role: RoleViewer, Token: cfg.Users[0].Token},
		User{Name: "short", Role: RoleViewer, Token: "0123456789abcdef"},
		User{Name: "dull", Role: RoleViewer, Token: strings.Repeat("ab", 15)},
		User{Name: "agent:x", Role: RoleViewer, Token: "agentx-token-0123456789"})
	cfg.Listen = "0.0.0.0:7070"
	cfg.Metrics.Auth = "open"
	err := cfg.Validate()
	for _, want := range []string{"users[4] dup: token is also alice's", "users[5] short: token must be at least 22 characters",
		"users[6] dull: token has only 2 distinct characters", `users[7]: name "agent:x" is reserved`,
		`listen "0.0.0.0:7070" without TLS`, `metrics.auth "open": want token or none`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in:\n%v", want, err)
		}
	}
	cfg = testConfig(t)
	cfg.Listen = "0.0.0.0:7070"
	cfg.InsecurePlainHTTP = true
	if err := cfg.Validate(); err != nil {
		t.Errorf("forced plain HTTP: %v", err)
	}
	cfg.InsecurePlainHTTP, cfg.TLS = false, true
	if err := cfg.Validate(); err != nil {
		t.Errorf("TLS on all addresses: %v", err)
	}
}

// TestMetricsAccess: /metrics needs a token unless metrics.auth is none;
// with metrics.listen it is served there alone.
func TestMetricsAccess(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	if st, _, _ := call(t, h, "GET", "/metrics", "", nil); st != 401 {
		t.Fatalf("metrics without a token: %d", st)
	}
	if st, _, body := call(t, h, "GET", "/metrics", vera, nil); st != 200 || !strings.Contains(string(body), "drover_leader") {
		t.Fatalf("metrics as a viewer: %d", st)
	}

	cfg := testConfig(t)
	cfg.Metrics = MetricsConfig{Auth: MetricsAuthNone, Listen: "127.0.0.1:0"}
	st, err := store.Open(context.Background(), filepath.Join(cfg.DataDir, "drover.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err = New(cfg, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if st, _, _ := call(t, s.Handler(), "GET", "/metrics", vera, nil); st == 200 {
		t.Fatal("metrics served on the API listener although metrics.listen is set")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := make(chan string, 1)
	stop, err := s.serveMetrics(ctx, func(a string) { addr <- a })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + <-addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "drover_leader") {
		t.Fatalf("metrics listener: %d", resp.StatusCode)
	}
}
