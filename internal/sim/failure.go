package sim

import (
	"fmt"
	"strconv"
	"strings"
)

// FailureKind says how an injected failure shows.
type FailureKind string

const (
	// FailHealth: the step applies but the change hurts the node: its node
	// gates fail and the wave gates see it degraded.
	FailHealth FailureKind = "health"
	// FailApply: the step itself fails on the node ("apply failed").
	FailApply FailureKind = "apply"
	// FailRollback: rolling the node back fails ("rollback failed").
	FailRollback FailureKind = "rollback"
	// FailInterrupt: the agent crashes or the node reboots in the middle
	// of the step (drawn per attempt); the agent undoes what began and
	// reports it interrupted, and the plan's gates.onInterrupted decides.
	FailInterrupt FailureKind = "interrupt"
	// FailPreflight: the node's pre-flight fails (e.g. the target version
	// is missing from its repositories); the plan's preflight.onFail
	// decides. Only plans with a preflight section run one.
	FailPreflight FailureKind = "preflight"
)

// Failure injects a failure into the nodes a selector matches, each with
// a probability (1 makes it deterministic).
type Failure struct {
	Selector    string      // CEL over node, as in plans
	Probability float64     // 0 < p <= 1
	Kind        FailureKind // "" means FailHealth
	Reason      string      // shown in node reasons; "" uses a generic text
}

// ParseFailure reads the command-line form SELECTOR=PROBABILITY, e.g.
// `node.hardware.class == "gen3"=0.5`. Without a trailing =PROBABILITY the
// probability is 1.
func ParseFailure(s string, kind FailureKind) (Failure, error) {
	f := Failure{Selector: strings.TrimSpace(s), Probability: 1, Kind: kind}
	if i := strings.LastIndexByte(s, '='); i == 0 || (i > 0 && !strings.ContainsRune("=!<>", rune(s[i-1]))) {
		p, err := strconv.ParseFloat(strings.TrimSpace(s[i+1:]), 64)
		if err != nil {
			return Failure{}, fmt.Errorf("failure %q: probability %q: want a number between 0 and 1", s, s[i+1:])
		}
		f.Selector, f.Probability = strings.TrimSpace(s[:i]), p
	}
	if f.Selector == "" {
		return Failure{}, fmt.Errorf("failure %q: empty selector", s)
	}
	if !(f.Probability > 0 && f.Probability <= 1) {
		return Failure{}, fmt.Errorf("failure %q: probability %v: want 0 < p <= 1", s, f.Probability)
	}
	return f, nil
}

// String returns the command-line form.
func (f Failure) String() string {
	k := f.Kind
	if k == "" {
		k = FailHealth
	}
	return fmt.Sprintf("%s: %s=%g", k, f.Selector, f.Probability)
}

// draw returns a uniform number in [0, 1) fixed by the seed, the node and
// the failure, so that whether a failure hits a node does not depend on
// the order in which the simulation meets the node.
func draw(seed uint64, nodeID string, failure int) float64 {
	h := uint64(14695981039346656037) // FNV-1a over the node ID
	for i := 0; i < len(nodeID); i++ {
		h ^= uint64(nodeID[i])
		h *= 1099511628211
	}
	h ^= mix64(seed + 0x9e3779b97f4a7c15*uint64(failure+1))
	return float64(mix64(h)>>11) / (1 << 53)
}

// mix64 is the SplitMix64 finalizer.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
