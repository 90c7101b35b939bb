package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/internal/store"
)

// userClient is an HTTPS client trusting the test server's CA, with no
// client certificate: a user's CLI.
func (e *tlsEnv) userClient(t *testing.T) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(e.s.CACertPEM()) {
		t.Fatal("no CA")
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// do sends a request over TLS and returns its status and Retry-After.
func do(t *testing.T, c *http.Client, method, url, token string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

func randomToken(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// TestBadTokensNeverLockOutValidCredentials: 1,000 bad tokens from one
// address (every client here is 127.0.0.1, as behind NAT) on the API, the
// artifact and metrics routes and enrolment leave every valid user
// (configured or API token), every agent with a valid certificate and a
// valid enrolment working; the bad ones are answered 429 once over the
// limit.
func TestBadTokensNeverLockOutValidCredentials(t *testing.T) {
	e := newTLSEnv(t)
	uc := e.userClient(t)
	var agents []*agent.Identity
	for i := range 3 {
		id, err := e.enrol(t, fmt.Sprintf("node-%d", i), e.token(t, "1h", nil), e.s.CAHash(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, id)
	}
	status, ae, body := call(t, e.h, "POST", "/v1/tokens", root, api.TokenRequest{Kind: api.TokenAPI, User: "olga", Role: "operator"})
	if status != 201 {
		t.Fatalf("API token: %d %v", status, ae)
	}
	var olga api.TokenResponse
	_ = json.Unmarshal(body, &olga)
	spare := e.token(t, "1h", nil) // a valid enrolment token, used after the flood

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "intruder")
	if err != nil {
		t.Fatal(err)
	}

	const bad = 1000
	codes := map[int]int{}
	repeated := randomToken(prefixAPI)
	for i := range bad {
		var st int
		var retry string
		switch i % 5 {
		case 0:
			st, retry = do(t, uc, "GET", e.ts.URL+"/v1/whoami", randomToken(prefixAPI), "")
		case 1:
			st, retry = do(t, uc, "GET", e.ts.URL+"/v1/nodes", repeated, "")
		case 2:
			st, retry = do(t, uc, "GET", e.ts.URL+"/v1/artifacts/metadata/1.root.json", fmt.Sprintf("guess-%d-0123456789abcdef", i), "")
		case 3:
			st, retry = do(t, uc, "GET", e.ts.URL+"/metrics", randomToken(prefixSession), "")
		case 4:
			raw, _ := json.Marshal(api.EnrollRequest{NodeID: "intruder", Token: randomToken(prefixEnroll), CSR: string(csr)})
			st, retry = do(t, uc, "POST", e.ts.URL+api.PathEnroll, "", string(raw))
		}
		codes[st]++
		if st == 429 && retry == "" {
			t.Fatalf("request %d: 429 without Retry-After", i)
		}
		if st != 401 && st != 429 {
			t.Fatalf("bad request %d: %d", i, st)
		}
	}
	if codes[401] != authLimit || codes[429] != bad-authLimit {
		t.Errorf("bad requests: %v; want all but the first %d answered 429", codes, authLimit)
	}

	ok, total := 0, 0
	check := func(what string, st int) {
		t.Helper()
		total++
		if st/100 == 2 {
			ok++
		} else {
			t.Errorf("%s after %d bad tokens: %d", what, bad, st)
		}
	}
	for _, tok := range []string{alice, bob, vera, root, olga.Token} {
		st, _ := do(t, uc, "GET", e.ts.URL+"/v1/whoami", tok, "")
		check("user whoami", st)
		st, _ = do(t, uc, "GET", e.ts.URL+"/metrics", tok, "")
		check("user metrics", st)
	}
	for i, id := range agents {
		st, ae := e.agentCall(t, id, api.PathRegister, register(fmt.Sprintf("node-%d", i)))
		if st != 200 {
			t.Logf("agent %d: %v", i, ae)
		}
		check("agent register", st)
	}
	if _, err := e.enrol(t, "node-late", spare, e.s.CAHash(), t.TempDir()); err != nil {
		t.Errorf("valid enrolment after %d bad tokens: %v", bad, err)
	} else {
		ok++
	}
	total++
	t.Logf("%d bad requests from one address: %v; then %d/%d valid requests succeeded", bad, codes, ok, total)

	// The address stays over its limit for bad tokens until the window ends.
	if st, retry := do(t, uc, "GET", e.ts.URL+"/v1/whoami", randomToken(prefixAPI), ""); st != 429 || retry == "" {
		t.Errorf("another bad token: %d Retry-After %q, want 429", st, retry)
	}
	e.clock.Add(authLimitWindow)
	if st, _ := do(t, uc, "GET", e.ts.URL+"/v1/whoami", randomToken(prefixAPI), ""); st != 401 {
		t.Errorf("bad token after the window: %d, want 401", st)
	}
}

// TestFailedAuthRateLimit: failures are counted per credential and per
// address. A bad token retried is refused 429 past the limit, even from
// another address; an address past the limit gets 429 for any bad token
// but never for a good one; the window passes.
func TestFailedAuthRateLimit(t *testing.T) {
	cfg := testConfig(t)
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
	send := func(tok, addr string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/v1/whoami", nil)
		req.RemoteAddr = addr
		req.Header.Set("Authorization", "Bearer "+tok)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Add(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	// One bad token from many addresses.
	for i := range authLimit {
		if rec := send("wrong-token-0123456789", fmt.Sprintf("198.51.100.%d:1", i+1)); rec.Code != 401 {
			t.Fatalf("failure %d: %d", i+1, rec.Code)
		}
	}
	rec := send("wrong-token-0123456789", "198.51.100.200:1")
	var ae api.Error
	_ = json.Unmarshal(rec.Body.Bytes(), &ae)
	if rec.Code != 429 || rec.Header().Get("Retry-After") == "" || ae.Code != api.CodeRateLimited {
		t.Fatalf("the same bad token an 11th time: %d Retry-After %q code %q", rec.Code, rec.Header().Get("Retry-After"), ae.Code)
	}
	// Many bad tokens from one address.
	for i := range authLimit {
		if rec := send(fmt.Sprintf("wrong-token-%d-0123456789", i), "192.0.2.7:4000"); rec.Code != 401 {
			t.Fatalf("failure %d: %d", i+1, rec.Code)
		}
	}
	if rec := send("another-wrong-token-0123456789", "192.0.2.7:4001"); rec.Code != 429 {
		t.Fatalf("11th bad token from the address: %d", rec.Code)
	}
	if rec := send(vera, "192.0.2.7:4001"); rec.Code != 200 {
		t.Fatalf("a good token from the address over its limit: %d", rec.Code)
	}
	if rec := send("another-wrong-token-0123456789", "192.0.2.8:4000"); rec.Code != 401 {
		t.Fatalf("a bad token from another address: %d", rec.Code)
	}
	clk.Add(authLimitWindow)
	if rec := send("wrong-token-0123456789", "192.0.2.7:4002"); rec.Code != 401 {
		t.Fatalf("after the window: %d", rec.Code)
	}
}

// TestTrustedProxies: X-Forwarded-For names the client only when the
// peer is a trusted proxy; otherwise the peer is the client, whatever
// the header says.
func TestTrustedProxies(t *testing.T) {
	cfg := testConfig(t)
	cfg.TrustedProxies = []string{"10.0.0.0/8", "2001:db8::1"}
	st, err := store.Open(context.Background(), filepath.Join(cfg.DataDir, "drover.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := New(cfg, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"192.0.2.9:1", []string{"198.51.100.1"}, "192.0.2.9"},            // not a proxy: the header is the client's to forge
		{"10.1.2.3:1", nil, "10.1.2.3"},                                   // a proxy without a header
		{"10.1.2.3:1", []string{"198.51.100.1"}, "198.51.100.1"},          // the client the proxy saw
		{"10.1.2.3:1", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1"}, // the client's own forged hop is ignored
		{"10.1.2.3:1", []string{"198.51.100.1", "10.9.9.9"}, "198.51.100.1"},
		{"[2001:db8::1]:1", []string{"2001:db8::77"}, "2001:db8::77"},
		{"10.1.2.3:1", []string{"junk, 10.4.4.4"}, "10.4.4.4"},
	} {
		req := httptest.NewRequest("GET", "/v1/whoami", nil)
		req.RemoteAddr = c.peer
		for _, v := range c.xff {
			req.Header.Add("X-Forwarded-For", v)
		}
		if got := s.clientIP(req); got != c.want {
			t.Errorf("peer %s X-Forwarded-For %q: client %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
	cfg.TrustedProxies = []string{"10.0.0.0/33"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "trustedProxies[0]") {
		t.Errorf("a bad CIDR: %v", err)
	}
}
