package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/gate/gatetest"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/store/storetest"
)

// remediateBaseline asks for DSA-5532-1 (published 2023, high) within
// 7 days; its template wants one start approval, which the policy
// waives for security advisories older than 7 days.
const remediateBaseline = `name: prod-security
selector: node.labels.env == "prod"
rules:
  advisories: {minSeverity: high, within: 7d}
rollout:
  waves:
    - name: canary
      nodes: 1
    - name: rest
  approvals: {start: 1}
autoApprove:
  security: {after: 7d}
`

func TestRemediateSQLite(t *testing.T) { testRemediate(t, "") }

func TestRemediatePostgres(t *testing.T) { testRemediate(t, storetest.NewPostgres(t).CreateDB(t)) }

// testRemediate runs a real server and two real agents on simulated
// Debian 12 nodes with an openssl DSA-5532-1 fixes. Remediation's dry
// run shows both waves closing the advisory; creating it needs no
// person's approval (the policy approves, audited as such), the rollout
// runs to success and the baseline then reports both nodes compliant.
func testRemediate(t *testing.T, dsn string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, base := runDriftServer(t, ctx, dsn, newReceiver(t))
	for _, id := range []string{"d1", "d2"} {
		st := driver.NewSimState(id, "debian", "6.1.0-26-amd64", map[string]string{"openssl": "3.0.9-1"})
		reg := &driver.Registry{}
		reg.Register(plan.ActionPackage, driver.NewSim(st))
		startSimAgent(t, ctx, base, srv.cfg.AgentToken, id, st, reg, appRunner{&atomic.Bool{}}, fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}})
	}
	c := &api.Client{Base: base, Token: alice}
	waitNodes(t, ctx, c, 2)
	if _, err := c.ImportAdvisories(ctx, []api.AdvisoryDocument{{Name: "dsa.json", Content: advisoryFixture(t, "osv-dsa-5532-1.json")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyBaseline(ctx, "prod.yaml", remediateBaseline); err != nil {
		t.Fatal(err)
	}
	comp, err := c.BaselineCompliance(ctx, "prod-security")
	if err != nil || comp.Counts["non-compliant"] != 2 {
		t.Fatalf("compliance before: %+v %v", comp, err)
	}
	if _, err := (&api.Client{Base: base, Token: vera}).RemediateBaseline(ctx, "prod-security", api.BaselineRemediate{DryRun: true}); err == nil {
		t.Fatal("a viewer remediated")
	}

	dry, err := c.RemediateBaseline(ctx, "prod-security", api.BaselineRemediate{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.Rollout != nil || !dry.AutoApproved || !slices.Equal(dry.Nodes, []string{"d1", "d2"}) ||
		!strings.Contains(dry.Plan, "name: openssl") || !strings.Contains(dry.Plan, "3.0.11-1~deb12u2") || strings.Contains(dry.Plan, "approvals") {
		t.Fatalf("dry run: %+v", dry)
	}
	if len(dry.Waves) != 2 || len(dry.Waves[0].Nodes) != 1 || len(dry.Waves[1].Nodes) != 1 ||
		!slices.Equal(dry.Waves[0].Advisories, []string{"DSA-5532-1"}) || !slices.Equal(dry.Waves[1].Advisories, []string{"DSA-5532-1"}) {
		t.Fatalf("dry run waves: %+v", dry.Waves)
	}

	out, err := c.RemediateBaseline(ctx, "prod-security", api.BaselineRemediate{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Rollout == nil || out.Rollout.ApprovalsNeeded != 0 || !out.AutoApproved {
		t.Fatalf("create: %+v", out)
	}
	if ro := waitEnded(t, ctx, c, out.Rollout.ID, 60*time.Second); ro.State != engine.RolloutSucceeded {
		t.Fatalf("rollout %s (%s)", ro.State, ro.Reason)
	}
	gatetest.Eventually(t, 20*time.Second, "both nodes compliant", func() (bool, string) {
		comp, err = c.BaselineCompliance(ctx, "prod-security")
		return err == nil && comp.Counts["compliant"] == 2, fmt.Sprintf("%+v %v", comp.Counts, err)
	})
	entries, err := srv.st.ListAudit(ctx, 0, 1000, out.Rollout.ID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if e.Action == "rollout.create" {
			var d map[string]any
			_ = json.Unmarshal(e.Detail, &d)
			found = d["approved_by_policy"] == "baseline prod-security autoApprove.security" && e.Actor == "alice"
		}
	}
	if !found {
		t.Fatalf("no rollout.create approved_by_policy in %+v", entries)
	}

	// Nothing left to remediate.
	again, err := c.RemediateBaseline(ctx, "prod-security", api.BaselineRemediate{DryRun: true})
	if err != nil || again.Plan != "" || len(again.Nodes) != 0 {
		t.Fatalf("second remediation: %+v %v", again, err)
	}
}

// TestRemediateLeavesFloorAndFeaturesToPeople: the baseline's policy
// would approve, but the server's approval floor asks for 2: the
// rollout is created waiting for two people and its audit entry has no
// policy approval. A baseline with a pin (a feature update) is never
// approved by policy.
func TestRemediateLeavesFloorAndFeaturesToPeople(t *testing.T) {
	s := newFloorServer(t, t.TempDir(), []FloorRule{{Name: "everything", Approvals: 2}})
	h := s.Handler()
	ctx := context.Background()
	now := time.Now()
	for _, id := range []string{"web-1", "web-2"} {
		if _, err := s.st.UpsertNode(ctx, store.NodeRecord{ID: id, Labels: map[string]string{"env": "prod"}, Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"},
			Packages: map[string]string{"openssl": "3.0.9-1", "curl": "7.88.1-10"}}, RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if st, ae, _ := call(t, h, "POST", "/v1/advisories", alice, api.AdvisoryImportRequest{Documents: []api.AdvisoryDocument{{Name: "dsa.json", Content: advisoryFixture(t, "osv-dsa-5532-1.json")}}}); st != 200 {
		t.Fatalf("import: %d %v", st, ae)
	}
	if st, ae, _ := call(t, h, "PUT", "/v1/baselines", alice, api.BaselineApply{File: "b.yaml", YAML: remediateBaseline}); st != 200 {
		t.Fatalf("apply: %d %v", st, ae)
	}
	st, ae, body := call(t, h, "POST", "/v1/baselines/prod-security/remediate", alice, api.BaselineRemediate{})
	if st != 201 {
		t.Fatalf("remediate: %d %v", st, ae)
	}
	var out api.BaselineRemediation
	_ = json.Unmarshal(body, &out)
	if out.AutoApproved || !strings.Contains(out.Policy, "everything: 2") || !strings.Contains(out.Policy, "left to people") ||
		out.Rollout == nil || out.Rollout.State != engine.RolloutPendingApproval || out.Rollout.ApprovalsNeeded != 2 {
		t.Fatalf("with a floor: %+v", out)
	}
	entries, _ := s.st.ListAudit(ctx, 0, 100, out.Rollout.ID)
	if len(entries) == 0 || entries[0].Action != "rollout.create" || strings.Contains(string(entries[0].Detail), "approved_by_policy") {
		t.Fatalf("audit: %+v", entries)
	}

	feature := strings.Replace(remediateBaseline, "name: prod-security", "name: prod-curl", 1)
	feature = strings.Replace(feature, "  advisories: {minSeverity: high, within: 7d}\n", "  pins: [{package: curl, version: 7.88.1-10+deb12u8}]\n", 1)
	if st, ae, _ := call(t, h, "PUT", "/v1/baselines", alice, api.BaselineApply{File: "c.yaml", YAML: feature}); st != 200 {
		t.Fatalf("apply: %d %v", st, ae)
	}
	st, ae, body = call(t, h, "POST", "/v1/baselines/prod-curl/remediate", alice, api.BaselineRemediate{DryRun: true})
	if st != 200 {
		t.Fatalf("remediate feature: %d %v", st, ae)
	}
	out = api.BaselineRemediation{}
	_ = json.Unmarshal(body, &out)
	if out.AutoApproved || !strings.Contains(out.Policy, "feature updates need people") || !strings.Contains(out.Plan, "approvals:") {
		t.Fatalf("feature update: %+v", out)
	}
}

// TestRemediateFeatureUpdatesNeedApproval: a baseline whose pin makes
// the plan a feature update, with featureUpdates: approval, a template
// asking for no approval and an autoApprove policy: the rollout is
// created waiting for one approval, the policy approved nothing, the
// author (alice) cannot approve it and another operator (bob) can.
func TestRemediateFeatureUpdatesNeedApproval(t *testing.T) {
	s := newFloorServer(t, t.TempDir(), nil)
	h := s.Handler()
	ctx := context.Background()
	now := time.Now()
	if _, err := s.st.UpsertNode(ctx, store.NodeRecord{ID: "web-1", Labels: map[string]string{"env": "prod"}, Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"},
		Packages: map[string]string{"curl": "7.88.1-10"}}, RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	feature := `name: prod-curl
selector: node.labels.env == "prod"
rules:
  pins: [{package: curl, version: 7.88.1-10+deb12u8}]
  featureUpdates: approval
rollout:
  waves:
    - name: all
autoApprove:
  security: {after: 7d}
`
	if st, ae, _ := call(t, h, "PUT", "/v1/baselines", alice, api.BaselineApply{File: "c.yaml", YAML: feature}); st != 200 {
		t.Fatalf("apply: %d %v", st, ae)
	}
	st, ae, body := call(t, h, "POST", "/v1/baselines/prod-curl/remediate", alice, api.BaselineRemediate{})
	if st != 201 {
		t.Fatalf("remediate: %d %v", st, ae)
	}
	var out api.BaselineRemediation
	_ = json.Unmarshal(body, &out)
	if out.AutoApproved || !strings.Contains(out.Policy, "feature updates need people") || !strings.Contains(out.Plan, "start: 1") ||
		out.Rollout == nil || out.Rollout.State != engine.RolloutPendingApproval || out.Rollout.ApprovalsNeeded != 1 {
		t.Fatalf("feature update: %+v\n%s", out, out.Plan)
	}
	path := "/v1/rollouts/" + out.Rollout.ID + "/approve"
	if st, _, _ := call(t, h, "POST", path, alice, nil); st != 403 {
		t.Fatalf("the author approved: %d", st)
	}
	if st, ae, _ := call(t, h, "POST", path, bob, nil); st != 200 {
		t.Fatalf("bob: %d %v", st, ae)
	}
	st, _, body = call(t, h, "GET", "/v1/rollouts/"+out.Rollout.ID, alice, nil)
	var ro api.Rollout
	_ = json.Unmarshal(body, &ro)
	if st != 200 || ro.ApprovalsGot != 1 || ro.ApprovalsNeeded != 1 {
		t.Fatalf("after bob: %d %s %d/%d", st, ro.State, ro.ApprovalsGot, ro.ApprovalsNeeded)
	}
	if d := decide(t, s, ro.ID); d.State == engine.RolloutPendingApproval {
		t.Fatalf("still waiting after bob: %s %q", d.State, d.Reason)
	}
}

// usnKernel is an Ubuntu OSV record in the shape of the published ones
// (USN-6477-1 in internal/advisory/testdata) for a kernel fix with a
// Livepatch Security Notice among its related IDs, as Ubuntu lists
// them; its identifiers are made up.
const usnKernel = `{"schema_version": "1.7.0", "id": "USN-9990-1", "summary": "linux vulnerabilities",
 "related": ["CVE-2026-0001", "LSN-0999-1"], "published": "2026-11-01T00:00:00Z", "modified": "2026-11-01T00:00:00Z",
 "affected": [{"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "linux"},
   "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.15.0-94.104"}]}]}]}`

// TestRemediateLivePatch: a real server and two real agents on
// simulated Ubuntu 22.04 nodes behind on their kernel, a baseline that
// prefers live patches: the dry run's plan loads LSN-0999-1 through
// Canonical Livepatch, never reboots, says so in its notes, and its
// waves close USN-9990-1; the rollout runs, no node reboots and both
// are then compliant (live-patched).
func TestRemediateLivePatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, base := runDriftServer(t, ctx, "", newReceiver(t))
	var sts []*driver.SimState
	for _, id := range []string{"u1", "u2"} {
		st := driver.NewSimState(id, "ubuntu", "5.15.0-91-generic", map[string]string{"linux-image-5.15.0-91-generic": "5.15.0-91.101"})
		reg := &driver.Registry{}
		reg.Register(plan.ActionPackage, driver.NewSim(st))
		reg.Register(plan.ActionLivePatch, driver.NewSim(st))
		startSimAgent(t, ctx, base, srv.cfg.AgentToken, id, st, reg, appRunner{&atomic.Bool{}}, fleet.Facts{OS: fleet.OS{Family: "ubuntu", Version: "22.04"}})
		sts = append(sts, st)
	}
	c := &api.Client{Base: base, Token: alice}
	waitNodes(t, ctx, c, 2)
	if _, err := c.ImportAdvisories(ctx, []api.AdvisoryDocument{{Name: "usn.json", Content: []byte(usnKernel)}}); err != nil {
		t.Fatal(err)
	}
	b := strings.Replace(remediateBaseline, "within: 7d}\n", "within: 7d}\n  livePatchPreferred: true\n", 1)
	b = strings.Replace(b, "minSeverity: high", "minSeverity: unknown", 1)
	if _, err := c.ApplyBaseline(ctx, "prod.yaml", b); err != nil {
		t.Fatal(err)
	}
	dry, err := c.RemediateBaseline(ctx, "prod-security", api.BaselineRemediate{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dry.Nodes, []string{"u1", "u2"}) || !strings.Contains(dry.Plan, "id: LSN-0999-1") || !strings.Contains(dry.Plan, "provider: canonical-livepatch") ||
		!strings.Contains(dry.Plan, "reboot: never") || strings.Contains(dry.Plan, "linux-image") ||
		len(dry.Notes) != 1 || !strings.Contains(dry.Notes[0], "live patch LSN-0999-1 instead of kernel packages and a reboot") {
		t.Fatalf("dry run: %+v\n%s", dry, dry.Plan)
	}
	if len(dry.Waves) != 2 || !slices.Equal(dry.Waves[0].Advisories, []string{"USN-9990-1"}) || !slices.Equal(dry.Waves[1].Advisories, []string{"USN-9990-1"}) {
		t.Fatalf("waves: %+v", dry.Waves)
	}
	out, err := c.RemediateBaseline(ctx, "prod-security", api.BaselineRemediate{})
	if err != nil || out.Rollout == nil {
		t.Fatalf("create: %+v %v", out, err)
	}
	if ro := waitEnded(t, ctx, c, out.Rollout.ID, 60*time.Second); ro.State != engine.RolloutSucceeded {
		t.Fatalf("rollout %s (%s)", ro.State, ro.Reason)
	}
	gatetest.Eventually(t, 20*time.Second, "both nodes compliant", func() (bool, string) {
		comp, err := c.BaselineCompliance(ctx, "prod-security")
		return err == nil && comp.Counts["compliant"] == 2, fmt.Sprintf("%+v %v", comp.Counts, err)
	})
	for _, st := range sts {
		if st.Reboots() != 0 {
			t.Errorf("a node rebooted %d times", st.Reboots())
		}
	}
}
