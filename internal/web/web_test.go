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

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/store"
)

// newServer is a real server (SQLite, no agents) behind httptest, with a
// viewer and an operator.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	cfg := server.DefaultConfig()
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
	return ts
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

func TestSignInKeepsTheTokenInAnHttpOnlyCookie(t *testing.T) {
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
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(ck, want) {
			t.Errorf("cookie %q lacks %s", ck, want)
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
}

func TestCrossSitePostsAreRefused(t *testing.T) {
	ts := newServer(t)
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/ui/rollouts/x/command", strings.NewReader("action=abort"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.AddCookie(&http.Cookie{Name: "drover_token", Value: "operator-token-0123456789"})
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
