package sim

import (
	"strings"
	"testing"
)

// localisePlan: one wave that quarantines failures within a generous
// budget, so the run gathers evidence before the overall budget stops it.
const localisePlan = `apiVersion: drover.dev/v1
name: sim-localise
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - package:
        packages:
          - name: openssl
            version: 3.0.16
waves:
  - name: all
    failureBudget:
      maxFailures: 40%
      quarantine: true
limits:
  maxInFlight: 20
failureBudget:
  maxFailures: 10%
  onBreach: rollback-all
gates:
  node:
    minHealthy: 2m
`

// TestSimulateLocalisesLabelValue: a change that hurts only the nodes of
// one label value (zone b, half of them) halts, and the summary names
// labels.zone=b, first, as what the failed nodes share.
func TestSimulateLocalisesLabelValue(t *testing.T) {
	p := mustPlan(t, localisePlan)
	fail := Failure{Selector: `node.labels.zone == "b"`, Probability: 0.5}
	res := run(t, Config{Plan: p, Nodes: genFleet(t, 300), Seed: 4, Failures: []Failure{fail}})
	if !res.Halted {
		t.Fatalf("not halted:\n%s", Summary(res))
	}
	if len(res.Localisation) == 0 || res.Localisation[0].Attribute != "labels.zone" || res.Localisation[0].Value != "b" {
		t.Fatalf("localisation %v, want labels.zone=b first\n%s", res.Localisation, Summary(res))
	}
	sum := Summary(res)
	if !strings.Contains(sum, "\n  localised: "+res.Localisation[0].String()) {
		t.Errorf("summary does not say the localisation:\n%s", sum)
	}
	if !strings.Contains(res.Reason, "localised: ") || !strings.Contains(res.Reason, "labels.zone=b") {
		t.Errorf("final reason does not name labels.zone=b: %s", res.Reason)
	}
	t.Log(sum)
}

// TestSimulateRandomFailuresNameNothing: failures that hit any node with
// the same probability, whatever its attributes, are localised to
// nothing.
func TestSimulateRandomFailuresNameNothing(t *testing.T) {
	p := mustPlan(t, localisePlan)
	named := 0
	for seed := uint64(1); seed <= 10; seed++ {
		fail := Failure{Selector: `true`, Probability: 0.1}
		res := run(t, Config{Plan: p, Nodes: genFleet(t, 300), Seed: seed, Failures: []Failure{fail}})
		if res.Waves[0].Failed == 0 {
			t.Fatalf("seed %d: no failure drawn:\n%s", seed, Summary(res))
		}
		if len(res.Localisation) > 0 || strings.Contains(Summary(res), "localised") {
			named++
			t.Logf("seed %d named a cause for random failures: %v", seed, res.Localisation)
		}
	}
	if named > 1 { // alpha 0.05 family-wise: one false finding in 10 runs is already unlucky
		t.Errorf("%d of 10 runs with random failures named a cause", named)
	}
}
