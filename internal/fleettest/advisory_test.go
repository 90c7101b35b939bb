package fleettest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// advisoryID is the OSV advisory the patch-intelligence test publishes.
const advisoryID = "DSA-9999-1"

// TestDebianFleetPatchIntelligence is real data on a real fleet: the
// local apt repository publishes a fixed version of the test package
// (1.1, held back until the advisory is out) and an OSV advisory for it
// on Debian 12 and 13; drover's exposure lists exactly the nodes below
// the fixed version; a baseline's remediation rolls them, through the
// real server and real apt, to compliance; and a package changed by
// hand inside one container is reported as drift for that node alone.
// The operator's words are the CLI's (drover advisory import, exposure,
// baseline apply|compliance|remediate, drift), run against the server.
//
// The fleet: five nodes over the three suites, one for each way to stand
// against the advisory.
//
//	pi-a   bookworm  1.0   affected (debian:12, below 1.1)
//	pi-b   trixie    1.0   affected (debian:13, below 1.1)
//	pi-new bookworm  1.4   not affected: newer than the fix
//	pi-no  trixie    none  not affected: the package is not installed
//	pi-old bullseye  1.0   not affected: the advisory covers no Debian 11
func TestDebianFleetPatchIntelligence(t *testing.T) {
	start := time.Now()
	f := setupUnpublished(t, []*node{
		{name: "pi-a", suite: "bookworm", zone: "a", role: "fleet"},
		{name: "pi-b", suite: "trixie", zone: "b", role: "fleet"},
		{name: "pi-new", suite: "bookworm", zone: "b", role: "fleet", testsvc: "1.4"},
		{name: "pi-no", suite: "trixie", zone: "a", role: "fleet", testsvc: "none"},
		{name: "pi-old", suite: "bullseye", zone: "a", role: "fleet"},
	}, "1.1")
	t.Cleanup(func() { t.Logf("patch-intelligence test took %s", time.Since(start).Round(time.Second)) })
	want := map[string]string{"pi-a": "installed 1.0", "pi-b": "installed 1.0", "pi-new": "installed 1.4", "pi-no": "", "pi-old": "installed 1.0"}
	for _, n := range f.nodes {
		if got := f.installed(t, n); !strings.HasPrefix(got, want[n.name]) || (want[n.name] == "") != !strings.HasPrefix(got, "installed") {
			t.Fatalf("%s starts with %s %q, want %q", n.name, testPackage, got, want[n.name])
		}
	}
	cli := f.cliRunner(t)

	// The vendor publishes the fix, then the advisory (published a month
	// ago: past the baseline's 14-day deadline and its 7-day policy).
	f.publish(t, "1.1")
	published := time.Now().UTC().AddDate(0, 0, -30).Format(time.RFC3339)
	osv := fmt.Sprintf(`{
  "schema_version": "1.6.0",
  "id": %q,
  "aliases": ["CVE-2026-99999"],
  "summary": "drover-testsvc: remote crash in /health",
  "published": %q,
  "modified": %q,
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
  "affected": [
    {"package": {"ecosystem": "Debian:12", "name": %q},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}]},
    {"package": {"ecosystem": "Debian:13", "name": %q},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}]}
  ]
}
`, advisoryID, published, published, testPackage, testPackage)
	osvFile := filepath.Join(f.dir, "dsa-9999-1.json")
	writeFile(t, osvFile, osv)
	if out := cli("advisory", "import", osvFile); !strings.Contains(out, "1 added") {
		t.Fatalf("advisory import: %s", out)
	}

	// Exposure: exactly the nodes below the fixed version, each other
	// node not affected for its own reason.
	exposure := func() api.ExposureReport {
		t.Helper()
		var rep api.ExposureReport
		if err := json.Unmarshal([]byte(cli("exposure", "--advisory", advisoryID, "-o", "json")), &rep); err != nil {
			t.Fatalf("exposure -o json: %v", err)
		}
		return rep
	}
	rep := exposure()
	wantExposure := map[string]struct{ status, reason string }{
		"pi-a":   {"affected", "installed: " + testPackage + " 1.0"},
		"pi-b":   {"affected", "installed: " + testPackage + " 1.0"},
		"pi-new": {"not-affected", "fixed versions installed"},
		"pi-no":  {"not-affected", "none of the packages is installed"},
		"pi-old": {"not-affected", "the advisory covers no release of this node (debian:11)"},
	}
	if len(rep.Nodes) != len(wantExposure) || rep.Counts["affected"] != 2 || rep.Counts["not-affected"] != 3 {
		t.Errorf("exposure to %s: counts %v over %d nodes, want 2 affected and 3 not-affected", advisoryID, rep.Counts, len(rep.Nodes))
	}
	for _, n := range rep.Nodes {
		if w := wantExposure[n.Node]; n.Status != w.status || n.Reason != w.reason {
			t.Errorf("exposure of %s (%s): %s %q, want %s %q", n.Node, n.OS, n.Status, n.Reason, w.status, w.reason)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// A baseline: critical and high advisories within 14 days; its
	// remediation rollout is a one-node canary (two targets in two
	// strata: it cannot cover both) then the rest, gated on the
	// service's health, approved by policy for old security fixes.
	bl := `name: fleet-security
selector: node.labels.role == "fleet"
rules:
  advisories: {minSeverity: high, within: 14d}
rollout:
  waves:
    - {name: canary, canary: {max: 1, allowUncovered: true}}
    - {name: rest}
  limits: {maxInFlight: 2}
  failureBudget: {maxFailures: 0, onBreach: pause}
  gates:
    bakeTime: 1s
    node:
      probes:
        - {name: testsvc health, kind: http, url: "http://127.0.0.1:8080/health", timeout: 2s, interval: 1s}
      minHealthy: 3s
      healthyDeadline: 20s
autoApprove:
  security: {after: 7d}
`
	blFile := filepath.Join(f.dir, "fleet-security.yaml")
	writeFile(t, blFile, bl)
	cli("baseline", "apply", blFile)
	compliance := func() api.BaselineCompliance {
		t.Helper()
		var c api.BaselineCompliance
		if err := json.Unmarshal([]byte(cli("baseline", "compliance", "fleet-security", "-o", "json")), &c); err != nil {
			t.Fatalf("baseline compliance -o json: %v", err)
		}
		return c
	}
	if c := compliance(); c.Counts["non-compliant"] != 2 || c.Counts["compliant"] != 3 {
		t.Fatalf("compliance before remediation: %v, want 2 non-compliant (pi-a, pi-b) and 3 compliant\n%+v", c.Counts, c.Nodes)
	}

	// Remediation: the rollout of 1.1 to the two affected nodes, started
	// by the baseline's policy, run by the real agents with real apt.
	// Their package lists predate 1.1: the driver refreshes them.
	var rem api.BaselineRemediation
	if err := json.Unmarshal([]byte(cli("baseline", "remediate", "fleet-security", "-o", "json")), &rem); err != nil {
		t.Fatalf("baseline remediate -o json: %v", err)
	}
	if !slices.Equal(rem.Nodes, []string{"pi-a", "pi-b"}) || rem.Rollout == nil || !rem.AutoApproved {
		t.Fatalf("remediation: nodes %v, rollout %v, auto-approved %v (%s), skipped %v\n%s", rem.Nodes, rem.Rollout != nil, rem.AutoApproved, rem.Policy, rem.Skipped, rem.Plan)
	}
	if !strings.Contains(rem.Plan, "name: "+testPackage) || !strings.Contains(rem.Plan, `version: "1.1"`) {
		t.Errorf("remediation plan does not pin %s 1.1:\n%s", testPackage, rem.Plan)
	}
	t.Logf("remediation rollout %s: %v, closes %v", rem.Rollout.ID, rem.Nodes, rem.Closes)
	ro := f.waitTerminal(t, rem.Rollout.ID, 3*time.Minute)
	if ro.State != engine.RolloutSucceeded {
		t.Fatalf("remediation rollout %s, want succeeded:\n%s", ro.State, describeRollout(ro))
	}
	for _, n := range f.nodes {
		got := f.installed(t, n)
		switch n.name {
		case "pi-a", "pi-b":
			if got != "installed 1.1" {
				t.Errorf("%s after remediation: %q, want installed 1.1", n.name, got)
			}
			if log := f.mustSh(t, n, "cat /var/log/apt/history.log"); !strings.Contains(log, testPackage+":"+debArch()+" (1.0, 1.1)") {
				t.Errorf("%s: apt's history.log shows no upgrade 1.0 -> 1.1:\n%s", n.name, tail(log, 12))
			}
		default:
			if got != want[n.name] && !(want[n.name] == "" && !strings.HasPrefix(got, "installed")) {
				t.Errorf("%s was changed by the remediation: %q", n.name, got)
			}
		}
	}
	// The agents report their new facts after the step: exposure 0
	// affected, every node compliant.
	deadline := time.Now().Add(time.Minute)
	for {
		rep, c := exposure(), compliance()
		if rep.Counts["affected"] == 0 && c.Counts["compliant"] == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after the remediation: exposure %v, compliance %v\n%+v", rep.Counts, c.Counts, c.Nodes)
		}
		time.Sleep(time.Second)
	}

	// Drift: the remediation's own changes are explained by its steps;
	// a package changed by hand in pi-a's container is not.
	var drift api.DriftList
	if err := json.Unmarshal([]byte(cli("drift", "-o", "json")), &drift); err != nil {
		t.Fatal(err)
	}
	if len(drift.Events) != 0 {
		t.Fatalf("drift before any change by hand: %+v", drift.Events)
	}
	handAt := time.Now()
	f.mustSh(t, f.byName["pi-a"], "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "+testPackage+"=1.4 >/dev/null")
	deadline = time.Now().Add(45 * time.Second)
	for {
		if err := json.Unmarshal([]byte(cli("drift", "-o", "json")), &drift); err != nil {
			t.Fatal(err)
		}
		if len(drift.Events) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if len(drift.Events) != 1 {
		t.Fatalf("drift after %s was changed by hand on pi-a: %+v, want one event", testPackage, drift.Events)
	}
	d := drift.Events[0]
	if d.Node != "pi-a" || d.Package != testPackage || d.From != "1.1" || d.To != "1.4" || d.Kind != "changed-out-of-band" {
		t.Errorf("drift event %+v, want pi-a %s 1.1 -> 1.4 changed-out-of-band", d, testPackage)
	}
	t.Logf("drift of pi-a reported %s after the change by hand: %s", d.DetectedAt.Sub(handAt).Round(100*time.Millisecond), d.Reason)
	if out := cli("drift", "--node", "pi-a"); !strings.Contains(out, "changed-out-of-band") || !strings.Contains(out, "1 events") {
		t.Errorf("drover drift --node pi-a:\n%s", out)
	}
	if v, err := f.api.VerifyAudit(context.Background()); err != nil || !v.OK {
		t.Errorf("audit chain: %+v %v", v, err)
	}
}

// cliRunner returns a function that runs the drover CLI (the test's
// build) against the fleet's server as its operator, failing the test
// when the command fails; it returns the command's standard output.
func (f *fleet) cliRunner(t *testing.T) func(args ...string) string {
	caFile := filepath.Join(f.dir, "operator-ca.pem")
	writeFile(t, caFile, string(f.caPEM))
	return func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(f.bin, "drover"), args...)
		cmd.Env = append(os.Environ(), "DROVER_SERVER="+f.server, "DROVER_TOKEN="+f.api.Token, "DROVER_CA_CERT="+caFile)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("drover %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
