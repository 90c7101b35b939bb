package nodediff

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Change is one thing a step changed: a package (or kernel, runtime)
// from one version to another.
type Change struct {
	Name string
	From string
	To   string
}

// Changed is what a rollout's steps did on one node: the apply steps'
// changes, and whether a rollback undid them.
type Changed struct {
	Items      []Change
	RolledBack bool
}

// item returns the change of name; c may be nil.
func (c *Changed) item(name string) (Change, bool) {
	if c == nil {
		return Change{}, false
	}
	i := slices.IndexFunc(c.Items, func(x Change) bool { return x.Name == name })
	if i < 0 {
		return Change{}, false
	}
	return c.Items[i], true
}

// Step is one step a rollout dispatched to a node, as stored: its kind
// (apply, rollback), its result (succeeded, failed, rolled-back, ...;
// "" while unfinished) and the agent's evidence (JSON; empty when none).
type Step struct {
	Kind     string
	Result   string
	Evidence []byte
}

// evidence is the part of an agent's step evidence a diff reads: per
// action, what pre-flight found would change and what Apply changed.
type evidence struct {
	Actions []struct {
		Change *struct {
			Items []Change `json:"items"`
		} `json:"change"`
		Outcome *struct {
			Changed []Change `json:"changed"`
		} `json:"outcome"`
	} `json:"actions"`
}

// ChangesOf reads what steps (oldest first) did on a node: the changes
// the apply steps' outcomes list (the last one per name wins), and
// whether a later rollback step finished. An apply whose outcome is
// missing (it failed part way) counts what its pre-flight said it would
// change. Evidence that does not parse is an error naming the step; nil
// means the steps changed nothing.
func ChangesOf(steps []Step) (*Changed, error) {
	var out Changed
	for i, st := range steps {
		if len(st.Evidence) == 0 {
			continue
		}
		var ev evidence
		if err := json.Unmarshal(st.Evidence, &ev); err != nil {
			return nil, fmt.Errorf("step %d (%s) evidence: %w", i+1, st.Kind, err)
		}
		switch st.Kind {
		case "rollback":
			if st.Result != "" && st.Result != "failed" {
				out.RolledBack = true
			}
		case "apply":
			for _, a := range ev.Actions {
				var items []Change
				switch {
				case a.Outcome != nil:
					items = a.Outcome.Changed
				case a.Change != nil && st.Result != "" && st.Result != "succeeded":
					items = a.Change.Items
				}
				for _, c := range items {
					if c.Name == "" {
						continue
					}
					if j := slices.IndexFunc(out.Items, func(x Change) bool { return x.Name == c.Name }); j >= 0 {
						out.Items[j].To = c.To
						continue
					}
					out.Items = append(out.Items, c)
				}
			}
		}
	}
	if len(out.Items) == 0 {
		return nil, nil
	}
	return &out, nil
}
