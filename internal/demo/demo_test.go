package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the embedded default end to end: a real server on SQLite,
// 40 real agents over HTTP on loopback, both bundled plans.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	sum, err := Run(ctx, Options{Progress: &out, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	t.Logf("demo output:\n%s", out.String())
	if len(sum.Rollouts) != 2 || sum.Nodes != 40 {
		t.Fatalf("summary: %+v", sum)
	}
	bad, good := sum.Rollouts[0], sum.Rollouts[1]
	// 1: the canary (one node per os.family × hardware.class of the demo
	// fleet: 14 strata) catches the gen3 fault, the rollout halts and
	// rolls the canary back; nothing outside the canary was touched.
	if !bad.Halted || bad.State != "halted" {
		t.Errorf("bad change: state %s halted %v (%s)", bad.State, bad.Halted, bad.HaltReason)
	}
	if !strings.Contains(bad.HaltReason, "canary") {
		t.Errorf("halt reason does not name the canary: %s", bad.HaltReason)
	}
	// Localised only to what the hurt nodes share: gen3 or nothing (one
	// failure, the canary's budget of 0, is too few to tell).
	for _, l := range bad.Localisation {
		if !strings.Contains(l, "hardware.class=gen3") {
			t.Errorf("bad change localised to something other than gen3: %s", l)
		}
	}
	if len(bad.Localisation) == 0 && bad.NodesFailed > 0 && !strings.Contains(out.String(), "not localised: ") {
		t.Errorf("the demo does not say why the halt is not localised:\n%s", out.String())
	}
	if len(bad.TouchedOutside) > 0 {
		t.Errorf("nodes outside the canary touched: %v", bad.TouchedOutside)
	}
	if bad.NodesRolledBack == 0 || bad.NodesTouched > 14 || bad.NodesRolledBack != bad.NodesTouched {
		t.Errorf("bad change: touched %d, rolled back %d", bad.NodesTouched, bad.NodesRolledBack)
	}
	// 2: the good change reaches every node.
	if good.State != "succeeded" || good.NodesSucceeded != 40 || good.NodesFailed != 0 {
		t.Errorf("good change: %+v", good)
	}
	// How long the demo takes is measured (README), not asserted here: a
	// timed unit test fails on a loaded machine and proves nothing.
	t.Logf("demo took %.0fs", sum.Seconds)
}
