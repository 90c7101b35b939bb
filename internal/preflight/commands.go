package preflight

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/drover-dev/drover/internal/plan"
)

// Commands lists everything plan p can cause to run on a node, one line
// each, in plan order: each action by kind and target (scripts and
// live-patch artifacts by name and digest, with their rollback
// artifacts), the reboot policy, and each node probe (a command probe's
// command word for word, an artifact probe by name and digest). digest
// returns an artifact's sha256 as the server's repository publishes it,
// "" when unknown.
func Commands(p *plan.Plan, digest func(name string) string) []string {
	art := func(name string) string {
		if d := digest(name); d != "" {
			return name + " (sha256:" + d + ")"
		}
		return name + " (digest unknown to this server)"
	}
	var out []string
	for i, a := range p.Change.Actions {
		out = append(out, fmt.Sprintf("change.actions[%d]: %s", i, action(a, art)))
	}
	if p.Change.Reboot != plan.RebootNever {
		out = append(out, "change.reboot: reboot "+string(p.Change.Reboot))
	}
	for i, pr := range p.Gates.Node.Probes {
		out = append(out, fmt.Sprintf("gates.node.probes[%d]: %s", i, probe(pr, art)))
	}
	return out
}

func action(a plan.Action, art func(string) string) string {
	kind := string(a.Kind())
	switch {
	case a.Package != nil:
		var pins []string
		for _, pin := range a.Package.Packages {
			pins = append(pins, pin.Name+"="+pin.Version)
		}
		for _, fam := range slices.Sorted(maps.Keys(a.Package.Families)) {
			for _, pin := range a.Package.Families[fam] {
				pins = append(pins, fam+":"+pin.Name+"="+pin.Version)
			}
		}
		return kind + " " + string(a.Package.Operation) + " " + strings.Join(pins, " ")
	case a.Kernel != nil:
		return kind + " " + a.Kernel.Version
	case a.LivePatch != nil:
		s := kind + " " + a.LivePatch.ID
		if a.LivePatch.Artifact != "" {
			s += " from artifact " + art(a.LivePatch.Artifact)
		}
		return s
	case a.ServiceRestart != nil:
		return kind + " " + a.ServiceRestart.Service
	case a.ContainerRuntime != nil:
		return kind + " " + a.ContainerRuntime.Runtime + " " + a.ContainerRuntime.Version
	case a.KubernetesNode != nil:
		return kind + " cordon, drain=" + strconv.FormatBool(a.KubernetesNode.Drain) + ", uncordon"
	case a.Script != nil:
		s := kind + " " + art(a.Script.Artifact) + argv(a.Script.Args)
		if rb := a.Script.RollbackArtifact(); rb != "" {
			s += "; rollback " + art(rb)
		}
		return s
	}
	return "(no action)"
}

func probe(pr plan.Probe, art func(string) string) string {
	switch pr.Kind {
	case plan.ProbeCommand:
		if pr.Artifact != "" {
			return "command probe runs artifact " + art(pr.Artifact) + argv(pr.Args)
		}
		return "command probe runs" + argv(pr.Command)
	case plan.ProbeSystemd:
		return "systemd probe: systemctl is-active " + strconv.Quote(pr.Unit)
	case plan.ProbeWindowsService:
		return "windows-service probe: Get-Service " + strconv.Quote(pr.Unit)
	case plan.ProbeHTTP:
		return "http probe GET " + pr.URL
	case plan.ProbeTCP:
		return "tcp probe connects to " + pr.Address
	case plan.ProbeTLS:
		return "tls probe handshakes with " + pr.Address
	case plan.ProbeDNS:
		return "dns probe resolves " + strconv.Quote(pr.Lookup)
	case plan.ProbeFailedUnits:
		return "failed-units probe: systemctl list-units --failed"
	case plan.ProbeFirewallBackend:
		return "firewall-backend probe: iptables -V"
	case plan.ProbeClock:
		return "clock probe: chronyc tracking, else adjtimex"
	}
	return string(pr.Kind) + " probe"
}

// argv writes arguments quoted, each after a space: ` "/bin/sh" "-c" "id"`.
func argv(args []string) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(a))
	}
	return b.String()
}
