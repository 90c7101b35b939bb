package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/baseline"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/server/servertest"
	"github.com/drover-dev/drover/internal/store"
)

// TestBaselineCommands: drover baseline apply (a bad file refused with
// its position before anything is sent; the same file twice makes one
// version), list, get, compliance as a table and as JSON with the
// nodes' needs, exempt, and drover drift, against a real server.
func TestBaselineCommands(t *testing.T) {
	ctx := context.Background()
	url, st, _ := servertest.Start(t, ctx, func(cfg *server.Config) {
		cfg.Users = []server.User{{Name: "alice", Role: server.RoleOperator, Token: "alice-token-0123456789"},
			{Name: "vera", Role: server.RoleViewer, Token: "vera-token-01234567890"}}
	})
	as := func(token string, args ...string) (int, string) {
		t.Helper()
		env := map[string]string{"DROVER_SERVER": url, "DROVER_TOKEN": token}
		var out bytes.Buffer
		code := Main(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &out)
		return code, out.String()
	}
	drover := func(args ...string) string {
		t.Helper()
		code, out := as("alice-token-0123456789", args...)
		if code != 0 {
			t.Fatalf("drover %s: exit %d: %s", strings.Join(args, " "), code, out)
		}
		return out
	}
	now := time.Now()
	cat, _ := store.AsAdvisories(st)
	if _, err := cat.ImportAdvisories(ctx, []advisory.Advisory{{ID: "DSA-5532-1", Severity: "high", Source: "osv", Published: now.Add(-30 * 24 * time.Hour),
		Affected: []advisory.Fix{{Ecosystem: "debian:12", Package: "openssl", Fixed: "3.0.11-1~deb12u2"}}}}, store.AdvisoryImport{Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	for id, ver := range map[string]string{"web-1": "3.0.9-1", "web-2": "3.0.11-1~deb12u2"} {
		if _, err := st.UpsertNode(ctx, store.NodeRecord{ID: id, Labels: map[string]string{"env": "prod"}, Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"},
			Packages: map[string]string{"openssl": ver}}, RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	bad, good := filepath.Join(dir, "bad.yaml"), filepath.Join(dir, "prod.yaml")
	os.WriteFile(bad, []byte("name: prod\nrules:\n  advisories: {minSeverity: high, within: soon}\n"), 0o644)
	os.WriteFile(good, []byte("name: prod\nselector: node.labels.env == \"prod\"\nrules:\n  advisories: {minSeverity: high, within: 14d}\n"), 0o644)
	if code, out := as("alice-token-0123456789", "baseline", "apply", bad); code == 0 || !strings.Contains(out, "bad.yaml:3:43: rules.advisories.within") {
		t.Fatalf("bad file: %d %s", code, out)
	}
	if out := drover("baseline", "apply", good); !strings.Contains(out, "baseline prod version 1 applied") {
		t.Fatalf("apply: %s", out)
	}
	if out := drover("baseline", "apply", good); !strings.Contains(out, "unchanged (version 1)") {
		t.Fatalf("apply again: %s", out)
	}
	if code, _ := as("vera-token-01234567890", "baseline", "apply", good); code == 0 {
		t.Fatal("a viewer applied a baseline")
	}
	if out := drover("baseline", "list"); !strings.Contains(out, "advisories >= high within 14d") {
		t.Fatalf("list: %s", out)
	}
	if out := drover("baseline", "get", "prod", "--version", "1"); !strings.Contains(out, "applied by  alice") {
		t.Fatalf("get: %s", out)
	}
	out := drover("baseline", "compliance", "prod")
	if !strings.Contains(out, "web-1  non-compliant  DSA-5532-1 (high) past its deadline") || !strings.Contains(out, "1 compliant, 1 non-compliant") {
		t.Fatalf("compliance:\n%s", out)
	}
	var rep api.BaselineCompliance
	if err := json.Unmarshal([]byte(drover("baseline", "compliance", "prod", "-o", "json")), &rep); err != nil || len(rep.Needs) != 1 ||
		rep.Needs[0].Node != "web-1" || rep.Needs[0].Packages["openssl"] != "3.0.11-1~deb12u2" {
		t.Fatalf("compliance -o json: %v %+v", err, rep)
	}
	if code, out := as("alice-token-0123456789", "baseline", "exempt", "prod", "web-1", "--until", "7d"); code == 0 || !strings.Contains(out, "--reason") {
		t.Fatalf("exempt without a reason: %d %s", code, out)
	}
	drover("baseline", "exempt", "prod", "web-1", "--reason", "vendor freeze", "--until", "7d")
	if out := drover("baseline", "compliance", "prod"); !strings.Contains(out, "web-1  exempt     by alice until") {
		t.Fatalf("compliance with exemption:\n%s", out)
	}
	bs, _ := store.AsBaselines(st)
	if _, err := bs.RecordDrift(ctx, []baseline.Drift{{Node: "web-2", Package: "curl", From: "7.88", To: "8.0", Kind: baseline.DriftChanged, Reason: "by hand"}}, now); err != nil {
		t.Fatal(err)
	}
	if out := drover("drift", "--node", "web-2"); !strings.Contains(out, "web-2  changed-out-of-band  curl     7.88  8.0") || !strings.Contains(out, "1 events") {
		t.Fatalf("drift:\n%s", out)
	}
}

// TestBaselineRemediate: drover baseline remediate --dry-run prints the
// plan, the waves with the advisories each closes and the policy's
// verdict, and creates nothing; without --dry-run it creates the
// rollout and prints its ID; -o json carries the same. Against a real
// server with nodes in its inventory (no agents: the rollout is only
// created).
func TestBaselineRemediate(t *testing.T) {
	ctx := context.Background()
	url, st, _ := servertest.Start(t, ctx, func(cfg *server.Config) {
		cfg.Users = []server.User{{Name: "alice", Role: server.RoleOperator, Token: "alice-token-0123456789"},
			{Name: "vera", Role: server.RoleViewer, Token: "vera-token-01234567890"}}
	})
	as := func(token string, args ...string) (int, string) {
		t.Helper()
		env := map[string]string{"DROVER_SERVER": url, "DROVER_TOKEN": token}
		var out bytes.Buffer
		code := Main(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &out)
		return code, out.String()
	}
	drover := func(args ...string) string {
		t.Helper()
		code, out := as("alice-token-0123456789", args...)
		if code != 0 {
			t.Fatalf("drover %s: exit %d: %s", strings.Join(args, " "), code, out)
		}
		return out
	}
	now := time.Now()
	cat, _ := store.AsAdvisories(st)
	if _, err := cat.ImportAdvisories(ctx, []advisory.Advisory{{ID: "DSA-5532-1", Severity: "high", Source: "osv", Published: now.Add(-30 * 24 * time.Hour),
		Affected: []advisory.Fix{{Ecosystem: "debian:12", Package: "openssl", Fixed: "3.0.11-1~deb12u2"}}}}, store.AdvisoryImport{Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"web-1", "web-2", "web-3"} {
		if _, err := st.UpsertNode(ctx, store.NodeRecord{ID: id, Labels: map[string]string{"env": "prod"}, Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"},
			Packages: map[string]string{"openssl": "3.0.9-1"}}, RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "prod.yaml")
	os.WriteFile(file, []byte(`name: prod
rules:
  advisories: {minSeverity: high, within: 14d}
rollout:
  waves:
    - {name: canary, nodes: 1}
    - {name: rest}
  approvals: {start: 1}
autoApprove: {security: {after: 7d}}
`), 0o644)
	drover("baseline", "apply", file)
	if code, _ := as("vera-token-01234567890", "baseline", "remediate", "prod", "--dry-run"); code == 0 {
		t.Fatal("a viewer remediated")
	}
	out := drover("baseline", "remediate", "prod", "--dry-run")
	for _, want := range []string{"3 nodes to remediate", "name: remediate-prod", `selector: node.id in ["web-1", "web-2", "web-3"]`,
		"3.0.11-1~deb12u2", "canary  1 (", "rest    2 (", "DSA-5532-1", "approved by policy: every advisory it closes"} {
		if !strings.Contains(out, want) {
			t.Fatalf("dry run: no %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "created rollout") {
		t.Fatalf("dry run created:\n%s", out)
	}
	out = drover("baseline", "remediate", "prod")
	if !strings.Contains(out, "created rollout remediate-prod-") || strings.Contains(out, "pending-approval") {
		t.Fatalf("create:\n%s", out)
	}
	var rep api.BaselineRemediation
	if err := json.Unmarshal([]byte(drover("baseline", "remediate", "prod", "--dry-run", "-o", "json")), &rep); err != nil ||
		len(rep.Waves) != 2 || rep.Waves[0].Advisories[0] != "DSA-5532-1" || rep.Rollout != nil {
		t.Fatalf("-o json: %v %+v", err, rep)
	}
}
