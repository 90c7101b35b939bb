package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/disruption"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/window"
)

func fleetPlan(t testing.TB, name, extra string) *plan.Plan {
	t.Helper()
	text := fmt.Sprintf(`apiVersion: drover.dev/v1
name: %s
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - package:
        packages: [{name: openssl, version: "3.0.16"}]
waves:
  - name: canary
    nodes: 2
  - name: rest
%s`, name, extra)
	p, err := plan.Parse(name+".yaml", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return p
}

// TestRunFleetTwoRollouts: two rollouts of the whole fleet, each with
// zone caps of 3, under a fleet budget of 1 per zone: both finish, no
// zone ever has more than one node in flight across them, and they wait
// for each other's nodes and for the budget.
func TestRunFleetTwoRollouts(t *testing.T) {
	nodes := genFleet(t, 60)
	limits := "limits:\n  maxInFlight: 6\n  caps:\n    zone: 3\n"
	res, err := RunFleet(context.Background(), FleetConfig{
		Rollouts: []Config{{Plan: fleetPlan(t, "openssl", limits), Seed: 1}, {Plan: fleetPlan(t, "kernel", limits), Seed: 2}},
		Nodes:    nodes,
		Budgets:  []disruption.Budget{{Name: "zones", MaxUnavailable: plan.Quantity{Count: 1}, Per: "zone"}},
		Seed:     1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.InvariantViolations != 0 {
		t.Fatalf("violations: %v", res.Violations)
	}
	for _, r := range res.Rollouts {
		if r.State != engine.RolloutSucceeded || r.InvariantViolations != 0 {
			t.Fatalf("rollout %s: %s (%s), %d violations", r.Rollout, r.State, r.Reason, r.InvariantViolations)
		}
	}
	if len(res.Budgets) != 3 {
		t.Fatalf("budget domains = %+v", res.Budgets)
	}
	for _, b := range res.Budgets {
		if b.Peak != 1 || b.Limit != 1 {
			t.Errorf("zone %s peaked at %d of %d; want exactly the limit", b.Domain, b.Peak, b.Limit)
		}
	}
	if res.PeakInFlight != 3 || res.BudgetWaits == 0 || res.HoldWaits == 0 {
		t.Errorf("peak in flight %d (want 3, one per zone), budget waits %d, hold waits %d", res.PeakInFlight, res.BudgetWaits, res.HoldWaits)
	}
}

// TestRunFleetFreeze: a fleet freeze over zone a in the first hours
// holds both rollouts' zone-a nodes until it ends; a rollout with
// break-glass starts them anyway.
func TestRunFleetFreeze(t *testing.T) {
	nodes := genFleet(t, 30)
	fz := disruption.Freeze{Name: "zone-a", Selector: `node.labels.zone == "a"`, Reason: "datacenter work",
		Calendar: window.CalendarSpec{TimeZone: "UTC", Start: "2026-01-05T00:00", End: "2026-01-05T06:00"}}
	run := func(breakGlass string) *FleetResult {
		limits := "limits:\n  maxInFlight: 4\n"
		res, err := RunFleet(context.Background(), FleetConfig{
			Rollouts: []Config{{Plan: fleetPlan(t, "openssl", limits), Seed: 1, BreakGlass: breakGlass}, {Plan: fleetPlan(t, "kernel", limits), Seed: 2}},
			Nodes:    nodes, Freezes: []disruption.Freeze{fz}, Seed: 3,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.InvariantViolations != 0 {
			t.Fatalf("violations: %v", res.Violations)
		}
		return res
	}
	res := run("")
	if res.FreezeWaits == 0 {
		t.Fatal("no node waited for the fleet freeze")
	}
	for _, r := range res.Rollouts {
		if r.State != engine.RolloutSucceeded {
			t.Fatalf("rollout %s: %s (%s)", r.Rollout, r.State, r.Reason)
		}
		if r.MakespanSeconds < 6*3600 {
			t.Errorf("rollout %s finished in %s, before the freeze ended", r.Rollout, FormatDuration(time.Duration(r.MakespanSeconds)*time.Second))
		}
	}
	glass := run("CVE-2026-0003")
	if glass.Rollouts[0].MakespanSeconds >= 6*3600 || glass.Rollouts[1].MakespanSeconds < 6*3600 {
		t.Errorf("break-glass on the first rollout: makespans %.0fs and %.0fs; want the first before the freeze ends, the second after",
			glass.Rollouts[0].MakespanSeconds, glass.Rollouts[1].MakespanSeconds)
	}
	found := false
	for _, e := range glass.Rollouts[0].Events {
		found = found || strings.Contains(e.Text, "break-glass overrides fleet freeze zone-a")
	}
	if !found {
		t.Error("the break-glass start is not in the first rollout's events")
	}
}

// TestRunFleetProperties: 2 to 5 rollouts with random limits, failures
// and plans over random fleets under random fleet budgets, over many
// seeds: no fleet-wide rule broken, no rollout's own rule broken, no
// budget domain above its limit.
func TestRunFleetProperties(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	var atLimit, domains, waits int
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 7))
		nodes := genFleet(t, 20+rng.IntN(120))
		var budgets []disruption.Budget
		for b := range 1 + rng.IntN(3) {
			bu := disruption.Budget{Name: fmt.Sprintf("b%d", b), MaxUnavailable: plan.Quantity{Count: 1 + rng.IntN(4)}}
			if rng.IntN(2) == 0 {
				bu.Per = "zone"
			}
			if rng.IntN(2) == 0 {
				bu.MaxUnavailable = plan.Quantity{Percent: true, Value: float64(5 + rng.IntN(40))}
			}
			if rng.IntN(3) == 0 {
				bu.Selector = `node.labels.tier == "web"`
			}
			budgets = append(budgets, bu)
		}
		var ros []Config
		for r := range 2 + rng.IntN(4) {
			extra := fmt.Sprintf("limits:\n  maxInFlight: %d\n", 1+rng.IntN(10))
			if rng.IntN(2) == 0 {
				extra += fmt.Sprintf("  caps:\n    zone: %d\n", 1+rng.IntN(3))
			}
			cfg := Config{Plan: fleetPlan(t, fmt.Sprintf("p%d", r), extra), Seed: seed*10 + uint64(r),
				StepDuration: Dist{Kind: DistUniform, A: time.Minute, B: time.Duration(2+rng.IntN(20)) * time.Minute}}
			if rng.IntN(3) == 0 {
				f, err := ParseFailure(`node.labels.zone == "b"=0.3`, FailApply)
				if err != nil {
					t.Fatal(err)
				}
				cfg.Failures = []Failure{f}
			}
			ros = append(ros, cfg)
		}
		res, err := RunFleet(context.Background(), FleetConfig{Rollouts: ros, Nodes: nodes, Budgets: budgets, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		if res.InvariantViolations != 0 {
			t.Fatalf("seed %d: %d fleet violations, first %v", seed, res.InvariantViolations, res.Violations[0])
		}
		for _, r := range res.Rollouts {
			if r.InvariantViolations != 0 {
				t.Fatalf("seed %d: rollout %s: %v", seed, r.Rollout, r.Violations[0])
			}
		}
		for _, b := range res.Budgets {
			if b.Peak > b.Limit {
				t.Fatalf("seed %d: budget %s %s peaked at %d > %d", seed, b.Budget, b.Domain, b.Peak, b.Limit)
			}
			domains++
			if b.Peak == b.Limit {
				atLimit++
			}
		}
		waits += res.HoldWaits + res.BudgetWaits
	}
	t.Logf("%d seeds: %d of %d budget domains reached their limit, none passed it; %d node-decisions waited for another rollout or a budget", seeds, atLimit, domains, waits)
	if atLimit == 0 || waits == 0 {
		t.Fatal("the runs exercised nothing")
	}
}
