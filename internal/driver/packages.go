package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/plan"
)

// pkgChange is one package moving to its pin.
type pkgChange struct {
	Pin     plan.PackagePin
	From    string // installed version, "" when absent
	Present bool
	// Reinstall: the package is at the pinned version but broken (an
	// interrupted dpkg run left it half-installed): the package manager
	// must install it again, which it skips for a version it thinks is
	// in place.
	Reinstall bool
}

// pkgState is what the package database says of one package.
type pkgState struct {
	Present bool
	// Versions installed: usually one; several for multi-version packages
	// such as RPM kernels.
	Versions []string
	// Broken is a reason the package is present but not usable (e.g. dpkg
	// "half-configured"); the package is then never "at" any version.
	Broken string
}

func (s pkgState) at(version string) bool {
	return s.Present && s.Broken == "" && slices.Contains(s.Versions, version)
}

// brokenAt reports whether the package is present at version but broken.
func (s pkgState) brokenAt(version string) bool {
	return s.Present && s.Broken != "" && slices.Contains(s.Versions, version)
}

func (s pkgState) String() string {
	if !s.Present {
		return "absent"
	}
	v := strings.Join(s.Versions, ",")
	if s.Broken != "" {
		v += " (" + s.Broken + ")"
	}
	return v
}

// pkgBackend is one package manager: apt, dnf or zypper. Every method
// returns errors wrapping ErrLocked, ErrUnavailable or ErrNoSpace where the
// tool's output says so.
type pkgBackend interface {
	name() string
	// refresh updates the package lists when the backend is configured
	// to (Update), or, with always, when its package manager does not
	// refresh them by itself (apt); ran says whether it did.
	refresh(ctx context.Context, always bool) (ran bool, err error)
	installed(ctx context.Context, name string) (pkgState, error)
	// available lists the versions the configured sources offer (installed
	// ones included); empty when the package is unknown.
	available(ctx context.Context, name string) ([]string, error)
	// downloadSize is the bytes to fetch for a pin; 0 when unknown.
	downloadSize(ctx context.Context, pin plan.PackagePin) (int64, error)
	// freeSpace is the free bytes where packages are downloaded; -1 when
	// unknown.
	freeSpace(ctx context.Context) (int64, error)
	// install moves every change to its pin (installing, upgrading or
	// downgrading) in one transaction.
	install(ctx context.Context, changes []pkgChange) error
	// remove removes packages, every installed version of each.
	remove(ctx context.Context, names []string) error
	// multiVersion says whether one package name can be installed in
	// several versions at once: RPM's installonly (dnf) and multiversion
	// (zypper) packages, kernels first, which an install adds beside the
	// installed versions instead of replacing them. Debian gives each
	// kernel version a package name of its own: apt says no.
	multiVersion() bool
	// removeVersions removes the given versions of packages, leaving
	// their other versions installed; multi-version backends only.
	removeVersions(ctx context.Context, pins []plan.PackagePin) error
	// runningKernel names the installed packages owning the running
	// kernel's files (/boot/vmlinuz-R, R from uname -r; for rpm also
	// /lib/modules/R). It finds none for a kernel no package owns, and
	// for a root that is not the running system.
	runningKernel(ctx context.Context) (runningKernel, error)
	// held lists which of names are held. A backend that cannot hold
	// packages on this host (dnf without its versionlock plugin) says so
	// with an error wrapping ErrUnsupported.
	held(ctx context.Context, names []string) (map[string]bool, error)
	hold(ctx context.Context, pins []plan.PackagePin) error
	unhold(ctx context.Context, names []string) error
	// rebootRequired says whether the node needs a reboot, and why.
	rebootRequired(ctx context.Context) (bool, string, error)
	// idents are the kinds of the backend's package names and versions.
	idents() (name, version plan.Ident)
}

// Simulate asks the package manager what the action would do, without
// doing it: every package it would install, upgrade, downgrade or remove
// (dependencies included), the held packages it would move, and whether
// a kernel among them needs a reboot. A change the package manager
// cannot resolve is an error wrapping ErrConflict. A backend without a
// simulation returns ErrUnsupported.
func (d *PackageDriver) Simulate(ctx context.Context, a plan.Action) (Change, error) {
	sim, ok := d.b.(pkgSimulator)
	if !ok {
		return Change{}, fmt.Errorf("%s: simulating a change: %w", d.b.name(), ErrUnsupported)
	}
	t, err := d.target(a)
	if err != nil {
		return Change{}, err
	}
	changes, skipped, err := d.survey(ctx, t)
	if err != nil {
		return Change{}, err
	}
	ch := Change{Summary: summarize("would change", changes, skipped), Items: changeItems(changes), None: len(changes) == 0}
	if ch.None {
		return ch, nil
	}
	held, err := d.held(ctx, pinNames(t.pins), false)
	if err != nil {
		return Change{}, err
	}
	for _, c := range changes {
		if held[c.Pin.Name] {
			ch.Held = append(ch.Held, c.Pin.Name)
		}
	}
	planned, heldToo, err := sim.simulate(ctx, changes)
	if errors.Is(err, ErrUnavailable) {
		// A version published since the lists were last refreshed (a
		// security fix): refresh once and ask again.
		if _, rerr := d.b.refresh(ctx, true); rerr != nil {
			return Change{}, rerr
		}
		planned, heldToo, err = sim.simulate(ctx, changes)
	}
	if err != nil {
		return Change{}, err
	}
	ch.Planned = planned
	for _, h := range heldToo {
		if !slices.Contains(ch.Held, h) {
			ch.Held = append(ch.Held, h)
		}
	}
	ch.Reboot = t.kernel
	for _, op := range ch.Planned {
		ch.Reboot = ch.Reboot || (op.Op != "remove" && isKernelPackage(op.Name))
	}
	return ch, nil
}

// pkgSimulator is a backend that can ask its package manager what a
// change would do without doing it (apt-get -s). It returns the planned
// operations, dependencies included, and the held packages the change
// would move; a change the package manager cannot resolve is an error
// wrapping ErrConflict.
type pkgSimulator interface {
	simulate(ctx context.Context, changes []pkgChange) (planned []PlannedOp, held []string, err error)
}

// isKernelPackage reports whether a package installs a kernel, whose new
// version takes effect only after a reboot.
func isKernelPackage(name string) bool {
	for _, p := range []string{"linux-image-", "kernel-core", "kernel-default"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return name == "kernel"
}

// PackageDriver applies package and kernel actions through one package
// manager. Package actions move each pinned package to its exact version
// (operation upgrade leaves packages that are not installed alone, as
// apt-get --only-upgrade does; install installs them), optionally holding
// them there. Kernel actions install the kernel package (KernelAction.Package
// is required) and always require a reboot.
//
// Kernels are multi-version packages on RPM systems (dnf's installonlypkgs,
// zypper's multiversion): installing kernel-core or kernel-default
// version B adds B beside the running A, and the boot loader's default
// moves to B. Snapshots record every installed version of such a package,
// and Rollback removes the version the step added (never the running
// kernel: see Rollback), which moves the boot loader back to A. On Debian
// each kernel version is a package of its own (linux-image-6.1.0-25-amd64):
// a kernel action naming it installs it when absent, and its rollback
// removes it.
type PackageDriver struct {
	b      pkgBackend
	family string
	// boot returns the node's boot loader (kernel fallback).
	boot func() (BootLoader, error)
}

var _ Driver = (*PackageDriver)(nil)

// Name is the package manager's name: "apt", "dnf" or "zypper".
func (d *PackageDriver) Name() string { return d.b.name() }

// pkgTarget is what an action asks of the package manager.
type pkgTarget struct {
	pins    []plan.PackagePin
	install bool // install absent packages (else leave them absent)
	hold    bool
	kernel  bool
	noUndo  bool // rollback: none
	// keepKernel: a kernel action's rollback holds the new kernel
	// instead of removing it (onRollback: hold).
	keepKernel bool
}

// target reads the pins of a package or kernel action for the driver's
// os family, refusing names and versions that are not the backend's
// identifiers (plan.DebianPackage and plan.DebianVersion for apt,
// plan.RPMPackage and plan.RPMVersion for dnf and zypper): a value that
// reaches the tool is one argv element the tool reads as a package, never
// as an option, a pattern or another operation.
func (d *PackageDriver) target(a plan.Action) (pkgTarget, error) {
	var t pkgTarget
	switch {
	case a.Package != nil:
		t.pins = a.Package.Packages
		if fam, ok := a.Package.Families[d.family]; ok && d.family != "" {
			t.pins = fam
		}
		t.install = a.Package.Operation == plan.PackageInstall
		t.hold = a.Package.Hold
		t.noUndo = a.Package.Rollback == plan.RollbackNone
	case a.Kernel != nil:
		if a.Kernel.Package == "" {
			return t, fmt.Errorf("%s: kernel action for %s names no package: %w", d.b.name(), a.Kernel.Version, ErrUnsupported)
		}
		t.pins = []plan.PackagePin{{Name: a.Kernel.Package, Version: a.Kernel.Version}}
		t.install, t.kernel = true, true
		t.noUndo = a.Kernel.Rollback == "none"
		t.keepKernel = a.Kernel.OnRollback == plan.KernelHold
	default:
		return t, fmt.Errorf("%s: action %q is not a package or kernel action: %w", d.b.name(), a.Name, ErrUnsupported)
	}
	if len(t.pins) == 0 {
		return t, fmt.Errorf("%s: action %q pins no packages for os family %q", d.b.name(), a.Name, d.family)
	}
	for _, p := range t.pins {
		if err := d.checkPin(p); err != nil {
			return t, err
		}
	}
	return t, nil
}

// checkPin checks a pin's name and version against the backend's
// identifiers.
func (d *PackageDriver) checkPin(p plan.PackagePin) error {
	nameKind, versionKind := d.b.idents()
	if err := nameKind.Check(p.Name); err != nil {
		return fmt.Errorf("%s: invalid package name: %w", d.b.name(), err)
	}
	if err := versionKind.Check(p.Version); err != nil {
		return fmt.Errorf("%s: invalid version for package %s: %w", d.b.name(), plan.QuoteValue(p.Name), err)
	}
	return nil
}

// survey reads each pinned package's state and returns the changes to
// make, and the packages left alone because they are absent.
func (d *PackageDriver) survey(ctx context.Context, t pkgTarget) (changes []pkgChange, skipped []string, err error) {
	for _, p := range t.pins {
		st, err := d.b.installed(ctx, p.Name)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case st.at(p.Version):
		case !st.Present && !t.install:
			skipped = append(skipped, p.Name)
		default:
			changes = append(changes, pkgChange{Pin: p, From: st.String(), Present: st.Present, Reinstall: st.brokenAt(p.Version)})
		}
	}
	return changes, skipped, nil
}

func changeItems(changes []pkgChange) []ChangeItem {
	items := make([]ChangeItem, 0, len(changes))
	for _, c := range changes {
		items = append(items, ChangeItem{Name: c.Pin.Name, From: c.From, To: c.Pin.Version})
	}
	return items
}

func summarize(verb string, changes []pkgChange, skipped []string) string {
	var parts []string
	for _, c := range changes {
		parts = append(parts, fmt.Sprintf("%s %s -> %s", c.Pin.Name, c.From, c.Pin.Version))
	}
	s := verb + " " + strings.Join(parts, ", ")
	if len(changes) == 0 {
		s = "all packages already at their pinned versions"
	}
	if len(skipped) > 0 {
		s += "; not installed, left alone (operation upgrade): " + strings.Join(skipped, ", ")
	}
	return s
}

// Preflight checks every pinned version is available and that the
// download fits in the free space, and says what Apply would change and
// whether a kernel action needs a reboot. A node already at every pin
// gets Change.None. Simulate goes further, for a node's pre-flight.
func (d *PackageDriver) Preflight(ctx context.Context, a plan.Action) (Change, error) {
	t, err := d.target(a)
	if err != nil {
		return Change{}, err
	}
	var held map[string]bool
	if t.hold {
		// First: a host that cannot hold is refused before anything runs.
		if held, err = d.held(ctx, pinNames(t.pins), true); err != nil {
			return Change{}, err
		}
	}
	refreshed, err := d.b.refresh(ctx, false)
	if err != nil {
		return Change{}, err
	}
	changes, skipped, err := d.survey(ctx, t)
	if err != nil {
		return Change{}, err
	}
	var need int64
	for _, c := range changes {
		avail, err := d.b.available(ctx, c.Pin.Name)
		if err != nil {
			return Change{}, err
		}
		if !slices.Contains(avail, c.Pin.Version) && !refreshed {
			// Not in the lists the node has: refresh them once (apt never
			// does by itself), a fix may have been published since.
			if _, err := d.b.refresh(ctx, true); err != nil {
				return Change{}, err
			}
			refreshed = true
			if avail, err = d.b.available(ctx, c.Pin.Name); err != nil {
				return Change{}, err
			}
		}
		if !slices.Contains(avail, c.Pin.Version) {
			if len(avail) == 0 {
				return Change{}, fmt.Errorf("%s: %s=%s: package not found in the configured sources: %w", d.b.name(), c.Pin.Name, c.Pin.Version, ErrUnavailable)
			}
			return Change{}, fmt.Errorf("%s: %s=%s: version not available (available: %s): %w", d.b.name(), c.Pin.Name, c.Pin.Version, strings.Join(avail, ", "), ErrUnavailable)
		}
		size, err := d.b.downloadSize(ctx, c.Pin)
		if err != nil {
			return Change{}, err
		}
		need += size
	}
	ch := Change{Summary: summarize("would change", changes, skipped), Items: changeItems(changes), None: len(changes) == 0, BytesNeeded: need}
	if need > 0 {
		free, err := d.b.freeSpace(ctx)
		if err != nil {
			return Change{}, err
		}
		if free >= 0 && free < need {
			return Change{}, fmt.Errorf("%s: download needs %d bytes, %d free: %w", d.b.name(), need, free, ErrNoSpace)
		}
		ch.BytesFree = max(free, 0)
	}
	for _, c := range changes {
		if held[c.Pin.Name] {
			ch.Held = append(ch.Held, c.Pin.Name)
		}
	}
	ch.Reboot = t.kernel && len(changes) > 0
	if ch.None && t.hold {
		for _, p := range t.pins {
			if !held[p.Name] && !slices.Contains(skipped, p.Name) {
				ch.None = false
				ch.Summary += "; would hold " + p.Name
			}
		}
	}
	return ch, nil
}

// held asks the backend which of names are held. A backend that cannot
// hold packages here (dnf without its versionlock plugin) holds nothing,
// which is an error (wrapping ErrUnsupported) only when need is set: the
// action asks to hold. Preflight and Apply ask it before anything changes,
// so such an action fails whole instead of after its upgrade.
func (d *PackageDriver) held(ctx context.Context, names []string, need bool) (map[string]bool, error) {
	held, err := d.b.held(ctx, names)
	if errors.Is(err, ErrUnsupported) {
		if need {
			return nil, fmt.Errorf("%s: the action holds its packages (hold: true), which this host cannot do; nothing was changed: %w", d.b.name(), err)
		}
		return map[string]bool{}, nil
	}
	return held, err
}

func pinNames(pins []plan.PackagePin) []string {
	names := make([]string, len(pins))
	for i, p := range pins {
		names[i] = p.Name
	}
	return names
}

// pkgSnapshotData is PackageDriver's Snapshot.Data.
type pkgSnapshotData struct {
	Packages []pkgSnapshotEntry `json:"packages"`
	// RunningKernel is the kernel release the node ran (uname -r) when a
	// kernel action's snapshot was taken: the known-good kernel its
	// rollback boots again. Empty for package actions, for a root that is
	// not the running system, and in snapshots taken before it existed.
	RunningKernel string `json:"runningKernel,omitempty"`
}

type pkgSnapshotEntry struct {
	Name string `json:"name"`
	// Version installed before (the newest, when several were); empty
	// when Absent.
	Version string `json:"version,omitempty"`
	// Versions lists every version installed before, oldest first, when
	// a multi-version backend had several (kernels); nil for one, so a
	// snapshot of one version keeps the form it had before Versions.
	// (Kernel snapshots taken before Versions existed name only the last
	// of several: their rollback removes the step's kernel all the same,
	// and its final check reports the others.)
	Versions []string `json:"versions,omitempty"`
	Absent   bool     `json:"absent,omitempty"`
	Held     bool     `json:"held,omitempty"`
	// Broken says why the package was not usable (e.g. half-installed
	// after an interrupted dpkg run): a restore that leaves it broken
	// does not match a snapshot of it intact.
	Broken string `json:"broken,omitempty"`
}

// want is the set of versions the entry recorded installed.
func (e pkgSnapshotEntry) want() []string {
	if len(e.Versions) > 0 {
		return e.Versions
	}
	return []string{e.Version}
}

// Snapshot records each pinned package's installed versions ("absent" when
// not installed) and whether it was held.
func (d *PackageDriver) Snapshot(ctx context.Context, a plan.Action) (Snapshot, error) {
	t, err := d.target(a)
	if err != nil {
		return Snapshot{}, err
	}
	held, err := d.held(ctx, pinNames(t.pins), false)
	if err != nil {
		return Snapshot{}, err
	}
	var data pkgSnapshotData
	var parts []string
	for _, p := range t.pins {
		st, err := d.b.installed(ctx, p.Name)
		if err != nil {
			return Snapshot{}, err
		}
		e := pkgSnapshotEntry{Name: p.Name, Held: held[p.Name], Absent: !st.Present, Broken: st.Broken}
		if st.Present {
			multi := d.b.multiVersion()
			if len(st.Versions) != 1 && !t.kernel && !multi {
				return Snapshot{}, fmt.Errorf("%s: %s has %d installed versions (%s); cannot record one to restore", d.b.name(), p.Name, len(st.Versions), st)
			}
			if len(st.Versions) > 0 {
				e.Version = st.Versions[len(st.Versions)-1]
			}
			if multi && len(st.Versions) > 1 {
				e.Versions = st.Versions
			}
		}
		data.Packages = append(data.Packages, e)
		parts = append(parts, p.Name+" "+st.String())
	}
	if t.kernel {
		k, err := d.b.runningKernel(ctx)
		if err != nil {
			return Snapshot{}, err
		}
		data.RunningKernel = k.Release
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return Snapshot{}, fmt.Errorf("%s: encode snapshot: %w", d.b.name(), err)
	}
	return Snapshot{Driver: d.b.name(), Summary: strings.Join(parts, ", "), Data: raw}, nil
}

// Apply moves the pinned packages to their versions in one transaction
// (unholding held ones for the change and holding them again after),
// holds them when the action says so, and checks the result.
func (d *PackageDriver) Apply(ctx context.Context, a plan.Action) (Outcome, error) {
	return d.apply(ctx, a, false)
}

// ApplyDeferred is Apply with the service starts and restarts the
// packages' maintainer scripts ask for held back and listed in
// Outcome.Deferred, for RunDeferred to run once a check passed. Backends
// that cannot hold them back (only apt can, through policy-rc.d) fail
// wrapping ErrUnsupported before anything changes.
func (d *PackageDriver) ApplyDeferred(ctx context.Context, a plan.Action) (Outcome, error) {
	if _, ok := d.b.(restartDeferrer); !ok {
		return Outcome{}, fmt.Errorf("%s: holding back service restarts during an install: %w", d.b.name(), ErrUnsupported)
	}
	return d.apply(ctx, a, true)
}

// RunDeferred runs the service restarts ApplyDeferred held back.
func (d *PackageDriver) RunDeferred(ctx context.Context, _ plan.Action, deferred []string) error {
	b, ok := d.b.(restartDeferrer)
	if !ok {
		return fmt.Errorf("%s: running held-back service restarts: %w", d.b.name(), ErrUnsupported)
	}
	return b.runDeferred(ctx, deferred)
}

// restartDeferrer is a backend that can install with the service
// restarts of maintainer scripts held back, and run them later.
type restartDeferrer interface {
	installDeferred(ctx context.Context, changes []pkgChange) ([]string, error)
	runDeferred(ctx context.Context, deferred []string) error
}

func (d *PackageDriver) apply(ctx context.Context, a plan.Action, deferRestarts bool) (Outcome, error) {
	t, err := d.target(a)
	if err != nil {
		return Outcome{}, err
	}
	// First, as in Preflight: a host that cannot hold is refused before
	// anything changes.
	held, err := d.held(ctx, pinNames(t.pins), t.hold)
	if err != nil {
		return Outcome{}, err
	}
	refreshed, err := d.b.refresh(ctx, false)
	if err != nil {
		return Outcome{}, err
	}
	changes, skipped, err := d.survey(ctx, t)
	if err != nil {
		return Outcome{}, err
	}
	var unheld []string
	for _, c := range changes {
		if held[c.Pin.Name] {
			unheld = append(unheld, c.Pin.Name)
		}
	}
	if len(unheld) > 0 {
		if err := d.b.unhold(ctx, unheld); err != nil {
			return Outcome{}, err
		}
	}
	var beside, deferred []string
	if len(changes) > 0 {
		install := func() error {
			if deferRestarts {
				deferred, err = d.b.(restartDeferrer).installDeferred(ctx, changes)
				return err
			}
			return d.b.install(ctx, changes)
		}
		err = install()
		if errors.Is(err, ErrUnavailable) && !refreshed {
			// A version published since the node's lists were last
			// refreshed (apt never refreshes by itself): once more
			// with fresh lists.
			if _, rerr := d.b.refresh(ctx, true); rerr != nil {
				return Outcome{}, rerr
			}
			err = install()
		}
		if err != nil {
			return Outcome{}, err
		}
		for _, c := range changes {
			st, err := d.b.installed(ctx, c.Pin.Name)
			if err != nil {
				return Outcome{}, err
			}
			if !st.at(c.Pin.Version) {
				return Outcome{}, fmt.Errorf("%s: install reported success but %s is %s, not %s", d.b.name(), c.Pin.Name, st, c.Pin.Version)
			}
			if others := slices.DeleteFunc(slices.Clone(st.Versions), func(v string) bool { return v == c.Pin.Version }); d.b.multiVersion() && len(others) > 0 {
				// A multi-version package (a kernel): the install
				// added the pin beside the versions in place.
				beside = append(beside, fmt.Sprintf("%s %s installed beside %s", c.Pin.Name, c.Pin.Version, strings.Join(others, ",")))
			}
		}
	}
	var toHold []plan.PackagePin
	for _, p := range t.pins {
		if slices.Contains(skipped, p.Name) {
			continue
		}
		if (t.hold && !held[p.Name]) || slices.Contains(unheld, p.Name) {
			toHold = append(toHold, p)
		}
	}
	if len(toHold) > 0 {
		if err := d.b.hold(ctx, toHold); err != nil {
			return Outcome{}, err
		}
	}
	reboot, why, err := d.b.rebootRequired(ctx)
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{Summary: summarize("changed", changes, skipped), Changed: changeItems(changes), RebootRequired: reboot || (t.kernel && len(changes) > 0),
		Deferred: deferred}
	if len(beside) > 0 {
		out.Summary += " (" + strings.Join(beside, "; ") + ")"
	}
	if len(toHold) > 0 {
		out.Summary += "; held " + strings.Join(pinNames(toHold), ", ")
	}
	if len(deferred) > 0 {
		out.Summary += "; service restarts held back: " + strings.Join(deferred, ", ")
	}
	out.Summary += rebootNote(out.RebootRequired, why)
	return out, nil
}

// Verify checks every pinned package is installed at its version (absent
// packages of an upgrade stay absent) and, for hold, held.
func (d *PackageDriver) Verify(ctx context.Context, a plan.Action) error {
	t, err := d.target(a)
	if err != nil {
		return err
	}
	changes, skipped, err := d.survey(ctx, t)
	if err != nil {
		return err
	}
	if len(changes) > 0 {
		var bad []string
		for _, c := range changes {
			bad = append(bad, fmt.Sprintf("%s is %s, want %s", c.Pin.Name, c.From, c.Pin.Version))
		}
		return fmt.Errorf("%s: verify: %s", d.b.name(), strings.Join(bad, "; "))
	}
	if t.hold {
		held, err := d.held(ctx, pinNames(t.pins), true)
		if err != nil {
			return err
		}
		for _, p := range t.pins {
			if !held[p.Name] && !slices.Contains(skipped, p.Name) {
				return fmt.Errorf("%s: verify: %s is at %s but not held", d.b.name(), p.Name, p.Version)
			}
		}
	}
	return nil
}

// ErrRunningKernel is what Rollback returns, before changing anything,
// when restoring the snapshot would remove the kernel the node is running:
// the node rebooted into the kernel the step installed. Boot it into a
// kernel the snapshot recorded (pick it in the boot menu, or make it the
// default with grubby --set-default or grub2-set-default and reboot), then
// roll back again.
var ErrRunningKernel = errors.New("the rollback would remove the running kernel")

// runningKernel is what the backend knows of the running kernel.
type runningKernel struct {
	Release string // uname -r
	// Owners are the installed packages owning its files; Version is ""
	// when the tool names only the package (dpkg-query -S).
	Owners []plan.PackagePin
}

// owns reports whether removing version of package name would remove the
// running kernel: name owns it, or (RPM) version is the running kernel's
// own: kernel, kernel-core and kernel-modules of one build share it, and
// dnf removes them together.
func (k runningKernel) owns(name, version string) bool {
	for _, o := range k.Owners {
		if o.Name == name && (o.Version == "" || o.Version == version) || o.Version != "" && o.Version == version {
			return true
		}
	}
	return false
}

// Rollback restores the snapshot: packages go back to their recorded
// versions (downgrading), packages recorded absent are removed, and holds
// are restored as they were. Packages already as recorded are left alone,
// so a repeated Rollback changes nothing. An action with rollback: none
// gets an error wrapping ErrUnsupported.
//
// A multi-version package (a kernel on dnf or zypper: see PackageDriver)
// is restored version by version: the version the step installed (the
// action's pin) is removed unless the snapshot recorded it, and recorded
// versions gone since (dnf's installonly_limit removes the oldest kernel
// when the step's makes one too many) are installed again, after the
// removal so that the limit does not take them again. Rollback never
// removes versions the step did not install: a version installed by
// someone else since fails the final check instead.
//
// Rollback never removes the running kernel. When a removal would (the
// node rebooted into the step's kernel, as a kernel step does), it changes
// nothing and returns an error wrapping ErrRunningKernel that names the
// kernel to boot first: removing the running kernel would leave the
// system without the modules it runs on, and dnf refuses it anyway
// (protect_running_kernel) while zypper does not. The operator boots the
// recorded kernel and rolls back again, which then removes the step's.
//
// Rollback ends by checking the result against the snapshot: every
// package recorded absent is absent, every other has exactly the
// recorded versions installed, intact, and held as recorded.
func (d *PackageDriver) Rollback(ctx context.Context, a plan.Action, s Snapshot) (Outcome, error) {
	t, err := d.target(a)
	if err != nil {
		return Outcome{}, err
	}
	if t.noUndo {
		return Outcome{}, fmt.Errorf("%s: action %q declares rollback: none: %w", d.b.name(), a.Name, ErrUnsupported)
	}
	data, err := d.snapshotData(s)
	if err != nil {
		return Outcome{}, err
	}
	if t.keepKernel {
		return d.holdKernel(ctx, a, t, data)
	}
	names := make([]string, 0, len(data.Packages))
	for _, e := range data.Packages {
		versions := e.Versions
		if !e.Absent {
			versions = append([]string{e.Version}, versions...)
		}
		nameKind, versionKind := d.b.idents()
		if err := nameKind.Check(e.Name); err != nil {
			return Outcome{}, fmt.Errorf("%s: snapshot holds an invalid package name: %w", d.b.name(), err)
		}
		for _, v := range versions {
			if err := versionKind.Check(v); err != nil {
				return Outcome{}, fmt.Errorf("%s: snapshot holds an invalid version of %s: %w", d.b.name(), e.Name, err)
			}
		}
		names = append(names, e.Name)
	}
	pinned := map[string]string{}
	for _, p := range t.pins {
		pinned[p.Name] = p.Version
	}
	held, err := d.held(ctx, names, false)
	if err != nil {
		return Outcome{}, err
	}
	var downgrade []pkgChange
	var remove, unhold []string
	// dropFirst are versions removed before the installs, dropLast after
	// them (when removing first would leave none installed).
	var dropFirst, dropLast []plan.PackagePin
	var removing []plan.PackagePin // every version the rollback removes
	var changed []ChangeItem
	for _, e := range data.Packages {
		st, err := d.b.installed(ctx, e.Name)
		if err != nil {
			return Outcome{}, err
		}
		touch := false
		switch {
		case e.Absent:
			if st.Present {
				touch = true
				remove = append(remove, e.Name)
				changed = append(changed, ChangeItem{Name: e.Name, From: st.String(), To: "absent"})
				for _, v := range st.Versions {
					removing = append(removing, plan.PackagePin{Name: e.Name, Version: v})
				}
			}
		case d.b.multiVersion() && (t.kernel || len(e.Versions) > 1 || len(st.Versions) > 1):
			want := e.want()
			var drop []plan.PackagePin
			if p, ok := pinned[e.Name]; ok && !slices.Contains(want, p) && slices.Contains(st.Versions, p) {
				drop = append(drop, plan.PackagePin{Name: e.Name, Version: p})
			}
			for _, v := range want {
				if !slices.Contains(st.Versions, v) {
					downgrade = append(downgrade, pkgChange{Pin: plan.PackagePin{Name: e.Name, Version: v}, From: st.String(), Present: st.Present})
					touch = true
				}
			}
			if len(drop) > 0 {
				touch = true
				removing = append(removing, drop...)
				if len(st.Versions) > len(drop) {
					dropFirst = append(dropFirst, drop...)
				} else {
					dropLast = append(dropLast, drop...)
				}
			}
			if touch {
				changed = append(changed, ChangeItem{Name: e.Name, From: st.String(), To: strings.Join(want, ",")})
			}
		case !st.at(e.Version):
			touch = true
			downgrade = append(downgrade, pkgChange{Pin: plan.PackagePin{Name: e.Name, Version: e.Version}, From: st.String(), Present: st.Present,
				Reinstall: st.brokenAt(e.Version)})
			changed = append(changed, ChangeItem{Name: e.Name, From: st.String(), To: e.Version})
		}
		if held[e.Name] && (!e.Held || touch && st.Present) {
			unhold = append(unhold, e.Name)
		}
	}
	if len(removing) > 0 {
		if err := d.refuseRunningKernel(ctx, removing, data); err != nil {
			return Outcome{}, err
		}
	}
	if len(unhold) > 0 {
		if err := d.b.unhold(ctx, unhold); err != nil {
			return Outcome{}, err
		}
	}
	if len(dropFirst) > 0 {
		if err := d.b.removeVersions(ctx, dropFirst); err != nil {
			return Outcome{}, err
		}
	}
	if len(downgrade) > 0 {
		if err := d.b.install(ctx, downgrade); err != nil {
			return Outcome{}, err
		}
	}
	if len(remove) > 0 {
		if err := d.b.remove(ctx, remove); err != nil {
			return Outcome{}, err
		}
	}
	if len(dropLast) > 0 {
		// The installs may have replaced them (a package that turned
		// out to be single-version): remove those still there.
		var still []plan.PackagePin
		for _, p := range dropLast {
			st, err := d.b.installed(ctx, p.Name)
			if err != nil {
				return Outcome{}, err
			}
			if slices.Contains(st.Versions, p.Version) {
				still = append(still, p)
			}
		}
		if len(still) > 0 {
			if err := d.b.removeVersions(ctx, still); err != nil {
				return Outcome{}, err
			}
		}
	}
	var rehold []plan.PackagePin
	for _, e := range data.Packages {
		if e.Held && !e.Absent && (!held[e.Name] || slices.Contains(unhold, e.Name)) {
			rehold = append(rehold, plan.PackagePin{Name: e.Name, Version: e.Version})
		}
	}
	if len(rehold) > 0 {
		if err := d.b.hold(ctx, rehold); err != nil {
			return Outcome{}, err
		}
	}
	reboot, why, err := d.b.rebootRequired(ctx)
	if err != nil {
		return Outcome{}, err
	}
	if err := d.restored(ctx, data); err != nil {
		return Outcome{}, err
	}
	out := Outcome{Changed: changed, RebootRequired: reboot || (t.kernel && len(changed) > 0)}
	if len(changed) == 0 {
		out.Summary = "already as recorded in the snapshot"
	} else {
		var parts []string
		for _, c := range changed {
			parts = append(parts, fmt.Sprintf("%s %s -> %s", c.Name, c.From, c.To))
		}
		out.Summary = "restored " + strings.Join(parts, ", ")
	}
	out.Summary += rebootNote(out.RebootRequired, why)
	return out, nil
}

// refuseRunningKernel returns an error wrapping ErrRunningKernel when one
// of the versions a rollback removes owns the running kernel.
func (d *PackageDriver) refuseRunningKernel(ctx context.Context, removing []plan.PackagePin, data pkgSnapshotData) error {
	k, err := d.b.runningKernel(ctx)
	if err != nil {
		return err
	}
	for _, p := range removing {
		if !k.owns(p.Name, p.Version) {
			continue
		}
		boot := "a kernel installed before the step"
		for _, e := range data.Packages {
			if e.Name == p.Name && !e.Absent {
				boot = p.Name + " " + strings.Join(e.want(), " or ")
			}
		}
		return fmt.Errorf("%s: restoring the snapshot removes %s %s, which is the running kernel (uname -r %s): the node booted into the kernel the step installed. Nothing was changed; boot %s, then roll back again: %w",
			d.b.name(), p.Name, p.Version, k.Release, boot, ErrRunningKernel)
	}
	return nil
}

// restored checks the packages are as the snapshot recorded them: absent,
// or installed intact in exactly the recorded versions, and held as
// recorded.
func (d *PackageDriver) restored(ctx context.Context, data pkgSnapshotData) error {
	names := make([]string, 0, len(data.Packages))
	for _, e := range data.Packages {
		names = append(names, e.Name)
	}
	held, err := d.held(ctx, names, false)
	if err != nil {
		return err
	}
	var bad []string
	for _, e := range data.Packages {
		st, err := d.b.installed(ctx, e.Name)
		if err != nil {
			return err
		}
		switch {
		case e.Absent && st.Present:
			bad = append(bad, fmt.Sprintf("%s is %s, recorded absent", e.Name, st))
		case e.Absent:
		case !st.Present || st.Broken != "" || !sameSet(st.Versions, e.want()):
			bad = append(bad, fmt.Sprintf("%s is %s, recorded %s", e.Name, st, strings.Join(e.want(), ",")))
		case held[e.Name] != e.Held:
			bad = append(bad, fmt.Sprintf("%s is held: %t, recorded %t", e.Name, held[e.Name], e.Held))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: rollback: not as the snapshot recorded: %s", d.b.name(), strings.Join(bad, "; "))
	}
	return nil
}

// sameSet reports whether a and b hold the same strings, repeats aside.
func sameSet(a, b []string) bool {
	for _, v := range a {
		if !slices.Contains(b, v) {
			return false
		}
	}
	for _, v := range b {
		if !slices.Contains(a, v) {
			return false
		}
	}
	return true
}

// LockError is the error a driver returns when another process holds the
// package manager's lock. It wraps ErrLocked and the tool's error; PID is 0
// when the tool did not say which process holds the lock.
type LockError struct {
	Tool    string // apt, dnf, zypper
	Command string
	Lock    string // the lock file, when the tool named it
	PID     int
	Holder  string // the holding process's name, when the tool said
	Err     error
}

func (e *LockError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = fmt.Sprintf("process %d", e.PID)
		if e.Holder != "" {
			who += " (" + e.Holder + ")"
		}
	}
	lock := ""
	if e.Lock != "" {
		lock = " " + e.Lock
	}
	return fmt.Sprintf("%s: %s: lock%s held by %s: %v", e.Tool, e.Command, lock, who, e.Err)
}

// Unwrap returns ErrLocked and the tool's error.
func (e *LockError) Unwrap() []error { return []error{ErrLocked, e.Err} }

func rebootNote(required bool, why string) string {
	switch {
	case !required:
		return ""
	case why == "":
		return "; reboot required"
	}
	return "; reboot required: " + why
}

// firstLine returns s's first non-empty line, trimmed.
func firstLine(s string) string {
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// snapshotData decodes a snapshot this driver took.
func (d *PackageDriver) snapshotData(s Snapshot) (pkgSnapshotData, error) {
	var data pkgSnapshotData
	if s.Driver != d.b.name() {
		return data, fmt.Errorf("%s: snapshot was taken by driver %q", d.b.name(), s.Driver)
	}
	if err := json.Unmarshal(s.Data, &data); err != nil {
		return data, fmt.Errorf("%s: decode snapshot: %w", d.b.name(), err)
	}
	if data.RunningKernel != "" {
		if err := checkRelease(data.RunningKernel); err != nil {
			return data, fmt.Errorf("%s: snapshot: %w", d.b.name(), err)
		}
	}
	return data, nil
}
