package preflight

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/gate"
	"github.com/drover-dev/drover/internal/plan"
)

// Metrics is what the plan's wave gates will be evaluated with.
type Metrics struct {
	// Known is false where the metrics source is not known (plan validate
	// with an inventory file): queries are still rendered and parsed, but
	// a plan is not refused for lacking one.
	Known bool
	// Configured is whether the server has a metrics source (Prometheus).
	Configured bool
	// Instance maps a node to its instance label as the evaluator does;
	// nil means the node ID.
	Instance func(*fleet.Node) string
	// Window is the .Window the evaluator renders a gate's query with;
	// nil means the evaluator's defaults (gate.DefaultWindow).
	Window func(plan.WaveGate) string
}

// Check returns the problems of plan p, assigned to nodes as a, against
// metrics: canaries that must cover their strata and cannot, actions
// that cannot be rolled back on some target nodes without the plan
// accepting it, wave gates
// without a metrics source or whose query does not render or parse, and
// windows named by target nodes but not defined by the plan. nil means
// none.
func Check(p *plan.Plan, a *engine.Assignment, m Metrics) plan.Errors {
	targets := Targets(a)
	var es plan.Errors
	es = append(es, Cover(p, a)...)
	es = append(es, Rollbacks(p, targets)...)
	es = append(es, Windows(p, targets)...)
	es = append(es, Gates(p, a, m)...)
	return es
}

// Targets returns the nodes of a that the rollout may change (those not
// skipped).
func Targets(a *engine.Assignment) []*fleet.Node {
	var out []*fleet.Node
	for _, n := range a.Nodes {
		if n.State.Phase != engine.PhaseSkipped {
			out = append(out, n.Node)
		}
	}
	return out
}

// Windows returns one problem per window that target nodes name (by
// the plan's window label, or the plan's default window) and the plan
// does not define: such nodes would wait forever.
func Windows(p *plan.Plan, targets []*fleet.Node) plan.Errors {
	named := map[string][]string{}
	for _, n := range targets {
		w := n.Labels[p.Windows.Label]
		if w == "" {
			w = p.Windows.Default
		}
		if w == "" {
			continue
		}
		if _, ok := p.Windows.Definitions[w]; !ok {
			named[w] = append(named[w], n.ID)
		}
	}
	path := "windows.definitions"
	if _, ok := p.Position(path); !ok {
		// No definitions written: point at the target that selects the
		// nodes.
		path = "target.selector"
	}
	defined := "the plan defines no window"
	if len(p.Windows.Definitions) > 0 {
		defined = "the plan defines " + quoteList(slices.Sorted(maps.Keys(p.Windows.Definitions)))
	}
	var es plan.Errors
	for _, w := range slices.Sorted(maps.Keys(named)) {
		ids := named[w]
		es = append(es, p.Errorf(path, "window %q is named by %s (label %s) but not defined: they would never start; %s",
			w, nodeList(ids), p.Windows.Label, defined))
	}
	return es
}

// Gates returns the problems of the plan's wave gates against m: any
// wave gate with no metrics source (it could only fail, after the first
// wave changed its nodes), a query template that does not render over
// the nodes of some wave, a rendering or a blocking-alert matcher that
// does not parse as PromQL. Each gate is rendered once per wave, with
// that wave's nodes, as it will be.
func Gates(p *plan.Plan, a *engine.Assignment, m Metrics) plan.Errors {
	if len(p.Gates.Wave) == 0 {
		return nil
	}
	byWave := map[string][]*fleet.Node{}
	for _, n := range a.Nodes {
		if n.State.Phase != engine.PhaseSkipped {
			byWave[n.State.Wave] = append(byWave[n.State.Wave], n.Node)
		}
	}
	var es plan.Errors
	for i, g := range p.Gates.Wave {
		path := fmt.Sprintf("gates.wave[%d]", i)
		if m.Known && !m.Configured {
			es = append(es, p.Errorf(path, "wave gate %s needs a metrics source and this server has none (prometheus: in its config, or DROVER_PROMETHEUS): it could only fail, after the first wave changed its nodes", g.Name))
			continue
		}
		for _, w := range p.Waves {
			nodes := byWave[w.Name]
			if len(nodes) == 0 {
				continue
			}
			if err := gate.CheckQuery(g, nodes, m.Instance, m.Window); err != nil {
				qp := path + ".query"
				if strings.HasPrefix(err.Error(), "blocking alert") {
					qp = path + ".blockingAlerts"
				}
				es = append(es, p.Errorf(qp, "wave gate %s over the nodes of wave %s: %v", g.Name, w.Name, err))
				break
			}
		}
	}
	return es
}

// nodeList is "3 nodes (a, b, c)", with at most 5 IDs named.
func nodeList(ids []string) string {
	ids = slices.Sorted(slices.Values(ids))
	noun := "nodes"
	if len(ids) == 1 {
		noun = "node"
	}
	shown := ids[:min(len(ids), 5)]
	s := fmt.Sprintf("%d %s (%s", len(ids), noun, strings.Join(shown, ", "))
	if len(ids) > len(shown) {
		s += fmt.Sprintf(" and %d more", len(ids)-len(shown))
	}
	return s + ")"
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
