package preflight

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/plan"
)

// Cover returns one problem per canary wave that must cover its strata
// (canary.cover: strata without allowUncovered) and cannot within its
// max: the rollout would not start. Each problem lists the uncovered
// strata and is located at the wave's canary.
func Cover(p *plan.Plan, a *engine.Assignment) plan.Errors {
	byWave := map[string][]engine.Stratum{}
	for _, s := range a.Uncovered {
		if s.Blocking {
			byWave[s.Wave] = append(byWave[s.Wave], s)
		}
	}
	size := map[string]int{}
	for _, n := range a.Nodes {
		size[n.State.Wave]++
	}
	var es plan.Errors
	for i, w := range p.Waves {
		unc := byWave[w.Name]
		if len(unc) == 0 {
			continue
		}
		var list []string
		for _, s := range unc {
			list = append(list, "{"+Stratum(s.Values)+"}")
		}
		// A canary that cannot cover takes max nodes, one per stratum.
		most := w.Canary.Max.String() + " nodes"
		switch {
		case w.Canary.Max.Percent:
			most = w.Canary.Max.String() + " of the target"
		case w.Canary.Max.Count == 1:
			most = "1 node"
		}
		es = append(es, p.Errorf(fmt.Sprintf("waves[%d].canary", i),
			"wave %s: a canary of at most %s covers %d of the %d strata of its spread keys (%s); uncovered: %s; raise canary.max, narrow spread, or set canary.allowUncovered: true",
			w.Name, most, size[w.Name], size[w.Name]+len(unc), strings.Join(w.Spread, ", "), strings.Join(list, " ")))
	}
	return es
}

// Stratum writes a stratum's values as "key=value key=value", keys sorted.
func Stratum(values map[string]string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(values)) {
		kv = append(kv, k+"="+values[k])
	}
	return strings.Join(kv, " ")
}
