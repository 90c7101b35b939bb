package engine

import (
	"slices"

	"github.com/drover-dev/drover/internal/plan"
)

// Index is the static part of a rollout's decisions: each node's wave,
// cap domains, maintenance window and hold-back membership, in compact
// arrays. It depends only on the plan and on the nodes' identity, wave and
// labels, which do not change while a rollout runs, so the shell may build
// it once with NewIndex and pass it in every Input of that rollout
// (rebuilding it if it relabels nodes). A nil or mismatched Index is
// rebuilt by Decide, at the cost of a pass over the nodes' labels.
type Index struct {
	plan   *plan.Plan
	n      int
	waveOf []int32 // plan wave index, -1 when none
	caps   []capIndex
	winOf  []int32 // index into windows, -1 when the node has no window
	wins   []string
	held   []bool // in the hold-back domain
}

type capIndex struct {
	key   string
	q     plan.Quantity
	dom   []int32  // per node
	names []string // per domain id
	size  []int    // nodes per domain (skipped nodes excluded)
}

// NewIndex builds the index of p over nodes (in Input.Nodes order).
func NewIndex(p *plan.Plan, nodes []Node) *Index {
	x := &Index{plan: p, n: len(nodes), waveOf: make([]int32, len(nodes)), winOf: make([]int32, len(nodes))}
	waveIdx := make(map[string]int32, len(p.Waves))
	for i, w := range p.Waves {
		waveIdx[w.Name] = int32(i)
	}
	keys := make([]string, 0, len(p.Limits.Caps))
	for k := range p.Limits.Caps {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		x.caps = append(x.caps, capIndex{key: k, q: p.Limits.Caps[k], dom: make([]int32, len(nodes))})
	}
	domIDs := make([]map[string]int32, len(x.caps))
	for c := range domIDs {
		domIDs[c] = map[string]int32{}
	}
	winIDs := map[string]int32{}
	hb := p.Limits.HoldBack
	if hb != nil {
		x.held = make([]bool, len(nodes))
	}
	for i := range nodes {
		n := &nodes[i]
		if wi, ok := waveIdx[n.State.Wave]; ok {
			x.waveOf[i] = wi
		} else {
			x.waveOf[i] = -1
		}
		for c := range x.caps {
			ci := &x.caps[c]
			v := n.Value(ci.key)
			id, ok := domIDs[c][v]
			if !ok {
				id = int32(len(ci.names))
				domIDs[c][v] = id
				ci.names = append(ci.names, v)
				ci.size = append(ci.size, 0)
			}
			ci.dom[i] = id
			if n.State.Phase != PhaseSkipped {
				ci.size[id]++
			}
		}
		win := n.Labels[p.Windows.Label]
		if win == "" {
			win = p.Windows.Default
		}
		if win == "" {
			x.winOf[i] = -1
		} else {
			id, ok := winIDs[win]
			if !ok {
				id = int32(len(x.wins))
				winIDs[win] = id
				x.wins = append(x.wins, win)
			}
			x.winOf[i] = id
		}
		if hb != nil {
			x.held[i] = n.Value(hb.Key) == hb.Domain
		}
	}
	return x
}

// limit is the cap of domain dom: a count, or a percent of the domain's
// nodes rounded up and never below 1.
func (c *capIndex) limit(dom int32) int {
	if c.q.Percent {
		return max(1, c.q.Of(c.size[dom]))
	}
	return c.q.Count
}
