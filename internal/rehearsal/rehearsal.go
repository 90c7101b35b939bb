// Package rehearsal owns what a dry run promises about the rollout that
// follows it: which wave each target node joins (and so the canary's
// members), the assignment hash that approvals bind to, and, when a
// rollout is created from a dry run, the account of every node whose wave
// changed in between and why. It is pure: the server stores a Record and
// compares it with one built from the inventory at creation.
package rehearsal

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// TargetSelector is the name Entry.Selects gives the plan's target
// selector, beside the names of waves with a selector of their own.
const TargetSelector = "target"

// Entry is one inventory node as an assignment saw it.
type Entry struct {
	Node   string `json:"node"`
	Target bool   `json:"target,omitempty"` // the target selector chose it
	// Wave is the wave it joined; "" outside the target or skipped.
	Wave   string `json:"wave,omitempty"`
	Canary bool   `json:"canary,omitempty"` // Wave is a canary wave
	// Keys are the node's values of the keys the assignment reads: the
	// canary spread keys, the hold-back key, and the labels and scalar
	// facts the selectors name ("" when the node has none).
	Keys map[string]string `json:"keys,omitempty"`
	// Selects names the selectors that match the node: TargetSelector
	// and the waves with a selector, in plan order.
	Selects []string `json:"selects,omitempty"`
}

// Record is the assignment of a plan to an inventory under a seed: every
// inventory node, in ID order.
type Record struct {
	Nodes []Entry `json:"nodes"`
}

// factKeys are the scalar facts a topology key or selector can name
// (fleet.Node.Value).
var factKeys = []string{"os.family", "os.name", "os.version", "hardware.class", "arch", "kernel", "kubelet",
	"runtime.containerd", "runtime.docker", "runtime.crio"}

// Build records assignment a of plan p (its effective form, as Assign
// read it) over inventory, the nodes Assign was given.
func Build(p *plan.Plan, inventory []*fleet.Node, a *engine.Assignment) (Record, error) {
	type sel struct {
		name string
		s    *fleet.Selector
	}
	var sels []sel
	var srcs []string
	add := func(name, expr string) error {
		if expr == "" {
			return nil
		}
		s, err := fleet.CompileSelector(expr)
		if err != nil {
			return fmt.Errorf("%s selector: %w", name, err)
		}
		sels = append(sels, sel{name, s})
		srcs = append(srcs, expr)
		return nil
	}
	if err := add(TargetSelector, p.Target.Selector); err != nil {
		return Record{}, err
	}
	canary := map[string]bool{}
	keySet := map[string]bool{}
	for _, w := range p.Waves {
		if err := add("wave "+w.Name, w.Selector); err != nil {
			return Record{}, err
		}
		if w.Canary != nil {
			canary[w.Name] = true
			for _, k := range w.Spread {
				keySet[k] = true
			}
		}
	}
	if hb := p.Limits.HoldBack; hb != nil {
		keySet[hb.Key] = true
	}
	named := func(k string) bool {
		return slices.ContainsFunc(srcs, func(src string) bool { return strings.Contains(src, k) })
	}
	for _, k := range factKeys {
		if named(k) {
			keySet[k] = true
		}
	}
	seen := map[string]bool{}
	for _, n := range inventory {
		for k := range n.Labels {
			if !seen[k] {
				seen[k] = true
				if !keySet[k] && named(k) {
					keySet["labels."+k] = true
				}
			}
		}
	}
	keys := slices.Sorted(maps.Keys(keySet))

	waveOf := make(map[string]string, len(a.Nodes))
	for _, n := range a.Nodes {
		waveOf[n.ID] = ""
		if n.State.Phase != engine.PhaseSkipped {
			waveOf[n.ID] = n.State.Wave
		}
	}
	r := Record{Nodes: make([]Entry, 0, len(inventory))}
	for _, n := range inventory {
		wave, target := waveOf[n.ID]
		e := Entry{Node: n.ID, Target: target, Wave: wave, Canary: canary[wave]}
		if len(keys) > 0 {
			e.Keys = make(map[string]string, len(keys))
			for _, k := range keys {
				e.Keys[k] = n.Value(k)
			}
		}
		for _, s := range sels {
			ok, err := s.s.Match(n)
			if err == nil && ok {
				e.Selects = append(e.Selects, s.name)
			}
		}
		r.Nodes = append(r.Nodes, e)
	}
	slices.SortFunc(r.Nodes, func(x, y Entry) int { return strings.Compare(x.Node, y.Node) })
	return r, nil
}

// Hash is the assignment hash of a: SHA-256, in hex, of the canonical
// node-to-wave list (one "NODE\tWAVE\n" line per node that joins a wave,
// in node ID order; nodes skipped by the assignment, which have no wave,
// are left out). Approvals bind to it beside the plan's hash. A node's
// wave never changes during a rollout, so the hash of a rollout's nodes
// at any time (HashWaves) is the one of its creation.
func Hash(a *engine.Assignment) string {
	waves := make(map[string]string, len(a.Nodes))
	for _, n := range a.Nodes {
		waves[n.ID] = n.State.Wave
	}
	return HashWaves(waves)
}

// HashWaves is Hash of a node-to-wave map ("" for no wave).
func HashWaves(waves map[string]string) string {
	pairs := make([][2]string, 0, len(waves))
	for id, w := range waves {
		if w != "" {
			pairs = append(pairs, [2]string{id, w})
		}
	}
	return hashPairs(pairs)
}

// Hash is the assignment hash of r (see Hash).
func (r Record) Hash() string {
	pairs := make([][2]string, 0, len(r.Nodes))
	for _, e := range r.Nodes {
		if e.Wave != "" {
			pairs = append(pairs, [2]string{e.Node, e.Wave})
		}
	}
	return hashPairs(pairs)
}

func hashPairs(pairs [][2]string) string {
	slices.SortFunc(pairs, func(x, y [2]string) int { return strings.Compare(x[0], y[0]) })
	h := sha256.New()
	for _, p := range pairs {
		fmt.Fprintf(h, "%s\t%s\n", p[0], p[1])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Waves lists the members of each wave, in node ID order.
func (r Record) Waves() map[string][]string {
	out := map[string][]string{}
	for _, e := range r.Nodes {
		if e.Wave != "" {
			out[e.Wave] = append(out[e.Wave], e.Node)
		}
	}
	return out
}

// Canary lists the members of the canary waves, in node ID order.
func (r Record) Canary() []string {
	var out []string
	for _, e := range r.Nodes {
		if e.Canary {
			out = append(out, e.Node)
		}
	}
	return out
}

// Move is a node whose wave differs between a dry run and now. From and
// To are waves; "" means in no wave (outside the target, skipped or
// gone from the inventory).
type Move struct {
	Node string `json:"node"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	Why  string `json:"why"`
}

// Diff lists, in node ID order, the nodes whose wave in now differs from
// the one in then, each with why: gone from or new in the inventory, a
// key the assignment reads changed, a selector now or no longer matches
// it, or, when none of its own values changed, that changes elsewhere in
// the target reshuffled the waves' picks.
func Diff(then, now Record) []Move {
	old := make(map[string]Entry, len(then.Nodes))
	for _, e := range then.Nodes {
		old[e.Node] = e
	}
	cur := make(map[string]Entry, len(now.Nodes))
	for _, e := range now.Nodes {
		cur[e.Node] = e
	}
	left, joined := 0, 0
	for _, e := range then.Nodes {
		if c, ok := cur[e.Node]; e.Target && (!ok || !c.Target) {
			left++
		}
	}
	for _, c := range now.Nodes {
		if o, ok := old[c.Node]; c.Target && (!ok || !o.Target) {
			joined++
		}
	}
	ids := make([]string, 0, len(old)+len(cur))
	for id := range old {
		ids = append(ids, id)
	}
	for id := range cur {
		if _, ok := old[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []Move
	for _, id := range ids {
		o, hadOld := old[id]
		c, hasCur := cur[id]
		if o.Wave == c.Wave && o.Target == c.Target {
			continue
		}
		m := Move{Node: id, From: o.Wave, To: c.Wave}
		switch {
		case !hasCur:
			m.Why = "gone from the inventory"
		case !hadOld:
			m.Why = "new in the inventory"
		default:
			m.Why = why(o, c, left, joined)
		}
		out = append(out, m)
	}
	return out
}

func why(o, c Entry, left, joined int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(o.Keys)) {
		if nv, ok := c.Keys[k]; ok && nv != o.Keys[k] {
			parts = append(parts, fmt.Sprintf("%s changed %q -> %q", k, o.Keys[k], nv))
		}
	}
	for _, s := range o.Selects {
		if !slices.Contains(c.Selects, s) {
			parts = append(parts, s+" selector no longer matches it")
		}
	}
	for _, s := range c.Selects {
		if !slices.Contains(o.Selects, s) {
			parts = append(parts, s+" selector now matches it")
		}
	}
	if len(parts) > 0 {
		return strings.Join(parts, "; ")
	}
	if left+joined > 0 {
		return fmt.Sprintf("its own values are unchanged; the target changed (%d nodes left it, %d joined), which reshuffles the waves' picks", left, joined)
	}
	return "its own values are unchanged; other nodes' changes moved it (a canary spread or a wave's pool changed)"
}
