package baseline

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/drover-dev/drover/internal/plan"
)

// DefaultRollout is the rollout template of a baseline without one: a
// canary covering the target's strata as far as its default size (10%)
// goes, then the rest. Uncovered strata are listed, not refused: a
// remediation's target is often a few nodes of as many releases (two
// nodes, Debian 12 and 13), which no canary smaller than the target
// covers.
const DefaultRollout = `waves:
  - name: canary
    canary:
      allowUncovered: true
  - name: rest
`

// templateKeys are the plan fields a rollout template may set; the
// selector and the actions are remediation's.
var templateKeys = []string{"description", "waves", "limits", "windows", "failureBudget", "gates", "approvals",
	"overlap", "preflight", "compatibility"}

// PlanFrom fills template tmpl (DefaultRollout when "") with a name, a
// target selector and a change, and parses the result with the plan
// parser: the plan returned is valid and effective. The YAML is the
// plan as written (before defaults).
func PlanFrom(tmpl, name, selector string, ch plan.Change) (*plan.Plan, []byte, error) {
	if strings.TrimSpace(tmpl) == "" {
		tmpl = DefaultRollout
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(tmpl), &doc); err != nil {
		return nil, nil, fmt.Errorf("rollout: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("rollout: expected a mapping")
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; !slices.Contains(templateKeys, k.Value) {
			return nil, nil, fmt.Errorf("rollout.%s: %s", k.Value, templateKeyMsg(k.Value))
		}
	}
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
	var target, change yaml.Node
	if err := target.Encode(plan.Target{Selector: selector}); err != nil {
		return nil, nil, fmt.Errorf("rollout: %w", err)
	}
	if err := change.Encode(ch); err != nil {
		return nil, nil, fmt.Errorf("rollout: %w", err)
	}
	head := []*yaml.Node{str("apiVersion"), str(plan.APIVersion), str("name"), str(name), str("target"), &target, str("change"), &change}
	m.Content = append(head, m.Content...)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, nil, fmt.Errorf("rollout: %w", err)
	}
	_ = enc.Close()
	p, err := plan.Parse(name+".yaml", buf.Bytes())
	if err != nil {
		return nil, nil, fmt.Errorf("rollout: %w", err)
	}
	return p, buf.Bytes(), nil
}

func templateKeyMsg(key string) string {
	switch key {
	case "target", "selector", "change", "actions":
		return "a rollout template has no target and no actions: remediation fills them from the baseline's needs"
	case "name", "apiVersion":
		return "set by remediation"
	}
	return "unknown field (want " + strings.Join(templateKeys, ", ") + ")"
}

// checkTemplate validates a rollout template by filling it with a
// placeholder target and change.
func checkTemplate(tmpl string) error {
	ch := plan.Change{Actions: []plan.Action{{Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: "placeholder", Version: "1"}}}}}}
	_, _, err := PlanFrom(tmpl, "template", `node.id == "placeholder"`, ch)
	return err
}
