package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/fleet"
)

// Kind returns the kind of a, "" unless exactly one kind-specific field
// is set.
func (a Action) Kind() ActionKind {
	var kinds []ActionKind
	for _, k := range []struct {
		set  bool
		kind ActionKind
	}{
		{a.Package != nil, ActionPackage}, {a.Kernel != nil, ActionKernel}, {a.LivePatch != nil, ActionLivePatch},
		{a.ServiceRestart != nil, ActionServiceRestart}, {a.ContainerRuntime != nil, ActionContainerRuntime},
		{a.KubernetesNode != nil, ActionKubernetesNode}, {a.Script != nil, ActionScript},
	} {
		if k.set {
			kinds = append(kinds, k.kind)
		}
	}
	if len(kinds) != 1 {
		return ""
	}
	return kinds[0]
}

// RefusedAction says why an agent with policy pol refuses action a
// ("" when it runs it): its kind is not in the agent's --accept list, or
// it runs a signed artifact and the agent verifies none. pol nil (an
// agent older than protocol 2, which reports no policy) refuses nothing
// here: such an agent reports its action kinds on registration only.
func RefusedAction(a Action, pol *fleet.AgentPolicy) string {
	if pol == nil {
		return ""
	}
	kind := a.Kind()
	if !slices.Contains(pol.Accepts, string(kind)) {
		return fmt.Sprintf("action kind %s is not in the agent's --accept list (%s)", kind, strings.Join(pol.Accepts, ","))
	}
	if art := actionArtifact(a); art != "" && !pol.Artifacts {
		return fmt.Sprintf("%s runs signed artifact %s and the agent verifies none (--artifact-root)", kind, art)
	}
	if c := a.PreRestartCheck; c != nil {
		if why := RefusedProbe(c.Probe(), pol); why != "" {
			return "pre-restart check: " + why
		}
	}
	return ""
}

func actionArtifact(a Action) string {
	switch {
	case a.Script != nil:
		return a.Script.Artifact
	case a.LivePatch != nil:
		return a.LivePatch.Artifact
	}
	return ""
}

// RefusedProbe says why an agent with policy pol refuses probe p (""
// when it runs it): a command probe's command needs the agent's
// --allow-command-probes, a command probe's artifact an agent that
// verifies signed artifacts. pol nil is an agent older than protocol 2:
// it would run a command without its node's consent, so it is refused
// here for it.
func RefusedProbe(p Probe, pol *fleet.AgentPolicy) string {
	if p.Kind != ProbeCommand {
		return ""
	}
	switch {
	case pol == nil:
		return "command probe: the agent is older than protocol 2 and does not ask its node's consent to run commands; upgrade it"
	case p.Artifact != "" && !pol.Artifacts:
		return fmt.Sprintf("command probe runs signed artifact %s and the agent verifies none (--artifact-root)", p.Artifact)
	case p.Artifact == "" && !pol.CommandProbes:
		return "command probe " + strings.Join(p.Command, " ") + ": the agent does not allow command probes (--allow-command-probes)"
	}
	return ""
}
