package gate

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/plan"
)

// This file holds the judgement of numbers already fetched: pure
// functions from values to an Evaluation, tested without Prometheus.

// series is one time series of a query result: its labels written
// briefly and its values (one for an instant query).
type series struct {
	labels string
	values []float64
}

// unit says how to write a gate's values in reasons.
type unit int

const (
	unitPlain   unit = iota
	unitSeconds      // written in ms: histogram_quantile over a _seconds histogram
)

// unitOf guesses the unit from the query: a quantile of a histogram in
// seconds is a latency. Anything else is written as a plain number.
func unitOf(query string) unit {
	if strings.Contains(query, "histogram_quantile") && strings.Contains(query, "_seconds_bucket") {
		return unitSeconds
	}
	return unitPlain
}

func (u unit) format(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return formatFloat(v)
	}
	if u == unitSeconds {
		ms := v * 1000
		switch a := math.Abs(ms); {
		case a >= 10_000:
			return strconv.FormatFloat(v, 'f', 1, 64) + " s"
		case a >= 100 || a == 0:
			return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
		case a >= 1:
			return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
		default:
			return strconv.FormatFloat(ms, 'g', 3, 64) + " ms"
		}
	}
	return formatFloat(v)
}

func formatFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// formatPct writes a relative change as "+38.3%".
func formatPct(r float64) string {
	switch {
	case math.IsNaN(r):
		return "n/a"
	case math.IsInf(r, 1):
		return "+Inf%"
	case math.IsInf(r, -1):
		return "-Inf%"
	}
	return fmt.Sprintf("%+.1f%%", 100*r)
}

// verdictWord is the verdict as reasons end with it.
func verdictWord(v engine.Verdict) string {
	switch v {
	case engine.Pass:
		return "Pass"
	case engine.Fail:
		return "Fail"
	case engine.Inconclusive:
		return "Inconclusive"
	}
	return string(v)
}

// problem is why an evaluation could not be judged: no data, a query
// error, a bad value. Its verdict is the gate's onNoData, never Pass.
type problem struct {
	msg string
	err error // the query or transport error behind it, if any
}

func problemf(format string, args ...any) *problem {
	return &problem{msg: fmt.Sprintf(format, args...)}
}

func (p *problem) evaluation(g plan.WaveGate) Evaluation {
	v := noData(g)
	reason := fmt.Sprintf("%s: %s: %s", g.Name, p.msg, verdictWord(v))
	if v == engine.Inconclusive {
		reason += " (onNoData: inconclusive)"
	}
	return Evaluation{Verdict: v, Reason: reason, Err: p.err}
}

// checkFinite refuses NaN and ±Inf in instant results, naming the
// series; what is "canary value", "baseline value before the change".
func checkFinite(what string, ss []series) *problem {
	for _, s := range ss {
		for _, v := range s.values {
			switch {
			case math.IsNaN(v):
				return problemf("%s is NaN%s (an empty histogram, or 0/0: no requests in the window?)", what, s.labelSuffix())
			case math.IsInf(v, 0):
				return problemf("%s is %s%s (a quantile above the histogram's highest finite bucket, or x/0?)", what, formatFloat(v), s.labelSuffix())
			}
		}
	}
	return nil
}

func (s series) labelSuffix() string {
	if s.labels == "" || s.labels == "{}" {
		return ""
	}
	return " for " + s.labels
}

// direction is which way a value gets worse.
type direction struct{ lowerWorse bool }

func parseDirection(s string) (direction, error) {
	switch s {
	case "", "higher-is-worse":
		return direction{}, nil
	case "lower-is-worse":
		return direction{lowerWorse: true}, nil
	}
	return direction{}, fmt.Errorf("unknown direction %q (higher-is-worse | lower-is-worse)", s)
}

// worsening is how much worse a is than b, signed: positive is worse.
func (d direction) worsening(a, b float64) float64 {
	if d.lowerWorse {
		return b - a
	}
	return a - b
}

// worst returns the index of the worst value.
func (d direction) worst(vals []float64) int {
	w := 0
	for i, v := range vals {
		if d.worsening(v, vals[w]) > 0 {
			w = i
		}
	}
	return w
}

func (d direction) String() string {
	if d.lowerWorse {
		return "lower-is-worse"
	}
	return "higher-is-worse"
}

// increase is an allowed worsening: relative (0.2 for "20%") or absolute.
type increase struct {
	v        float64
	relative bool
}

func parseIncrease(s string) (increase, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return increase{}, errors.New("the gate has no maxIncrease")
	}
	num, rel := strings.CutSuffix(s, "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return increase{}, fmt.Errorf("maxIncrease %q is not a percent (\"20%%\") or a number of 0 or more", s)
	}
	if rel {
		return increase{v: f / 100, relative: true}, nil
	}
	return increase{v: f}, nil
}

func (inc increase) String() string {
	if inc.relative {
		return "+" + strconv.FormatFloat(100*inc.v, 'g', 4, 64) + "%"
	}
	return "+" + formatFloat(inc.v)
}

// parseMinEffect reads a statistical gate's minEffect ("10%"); empty
// means DefaultMinEffect.
func parseMinEffect(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultMinEffect, nil
	}
	num, ok := strings.CutSuffix(s, "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if !ok || err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("minEffect %q is not a percent such as \"10%%\"", s)
	}
	return f / 100, nil
}

// checkGate refuses a gate that cannot be judged whatever the data, so
// that a bad plan is reported before any query runs.
func checkGate(g plan.WaveGate) *problem {
	switch g.Mode {
	case plan.ModeThreshold:
		if g.Max == nil && g.Min == nil {
			return problemf("a threshold gate needs max or min")
		}
		if (g.Max != nil && math.IsNaN(*g.Max)) || (g.Min != nil && math.IsNaN(*g.Min)) {
			return problemf("threshold bounds must be numbers")
		}
	case plan.ModeDelta, plan.ModeBeforeAfter:
		if _, err := parseIncrease(g.MaxIncrease); err != nil {
			return problemf("%v", err)
		}
		if _, err := parseDirection(g.Direction); err != nil {
			return problemf("%v", err)
		}
	case plan.ModeStatistical:
		if _, err := statParamsOf(g); err != nil {
			return problemf("%v", err)
		}
	default:
		return problemf("unknown gate mode %q (threshold | delta | before-after | statistical)", g.Mode)
	}
	return nil
}

// judgeThreshold fails when any series is above Max or below Min: every
// series must satisfy the bounds. ss must be non-empty and finite.
func judgeThreshold(g plan.WaveGate, u unit, ss []series) Evaluation {
	if g.Max == nil && g.Min == nil {
		return problemf("a threshold gate needs max or min").evaluation(g)
	}
	vals := flatten(ss)
	ev := Evaluation{Verdict: engine.Pass, Canary: vals}
	var parts []string
	judge := func(bound float64, word string, bad func(float64) bool, pick func([]float64) int) {
		idx := seriesIndex(ss)
		n := 0
		for _, v := range vals {
			if bad(v) {
				n++
			}
		}
		w := pick(vals)
		what := u.format(vals[w]) + ss[idx[w]].labelSuffix()
		if len(vals) > 1 {
			what = fmt.Sprintf("%s (worst of %d series)", what, len(vals))
		}
		if n > 0 {
			ev.Verdict = engine.Fail
			if len(vals) > 1 {
				parts = append(parts, fmt.Sprintf("%d of %d series %s %s %s, worst %s", n, len(vals), word, word2(word), u.format(bound), u.format(vals[w])+ss[idx[w]].labelSuffix()))
			} else {
				parts = append(parts, fmt.Sprintf("%s %s %s %s", what, word, word2(word), u.format(bound)))
			}
			return
		}
		parts = append(parts, fmt.Sprintf("%s within %s %s", what, word2(word), u.format(bound)))
	}
	if g.Max != nil {
		judge(*g.Max, "above", func(v float64) bool { return v > *g.Max }, direction{}.worst)
	}
	if g.Min != nil {
		judge(*g.Min, "below", func(v float64) bool { return v < *g.Min }, direction{lowerWorse: true}.worst)
	}
	ev.Reason = fmt.Sprintf("%s %s: %s", g.Name, strings.Join(parts, "; "), verdictWord(ev.Verdict))
	return ev
}

func word2(word string) string {
	if word == "above" {
		return "max"
	}
	return "min"
}

func flatten(ss []series) []float64 {
	var out []float64
	for _, s := range ss {
		out = append(out, s.values...)
	}
	return out
}

// seriesIndex maps each flattened value to its series.
func seriesIndex(ss []series) []int {
	var out []int
	for i, s := range ss {
		for range s.values {
			out = append(out, i)
		}
	}
	return out
}

// judgeDelta compares the canary with a reference (the baseline, or the
// same nodes before the change). The canary's worst series is compared
// with the median of the reference's series; both must be non-empty and
// finite. against names the reference in the reason.
func judgeDelta(g plan.WaveGate, u unit, against string, can, ref []series) Evaluation {
	dir, err := parseDirection(g.Direction)
	if err != nil {
		return problemf("%v", err).evaluation(g)
	}
	inc, err := parseIncrease(g.MaxIncrease)
	if err != nil {
		return problemf("%v", err).evaluation(g)
	}
	cv, rv := flatten(can), flatten(ref)
	w := dir.worst(cv)
	c, r := cv[w], median(rv)
	worse := dir.worsening(c, r)
	rel := math.NaN()
	switch {
	case r != 0:
		rel = (c - r) / math.Abs(r)
	case c == r:
		rel = 0
	case worse > 0:
		rel = math.Inf(1)
		if dir.lowerWorse {
			rel = math.Inf(-1)
		}
	}
	var fail bool
	if inc.relative {
		relWorse := rel
		if dir.lowerWorse {
			relWorse = -rel
		}
		fail = relWorse > inc.v+1e-12
	} else {
		fail = worse > inc.v*(1+1e-12)
	}
	canWhat := u.format(c)
	if len(cv) > 1 {
		canWhat += fmt.Sprintf(" (worst of %d series%s)", len(cv), can[seriesIndex(can)[w]].labelSuffix())
	}
	refWhat := u.format(r)
	if len(rv) > 1 {
		refWhat += fmt.Sprintf(" (median of %d series)", len(rv))
	}
	change := formatPct(rel)
	if !inc.relative {
		change = fmt.Sprintf("%s, %s", signed(u, c-r), change)
	}
	allowed := "allowed " + inc.String()
	if dir.lowerWorse {
		allowed = "allowed " + strings.Replace(inc.String(), "+", "-", 1) + " (lower is worse)"
	}
	v := engine.Pass
	if fail {
		v = engine.Fail
	}
	return Evaluation{
		Verdict:  v,
		Reason:   fmt.Sprintf("%s %s vs %s %s (%s), %s: %s", g.Name, canWhat, against, refWhat, change, allowed, verdictWord(v)),
		Canary:   cv,
		Baseline: rv,
	}
}

func signed(u unit, d float64) string {
	s := u.format(d)
	if d >= 0 {
		s = "+" + s
	}
	return s
}

// statParams are a statistical gate's parameters with gate defaults for
// unset fields.
type statParams struct {
	alpha      float64
	minEffect  float64
	minSamples int
	dir        direction
}

func statParamsOf(g plan.WaveGate) (statParams, error) {
	p := statParams{alpha: g.Alpha, minSamples: g.MinSamples}
	if p.alpha == 0 {
		p.alpha = DefaultAlpha
	}
	if p.alpha < 0 || p.alpha >= 1 || math.IsNaN(p.alpha) {
		return p, fmt.Errorf("alpha %g is not between 0 and 1", g.Alpha)
	}
	if p.minSamples <= 0 {
		p.minSamples = DefaultSamples
	}
	var err error
	if p.minEffect, err = parseMinEffect(g.MinEffect); err != nil {
		return p, err
	}
	if p.dir, err = parseDirection(g.Direction); err != nil {
		return p, err
	}
	return p, nil
}

// samples pools the finite values of a range result, counting the NaN
// ones it drops (steps without traffic make histogram_quantile NaN).
// ±Inf is a problem, not dropped: it may be the regression itself.
func samples(side string, ss []series) ([]float64, int, *problem) {
	var out []float64
	nan := 0
	for _, s := range ss {
		for _, v := range s.values {
			switch {
			case math.IsNaN(v):
				nan++
			case math.IsInf(v, 0):
				return nil, 0, problemf("%s has %s samples%s (a quantile above the histogram's highest finite bucket, or x/0?)", side, formatFloat(v), s.labelSuffix())
			default:
				out = append(out, v)
			}
		}
	}
	return out, nan, nil
}

// judgeStatistical runs the one-sided Mann-Whitney U test in the worse
// direction and fails when p < alpha and the Hodges-Lehmann shift,
// relative to the baseline median, is at least minEffect. Fewer than
// minSamples finite samples on either side is no data. against names
// the reference in the reason: "baseline", or "before" (the same nodes
// before the change).
func judgeStatistical(g plan.WaveGate, u unit, against string, can, base []series) Evaluation {
	p, err := statParamsOf(g)
	if err != nil {
		return problemf("%v", err).evaluation(g)
	}
	cv, cnan, prob := samples("canary", can)
	if prob != nil {
		return prob.evaluation(g)
	}
	bv, bnan, prob := samples(against, base)
	if prob != nil {
		return prob.evaluation(g)
	}
	if len(cv) < p.minSamples || len(bv) < p.minSamples {
		ev := problemf("too few samples: canary %d%s, %s %d%s; need %d per side",
			len(cv), dropped(cnan), against, len(bv), dropped(bnan), p.minSamples).evaluation(g)
		ev.Canary, ev.Baseline = cv, bv
		return ev
	}
	tc, tb := cv, bv
	if p.dir.lowerWorse {
		tc, tb = negate(cv), negate(bv)
	}
	r := MannWhitney(tc, tb)
	mc, mb := median(cv), median(bv)
	// Effect: the Hodges-Lehmann shift in the worse direction relative
	// to the baseline median; from a zero median any worsening counts
	// as infinite.
	shift := hodgesLehmann(tc, tb)
	effect := 0.0
	switch {
	case mb != 0:
		effect = shift / math.Abs(mb)
	case shift > 0:
		effect = math.Inf(1)
	}
	fail := r.P < p.alpha && effect >= p.minEffect
	v := engine.Pass
	if fail {
		v = engine.Fail
	}
	rel := math.NaN()
	if mb != 0 {
		rel = (mc - mb) / math.Abs(mb)
	}
	q := 0.99
	if p.dir.lowerWorse {
		q = 0.01
	}
	qname := "p99"
	if p.dir.lowerWorse {
		qname = "p1"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s median %s vs %s %s (%s), %s %s vs %s; ", g.Name,
		u.format(mc), against, u.format(mb), formatPct(rel),
		qname, u.format(Quantile(cv, q)), u.format(Quantile(bv, q)))
	worse := "worse"
	if p.dir.lowerWorse {
		worse = "worse (lower)"
	}
	fmt.Fprintf(&b, "shift %s %s (min %s), U-test U=%.0f p=%s (alpha %g) over %d samples (%d canary%s, %d %s%s): %s",
		formatPct(effect), worse, formatPct(p.minEffect), r.U, formatP(r.P), p.alpha,
		len(cv)+len(bv), len(cv), dropped(cnan), len(bv), against, dropped(bnan), verdictWord(v))
	if r.P < p.alpha && !fail {
		b.WriteString(" (significant, but below the minimum effect)")
	}
	return Evaluation{Verdict: v, Reason: b.String(), Canary: cv, Baseline: bv}
}

func dropped(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d NaN dropped", n)
}

func formatP(p float64) string {
	if p >= 0.001 {
		return strconv.FormatFloat(p, 'f', 3, 64)
	}
	return strconv.FormatFloat(p, 'e', 1, 64)
}

func negate(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = -x
	}
	return out
}
