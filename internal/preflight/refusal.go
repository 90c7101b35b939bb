package preflight

import (
	"fmt"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/hostcheck"
	"github.com/drover-dev/drover/internal/plan"
)

// Refusal is one part of a plan (an action or a probe, at Path) that the
// agents of Nodes would refuse, and why (Reason, from plan.RefusedAction
// or plan.RefusedProbe with their policy).
type Refusal struct {
	Path   string
	Reason string
	Nodes  []string
	// Always: the refusal stands whatever target.onRefusal says (a
	// command probe for an agent too old to ask its node's consent,
	// which would run it).
	Always bool
}

// Refusals returns what the target nodes' agents would refuse of p, as
// each reports its policy in facts.agent, grouped by path and reason in
// plan order.
func Refusals(p *plan.Plan, targets []*fleet.Node) []Refusal {
	type key struct{ path, reason string }
	idx := map[key]int{}
	var out []Refusal
	var order []int // plan order of each refusal's path
	add := func(at int, path, reason, node string, always bool) {
		k := key{path, reason}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, Refusal{Path: path, Reason: reason, Always: always})
			order = append(order, at)
		}
		out[i].Nodes = append(out[i].Nodes, node)
	}
	for _, n := range targets {
		pol := n.Facts.Agent
		for i, act := range p.Change.Actions {
			if why := plan.RefusedAction(act, pol); why != "" {
				add(i, fmt.Sprintf("change.actions[%d]", i), why, n.ID, false)
			}
		}
		for i, pr := range p.Gates.Node.Probes {
			if why := plan.RefusedProbe(pr, pol); why != "" {
				add(len(p.Change.Actions)+i, fmt.Sprintf("gates.node.probes[%d]", i), why, n.ID, pol == nil)
			}
			// A host check the node's system has no reader for would
			// fail on it: said before the rollout, not found during it.
			if why := hostcheck.Unsupported(pr.Kind, goos(n.Facts.OS.Family)); why != "" {
				add(len(p.Change.Actions)+i, fmt.Sprintf("gates.node.probes[%d]", i), why, n.ID, false)
			}
		}
	}
	perm := make([]int, len(out))
	for i := range out {
		slices.Sort(out[i].Nodes)
		perm[i] = i
	}
	slices.SortFunc(perm, func(a, b int) int {
		if order[a] != order[b] {
			return order[a] - order[b]
		}
		return strings.Compare(out[a].Nodes[0], out[b].Nodes[0])
	})
	sorted := make([]Refusal, len(out))
	for i, j := range perm {
		sorted[i] = out[j]
	}
	return sorted
}

// Blocking returns the refusals that refuse the rollout's creation: all
// under target.onRefusal: refuse-creation, only those that always do
// under fail-node.
func Blocking(p *plan.Plan, rs []Refusal) []Refusal {
	var out []Refusal
	for _, r := range rs {
		if r.Always || p.Target.OnRefusal != plan.RefusalFailNode {
			out = append(out, r)
		}
	}
	return out
}

// Error is r as a plan problem at its path.
func (r Refusal) Error(p *plan.Plan) *plan.Error {
	hint := "; allow it in their agents' configuration, or set target.onRefusal: fail-node to create the rollout anyway (those nodes then fail without anything run)"
	if r.Always {
		hint = "; target.onRefusal cannot override this"
	}
	return p.Errorf(r.Path, "%s would refuse it: %s%s", nodeList(r.Nodes), r.Reason, hint)
}

// goos is the Go name of an os.family's system.
func goos(family string) string {
	switch family {
	case "windows":
		return "windows"
	case "macos":
		return "darwin"
	}
	return "linux"
}
