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
		es = append(es, p.Errorf(fmt.Sprintf("waves[%d].canary", i),
			"canary %s cannot cover %d strata of its spread keys (%s): %s; uncovered: %s; raise canary.max, narrow spread, or set canary.allowUncovered: true",
			w.Name, len(unc), strings.Join(w.Spread, ", "), unc[0].Reason, strings.Join(list, " ")))
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
