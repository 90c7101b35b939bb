package engine

import (
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/localize"
	"github.com/drover-dev/drover/internal/plan"
)

// localisedSep starts the localisation a reason ends with.
const localisedSep = "; localised: "

// Localise says what the rollout's failed nodes share that its succeeded
// ones do not (see package localize): failed are the nodes failed,
// quarantined or still unhealthy after their rollback, and the
// rolled-back nodes whose apply had failed (before, see Input.Before);
// succeeded are the nodes succeeded and the rolled-back nodes whose
// apply had succeeded. Nodes not done, and nodes rolled back before
// their apply ended, are left out. nil when the evidence is weak.
//
// The attributes are the nodes' facts now, not before the change: those
// the plan's change sets are its effects, not causes, and are left out
// (see changedAttrs).
func Localise(p *plan.Plan, nodes []Node, before map[string]Phase) []localize.Finding {
	return localise(p, nodes, func(i int) Phase { return nodes[i].State.Phase }, before)
}

// changedAttrs names the attributes a plan's change sets on the nodes it
// succeeds on (and its rollback sets back): its packages, and the
// kernel, container runtime and kubelet versions for the actions that
// change them.
func changedAttrs(p *plan.Plan) map[string]bool {
	m := map[string]bool{}
	if p == nil {
		return m
	}
	for _, a := range p.Change.Actions {
		if pa := a.Package; pa != nil {
			for _, pin := range pa.Packages {
				m["packages."+pin.Name] = true
			}
			for _, pins := range pa.Families {
				for _, pin := range pins {
					m["packages."+pin.Name] = true
				}
			}
		}
		if a.Kernel != nil || a.KubernetesNode != nil {
			m["kernel"] = true
		}
		if a.ContainerRuntime != nil || a.KubernetesNode != nil {
			m["runtime.containerd"], m["runtime.docker"], m["runtime.crio"] = true, true, true
		}
		if a.KubernetesNode != nil {
			m["kubelet"] = true
		}
	}
	return m
}

func localise(p *plan.Plan, nodes []Node, phase func(int) Phase, before map[string]Phase) []localize.Finding {
	skip := changedAttrs(p)
	ss := make([]localize.Subject, 0, len(nodes))
	for i := range nodes {
		n := &nodes[i]
		out := localize.Excluded
		switch phase(i) {
		case PhaseFailed, PhaseQuarantined, PhaseRollbackUnhealthy:
			out = localize.Failed
		case PhaseSucceeded:
			out = localize.Succeeded
		case PhaseRolledBack:
			switch before[n.ID] {
			case PhaseFailed:
				out = localize.Failed
			case PhaseSucceeded:
				out = localize.Succeeded
			}
		}
		if out == localize.Excluded || n.Node == nil {
			continue
		}
		as := localize.Attributes(n.Node)
		if len(skip) > 0 {
			as = slices.DeleteFunc(as, func(a localize.Attr) bool { return skip[a.Name] })
		}
		ss = append(ss, localize.Subject{Attrs: as, Outcome: out})
	}
	return localize.Localise(ss, localize.Options{})
}

// localised returns reason + what it adds, ending with the localisation
// of the failures so far. An earlier localisation that reason ended with
// is replaced, or kept when the evidence is now weak (it was true then).
func (d *decider) localised(reason, add string) string {
	old := ""
	if i := strings.Index(reason, localisedSep); i >= 0 {
		reason, old = reason[:i], reason[i+len("; "):]
	}
	reason += add
	if fs := localise(d.p, d.in.Nodes, func(i int) Phase { return d.phase[i] }, d.in.Before); len(fs) > 0 {
		d.out.Localisation = fs
		return reason + "; " + localize.Sentence(fs)
	}
	if old != "" {
		return reason + "; " + old
	}
	return reason
}
