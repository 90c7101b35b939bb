package driver

import (
	"slices"

	"github.com/drover-dev/drover/internal/plan"
)

// Undo is how the drivers of a real host (ForHost, and the Kubernetes
// driver where it is configured) undo one action on a node of one os
// family.
type Undo struct {
	// None: nothing undoes the action there; Way says why.
	None bool
	// NoDriver: no driver performs the action there, so the step fails
	// before anything changes and there is nothing to undo.
	NoDriver bool
	// ByPlan: None because the plan says rollback: none.
	ByPlan bool
	// Way says how the action is undone, or why it cannot be.
	Way string
}

// linux lists the os families with a Linux package manager driver.
var linux = []string{"debian", "ubuntu", "rhel", "suse"}

// UndoOf declares how the drivers undo action a on a node of os family
// family. It is what creation checks a plan against (an action with no
// way back on some target node is refused unless the plan accepts it);
// TestUndoOfIsHonest holds every driver to it. An action whose plan says
// rollback: none is None, whatever the drivers could do.
func UndoOf(a plan.Action, family string) Undo {
	u := undoOf(a, family)
	if !u.NoDriver && a.AcceptsNoRollback("") {
		return Undo{None: true, ByPlan: true, Way: "the plan says rollback: none"}
	}
	return u
}

// undoOf is what the drivers of family can do, whatever the plan says.
func undoOf(a plan.Action, family string) Undo {
	noDriver := func(kind string) Undo {
		return Undo{NoDriver: true, Way: "no " + kind + " driver on os family " + orUnknown(family) + ": the step fails before anything changes"}
	}
	isLinux := slices.Contains(linux, family)
	switch {
	case a.Package != nil:
		switch family {
		case "debian", "ubuntu":
			return Undo{Way: "apt-get installs the versions recorded before the change (a downgrade) and removes what it installed"}
		case "rhel":
			return Undo{Way: "dnf downgrades to the versions recorded before the change and removes what it installed"}
		case "suse":
			return Undo{Way: "zypper installs the versions recorded before the change (--oldpackage) and removes what it installed"}
		case "windows":
			return Undo{Way: "wusa.exe /uninstall /kb: removes each update the change installed"}
		case "macos":
			return Undo{None: true, Way: "macOS updates cannot be uninstalled (softwareupdate); only a restore from backup or a reinstall goes back"}
		}
		return noDriver("package")
	case a.Kernel != nil:
		if isLinux {
			way := "the previous kernel is booted again: while it still runs the package manager removes the new kernel; once the node runs the new one, the boot loader (GRUB or systemd-boot) is set to the previous kernel, the node reboots and its boot ID and uname -r confirm it"
			if a.Kernel.OnRollback == plan.KernelHold {
				return Undo{Way: way + ", and the new kernel is kept installed but held"}
			}
			return Undo{Way: way + ", then the new kernel is removed"}
		}
		return noDriver("kernel")
	case a.LivePatch != nil:
		if !isLinux {
			return noDriver("live patch")
		}
		if a.LivePatch.Provider == "canonical-livepatch" {
			return Undo{Way: "canonical-livepatch disable removes every live patch of the running kernel (not only this fix) and detaches the machine until it is enabled again"}
		}
		return Undo{Way: "kpatch unload"}
	case a.ServiceRestart != nil:
		return Undo{Way: "nothing to undo: a restart changes no installed state (the service is restarted again)"}
	case a.ContainerRuntime != nil:
		if isLinux {
			return Undo{Way: "the package manager downgrades the runtime to the version recorded before the change and restarts it"}
		}
		return noDriver("container runtime")
	case a.KubernetesNode != nil:
		return Undo{Way: "uncordon the node"}
	case a.Script != nil:
		if a.Script.Rollback == "" {
			return Undo{None: true, Way: "script " + a.Script.Artifact + " names no rollback artifact"}
		}
		return Undo{Way: "run signed artifact " + a.Script.Rollback}
	}
	return noDriver("action")
}

func orUnknown(family string) string {
	if family == "" {
		return "unknown"
	}
	return family
}
