package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/store"
)

// newServer is a real server (SQLite, no agents) behind httptest, with a
// viewer and an operator.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	ts, _ := newServerWith(t, nil)
	return ts
}

// newServerWith is newServer with an approval floor; it returns the store
// too.
func newServerWith(t *testing.T, floor []server.FloorRule) (*httptest.Server, store.Store) {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.ApprovalFloor = floor
	cfg.DataDir = t.TempDir()
	cfg.AgentToken = "agent-token-0123456789"
	cfg.Users = []server.User{{Name: "vera", Role: server.RoleViewer, Token: "viewer-token-0123456789"},
		{Name: "otto", Role: server.RoleOperator, Token: "operator-token-0123456789"}}
	st, err := store.Open(context.Background(), filepath.Join(cfg.DataDir, "drover.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := server.New(cfg, server.Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts, st
}

func browserClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSignInKeepsASessionInAnHttpOnlyCookie: signing in trades the token
// for a server-side session; the cookie holds the session, never the
// token; signing out revokes it; a cookie holding a token is not a
// sign-in.
func TestSignInKeepsASessionInAnHttpOnlyCookie(t *testing.T) {
	ts := newServer(t)
	c := browserClient(t)

	// Not signed in: every page leads to the sign-in page.
	r, err := c.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	if page := body(t, r); r.Request.URL.Path != "/ui/login" || !strings.Contains(page, `name="token"`) {
		t.Fatalf("GET / ended at %s", r.Request.URL)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}

	r, err = c.PostForm(ts.URL+"/ui/login", url.Values{"token": {"wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	if page := body(t, r); r.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "not accepted") {
		t.Errorf("bad token: %d", r.StatusCode)
	}

	noFollow := *c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r, err = noFollow.PostForm(ts.URL+"/ui/login", url.Values{"token": {"operator-token-0123456789"}, "next": {"https://evil.example/"}})
	if err != nil {
		t.Fatal(err)
	}
	body(t, r)
	if loc := r.Header.Get("Location"); r.StatusCode != http.StatusSeeOther || loc != "/ui/fleet" {
		t.Errorf("sign-in answered %d to %q; want 303 to /ui/fleet (never off-site)", r.StatusCode, loc)
	}
	ck := r.Header.Get("Set-Cookie")
	for _, want := range []string{"drover_session=" + api.SessionPrefix, "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=4"} {
		if !strings.Contains(ck, want) {
			t.Errorf("cookie %q lacks %s", ck, want)
		}
	}
	if strings.Contains(ck, "operator-token-0123456789") {
		t.Fatalf("the cookie holds the API token: %q", ck)
	}
	var session string
	for _, c := range r.Cookies() {
		if c.Name == "drover_session" {
			session = c.Value
		}
	}

	r, err = c.Get(ts.URL + "/ui/fleet")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, r)
	if r.StatusCode != http.StatusOK || !strings.Contains(page, "otto") || strings.Contains(page, "operator-token-0123456789") {
		t.Errorf("fleet page: %d, names otto: %v, shows token: %v", r.StatusCode, strings.Contains(page, "otto"), strings.Contains(page, "operator-token-0123456789"))
	}

	r, err = c.Get(ts.URL + "/ui/fleet?selector=" + url.QueryEscape("node.os.family =="))
	if err != nil {
		t.Fatal(err)
	}
	if page := body(t, r); !strings.Contains(page, `id="selector-error"`) {
		t.Errorf("a bad selector shows no error:\n%s", page)
	}

	// Signing out revokes the session on the server, not only the cookie.
	r, err = c.PostForm(ts.URL+"/ui/logout", nil)
	if err != nil {
		t.Fatal(err)
	}
	body(t, r)
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+session)
	r, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body(t, r)
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("the session after sign-out: %d, want 401", r.StatusCode)
	}
	// A cookie holding an API token is no sign-in.
	req, _ = http.NewRequest(http.MethodGet, ts.URL+"/ui/fleet", nil)
	req.AddCookie(&http.Cookie{Name: "drover_session", Value: "operator-token-0123456789"})
	r, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body(t, r)
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/ui/login") {
		t.Errorf("a token in the cookie: %d to %q, want the sign-in page", r.StatusCode, r.Header.Get("Location"))
	}
}

// TestNoReflectedNotices: text in the URL is never shown as an alert or
// a notice.
func TestNoReflectedNotices(t *testing.T) {
	ts := newServer(t)
	c := browserClient(t)
	if r, err := c.PostForm(ts.URL+"/ui/login", url.Values{"token": {"viewer-token-0123456789"}}); err != nil {
		t.Fatal(err)
	} else {
		body(t, r)
	}
	forged := "Your session expired: call 555-0100"
	r, err := c.Get(ts.URL + "/ui/fleet?err=" + url.QueryEscape(forged) + "&done=" + url.QueryEscape(forged))
	if err != nil {
		t.Fatal(err)
	}
	if page := body(t, r); r.StatusCode != http.StatusOK || strings.Contains(page, "555-0100") {
		t.Errorf("URL text shown on the page (%d)", r.StatusCode)
	}
}

func TestCrossSitePostsAreRefused(t *testing.T) {
	ts := newServer(t)
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/ui/rollouts/x/command", strings.NewReader("action=abort"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.AddCookie(&http.Cookie{Name: "drover_session", Value: "operator-token-0123456789"})
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body(t, r)
	if r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST answered %d, want 403", r.StatusCode)
	}
}

func TestWhoAmIAndUnknownAPIPaths(t *testing.T) {
	ts := newServer(t)
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer viewer-token-0123456789")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var me api.WhoAmI
	if err := json.Unmarshal([]byte(body(t, r)), &me); err != nil {
		t.Fatal(err)
	}
	if me.Name != "vera" || me.Role != "viewer" || len(me.Actions) != 0 {
		t.Errorf("whoami: %+v", me)
	}
	// The dashboard is mounted at "/": an unknown API path still gets a
	// JSON error, not a page.
	r, err = http.Get(ts.URL + "/v1/no-such-thing")
	if err != nil {
		t.Fatal(err)
	}
	var e api.Error
	if err := json.Unmarshal([]byte(body(t, r)), &e); err != nil || r.StatusCode != http.StatusNotFound || e.Code != api.CodeNotFound {
		t.Errorf("unknown API path: %d %+v %v", r.StatusCode, e, err)
	}
}

// TestRolloutPageShowsTheApprovalFloor: the rollout page shows the
// effective requirement and the floor rule that raised it.
func TestRolloutPageShowsTheApprovalFloor(t *testing.T) {
	ts, st := newServerWith(t, []server.FloorRule{{Name: "production", Selector: `node.labels.env == "prod"`, Approvals: 2}})
	now := time.Now()
	if _, err := st.UpsertNode(context.Background(), store.NodeRecord{ID: "deb-1", Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}},
		Labels: map[string]string{"env": "prod"}, RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	cl := &api.Client{Base: ts.URL, Token: "operator-token-0123456789"}
	ro, err := cl.CreateRollout(context.Background(), "plan.yaml", `apiVersion: drover.dev/v1
name: openssl
target:
  selector: node.os.family == "debian"
change:
  actions:
    - package:
        packages: [{name: openssl, version: "3.0.15-1~deb12u1"}]
waves:
  - name: all
`)
	if err != nil {
		t.Fatal(err)
	}
	c := browserClient(t)
	if r, err := c.PostForm(ts.URL+"/ui/login", url.Values{"token": {"viewer-token-0123456789"}}); err != nil {
		t.Fatal(err)
	} else {
		body(t, r)
	}
	r, err := c.Get(ts.URL + "/ui/rollouts/" + ro.ID)
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, r)
	if !strings.Contains(page, `<dd id="approvals">0/2`) || !strings.Contains(page, `id="approval-floor"`) || !strings.Contains(page, "production: 2") {
		t.Errorf("the rollout page does not show the floor:\n%s", page)
	}
	if !strings.Contains(page, `<dd id="assignment"><code>`+ro.AssignmentSHA256+`</code> <span class="sub">seed `+ro.Seed) {
		t.Errorf("the rollout page does not show the assignment approvals bind to (%s, seed %s):\n%s", ro.AssignmentSHA256, ro.Seed, page)
	}
	// The prediction made at creation, and where its durations came from.
	if !strings.Contains(page, `id="prediction-table"`) || !strings.Contains(page, "wave all: no history for package on debian 12 (1 node), default model") {
		t.Errorf("the rollout page does not show the prediction:\n%s", page)
	}
}

// TestRolloutPageShowsThePreflight: the rollout page sums up the node
// pre-flight and lists the nodes whose pre-flight did not pass, with why.
func TestRolloutPageShowsThePreflight(t *testing.T) {
	ts, st := newServerWith(t, nil)
	now := time.Now()
	for _, id := range []string{"deb-1", "deb-2"} {
		if _, err := st.UpsertNode(context.Background(), store.NodeRecord{ID: id, Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}},
			RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	cl := &api.Client{Base: ts.URL, Token: "operator-token-0123456789"}
	ro, err := cl.CreateRollout(context.Background(), "plan.yaml", `apiVersion: drover.dev/v1
name: openssl
target:
  selector: node.os.family == "debian"
change:
  actions:
    - package:
        packages: [{name: openssl, version: "3.0.15-1~deb12u1"}]
waves:
  - name: all
preflight:
  onFail: exclude
`)
	if err != nil {
		t.Fatal(err)
	}
	// The asks and answers as the scheduler and the agents store them
	// (this server runs no scheduler).
	if err := st.AskPreflight(context.Background(), ro.ID, []store.PreflightAsk{{Node: "deb-1", Payload: []byte("{}")},
		{Node: "deb-2", Answered: true, Reason: "agent speaks protocol 2; node pre-flight needs protocol 4 (upgrade the agent)"}},
		now, now.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := st.AnswerPreflight(context.Background(), ro.ID, "deb-1", true, "", []byte(`{"ok":true,"actions":[]}`), now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	c := browserClient(t)
	if r, err := c.PostForm(ts.URL+"/ui/login", url.Values{"token": {"viewer-token-0123456789"}}); err != nil {
		t.Fatal(err)
	} else {
		body(t, r)
	}
	r, err := c.Get(ts.URL + "/ui/rollouts/" + ro.ID)
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, r)
	for _, want := range []string{`<p id="preflight-summary">2 asked · 1 passed · 1 failed · 0 waiting`,
		`<th scope="row">deb-2</th><td data-label="State">failed</td><td data-label="Why" class="wide">agent speaks protocol 2; node pre-flight needs protocol 4 (upgrade the agent)</td>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the rollout page lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, `<th scope="row">deb-1</th><td data-label="State">`) {
		t.Errorf("the rollout page lists deb-1, whose pre-flight passed")
	}
}

// TestLineStopBanner: while the line is stopped every page says so, with
// who stopped it and why.
func TestLineStopBanner(t *testing.T) {
	ts := newServer(t)
	c := browserClient(t)
	if _, err := c.PostForm(ts.URL+"/ui/login", url.Values{"token": {"viewer-token-0123456789"}}); err != nil {
		t.Fatal(err)
	}
	op := &api.Client{Base: ts.URL, Token: "operator-token-0123456789"}
	if _, err := op.StopLine(context.Background(), "incident 7"); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/ui/fleet", "/ui/rollouts", "/ui/audit"} {
		r, err := c.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		page := body(t, r)
		if !strings.Contains(page, `id="line-stop"`) || !strings.Contains(page, "Line stopped by otto") || !strings.Contains(page, "incident 7") {
			t.Errorf("%s while the line is stopped shows no banner:\n%s", path, page)
		}
	}
}

// TestSafetyPage: the fleet safety page shows each budget's domains with
// their use and each freeze's state, to a viewer, through the API (the
// freeze's periods are all past, so the page does not depend on today).
func TestSafetyPage(t *testing.T) {
	ts := newServer(t)
	op := &api.Client{Base: ts.URL, Token: "operator-token-0123456789"}
	ctx := context.Background()
	if _, err := op.CreateBudget(ctx, api.BudgetRequest{Name: "web", MaxUnavailable: "25%", Per: "zone", Selector: `node.labels.tier == "web"`}); err != nil {
		t.Fatal(err)
	}
	if _, err := op.CreateFreezes(ctx, []api.FreezeSpec{{Name: "patch-tuesday", TimeZone: "America/New_York", Start: "2020-01-14T10:00",
		End: "2020-01-15T10:00", Rule: "FREQ=MONTHLY;BYDAY=2TU;COUNT=3", Reason: "vendor patches"}}); err != nil {
		t.Fatal(err)
	}
	c := browserClient(t)
	if _, err := c.PostForm(ts.URL+"/ui/login", url.Values{"token": {"viewer-token-0123456789"}}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Get(ts.URL + "/ui/safety")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, r)
	for _, want := range []string{`data-budget="web"`, "max unavailable 25% per zone", `node.labels.tier == &#34;web&#34;`, "covers no node",
		`data-freeze="patch-tuesday"`, "FREQ=MONTHLY;BYDAY=2TU;COUNT=3", "America/New_York", "vendor patches", ">over<", `aria-current="page">Safety`} {
		if !strings.Contains(page, want) {
			t.Errorf("safety page lacks %q", want)
		}
	}
	if r.StatusCode != http.StatusOK || strings.Contains(page, "freeze-alert") {
		t.Errorf("status %d; a freeze alert with no freeze in force: %v", r.StatusCode, strings.Contains(page, "freeze-alert"))
	}
}
