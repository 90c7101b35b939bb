package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/artifact"
	"github.com/drover-dev/drover/internal/store"
)

// artifactServer serves a signed repository holding hello.sh.
func artifactServer(t *testing.T) (*httptest.Server, *artifact.Repo) {
	t.Helper()
	base := t.TempDir()
	r := &artifact.Repo{Dir: filepath.Join(base, "repo"), KeysDir: filepath.Join(base, "keys")}
	if err := r.Init(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add("hello.sh", []byte("#!/bin/sh\necho hello\n"), nil); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.ArtifactsDir = r.Dir
	st, err := store.Open(context.Background(), filepath.Join(cfg.DataDir, "drover.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(cfg, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv, r
}

func get(t *testing.T, url string, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var agentHeader = map[string]string{"Authorization": "Bearer agent-token-0123456789", "Drover-Node": "n1"}

func TestArtifactRoutes(t *testing.T) {
	srv, r := artifactServer(t)
	// A symlink out of the repository is not followed.
	if err := os.Symlink("/etc/passwd", filepath.Join(r.Dir, "metadata", "passwd.json")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path   string
		header map[string]string
		status int
		body   string
	}{
		{"/v1/artifacts/metadata/timestamp.json", nil, 401, `"unauthorized"`},
		{"/v1/artifacts/metadata/timestamp.json", agentHeader, 200, `"_type": "timestamp"`},
		{"/v1/artifacts/metadata/1.root.json", map[string]string{"Authorization": "Bearer vera-token-0123456789a"}, 200, `"_type": "root"`},
		{"/v1/artifacts/metadata/3.snapshot.json", agentHeader, 404, `"not_found"`},
		{"/v1/artifacts/metadata/passwd.json", agentHeader, 404, `"not_found"`},
		{"/v1/artifacts/metadata/..%2F..%2Fkeys%2Froot.key", agentHeader, 404, `"not_found"`},
		{"/v1/artifacts/metadata/.tmp", agentHeader, 404, `"not_found"`},
		{"/v1/artifacts/targets/" + "nope.sh", agentHeader, 404, `"not_found"`},
	} {
		status, body := get(t, srv.URL+tc.path, tc.header)
		if status != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("GET %s: %d %q, want %d with %s", tc.path, status, body, tc.status, tc.body)
		}
	}
}

func TestArtifactRoutesUnconfigured(t *testing.T) {
	s := newTestServer(t)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	status, body := get(t, srv.URL+"/v1/artifacts/metadata/timestamp.json", agentHeader)
	if status != 404 || !strings.Contains(body, "artifactsDir is not set") {
		t.Errorf("got %d %q", status, body)
	}
}

// TestAgentVerifiesThroughServer: an agent's verifier, pinned on the
// repository's root, verifies an artifact the server publishes.
func TestAgentVerifiesThroughServer(t *testing.T) {
	srv, r := artifactServer(t)
	root, err := os.ReadFile(filepath.Join(r.Dir, "metadata", "root.json"))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for k, v := range agentHeader {
		h.Set(k, v)
	}
	v, err := artifact.NewVerifier(artifact.VerifierConfig{TrustedRoot: root, BaseURL: srv.URL + "/v1/artifacts",
		Dir: filepath.Join(t.TempDir(), "artifacts"), Header: h})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(context.Background(), "hello.sh")
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "#!/bin/sh\necho hello\n" {
		t.Errorf("verified copy %q", b)
	}
}
