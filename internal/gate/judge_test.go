package gate

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/plan"
)

func one(v float64) []series { return []series{{values: []float64{v}}} }

func TestJudgeThreshold(t *testing.T) {
	vec := []series{
		{labels: `{instance="a"}`, values: []float64{0.01}},
		{labels: `{instance="b"}`, values: []float64{0.07}},
		{labels: `{instance="c"}`, values: []float64{0.09}},
	}
	for _, c := range []struct {
		name     string
		max, min *float64
		ss       []series
		want     engine.Verdict
		reason   string
	}{
		{"scalar within", f64(0.05), nil, one(0.01), engine.Pass, "err 0.01 within max 0.05: Pass"},
		{"scalar at max", f64(0.05), nil, one(0.05), engine.Pass, "err 0.05 within max 0.05: Pass"},
		{"scalar above", f64(0.05), nil, one(0.06), engine.Fail, "err 0.06 above max 0.05: Fail"},
		{"all series must satisfy", f64(0.05), nil, vec, engine.Fail, `err 2 of 3 series above max 0.05, worst 0.09 for {instance="c"}: Fail`},
		{"vector within", f64(0.1), nil, vec, engine.Pass, `err 0.09 for {instance="c"} (worst of 3 series) within max 0.1: Pass`},
		{"below min", nil, f64(0.02), vec, engine.Fail, `err 1 of 3 series below min 0.02, worst 0.01 for {instance="a"}: Fail`},
		{"both bounds", f64(0.1), f64(0.005), vec, engine.Pass, `within max 0.1; 0.01 for {instance="a"} (worst of 3 series) within min 0.005: Pass`},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := plan.WaveGate{Name: "err", Mode: plan.ModeThreshold, Max: c.max, Min: c.min}
			e := judgeThreshold(g, unitPlain, c.ss)
			if e.Verdict != c.want || !strings.Contains(e.Reason, c.reason) {
				t.Errorf("got %s %q, want %s containing %q", e.Verdict, e.Reason, c.want, c.reason)
			}
		})
	}
}

func TestJudgeDelta(t *testing.T) {
	const latency = `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))`
	for _, c := range []struct {
		name       string
		inc, dir   string
		u          unit
		can, base  []series
		want       engine.Verdict
		reason     string
		against    string
		wantCanary int
	}{
		{name: "issue example", inc: "20%", u: unitOf(latency), can: one(0.412), base: one(0.298), want: engine.Fail,
			reason: "p99 latency 412 ms vs baseline 298 ms (+38.3%), allowed +20%: Fail"},
		{name: "within", inc: "20%", u: unitPlain, can: one(0.33), base: one(0.298), want: engine.Pass,
			reason: "p99 latency 0.33 vs baseline 0.298 (+10.7%), allowed +20%: Pass"},
		{name: "exactly the allowance", inc: "20%", can: one(1.2), base: one(1), want: engine.Pass},
		{name: "improvement", inc: "0%", can: one(0.2), base: one(0.298), want: engine.Pass, reason: "(-32.9%)"},
		{name: "absolute", inc: "0.05", can: one(0.021), base: one(0.005), want: engine.Pass,
			reason: "p99 latency 0.021 vs baseline 0.005 (+0.016, +320.0%), allowed +0.05: Pass"},
		{name: "absolute exceeded", inc: "0.01", can: one(0.021), base: one(0.005), want: engine.Fail},
		{name: "lower is worse", inc: "10%", dir: "lower-is-worse", can: one(80), base: one(100), want: engine.Fail,
			reason: "p99 latency 80 vs baseline 100 (-20.0%), allowed -10% (lower is worse): Fail"},
		{name: "lower is worse, higher is fine", inc: "10%", dir: "lower-is-worse", can: one(150), base: one(100), want: engine.Pass},
		{name: "zero baseline, zero canary", inc: "20%", can: one(0), base: one(0), want: engine.Pass, reason: "(+0.0%)"},
		{name: "zero baseline, any increase", inc: "20%", can: one(0.001), base: one(0), want: engine.Fail, reason: "(+Inf%)"},
		{name: "zero baseline, absolute", inc: "0.01", can: one(0.001), base: one(0), want: engine.Pass},
		{name: "negative baseline", inc: "20%", can: one(-0.5), base: one(-1), want: engine.Fail, reason: "(+50.0%)"},
		{name: "worst canary series vs baseline median", inc: "20%",
			can:  []series{{labels: `{instance="a"}`, values: []float64{1}}, {labels: `{instance="b"}`, values: []float64{1.5}}},
			base: []series{{values: []float64{0.9}}, {values: []float64{1}}, {values: []float64{5}}},
			want: engine.Fail, reason: `p99 latency 1.5 (worst of 2 series for {instance="b"}) vs baseline 1 (median of 3 series) (+50.0%)`, wantCanary: 2},
		{name: "before-after wording", inc: "20%", can: one(2), base: one(1), against: "before", want: engine.Fail, reason: "vs before 1 (+100.0%)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := plan.WaveGate{Name: "p99 latency", Mode: plan.ModeDelta, MaxIncrease: c.inc, Direction: c.dir}
			e := judgeDelta(g, c.u, orDefault(c.against, "baseline"), c.can, c.base)
			if e.Verdict != c.want || !strings.Contains(e.Reason, c.reason) {
				t.Errorf("got %s %q, want %s containing %q", e.Verdict, e.Reason, c.want, c.reason)
			}
			if c.wantCanary > 0 && len(e.Canary) != c.wantCanary {
				t.Errorf("canary values %v", e.Canary)
			}
		})
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestParseIncrease(t *testing.T) {
	for in, want := range map[string]increase{"20%": {0.2, true}, " 5.5% ": {0.055, true}, "0.05": {0.05, false}, "0": {0, false}, "0%": {0, true}} {
		got, err := parseIncrease(in)
		if err != nil || math.Abs(got.v-want.v) > 1e-12 || got.relative != want.relative {
			t.Errorf("parseIncrease(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "%", "-5%", "-1", "abc", "NaN", "Inf", "1e400", "20%%"} {
		if got, err := parseIncrease(bad); err == nil {
			t.Errorf("parseIncrease(%q) = %+v, want an error", bad, got)
		}
	}
}

func TestUnitFormat(t *testing.T) {
	for v, want := range map[float64]string{0.412: "412 ms", 0.0412: "41.2 ms", 0.000412: "0.412 ms", 12.5: "12.5 s", 0: "0 ms", math.NaN(): "NaN", math.Inf(1): "+Inf"} {
		if got := unitSeconds.format(v); got != want {
			t.Errorf("format(%v) = %q, want %q", v, got, want)
		}
	}
	if unitOf(`rate(http_request_duration_seconds_count[5m])`) != unitPlain {
		t.Error("a request rate is not a latency")
	}
}

func lognormalSeries(rng *rand.Rand, nodes, perNode int, median float64) []series {
	out := make([]series, nodes)
	for i := range out {
		out[i] = series{labels: `{instance="x"}`, values: lognormal(rng, perNode, median, 0.25)}
	}
	return out
}

func TestJudgeStatistical(t *testing.T) {
	const q = `histogram_quantile(0.99, sum by (instance, le) (rate(http_request_duration_seconds_bucket[1m])))`
	rng := rand.New(rand.NewPCG(1, 2))
	g := plan.WaveGate{Name: "p99 latency", Mode: plan.ModeStatistical, MinSamples: 20, Alpha: 0.005, MinEffect: "10%"}

	worse := judgeStatistical(g, unitOf(q), "baseline", lognormalSeries(rng, 3, 40, 0.412), lognormalSeries(rng, 3, 40, 0.298))
	t.Log(worse.Reason)
	if worse.Verdict != engine.Fail || !strings.HasPrefix(worse.Reason, "p99 latency median 4") ||
		!strings.Contains(worse.Reason, " ms vs baseline 3") || !strings.Contains(worse.Reason, "U-test U=") ||
		!strings.Contains(worse.Reason, "over 240 samples (120 canary, 120 baseline): Fail") {
		t.Errorf("+38%%: %s %s", worse.Verdict, worse.Reason)
	}
	same := judgeStatistical(g, unitOf(q), "baseline", lognormalSeries(rng, 3, 40, 0.3), lognormalSeries(rng, 3, 40, 0.3))
	if same.Verdict != engine.Pass {
		t.Errorf("same: %s %s", same.Verdict, same.Reason)
	}
	// Significant but small: a 3% shift over many samples.
	small := judgeStatistical(g, unitPlain, "baseline", lognormalSeries(rng, 10, 500, 0.309), lognormalSeries(rng, 10, 500, 0.3))
	if small.Verdict != engine.Pass || !strings.Contains(small.Reason, "below the minimum effect") {
		t.Errorf("small: %s %s", small.Verdict, small.Reason)
	}
	// Lower is worse: a throughput drop fails, a rise passes.
	lw := g
	lw.Direction = "lower-is-worse"
	if e := judgeStatistical(lw, unitPlain, "baseline", lognormalSeries(rng, 2, 50, 70), lognormalSeries(rng, 2, 50, 100)); e.Verdict != engine.Fail || !strings.Contains(e.Reason, "p1 ") {
		t.Errorf("throughput drop: %s %s", e.Verdict, e.Reason)
	}
	if e := judgeStatistical(lw, unitPlain, "baseline", lognormalSeries(rng, 2, 50, 130), lognormalSeries(rng, 2, 50, 100)); e.Verdict != engine.Pass {
		t.Errorf("throughput rise: %s %s", e.Verdict, e.Reason)
	}
	// Zero baseline median: any significant worsening counts.
	zeros := []series{{values: make([]float64, 30)}}
	ones := []series{{values: slicesRepeat(0.5, 30)}}
	if e := judgeStatistical(g, unitPlain, "baseline", ones, zeros); e.Verdict != engine.Fail || !strings.Contains(e.Reason, "shift +Inf%") {
		t.Errorf("from zero: %s %s", e.Verdict, e.Reason)
	}

	// Too few samples, NaN dropped, ±Inf refused.
	few := []series{{values: append(slicesRepeat(0.3, 15), math.NaN(), math.NaN())}}
	e := judgeStatistical(g, unitPlain, "baseline", few, lognormalSeries(rng, 1, 40, 0.3))
	if e.Verdict != engine.Fail || !strings.Contains(e.Reason, "too few samples: canary 15, 2 NaN dropped, baseline 40; need 20 per side: Fail") {
		t.Errorf("few: %s %s", e.Verdict, e.Reason)
	}
	gi := g
	gi.Inconclusive = "inconclusive"
	if e := judgeStatistical(gi, unitPlain, "baseline", few, lognormalSeries(rng, 1, 40, 0.3)); e.Verdict != engine.Inconclusive {
		t.Errorf("few, inconclusive: %s %s", e.Verdict, e.Reason)
	}
	inf := []series{{labels: `{instance="a"}`, values: append(slicesRepeat(0.3, 30), math.Inf(1))}}
	if e := judgeStatistical(g, unitPlain, "baseline", inf, lognormalSeries(rng, 1, 40, 0.3)); e.Verdict != engine.Fail || !strings.Contains(e.Reason, `canary has +Inf samples for {instance="a"}`) {
		t.Errorf("inf: %s %s", e.Verdict, e.Reason)
	}
	// Defaults when the plan left them unset: DefaultSamples per side.
	def := plan.WaveGate{Name: "d", Mode: plan.ModeStatistical}
	if e := judgeStatistical(def, unitPlain, "baseline", lognormalSeries(rng, 1, 99, 1), lognormalSeries(rng, 1, 200, 1)); !strings.Contains(e.Reason, "need 100 per side") {
		t.Errorf("defaults: %s", e.Reason)
	}
}

func slicesRepeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestCheckGate(t *testing.T) {
	for _, c := range []struct {
		g    plan.WaveGate
		want string
	}{
		{plan.WaveGate{Mode: plan.ModeThreshold}, "needs max or min"},
		{plan.WaveGate{Mode: plan.ModeThreshold, Max: f64(math.NaN())}, "bounds must be numbers"},
		{plan.WaveGate{Mode: plan.ModeDelta}, "no maxIncrease"},
		{plan.WaveGate{Mode: plan.ModeBeforeAfter, MaxIncrease: "x"}, `maxIncrease "x"`},
		{plan.WaveGate{Mode: plan.ModeDelta, MaxIncrease: "5%", Direction: "sideways"}, `unknown direction "sideways"`},
		{plan.WaveGate{Mode: plan.ModeStatistical, Alpha: 2}, "alpha 2"},
		{plan.WaveGate{Mode: plan.ModeStatistical, MinEffect: "0.1"}, `minEffect "0.1"`},
		{plan.WaveGate{Mode: "median"}, `unknown gate mode "median"`},
	} {
		p := checkGate(c.g)
		if p == nil || !strings.Contains(p.msg, c.want) {
			t.Errorf("checkGate(%+v) = %v, want %q", c.g, p, c.want)
		}
	}
	if p := checkGate(plan.WaveGate{Mode: plan.ModeStatistical}); p != nil {
		t.Errorf("a statistical gate with defaults: %s", p.msg)
	}
}
