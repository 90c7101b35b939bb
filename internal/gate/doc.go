// Package gate owns health judgement: node probes, Prometheus queries and
// the comparison of changed nodes against a baseline of unchanged ones.
// Every evaluation yields Pass, Fail or Inconclusive with a reason that
// holds the numbers; missing data is never Pass.
package gate

// Defaults of the statistical judge, chosen from the measured error rates
// in TestJudgeRates (see README): samples per side, one-sided significance
// level, and the smallest relative worsening that counts.
const (
	DefaultSamples   = 100
	DefaultAlpha     = 0.005
	DefaultMinEffect = 0.10
)
