package baseline

import (
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

const good = `name: prod-security
selector: 'node.labels.env == "prod"'
rules:
  advisories: {minSeverity: high, within: 14d}
  pins:
    - {package: curl, version: 7.88.1-10+deb12u5, ecosystem: "debian:12"}
  featureUpdates: approval
  livePatchPreferred: true
`

func TestParse(t *testing.T) {
	b, err := Parse("prod.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "prod-security" || b.Rules.Advisories.Within != 14*24*time.Hour || b.Rules.Advisories.MinSeverity != "high" ||
		len(b.Rules.Pins) != 1 || b.Rules.Pins[0].Ecosystem != "debian:12" || !b.Rules.LivePatchPreferred || b.Rules.FeatureUpdates != "approval" {
		t.Fatalf("parsed %+v", b)
	}
	for _, c := range []struct{ in, want string }{
		{"", "f.yaml:1:1: file is empty"},
		{"name: x\nrules:\n  advisories: {minSeverity: severe, within: 1d}\n", "f.yaml:3:29: rules.advisories.minSeverity: \"severe\""},
		{"name: x\nrules:\n  pins:\n    - {package: curl}\n", "f.yaml:4:7: rules.pins[0]: package and version are required"},
		{"name: x\nrulez: {}\n", "f.yaml:2:1: rulez: unknown field"},
		{"name: x\nrules:\n  advisories: {minSeverity: high, within: -1d}\n", "f.yaml:3:43: rules.advisories.within: a duration must not be negative"},
		{"name: x\nselector: 'node.labels.env =='\n", "f.yaml: selector:"},
		{"name: X_Y\n", "f.yaml: name \"X_Y\""},
		{"name: x\nrules:\n  pins:\n    - {package: a, version: \"1\"}\n    - {package: a, version: \"2\"}\n", "rules.pins[1]: pins a again (rules.pins[0])"},
	} {
		_, err := Parse("f.yaml", []byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.in, err, c.want)
		}
	}
}

func debNode(id, env string, pkgs map[string]string) *fleet.Node {
	return &fleet.Node{ID: id, Labels: map[string]string{"env": env},
		Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Packages: pkgs}}
}

func TestCompliance(t *testing.T) {
	b, err := Parse("prod.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	advs := []advisory.Advisory{
		{ID: "DSA-1", Severity: "critical", Published: now.Add(-30 * 24 * time.Hour), Source: "osv",
			Affected: []advisory.Fix{{Ecosystem: "debian:12", Package: "openssl", Fixed: "3.0.15-1~deb12u1"}}},
		{ID: "DSA-2", Severity: "high", Published: now.Add(-2 * 24 * time.Hour), Source: "osv", // within its 14 days
			Affected: []advisory.Fix{{Ecosystem: "debian:12", Package: "openssl", Fixed: "3.0.16-1~deb12u1"}}},
		{ID: "DSA-3", Severity: "medium", Published: now.Add(-90 * 24 * time.Hour), Source: "osv", // below high
			Affected: []advisory.Fix{{Ecosystem: "debian:12", Package: "openssl", Fixed: "3.0.17-1"}}},
	}
	ex := []Exemption{{Baseline: b.Name, Node: "db-1", By: "alice", Reason: "vendor freeze", Expires: now.Add(time.Hour)},
		{Baseline: b.Name, Node: "web-3", By: "bob", Reason: "expired", Expires: now.Add(-time.Hour)}}
	j, err := NewJudge(b, advs, ex)
	if err != nil {
		t.Fatal(err)
	}
	old := map[string]string{"openssl": "3.0.11-1~deb12u2", "curl": "7.88.1-10+deb12u5"}
	cases := []struct {
		n      *fleet.Node
		status Status
		viol   int
	}{
		{debNode("web-1", "prod", old), NonCompliant, 1},
		{debNode("web-2", "prod", map[string]string{"openssl": "3.0.15-1~deb12u1", "curl": "7.88.1-10+deb12u5"}), Compliant, 0},
		{debNode("web-3", "prod", map[string]string{"openssl": "3.0.15-1~deb12u1", "curl": "8.0"}), NonCompliant, 1},
		{debNode("db-1", "prod", old), Exempt, 0},
		{debNode("dev-1", "dev", old), NotSelected, 0},
		{&fleet.Node{ID: "odd", Labels: map[string]string{"env": "prod"}}, Unknown, 0},
	}
	var all []NodeCompliance
	for _, c := range cases {
		got, err := j.Node(c.n, now)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != c.status || len(got.Violations) != c.viol {
			t.Errorf("%s: got %+v, want %s with %d violations", c.n.ID, got, c.status, c.viol)
		}
		all = append(all, got)
	}
	if v := all[0].Violations[0]; v.Advisory != "DSA-1" || v.Want != "3.0.15-1~deb12u1" || !v.Deadline.Equal(advs[0].Published.Add(14*24*time.Hour)) || all[0].Pending != 1 {
		t.Errorf("web-1 violation %+v pending %d", v, all[0].Pending)
	}
	if all[3].Exemption.By != "alice" {
		t.Errorf("db-1 exemption %+v", all[3].Exemption)
	}
	needs := Needs(all, nil)
	if len(needs) != 2 || needs[0].Packages["openssl"] != "3.0.15-1~deb12u1" || needs[1].Packages["curl"] != "7.88.1-10+deb12u5" ||
		len(needs[1].Downgrade) != 1 {
		t.Errorf("needs %+v", needs)
	}
}

func TestDetectDrift(t *testing.T) {
	old := fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"},
		Packages: map[string]string{"openssl": "3.0.11", "curl": "7.88", "linux-image-amd64": "6.1.1", "vim": "9.0"}}
	nw := fleet.Facts{OS: old.OS, Packages: map[string]string{"openssl": "3.0.15", "curl": "8.0", "linux-image-amd64": "6.1.2", "htop": "3.2"}}
	var ex Explainer
	ex.Add([]plan.Action{{Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: "openssl", Version: "3.0.15"}}}}, {Kernel: &plan.KernelAction{Version: "6.1.2"}}}, false)
	pins := map[string][]Pin{"prod": {{Package: "curl", Version: "7.88"}}}
	got := DetectDrift("web-1", old, nw, &ex, pins)
	var kinds []string
	for _, d := range got {
		kinds = append(kinds, d.Kind+" "+d.Package+" "+d.From+">"+d.To)
	}
	want := []string{"changed-out-of-band curl 7.88>8.0", "changed-out-of-band htop >3.2", "changed-out-of-band vim 9.0>", "pin-violated curl 7.88>8.0"}
	if strings.Join(kinds, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", kinds, want)
	}
	if d := DetectDrift("web-1", fleet.Facts{}, nw, nil, pins); d != nil {
		t.Errorf("first report drifted: %+v", d)
	}
	ex.Add([]plan.Action{{Script: &plan.ScriptAction{}}}, true)
	if d := DetectDrift("web-1", old, nw, &ex, nil); len(d) != 0 {
		t.Errorf("a script explains everything, got %+v", d)
	}
}

// TestDriftAfterASucceededStep: a succeeded apply step explains its
// packages' moves to their pinned versions only; the same package
// changed again by hand within the explain window (1.1 -> 1.4 after a
// rollout of 1.1, the fleet test's apt-get install) is drift. A step in
// flight or rolling back explains any version of its packages.
func TestDriftAfterASucceededStep(t *testing.T) {
	step := []plan.Action{{Package: &plan.PackageAction{Families: map[string][]plan.PackagePin{
		"debian": {{Name: "drover-testsvc", Version: "1.1"}}, "rhel": {{Name: "drover-testsvc", Version: "1.1-1.el9"}}}}}}
	at := func(v string) fleet.Facts {
		return fleet.Facts{Packages: map[string]string{"drover-testsvc": v, "curl": "7.88"}}
	}
	var done Explainer
	done.Add(step, true)
	if d := DetectDrift("pi-a", at("1.0"), at("1.1"), &done, nil); len(d) != 0 {
		t.Errorf("the step's own upgrade is drift: %+v", d)
	}
	d := DetectDrift("pi-a", at("1.1"), at("1.4"), &done, nil)
	if len(d) != 1 || d[0].Kind != DriftChanged || d[0].From != "1.1" || d[0].To != "1.4" {
		t.Errorf("1.1 -> 1.4 by hand after a succeeded rollout of 1.1: %+v, want changed-out-of-band", d)
	}
	if d := DetectDrift("pi-a", at("1.1"), fleet.Facts{Packages: map[string]string{"curl": "7.88"}}, &done, nil); len(d) != 1 {
		t.Errorf("removed by hand after a succeeded rollout: %+v, want drift", d)
	}
	var inFlight Explainer
	inFlight.Add(step, false)
	if d := DetectDrift("pi-a", at("1.1"), at("1.0"), &inFlight, nil); len(d) != 0 {
		t.Errorf("a step in flight or rolling back explains any version of its packages: %+v", d)
	}
}

func TestSameRulesRolloutAndPolicy(t *testing.T) {
	a, err := Parse("a.yaml", []byte("name: x\nrules: {}\nrollout:\n  waves: [{name: all}]\nautoApprove: {security: {after: 7d}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !SameRules(a, a) {
		t.Fatal("a baseline differs from itself")
	}
	b := a
	b.Rollout = "waves: [{name: every}]\n"
	c := a
	c.AutoApprove = &AutoApprove{Security: &AfterPolicy{After: a.AutoApprove.Security.After * 2}}
	d := a
	d.AutoApprove = nil
	for i, o := range []Baseline{b, c, d} {
		if SameRules(a, o) {
			t.Errorf("%d: a changed template or policy is the same rules", i)
		}
	}
}

// TestDetectDriftHoldRemoved: holds gone from the facts. nginx's hold
// removed by hand is drift; openssl's, removed while a drover step
// touched openssl, is explained, unless a baseline pins it (then its
// baseline is named, even though the step explains it); a hold whose
// package was removed is the removal's drift only; holds kept or added
// are none; facts whose only change is a hold are judged.
func TestDetectDriftHoldRemoved(t *testing.T) {
	pkgs := map[string]string{"openssl": "3.0.15", "nginx": "1.22", "curl": "7.88", "vim": "9.0"}
	old := fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Packages: pkgs, Holds: []string{"curl", "nginx", "openssl", "vim"}}
	nw := fleet.Facts{OS: old.OS, Packages: map[string]string{"openssl": "3.0.15", "nginx": "1.22", "curl": "7.88"}, Holds: []string{"curl", "zsh"}}
	var ex Explainer
	ex.Add([]plan.Action{{Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: "openssl", Version: "3.0.15"}}}}}, false) // in flight
	got := DetectDrift("web-1", old, nw, &ex, nil)
	var kinds []string
	for _, d := range got {
		kinds = append(kinds, d.Kind+" "+d.Package+" "+d.Baseline)
	}
	want := []string{"changed-out-of-band vim ", "hold-removed nginx "}
	if strings.Join(kinds, "|") != strings.Join(want, "|") || !strings.Contains(got[1].Reason, "hold on nginx 1.22 removed by no drover step") {
		t.Errorf("got %q (%+v), want %q", kinds, got, want)
	}
	// A step that succeeded placed holds; it explains no removal.
	var done Explainer
	done.Add([]plan.Action{{Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: "openssl", Version: "3.0.15"}}}}}, true)
	kinds = nil
	for _, d := range DetectDrift("web-1", old, nw, &done, nil) {
		kinds = append(kinds, d.Kind+" "+d.Package)
	}
	if want := "changed-out-of-band vim|hold-removed nginx|hold-removed openssl"; strings.Join(kinds, "|") != want {
		t.Errorf("after a succeeded step: got %q, want %q", kinds, want)
	}
	pins := map[string][]Pin{"prod": {{Package: "openssl", Version: "3.0.15"}}, "other": {{Package: "openssl", Version: "3.0.15", Ecosystem: "rhel:9"}}}
	got = DetectDrift("web-1", old, nw, &ex, pins)
	kinds = nil
	for _, d := range got {
		kinds = append(kinds, d.Kind+" "+d.Package+" "+d.Baseline)
	}
	want = []string{"changed-out-of-band vim ", "hold-removed nginx ", "hold-removed openssl prod"}
	if strings.Join(kinds, "|") != strings.Join(want, "|") || !strings.Contains(got[2].Reason, "baseline prod: openssl is pinned at 3.0.15 and no longer held") {
		t.Errorf("with a pin: got %q (%+v), want %q", kinds, got, want)
	}
	// Only a hold changed: still drift.
	onlyHold := fleet.Facts{OS: old.OS, Packages: pkgs, Holds: []string{"curl", "openssl", "vim"}}
	if d := DetectDrift("web-1", old, onlyHold, nil, nil); len(d) != 1 || d[0].Kind != DriftHoldRemoved || d[0].Package != "nginx" || d[0].From != "1.22" || d[0].To != "1.22" {
		t.Errorf("hold only: %+v", d)
	}
	if d := DetectDrift("web-1", onlyHold, old, nil, nil); len(d) != 0 {
		t.Errorf("a hold added is no drift: %+v", d)
	}
}
