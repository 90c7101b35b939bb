package fleettest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/baseline"
	"github.com/drover-dev/drover/internal/engine"
)

// TestDebianFleetHoldDrift: a baseline pins drover-testsvc at 1.1 on a
// real Debian container running 1.0. Its remediation, through the real
// server, agent and apt, installs 1.1 and holds it (apt-mark showhold
// lists it; the agent's facts report the hold) with no drift. Then
// someone runs apt-mark unhold in the container; the next facts report
// (after a rollout that changes nothing) is hold-removed drift naming
// the baseline. It logs how long each part took.
func TestDebianFleetHoldDrift(t *testing.T) {
	n := &node{name: "h1", suite: "bookworm", zone: "a", role: "fleet"}
	f := setup(t, []*node{n})
	ctx := context.Background()
	b := `name: testsvc-pin
selector: node.labels.role == "fleet"
rules:
  pins: [{package: ` + testPackage + `, version: "1.1"}]
`
	if _, err := f.api.ApplyBaseline(ctx, "pin.yaml", b); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	rem, err := f.api.RemediateBaseline(ctx, "testsvc-pin", api.BaselineRemediate{})
	if err != nil || rem.Rollout == nil || !strings.Contains(rem.Plan, "hold: true") {
		t.Fatalf("remediate: %+v %v", rem, err)
	}
	if ro := f.waitTerminal(t, rem.Rollout.ID, 3*time.Minute); ro.State != engine.RolloutSucceeded {
		t.Fatalf("remediation %s:\n%s", ro.State, describeRollout(ro))
	}
	t.Logf("remediation (install 1.1 and hold it): %s", time.Since(t0).Round(100*time.Millisecond))
	if got := f.installed(t, n); got != "installed 1.1" {
		t.Fatalf("after remediation: %s", got)
	}
	if held := strings.Fields(f.mustSh(t, n, "apt-mark showhold")); !slices.Equal(held, []string{testPackage}) {
		t.Fatalf("apt-mark showhold: %v", held)
	}
	waitFacts(t, f, n, func(h []string) bool { return slices.Equal(h, []string{testPackage}) })
	if d, err := f.api.ListDrift(ctx, n.name, 0); err != nil || len(d.Events) != 0 {
		t.Fatalf("drift after remediation: %+v %v", d, err)
	}

	f.mustSh(t, n, "apt-mark unhold "+testPackage) // by hand
	t0 = time.Now()
	id := f.create(t, planSpec{Name: "testsvc-1-1-again", Selector: fleetSelector, Version: "1.1", OnBreach: "pause"})
	if ro := f.waitTerminal(t, id, 3*time.Minute); ro.State != engine.RolloutSucceeded {
		t.Fatalf("rollout %s:\n%s", ro.State, describeRollout(ro))
	}
	var d api.DriftList
	deadline := time.Now().Add(time.Minute)
	for {
		d, err = f.api.ListDrift(ctx, n.name, 0)
		if err == nil && len(d.Events) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("hold removed by hand to drift recorded: %s", time.Since(t0).Round(100*time.Millisecond))
	if err != nil || len(d.Events) != 1 {
		t.Fatalf("drift: %+v %v", d, err)
	}
	if e := d.Events[0]; e.Kind != baseline.DriftHoldRemoved || e.Package != testPackage || e.Baseline != "testsvc-pin" || e.To != "1.1" {
		t.Fatalf("drift event %+v", e)
	}
}

// waitFacts waits until the server's facts of n have holds that ok
// accepts.
func waitFacts(t *testing.T, f *fleet, n *node, ok func([]string) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last string
	for time.Now().Before(deadline) {
		nd, err := f.api.GetNode(context.Background(), n.name)
		if err == nil && ok(nd.Facts.Holds) {
			return
		}
		last = fmt.Sprint(nd.Facts.Holds, err)
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: facts' holds %s", n.name, last)
}
