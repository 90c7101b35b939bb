package preflight

import (
	"slices"
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
