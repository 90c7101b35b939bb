package driver

import (
	"slices"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// HostOptions configure the drivers of a real host.
type HostOptions struct {
	Runner   Runner   // nil: NewExecRunner(CommandTimeout)
	Verifier Verifier // scripts and live patches; nil refuses them
	// CommandTimeout bounds every command a driver runs; default 30m.
	CommandTimeout time.Duration
	// Update runs the package manager's metadata refresh before preflight.
	Update bool
}

// ForHost returns the registry of a real node with these facts: the
// package manager of its os family; on Linux, live patches and container
// runtimes on top of the package driver; service restarts and signed
// scripts everywhere. UndoOf declares what each of them can undo. Kubernetes drain needs a
// cluster client and is registered by the caller when configured.
func ForHost(facts fleet.Facts, o HostOptions) *Registry {
	if o.CommandTimeout == 0 {
		o.CommandTimeout = 30 * time.Minute
	}
	r := o.Runner
	if r == nil {
		r = NewExecRunner(o.CommandTimeout)
	}
	fam := facts.OS.Family
	var pkgs Driver
	switch fam {
	case "debian", "ubuntu":
		pkgs = NewApt(r, AptOptions{Family: fam, Update: o.Update})
	case "rhel":
		pkgs = NewDNF(r, DNFOptions{Family: fam, Update: o.Update})
	case "suse":
		pkgs = NewZypper(r, ZypperOptions{Family: fam, Update: o.Update})
	case "windows":
		pkgs = NewWindowsUpdate(r)
	case "macos":
		pkgs = NewSoftwareUpdate(r)
	}
	reg := &Registry{}
	if pkgs != nil {
		reg.Register(plan.ActionPackage, pkgs)
		reg.Register(plan.ActionKernel, pkgs)
	}
	if pkgs != nil && slices.Contains(linux, fam) {
		reg.Register(plan.ActionContainerRuntime, NewContainerRuntime(r, pkgs, RuntimeOptions{}))
		reg.Register(plan.ActionLivePatch, NewLivePatch(r, o.Verifier, OSFileSystem{}))
	}
	reg.Register(plan.ActionServiceRestart, NewService(r, fam == "windows"))
	reg.Register(plan.ActionScript, NewScript(r, o.Verifier))
	return reg
}
