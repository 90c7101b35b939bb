package gate

import (
	"math"
	"slices"
)

// UTest is the result of a one-sided Mann-Whitney U test asking whether
// the canary's values are stochastically greater (worse, when higher is
// worse) than the baseline's.
type UTest struct {
	U        float64 // U statistic of the canary sample
	Z        float64 // normal approximation with continuity and tie correction
	P        float64 // one-sided p-value: P(U >= observed | no difference)
	NCanary  int
	NBase    int
	Effect   float64 // Hodges-Lehmann shift estimate relative to the baseline median (0.38 = +38%)
	MedCan   float64
	MedBase  float64
	RankBias float64 // rank-biserial correlation in [-1, 1]; > 0 means canary higher
}

// MannWhitney runs the one-sided test of canary > baseline. It needs at
// least one value on each side; callers enforce their own minimum sample
// count. NaN values must be removed before the call.
func MannWhitney(canary, base []float64) UTest {
	n1, n2 := len(canary), len(base)
	r := UTest{NCanary: n1, NBase: n2, P: 1}
	if n1 == 0 || n2 == 0 {
		return r
	}
	type obs struct {
		v      float64
		canary bool
	}
	all := make([]obs, 0, n1+n2)
	for _, v := range canary {
		all = append(all, obs{v, true})
	}
	for _, v := range base {
		all = append(all, obs{v, false})
	}
	slices.SortFunc(all, func(a, b obs) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	// Mid-ranks for ties, and the tie term for the variance.
	var rankSum, tieTerm float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		mid := float64(i+j+1) / 2 // ranks are 1-based: (i+1 + j) / 2
		for k := i; k < j; k++ {
			if all[k].canary {
				rankSum += mid
			}
		}
		t := float64(j - i)
		tieTerm += t*t*t - t
		i = j
	}
	f1, f2 := float64(n1), float64(n2)
	n := f1 + f2
	r.U = rankSum - f1*(f1+1)/2
	mean := f1 * f2 / 2
	variance := f1 * f2 / 12 * ((n + 1) - tieTerm/(n*(n-1)))
	if variance > 0 {
		r.Z = (r.U - mean - 0.5) / math.Sqrt(variance)
		r.P = 0.5 * math.Erfc(r.Z/math.Sqrt2)
	} else if r.U > mean {
		r.P = 0
	}
	r.RankBias = 2*r.U/(f1*f2) - 1
	r.MedCan, r.MedBase = median(canary), median(base)
	if r.MedBase != 0 {
		r.Effect = hodgesLehmann(canary, base) / math.Abs(r.MedBase)
	}
	return r
}

// hodgesLehmann is the median of all pairwise differences canary - base,
// sampled on a grid when the product of sizes is large.
func hodgesLehmann(canary, base []float64) float64 {
	step1, step2 := 1, 1
	for (len(canary)/step1)*(len(base)/step2) > 40_000 {
		if len(canary)/step1 >= len(base)/step2 {
			step1++
		} else {
			step2++
		}
	}
	diffs := make([]float64, 0, (len(canary)/step1+1)*(len(base)/step2+1))
	for i := 0; i < len(canary); i += step1 {
		for j := 0; j < len(base); j += step2 {
			diffs = append(diffs, canary[i]-base[j])
		}
	}
	return median(diffs)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Quantile returns the q-quantile (0..1) of v by linear interpolation.
func Quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}
