package sim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// HistoryVersion is the version of the History format this drover writes
// and reads.
const HistoryVersion = 1

// History is what steps really took on a fleet, aggregated per (action
// kind, OS family, OS version, hardware class) and per coarser key: the
// format of `drover history export`, read by `drover simulate --history`
// and by a server's dry runs. See docs/history.md.
type History struct {
	Version     int       `json:"version"`
	GeneratedAt time.Time `json:"generatedAt"`
	// Steps is how many observed steps the buckets aggregate.
	Steps   int      `json:"steps"`
	Buckets []Bucket `json:"buckets"`
}

// HistoryKey is one bucket's key. An empty field means "any": the bucket
// (action "package", every other field empty) aggregates every package
// step. Action is the plan's action kinds joined by "+" (ActionKey).
type HistoryKey struct {
	Action        string `json:"action"`
	OSFamily      string `json:"osFamily,omitempty"`
	OSVersion     string `json:"osVersion,omitempty"`
	HardwareClass string `json:"hardwareClass,omitempty"`
}

func (k HistoryKey) String() string {
	s := k.Action
	if k.OSFamily != "" {
		s += " on " + k.OSFamily
		if k.OSVersion != "" {
			s += " " + k.OSVersion
		}
	}
	if k.HardwareClass != "" {
		s += "/" + k.HardwareClass
	}
	return s
}

// Bucket is the distribution of one key's step timings, each as
// Quantiles in seconds. Active is the time from the agent's start to the
// node healthy (execution, reboot and probes together, as observed on
// each step, not the sum of the quantiles).
type Bucket struct {
	HistoryKey
	Samples   int       `json:"samples"`
	Dispatch  Quantiles `json:"dispatch"`
	Execution Quantiles `json:"execution"`
	Reboot    Quantiles `json:"reboot"`
	Probe     Quantiles `json:"probe"`
	Soak      Quantiles `json:"soak"`
	Active    Quantiles `json:"active"`
}

// Quantiles are the 0th, 10th, 20th, ... 100th percentiles of a
// distribution of durations, in seconds (11 values).
type Quantiles []float64

// Observation is one step's timings as a server measured them.
type Observation struct {
	HistoryKey
	// Dispatch is from the step's dispatch to the agent's start;
	// Execution the actions; Reboot the reboot (0 if none); Probe from
	// the end of the actions or the reboot to the node healthy; Soak from
	// healthy to settled.
	Dispatch, Execution, Reboot, Probe, Soak time.Duration
}

// ActionKey names a plan's change for history: its action kinds in
// order joined by "+", e.g. "package" or "package+service-restart".
func ActionKey(p *plan.Plan) string {
	var kinds []string
	for _, a := range p.Change.Actions {
		kinds = append(kinds, string(a.Kind()))
	}
	return strings.Join(kinds, "+")
}

// Aggregate builds a History from observations: a bucket per full key
// and per coarser key (without the hardware class, without the OS
// version, action only).
func Aggregate(obs []Observation, at time.Time) *History {
	groups := map[HistoryKey][]int{}
	for i, o := range obs {
		k := o.HistoryKey
		seen := map[HistoryKey]bool{}
		for _, c := range []HistoryKey{k, {Action: k.Action, OSFamily: k.OSFamily, OSVersion: k.OSVersion},
			{Action: k.Action, OSFamily: k.OSFamily}, {Action: k.Action}} {
			if !seen[c] {
				seen[c] = true
				groups[c] = append(groups[c], i)
			}
		}
	}
	h := &History{Version: HistoryVersion, GeneratedAt: at.UTC(), Steps: len(obs), Buckets: []Bucket{}}
	for k, idx := range groups {
		pick := func(f func(Observation) time.Duration) Quantiles {
			v := make([]float64, len(idx))
			for j, i := range idx {
				v[j] = f(obs[i]).Seconds()
			}
			return quantiles(v)
		}
		h.Buckets = append(h.Buckets, Bucket{HistoryKey: k, Samples: len(idx),
			Dispatch:  pick(func(o Observation) time.Duration { return o.Dispatch }),
			Execution: pick(func(o Observation) time.Duration { return o.Execution }),
			Reboot:    pick(func(o Observation) time.Duration { return o.Reboot }),
			Probe:     pick(func(o Observation) time.Duration { return o.Probe }),
			Soak:      pick(func(o Observation) time.Duration { return o.Soak }),
			Active:    pick(func(o Observation) time.Duration { return o.Execution + o.Reboot + o.Probe }),
		})
	}
	slices.SortFunc(h.Buckets, func(a, b Bucket) int {
		return cmp.Or(cmp.Compare(a.Action, b.Action), cmp.Compare(a.OSFamily, b.OSFamily),
			cmp.Compare(a.OSVersion, b.OSVersion), cmp.Compare(a.HardwareClass, b.HardwareClass))
	})
	return h
}

// quantiles returns the 11 deciles of v (nearest rank, interpolated).
func quantiles(v []float64) Quantiles {
	slices.Sort(v)
	q := make(Quantiles, 11)
	for i := range q {
		pos := float64(i) / 10 * float64(len(v)-1)
		lo := int(math.Floor(pos))
		hi := min(lo+1, len(v)-1)
		q[i] = math.Round((v[lo]+(v[hi]-v[lo])*(pos-float64(lo)))*1000) / 1000
	}
	return q
}

// Sample draws from the distribution by inverse transform over the
// deciles, linear between them.
func (q Quantiles) Sample(r *rand.Rand) time.Duration {
	if len(q) != 11 {
		return 0
	}
	u := r.Float64() * 10
	i := min(int(u), 9)
	s := q[i] + (q[i+1]-q[i])*(u-float64(i))
	return time.Duration(s * float64(time.Second))
}

// At returns the quantile p in [0,1], linear between the deciles.
func (q Quantiles) At(p float64) time.Duration {
	if len(q) != 11 {
		return 0
	}
	u := math.Max(0, math.Min(p, 1)) * 10
	i := min(int(u), 9)
	return time.Duration((q[i] + (q[i+1]-q[i])*(u-float64(i))) * float64(time.Second))
}

// ReadHistory reads and checks a History in the export format.
func ReadHistory(r io.Reader) (*History, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var h History
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	if h.Version != HistoryVersion {
		return nil, fmt.Errorf("history: version %d, this drover reads version %d", h.Version, HistoryVersion)
	}
	for i, b := range h.Buckets {
		if b.Action == "" {
			return nil, fmt.Errorf("history: bucket %d: no action", i+1)
		}
		for name, q := range map[string]Quantiles{"dispatch": b.Dispatch, "active": b.Active} {
			if len(q) != 11 {
				return nil, fmt.Errorf("history: bucket %d (%s): %s has %d quantiles, want 11", i+1, b.HistoryKey, name, len(q))
			}
			if !slices.IsSorted(q) || q[0] < 0 {
				return nil, fmt.Errorf("history: bucket %d (%s): %s quantiles must be >= 0 and ascending", i+1, b.HistoryKey, name)
			}
		}
	}
	return &h, nil
}

// Learned is a Durations drawn from a History for one action key: per
// node the bucket of its full key, else the nearest coarser one, else the
// fallback model.
type Learned struct {
	action   string
	buckets  map[HistoryKey]*Bucket
	fallback Durations
	// quantile, when in (0,1), makes every learned duration that
	// quantile of its distribution instead of a draw (AtQuantile).
	quantile float64
}

// AtQuantile returns the model with every learned duration fixed at
// quantile q of its distribution (e.g. 0.9: every step as slow as one
// in ten): the bounds of a range. Nodes without history still draw from
// the fallback.
func (m *Learned) AtQuantile(q float64) *Learned {
	c := *m
	c.quantile = q
	return &c
}

func (m *Learned) draw(q Quantiles, r *rand.Rand) time.Duration {
	if m.quantile > 0 && m.quantile < 1 {
		return q.At(m.quantile)
	}
	return q.Sample(r)
}

var (
	_ Durations = (*Learned)(nil)
	_ Explainer = (*Learned)(nil)
)

// Model returns the learned model of h for action (ActionKey), falling
// back to fallback (nil: the default PlanDurations) for nodes with no
// history. h nil has no history.
func (h *History) Model(action string, fallback Durations) *Learned {
	if fallback == nil {
		fallback = PlanDurations{}
	}
	m := &Learned{action: action, buckets: map[HistoryKey]*Bucket{}, fallback: fallback}
	if h != nil {
		for i := range h.Buckets {
			if b := &h.Buckets[i]; b.Action == action && b.Samples > 0 {
				m.buckets[b.HistoryKey] = b
			}
		}
	}
	return m
}

// Covers reports whether some node timing comes from history.
func (m *Learned) Covers() bool { return len(m.buckets) > 0 }

func nodeKey(action string, n *fleet.Node) HistoryKey {
	return HistoryKey{Action: action, OSFamily: n.Facts.OS.Family, OSVersion: n.Facts.OS.Version, HardwareClass: n.Facts.Hardware.Class}
}

// lookup returns the bucket for n, nil when none.
func (m *Learned) lookup(n *fleet.Node) *Bucket {
	k := nodeKey(m.action, n)
	for _, c := range []HistoryKey{k, {Action: k.Action, OSFamily: k.OSFamily, OSVersion: k.OSVersion},
		{Action: k.Action, OSFamily: k.OSFamily}, {Action: k.Action}} {
		if b := m.buckets[c]; b != nil {
			return b
		}
	}
	return nil
}

// Dispatch draws the dispatch latency.
func (m *Learned) Dispatch(n *fleet.Node, r *rand.Rand) time.Duration {
	if b := m.lookup(n); b != nil {
		return m.draw(b.Dispatch, r)
	}
	return m.fallback.Dispatch(n, r)
}

// Step draws the time from the agent's start to the node healthy.
func (m *Learned) Step(n *fleet.Node, r *rand.Rand) time.Duration {
	if b := m.lookup(n); b != nil {
		return m.draw(b.Active, r)
	}
	return m.fallback.Step(n, r)
}

// Rollback draws from the fallback model: history holds apply steps.
func (m *Learned) Rollback(n *fleet.Node, r *rand.Rand) time.Duration {
	return m.fallback.Rollback(n, r)
}

// Explain says which nodes' timings are learned and which are not, e.g.
// "learned (package on debian 12: 38 steps)" or "no history for package
// on rhel 9 (3 nodes), default model".
func (m *Learned) Explain(nodes []*fleet.Node) string {
	used := map[HistoryKey]int{}
	missing := map[HistoryKey]int{}
	for _, n := range nodes {
		if b := m.lookup(n); b != nil {
			used[b.HistoryKey] = b.Samples
		} else {
			k := nodeKey(m.action, n)
			k.HardwareClass = ""
			missing[k]++
		}
	}
	var parts []string
	if len(used) > 0 {
		var ks []string
		steps := 0
		for k, s := range used {
			ks = append(ks, k.String())
			steps += s
		}
		slices.Sort(ks)
		parts = append(parts, fmt.Sprintf("learned from %s of %s (%s)", count(steps, "step"), count(len(ks), "key"), firstOf(ks, 3)))
	}
	if len(missing) > 0 {
		var ks []string
		for k, c := range missing {
			ks = append(ks, fmt.Sprintf("%s (%s)", k, count(c, "node")))
		}
		slices.Sort(ks)
		fb := "default model"
		if e, ok := m.fallback.(Explainer); ok {
			fb = e.Explain(nil)
		}
		parts = append(parts, "no history for "+strings.Join(ks, ", ")+", "+fb)
	}
	return strings.Join(parts, "; ")
}

func count(n int, what string) string { return fmt.Sprintf("%d %s", n, plural(n, what, what+"s")) }

// firstOf joins the first n of ss, saying how many more there are.
func firstOf(ss []string, n int) string {
	if len(ss) <= n {
		return strings.Join(ss, ", ")
	}
	return strings.Join(ss[:n], ", ") + fmt.Sprintf(" and %d more", len(ss)-n)
}
