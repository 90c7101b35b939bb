package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/store"
)

// TestTokenEnroll runs `drover nodes import` and `drover token enroll` in
// its three output formats against a real in-process TLS server: one
// token per host, bound and single use, with the server's CA pin.
func TestTokenEnroll(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cfg := server.DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.TLS = "127.0.0.1:0", t.TempDir(), true
	cfg.Users = []server.User{{Name: "root", Role: server.RoleAdmin, Token: "root-token-0123456789a"}}
	st, err := store.Open(ctx, filepath.Join(cfg.DataDir, "drover.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, server.Deps{Store: st, Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, func(a string) { addr <- a }) }()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, srv.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "lab.yaml")
	if err := os.WriteFile(inv, []byte("all:\n  children:\n    web:\n      hosts:\n        web[1:3]:\n      vars: {zone: a}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DROVER_SERVER": "https://" + <-addr, "DROVER_TOKEN": "root-token-0123456789a", "DROVER_CA_CERT": caFile}
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := Main(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errb); code != ExitOK {
			t.Fatalf("drover %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		}
		return out.String()
	}
	if out := run("nodes", "import", inv, "--yes"); !strings.Contains(out, "inventory lab imported: 3 hosts (3 added") {
		t.Fatalf("import: %s", out)
	}

	var vars struct {
		CAHash string            `json:"drover_ca_hash"`
		Tokens map[string]string `json:"drover_enroll_tokens"`
	}
	if err := json.Unmarshal([]byte(run("token", "enroll", "--inventory", "lab")), &vars); err != nil {
		t.Fatal(err)
	}
	if vars.CAHash != srv.CAHash() || len(vars.Tokens) != 3 || !strings.HasPrefix(vars.Tokens["web2"], "dre_") {
		t.Fatalf("-o ansible: %+v", vars)
	}
	rows, err := csv.NewReader(strings.NewReader(run("token", "enroll", "--selector", `node.id == "web1"`, "-o", "csv", "--ttl", "5m"))).ReadAll()
	if err != nil || len(rows) != 2 || rows[0][0] != "host" || rows[1][0] != "web1" || rows[1][3] != srv.CAHash() || rows[1][1] == vars.Tokens["web1"] {
		t.Fatalf("-o csv: %v %v", rows, err)
	}
	var full struct {
		Hosts map[string]struct {
			Token  string            `json:"token"`
			Labels map[string]string `json:"labels"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(run("token", "enroll", "--inventory", "lab", "-o", "json")), &full); err != nil {
		t.Fatal(err)
	}
	if len(full.Hosts) != 3 || full.Hosts["web3"].Labels["zone"] != "a" || full.Hosts["web3"].Labels["group.web"] != "true" {
		t.Fatalf("-o json: %+v", full)
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"token", "enroll"}, func(k string) string { return env[k] }, nil, &out, &errb); code != ExitUsage ||
		!strings.Contains(errb.String(), "want --inventory, --selector or both") {
		t.Fatalf("no hosts chosen: exit %d %s", code, errb.String())
	}
}
