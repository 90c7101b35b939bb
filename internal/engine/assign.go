package engine

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// PlanError is a problem of a valid plan that shows only against an
// inventory (a selector that matches no node). Path names the plan field
// as plan.(*Plan).Where expects it.
type PlanError struct {
	Path string
	Msg  string
}

func (e *PlanError) Error() string { return e.Path + ": " + e.Msg }

// Assign decides, once, when a rollout starts, which wave each target node
// belongs to. It is deterministic for a given plan, fleet and seed,
// whatever the order of nodes.
//
// Waves take nodes in plan order (a wave listed before its predecessors in
// a DAG is still assigned in list order: order only matters for which
// nodes a wave takes, not when it runs). A wave takes nodes not taken by
// earlier waves that match its selector, in a seeded shuffle of the target
// so that a "5%" wave is a sample, not the first 5% by name. A canary wave
// spreads over its spread keys instead (see canary). Nodes of a held-back
// domain go only to waves that come after every wave it is held for. Target
// nodes no wave takes are skipped, with the reason.
func Assign(p *plan.Plan, nodes []*fleet.Node, seed uint64) (*Assignment, error) {
	target, err := selectTarget(p, nodes)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x6472_6f76_6572)) // "drover"
	rng.Shuffle(len(target), func(i, j int) { target[i], target[j] = target[j], target[i] })

	held := make([]bool, len(target))
	var heldBy string
	if hb := p.Limits.HoldBack; hb != nil {
		heldBy = fmt.Sprintf("%s=%s", hb.Key, hb.Domain)
		for i, n := range target {
			held[i] = n.Value(hb.Key) == hb.Domain
		}
	}
	after := heldWaves(p)

	waveOf := make([]string, len(target))
	taken := make([]bool, len(target))
	var order []int // assignment order: wave by wave
	var uncovered []Stratum
	rampTaken := map[string]int{}
	total := len(target)
	for wi, w := range p.Waves {
		var sel *fleet.Selector
		if w.Selector != "" {
			if sel, err = fleet.CompileSelector(w.Selector); err != nil {
				return nil, &PlanError{Path: fmt.Sprintf("waves[%d].selector", wi), Msg: err.Error()}
			}
		}
		var pool []int
		matched := 0
		for i, n := range target {
			if sel != nil {
				ok, err := sel.Match(n)
				if err != nil {
					return nil, &PlanError{Path: fmt.Sprintf("waves[%d].selector", wi), Msg: fmt.Sprintf("node %s: %v", n.ID, err)}
				}
				if !ok {
					continue
				}
			}
			matched++
			if taken[i] || (held[i] && !after[w.Name]) {
				continue
			}
			pool = append(pool, i)
		}
		if sel != nil && matched == 0 {
			return nil, &PlanError{Path: fmt.Sprintf("waves[%d].selector", wi),
				Msg: fmt.Sprintf("wave %q selects no node of the target (%d nodes)", w.Name, total)}
		}
		want := len(pool)
		if w.Nodes != nil {
			want = w.Nodes.Of(total)
			if w.RampOf != "" {
				want -= rampTaken[w.RampOf]
			}
			want = max(0, min(want, len(pool)))
		}
		var pick []int
		if w.Canary != nil {
			groups := strata(target, pool, w.Spread)
			if w.Covers() {
				want = min(len(groups), w.Canary.Max.Of(total))
			}
			var unc []Stratum
			pick, unc = canary(groups, want, w.Spread)
			for i := range unc {
				unc[i].Wave = w.Name
				if w.Covers() {
					unc[i].Blocking = !w.Canary.AllowUncovered
					most := w.Canary.Max.String()
					if w.Canary.Max.Percent {
						most += fmt.Sprintf(" (%d nodes)", want)
					}
					unc[i].Reason = fmt.Sprintf("canary max %s cannot cover all %d combinations", most, len(groups))
				}
			}
			uncovered = append(uncovered, unc...)
			uncovered = append(uncovered, heldStrata(target, held, pool, w, heldBy)...)
		} else {
			pick = pool[:want]
		}
		for _, i := range pick {
			taken[i] = true
			waveOf[i] = w.Name
			order = append(order, i)
		}
		if w.RampOf != "" {
			rampTaken[w.RampOf] += len(pick)
		}
	}

	a := &Assignment{Nodes: make([]Node, 0, len(target)), Uncovered: uncovered}
	for _, i := range order {
		a.Nodes = append(a.Nodes, Node{Node: target[i], State: NodeState{Phase: PhasePending, Wave: waveOf[i]}})
	}
	for i, n := range target {
		if taken[i] {
			continue
		}
		why := "no wave selects it"
		if held[i] {
			why = fmt.Sprintf("held back (%s) and no wave after %s selects it", heldBy, strings.Join(p.Limits.HoldBack.Until, ", "))
		}
		a.Nodes = append(a.Nodes, Node{Node: n, State: NodeState{Phase: PhaseSkipped, Reason: why}})
	}
	return a, nil
}

// selectTarget returns the nodes matching the target selector, sorted by ID
// so that the result does not depend on inventory order.
func selectTarget(p *plan.Plan, nodes []*fleet.Node) ([]*fleet.Node, error) {
	sel, err := fleet.CompileSelector(p.Target.Selector)
	if err != nil {
		return nil, &PlanError{Path: "target.selector", Msg: err.Error()}
	}
	var target []*fleet.Node
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if seen[n.ID] {
			return nil, fmt.Errorf("node %q appears twice in the inventory", n.ID)
		}
		seen[n.ID] = true
		ok, err := sel.Match(n)
		if err != nil {
			return nil, &PlanError{Path: "target.selector", Msg: fmt.Sprintf("node %s: %v", n.ID, err)}
		}
		if ok {
			target = append(target, n)
		}
	}
	if len(target) == 0 {
		return nil, &PlanError{Path: "target.selector", Msg: fmt.Sprintf("selects no node of the inventory (%d nodes)", len(nodes))}
	}
	slices.SortFunc(target, func(a, b *fleet.Node) int { return cmp.Compare(a.ID, b.ID) })
	return target, nil
}

// heldWaves reports, for each wave, whether it comes (transitively) after
// every wave the held-back domain waits for, and so may take its nodes.
// Without a hold-back every wave may.
func heldWaves(p *plan.Plan) map[string]bool {
	ok := make(map[string]bool, len(p.Waves))
	hb := p.Limits.HoldBack
	if hb == nil {
		for _, w := range p.Waves {
			ok[w.Name] = true
		}
		return ok
	}
	anc := ancestors(p)
	for _, w := range p.Waves {
		all := true
		for _, u := range hb.Until {
			if !anc[w.Name][u] {
				all = false
				break
			}
		}
		ok[w.Name] = all
	}
	return ok
}

// ancestors maps each wave to the set of waves that must succeed before it.
func ancestors(p *plan.Plan) map[string]map[string]bool {
	byName := make(map[string]*plan.Wave, len(p.Waves))
	for i := range p.Waves {
		byName[p.Waves[i].Name] = &p.Waves[i]
	}
	memo := make(map[string]map[string]bool, len(p.Waves))
	var visit func(name string, depth int) map[string]bool
	visit = func(name string, depth int) map[string]bool {
		if m, ok := memo[name]; ok {
			return m
		}
		m := map[string]bool{}
		memo[name] = m // a cycle (rejected by plan validation) stops here
		w := byName[name]
		if w == nil || depth > len(p.Waves) {
			return m
		}
		for _, a := range w.After {
			m[a] = true
			for b := range visit(a, depth+1) {
				m[b] = true
			}
		}
		return m
	}
	for _, w := range p.Waves {
		visit(w.Name, 0)
	}
	return memo
}

// stratum is one combination of spread-key values and the pool nodes
// that have it.
type stratum struct {
	key     string
	values  []string
	members []int
	next    int
}

// strata groups pool by the values of keys, larger groups first (ties by
// values), members in pool order.
func strata(target []*fleet.Node, pool []int, keys []string) []*stratum {
	byKey := map[string]*stratum{}
	var groups []*stratum
	for _, i := range pool {
		vals := make([]string, len(keys))
		for k, key := range keys {
			vals[k] = target[i].Value(key)
		}
		id := strings.Join(vals, "\x00")
		g := byKey[id]
		if g == nil {
			g = &stratum{key: id, values: vals}
			byKey[id] = g
			groups = append(groups, g)
		}
		g.members = append(g.members, i)
	}
	slices.SortFunc(groups, func(a, b *stratum) int {
		if c := cmp.Compare(len(b.members), len(a.members)); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	return groups
}

// canary picks want nodes from the strata of its pool: every stratum
// gets a node when want allows; when it does not, strata are chosen
// greedily so that every single key value appears at least once if
// possible. It returns the picks and the strata left uncovered.
func canary(groups []*stratum, want int, keys []string) ([]int, []Stratum) {
	chosen := make([]bool, len(groups))
	var picks []int
	if want >= len(groups) {
		for gi := range groups {
			chosen[gi] = true
		}
	} else {
		// Greedy set cover of (key, value) pairs: take the combination
		// that adds the most values not yet represented, larger first.
		seen := map[string]bool{}
		for n := 0; n < want; n++ {
			best, bestGain := -1, -1
			for gi, g := range groups {
				if chosen[gi] {
					continue
				}
				gain := 0
				for k, v := range g.values {
					if !seen[keys[k]+"\x00"+v] {
						gain++
					}
				}
				if gain > bestGain {
					best, bestGain = gi, gain
				}
			}
			chosen[best] = true
			for k, v := range groups[best].values {
				seen[keys[k]+"\x00"+v] = true
			}
		}
	}
	for gi, g := range groups {
		if chosen[gi] {
			picks = append(picks, g.members[0])
			g.next = 1
		}
	}
	// Fill the rest round-robin over the largest remaining groups.
	for len(picks) < want {
		added := false
		for _, g := range groups {
			if len(picks) == want {
				break
			}
			if g.next < len(g.members) {
				picks = append(picks, g.members[g.next])
				g.next++
				added = true
			}
		}
		if !added {
			break
		}
	}
	var unc []Stratum
	for gi, g := range groups {
		if chosen[gi] {
			continue
		}
		vals := make(map[string]string, len(keys))
		for k, key := range keys {
			vals[key] = g.values[k]
		}
		unc = append(unc, Stratum{Values: vals, Reason: fmt.Sprintf("canary of %d nodes cannot cover all %d combinations", want, len(groups))})
	}
	return picks, unc
}

// heldStrata lists the spread combinations that exist only among held-back
// nodes, which a canary may not touch.
func heldStrata(target []*fleet.Node, held []bool, pool []int, w plan.Wave, heldBy string) []Stratum {
	if heldBy == "" {
		return nil
	}
	inPool := map[string]bool{}
	comb := func(n *fleet.Node) (string, map[string]string) {
		vals := make([]string, len(w.Spread))
		m := make(map[string]string, len(w.Spread))
		for k, key := range w.Spread {
			vals[k] = n.Value(key)
			m[key] = vals[k]
		}
		return strings.Join(vals, "\x00"), m
	}
	for _, i := range pool {
		id, _ := comb(target[i])
		inPool[id] = true
	}
	var out []Stratum
	for i, n := range target {
		if !held[i] {
			continue
		}
		id, m := comb(n)
		if inPool[id] {
			continue
		}
		inPool[id] = true
		out = append(out, Stratum{Wave: w.Name, Values: m, Reason: "held back (" + heldBy + ")"})
	}
	return out
}
