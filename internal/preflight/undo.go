package preflight

import (
	"fmt"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// NoWayBack is one action that cannot be rolled back on some target
// nodes, for one reason, as the drivers declare (driver.UndoOf).
type NoWayBack struct {
	Path     string   // change.actions[i]
	Action   string   // the action's name, or its kind
	Families []string // os families of Nodes
	Nodes    []string
	Why      string
	// Accepted: the plan says rollback: none, or names every family in
	// noRollbackOn.
	Accepted bool
	byPlan   bool // the plan's own rollback: none
	index    int  // of the action in change.actions
}

// Text is the one-line description of n the dry run and plan validate
// print.
func (n NoWayBack) Text() string {
	s := fmt.Sprintf("%s (%s) on %s: %s", n.Path, n.Action, nodeList(n.Nodes), n.Why)
	if n.Accepted && !n.byPlan {
		s += " (accepted: noRollbackOn)"
	}
	return s
}

// NoWayBacks lists, per action, the target nodes on which it cannot be
// rolled back, one entry per reason and acceptance, accepted by the plan
// or not.
func NoWayBacks(p *plan.Plan, targets []*fleet.Node) []NoWayBack {
	byFamily := map[string][]string{}
	for _, n := range targets {
		byFamily[n.Facts.OS.Family] = append(byFamily[n.Facts.OS.Family], n.ID)
	}
	families := make([]string, 0, len(byFamily))
	for f := range byFamily {
		families = append(families, f)
	}
	slices.Sort(families)
	var out []NoWayBack
	for i := range p.Change.Actions {
		a := &p.Change.Actions[i]
		name := a.Name
		if name == "" {
			name = string(a.Kind())
		}
		first := len(out)
		for _, fam := range families {
			u := driver.UndoOf(*a, fam)
			if !u.None {
				continue
			}
			acc := a.AcceptsNoRollback(fam)
			j := slices.IndexFunc(out[first:], func(n NoWayBack) bool { return n.Why == u.Way && n.Accepted == acc })
			if j < 0 {
				out = append(out, NoWayBack{Path: fmt.Sprintf("change.actions[%d]", i), index: i, Action: name,
					Why: u.Way, Accepted: acc, byPlan: u.ByPlan})
				j = len(out) - 1 - first
			}
			n := &out[first+j]
			n.Families = append(n.Families, orUnknownFamily(fam))
			n.Nodes = append(n.Nodes, byFamily[fam]...)
		}
	}
	return out
}

// Rollbacks returns one problem per action that cannot be rolled back on
// some target nodes and whose plan does not accept it: creation refuses
// such a plan. The problem names the nodes, why, and what the plan may
// write to accept it.
func Rollbacks(p *plan.Plan, targets []*fleet.Node) plan.Errors {
	var es plan.Errors
	for _, n := range NoWayBacks(p, targets) {
		if n.Accepted {
			continue
		}
		es = append(es, p.Errorf(n.Path, "%s cannot be rolled back on %s (os.family %s): %s; to go ahead without a way back there, write %s on the action",
			n.Action, nodeList(n.Nodes), strings.Join(n.Families, ", "), n.Why, accept(p, n)))
	}
	return es
}

// accept says what the plan may write to accept no way back.
func accept(p *plan.Plan, n NoWayBack) string {
	a := p.Change.Actions[n.index]
	var opts []string
	if !slices.Contains(n.Families, "unknown") {
		opts = append(opts, "noRollbackOn: ["+strings.Join(n.Families, ", ")+"]")
	}
	switch {
	case a.Script != nil:
		opts = append(opts, "script.rollback: none (or a rollback artifact)")
	case a.Package != nil:
		opts = append(opts, "package.rollback: none (on every family)")
	case a.LivePatch != nil:
		opts = append(opts, "livepatch.rollback: none")
	case a.Kernel != nil:
		opts = append(opts, "kernel.rollback: none")
	}
	return strings.Join(opts, ", or ")
}

func orUnknownFamily(f string) string {
	if f == "" {
		return "unknown"
	}
	return f
}
