package remediate

import (
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/preflight"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/baseline"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/pkgversion"
	"github.com/drover-dev/drover/internal/plan"
)

func node(id, family, version string, pkgs map[string]string) *fleet.Node {
	return &fleet.Node{ID: id, Facts: fleet.Facts{OS: fleet.OS{Family: family, Version: version}, Packages: pkgs}}
}

// mixedFleet judges a Debian, RHEL, SUSE, Windows and macOS fleet
// against a baseline and returns the input of Build.
func mixedFleet(t *testing.T) Input {
	t.Helper()
	old := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	advs := []advisory.Advisory{
		{ID: "DSA-1", Severity: "high", Published: old, Affected: []advisory.Fix{{Ecosystem: "debian:12", Package: "openssl", Fixed: "3.0.15-1~deb12u1"}}},
		{ID: "RHSA-1", Severity: "high", Published: old, Affected: []advisory.Fix{{Ecosystem: "rhel:9", Package: "openssl", Fixed: "3.0.7-27.el9"}}},
		{ID: "SUSE-1", Severity: "critical", Published: old, Affected: []advisory.Fix{{Ecosystem: "suse:15.5", Package: "curl", Fixed: "8.0.1-150400.5.41.1"}}},
		{ID: "MS-1", Severity: "critical", Published: old, Affected: []advisory.Fix{{Ecosystem: "windows:10.0.20348", Fixed: "10.0.20348.2700", KB: "KB5043050"}}},
		{ID: "APPLE-1", Severity: "high", Published: old, Affected: []advisory.Fix{{Ecosystem: "macos:14", Fixed: "14.7", Product: "macOS Sonoma 14.7"}}},
	}
	nodes := []*fleet.Node{
		node("deb-1", "debian", "12", map[string]string{"openssl": "3.0.11-1~deb12u2", "tzdata": "2025a-1"}),
		node("deb-2", "debian", "12", map[string]string{"openssl": "3.0.15-1~deb12u1", "tzdata": "2025b-1"}), // tzdata newer than its pin
		node("rhel-1", "rhel", "9", map[string]string{"openssl": "3.0.7-24.el9", "tzdata": "2025b-1.el9"}),   // tzdata pin below: dnf cannot downgrade
		node("rhel-2", "rhel", "9", map[string]string{"openssl": "3.0.7-24.el9"}),
		node("sles-1", "suse", "15.5", map[string]string{"curl": "8.0.1-150400.5.32.1"}),
		node("win-1", "windows", "10.0.20348.2600", map[string]string{}),
		node("mac-1", "macos", "14.6", map[string]string{}),
		node("deb-ok", "debian", "12", map[string]string{"openssl": "3.0.15-1~deb12u1"}),
	}
	b, err := baseline.Parse("b.yaml", []byte(`name: fleet-security
rules:
  advisories: {minSeverity: high, within: 7d}
  pins:
    - {package: tzdata, version: 2025a-1, ecosystem: "debian:12"}
    - {package: tzdata, version: 2025a-1.el9, ecosystem: "rhel:9"}
rollout:
  waves:
    - name: canary
      nodes: 1
    - name: rest
  limits: {maxInFlight: 2}
autoApprove: {security: {after: 7d}}
`))
	if err != nil {
		t.Fatal(err)
	}
	j, err := baseline.NewJudge(b, advs, nil)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*fleet.Node{}
	var cs []baseline.NodeCompliance
	for _, n := range nodes {
		byID[n.ID] = n
		c, err := j.Node(n, time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	needs := baseline.Needs(cs, func(id string) pkgversion.Kind { k, _ := advisory.KindOf(byID[id].Facts.OS.Family); return k })
	return Input{Name: "remediate-fleet-security", Baseline: b, Needs: needs, Nodes: byID, Advisories: advs}
}

func TestBuildMixedFleet(t *testing.T) {
	in := mixedFleet(t)
	res, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"deb-1", "deb-2", "mac-1", "rhel-2", "sles-1", "win-1"}; !slices.Equal(res.Nodes, want) {
		t.Fatalf("nodes %v, want %v (skipped %v)", res.Nodes, want, res.Skipped)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Node != "rhel-1" || !strings.Contains(res.Skipped[0].Reason, "does not downgrade") {
		t.Fatalf("skipped %+v, want rhel-1 (pin below installed, dnf)", res.Skipped)
	}
	if got := res.Closes["win-1"]; !slices.Equal(got, []string{"MS-1"}) {
		t.Errorf("win-1 closes %v", got)
	}
	p := res.Plan
	if p == nil || p.Target.Selector != `node.id in ["deb-1", "deb-2", "mac-1", "rhel-2", "sles-1", "win-1"]` {
		t.Fatalf("plan target %+v", p)
	}
	if len(p.Change.Actions) != 1 || p.Change.Actions[0].Package == nil {
		t.Fatalf("actions %+v", p.Change.Actions)
	}
	a := p.Change.Actions[0]
	fam := a.Package.Families
	want := map[string]string{
		"debian":  "openssl=3.0.15-1~deb12u1 tzdata=2025a-1",
		"rhel":    "openssl=3.0.7-27.el9",
		"suse":    "curl=8.0.1-150400.5.41.1",
		"windows": "KB5043050=10.0.20348.2700",
		"macos":   "macOS Sonoma 14.7=14.7",
	}
	for f, w := range want {
		var got []string
		for _, pin := range fam[f] {
			got = append(got, pin.Name+"="+pin.Version)
		}
		if strings.Join(got, " ") != w {
			t.Errorf("family %s pins %v, want %s", f, got, w)
		}
	}
	if len(fam) != len(want) || !slices.Equal(a.NoRollbackOn, []string{"macos"}) {
		t.Errorf("families %v, noRollbackOn %v", fam, a.NoRollbackOn)
	}
	if len(p.Waves) != 2 || p.Waves[0].Name != "canary" || p.Limits.MaxInFlight.Count != 2 {
		t.Errorf("template not applied: waves %+v limits %+v", p.Waves, p.Limits)
	}
	// Deterministic: the same input gives the same YAML.
	again, err := Build(in)
	if err != nil || string(again.YAML) != string(res.YAML) {
		t.Errorf("second build differs (%v):\n%s\n---\n%s", err, res.YAML, again.YAML)
	}
}

func TestBuildConflictingVersionsDeferred(t *testing.T) {
	in := mixedFleet(t)
	// deb-2 also wants openssl, at another version than deb-1.
	for i := range in.Needs {
		if in.Needs[i].Node == "deb-2" {
			in.Needs[i].Packages["openssl"] = "3.0.16-1~deb12u1"
		}
	}
	res, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(res.Nodes, "deb-2") || !slices.ContainsFunc(res.Skipped, func(s Skip) bool {
		return s.Node == "deb-2" && strings.Contains(s.Reason, "remediate again")
	}) {
		t.Fatalf("deb-2 not deferred: nodes %v skipped %+v", res.Nodes, res.Skipped)
	}
}

func TestTemplateRejectsTargetAndActions(t *testing.T) {
	_, err := baseline.Parse("b.yaml", []byte("name: x\nrules: {}\nrollout:\n  waves: [{name: all}]\n  target: {selector: x}\n"))
	if err == nil || !strings.Contains(err.Error(), "b.yaml:5:3: rollout.target: a rollout template has no target") {
		t.Fatalf("err %v", err)
	}
	_, err = baseline.Parse("b.yaml", []byte("name: x\nrules: {}\nautoApprove: {feature: {after: 1d}}\n"))
	if err == nil || !strings.Contains(err.Error(), "b.yaml:3:15: autoApprove.feature: feature updates are never approved by policy") {
		t.Fatalf("err %v", err)
	}
	_, err = baseline.Parse("b.yaml", []byte("name: x\nrules: {}\nrollout:\n  waves: [{name: all, nodes: -1}]\n"))
	if err == nil || !strings.Contains(err.Error(), "b.yaml:4:30: rollout.waves[0].nodes: nodes must be at least 1, got -1") {
		t.Fatalf("err %v", err)
	}
}

func TestPolicy(t *testing.T) {
	in := mixedFleet(t)
	res, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	// Pins (tzdata) are feature updates: people approve.
	if ok, why := Policy(in.Baseline, res, in.Advisories, now); ok || !strings.Contains(why, "feature updates need people") {
		t.Fatalf("with pins: %v %q", ok, why)
	}
	in.Baseline.Rules.Pins = nil
	in.Needs = slices.DeleteFunc(in.Needs, func(n baseline.Need) bool { return n.Node == "deb-2" || n.Node == "rhel-1" })
	for i := range in.Needs {
		delete(in.Needs[i].Packages, "tzdata")
	}
	res, err = Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := Policy(in.Baseline, res, in.Advisories, now); !ok || !strings.Contains(why, "more than 7d ago") {
		t.Fatalf("security only: %v %q", ok, why)
	}
	if ok, why := Policy(in.Baseline, res, in.Advisories, time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC)); ok || !strings.Contains(why, "less than 7d ago") {
		t.Fatalf("too recent: %v %q", ok, why)
	}
	in.Baseline.AutoApprove = nil
	if ok, _ := Policy(in.Baseline, res, in.Advisories, now); ok {
		t.Fatal("no policy approved")
	}
}

func TestBuildNoDowngradeThroughAnotherNodesPins(t *testing.T) {
	in := mixedFleet(t)
	// deb-3 needs only curl but has openssl newer than deb-1's target:
	// the debian pins (openssl 3.0.15-1~deb12u1) would take it back.
	in.Nodes["deb-3"] = node("deb-3", "debian", "12", map[string]string{"openssl": "3.0.16-1~deb12u1", "curl": "7.88.1-10"})
	in.Needs = append(in.Needs, baseline.Need{Node: "deb-3", Packages: map[string]string{"curl": "7.88.1-10+deb12u8"}, Advisories: []string{"DSA-2"}})
	res, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(res.Nodes, "deb-3") || !slices.ContainsFunc(res.Skipped, func(s Skip) bool {
		return s.Node == "deb-3" && strings.Contains(s.Reason, "has openssl 3.0.16-1~deb12u1, newer than 3.0.15-1~deb12u1")
	}) {
		t.Fatalf("deb-3: nodes %v skipped %+v", res.Nodes, res.Skipped)
	}
}

// TestFeatureUpdatesNeedApproval: with featureUpdates: approval a plan
// with a pin asks for a start approval although its template asks for
// none, and a policy waiver (WaiveStartApprovals) cannot remove it; a
// template asking for more keeps its number; without pins nothing is
// added; with featureUpdates: allowed the template stands.
func TestFeatureUpdatesNeedApproval(t *testing.T) {
	in := mixedFleet(t)
	in.Baseline.Rules.FeatureUpdates = baseline.FeatureApproval
	in.WaiveStartApprovals = true
	res, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if !res.FeatureApproval || len(res.Features) == 0 || res.Plan.Approvals.Start != 1 || !strings.Contains(string(res.YAML), "start: 1") {
		t.Fatalf("pins under approval: %v %v start %d\n%s", res.FeatureApproval, res.Features, res.Plan.Approvals.Start, res.YAML)
	}
	in.Baseline.Rollout = "waves:\n  - name: all\napprovals: {start: 3}\n"
	if res, err = Build(in); err != nil || res.Plan.Approvals.Start != 3 {
		t.Fatalf("template's 3 kept: %v %+v", err, res.Plan)
	}
	in.Baseline.Rollout = "waves:\n  - name: all\napprovals: {start: 0}\n"
	if res, err = Build(in); err != nil || res.Plan.Approvals.Start != 1 {
		t.Fatalf("template's 0 raised: %v %+v", err, res.Plan)
	}
	in.Baseline.Rules.FeatureUpdates = baseline.FeatureAllowed
	in.WaiveStartApprovals = false
	if res, err = Build(in); err != nil || res.FeatureApproval || res.Plan.Approvals.Start != 0 {
		t.Fatalf("allowed: %v %v %+v", err, res.FeatureApproval, res.Plan.Approvals)
	}
	// Security only under approval: nothing added, the waiver applies.
	in.Baseline.Rules.FeatureUpdates = baseline.FeatureApproval
	in.Baseline.Rollout = "waves:\n  - name: all\napprovals: {start: 1}\n"
	in.Baseline.Rules.Pins = nil
	in.Needs = slices.DeleteFunc(in.Needs, func(n baseline.Need) bool { return n.Node == "deb-2" || n.Node == "rhel-1" })
	for i := range in.Needs {
		delete(in.Needs[i].Packages, "tzdata")
	}
	in.WaiveStartApprovals = true
	if res, err = Build(in); err != nil || res.FeatureApproval || len(res.Features) != 0 || res.Plan.Approvals.Start != 0 {
		t.Fatalf("security only: %v %v %+v", err, res.Features, res.Plan.Approvals)
	}
}

// TestPinsHeld: the baseline's pins are installed by an action that
// holds them (hold: true) and the advisories' fixes by one that does
// not; a plan of pins only has the one holding action; a plan where a
// family needs only fixes while another needs pins holds nothing and
// says why (TestBuildMixedFleet's fleet).
func TestPinsHeld(t *testing.T) {
	in := mixedFleet(t)
	in.Needs = slices.DeleteFunc(in.Needs, func(n baseline.Need) bool { return n.Node != "deb-1" })
	in.Nodes["deb-1"] = node("deb-1", "debian", "12", map[string]string{"openssl": "3.0.11-1~deb12u2", "tzdata": "2024a-1"})
	in.Needs[0].Packages["tzdata"] = "2025a-1" // as baseline.Needs gives it for tzdata 2024a-1
	res, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	acts := res.Plan.Change.Actions
	if len(acts) != 2 || acts[0].Package.Hold || !acts[1].Package.Hold || res.Unheld != "" ||
		acts[0].Package.Families["debian"][0].Name != "openssl" || acts[1].Package.Families["debian"][0].Name != "tzdata" || acts[1].Name != "pin fleet-security" {
		t.Fatalf("fixes and pins: %+v\n%s", acts, res.YAML)
	}
	for i := range in.Needs {
		delete(in.Needs[i].Packages, "openssl")
		in.Needs[i].Advisories = nil
	}
	if res, err = Build(in); err != nil || len(res.Plan.Change.Actions) != 1 || !res.Plan.Change.Actions[0].Package.Hold {
		t.Fatalf("pins only: %v %+v", err, res.Plan)
	}
	all := mixedFleet(t)
	if res, err = Build(all); err != nil || len(res.Plan.Change.Actions) != 1 || res.Plan.Change.Actions[0].Package.Hold || !strings.Contains(res.Unheld, "not held") {
		t.Fatalf("mixed: %v %q %+v", err, res.Unheld, res.Plan.Change.Actions)
	}
}

// livePatchFleet: Ubuntu 22.04 nodes behind on their kernel, for which
// a Canonical Livepatch fix exists, one of them also behind on openssl;
// a Rocky 9 node behind on its kernel with a kpatch module.
func livePatchFleet(t *testing.T, preferred bool) Input {
	t.Helper()
	old := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	advs := []advisory.Advisory{
		{ID: "USN-K", Severity: "high", Published: old, RebootRequired: true, LivePatches: []string{"LSN-0100-1"},
			Affected: []advisory.Fix{{Ecosystem: "ubuntu:22.04", Package: "linux", Fixed: "5.15.0-94.104"}}},
		{ID: "USN-O", Severity: "high", Published: old, Affected: []advisory.Fix{{Ecosystem: "ubuntu:22.04", Package: "openssl", Fixed: "3.0.2-0ubuntu1.15"}}},
		{ID: "RHSA-K", Severity: "high", Published: old, RebootRequired: true, LivePatches: []string{"kpatch-5_14_0-427-1"},
			Affected: []advisory.Fix{{Ecosystem: "rhel:9", Package: "kernel", Fixed: "5.14.0-427.50.1.el9_4"}}},
	}
	kern := map[string]string{"linux-image-5.15.0-91-generic": "5.15.0-91.101"}
	nodes := []*fleet.Node{
		node("u1", "ubuntu", "22.04", kern),
		node("u2", "ubuntu", "22.04", kern),
		node("u3", "ubuntu", "22.04", map[string]string{"linux-image-5.15.0-91-generic": "5.15.0-91.101", "openssl": "3.0.2-0ubuntu1.12"}),
		node("r1", "rhel", "9", map[string]string{"kernel": "5.14.0-427.40.1.el9_4"}),
	}
	y := "name: kernels\nrules:\n  advisories: {minSeverity: high, within: 7d}\n"
	if preferred {
		y += "  livePatchPreferred: true\n"
	}
	b, err := baseline.Parse("b.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	j, err := baseline.NewJudge(b, advs, nil)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*fleet.Node{}
	var cs []baseline.NodeCompliance
	for _, n := range nodes {
		byID[n.ID] = n
		c, err := j.Node(n, time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	needs := baseline.Needs(cs, func(id string) pkgversion.Kind { k, _ := advisory.KindOf(byID[id].Facts.OS.Family); return k })
	return Input{Name: "remediate-kernels", Baseline: b, Needs: needs, Nodes: byID, Advisories: advs}
}

// TestBuildLivePatchPreferred: with livePatchPreferred the kernel-only
// nodes of the first live-patch group (r1: kpatch, by ID first) get a
// live patch and no reboot; the Ubuntu nodes wait for the next call;
// without r1 the next plan is u1 and u2's Canonical Livepatch, u3 (also
// needing openssl) waiting; once they are patched, u3 gets openssl
// alone, its kernel left to the live patch, which the next plan loads.
// Without the rule: kernel packages and a reboot if required.
func TestBuildLivePatchPreferred(t *testing.T) {
	lp := func(a plan.Action) string {
		if a.LivePatch == nil {
			return ""
		}
		return a.LivePatch.ID + " " + a.LivePatch.Provider + " " + a.LivePatch.Artifact
	}
	in := livePatchFleet(t, true)
	res, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	acts := res.Plan.Change.Actions
	if !slices.Equal(res.Nodes, []string{"r1"}) || len(acts) != 1 || acts[0].LivePatch == nil ||
		lp(acts[0]) != "kpatch-5_14_0-427-1 kpatch kpatch-5_14_0-427-1.ko" ||
		res.Plan.Change.Reboot != plan.RebootNever || !slices.Equal(res.LivePatches, []string{"kpatch-5_14_0-427-1"}) {
		t.Fatalf("rhel live patch: nodes %v skipped %v\n%s", res.Nodes, res.Skipped, res.YAML)
	}
	if len(res.Skipped) != 3 || !strings.Contains(res.Skipped[0].Reason, "live patch kpatch-5_14_0-427-1 on rhel nodes") {
		t.Fatalf("skipped %+v", res.Skipped)
	}
	if !slices.Equal(res.Closes["r1"], []string{"RHSA-K"}) {
		t.Errorf("closes %v", res.Closes)
	}

	in.Needs = slices.DeleteFunc(in.Needs, func(n baseline.Need) bool { return n.Node == "r1" })
	if res, err = Build(in); err != nil {
		t.Fatal(err)
	}
	acts = res.Plan.Change.Actions
	if !slices.Equal(res.Nodes, []string{"u1", "u2"}) || len(acts) != 1 ||
		lp(acts[0]) != "LSN-0100-1 canonical-livepatch " || res.Plan.Change.Reboot != plan.RebootNever {
		t.Fatalf("ubuntu live patch: nodes %v skipped %v\n%s", res.Nodes, res.Skipped, res.YAML)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Node != "u3" || !strings.Contains(string(res.YAML), "livepatch:") {
		t.Fatalf("skipped %+v", res.Skipped)
	}

	// u1, u2 live-patched: the next call remediates u3 with packages.
	in.Needs = slices.DeleteFunc(in.Needs, func(n baseline.Need) bool { return n.Node != "u3" })
	if res, err = Build(in); err != nil {
		t.Fatal(err)
	}
	// u3 gets openssl now; its kernel is left to the live patch.
	if !slices.Equal(res.Nodes, []string{"u3"}) || res.Plan.Change.Actions[0].Package == nil || res.LivePatches != nil ||
		strings.Contains(string(res.YAML), "linux-image") || !strings.Contains(string(res.YAML), "openssl") ||
		!slices.Equal(res.Closes["u3"], []string{"USN-O"}) || !slices.Equal(res.KernelLeft, []string{"u3"}) {
		t.Fatalf("u3: %v closes %v kernel left %v\n%s", res.Nodes, res.Closes, res.KernelLeft, res.YAML)
	}
	// Then u3 needs only its kernel: the live patch.
	in.Needs[0].Advisories = []string{"USN-K"}
	delete(in.Needs[0].Packages, "openssl")
	if res, err = Build(in); err != nil || !slices.Equal(res.Nodes, []string{"u3"}) || !slices.Equal(res.LivePatches, []string{"LSN-0100-1"}) {
		t.Fatalf("u3 kernel: %v %v\n%s", err, res.Nodes, res.YAML)
	}

	off := livePatchFleet(t, false)
	if res, err = Build(off); err != nil {
		t.Fatal(err)
	}
	for _, a := range res.Plan.Change.Actions {
		if a.LivePatch != nil {
			t.Fatalf("live patch without the rule:\n%s", res.YAML)
		}
	}
	if res.Plan.Change.Reboot != plan.RebootIfRequired || !slices.Contains(res.Nodes, "u1") || res.KernelLeft != nil ||
		!strings.Contains(string(res.YAML), "linux-image") {
		t.Fatalf("without the rule: %v\n%s", res.Nodes, res.YAML)
	}
}

// TestDefaultTemplateStartsOnFewNodesOfManyReleases: a baseline without
// a rollout template remediating two nodes of two releases (Debian 12
// and 13, two zones) gets a plan that can start. Its canary (10% of
// the target: one node) cannot cover both strata; the default template
// lists the uncovered stratum instead of refusing the plan, which it
// did with `canary: true` (the fleet test's remediation).
func TestDefaultTemplateStartsOnFewNodesOfManyReleases(t *testing.T) {
	old := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	advs := []advisory.Advisory{{ID: "DSA-9999-1", Severity: "critical", Published: old, Affected: []advisory.Fix{
		{Ecosystem: "debian:12", Package: "drover-testsvc", Fixed: "1.1"}, {Ecosystem: "debian:13", Package: "drover-testsvc", Fixed: "1.1"}}}}
	nodes := []*fleet.Node{
		node("pi-a", "debian", "12", map[string]string{"drover-testsvc": "1.0"}),
		node("pi-b", "debian", "13", map[string]string{"drover-testsvc": "1.0"}),
	}
	nodes[0].Labels, nodes[1].Labels = map[string]string{"zone": "a"}, map[string]string{"zone": "b"}
	b, err := baseline.Parse("b.yaml", []byte("name: fleet-security\nrules:\n  advisories: {minSeverity: high, within: 14d}\n"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := baseline.NewJudge(b, advs, nil)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*fleet.Node{}
	var cs []baseline.NodeCompliance
	for _, n := range nodes {
		byID[n.ID] = n
		c, err := j.Node(n, time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	needs := baseline.Needs(cs, func(string) pkgversion.Kind { return pkgversion.Dpkg })
	res, err := Build(Input{Name: "remediate-fleet-security", Baseline: b, Needs: needs, Nodes: byID, Advisories: advs})
	if err != nil || res.Plan == nil || !slices.Equal(res.Nodes, []string{"pi-a", "pi-b"}) {
		t.Fatalf("build: %v, nodes %v", err, res.Nodes)
	}
	a, err := engine.Assign(res.Plan, nodes, 1)
	if err != nil {
		t.Fatal(err)
	}
	if es := preflight.Cover(res.Plan, a); len(es) != 0 {
		t.Fatalf("the default template's canary refuses the plan: %v\n%s", es, res.YAML)
	}
	canary := 0
	for _, n := range a.Nodes {
		if n.State.Wave == "canary" {
			canary++
		}
	}
	if canary != 1 || len(a.Uncovered) != 1 {
		t.Errorf("canary of %d nodes, %d uncovered strata: want 1 node and the other stratum listed", canary, len(a.Uncovered))
	}
}
