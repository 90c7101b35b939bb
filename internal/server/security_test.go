package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/store"
)

const root = "root-token-0123456789a" // admin in testConfig

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// tlsEnv is a TLS server with its CA, on a settable clock, and no
// shared agent token: agents must enrol.
type tlsEnv struct {
	s     *Server
	h     http.Handler
	ts    *httptest.Server
	clock *testClock
}

func newTLSEnv(t *testing.T) *tlsEnv {
	t.Helper()
	return newTLSEnvWith(t, func(*Config) {})
}

// newTLSEnvWith is newTLSEnv with its configuration changed by edit.
func newTLSEnvWith(t *testing.T, edit func(*Config)) *tlsEnv {
	t.Helper()
	cfg := testConfig(t)
	cfg.TLS, cfg.AgentToken = true, ""
	edit(&cfg)
	st, err := store.Open(context.Background(), filepath.Join(cfg.DataDir, "drover.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &testClock{t: time.Now()}
	s, err := New(cfg, Deps{Store: st, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	ts := httptest.NewUnstartedServer(h)
	ts.TLS = s.TLSConfig()
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return &tlsEnv{s: s, h: h, ts: ts, clock: clk}
}

// token creates an enrolment token as the admin.
func (e *tlsEnv) token(t *testing.T, ttl string, labels map[string]string) string {
	t.Helper()
	status, ae, body := call(t, e.h, "POST", "/v1/tokens", root, api.TokenRequest{Kind: api.TokenEnroll, TTL: ttl, Labels: labels})
	if status != 201 {
		t.Fatalf("create token: %d %v", status, ae)
	}
	var out api.TokenResponse
	_ = json.Unmarshal(body, &out)
	if out.CAHash != e.s.CAHash() || !strings.HasPrefix(out.Token, prefixEnroll) {
		t.Fatalf("token answer: %+v", out)
	}
	return out.Token
}

func (e *tlsEnv) enrol(t *testing.T, node, tok, hash, dir string) (*agent.Identity, error) {
	t.Helper()
	return agent.LoadOrEnroll(context.Background(), agent.IdentityOptions{ServerURL: e.ts.URL, StateDir: dir,
		NodeID: node, EnrollToken: tok, CAHash: hash})
}

// agentCall sends an agent-channel request with the identity's client.
func (e *tlsEnv) agentCall(t *testing.T, id *agent.Identity, path string, body any) (int, api.Error) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", e.ts.URL+path, strings.NewReader(string(raw)))
	req.Header.Set(api.HeaderProtocol, "1")
	resp, err := id.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	var ae api.Error
	_ = json.NewDecoder(resp.Body).Decode(&ae)
	return resp.StatusCode, ae
}

func register(node string) api.RegisterRequest {
	return api.RegisterRequest{NodeID: node, Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}}}
}

// nothingRecorded checks that a refused enrolment left no certificate,
// no node and no identity on the agent.
func (e *tlsEnv) nothingRecorded(t *testing.T, node, dir string) {
	t.Helper()
	if _, err := e.s.sec.creds.NodeCert(context.Background(), node); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("node %s has a certificate after a refused enrolment: %v", node, err)
	}
	if _, err := e.s.st.GetNode(context.Background(), node); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("node %s exists after a refused enrolment: %v", node, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tls", "identity.pem")); err == nil {
		t.Errorf("agent %s kept an identity after a refused enrolment", node)
	}
}

func wantRefused(t *testing.T, err error, status int, text string) {
	t.Helper()
	var se *agent.ServerError
	if err == nil {
		t.Fatalf("accepted; want refusal %d %q", status, text)
	}
	if status != 0 && (!errors.As(err, &se) || se.Status != status) {
		t.Fatalf("got %v; want status %d", err, status)
	}
	if !strings.Contains(err.Error(), text) {
		t.Fatalf("error %q does not say %q", err, text)
	}
}

// TestEnrolment: an agent enrols with a single-use token, pins the CA by
// its hash, is identified by its certificate alone, renews it, and each
// misuse is refused with a clear error and nothing recorded.
func TestEnrolment(t *testing.T) {
	e := newTLSEnv(t)
	ctx := context.Background()
	dirA := t.TempDir()
	a, err := e.enrol(t, "node-a", e.token(t, "1h", map[string]string{"zone": "a"}), e.s.CAHash(), dirA)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dirA, "tls", "identity.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v %v", fi, err)
	}
	// The token's labels bind the node: its own claim of zone b is overridden.
	req := register("node-a")
	req.Labels = map[string]string{"zone": "b", "tier": "web"}
	if st, ae := e.agentCall(t, a, api.PathRegister, req); st != 200 {
		t.Fatalf("register: %d %v", st, ae)
	}
	n, err := e.s.st.GetNode(ctx, "node-a")
	if err != nil || n.Labels["zone"] != "a" || n.Labels["tier"] != "web" {
		t.Fatalf("node-a: %+v %v", n, err)
	}

	t.Run("certificate of node A reporting for node B", func(t *testing.T) {
		st, ae := e.agentCall(t, a, api.PathReport, api.StepReport{NodeID: "node-b", StepID: "r/node-b/apply/1", Phase: "running"})
		if st != 403 || !strings.Contains(ae.Error, "node-a may not act for node node-b") {
			t.Fatalf("got %d %v", st, ae)
		}
		st, ae = e.agentCall(t, a, api.PathRegister, register("node-b"))
		if st != 403 {
			t.Fatalf("register as B: %d %v", st, ae)
		}
		if _, err := e.s.st.GetNode(ctx, "node-b"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("node-b recorded: %v", err)
		}
	})
	t.Run("reused token", func(t *testing.T) {
		tok := e.token(t, "1h", nil)
		if _, err := e.enrol(t, "node-c", tok, e.s.CAHash(), t.TempDir()); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		_, err := e.enrol(t, "node-d", tok, e.s.CAHash(), dir)
		wantRefused(t, err, 401, "token already used")
		e.nothingRecorded(t, "node-d", dir)
	})
	t.Run("expired token", func(t *testing.T) {
		tok := e.token(t, "1m", nil)
		e.clock.Add(2 * time.Minute)
		dir := t.TempDir()
		_, err := e.enrol(t, "node-e", tok, e.s.CAHash(), dir)
		wantRefused(t, err, 401, "token expired")
		e.nothingRecorded(t, "node-e", dir)
	})
	t.Run("unknown token", func(t *testing.T) {
		dir := t.TempDir()
		_, err := e.enrol(t, "node-f", "dre_not-a-token", e.s.CAHash(), dir)
		wantRefused(t, err, 401, "unknown token")
		e.nothingRecorded(t, "node-f", dir)
	})
	t.Run("wrong CA hash", func(t *testing.T) {
		tok := e.token(t, "1h", nil)
		other := sha256.Sum256([]byte("another CA"))
		dir := t.TempDir()
		_, err := e.enrol(t, "node-g", tok, "sha256:"+hex.EncodeToString(other[:]), dir)
		wantRefused(t, err, 0, "does not match the pinned CA hash")
		e.nothingRecorded(t, "node-g", dir)
		// The token never reached the server: it still works.
		if _, err := e.enrol(t, "node-g", tok, e.s.CAHash(), dir); err != nil {
			t.Fatalf("right hash after a wrong one: %v", err)
		}
	})
	t.Run("re-enrolling an existing node", func(t *testing.T) {
		dir := t.TempDir()
		_, err := e.enrol(t, "node-a", e.token(t, "1h", nil), e.s.CAHash(), dir)
		wantRefused(t, err, 409, "already enrolled")
		if st, ae := e.agentCall(t, a, api.PathRegister, register("node-a")); st != 200 {
			t.Fatalf("the enrolled node lost its identity: %d %v", st, ae)
		}
	})
	t.Run("renewal replaces the certificate", func(t *testing.T) {
		dir := t.TempDir()
		c, err := e.enrol(t, "node-h", e.token(t, "1h", nil), e.s.CAHash(), dir)
		if err != nil {
			t.Fatal(err)
		}
		old, err := agent.LoadOrEnroll(ctx, agent.IdentityOptions{ServerURL: e.ts.URL, StateDir: dir, NodeID: "node-h"})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		if st, ae := e.agentCall(t, c, api.PathRegister, register("node-h")); st != 200 {
			t.Fatalf("renewed certificate: %d %v", st, ae)
		}
		e.s.forgetCert("node-h")
		if st, ae := e.agentCall(t, old, api.PathRegister, register("node-h")); st != 401 || !strings.Contains(ae.Error, "not its current one") {
			t.Fatalf("replaced certificate: %d %v", st, ae)
		}
	})
	t.Run("removed node", func(t *testing.T) {
		dir := t.TempDir()
		c, err := e.enrol(t, "node-r", e.token(t, "1h", nil), e.s.CAHash(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if st, ae := e.agentCall(t, c, api.PathRegister, register("node-r")); st != 200 {
			t.Fatalf("register: %d %v", st, ae)
		}
		if st, ae, _ := call(t, e.h, "DELETE", "/v1/nodes/node-r", vera, nil); st != 403 {
			t.Fatalf("viewer removing: %d %v", st, ae)
		}
		if st, ae, _ := call(t, e.h, "DELETE", "/v1/nodes/node-r", alice, nil); st != 204 {
			t.Fatalf("remove: %d %v", st, ae)
		}
		st, ae := e.agentCall(t, c, api.PathPoll, api.PollRequest{NodeID: "node-r"})
		if st != 401 || !strings.Contains(ae.Error, "not enrolled") {
			t.Fatalf("removed node polling: %d %v", st, ae)
		}
		if _, err := e.s.st.GetNode(ctx, "node-r"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("removed node recorded again: %v", err)
		}
		audit, _ := e.s.st.ListAudit(ctx, 0, 1000, "")
		if !hasAudit(audit, "node.delete", "node/node-r", "alice") {
			t.Fatal("removal not audited")
		}
		// Removed, it may enrol again with a new token and a new key.
		if _, err := e.enrol(t, "node-r", e.token(t, "1h", nil), e.s.CAHash(), t.TempDir()); err != nil {
			t.Fatalf("re-enrol after removal: %v", err)
		}
	})
	t.Run("certificate past expiry", func(t *testing.T) {
		e.clock.Add(DefaultClientCertTTL + time.Minute)
		st, ae := e.agentCall(t, a, api.PathRegister, register("node-a"))
		if st != 401 || !strings.Contains(ae.Error, "expired") {
			t.Fatalf("expired certificate: %d %v", st, ae)
		}
	})
}

func hasAudit(es []store.AuditEntry, action, object, actor string) bool {
	for _, e := range es {
		if e.Action == action && e.Object == object && e.Actor == actor {
			return true
		}
	}
	return false
}

// routeRoles is the role each REST route needs: the table of
// docs/security.md. Every registered route must be listed.
var routeRoles = map[string]Role{
	"GET /v1/nodes":                        RoleViewer,
	"GET /v1/nodes/{id}":                   RoleViewer,
	"GET /v1/nodes/{id}/diff":              RoleViewer,
	"GET /v1/nodes/{id}/evidence":          RoleViewer,
	"POST /v1/nodes/{id}/evidence":         RoleOperator,
	"GET /v1/evidence/{id}":                RoleViewer,
	"GET /v1/evidence-requests/{id}":       RoleViewer,
	"PUT /v1/nodes/{id}/labels":            RoleOperator,
	"DELETE /v1/nodes/{id}":                RoleOperator,
	"POST /v1/plans/validate":              RoleViewer,
	"POST /v1/plans/dry-run":               RoleViewer,
	"POST /v1/rollouts":                    RoleOperator,
	"GET /v1/rollouts":                     RoleViewer,
	"GET /v1/rollouts/{id}":                RoleViewer,
	"GET /v1/history":                      RoleViewer,
	"POST /v1/rollouts/{id}/approve":       RoleApprover,
	"POST /v1/rollouts/{id}/pause":         RoleOperator,
	"POST /v1/rollouts/{id}/resume":        RoleOperator,
	"POST /v1/rollouts/{id}/abort":         RoleOperator,
	"POST /v1/rollouts/{id}/rollback":      RoleOperator,
	"POST /v1/rollouts/{id}/resolve":       RoleOperator,
	"POST /v1/rollouts/{id}/stop":          RoleOperator,
	"GET /v1/line":                         RoleViewer,
	"POST /v1/line/stop":                   RoleOperator,
	"POST /v1/line/lift":                   RoleAdmin,
	"GET /v1/webhooks":                     RoleAdmin,
	"POST /v1/webhooks/{name}/test":        RoleAdmin,
	"POST /v1/rollouts/{id}/break-glass":   RoleAdmin,
	"GET /v1/whoami":                       RoleViewer,
	"GET /v1/events":                       RoleViewer,
	"GET /v1/rollouts/{id}/events":         RoleViewer,
	"GET /v1/rollouts/{id}/preflight":      RoleViewer,
	"GET /v1/audit":                        RoleViewer,
	"GET /v1/audit/verify":                 RoleViewer,
	"GET /v1/audit/key":                    RoleViewer,
	"GET /v1/audit/checkpoint":             RoleViewer,
	"GET /v1/audit/proof":                  RoleViewer,
	"GET /v1/audit/proof/{seq}":            RoleViewer,
	"POST /v1/tokens":                      RoleAdmin,
	"GET /v1/tokens":                       RoleAdmin,
	"DELETE /v1/tokens/{id}":               RoleAdmin,
	"POST /v1/sessions":                    RoleViewer,
	"DELETE /v1/sessions/current":          RoleViewer,
	"GET /v1/budgets":                      RoleViewer,
	"POST /v1/inventory":                   RoleOperator,
	"GET /v1/inventory":                    RoleViewer,
	"POST /v1/inventory/tokens":            RoleAdmin,
	"GET /v1/budgets/{name}":               RoleViewer,
	"POST /v1/budgets":                     RoleOperator,
	"PUT /v1/budgets/{name}":               RoleAdmin,
	"DELETE /v1/budgets/{name}":            RoleAdmin,
	"GET /v1/freezes":                      RoleViewer,
	"GET /v1/freezes/{name}":               RoleViewer,
	"POST /v1/freezes":                     RoleOperator,
	"POST /v1/advisories":                  RoleOperator,
	"GET /v1/advisories":                   RoleViewer,
	"GET /v1/advisories/{id}":              RoleViewer,
	"GET /v1/exposure":                     RoleViewer,
	"PUT /v1/baselines":                    RoleOperator,
	"POST /v1/baselines":                   RoleOperator,
	"GET /v1/baselines":                    RoleViewer,
	"GET /v1/baselines/{name}":             RoleViewer,
	"GET /v1/baselines/{name}/compliance":  RoleViewer,
	"POST /v1/baselines/{name}/exemptions": RoleOperator,
	"POST /v1/baselines/{name}/remediate":  RoleOperator,
	"GET /v1/baselines/{name}/exemptions":  RoleViewer,
	"GET /v1/drift":                        RoleViewer,
	"PUT /v1/freezes/{name}":               RoleAdmin,
	"DELETE /v1/freezes/{name}":            RoleAdmin,
	"GET /v1/exposure/summary":             RoleViewer,

	// FleetLock (fleetlock.go): loosens the fleet budgets.
	"POST /v1/nodes/{id}/fleetlock/release": RoleAdmin,
}

// agentOnly are the agent channel's routes: agents only (the node's
// certificate, or the shared token in the insecure test mode).
var agentOnly = map[string]bool{
	"POST " + api.PathRegister:  true,
	"POST " + api.PathPoll:      true,
	"POST " + api.PathReport:    true,
	"POST " + api.PathRenew:     true,
	"POST " + api.PathPreflight: true,
	"POST " + api.PathEvidence:  true,
}

// public are the routes that need no credentials: enrolment (the
// enrolment token in the body is the credential) and the API's own
// description.
var public = map[string]bool{
	"POST " + api.PathEnroll: true,
	"GET /v1/openapi.json":   true,
}

// anyone are the routes any authenticated caller, user or agent, may
// use: the signed artifact repository and the metrics.
var anyone = map[string]bool{
	pathArtifactMetadata: true,
	pathArtifactTargets:  true,
	pathMetrics:          true,
}

// TestRolesEveryRoute sends every registered REST route as every role
// (and as nobody, and as an agent): the route refuses exactly the roles
// the table says, with 403, and never 401 a valid user.
func TestRolesEveryRoute(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	users := map[Role]string{RoleViewer: vera, RoleOperator: alice, RoleApprover: bob, RoleAdmin: root}
	if len(s.m.routes) == 0 {
		t.Fatal("no routes registered")
	}
	seen := map[string]bool{}
	for i, pattern := range s.m.routes {
		method, path, _ := strings.Cut(pattern, " ")
		path = strings.NewReplacer("{id}", "nope", "{seq}", "1", "{file}", "1.root.json").Replace(path)
		send := func(tok, addr string, hdr ...string) int {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			req := httptest.NewRequestWithContext(ctx, method, path, strings.NewReader("{}"))
			req.RemoteAddr = addr
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			for j := 0; j+1 < len(hdr); j += 2 {
				req.Header.Set(hdr[j], hdr[j+1])
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec.Code
		}
		switch {
		case public[pattern]:
			seen[pattern] = true
			if got := send("", fmt.Sprintf("198.51.100.%d:1", i%200+1)); got == 401 || got == 403 {
				t.Errorf("public route %s without a token: %d", pattern, got)
			}
			continue
		case anyone[pattern]:
			seen[pattern] = true
			if got := send("", fmt.Sprintf("198.51.100.%d:1", i%200+1)); got != 401 {
				t.Errorf("route %s without a token: %d, want 401", pattern, got)
			}
			if got := send(vera, fmt.Sprintf("192.0.2.%d:1", i%200+1)); got == 401 || got == 403 {
				t.Errorf("route %s as a viewer: %d", pattern, got)
			}
			if got := send("agent-token-0123456789", "203.0.113.1:1", "Drover-Node", "deb-a"); got == 401 || got == 403 {
				t.Errorf("route %s as an agent: %d", pattern, got)
			}
			continue
		case agentOnly[pattern]:
			seen[pattern] = true
			for role, tok := range users {
				if got := send(tok, fmt.Sprintf("192.0.2.%d:1", i%200+1)); got != 403 {
					t.Errorf("agent route %s as %s: %d, want 403", pattern, role, got)
				}
			}
			if got := send("", fmt.Sprintf("198.51.100.%d:1", i%200+1)); got != 401 {
				t.Errorf("agent route %s without a token: %d, want 401", pattern, got)
			}
			continue
		}
		need, ok := routeRoles[pattern]
		if !ok {
			t.Errorf("route %s is not in the role table (routeRoles and docs/security.md)", pattern)
			continue
		}
		seen[pattern] = true
		for role, tok := range users {
			got := send(tok, fmt.Sprintf("192.0.2.%d:1", i%200+1))
			switch {
			case !allowed(role, need) && got != 403:
				t.Errorf("%s as %s: %d, want 403", pattern, role, got)
			case allowed(role, need) && (got == 403 || got == 401):
				t.Errorf("%s as %s: %d, want allowed", pattern, role, got)
			}
		}
		if got := send("", fmt.Sprintf("198.51.100.%d:1", i%200+1)); got != 401 {
			t.Errorf("%s without a token: %d, want 401", pattern, got)
		}
		if got := send("agent-token-0123456789", "203.0.113.1:1", "Drover-Node", "deb-a"); got != 403 {
			t.Errorf("%s as an agent: %d, want 403", pattern, got)
		}
	}
	for _, table := range []map[string]bool{agentOnly, public, anyone} {
		for p := range table {
			if !seen[p] {
				t.Errorf("route table lists %s, which is not registered", p)
			}
		}
	}
	for p := range routeRoles {
		if !seen[p] {
			t.Errorf("role table lists %s, which is not registered", p)
		}
	}
}

// TestAPITokens: an admin creates API tokens (stored hashed) that work
// with their role; others may not create them.
func TestAPITokens(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	if st, _, _ := call(t, h, "POST", "/v1/tokens", alice, api.TokenRequest{Kind: api.TokenAPI, User: "olga", Role: "admin"}); st != 403 {
		t.Fatalf("operator creating a token: %d", st)
	}
	if st, _, _ := call(t, h, "POST", "/v1/tokens", root, api.TokenRequest{Kind: api.TokenAPI, User: "olga", Role: "king"}); st != 400 {
		t.Fatalf("bad role: %d", st)
	}
	st, ae, body := call(t, h, "POST", "/v1/tokens", root, api.TokenRequest{Kind: api.TokenAPI, User: "olga", Role: "approver", TTL: "1h"})
	if st != 201 {
		t.Fatalf("create: %d %v", st, ae)
	}
	var tok api.TokenResponse
	_ = json.Unmarshal(body, &tok)
	st, _, body = call(t, h, "GET", "/v1/whoami", tok.Token, nil)
	var who api.WhoAmI
	_ = json.Unmarshal(body, &who)
	if st != 200 || who.Name != "olga" || who.Role != "approver" {
		t.Fatalf("whoami: %d %s", st, body)
	}
	if st, _, _ := call(t, h, "POST", "/v1/rollouts", tok.Token, api.CreateRolloutRequest{Plan: testPlan}); st != 403 {
		t.Fatalf("approver creating: %d", st)
	}
	// Stored hashed: the token itself is nowhere in the database.
	raw, err := os.ReadFile(filepath.Join(s.cfg.DataDir, "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), tok.Token) {
		t.Fatal("API token stored in clear")
	}
}

// TestAPITokenRevocation: an admin lists API tokens by ID (never the
// token or its hash) and revokes one; the revoked token is refused at
// once by the server that revoked it and by a second server on the same
// store (API tokens are not cached); the revocation is audited, a second
// one changes nothing, and an ambiguous ID is refused.
func TestAPITokenRevocation(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	ctx := context.Background()
	create := func(user, role string) api.TokenResponse {
		t.Helper()
		st, ae, body := call(t, h, "POST", "/v1/tokens", root, api.TokenRequest{Kind: api.TokenAPI, User: user, Role: role})
		if st != 201 {
			t.Fatalf("create: %d %v", st, ae)
		}
		var out api.TokenResponse
		_ = json.Unmarshal(body, &out)
		if out.ID != tokenHash(out.Token)[:12] {
			t.Fatalf("token ID %q, want the first 12 hex digits of its hash", out.ID)
		}
		return out
	}
	olga, pat := create("olga", "operator"), create("pat", "viewer")

	// A second server on its own connection to the same database, as
	// another process would be.
	cfg2 := s.cfg
	cfg2.AuditKey, cfg2.DataDir = filepath.Join(s.cfg.DataDir, "audit.key"), t.TempDir()
	st2, err := store.Open(ctx, filepath.Join(s.cfg.DataDir, "drover.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st2.Close() })
	s2, err := New(cfg2, Deps{Store: st2})
	if err != nil {
		t.Fatal(err)
	}
	h2 := s2.Handler()
	whoami := func(h http.Handler, tok string) int {
		st, _, _ := call(t, h, "GET", "/v1/whoami", tok, nil)
		return st
	}
	for _, hh := range []http.Handler{h, h2} {
		if st := whoami(hh, olga.Token); st != 200 {
			t.Fatalf("token before revocation: %d", st)
		}
	}

	for _, tok := range []string{alice, olga.Token, vera} {
		if st, _, _ := call(t, h, "GET", "/v1/tokens", tok, nil); st != 403 {
			t.Errorf("non-admin listing tokens: %d", st)
		}
		if st, _, _ := call(t, h, "DELETE", "/v1/tokens/"+pat.ID, tok, nil); st != 403 {
			t.Errorf("non-admin revoking a token: %d", st)
		}
	}
	st, ae, body := call(t, h, "GET", "/v1/tokens", root, nil)
	if st != 200 {
		t.Fatalf("list: %d %v", st, ae)
	}
	for _, secret := range []string{olga.Token, pat.Token, tokenHash(olga.Token), tokenHash(pat.Token)} {
		if strings.Contains(string(body), secret) {
			t.Fatalf("token list holds a token or hash:\n%s", body)
		}
	}
	var list api.APITokenList
	_ = json.Unmarshal(body, &list)
	if len(list.Tokens) != 2 || list.Tokens[0].ID != olga.ID || list.Tokens[0].User != "olga" || list.Tokens[0].Role != "operator" ||
		list.Tokens[0].CreatedBy != "root" || !list.Tokens[0].RevokedAt.IsZero() || list.Tokens[1].ID != pat.ID {
		t.Fatalf("list: %s", body)
	}

	if st, ae, _ := call(t, h, "DELETE", "/v1/tokens/"+olga.ID, root, nil); st != 204 {
		t.Fatalf("revoke: %d %v", st, ae)
	}
	if st := whoami(h, olga.Token); st != 401 {
		t.Fatalf("revoked token on the revoking server: %d, want 401", st)
	}
	if st := whoami(h2, olga.Token); st != 401 {
		t.Fatalf("revoked token on another server: %d, want 401", st)
	}
	if st := whoami(h2, pat.Token); st != 200 {
		t.Fatalf("another token after a revocation: %d", st)
	}
	if st, ae, _ := call(t, h2, "DELETE", "/v1/tokens/"+strings.ToUpper(olga.ID), root, nil); st != 204 {
		t.Fatalf("revoke twice: %d %v, want 204 (a no-op)", st, ae)
	}
	for id, want := range map[string]int{"ffffffffffff": 404, "nope": 400, olga.ID[:6]: 400, tokenHash(olga.Token) + "0": 400} {
		if st, ae, _ := call(t, h, "DELETE", "/v1/tokens/"+id, root, nil); st != want {
			t.Errorf("revoke %q: %d %v, want %d", id, st, ae, want)
		}
	}
	_, _, body = call(t, h, "GET", "/v1/tokens", root, nil)
	list = api.APITokenList{}
	_ = json.Unmarshal(body, &list)
	if r := list.Tokens[0]; r.RevokedAt.IsZero() || r.RevokedBy != "root" || !list.Tokens[1].RevokedAt.IsZero() {
		t.Fatalf("list after revocation: %s", body)
	}
	es, err := s.st.ListAudit(ctx, 0, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	var revokes []store.AuditEntry
	for _, e := range es {
		if e.Action == "token.revoke" {
			revokes = append(revokes, e)
		}
	}
	if len(revokes) != 1 || revokes[0].Actor != "root" || revokes[0].Object != "user/olga" || !strings.Contains(string(revokes[0].Detail), olga.ID) {
		t.Fatalf("token.revoke audit entries: %+v", revokes)
	}

	// Two tokens sharing an ID (a 48-bit collision, forged here): the ID
	// is refused as ambiguous; more of the hash picks one.
	for _, hash := range []string{"abcdef012345" + strings.Repeat("1", 52), "abcdef012345" + strings.Repeat("2", 52)} {
		if err := s.sec.creds.CreateAPIToken(ctx, store.APIToken{Hash: hash, Name: "twin", Role: "viewer", CreatedBy: "root", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if st, ae, _ := call(t, h, "DELETE", "/v1/tokens/abcdef012345", root, nil); st != 409 || ae.Code != api.CodeConflict {
		t.Fatalf("ambiguous ID: %d %v, want 409", st, ae)
	}
	if st, ae, _ := call(t, h, "DELETE", "/v1/tokens/abcdef0123452", root, nil); st != 204 {
		t.Fatalf("revoke by a longer prefix: %d %v", st, ae)
	}
}

// TestBreakGlass: a freeze holds a rollout; only an admin with a reason
// overrides it, and the override is audited and reaches the engine.
func TestBreakGlass(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	seedNodes(t, s, 3)
	now := time.Now().UTC()
	p := testPlan + fmt.Sprintf("windows:\n  freezes:\n    - name: launch\n      from: %s\n      to: %s\n",
		now.Add(-time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	status, ae, body := call(t, h, "POST", "/v1/rollouts", alice, api.CreateRolloutRequest{Plan: p})
	if status != 201 {
		t.Fatalf("create: %d %v", status, ae)
	}
	var ro api.Rollout
	_ = json.Unmarshal(body, &ro)
	_, _, body = call(t, h, "GET", "/v1/rollouts/"+ro.ID, vera, nil)
	if !strings.Contains(string(body), `freeze \"launch\"`) {
		t.Fatalf("the freeze does not hold the rollout:\n%s", body)
	}
	path := "/v1/rollouts/" + ro.ID + "/break-glass"
	if st, _, _ := call(t, h, "POST", path, alice, api.BreakGlassRequest{Reason: "CVE"}); st != 403 {
		t.Fatalf("operator breaking the glass: %d", st)
	}
	if st, ae, _ := call(t, h, "POST", path, root, api.BreakGlassRequest{Reason: " "}); st != 400 || !strings.Contains(ae.Error, "reason") {
		t.Fatalf("no reason: %d %v", st, ae)
	}
	if s.breakGlassReason(context.Background(), ro.ID, mustPlan(t, s, ro.ID)) != "" {
		t.Fatal("refused break-glass recorded")
	}
	if st, ae, _ := call(t, h, "POST", path, root, api.BreakGlassRequest{Reason: "CVE-2026-0001 exploited"}); st != 200 {
		t.Fatalf("break-glass: %d %v", st, ae)
	}
	_, _, body = call(t, h, "GET", "/v1/rollouts/"+ro.ID, vera, nil)
	if strings.Contains(string(body), `freeze \"launch\"`) {
		t.Fatalf("the freeze still holds the rollout after break-glass:\n%s", body)
	}
	audit, _ := s.st.ListAudit(context.Background(), 0, 1000, ro.ID)
	if !hasAudit(audit, "rollout.break-glass", "rollout/"+ro.ID, "root") {
		t.Fatal("break-glass not audited")
	}
}

func mustPlan(t *testing.T, s *Server, id string) *plan.Plan {
	t.Helper()
	data, err := s.st.LoadRollout(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := s.sched.rollout(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	return rc.plan
}

// TestEventStreamEndsOnRevocation: an event stream opened with an API
// token ends, saying why, once the token is revoked (within the stream's
// credential recheck), instead of streaming on to its old holder.
func TestEventStreamEndsOnRevocation(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	st, ae, body := call(t, h, "POST", "/v1/tokens", root, api.TokenRequest{Kind: api.TokenAPI, User: "pat", Role: "viewer"})
	if st != 201 {
		t.Fatalf("create: %d %v", st, ae)
	}
	var tok api.TokenResponse
	_ = json.Unmarshal(body, &tok)
	hs := httptest.NewServer(h)
	defer hs.Close()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", hs.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := hs.Client().Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("open stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	if st, ae, _ := call(t, h, "DELETE", "/v1/tokens/"+tok.ID, root, nil); st != 204 {
		t.Fatalf("revoke: %d %v", st, ae)
	}
	revoked := time.Now()
	rest, err := io.ReadAll(resp.Body) // returns when the server ends the stream
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if took := time.Since(revoked); took > recheckCredentials+5*time.Second {
		t.Errorf("stream ended %s after the revocation", took)
	}
	if !strings.Contains(string(rest), "event: error") || !strings.Contains(string(rest), "credentials no longer valid") {
		t.Errorf("stream ended without saying why:\n%s", rest)
	}
}
