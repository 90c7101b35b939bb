package baseline

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// Drift kinds.
const (
	// DriftChanged: a package version changed (installed, removed,
	// upgraded, downgraded) and no drover step explains it.
	DriftChanged = "changed-out-of-band"
	// DriftPinViolated: after the facts changed, a pinned package is at
	// another version than its pin.
	DriftPinViolated = "pin-violated"
	// DriftHoldRemoved: a package held in the previous facts is no
	// longer held (still installed) and no drover step explains it, or
	// a baseline selecting the node pins that package (whoever removed
	// the hold: the pin is no longer enforced by the package manager).
	DriftHoldRemoved = "hold-removed"
)

// ExplainWindow is how long after a step finished its package changes
// may still show in the facts (the agent reports facts on its next poll).
const ExplainWindow = 15 * time.Minute

// MaxDriftPerReport bounds the drift events one facts report records
// (a dist-upgrade by hand changes hundreds of packages).
const MaxDriftPerReport = 100

// Drift is one detected departure.
type Drift struct {
	Node     string `json:"node"`
	Package  string `json:"package"`
	From     string `json:"from"` // "" newly installed
	To       string `json:"to"`   // "" removed
	Kind     string `json:"kind"`
	Baseline string `json:"baseline,omitempty"` // pin-violated: the baseline whose pin
	Reason   string `json:"reason"`
}

// Touched says which packages a step's actions may change: the named
// packages of package actions, kernel packages for a kernel action, and
// anything (all) for actions whose effect on packages drover cannot
// list (scripts, container runtimes, kubernetes node upgrades).
// Service restarts and live patches change no package.
func Touched(actions []plan.Action) (pkgs []string, all bool) {
	for _, a := range actions {
		switch {
		case a.Package != nil:
			for _, p := range a.Package.Packages {
				pkgs = append(pkgs, p.Name)
			}
			for _, ps := range a.Package.Families {
				for _, p := range ps {
					pkgs = append(pkgs, p.Name)
				}
			}
		case a.Kernel != nil:
			if a.Kernel.Package != "" {
				pkgs = append(pkgs, a.Kernel.Package)
			}
			pkgs = append(pkgs, kernelMark)
		case a.Script != nil, a.ContainerRuntime != nil, a.KubernetesNode != nil:
			all = true
		}
	}
	return pkgs, all
}

const kernelMark = "\x00kernel"

// IsKernelPackage: linux-image-*, linux-modules-*, kernel, kernel-core ...
func IsKernelPackage(p string) bool {
	return strings.HasPrefix(p, "linux-image") || strings.HasPrefix(p, "linux-modules") || strings.HasPrefix(p, "linux-headers") ||
		p == "kernel" || strings.HasPrefix(p, "kernel-")
}

// Explainer says whether drover's own steps explain a package change:
// built from the steps of the node that are in flight or finished
// within ExplainWindow.
type Explainer struct {
	all  bool
	pkgs map[string]bool            // any version of these
	pins map[string]map[string]bool // package -> the versions that explain a move to them
}

// Add records one step's actions. exact says the step is an apply step
// that succeeded: its package actions left their packages at their
// pinned versions, so it explains a move to a pinned version only, and
// a later change of one of those packages to another version is
// someone else's (apt-get install by hand within ExplainWindow of a
// rollout). A step in flight, failed, or rolling back may leave any
// version and explains any version of what it touches. Kernel actions
// explain any kernel package, and scripts, container runtime and
// Kubernetes node actions anything, either way.
func (e *Explainer) Add(actions []plan.Action, exact bool) {
	if e.pkgs == nil {
		e.pkgs, e.pins = map[string]bool{}, map[string]map[string]bool{}
	}
	for _, a := range actions {
		if a.Package == nil || !exact {
			pkgs, all := Touched([]plan.Action{a})
			e.all = e.all || all
			for _, p := range pkgs {
				e.pkgs[p] = true
			}
			continue
		}
		pins := slices.Clone(a.Package.Packages)
		for _, ps := range a.Package.Families {
			pins = append(pins, ps...)
		}
		for _, p := range pins {
			if e.pins[p.Name] == nil {
				e.pins[p.Name] = map[string]bool{}
			}
			e.pins[p.Name][p.Version] = true
		}
	}
}

// Explains reports whether a step explains pkg's move to version to
// ("" removed).
func (e *Explainer) Explains(pkg, to string) bool {
	if e == nil {
		return false
	}
	return e.all || e.pkgs[pkg] || (e.pkgs[kernelMark] && IsKernelPackage(pkg)) || (to != "" && e.pins[pkg][to])
}

// DetectDrift compares a node's previous and new facts. Every package
// whose version changed and that ex does not explain is drift; every
// pin (of the baselines selecting the node, by name) that the new facts
// break and the old facts did not is a pin violation; every hold of the
// old facts missing from the new ones, its package still installed, is
// hold-removed when ex does not explain the package or when a baseline
// pins it (one event per such baseline). No previous
// package list (a first report) is no drift. The result is ordered by
// package and bounded by MaxDriftPerReport.
func DetectDrift(node string, old, new fleet.Facts, ex *Explainer, pins map[string][]Pin) []Drift {
	if old.Packages == nil || new.Packages == nil {
		return nil
	}
	var out []Drift
	names := make([]string, 0, len(new.Packages))
	for p, v := range new.Packages {
		if old.Packages[p] != v {
			names = append(names, p)
		}
	}
	for p := range old.Packages {
		if _, ok := new.Packages[p]; !ok {
			names = append(names, p)
		}
	}
	slices.Sort(names)
	for _, p := range names {
		from, to := old.Packages[p], new.Packages[p]
		if ex.Explains(p, to) {
			continue
		}
		d := Drift{Node: node, Package: p, From: from, To: to, Kind: DriftChanged}
		switch {
		case from == "":
			d.Reason = fmt.Sprintf("%s %s installed by no drover step", p, to)
		case to == "":
			d.Reason = fmt.Sprintf("%s %s removed by no drover step", p, from)
		default:
			d.Reason = fmt.Sprintf("%s changed from %s to %s by no drover step", p, from, to)
		}
		out = append(out, d)
	}
	bls := make([]string, 0, len(pins))
	for b := range pins {
		bls = append(bls, b)
	}
	slices.Sort(bls)
	for _, b := range bls {
		before := map[string]bool{}
		for _, v := range PinViolations(pins[b], old) {
			before[v.Package] = true
		}
		for _, v := range PinViolations(pins[b], new) {
			if before[v.Package] {
				continue
			}
			out = append(out, Drift{Node: node, Package: v.Package, From: old.Packages[v.Package], To: v.Installed,
				Kind: DriftPinViolated, Baseline: b, Reason: "baseline " + b + ": " + v.Reason})
		}
	}
	out = append(out, holdsRemoved(node, old, new, ex, pins, bls)...)
	if len(out) > MaxDriftPerReport {
		out = out[:MaxDriftPerReport]
	}
	return out
}

// holdsRemoved lists the hold-removed drift of a facts report (see
// DetectDrift); bls are the baselines of pins, sorted.
func holdsRemoved(node string, old, new fleet.Facts, ex *Explainer, pins map[string][]Pin, bls []string) []Drift {
	var out []Drift
	ecos := advisory.NodeEcosystems(new)
	for _, h := range slices.Sorted(slices.Values(old.Holds)) {
		to, installed := new.Packages[h]
		if slices.Contains(new.Holds, h) || !installed {
			continue // still held, or removed (changed-out-of-band says so)
		}
		d := Drift{Node: node, Package: h, From: old.Packages[h], To: to, Kind: DriftHoldRemoved}
		pinned := false
		for _, b := range bls {
			for _, p := range pins[b] {
				if p.Package != h || (p.Ecosystem != "" && !slices.Contains(ecos, p.Ecosystem)) {
					continue
				}
				pinned = true
				d2 := d
				d2.Baseline = b
				d2.Reason = fmt.Sprintf("baseline %s: %s is pinned at %s and no longer held (installed %s)", b, h, p.Version, to)
				out = append(out, d2)
				break
			}
		}
		// A step that ended well placed holds, it did not remove one:
		// only steps in flight, failed or rolled back explain a removal.
		if !pinned && !ex.Explains(h, "") {
			d.Reason = fmt.Sprintf("hold on %s %s removed by no drover step", h, to)
			out = append(out, d)
		}
	}
	return out
}
