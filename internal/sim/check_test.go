package sim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
)

// checkPlan has two waves, max 2 in flight, 1 per zone, a rate of 3 per
// 10m, zone c held back until w1, a weekday-morning window and a freeze;
// it opts out of the node pre-flight so that each case's hand-made starts
// break only the rule the case is about.
const checkPlan = `apiVersion: drover.dev/v1
name: check
target:
  selector: "true"
change:
  actions:
    - package:
        packages:
          - name: openssl
            version: 3.0.16
waves:
  - name: w1
    nodes: 2
    failureBudget: {maxFailures: 0}
  - name: w2
limits:
  maxInFlight: 2
  caps:
    zone: 1
  rate:
    starts: 3
    per: 10m
  holdBack:
    key: zone
    domain: c
    until: [w1]
windows:
  definitions:
    mornings:
      timeZone: UTC
      spans:
        - days: [Mon, Tue, Wed, Thu, Fri]
          start: "08:00"
          duration: 4h
  label: window
  cutoff: 30m
  freezes:
    - name: new-year
      from: 2026-01-01
      to: 2026-01-02
preflight:
  onFail: ignore
`

// monday10 is inside the mornings window.
var monday10 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func checkInput(t *testing.T) engine.Input {
	t.Helper()
	p := mustPlan(t, checkPlan)
	var nodes []engine.Node
	for i, zone := range []string{"a", "b", "c", "a", "b", "c"} {
		n := &fleet.Node{ID: fmt.Sprintf("n%d", i+1), Labels: map[string]string{"zone": zone}}
		if i == 4 {
			n.Labels["window"] = "mornings"
		}
		wave := "w2"
		if i < 2 {
			wave = "w1"
		}
		nodes = append(nodes, engine.Node{Node: n, State: engine.NodeState{Phase: engine.PhasePending, Wave: wave}})
	}
	return engine.Input{
		RolloutID: "r", Plan: p, State: engine.RolloutRunning, Nodes: nodes, Now: monday10,
		Waves: map[string]engine.WaveStatus{"w1": {State: engine.WaveRunning}, "w2": {State: engine.WavePending}},
	}
}

func start(ids ...string) []engine.Start {
	var out []engine.Start
	for _, id := range ids {
		out = append(out, engine.Start{Node: id, Attempt: 1})
	}
	return out
}

func rules(vs []Violation) string {
	var s []string
	for _, v := range vs {
		s = append(s, string(v.Rule))
	}
	return strings.Join(s, ",")
}

func TestCheckRules(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(in *engine.Input, d *engine.Decision)
		rules string
	}{
		{name: "clean", edit: func(in *engine.Input, d *engine.Decision) { d.Starts = start("n1", "n2") }},
		{name: "max in flight", rules: "max-in-flight", edit: func(in *engine.Input, d *engine.Decision) {
			in.Waves["w2"] = engine.WaveStatus{State: engine.WaveRunning}
			in.Waves["w1"] = engine.WaveStatus{State: engine.WaveSucceeded}
			in.Nodes[0].State.Phase = engine.PhaseRunning
			in.Nodes[0].State.StartedAt = monday10.Add(-time.Hour)
			d.Starts = start("n5", "n6")
		}},
		{name: "zone cap", rules: "cap", edit: func(in *engine.Input, d *engine.Decision) {
			in.Nodes[0].State.Phase = engine.PhaseVerifying
			in.Nodes[1].Node.Labels["zone"] = "a"
			in.Nodes[1].State.Phase = engine.PhasePending
			d.Starts = start("n2")
		}},
		{name: "hold-back", rules: "hold-back", edit: func(in *engine.Input, d *engine.Decision) {
			in.Waves["w2"] = engine.WaveStatus{State: engine.WaveRunning}
			d.Starts = start("n3")
		}},
		{name: "hold-back open once w1 succeeds in the same decision", edit: func(in *engine.Input, d *engine.Decision) {
			in.Nodes[0].State.Phase = engine.PhaseSucceeded
			in.Nodes[1].State.Phase = engine.PhaseSucceeded
			d.Waves = []engine.WaveTransition{{Wave: "w1", To: engine.WaveSucceeded}, {Wave: "w2", To: engine.WaveRunning}}
			d.Starts = start("n3")
		}},
		{name: "window", rules: "window", edit: func(in *engine.Input, d *engine.Decision) {
			in.Now = monday10.Add(105 * time.Minute) // 11:45, within the 30m cutoff of 12:00
			in.Waves["w2"] = engine.WaveStatus{State: engine.WaveRunning}
			in.Waves["w1"] = engine.WaveStatus{State: engine.WaveSucceeded}
			d.Starts = start("n5")
		}},
		{name: "freeze", rules: "freeze", edit: func(in *engine.Input, d *engine.Decision) {
			in.Now = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
			in.Waves["w2"] = engine.WaveStatus{State: engine.WaveRunning}
			in.Waves["w1"] = engine.WaveStatus{State: engine.WaveSucceeded}
			d.Starts = start("n5")
		}},
		{name: "rate", rules: "rate", edit: func(in *engine.Input, d *engine.Decision) {
			in.Waves["w2"] = engine.WaveStatus{State: engine.WaveRunning}
			in.Waves["w1"] = engine.WaveStatus{State: engine.WaveSucceeded}
			for i := range 3 {
				in.Nodes[i].State.Phase = engine.PhaseSucceeded
				in.Nodes[i].State.StartedAt = monday10.Add(-time.Duration(i+1) * time.Minute)
			}
			d.Starts = start("n4")
		}},
		{name: "restart", rules: "restart", edit: func(in *engine.Input, d *engine.Decision) {
			in.Nodes[0].State.Phase = engine.PhaseSucceeded
			d.Starts = start("n1")
		}},
		{name: "budget", rules: "budget", edit: func(in *engine.Input, d *engine.Decision) {
			in.Nodes[0].State.Phase = engine.PhaseQuarantined
			d.Starts = start("n2")
		}},
		{name: "budget breached by this decision's transition", rules: "budget", edit: func(in *engine.Input, d *engine.Decision) {
			in.Nodes[0].State.Phase = engine.PhaseVerifying
			d.Nodes = []engine.NodeTransition{{Node: "n1", From: engine.PhaseVerifying, To: engine.PhaseFailed}}
			in.Nodes[1].Node.Labels["zone"] = "b"
			d.Starts = start("n2")
		}},
		{name: "paused", rules: "stopped", edit: func(in *engine.Input, d *engine.Decision) {
			in.State, d.State = engine.RolloutPaused, engine.RolloutPaused
			d.Starts = start("n1")
		}},
		{name: "self resume", rules: "stopped", edit: func(in *engine.Input, d *engine.Decision) {
			in.State = engine.RolloutPaused
		}},
		{name: "wave not running", rules: "wave", edit: func(in *engine.Input, d *engine.Decision) {
			d.Starts = start("n4")
		}},
		{name: "unknown node", rules: "unknown-node", edit: func(in *engine.Input, d *engine.Decision) {
			d.Starts = start("nope")
		}},
		{name: "rollbacks take slots too", rules: "max-in-flight", edit: func(in *engine.Input, d *engine.Decision) {
			in.State, d.State = engine.RolloutRollingBack, engine.RolloutRollingBack
			for i := range 3 {
				in.Nodes[i].State.Phase = engine.PhaseSucceeded
			}
			d.Rollbacks = start("n1", "n2", "n3")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := checkInput(t)
			d := engine.Decision{State: in.State}
			tt.edit(&in, &d)
			got := rules(Check(in, d))
			if got != tt.rules {
				t.Errorf("violations %q, want %q: %v", got, tt.rules, Check(in, d))
			}
		})
	}
}

func TestCheckerRemembers(t *testing.T) {
	in := checkInput(t)
	c, err := NewChecker(in.Plan, in.Nodes)
	if err != nil {
		t.Fatal(err)
	}
	if vs := c.Check(in, engine.Decision{State: engine.RolloutRunning, Starts: start("n1")}); len(vs) > 0 {
		t.Fatal(vs)
	}
	// The shell applies the start; the node comes back rolled back and is
	// started again: allowed only because its rollback was ordered.
	in.Nodes[0].State.Phase = engine.PhaseRolledBack
	if vs := c.Check(in, engine.Decision{State: engine.RolloutRunning, Starts: start("n1")}); rules(vs) != "restart" {
		t.Fatalf("restart without rollback: %v", vs)
	}
	c, _ = NewChecker(in.Plan, in.Nodes)
	in.Nodes[0].State.Phase = engine.PhaseSucceeded
	c.Check(in, engine.Decision{State: engine.RolloutRollingBack, Rollbacks: start("n1")})
	in.Nodes[0].State.Phase = engine.PhaseRolledBack
	if vs := c.Check(in, engine.Decision{State: engine.RolloutRunning, Starts: start("n1")}); len(vs) > 0 {
		t.Fatalf("restart after rollback: %v", vs)
	}
	// A breach is sticky: starts later are violations even once the failed
	// node is rolled back.
	in.Nodes[1].State.Phase = engine.PhaseFailed
	c.Check(in, engine.Decision{State: engine.RolloutRunning})
	in.Nodes[1].State.Phase = engine.PhaseRolledBack
	in.Nodes[0].State.Phase = engine.PhaseRolledBack
	if vs := c.Check(in, engine.Decision{State: engine.RolloutRunning, Starts: start("n1")}); !strings.Contains(rules(vs), "budget") {
		t.Fatalf("start after breach: %v", vs)
	}
	if len(c.Breaches()) != 1 || c.Breaches()[0].Wave != "w1" {
		t.Fatalf("breaches %+v", c.Breaches())
	}
}

func TestCheckAssignment(t *testing.T) {
	p := mustPlan(t, basePlan)
	nodes := genFleet(t, 200)
	a, err := engine.Assign(p, nodes, 1)
	if err != nil {
		t.Fatal(err)
	}
	if vs := CheckAssignment(p, a); len(vs) > 0 {
		t.Fatalf("engine assignment: %v", vs)
	}
	// Give the canary's first node the stratum of its second: a stratum is
	// now neither covered nor reported.
	var canary []int
	for i := range a.Nodes {
		if a.Nodes[i].State.Wave == "canary" {
			canary = append(canary, i)
		}
	}
	first, second := canary[0], canary[1]
	for i := range a.Nodes {
		if i != first && a.Nodes[i].State.Wave == "rest" && sameStratum(&a.Nodes[i], &a.Nodes[second], p.Waves[0].Spread) {
			a.Nodes[first].State.Wave, a.Nodes[i].State.Wave = "rest", "canary"
			break
		}
	}
	if vs := CheckAssignment(p, a); len(vs) == 0 {
		t.Fatal("duplicate stratum in the canary: want a violation")
	}
}

func sameStratum(a, b *engine.Node, keys []string) bool {
	for _, k := range keys {
		if a.Value(k) != b.Value(k) {
			return false
		}
	}
	return true
}
