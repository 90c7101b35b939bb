package gate

import (
	"fmt"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// CheckQuery renders g's query template as the evaluator does, for
// every side it renders (the changed nodes, and for delta and
// statistical gates the baseline), with nodes standing for both, and
// parses each rendering with Prometheus's own PromQL parser. It also
// parses each blocking-alert matcher as FiringAlerts sends it. instance
// maps a node to its instance label (nil: the node ID, the evaluator's
// default), win a gate to its .Window (nil: DefaultWindow); pass the
// evaluator's InstanceOf and Window. nodes must not be empty: the check
// is of a template over real nodes, such as a rollout's target.
func CheckQuery(g plan.WaveGate, nodes []*fleet.Node, instance func(*fleet.Node) string, win func(plan.WaveGate) string) error {
	if instance == nil {
		instance = func(n *fleet.Node) string { return n.ID }
	}
	if win == nil {
		win = DefaultWindow
	}
	sides := []string{"canary"}
	if g.Mode == plan.ModeDelta || g.Mode == plan.ModeStatistical {
		sides = append(sides, "baseline")
	}
	for _, side := range sides {
		data := QueryData{Nodes: nodes, Canary: nodes, Side: side, Rollout: "preflight", Wave: "preflight", Gate: g.Name, Window: win(g)}
		if len(sides) == 2 {
			data.Baseline = nodes
		}
		q, err := renderQuery(g.Query, data, instance)
		if err != nil {
			return fmt.Errorf("query (%s side): %w", side, err)
		}
		if _, err := parser.ParseExpr(q); err != nil {
			return fmt.Errorf("query (%s side) does not parse as PromQL: %s (rendered: %s)", side, promqlMessage(err), shorten(q))
		}
	}
	for _, m := range g.AlertMatchers {
		sel := alertSelector(m)
		if _, err := parser.ParseMetricSelector(sel); err != nil || !matcherRE.MatchString(m) {
			return fmt.Errorf("blocking alert matcher %q: want label matchers such as severity=\"page\"", m)
		}
	}
	return nil
}

// DefaultWindow is the .Window of g's query under an evaluator with the
// default minimum window and step.
func DefaultWindow(g plan.WaveGate) string { return window(g, DefaultMinWindow, DefaultStep) }

// alertSelector is the selector FiringAlerts queries for matcher m.
func alertSelector(m string) string {
	return `ALERTS{alertstate="firing", ` + strings.TrimSuffix(strings.TrimSpace(m), ",") + `}`
}

// promqlMessage is the parser's message without its position prefix,
// which counts in the rendered query, not in the plan.
func promqlMessage(err error) string {
	if pe, ok := err.(parser.ParseErrors); ok && len(pe) > 0 {
		return pe[0].Err.Error()
	}
	return err.Error()
}

// InstanceOf is the value of n's instance label, as this evaluator's
// queries write it (see WithInstance).
func (p *Prometheus) InstanceOf(n *fleet.Node) string { return p.instance(n) }
