// Package localize says what failed nodes share that healthy ones do not.
// It is pure: given each node's attributes (os.family, kernel,
// hardware.class, labels.zone, packages.openssl, ...) and its outcome, it
// tests every attribute value with a one-sided Fisher exact test (is the
// value over-represented among the failed nodes?), corrects for the
// number of values tested, and names the values whose evidence survives:
//
//	3 of 3 failed nodes have hardware.class=gen3; 0 of 9 succeeded nodes do; p=0.005
//
// Weak evidence names nothing: failures spread at random over the fleet
// yield no finding (at the chosen significance level, a false finding in
// at most Alpha of such fleets).
//
// Multiple testing: the p-values are Bonferroni-corrected over the
// testable values only (Tarone's refinement, 1990). A value carried by
// one node out of a thousand can never reach significance, however the
// failures fall; counting it would divide the significance level by
// every package version and kernel build in the fleet and hide a real
// cause. Tarone's count keeps the family-wise error rate at Alpha while
// counting only values whose smallest achievable p-value could pass.
package localize

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/drover-dev/drover/internal/fleet"
)

// Outcome is how a node ended: nodes not yet done are Excluded.
type Outcome uint8

const (
	Excluded Outcome = iota
	Failed
	Succeeded
)

// Attr is one attribute of a node and its value.
type Attr struct {
	Name  string
	Value string
}

// Subject is one node: its attributes (a name at most once; an empty
// value is unknown and tested for nothing) and its outcome.
type Subject struct {
	Attrs   []Attr
	Outcome Outcome
}

// Finding is one attribute value over-represented among the failed nodes.
type Finding struct {
	Attribute string `json:"attribute"`
	Value     string `json:"value"`
	// FailedWith of Failed failed nodes have the value; SucceededWith of
	// Succeeded succeeded nodes do.
	FailedWith    int `json:"failedWith"`
	Failed        int `json:"failed"`
	SucceededWith int `json:"succeededWith"`
	Succeeded     int `json:"succeeded"`
	// P is the one-sided Fisher exact p-value, corrected for the Tests
	// values tested (min(1, raw p × Tests)).
	P     float64 `json:"p"`
	Tests int     `json:"tests"`
}

// String is the finding as reasons quote it: "3 of 3 failed nodes have
// hardware.class=gen3; 0 of 9 succeeded nodes do; p=0.005".
func (f Finding) String() string {
	return fmt.Sprintf("%d of %d failed %s %s=%s; %d of %d succeeded %s; p=%s",
		f.FailedWith, f.Failed, nodesHave(f.Failed), f.Attribute, f.Value,
		f.SucceededWith, f.Succeeded, nodesDo(f.Succeeded), FormatP(f.P))
}

func nodesHave(n int) string {
	if n == 1 {
		return "node has"
	}
	return "nodes have"
}

func nodesDo(n int) string {
	if n == 1 {
		return "node does"
	}
	return "nodes do"
}

// FormatP writes a p-value as the gates do: three decimals, or
// scientific notation below 0.001.
func FormatP(p float64) string {
	if p >= 0.001 {
		return strconv.FormatFloat(p, 'f', 3, 64)
	}
	return strconv.FormatFloat(p, 'e', 1, 64)
}

// Sentence joins findings for a reason: "localised: F1; F2"; "" when
// there are none.
func Sentence(fs []Finding) string {
	if len(fs) == 0 {
		return ""
	}
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return "localised: " + strings.Join(parts, "; ")
}

// Options tune Localise; the zero value is the defaults.
type Options struct {
	// Alpha is the family-wise significance level; 0 is DefaultAlpha.
	Alpha float64
	// Max is how many findings to return at most; 0 is DefaultMax.
	Max int
}

const (
	DefaultAlpha = 0.05
	DefaultMax   = 3
)

type key struct{ name, value string }

type cell struct{ failed, succeeded int }

// Localise returns the attribute values that explain the failures, best
// first: by corrected p-value, then by how many failed nodes they cover,
// then by how few succeeded nodes have them, then by name and value. It
// returns none when no node failed, none succeeded, or no value's
// corrected p-value is at most Alpha.
func Localise(subjects []Subject, opt Options) []Finding {
	alpha, maxN := opt.Alpha, opt.Max
	if alpha <= 0 {
		alpha = DefaultAlpha
	}
	if maxN <= 0 {
		maxN = DefaultMax
	}
	nf, ns := 0, 0
	cells := map[key]*cell{}
	for i := range subjects {
		s := &subjects[i]
		switch s.Outcome {
		case Failed:
			nf++
		case Succeeded:
			ns++
		default:
			continue
		}
		for _, a := range s.Attrs {
			if a.Value == "" {
				continue
			}
			c := cells[key{a.Name, a.Value}]
			if c == nil {
				c = &cell{}
				cells[key{a.Name, a.Value}] = c
			}
			if s.Outcome == Failed {
				c.failed++
			} else {
				c.succeeded++
			}
		}
	}
	if nf == 0 || ns == 0 {
		return nil
	}
	n := nf + ns
	lf := newLogFact(n)
	// Tarone: the smallest k such that at most k values have a minimum
	// achievable p-value <= alpha/k.
	minPs := make([]float64, 0, len(cells))
	for _, c := range cells {
		minPs = append(minPs, lf.hyper(n, c.failed+c.succeeded, nf, min(c.failed+c.succeeded, nf)))
	}
	slices.Sort(minPs)
	k := 1
	for ; k <= len(minPs); k++ {
		// values with minP <= alpha/k are the first m in sorted order
		m, _ := slices.BinarySearchFunc(minPs, alpha/float64(k), func(p, t float64) int {
			if p <= t {
				return -1
			}
			return 1
		})
		if m <= k {
			break
		}
	}
	var out []Finding
	for kv, c := range cells {
		if c.failed == 0 || c.failed*ns <= c.succeeded*nf { // not over-represented among the failed
			continue
		}
		p := lf.upperTail(n, c.failed+c.succeeded, nf, c.failed)
		cp := min(1, p*float64(k))
		if cp > alpha {
			continue
		}
		out = append(out, Finding{Attribute: kv.name, Value: kv.value, FailedWith: c.failed, Failed: nf,
			SucceededWith: c.succeeded, Succeeded: ns, P: cp, Tests: k})
	}
	slices.SortFunc(out, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.P, b.P), cmp.Compare(b.FailedWith, a.FailedWith),
			cmp.Compare(a.SucceededWith, b.SucceededWith), cmp.Compare(a.Attribute, b.Attribute), cmp.Compare(a.Value, b.Value))
	})
	if len(out) > maxN {
		out = out[:maxN]
	}
	return out
}

// logFact holds log(i!) for i in 0..n.
type logFact []float64

func newLogFact(n int) logFact {
	lf := make(logFact, n+1)
	for i := 2; i <= n; i++ {
		lf[i] = lf[i-1] + math.Log(float64(i))
	}
	return lf
}

func (lf logFact) choose(n, k int) float64 { return lf[n] - lf[k] - lf[n-k] }

// hyper is P(X = x) for X hypergeometric: x of the draws drawn from n
// items of which good are good.
func (lf logFact) hyper(n, good, draws, x int) float64 {
	if x < 0 || x > good || x > draws || draws-x > n-good {
		return 0
	}
	return math.Exp(lf.choose(good, x) + lf.choose(n-good, draws-x) - lf.choose(n, draws))
}

// upperTail is P(X >= x): the one-sided Fisher exact p-value of x failed
// nodes among the good nodes having the value.
func (lf logFact) upperTail(n, good, draws, x int) float64 {
	p := 0.0
	for i := x; i <= min(good, draws); i++ {
		p += lf.hyper(n, good, draws, i)
	}
	return min(1, p)
}

// Attributes lists a node's attributes under the names topology keys and
// selectors use: os.family, os.name, os.version, kernel, arch,
// hardware.class, kubelet, runtime.containerd, runtime.docker,
// runtime.crio, labels.NAME for every label and packages.NAME for every
// installed package (its version). n must not be nil.
func Attributes(n *fleet.Node) []Attr {
	f := &n.Facts
	as := make([]Attr, 0, 10+len(n.Labels)+len(f.Packages))
	as = append(as,
		Attr{"os.family", f.OS.Family}, Attr{"os.name", f.OS.Name}, Attr{"os.version", f.OS.Version},
		Attr{"kernel", f.Kernel}, Attr{"arch", f.Arch}, Attr{"hardware.class", f.Hardware.Class},
		Attr{"kubelet", f.Kubelet}, Attr{"runtime.containerd", f.Runtime.Containerd},
		Attr{"runtime.docker", f.Runtime.Docker}, Attr{"runtime.crio", f.Runtime.CRIO})
	for k, v := range n.Labels {
		as = append(as, Attr{"labels." + k, v})
	}
	for k, v := range f.Packages {
		as = append(as, Attr{"packages." + k, v})
	}
	return as
}
