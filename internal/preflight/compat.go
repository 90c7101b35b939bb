package preflight

import (
	"encoding/json"
	"fmt"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// Incompatible is one target node that breaks the plan's compatibility
// matrix, with every rule it breaks.
type Incompatible struct {
	Node    string
	Reasons []string
}

// Compatibility evaluates p's compatibility rules on each target node's
// facts and labels, with change bound to p's change (ChangeValue), (from the inventory at dry run and creation, from the
// agents' latest facts at pre-flight) and returns the nodes that break
// one, in target order. A rule whose expression cannot be evaluated on a
// node (a fact it names is missing) is broken there: a node is never
// assumed compatible. An error is a rule that does not compile, which a
// validated plan never has.
func Compatibility(p *plan.Plan, targets []*fleet.Node) ([]Incompatible, error) {
	if len(p.Compatibility) == 0 {
		return nil, nil
	}
	c, err := fleet.NewChangeCompiler()
	if err != nil {
		return nil, err
	}
	change, err := ChangeValue(p.Change)
	if err != nil {
		return nil, err
	}
	sels := make([]*fleet.Selector, len(p.Compatibility))
	for i, r := range p.Compatibility {
		if sels[i], err = c.Compile(r.Require); err != nil {
			return nil, fmt.Errorf("compatibility[%d] %s: %w", i, r.Name, err)
		}
	}
	var out []Incompatible
	for _, n := range targets {
		var why []string
		for i, r := range p.Compatibility {
			ok, err := sels[i].MatchChange(n, change)
			switch {
			case err != nil:
				why = append(why, fmt.Sprintf("compatibility %s: cannot evaluate %s: %v", r.Name, r.Require, err))
			case !ok:
				why = append(why, ruleText(r))
			}
		}
		if len(why) > 0 {
			out = append(out, Incompatible{Node: n.ID, Reasons: why})
		}
	}
	return out, nil
}

// ChangeValue is the change as a compatibility rule's variable change
// sees it: the plan's JSON shape (`drover plan show -o json`), e.g.
// change.actions[0].package.version or change.actions[0].kernel.version.
func ChangeValue(c plan.Change) (map[string]any, error) {
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode the change for the compatibility rules: %w", err)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("decode the change for the compatibility rules: %w", err)
	}
	return v, nil
}

// ruleText is how a broken rule is named to people.
func ruleText(r plan.CompatRule) string {
	if r.Message != "" {
		return fmt.Sprintf("compatibility %s: %s (requires %s)", r.Name, r.Message, r.Require)
	}
	return fmt.Sprintf("compatibility %s: requires %s", r.Name, r.Require)
}
