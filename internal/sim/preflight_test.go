package sim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
)

// TestPreflightBlockStopsBeforeAnyChange: zone b's repository lacks the
// target version (an injected pre-flight failure); with onFail: block
// the rollout fails in its pre-flight and no node is touched.
func TestPreflightBlockStopsBeforeAnyChange(t *testing.T) {
	p := mustPlan(t, basePlan+"preflight:\n  onFail: block\n")
	f, err := ParseFailure(`node.labels.zone == "b"`, FailPreflight)
	if err != nil {
		t.Fatal(err)
	}
	f.Reason = "apt: openssl=3.0.16: version not available"
	res := run(t, Config{Plan: p, Nodes: genFleet(t, 300), Seed: 1, Failures: []Failure{f}})
	if res.State != engine.RolloutFailed || res.Nodes.Touched != 0 {
		t.Fatalf("state %s, %d touched; want failed with none touched\n%s", res.State, res.Nodes.Touched, Summary(res))
	}
	if !strings.Contains(res.Reason, "pre-flight failed on 100 of 300 nodes") || !strings.Contains(res.Reason, "version not available") {
		t.Errorf("reason %q", res.Reason)
	}
	if res.MakespanSeconds > (time.Minute).Seconds() {
		t.Errorf("pre-flight took %gs of virtual time; answers arrive within 3s", res.MakespanSeconds)
	}
}

// TestPreflightExcludeSkipsFailingNodes: with onFail: exclude the zone b
// nodes are skipped with their reason and the rest succeed; so are
// nodes the compatibility matrix rejects.
func TestPreflightExcludeSkipsFailingNodes(t *testing.T) {
	p := mustPlan(t, basePlan+`preflight:
  onFail: exclude
compatibility:
  - name: no-windows
    require: node.os.family != "windows"
    message: openssl 3.0.16 is not built for Windows
`)
	f, err := ParseFailure(`node.labels.zone == "b"`, FailPreflight)
	if err != nil {
		t.Fatal(err)
	}
	nodes := genFleet(t, 300)
	excluded := 0
	for _, n := range nodes {
		if n.Labels["zone"] == "b" || n.Facts.OS.Family == "windows" {
			excluded++
		}
	}
	res := run(t, Config{Plan: p, Nodes: nodes, Seed: 1, Failures: []Failure{f}})
	if !res.Succeeded() || res.Nodes.Skipped != excluded || res.Nodes.Succeeded != 300-excluded || res.Nodes.Hurt != 0 {
		t.Fatalf("state %s, nodes %+v; want succeeded with %d skipped\n%s", res.State, res.Nodes, excluded, Summary(res))
	}
	saw := false
	for _, e := range res.Events {
		saw = saw || strings.Contains(e.Text, fmt.Sprintf("pre-flight failed on %d of 300 nodes", excluded)) && strings.Contains(e.Text, "onFail: exclude")
	}
	if !saw {
		t.Errorf("no exclusion event:\n%s", Summary(res))
	}
}
