package engine

import (
	"strings"

	"github.com/drover-dev/drover/internal/localize"
)

// localisedSep starts the localisation a reason ends with.
const localisedSep = "; localised: "

// Localise says what the rollout's failed nodes share that its succeeded
// ones do not (see package localize): failed are the nodes failed,
// quarantined or still unhealthy after their rollback, and the
// rolled-back nodes in failedBefore (whose apply had failed); succeeded
// are the nodes succeeded and the other rolled-back nodes (their apply
// had succeeded). Nodes not done are left out. nil when the evidence is
// weak.
func Localise(nodes []Node, failedBefore map[string]bool) []localize.Finding {
	return localise(nodes, func(i int) Phase { return nodes[i].State.Phase }, failedBefore)
}

func localise(nodes []Node, phase func(int) Phase, failedBefore map[string]bool) []localize.Finding {
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
			out = localize.Succeeded
			if failedBefore[n.ID] {
				out = localize.Failed
			}
		}
		if out == localize.Excluded || n.Node == nil {
			continue
		}
		ss = append(ss, localize.Subject{Attrs: localize.Attributes(n.Node), Outcome: out})
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
	if fs := localise(d.in.Nodes, func(i int) Phase { return d.phase[i] }, d.in.FailedBefore); len(fs) > 0 {
		d.out.Localisation = fs
		return reason + "; " + localize.Sentence(fs)
	}
	if old != "" {
		return reason + "; " + old
	}
	return reason
}
