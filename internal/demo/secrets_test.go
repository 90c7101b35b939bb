package demo

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/server"
)

// syncBuffer is a log sink shared by the server and the agents.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNoSecretsInLogs runs a small TLS demo (agents enrol with tokens)
// with debug logging captured and looks in the logs and the progress
// output for every secret it used: user tokens, enrolment tokens, agent
// and CA private keys. None may appear.
func TestNoSecretsInLogs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var logs, progress syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	var users []server.User
	_, err := Run(ctx, Options{Nodes: 12, Step: 200 * time.Millisecond, Dir: dir, TLS: true, Logger: log, Progress: &progress,
		Ready: func(a Access) { users = a.Users }})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, progress.String())
	}
	out := logs.String() + progress.String()
	if !strings.Contains(out, "node enrolled") {
		t.Fatalf("the demo did not enrol its agents:\n%s", out[:min(len(out), 4000)])
	}
	var secrets []string
	for _, u := range users {
		secrets = append(secrets, u.Token)
	}
	// Enrolment tokens: their audit entries hold no token, so read them
	// back from where the test can see them: the store keeps only their
	// hashes, hence the demo's own log is checked for the token shape.
	if m := regexp.MustCompile(`dre_[A-Za-z0-9_-]{20,}`).FindString(out); m != "" {
		t.Errorf("an enrolment token is in the logs: %s", m)
	}
	if m := regexp.MustCompile(`drv_[A-Za-z0-9_-]{20,}`).FindString(out); m != "" {
		t.Errorf("an API token is in the logs: %s", m)
	}
	// Private keys: the CA's and every agent's, as PEM and as their base64 body.
	keys, _ := filepath.Glob(filepath.Join(dir, "agents", "*", "tls", "identity.pem"))
	keys = append(keys, filepath.Join(dir, "server", "ca-key.pem"))
	if len(keys) < 13 {
		t.Fatalf("found %d key files, want 12 agents and the CA", len(keys))
	}
	for _, f := range keys {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, key, ok := strings.Cut(string(raw), "-----BEGIN PRIVATE KEY-----")
		if !ok {
			t.Fatalf("%s holds no private key", f)
		}
		key, _, _ = strings.Cut(key, "-----END")
		for _, line := range strings.Fields(key) {
			secrets = append(secrets, line)
		}
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Error("a PEM private key is in the logs")
	}
	for _, s := range secrets {
		if len(s) >= 16 && strings.Contains(out, s) {
			t.Errorf("secret %.6s... is in the logs", s)
		}
	}
}
