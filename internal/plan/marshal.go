package plan

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"
)

// Marshal writes p as YAML, fields in the order of the types and map keys
// sorted, so the output of an effective plan is stable (for
// "drover plan show" and for diffs). Parse(Marshal(p)) gives back p when
// p is an effective plan. A wave whose After is empty but not nil (a root)
// is written with an explicit "after: []".
func Marshal(p *Plan) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(p); err != nil {
		return nil, fmt.Errorf("marshal plan %s: %w", p.Name, err)
	}
	if waves := mapValue(&n, "waves"); waves != nil && waves.Kind == yaml.SequenceNode {
		for i, w := range waves.Content {
			if i >= len(p.Waves) || p.Waves[i].After == nil || len(p.Waves[i].After) > 0 || mapValue(w, "after") != nil {
				continue
			}
			at := 0
			if len(w.Content) >= 2 && w.Content[0].Value == "name" {
				at = 2
			}
			key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "after"}
			val := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
			w.Content = append(w.Content[:at], append([]*yaml.Node{key, val}, w.Content[at:]...)...)
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("marshal plan %s: %w", p.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal plan %s: %w", p.Name, err)
	}
	return buf.Bytes(), nil
}

// mapValue returns the value of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
