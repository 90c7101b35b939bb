package gate

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/drover-dev/drover/internal/plan"
)

func TestMannWhitneyKnown(t *testing.T) {
	// Clearly shifted samples: p tiny, effect about +50%.
	base := []float64{10, 11, 9, 10, 12, 10, 11, 9, 10, 11}
	can := []float64{15, 16, 14, 15, 17, 15, 16, 14, 15, 16}
	r := MannWhitney(can, base)
	if r.U != 100 || r.P > 0.001 || r.RankBias != 1 {
		t.Fatalf("shifted: %+v", r)
	}
	if math.Abs(r.Effect-0.5) > 0.05 {
		t.Fatalf("effect %v, want about 0.5", r.Effect)
	}
	// Canary better (lower): one-sided test must not flag it.
	if r := MannWhitney(base, can); r.P < 0.99 {
		t.Fatalf("improvement flagged: %+v", r)
	}
	// All ties: no evidence either way.
	if r := MannWhitney([]float64{1, 1, 1}, []float64{1, 1, 1}); r.P < 0.5 {
		t.Fatalf("ties: %+v", r)
	}
}

// TestJudgeRates measures, over seeded runs, the false-positive rate on
// equal distributions and the detection rate of a 20% regression. The
// figures are reported in the README; the bounds are the goals.
func TestJudgeRates(t *testing.T) {
	const runs = 400
	fp, det := 0, 0
	for i := range runs {
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		base := lognormal(rng, DefaultSamples, 0.3, 0.25)
		same := lognormal(rng, DefaultSamples, 0.3, 0.25)
		worse := lognormal(rng, DefaultSamples, 0.3*1.2, 0.25)
		if r := MannWhitney(same, base); r.P < DefaultAlpha && r.Effect >= DefaultMinEffect {
			fp++
		}
		if r := MannWhitney(worse, base); r.P < DefaultAlpha && r.Effect >= DefaultMinEffect {
			det++
		}
	}
	fpr, dr := float64(fp)/runs, float64(det)/runs
	t.Logf("false-positive rate %.2f%% (%d/%d), detection rate of +20%% %.2f%% (%d/%d)", 100*fpr, fp, runs, 100*dr, det, runs)
	if fpr > 0.01 {
		t.Errorf("false-positive rate %.3f > 1%%", fpr)
	}
	if dr < 0.95 {
		t.Errorf("detection rate %.3f < 95%%", dr)
	}
}

func lognormal(rng *rand.Rand, n int, median, sigma float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = median * math.Exp(sigma*rng.NormFloat64())
	}
	return out
}

// TestJudgeRatesAtPlanDefaults measures the same rates at the plan's
// statistical defaults (plan.DefaultGateMinSamples samples per side,
// plan.DefaultGateAlpha), which a plan gets when it sets neither. It
// records the figures (see README) rather than bounding them: the plan
// package owns those defaults.
func TestJudgeRatesAtPlanDefaults(t *testing.T) {
	const runs = 400
	minEffect, err := parseMinEffect(plan.DefaultGateMinEffect)
	if err != nil {
		t.Fatal(err)
	}
	n, alpha := plan.DefaultGateMinSamples, plan.DefaultGateAlpha
	fp, det := 0, 0
	for i := range runs {
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		base := lognormal(rng, n, 0.3, 0.25)
		same := lognormal(rng, n, 0.3, 0.25)
		worse := lognormal(rng, n, 0.3*1.2, 0.25)
		if r := MannWhitney(same, base); r.P < alpha && r.Effect >= minEffect {
			fp++
		}
		if r := MannWhitney(worse, base); r.P < alpha && r.Effect >= minEffect {
			det++
		}
	}
	t.Logf("at %d samples, alpha %g: false-positive rate %.2f%% (%d/%d), detection rate of +20%% %.2f%% (%d/%d)",
		n, alpha, 100*float64(fp)/runs, fp, runs, 100*float64(det)/runs, det, runs)
	if n != DefaultSamples || alpha != DefaultAlpha {
		t.Logf("plan defaults (minSamples %d, alpha %g) differ from the gate's measured defaults (%d, %g)", n, alpha, DefaultSamples, DefaultAlpha)
	}
}
