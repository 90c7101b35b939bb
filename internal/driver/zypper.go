package driver

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/drover-dev/drover/internal/plan"
)

// ZypperOptions configures the zypper driver.
type ZypperOptions struct {
	// Family is the node's os.family for PackageAction.Families; default
	// "suse".
	Family string
	// Update runs zypper refresh before Preflight and Apply.
	Update bool
	// Root is the directory holding the system to manage, "" for /: an
	// image being built, or a test's scratch root. zypper runs with
	// --root Root (its repositories, locks and caches are Root's) and rpm
	// with --root Root. A root is not the running system: the driver never
	// reports a reboot for it and does not run needs-rebooting.
	Root string
	// BootLoader sets the kernel to boot when a kernel rollback falls
	// back; nil means the one DetectBootLoader finds when it is needed.
	BootLoader BootLoader
}

// NewZypper returns the driver for SUSE. Pins are [EPOCH:]VERSION-RELEASE
// as rpm prints them. It uses rpm -q for the installed state, zypper
// search --details --match-exact for the available versions, zypper
// install --oldpackage NAME=VERSION for apply and rollback (downgrades
// allowed; a locked package is unlocked first, as zypper refuses to move
// it), addlock/removelock/locks for holds and zypper needs-rebooting (exit
// 102) for the reboot. zypper's exit codes: 7 (another zypper holds the
// lock, for every command, search and locks included: ErrLocked with its
// pid), 104 (not found: ErrUnavailable), 102/103 (success, reboot or
// zypper restart needed), 8 (the commit failed: ErrNoSpace when rpm said
// "needs N more space on the F filesystem"). rpm checks the disk space when
// zypper commits; no separate df check. testdata/zypper holds the real
// tools' output for each case (scripts/record-rpm.sh records it).
//
// zypper fails at once when another zypper holds the zypp lock (exit 7),
// so it never waits for one. Its locks (holds) are built in: no plugin to
// check for. Multiversion packages (zypp.conf's multiversion, by default
// whatever provides multiversion(kernel): the kernels): zypper install
// adds the version beside the installed ones, zypper remove NAME=VERSION
// removes one, and zypper, unlike dnf, removes the running kernel when
// asked (purge-kernels is what keeps it); PackageDriver's Rollback never
// asks.
func NewZypper(r Runner, opts ZypperOptions) *PackageDriver {
	if opts.Family == "" {
		opts.Family = "suse"
	}
	return &PackageDriver{b: &zypperBackend{r: r, opts: opts}, family: opts.Family, boot: bootLoaderFor(r, nil, opts.BootLoader)}
}

type zypperBackend struct {
	r    Runner
	opts ZypperOptions
}

// zypper exit codes (man zypper, EXIT CODES).
const (
	zypperExitZyppLocked     = 7
	zypperExitErrZypp        = 4 // a problem reported by libzypp: an unresolvable transaction under --non-interactive
	zypperExitInfNotFound    = 104
	zypperExitInfReboot      = 102
	zypperExitInfRestart     = 103
	zypperExitInfReposSkiped = 106
)

var (
	zypperLockRE = regexp.MustCompile(`System management is locked by the application with pid (\d+) \(([^)\n]*)\)`)
	// rpm's transaction check ("installing package X needs 4MB more space
	// on the /usr filesystem"), which zypper relays; the others are older
	// or rarer wordings.
	zypperNoSpaceRE = regexp.MustCompile(`needs \S+ more space on the \S+ filesystem|No space left on device|Not enough free space|not enough disk space`)
)

func (b *zypperBackend) name() string { return "zypper" }

func (b *zypperBackend) idents() (plan.Ident, plan.Ident) { return plan.RPMPackage, plan.RPMVersion }

func (b *zypperBackend) run(ctx context.Context, args ...string) (string, error) {
	if b.opts.Root != "" {
		args = append([]string{"--root", b.opts.Root}, args...)
	}
	args = append([]string{"--non-interactive"}, args...)
	stdout, stderr, err := b.r.Run(ctx, nil, "zypper", args...)
	code := exitCode(err)
	if err == nil || code == zypperExitInfReboot || code == zypperExitInfRestart || code == zypperExitInfReposSkiped {
		return string(stdout), nil
	}
	line := commandLine("zypper", args...)
	msg := string(stderr) + "\n" + string(stdout)
	if m := zypperLockRE.FindStringSubmatch(msg); m != nil || code == zypperExitZyppLocked {
		le := &LockError{Tool: "zypper", Command: line, Lock: "/run/zypp.pid", Err: err}
		if m != nil {
			le.PID, _ = strconv.Atoi(m[1])
			le.Holder = m[2]
		}
		return "", le
	}
	switch {
	case code == zypperExitInfNotFound:
		return "", cmdError(ErrUnavailable, "zypper: "+line, err, zypperNotFound(msg))
	case zypperNoSpaceRE.MatchString(msg):
		return "", cmdError(ErrNoSpace, "zypper: "+line, err, zypperNoSpaceRE.FindString(msg))
	}
	return "", cmdError(nil, "zypper: "+line, err, "")
}

// zypperNotFound picks zypper's "No provider of 'x' found." line.
func zypperNotFound(msg string) string {
	for l := range strings.SplitSeq(msg, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "No provider of") || strings.HasPrefix(l, "No matching items found") {
			return l
		}
	}
	return ""
}

func (b *zypperBackend) refresh(ctx context.Context, _ bool) (bool, error) {
	// Not always: zypper (autorefresh) refreshes expired metadata by itself.
	if !b.opts.Update {
		return false, nil
	}
	_, err := b.run(ctx, "refresh")
	return true, err
}

func (b *zypperBackend) installed(ctx context.Context, name string) (pkgState, error) {
	return rpmInstalled(ctx, b.r, "zypper", b.opts.Root, name)
}

// available runs zypper search, which takes the zypp lock like every
// zypper command: another zypper makes it fail with ErrLocked.
func (b *zypperBackend) available(ctx context.Context, name string) ([]string, error) {
	out, err := b.run(ctx, "search", "--details", "--match-exact", name)
	if errors.Is(err, ErrUnavailable) {
		return nil, nil // exit 104: "No matching items found."
	}
	if err != nil {
		return nil, err
	}
	vs, err := parseZypperSearch(out, name)
	if err != nil {
		return nil, fmt.Errorf("zypper: zypper search %s: %w", name, err)
	}
	return vs, nil
}

// zypperTable reads zypper's "a | b | c" tables: the header row and the
// data rows, each cell trimmed.
func zypperTable(out string) (header []string, rows [][]string) {
	for line := range strings.SplitSeq(out, "\n") {
		if !strings.Contains(line, "|") || strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		cells := strings.Split(line, "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if header == nil {
			header = cells
			continue
		}
		rows = append(rows, cells)
	}
	return header, rows
}

func column(header []string, name string) int {
	for i, h := range header {
		if h == name {
			return i
		}
	}
	return -1
}

// parseZypperSearch reads the package versions of name from zypper search
// --details (columns S | Name | Type | Version | Arch | Repository; zypper
// lists the newest first), oldest first as dnf lists them.
func parseZypperSearch(out, name string) ([]string, error) {
	header, rows := zypperTable(out)
	if header == nil {
		if strings.Contains(out, "No matching items found") {
			return nil, nil
		}
		return nil, fmt.Errorf("malformed zypper search output: no table in %q", firstLine(out))
	}
	cn, ct, cv := column(header, "Name"), column(header, "Type"), column(header, "Version")
	if cn < 0 || cv < 0 {
		return nil, fmt.Errorf("malformed zypper search output: header %q", strings.Join(header, "|"))
	}
	var vs []string
	for _, r := range rows {
		if len(r) != len(header) {
			return nil, fmt.Errorf("malformed zypper search row %q", strings.Join(r, "|"))
		}
		if r[cn] == name && (ct < 0 || r[ct] == "package") && !containsString(vs, r[cv]) {
			vs = append(vs, r[cv])
		}
	}
	slices.SortStableFunc(vs, rpmVerCmp)
	return vs, nil
}

func (b *zypperBackend) downloadSize(context.Context, plan.PackagePin) (int64, error) { return 0, nil }
func (b *zypperBackend) freeSpace(context.Context) (int64, error)                     { return -1, nil }

func (b *zypperBackend) install(ctx context.Context, changes []pkgChange) error {
	args := []string{"install", "--oldpackage"}
	for _, c := range changes {
		args = append(args, c.Pin.Name+"="+c.Pin.Version)
	}
	_, err := b.run(ctx, args...)
	return err
}

func (b *zypperBackend) remove(ctx context.Context, names []string) error {
	_, err := b.run(ctx, append([]string{"remove"}, names...)...)
	return err
}

func (b *zypperBackend) multiVersion() bool { return true }

// removeVersions runs zypper remove NAME=VERSION, which removes that
// version of a multiversion package and leaves the others.
func (b *zypperBackend) removeVersions(ctx context.Context, pins []plan.PackagePin) error {
	args := []string{"remove"}
	for _, p := range pins {
		args = append(args, p.Name+"="+p.Version)
	}
	_, err := b.run(ctx, args...)
	return err
}

func (b *zypperBackend) runningKernel(ctx context.Context) (runningKernel, error) {
	return rpmRunningKernel(ctx, b.r, "zypper", b.opts.Root)
}

func (b *zypperBackend) held(ctx context.Context, _ []string) (map[string]bool, error) {
	out, err := b.run(ctx, "locks")
	if err != nil {
		return nil, err
	}
	return parseZypperLocks(out), nil
}

// parseZypperLocks reads zypper locks (columns # | Name | Type |
// Repository, or "There are no package locks defined.").
func parseZypperLocks(out string) map[string]bool {
	held := map[string]bool{}
	header, rows := zypperTable(out)
	cn, ct := column(header, "Name"), column(header, "Type")
	if cn < 0 {
		return held
	}
	for _, r := range rows {
		if len(r) == len(header) && (ct < 0 || r[ct] == "package") {
			held[r[cn]] = true
		}
	}
	return held
}

func (b *zypperBackend) hold(ctx context.Context, pins []plan.PackagePin) error {
	_, err := b.run(ctx, append([]string{"addlock"}, pinNames(pins)...)...)
	return err
}

func (b *zypperBackend) unhold(ctx context.Context, names []string) error {
	_, err := b.run(ctx, append([]string{"removelock"}, names...)...)
	return err
}

// rebootRequired runs zypper needs-rebooting: exit 102 means a reboot is
// needed, 0 not. A Root is not the running system: no reboot.
func (b *zypperBackend) rebootRequired(ctx context.Context) (bool, string, error) {
	if b.opts.Root != "" {
		return false, "", nil
	}
	_, _, err := b.r.Run(ctx, nil, "zypper", "--non-interactive", "needs-rebooting")
	switch {
	case err == nil:
		return false, "", nil
	case exitCode(err) == zypperExitInfReboot:
		return true, "zypper needs-rebooting", nil
	}
	return false, "", cmdError(nil, "zypper: zypper --non-interactive needs-rebooting", err, "")
}

// simulate runs zypper's own rehearsal of the change, install
// --oldpackage --dry-run, with --xmlout: zypper resolves the transaction
// and changes nothing. It reads the install summary (to-install,
// to-upgrade, to-downgrade, to-remove). An unresolvable change (zypper
// prints its problem and exits 4 under --non-interactive) is an error
// wrapping ErrConflict.
func (b *zypperBackend) simulate(ctx context.Context, changes []pkgChange) ([]PlannedOp, []string, error) {
	args := []string{"--xmlout", "install", "--oldpackage", "--dry-run"}
	for _, c := range changes {
		args = append(args, c.Pin.Name+"="+c.Pin.Version)
	}
	out, err := b.run(ctx, args...)
	if err != nil {
		if exitCode(err) == zypperExitErrZypp {
			return nil, nil, fmt.Errorf("%w: %w", ErrConflict, err)
		}
		return nil, nil, err
	}
	planned, err := parseZypperSummary(out)
	if err != nil {
		return nil, nil, fmt.Errorf("zypper: %s: %w", commandLine("zypper", args...), err)
	}
	return planned, nil, nil
}

// parseZypperSummary reads the install-summary of zypper --xmlout.
func parseZypperSummary(out string) ([]PlannedOp, error) {
	var doc struct {
		Summary *struct {
			Lists []struct {
				XMLName   xml.Name
				Solvables []struct {
					Name       string `xml:"name,attr"`
					Edition    string `xml:"edition,attr"`
					EditionOld string `xml:"edition-old,attr"`
				} `xml:"solvable"`
			} `xml:",any"`
		} `xml:"install-summary"`
	}
	if err := xml.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("malformed XML output: %w", err)
	}
	if doc.Summary == nil {
		return nil, errors.New("no install-summary in the output")
	}
	ops := map[string]string{"to-install": "install", "to-reinstall": "install", "to-upgrade": "upgrade",
		"to-downgrade": "downgrade", "to-remove": "remove"}
	var planned []PlannedOp
	for _, l := range doc.Summary.Lists {
		op, ok := ops[l.XMLName.Local]
		if !ok {
			continue
		}
		for _, s := range l.Solvables {
			p := PlannedOp{Op: op, Name: s.Name, From: s.EditionOld, To: s.Edition}
			if op == "remove" {
				p.From, p.To = s.Edition, ""
			}
			planned = append(planned, p)
		}
	}
	return planned, nil
}
