package engine_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/sim"
)

var propertyCases = flag.Int("property.cases", 80, "random fleet and plan combinations TestSafetyProperties runs")

// TestSafetyProperties drives the engine through the simulator over
// random fleets (1 to 5,000 nodes, random labels) and random plans (waves
// in order or as a DAG, canaries, caps, rate caps, held-back domains,
// windows, freezes, budgets with quarantine, jitter), with random
// failures and step durations. The simulator's checker verifies every
// decision against the safety rules (engine README): in flight within
// every cap, held-back domain untouched, no start outside windows or in a
// freeze, rate cap in every sliding window, no double start, no start
// after a breach or while paused, canary coverage, no start before the
// node pre-flight allows it. Any violation is a bug.
func TestSafetyProperties(t *testing.T) {
	n := *propertyCases
	if testing.Short() {
		n = 15
	}
	for c := range n {
		seed := uint64(c + 1)
		rng := rand.New(rand.NewPCG(seed, 99))
		size := 1 + rng.IntN(200)
		if c%10 == 9 {
			size = 1000 + rng.IntN(4001)
		}
		nodes := randomFleet(rng, size)
		text := randomPlan(rng)
		// A quarter of the plans run a node pre-flight, some of them with
		// nodes failing it; drawn apart so that the other draws stay.
		pfRng := rand.New(rand.NewPCG(seed, 7))
		var pfFail []sim.Failure
		if pfRng.IntN(4) == 0 {
			text += fmt.Sprintf("preflight:\n  onFail: %s\n  timeout: %ds\n", []string{"block", "exclude"}[pfRng.IntN(2)], 2+pfRng.IntN(60))
			if pfRng.IntN(2) == 0 {
				f, err := sim.ParseFailure(randomFailure(pfRng), sim.FailPreflight)
				if err != nil {
					t.Fatal(err)
				}
				pfFail = append(pfFail, f)
			}
		}
		t.Run(fmt.Sprintf("case%d-n%d", c, size), func(t *testing.T) {
			p, err := plan.Parse("random.yaml", []byte(text))
			if err != nil {
				t.Fatalf("generated plan does not parse: %v\n%s", err, text)
			}
			a, err := engine.Assign(p, nodes, seed)
			if err != nil {
				var pe *engine.PlanError
				if errAs(err, &pe) {
					return // e.g. a random wave selector matching nothing: a valid refusal
				}
				t.Fatal(err)
			}
			if vs := sim.CheckAssignment(p, a); len(vs) > 0 {
				t.Fatalf("assignment violations: %v\n%s", vs, text)
			}
			var fails []sim.Failure
			if rng.IntN(3) > 0 {
				kind := []sim.FailureKind{sim.FailHealth, sim.FailApply, sim.FailInterrupt}[rng.IntN(3)]
				f, err := sim.ParseFailure(randomFailure(rng), kind)
				if err != nil {
					t.Fatal(err)
				}
				fails = append(fails, f)
			}
			fails = append(fails, pfFail...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := sim.Run(ctx, sim.Config{Plan: p, Nodes: nodes, Failures: fails, Seed: seed,
				StepDuration: sim.Dist{Kind: sim.DistUniform, A: time.Minute, B: time.Duration(2+rng.IntN(20)) * time.Minute},
				Horizon:      60 * 24 * time.Hour})
			if err != nil {
				t.Fatalf("simulate: %v\n%s", err, text)
			}
			if res.InvariantViolations > 0 {
				t.Fatalf("%d invariant violations, first: %v\nplan:\n%s", res.InvariantViolations, res.Violations[0], text)
			}
		})
	}
}

func errAs(err error, target **engine.PlanError) bool {
	for err != nil {
		if pe, ok := err.(*engine.PlanError); ok {
			*target = pe
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

var (
	families = []string{"debian", "ubuntu", "rhel", "suse", "windows", "macos"}
	zones    = []string{"a", "b", "c", "d"}
	tiers    = []string{"web", "app", "db"}
	classes  = []string{"gen1", "gen2", "gen3"}
)

func randomFleet(rng *rand.Rand, n int) []*fleet.Node {
	nz := 1 + rng.IntN(len(zones))
	nodes := make([]*fleet.Node, n)
	for i := range nodes {
		fam := families[rng.IntN(len(families))]
		nodes[i] = &fleet.Node{
			ID: fmt.Sprintf("%s-%05d", fam, i),
			Facts: fleet.Facts{OS: fleet.OS{Family: fam, Version: fmt.Sprint(10 + rng.IntN(3))},
				Hardware: fleet.Hardware{Class: classes[rng.IntN(len(classes))]}},
			Labels: map[string]string{"zone": zones[rng.IntN(nz)], "tier": tiers[rng.IntN(len(tiers))], "env": "prod"},
		}
		if rng.IntN(4) == 0 {
			nodes[i].Labels["maintenance-window"] = []string{"nights", "weekend"}[rng.IntN(2)]
		}
	}
	return nodes
}

// randomPlan writes a random valid plan. Every limit appears with some
// probability, so that the cases cover each rule alone and in company.
func randomPlan(rng *rand.Rand) string {
	var b strings.Builder
	b.WriteString("apiVersion: drover.dev/v1\nname: random\ntarget:\n  selector: node.labels.env == \"prod\"\n")
	b.WriteString("change:\n  actions:\n    - package:\n        packages: [{name: openssl, version: \"3.0.15\"}]\n")
	nw := 1 + rng.IntN(5)
	dag := rng.IntN(3) == 0
	names := []string{}
	b.WriteString("waves:\n")
	for i := range nw {
		name := fmt.Sprintf("w%d", i)
		names = append(names, name)
		fmt.Fprintf(&b, "  - name: %s\n", name)
		if i == 0 && rng.IntN(2) == 0 {
			if rng.IntN(2) == 0 {
				fmt.Fprintf(&b, "    canary: true\n    nodes: %d\n", 1+rng.IntN(12))
			} else {
				fmt.Fprintf(&b, "    canary: {max: %d, allowUncovered: true}\n", 1+rng.IntN(12))
			}
		} else if i < nw-1 {
			if rng.IntN(2) == 0 {
				fmt.Fprintf(&b, "    nodes: %d\n", 1+rng.IntN(30))
			} else {
				fmt.Fprintf(&b, "    nodes: \"%d%%\"\n", 1+rng.IntN(40))
			}
		}
		if dag && i > 0 {
			fmt.Fprintf(&b, "    after: [%s]\n", names[rng.IntN(i)])
		}
		if rng.IntN(3) == 0 {
			fmt.Fprintf(&b, "    failureBudget:\n      maxFailures: %d\n      quarantine: %v\n      onBreach: %s\n",
				rng.IntN(4), rng.IntN(2) == 0, []string{"pause", "rollback-wave", "rollback-all"}[rng.IntN(3)])
		}
	}
	b.WriteString("limits:\n")
	if rng.IntN(2) == 0 {
		fmt.Fprintf(&b, "  maxInFlight: %d\n", 1+rng.IntN(20))
	} else {
		fmt.Fprintf(&b, "  maxInFlight: \"%d%%\"\n", 1+rng.IntN(30))
	}
	if rng.IntN(2) == 0 {
		b.WriteString("  caps:\n")
		fmt.Fprintf(&b, "    zone: %d\n", 1+rng.IntN(4))
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&b, "    hardware.class: \"%d%%\"\n", 5+rng.IntN(50))
		}
		if rng.IntN(3) == 0 {
			fmt.Fprintf(&b, "    tier: %d\n", 1+rng.IntN(3))
		}
	}
	if rng.IntN(3) == 0 {
		fmt.Fprintf(&b, "  rate:\n    starts: %d\n    per: %dm\n", 1+rng.IntN(20), 10+rng.IntN(60))
	}
	if nw >= 2 && !dag && rng.IntN(3) == 0 {
		fmt.Fprintf(&b, "  holdBack:\n    key: zone\n    domain: %s\n    until: [w0]\n", zones[rng.IntN(2)])
	}
	if rng.IntN(3) == 0 {
		fmt.Fprintf(&b, "  jitter: %dm\n", 1+rng.IntN(10))
	}
	if rng.IntN(3) == 0 {
		b.WriteString("windows:\n  cutoff: 30m\n  definitions:\n")
		b.WriteString("    nights:\n      timeZone: Europe/Berlin\n      spans:\n        - days: [Mon, Tue, Wed, Thu, Fri]\n          start: \"22:00\"\n          duration: 6h\n")
		b.WriteString("    weekend:\n      timeZone: America/New_York\n      spans:\n        - days: [Sat, Sun]\n          start: \"00:00\"\n          duration: 24h\n")
		if rng.IntN(2) == 0 {
			b.WriteString("  freezes:\n    - name: launch\n      from: 2026-01-05T02:00:00Z\n      to: 2026-01-06T00:00:00Z\n")
		}
	}
	fmt.Fprintf(&b, "gates:\n  bakeTime: %dm\n  node:\n    minHealthy: %dm\n", rng.IntN(30), rng.IntN(5))
	if rng.IntN(4) == 0 {
		fmt.Fprintf(&b, "failureBudget:\n  maxFailures: \"%d%%\"\n  onBreach: %s\n", 1+rng.IntN(20),
			[]string{"pause", "rollback-wave", "rollback-all"}[rng.IntN(3)])
	}
	return b.String()
}

func randomFailure(rng *rand.Rand) string {
	sel := []string{
		`node.hardware.class == "gen3"`,
		`node.os.family == "windows"`,
		`node.labels.zone == "b"`,
		`true`,
	}[rng.IntN(4)]
	return fmt.Sprintf("%s=%.2f", sel, 0.05+rng.Float64()*0.9)
}
