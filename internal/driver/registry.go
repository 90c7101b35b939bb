package driver

import (
	"fmt"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// Registry picks the driver that performs an action on a node. Drivers are
// registered per action kind, optionally restricted to os families; a
// registration naming the node's family wins over one that names none.
// The zero Registry is empty and ready to use. A Registry is not safe for
// concurrent Register calls; build it once, then share it read-only.
type Registry struct {
	entries []regEntry
}

type regEntry struct {
	kind     plan.ActionKind
	families []string // empty: every family
	d        Driver
}

// Register makes d the driver of actions of kind on nodes of the given os
// families, or on every node when families is empty. Among registrations
// of equal specificity, the first wins.
func (r *Registry) Register(kind plan.ActionKind, d Driver, families ...string) {
	r.entries = append(r.entries, regEntry{kind: kind, families: families, d: d})
}

// For returns the driver for a on a node with facts. It fails, wrapping
// ErrUnsupported, when a has no single kind or no driver is registered for
// its kind on the node's os family.
func (r *Registry) For(a plan.Action, facts fleet.Facts) (Driver, error) {
	kind, err := KindOf(a)
	if err != nil {
		return nil, err
	}
	var generic Driver
	for _, e := range r.entries {
		if e.kind != kind {
			continue
		}
		if len(e.families) == 0 {
			if generic == nil {
				generic = e.d
			}
			continue
		}
		for _, f := range e.families {
			if f == facts.OS.Family {
				return e.d, nil
			}
		}
	}
	if generic != nil {
		return generic, nil
	}
	fam := facts.OS.Family
	if fam == "" {
		fam = "unknown"
	}
	return nil, fmt.Errorf("no driver for %s actions on os family %s: %w", kind, fam, ErrUnsupported)
}

// KindOf returns the kind of a, failing (wrapping ErrUnsupported) when
// none or more than one kind-specific field is set.
func KindOf(a plan.Action) (plan.ActionKind, error) {
	var kinds []plan.ActionKind
	if a.Package != nil {
		kinds = append(kinds, plan.ActionPackage)
	}
	if a.Kernel != nil {
		kinds = append(kinds, plan.ActionKernel)
	}
	if a.LivePatch != nil {
		kinds = append(kinds, plan.ActionLivePatch)
	}
	if a.ServiceRestart != nil {
		kinds = append(kinds, plan.ActionServiceRestart)
	}
	if a.ContainerRuntime != nil {
		kinds = append(kinds, plan.ActionContainerRuntime)
	}
	if a.KubernetesNode != nil {
		kinds = append(kinds, plan.ActionKubernetesNode)
	}
	if a.Script != nil {
		kinds = append(kinds, plan.ActionScript)
	}
	switch len(kinds) {
	case 0:
		return "", fmt.Errorf("action %q has no kind: %w", a.Name, ErrUnsupported)
	case 1:
		return kinds[0], nil
	}
	return "", fmt.Errorf("action %q has %d kinds (%s and %s): %w", a.Name, len(kinds), kinds[0], kinds[1], ErrUnsupported)
}
