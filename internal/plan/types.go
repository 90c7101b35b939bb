package plan

import (
	"time"
)

// APIVersion is the only plan schema version this build understands.
const APIVersion = "drover.dev/v1"

// Plan is a rollout plan: what to change, on which nodes, in which order,
// under which limits, and what stops it. The zero values of optional fields
// are replaced by Defaults; an effective plan (after Defaults) has every
// field the engine reads set explicitly.
type Plan struct {
	APIVersion  string    `yaml:"apiVersion" json:"apiVersion" desc:"schema version, always drover.dev/v1"`
	Name        string    `yaml:"name" json:"name" desc:"rollout name, [a-z0-9-], at most 63 characters"`
	Description string    `yaml:"description,omitempty" json:"description,omitempty"`
	Target      Target    `yaml:"target" json:"target"`
	Change      Change    `yaml:"change" json:"change"`
	Waves       []Wave    `yaml:"waves" json:"waves" desc:"waves in order, or a DAG through after:"`
	Limits      Limits    `yaml:"limits,omitempty" json:"limits,omitempty"`
	Windows     Windows   `yaml:"windows,omitempty" json:"windows,omitempty"`
	Budget      Budget    `yaml:"failureBudget,omitempty" json:"failureBudget,omitempty" desc:"overall failure budget over the whole target"`
	Gates       Gates     `yaml:"gates,omitempty" json:"gates,omitempty"`
	Approvals   Approvals `yaml:"approvals,omitempty" json:"approvals,omitempty"`
	Overlap     Overlap   `yaml:"overlap,omitempty" json:"overlap,omitempty" desc:"when the target overlaps an active rollout's: wait (its nodes wait for the other rollout, the default) or refuse (the rollout is not created)"`
	// Preflight has every target node's agent run its drivers'
	// pre-flight of the change before the first wave starts. Defaults
	// fills it in (onFail: block) when the plan has none; onFail: ignore
	// runs none (each step still pre-flights its own node).
	Preflight *Preflight `yaml:"preflight,omitempty" json:"preflight,omitempty" desc:"node pre-flight before the first wave (default onFail: block, timeout 5m): every target agent says what its package manager would do"`
	// Compatibility lists conditions every target node must meet for
	// this change, checked at the node pre-flight on the nodes' latest
	// facts (and in the dry run's simulation on the inventory's).
	Compatibility []CompatRule `yaml:"compatibility,omitempty" json:"compatibility,omitempty" desc:"compatibility matrix: CEL conditions over node and change each target node must meet"`

	// file and pos locate the plan's values in the source Parse read; nil
	// for a plan built in code. Where and Errorf read them.
	file string
	pos  map[string]Pos
}

// Preflight configures the node pre-flight: before the first wave, every
// pending target node's agent runs its drivers' pre-flight of the change
// (and apt's simulation), changing nothing. A node fails its pre-flight
// when a driver refuses (version missing from its repositories, no disk
// space, a conflict), when a compatibility rule rejects it, or when its
// agent does not answer within Timeout.
type Preflight struct {
	OnFail  PreflightOnFail `yaml:"onFail,omitempty" json:"onFail,omitempty" desc:"block (default: the rollout does not start) | exclude (failing nodes are skipped with their reason) | ignore (no node pre-flight at all)"`
	Timeout Duration        `yaml:"timeout,omitempty" json:"timeout,omitempty" desc:"how long nodes have to answer (default 5m); silence fails the node"`
	// Unavailable says what a node whose agent cannot run a pre-flight
	// (older than protocol 4) counts as.
	Unavailable PreflightUnavailable `yaml:"unavailable,omitempty" json:"unavailable,omitempty" desc:"a node whose agent is too old to pre-flight: proceed (default: reported, goes ahead unchecked) | fail (counts as a failed pre-flight, so onFail applies)"`
}

// PreflightUnavailable is what a node that cannot run the node
// pre-flight (its agent is older than protocol 4) counts as.
type PreflightUnavailable string

const (
	PreflightProceed PreflightUnavailable = "proceed"
	PreflightFail    PreflightUnavailable = "fail"
)

// PreflightOnFail is what failing node pre-flights do to the rollout.
type PreflightOnFail string

const (
	PreflightBlock   PreflightOnFail = "block"
	PreflightExclude PreflightOnFail = "exclude"
	// PreflightIgnore runs no node pre-flight: the rollout starts at once.
	PreflightIgnore PreflightOnFail = "ignore"
)

// Runs reports whether p has the node pre-flight run before its first
// wave (every defaulted plan does, unless it says onFail: ignore).
func (pf *Preflight) Runs() bool { return pf != nil && pf.OnFail != PreflightIgnore }

// CompatRule is one row of a compatibility matrix: Require, a CEL
// expression over node (as selectors) and change (the plan's change in
// its JSON shape), must hold on every target node,
// e.g. the kernels a live patch supports or the OS versions a package
// version supports.
type CompatRule struct {
	Name    string `yaml:"name" json:"name"`
	Require string `yaml:"require" json:"require" desc:"CEL expression over node and change that must be true, e.g. node.kernel.startsWith(\"6.1.\")"`
	Message string `yaml:"message,omitempty" json:"message,omitempty" desc:"why, shown with the nodes that fail it"`
}

// Target chooses the nodes a rollout may touch.
type Target struct {
	Selector string `yaml:"selector" json:"selector" desc:"CEL expression over node, e.g. node.os.family == \"debian\""`
	// OnRefusal says what a server does, at creation, with target nodes
	// whose agents would refuse the plan (an action kind outside their
	// --accept list, a command probe they do not allow, a signed
	// artifact they cannot verify): refuse-creation (the default) or
	// fail-node (create the rollout; those nodes fail their step
	// without anything run, within the failure budgets).
	OnRefusal RefusalPolicy `yaml:"onRefusal,omitempty" json:"onRefusal,omitempty" desc:"refuse-creation (default) | fail-node: what creation does when target agents would refuse the plan"`
}

// RefusalPolicy is what creation does with agents that would refuse.
type RefusalPolicy string

const (
	RefuseCreation  RefusalPolicy = "refuse-creation"
	RefusalFailNode RefusalPolicy = "fail-node"
)

// Change is the typed list of actions an agent performs on one node, in
// order. The engine treats actions as opaque; agents execute them through
// drivers.
type Change struct {
	Actions []Action     `yaml:"actions" json:"actions"`
	Reboot  RebootPolicy `yaml:"reboot,omitempty" json:"reboot,omitempty" desc:"never | if-required | always (default if-required)"`
	Timeout Duration     `yaml:"timeout,omitempty" json:"timeout,omitempty" desc:"bound on a node's driver work for one step (preflight, snapshot, apply, verify of every action), and on its rollback; a step past it fails, is rolled back and frees its slot (default 30m)"`
}

// DefaultChangeTimeout bounds a step's driver work when the plan sets no
// change.timeout, and when an older server's step payload carries none.
const DefaultChangeTimeout = Duration(30 * time.Minute)

// StepTimeout is t, or DefaultChangeTimeout when t is not set.
func StepTimeout(t Duration) time.Duration {
	if t <= 0 {
		return time.Duration(DefaultChangeTimeout)
	}
	return time.Duration(t)
}

// Overlap says what creating a rollout does when its target shares nodes
// with an active rollout's. A node changes under one rollout at a time
// either way: with wait the shared nodes wait, naming the rollout that
// holds them; with refuse the rollout is not created.
type Overlap string

const (
	OverlapWait   Overlap = "wait"
	OverlapRefuse Overlap = "refuse"
)

// RebootPolicy says when an agent reboots a node after its actions.
type RebootPolicy string

const (
	RebootNever      RebootPolicy = "never"
	RebootIfRequired RebootPolicy = "if-required"
	RebootAlways     RebootPolicy = "always"
)

// ActionKind names what an action does. Exactly the field matching the
// kind is set on an Action.
type ActionKind string

const (
	ActionPackage          ActionKind = "package"
	ActionKernel           ActionKind = "kernel"
	ActionLivePatch        ActionKind = "livepatch"
	ActionServiceRestart   ActionKind = "service-restart"
	ActionContainerRuntime ActionKind = "container-runtime"
	ActionKubernetesNode   ActionKind = "kubernetes-node"
	ActionScript           ActionKind = "script"
)

// Action is one typed step. Exactly one of the kind-specific fields is set.
type Action struct {
	Name             string                  `yaml:"name,omitempty" json:"name,omitempty" desc:"optional label shown in progress and audit"`
	Package          *PackageAction          `yaml:"package,omitempty" json:"package,omitempty"`
	Kernel           *KernelAction           `yaml:"kernel,omitempty" json:"kernel,omitempty"`
	LivePatch        *LivePatchAction        `yaml:"livepatch,omitempty" json:"livepatch,omitempty"`
	ServiceRestart   *ServiceRestartAction   `yaml:"serviceRestart,omitempty" json:"serviceRestart,omitempty"`
	ContainerRuntime *ContainerRuntimeAction `yaml:"containerRuntime,omitempty" json:"containerRuntime,omitempty"`
	KubernetesNode   *KubernetesNodeAction   `yaml:"kubernetesNode,omitempty" json:"kubernetesNode,omitempty"`
	Script           *ScriptAction           `yaml:"script,omitempty" json:"script,omitempty"`
	// NoRollbackOn names the os families on which the plan accepts that
	// the action has no way back (macOS updates, a script without a
	// rollback artifact): creation refuses an action that the drivers of
	// some target node's os family cannot undo unless the action says
	// rollback: none, or names that family here.
	NoRollbackOn []string `yaml:"noRollbackOn,omitempty" json:"noRollbackOn,omitempty" desc:"os families on which the plan accepts that this action cannot be rolled back (e.g. [macos])"`
	// PreRestartCheck, on a package or serviceRestart action, runs after
	// the change and before any service restarts on it.
	PreRestartCheck *RestartCheck `yaml:"preRestartCheck,omitempty" json:"preRestartCheck,omitempty" desc:"package (apt) and serviceRestart actions: a check (nginx -t) run after the change and before any service restarts; if it fails the step rolls back before a service restarts on the new version"`
}

// RestartCheck is a command or signed artifact, run as a command probe is
// (under the agent's --allow-command-probes, or verified as scripts
// are), that must exit 0 before services restart on a change.
type RestartCheck struct {
	Command  []string `yaml:"command,omitempty" json:"command,omitempty" desc:"program and arguments, e.g. [nginx, -t]; runs only on agents started with --allow-command-probes"`
	Artifact string   `yaml:"artifact,omitempty" json:"artifact,omitempty" desc:"signed artifact to run instead of command, verified as scripts are"`
	Args     []string `yaml:"args,omitempty" json:"args,omitempty" desc:"arguments of the signed artifact"`
	Timeout  Duration `yaml:"timeout,omitempty" json:"timeout,omitempty" desc:"default 30s"`
}

// DefaultRestartCheckTimeout bounds a pre-restart check without a timeout.
const DefaultRestartCheckTimeout = Duration(30 * time.Second)

// Probe is the command probe that runs c: the same agent policy applies,
// and the start of its output goes in a failure's reason when the agent
// allows (--allow-probe-output).
func (c RestartCheck) Probe() Probe {
	t := c.Timeout
	if t <= 0 {
		t = DefaultRestartCheckTimeout
	}
	return Probe{Name: "pre-restart check", Kind: ProbeCommand, Command: c.Command, Artifact: c.Artifact, Args: c.Args,
		Timeout: t, IncludeOutput: true}
}

// PackageAction installs or upgrades packages to pinned versions. Packages
// applies to every os family unless Families has an entry for the node's
// os.family, which then replaces it.
type PackageAction struct {
	Operation PackageOperation        `yaml:"operation,omitempty" json:"operation,omitempty" desc:"upgrade | install (default upgrade)"`
	Packages  []PackagePin            `yaml:"packages,omitempty" json:"packages,omitempty"`
	Families  map[string][]PackagePin `yaml:"families,omitempty" json:"families,omitempty" desc:"per os.family package names and versions"`
	Hold      bool                    `yaml:"hold,omitempty" json:"hold,omitempty" desc:"hold the packages at the pinned version afterwards"`
	Rollback  PackageRollback         `yaml:"rollback,omitempty" json:"rollback,omitempty" desc:"previous-version (default) | none"`
}

// PackageOperation is install or upgrade.
type PackageOperation string

const (
	PackageUpgrade PackageOperation = "upgrade"
	PackageInstall PackageOperation = "install"
)

// PackageRollback says how a package action is undone.
type PackageRollback string

const (
	RollbackPreviousVersion PackageRollback = "previous-version"
	RollbackNone            PackageRollback = "none"
)

// PackagePin is one package at one exact version.
type PackagePin struct {
	Name    string `yaml:"name" json:"name"`
	Version string `yaml:"version" json:"version" desc:"exact version to install, no floating latest"`
}

// KernelAction installs a kernel version; rollback boots the previous one.
// A node that already booted the new kernel is rolled back through its
// boot loader: the kernel it ran before the step is set to boot (Fallback),
// the node reboots, the agent confirms the boot (a new boot ID, that
// kernel running), then the new kernel is removed or held (OnRollback).
type KernelAction struct {
	Version  string `yaml:"version" json:"version"`
	Package  string `yaml:"package,omitempty" json:"package,omitempty" desc:"kernel package name, when not derivable from the os family"`
	Rollback string `yaml:"rollback,omitempty" json:"rollback,omitempty" desc:"previous-kernel (default) | none"`
	// Fallback is how the rollback makes the boot loader start the
	// previous kernel: KernelFallbackOneShot or KernelFallbackDefault.
	Fallback KernelFallback `yaml:"fallback,omitempty" json:"fallback,omitempty" desc:"oneshot (default: the next boot only, grub-reboot / bootctl set-oneshot) | default (every boot, grub-set-default / bootctl set-default)"`
	// OnRollback is what becomes of the new kernel once the node runs
	// the previous one again.
	OnRollback KernelOnRollback `yaml:"onRollback,omitempty" json:"onRollback,omitempty" desc:"remove (default: uninstall the new kernel) | hold (keep it installed but held, the previous kernel the boot default)"`
}

// KernelFallback is how a kernel rollback selects the previous kernel.
type KernelFallback string

// Kernel fallbacks.
const (
	// KernelFallbackOneShot boots the previous kernel on the next boot
	// only; removing the new kernel then makes the previous one the
	// default again.
	KernelFallbackOneShot KernelFallback = "oneshot"
	// KernelFallbackDefault makes the previous kernel the boot loader's
	// default (GRUB needs GRUB_DEFAULT=saved for it).
	KernelFallbackDefault KernelFallback = "default"
)

// KernelOnRollback is what a kernel rollback does with the new kernel.
type KernelOnRollback string

// What a kernel rollback does with the new kernel.
const (
	KernelRemove KernelOnRollback = "remove"
	// KernelHold keeps the new kernel installed and held (apt-mark hold,
	// dnf versionlock, zypper addlock), with the previous kernel the
	// boot loader's default so that the next reboot does not start it.
	KernelHold KernelOnRollback = "hold"
)

// LivePatchAction loads a kernel live patch; rollback unloads it (kpatch)
// or disables Canonical Livepatch, which removes every live patch of the
// running kernel, not only this fix.
type LivePatchAction struct {
	ID       string `yaml:"id" json:"id" desc:"live patch module name"`
	Artifact string `yaml:"artifact,omitempty" json:"artifact,omitempty" desc:"signed artifact holding the patch (kpatch)"`
	Provider string `yaml:"provider,omitempty" json:"provider,omitempty" desc:"kpatch | canonical-livepatch (default kpatch)"`
	Rollback string `yaml:"rollback,omitempty" json:"rollback,omitempty" desc:"unload (default: kpatch unload; canonical-livepatch disable, which removes every live patch of the running kernel) | none"`
}

// ServiceRestartAction restarts a service (systemd unit or Windows service).
type ServiceRestartAction struct {
	Service string `yaml:"service" json:"service"`
}

// ContainerRuntimeAction upgrades a container runtime through the package
// driver, restarts it and checks it answers at the new version.
type ContainerRuntimeAction struct {
	Runtime string `yaml:"runtime" json:"runtime" desc:"containerd | docker | cri-o"`
	Version string `yaml:"version" json:"version"`
}

// KubernetesNodeAction cordons and drains a Kubernetes node before the
// following actions and uncordons it after them.
type KubernetesNodeAction struct {
	Drain       bool     `yaml:"drain" json:"drain"`
	Timeout     Duration `yaml:"timeout,omitempty" json:"timeout,omitempty" desc:"drain timeout, and how long the node may take to report Ready again before it is uncordoned (default 10m)"`
	GracePeriod Duration `yaml:"gracePeriod,omitempty" json:"gracePeriod,omitempty"`
	DeleteLocal bool     `yaml:"deleteEmptyDirData,omitempty" json:"deleteEmptyDirData,omitempty"`
	// KubeletVersion is the kubelet version the change brings the node
	// to (by a package or image action of the same change): pre-flight
	// checks it against the API server's version (never newer, at most
	// three minor versions older; two before 1.28).
	KubeletVersion string `yaml:"kubeletVersion,omitempty" json:"kubeletVersion,omitempty" desc:"kubelet version the change brings the node to, e.g. 1.31.4: pre-flight checks the version skew against the API server"`
}

// ScriptAction runs a signed script artifact; Rollback names the script
// that undoes it, or is "none" (ScriptNoRollback) when the plan accepts
// that nothing undoes it; empty means neither, which creation refuses.
type ScriptAction struct {
	Artifact string   `yaml:"artifact" json:"artifact" desc:"name of a signed target in the artifact repository"`
	Args     []string `yaml:"args,omitempty" json:"args,omitempty"`
	Rollback string   `yaml:"rollback,omitempty" json:"rollback,omitempty" desc:"signed artifact that undoes the script, or none (the plan accepts that the script cannot be undone)"`
	Timeout  Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// AcceptsNoRollback reports whether the plan accepts that a has no way
// back on nodes of os family: a says rollback: none, or names family in
// noRollbackOn.
func (a *Action) AcceptsNoRollback(family string) bool {
	switch {
	case a.Package != nil && a.Package.Rollback == RollbackNone,
		a.Kernel != nil && a.Kernel.Rollback == "none",
		a.LivePatch != nil && a.LivePatch.Rollback == "none",
		a.Script != nil && a.Script.Rollback == ScriptNoRollback:
		return true
	}
	for _, f := range a.NoRollbackOn {
		if f == family {
			return true
		}
	}
	return false
}

// ScriptNoRollback, as a script's rollback, says the plan accepts that
// the script cannot be undone.
const ScriptNoRollback = "none"

// RollbackArtifact is the artifact that undoes the script, "" for none.
func (s *ScriptAction) RollbackArtifact() string {
	if s.Rollback == ScriptNoRollback {
		return ""
	}
	return s.Rollback
}

// Wave is one step of the rollout. Nodes are assigned to waves once, when
// the rollout starts, in plan order: a wave takes nodes from those not taken
// by earlier waves. With neither Nodes nor Selector a wave takes all the
// rest. A wave with Ramp is expanded by Defaults into one wave per step,
// named NAME-1, NAME-2, ..., each after the previous.
//
// After distinguishes nil from empty: nil (no after: key) means "after
// the previous wave in the list" (none for the first), while a non-nil
// empty slice (after: []) makes the wave a root. Defaults replaces nil
// with the explicit list, so no wave of an effective plan has a nil After.
type Wave struct {
	Name      string     `yaml:"name" json:"name"`
	After     []string   `yaml:"after,omitempty" json:"after" desc:"waves that must succeed first; default: the previous wave; [] makes the wave a root"`
	Nodes     *Quantity  `yaml:"nodes,omitempty" json:"nodes,omitempty" desc:"how many nodes: a count (5) or a percent of the target (\"20%\"), rounded up (20% of 12 nodes is 3), at most the nodes earlier waves left; omitted: all the nodes left"`
	Selector  string     `yaml:"selector,omitempty" json:"selector,omitempty" desc:"CEL expression narrowing the nodes this wave may take"`
	Ramp      []Quantity `yaml:"ramp,omitempty" json:"ramp,omitempty" desc:"cumulative sizes, e.g. [1, 5, \"20%\", \"100%\"]; percents of the target, rounded up"`
	Canary    *Canary    `yaml:"canary,omitempty" json:"canary,omitempty" desc:"make the wave a representative canary over its spread keys: true, or {cover, max, allowUncovered}"`
	Spread    []string   `yaml:"spread,omitempty" json:"spread,omitempty" desc:"keys a canary spreads across (default os.family, os.version, hardware.class, zone)"`
	Budget    *Budget    `yaml:"failureBudget,omitempty" json:"failureBudget,omitempty" desc:"failure budget of this wave, over its nodes"`
	Approvals int        `yaml:"approvals,omitempty" json:"approvals,omitempty" desc:"approvals needed before this wave starts"`
	BakeTime  *Duration  `yaml:"bakeTime,omitempty" json:"bakeTime,omitempty" desc:"time after the wave's last node before wave gates decide; default gates.bakeTime"`
	// RampOf is set by ramp expansion to the ramp's wave name: Nodes then
	// counts the nodes of this wave and of the earlier waves of the ramp
	// together (cumulative), so "100%" means all remaining nodes.
	RampOf string `yaml:"rampOf,omitempty" json:"rampOf,omitempty" desc:"set by ramp expansion: nodes is cumulative over the waves of this ramp"`
}

// Canary makes a wave a representative canary: its nodes are spread
// over the combinations (strata) of the values of its spread keys present
// among the nodes it may take. In YAML "canary: true" is a Canary with
// every field defaulted, and "canary: false" is no canary.
//
// Cover strata sizes the canary itself: one node per stratum, at most
// Max nodes. When Max nodes cannot cover every stratum, the rollout is
// not created (the uncovered strata are listed) unless AllowUncovered.
// Cover count takes the wave's nodes: (a count or percent) spread as far
// as they go; strata it leaves uncovered are reported as warnings.
// Defaults sets Cover to count when the wave has nodes: or ramp: (plans
// written before cover existed keep their meaning) and to strata
// otherwise, and Max (cover strata only) to DefaultCanaryMax.
type Canary struct {
	Cover          CanaryCover `yaml:"cover,omitempty" json:"cover,omitempty" desc:"strata: one node per combination of the spread keys, up to max (default without nodes:) | count: the wave's nodes:, spread as far as they go (default with nodes:)"`
	Max            *Quantity   `yaml:"max,omitempty" json:"max,omitempty" desc:"cover strata: most nodes the canary may take, count or percent of the target (default 10%)"`
	AllowUncovered bool        `yaml:"allowUncovered,omitempty" json:"allowUncovered,omitempty" desc:"cover strata: start even when max nodes cannot cover every stratum (they are still listed)"`
}

// CanaryCover says how a canary is sized.
type CanaryCover string

const (
	CoverStrata CanaryCover = "strata"
	CoverCount  CanaryCover = "count"
)

// Covers reports whether the wave is a canary that sizes itself to cover
// its strata.
func (w *Wave) Covers() bool { return w.Canary != nil && w.Canary.Cover == CoverStrata }

// Quantity is an absolute count or a percent. In YAML it is an integer (5)
// or a string with a percent sign ("20%").
type Quantity struct {
	Count   int     // set when !Percent
	Value   float64 // the percent, 0 < Value <= 100, when Percent
	Percent bool
}

// Of resolves the quantity against a total: a percent is rounded up, so
// that "1%" of 10 nodes is 1 node, never 0.
func (q Quantity) Of(total int) int {
	if !q.Percent {
		return q.Count
	}
	n := int(q.Value * float64(total) / 100)
	if float64(n)*100 < q.Value*float64(total) {
		n++
	}
	return n
}

// Limits are enforced all at once: a node starts only when every limit
// allows it.
type Limits struct {
	MaxInFlight *Quantity           `yaml:"maxInFlight,omitempty" json:"maxInFlight,omitempty" desc:"nodes changing at once, count or percent of target, rounded up and at least 1 (default 1)"`
	Caps        map[string]Quantity `yaml:"caps,omitempty" json:"caps,omitempty" desc:"per-domain caps: key (label or fact path) -> count or percent of that domain's nodes (skipped nodes aside), rounded up and at least 1"`
	Rate        *Rate               `yaml:"rate,omitempty" json:"rate,omitempty"`
	HoldBack    *HoldBack           `yaml:"holdBack,omitempty" json:"holdBack,omitempty"`
	Jitter      Duration            `yaml:"jitter,omitempty" json:"jitter,omitempty" desc:"each node starts up to this long after it could"`
}

// Rate caps node starts: at most Starts in any sliding window of Per.
type Rate struct {
	Starts int      `yaml:"starts" json:"starts"`
	Per    Duration `yaml:"per" json:"per"`
}

// HoldBack keeps the nodes whose Key equals Domain untouched until every
// wave in Until has succeeded. Those nodes are not assigned to the Until
// waves, nor to any wave that does not come after all of them.
type HoldBack struct {
	Key    string   `yaml:"key" json:"key"`
	Domain string   `yaml:"domain" json:"domain"`
	Until  []string `yaml:"until" json:"until"`
}

// Windows restricts when nodes may start.
type Windows struct {
	Definitions map[string]WeeklyWindow `yaml:"definitions,omitempty" json:"definitions,omitempty" desc:"named weekly maintenance windows"`
	Label       string                  `yaml:"label,omitempty" json:"label,omitempty" desc:"node label naming its window (default maintenance-window)"`
	Default     string                  `yaml:"default,omitempty" json:"default,omitempty" desc:"window for nodes without the label; empty means any time"`
	Cutoff      Duration                `yaml:"cutoff,omitempty" json:"cutoff,omitempty" desc:"no node starts within this long of its window's end"`
	Freezes     []Freeze                `yaml:"freezes,omitempty" json:"freezes,omitempty"`
}

// WeeklyWindow is a set of weekly spans in one time zone.
type WeeklyWindow struct {
	TimeZone string       `yaml:"timeZone" json:"timeZone" desc:"IANA time zone, e.g. Europe/Berlin"`
	Spans    []WeeklySpan `yaml:"spans" json:"spans"`
}

// WeeklySpan opens at Start on each of Days and lasts Duration.
type WeeklySpan struct {
	Days     []string `yaml:"days" json:"days" desc:"Mon Tue Wed Thu Fri Sat Sun"`
	Start    string   `yaml:"start" json:"start" desc:"local time HH:MM"`
	Duration Duration `yaml:"duration" json:"duration"`
}

// Freeze is a period when no node starts. From is inclusive, To exclusive.
type Freeze struct {
	Name   string    `yaml:"name,omitempty" json:"name,omitempty"`
	From   time.Time `yaml:"from" json:"from" desc:"RFC 3339 time or YYYY-MM-DD (UTC midnight)"`
	To     time.Time `yaml:"to" json:"to"`
	Reason string    `yaml:"reason,omitempty" json:"reason,omitempty"`
}

// Budget is a failure budget. It is breached when failures exceed Max
// (failures > Max, not >=): a budget of 0 breaches on the first failure,
// a budget of 2 on the third.
type Budget struct {
	Max        *Quantity    `yaml:"maxFailures,omitempty" json:"maxFailures,omitempty" desc:"failures allowed, count or percent of the wave (or target), rounded up; breached when failures exceed it"`
	Action     BreachAction `yaml:"onBreach,omitempty" json:"onBreach,omitempty" desc:"pause | rollback-wave | rollback-all"`
	Quarantine bool         `yaml:"quarantine,omitempty" json:"quarantine,omitempty" desc:"while within budget, set failed nodes aside and go on"`
}

// BreachAction is what a breached budget or failed wave gate does.
type BreachAction string

const (
	BreachPause        BreachAction = "pause"
	BreachRollbackWave BreachAction = "rollback-wave"
	BreachRollbackAll  BreachAction = "rollback-all"
)

// Gates are health checks: node gates after each node's step, wave gates
// before the next wave starts.
type Gates struct {
	Node             NodeGates       `yaml:"node,omitempty" json:"node,omitempty"`
	Wave             []WaveGate      `yaml:"wave,omitempty" json:"wave,omitempty"`
	BakeTime         Duration        `yaml:"bakeTime,omitempty" json:"bakeTime,omitempty" desc:"default bake time of every wave"`
	ProgressDeadline Duration        `yaml:"progressDeadline,omitempty" json:"progressDeadline,omitempty" desc:"a node step running longer fails (default 30m)"`
	OnFail           BreachAction    `yaml:"onFail,omitempty" json:"onFail,omitempty" desc:"what a failed wave gate does (default rollback-wave)"`
	OnInterrupted    InterruptAction `yaml:"onInterrupted,omitempty" json:"onInterrupted,omitempty" desc:"what a step interrupted by an agent crash or reboot does: retry (once, the default) or fail"`
}

// InterruptAction is what a step interrupted by an agent crash or a
// reboot the step did not request does to its node: retry re-dispatches
// the step once (a second interruption is a failure), fail counts it as a
// failure against the budget at once.
type InterruptAction string

const (
	InterruptRetry InterruptAction = "retry"
	InterruptFail  InterruptAction = "fail"
)

// NodeGates are probes the agent runs after a node's step.
type NodeGates struct {
	Probes          []Probe  `yaml:"probes,omitempty" json:"probes,omitempty"`
	MinHealthy      Duration `yaml:"minHealthy,omitempty" json:"minHealthy,omitempty" desc:"probes must pass this long (soak)"`
	HealthyDeadline Duration `yaml:"healthyDeadline,omitempty" json:"healthyDeadline,omitempty" desc:"a node not healthy this long after its step fails (default 10m)"`
}

// ProbeKind names a node probe.
type ProbeKind string

const (
	ProbeHTTP           ProbeKind = "http"
	ProbeTCP            ProbeKind = "tcp"
	ProbeCommand        ProbeKind = "command"
	ProbeSystemd        ProbeKind = "systemd"
	ProbeWindowsService ProbeKind = "windows-service"

	// Host checks: what breaks on a node after an update. The agent
	// takes a snapshot of the host before the step; "unchanged" and
	// "new" compare with it.
	ProbeClock           ProbeKind = "clock"            // clock synchronised within maxOffset
	ProbeDNS             ProbeKind = "dns"              // lookup resolves (to expect, if given)
	ProbeTLS             ProbeKind = "tls"              // handshake to address verifies, chain valid for minValidity
	ProbeMounts          ProbeKind = "mounts"           // no mount read-only (that was not before) or in error
	ProbeFailedUnits     ProbeKind = "failed-units"     // no systemd unit failed that was not failed before
	ProbeFirewallBackend ProbeKind = "firewall-backend" // iptables backend (nf_tables, legacy) unchanged
	ProbeMTU             ProbeKind = "mtu"              // network interfaces' MTUs unchanged
	ProbeKernelErrors    ProbeKind = "kernel-errors"    // no kernel log line at error or worse since the step began
	ProbeLinkage         ProbeKind = "linkage"          // every shared library of the binaries (and the unit's) resolves
)

// HostCheck reports whether k is a host check kind.
func (k ProbeKind) HostCheck() bool {
	switch k {
	case ProbeClock, ProbeDNS, ProbeTLS, ProbeMounts, ProbeFailedUnits, ProbeFirewallBackend, ProbeMTU, ProbeKernelErrors, ProbeLinkage:
		return true
	}
	return false
}

// Baselined reports whether a probe of kind k compares with the host
// snapshot the agent takes before the step.
func (k ProbeKind) Baselined() bool {
	switch k {
	case ProbeMounts, ProbeFailedUnits, ProbeFirewallBackend, ProbeMTU, ProbeKernelErrors:
		return true
	}
	return false
}

// Probe is one node health check.
type Probe struct {
	Name     string    `yaml:"name,omitempty" json:"name,omitempty"`
	Kind     ProbeKind `yaml:"kind" json:"kind" desc:"http | tcp | command | systemd | windows-service | clock | dns | tls | mounts | failed-units | firewall-backend | mtu | kernel-errors | linkage"`
	URL      string    `yaml:"url,omitempty" json:"url,omitempty"`
	Status   int       `yaml:"status,omitempty" json:"status,omitempty" desc:"expected HTTP status (default 200)"`
	Body     string    `yaml:"bodyMatch,omitempty" json:"bodyMatch,omitempty" desc:"regular expression the body must match"`
	Address  string    `yaml:"address,omitempty" json:"address,omitempty" desc:"host:port for tcp and tls"`
	Command  []string  `yaml:"command,omitempty" json:"command,omitempty" desc:"command: program and arguments; runs only on agents started with --allow-command-probes"`
	Artifact string    `yaml:"artifact,omitempty" json:"artifact,omitempty" desc:"command: signed artifact to run instead of command, verified as scripts are"`
	Args     []string  `yaml:"args,omitempty" json:"args,omitempty" desc:"command: arguments of the signed artifact"`
	// IncludeOutput asks the agent to return the start of a failing
	// command's output (or an http body) in the probe's reason; agents
	// return it only when started with --allow-probe-output.
	IncludeOutput bool     `yaml:"includeOutput,omitempty" json:"includeOutput,omitempty" desc:"command and http: return the start of the output in the failure reason, if the agent allows (--allow-probe-output)"`
	Unit          string   `yaml:"unit,omitempty" json:"unit,omitempty" desc:"systemd unit or Windows service; linkage: the unit whose ExecStart binary to check"`
	MaxOffset     Duration `yaml:"maxOffset,omitempty" json:"maxOffset,omitempty" desc:"clock: largest offset from the time source (default 1s)"`
	Lookup        string   `yaml:"lookup,omitempty" json:"lookup,omitempty" desc:"dns: the name to resolve"`
	Expect        []string `yaml:"expect,omitempty" json:"expect,omitempty" desc:"dns: addresses the answer must include"`
	Server        string   `yaml:"server,omitempty" json:"server,omitempty" desc:"dns: resolver to ask (ip or ip:port); default the node's own"`
	ServerName    string   `yaml:"serverName,omitempty" json:"serverName,omitempty" desc:"tls: name sent (SNI) and verified; default the address's host"`
	CAFile        string   `yaml:"caFile,omitempty" json:"caFile,omitempty" desc:"tls: PEM CA bundle on the node to verify with; default the system's"`
	MinVersion    string   `yaml:"minVersion,omitempty" json:"minVersion,omitempty" desc:"tls: 1.2 (default) | 1.3"`
	MinValidity   Duration `yaml:"minValidity,omitempty" json:"minValidity,omitempty" desc:"tls: every certificate of the chain must stay valid this long (default 0)"`
	Paths         []string `yaml:"paths,omitempty" json:"paths,omitempty" desc:"mounts: the mount points to check (default every mount); each must be mounted"`
	Interfaces    []string `yaml:"interfaces,omitempty" json:"interfaces,omitempty" desc:"mtu: the interfaces to check (default every interface)"`
	Binaries      []string `yaml:"binaries,omitempty" json:"binaries,omitempty" desc:"linkage: absolute paths of the binaries whose shared libraries must resolve (with or instead of unit)"`
	Timeout       Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Retries       int      `yaml:"retries,omitempty" json:"retries,omitempty"`
	Interval      Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
}

// GateMode names how a wave gate judges its query.
type GateMode string

const (
	ModeThreshold   GateMode = "threshold"
	ModeDelta       GateMode = "delta"
	ModeBeforeAfter GateMode = "before-after"
	ModeStatistical GateMode = "statistical"
)

// WaveGate is a fleet-metric check evaluated while a wave bakes.
type WaveGate struct {
	Name          string   `yaml:"name" json:"name"`
	Mode          GateMode `yaml:"mode" json:"mode" desc:"threshold | delta | before-after | statistical"`
	Query         string   `yaml:"query" json:"query" desc:"PromQL, templated with {{ .Nodes | regex }}"`
	Max           *float64 `yaml:"max,omitempty" json:"max,omitempty" desc:"threshold: fail above"`
	Min           *float64 `yaml:"min,omitempty" json:"min,omitempty" desc:"threshold: fail below"`
	MaxIncrease   string   `yaml:"maxIncrease,omitempty" json:"maxIncrease,omitempty" desc:"delta and before-after: \"20%\" relative or \"0.05\" absolute"`
	Baseline      string   `yaml:"baseline,omitempty" json:"baseline,omitempty" desc:"CEL narrowing baseline nodes (default same os.family and hardware.class, unchanged)"`
	Interval      Duration `yaml:"interval,omitempty" json:"interval,omitempty" desc:"default 1m"`
	Count         int      `yaml:"count,omitempty" json:"count,omitempty" desc:"evaluations needed to pass (default 3)"`
	InitialDelay  Duration `yaml:"initialDelay,omitempty" json:"initialDelay,omitempty"`
	FailureLimit  int      `yaml:"failureLimit,omitempty" json:"failureLimit,omitempty" desc:"consecutive failures that fail the gate (default 1)"`
	Inconclusive  string   `yaml:"onNoData,omitempty" json:"onNoData,omitempty" desc:"fail (default) | inconclusive: what no data or too few samples means"`
	MinSamples    int      `yaml:"minSamples,omitempty" json:"minSamples,omitempty" desc:"statistical: fewest samples per side (default 20)"`
	Alpha         float64  `yaml:"alpha,omitempty" json:"alpha,omitempty" desc:"statistical: significance level (default 0.01)"`
	MinEffect     string   `yaml:"minEffect,omitempty" json:"minEffect,omitempty" desc:"statistical: smallest relative worsening that counts (default 10%)"`
	Direction     string   `yaml:"direction,omitempty" json:"direction,omitempty" desc:"higher-is-worse (default) | lower-is-worse"`
	AlertMatchers []string `yaml:"blockingAlerts,omitempty" json:"blockingAlerts,omitempty" desc:"alert label matchers; while such alerts fire no node starts"`
}

// Approvals say how many distinct approvers, none of them the rollout's
// author, must approve before the rollout starts.
type Approvals struct {
	Start int `yaml:"start,omitempty" json:"start,omitempty"`
}

// Duration is a time.Duration written as Go writes it ("90s", "1h30m"),
// with "d" accepted for days ("2d").
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
