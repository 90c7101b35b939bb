package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
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
	// refresh updates the package lists when the backend is configured to.
	refresh(ctx context.Context) error
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
	remove(ctx context.Context, names []string) error
	held(ctx context.Context, names []string) (map[string]bool, error)
	hold(ctx context.Context, pins []plan.PackagePin) error
	unhold(ctx context.Context, names []string) error
	// rebootRequired says whether the node needs a reboot, and why.
	rebootRequired(ctx context.Context) (bool, string, error)
}

// PackageDriver applies package and kernel actions through one package
// manager. Package actions move each pinned package to its exact version
// (operation upgrade leaves packages that are not installed alone, as
// apt-get --only-upgrade does; install installs them), optionally holding
// them there. Kernel actions install the kernel package (KernelAction.Package
// is required) and always require a reboot; their rollback removes a kernel
// package that was absent before, so the boot loader falls back to the
// previous kernel.
type PackageDriver struct {
	b      pkgBackend
	family string
}

var _ Driver = (*PackageDriver)(nil)

// Name is the package manager's name: "apt", "dnf" or "zypper".
func (d *PackageDriver) Name() string { return d.b.name() }

var (
	pkgNameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_:-]*$`)
	pkgVersionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_:~^-]*$`)
)

// pkgTarget is what an action asks of the package manager.
type pkgTarget struct {
	pins    []plan.PackagePin
	install bool // install absent packages (else leave them absent)
	hold    bool
	kernel  bool
	noUndo  bool // rollback: none
}

// target reads the pins of a package or kernel action for the driver's
// os family, rejecting names and versions that could be taken for options.
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
	default:
		return t, fmt.Errorf("%s: action %q is not a package or kernel action: %w", d.b.name(), a.Name, ErrUnsupported)
	}
	if len(t.pins) == 0 {
		return t, fmt.Errorf("%s: action %q pins no packages for os family %q", d.b.name(), a.Name, d.family)
	}
	for _, p := range t.pins {
		if !pkgNameRE.MatchString(p.Name) {
			return t, fmt.Errorf("%s: invalid package name %q", d.b.name(), p.Name)
		}
		if !pkgVersionRE.MatchString(p.Version) {
			return t, fmt.Errorf("%s: invalid version %q for package %s", d.b.name(), p.Version, p.Name)
		}
	}
	return t, nil
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

// Preflight checks every pinned version is available, that the download
// fits in the free space, and says what Apply would change. A node already
// at every pin gets Change.None.
func (d *PackageDriver) Preflight(ctx context.Context, a plan.Action) (Change, error) {
	t, err := d.target(a)
	if err != nil {
		return Change{}, err
	}
	if err := d.b.refresh(ctx); err != nil {
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
	if need > 0 {
		free, err := d.b.freeSpace(ctx)
		if err != nil {
			return Change{}, err
		}
		if free >= 0 && free < need {
			return Change{}, fmt.Errorf("%s: download needs %d bytes, %d free: %w", d.b.name(), need, free, ErrNoSpace)
		}
	}
	ch := Change{Summary: summarize("would change", changes, skipped), Items: changeItems(changes), None: len(changes) == 0}
	if ch.None && t.hold {
		held, err := d.b.held(ctx, pinNames(t.pins))
		if err != nil {
			return Change{}, err
		}
		for _, p := range t.pins {
			if !held[p.Name] && !slices.Contains(skipped, p.Name) {
				ch.None = false
				ch.Summary += "; would hold " + p.Name
			}
		}
	}
	return ch, nil
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
}

type pkgSnapshotEntry struct {
	Name string `json:"name"`
	// Version installed before; empty when Absent.
	Version string `json:"version,omitempty"`
	Absent  bool   `json:"absent,omitempty"`
	Held    bool   `json:"held,omitempty"`
	// Broken says why the package was not usable (e.g. half-installed
	// after an interrupted dpkg run): a restore that leaves it broken
	// does not match a snapshot of it intact.
	Broken string `json:"broken,omitempty"`
}

// Snapshot records each pinned package's installed version ("absent" when
// not installed) and whether it was held.
func (d *PackageDriver) Snapshot(ctx context.Context, a plan.Action) (Snapshot, error) {
	t, err := d.target(a)
	if err != nil {
		return Snapshot{}, err
	}
	held, err := d.b.held(ctx, pinNames(t.pins))
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
			if len(st.Versions) != 1 && !t.kernel {
				return Snapshot{}, fmt.Errorf("%s: %s has %d installed versions (%s); cannot record one to restore", d.b.name(), p.Name, len(st.Versions), st)
			}
			if len(st.Versions) > 0 {
				e.Version = st.Versions[len(st.Versions)-1]
			}
		}
		data.Packages = append(data.Packages, e)
		parts = append(parts, p.Name+" "+st.String())
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
	t, err := d.target(a)
	if err != nil {
		return Outcome{}, err
	}
	if err := d.b.refresh(ctx); err != nil {
		return Outcome{}, err
	}
	changes, skipped, err := d.survey(ctx, t)
	if err != nil {
		return Outcome{}, err
	}
	held, err := d.b.held(ctx, pinNames(t.pins))
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
	if len(changes) > 0 {
		if err := d.b.install(ctx, changes); err != nil {
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
	out := Outcome{Summary: summarize("changed", changes, skipped), Changed: changeItems(changes), RebootRequired: reboot || (t.kernel && len(changes) > 0)}
	if len(toHold) > 0 {
		out.Summary += "; held " + strings.Join(pinNames(toHold), ", ")
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
		held, err := d.b.held(ctx, pinNames(t.pins))
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

// Rollback restores the snapshot: packages go back to their recorded
// versions (downgrading), packages recorded absent are removed, and holds
// are restored as they were. Packages already as recorded are left alone,
// so a repeated Rollback changes nothing. An action with rollback: none
// gets an error wrapping ErrUnsupported.
func (d *PackageDriver) Rollback(ctx context.Context, a plan.Action, s Snapshot) (Outcome, error) {
	t, err := d.target(a)
	if err != nil {
		return Outcome{}, err
	}
	if t.noUndo {
		return Outcome{}, fmt.Errorf("%s: action %q declares rollback: none: %w", d.b.name(), a.Name, ErrUnsupported)
	}
	if s.Driver != d.b.name() {
		return Outcome{}, fmt.Errorf("%s: snapshot was taken by driver %q", d.b.name(), s.Driver)
	}
	var data pkgSnapshotData
	if err := json.Unmarshal(s.Data, &data); err != nil {
		return Outcome{}, fmt.Errorf("%s: decode snapshot: %w", d.b.name(), err)
	}
	names := make([]string, 0, len(data.Packages))
	for _, e := range data.Packages {
		if !pkgNameRE.MatchString(e.Name) || (!e.Absent && !pkgVersionRE.MatchString(e.Version)) {
			return Outcome{}, fmt.Errorf("%s: snapshot holds invalid package %q version %q", d.b.name(), e.Name, e.Version)
		}
		names = append(names, e.Name)
	}
	held, err := d.b.held(ctx, names)
	if err != nil {
		return Outcome{}, err
	}
	var downgrade []pkgChange
	var remove, unhold []string
	var changed []ChangeItem
	for _, e := range data.Packages {
		st, err := d.b.installed(ctx, e.Name)
		if err != nil {
			return Outcome{}, err
		}
		switch {
		case e.Absent && st.Present:
			remove = append(remove, e.Name)
			changed = append(changed, ChangeItem{Name: e.Name, From: st.String(), To: "absent"})
		case !e.Absent && !st.at(e.Version):
			downgrade = append(downgrade, pkgChange{Pin: plan.PackagePin{Name: e.Name, Version: e.Version}, From: st.String(), Present: st.Present,
				Reinstall: st.brokenAt(e.Version)})
			changed = append(changed, ChangeItem{Name: e.Name, From: st.String(), To: e.Version})
		}
		if held[e.Name] && (!e.Held || st.Present && (e.Absent || !st.at(e.Version))) {
			unhold = append(unhold, e.Name)
		}
	}
	if len(unhold) > 0 {
		if err := d.b.unhold(ctx, unhold); err != nil {
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
