package preflight

import (
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// TestCompatibility: each node is checked against every row; a node
// breaking two rows gets both reasons; a row naming a label the node
// lacks is broken there, never assumed met.
func TestCompatibility(t *testing.T) {
	p, err := plan.Parse("compat.yaml", []byte(`apiVersion: drover.dev/v1
name: livepatch
target:
  selector: node.os.family == "ubuntu"
change:
  actions:
    - livepatch:
        id: "lp-2026-01"
        provider: canonical-livepatch
waves:
  - name: all
compatibility:
  - name: kernel
    require: node.kernel.startsWith("6.8.0-")
    message: the patch is built for the 6.8 kernels
  - name: channel
    require: node.labels.channel == "stable"
`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Preflight == nil || p.Preflight.OnFail != plan.PreflightBlock {
		t.Fatalf("a matrix brings the default pre-flight: %+v", p.Preflight)
	}
	node := func(id, kernel, channel string) *fleet.Node {
		n := &fleet.Node{ID: id, Labels: map[string]string{}}
		n.Facts.OS.Family, n.Facts.Kernel = "ubuntu", kernel
		if channel != "" {
			n.Labels["channel"] = channel
		}
		return n
	}
	got, err := Compatibility(p, []*fleet.Node{node("ok", "6.8.0-51-generic", "stable"), node("old", "5.15.0-130-generic", "stable"),
		node("both", "5.15.0-130-generic", "beta"), node("unlabelled", "6.8.0-51-generic", "")})
	if err != nil {
		t.Fatal(err)
	}
	want := []Incompatible{
		{Node: "old", Reasons: []string{`compatibility kernel: the patch is built for the 6.8 kernels (requires node.kernel.startsWith("6.8.0-"))`}},
		{Node: "both", Reasons: []string{`compatibility kernel: the patch is built for the 6.8 kernels (requires node.kernel.startsWith("6.8.0-"))`,
			`compatibility channel: requires node.labels.channel == "stable"`}},
		{Node: "unlabelled", Reasons: []string{`compatibility channel: requires node.labels.channel == "stable"`}},
	}
	if !slices.EqualFunc(got, want, func(a, b Incompatible) bool { return a.Node == b.Node && slices.Equal(a.Reasons, b.Reasons) }) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// TestCompatibilityChange: a rule reads the change as well as the node
// (the plan's JSON shape): a live patch supports some kernels, and a
// package version is allowed on some OS versions only.
func TestCompatibilityChange(t *testing.T) {
	p, err := plan.Parse("compat-change.yaml", []byte(`apiVersion: drover.dev/v1
name: openssl
target:
  selector: node.os.family == "debian"
change:
  actions:
    - package:
        packages: [{name: openssl, version: "3.0.15-1~deb12u1"}]
waves:
  - name: all
compatibility:
  - name: openssl-3-needs-bookworm
    require: >-
      !change.actions.exists(a, has(a.package) && a.package.packages.exists(p, p.name == "openssl" && p.version.startsWith("3.")))
      || node.os.version == "12"
    message: openssl 3 is built for Debian 12
  - name: reboot
    require: change.reboot == "if-required"
`))
	if err != nil {
		t.Fatal(err)
	}
	node := func(id, version string) *fleet.Node {
		n := &fleet.Node{ID: id}
		n.Facts.OS.Family, n.Facts.OS.Version = "debian", version
		return n
	}
	got, err := Compatibility(p, []*fleet.Node{node("bookworm", "12"), node("bullseye", "11")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Node != "bullseye" || len(got[0].Reasons) != 1 ||
		!strings.Contains(got[0].Reasons[0], "openssl 3 is built for Debian 12") {
		t.Fatalf("got %+v, want bullseye alone to break openssl-3-needs-bookworm", got)
	}

	// The same matrix on a change without openssl 3: every node passes.
	p.Change.Actions[0].Package.Packages[0].Version = "1.1.1w-0+deb11u1"
	if got, err := Compatibility(p, []*fleet.Node{node("bookworm", "12"), node("bullseye", "11")}); err != nil || len(got) != 0 {
		t.Fatalf("openssl 1.1: got %+v, %v; want every node compatible", got, err)
	}
}
