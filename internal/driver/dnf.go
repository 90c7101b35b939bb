package driver

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/drover-dev/drover/internal/plan"
)

// DNFOptions configures the dnf driver.
type DNFOptions struct {
	// Family is the node's os.family for PackageAction.Families; default
	// "rhel".
	Family string
	// Update runs dnf makecache before Preflight and Apply.
	Update bool
	// Command is "dnf" (default) or "yum" on hosts without dnf.
	Command string
	// Root is the directory holding the system to manage, "" for /: an
	// image being built, or a test's scratch root. dnf runs with
	// --installroot=Root (which reads Root's /etc/dnf/dnf.conf and
	// /etc/yum.repos.d when they exist) and rpm with --root Root. A root
	// is not the running system: the driver never reports a reboot for
	// it and does not run needs-restarting.
	Root string
	// BootLoader sets the kernel to boot when a kernel rollback falls
	// back; nil means the one DetectBootLoader finds when it is needed.
	BootLoader BootLoader
}

// NewDNF returns the driver for the RHEL family. Pins are written as rpm
// prints them: VERSION-RELEASE, with EPOCH: in front when the package has
// a non-zero epoch ("1:1.20.1-14.el9_2.1"). It uses rpm -q for the
// installed state, dnf list --showduplicates for availability, dnf install
// or dnf downgrade NAME-VERSION (chosen by rpm version order), dnf
// versionlock for holds and needs-restarting -r (exit 1: reboot required;
// not installed: no reboot). dnf checks disk space itself in its
// transaction test; its "needs N more space" errors wrap ErrNoSpace.
//
// Holds need dnf's versionlock plugin (python3-dnf-plugin-versionlock;
// yum-plugin-versionlock for RHEL 7's yum). On a host without it nothing
// is held, and an action with hold: true fails Preflight and Apply with
// ErrUnsupported before anything changes.
//
// Installonly packages (dnf's installonlypkgs: by default kernel and
// whatever provides installonlypkg(kernel), installonlypkg(kernel-module)
// or multiversion(kernel), as RHEL's kernel-core, kernel-modules and
// kernel-devel do): dnf install and dnf downgrade add the version beside
// the installed ones, and remove the oldest (not the running kernel) when
// that makes more than installonly_limit (RHEL: 3). dnf remove NAME takes
// every version; the driver removes one with dnf remove NAME-VERSION, and
// dnf refuses to remove the running kernel (protect_running_kernel).
// PackageDriver's Snapshot and Rollback keep track of the versions.
//
// Locks: dnf 4 keeps pid files (/var/lib/dnf/rpmdb_lock.pid,
// /var/cache/dnf/metadata_lock.pid) and, by default, waits for their
// holder without a time limit, printing "Waiting for process with pid N to
// finish." once, until the runner's timeout kills it: in the middle of its
// transaction, should the lock free just before. So the commands that
// change the system (install, downgrade, remove, versionlock add and
// delete) run with --setopt=exit_on_lock=True: another dnf, yum or
// PackageKit holding the lock makes them fail at once (dnf: exit 200,
// "RPMDB already locked by N" and the holder's name; yum: "Existing lock
// /var/run/yum.pid: another copy is running as pid N"), which is ErrLocked
// with the holder's pid. The reads (rpm -q, dnf list, versionlock list,
// makecache) do not take the rpm database's lock and run while another
// dnf installs; should one wait for the metadata lock, the waiting line
// becomes ErrLocked when the runner's timeout stops it. dnf names no lock
// file. testdata/dnf holds the real tools' output for each case
// (scripts/record-rpm.sh records it).
func NewDNF(r Runner, opts DNFOptions) *PackageDriver {
	if opts.Family == "" {
		opts.Family = "rhel"
	}
	if opts.Command == "" {
		opts.Command = "dnf"
	}
	return &PackageDriver{b: &dnfBackend{r: r, opts: opts}, family: opts.Family, boot: bootLoaderFor(r, nil, opts.BootLoader)}
}

type dnfBackend struct {
	r    Runner
	opts DNFOptions
}

func (b *dnfBackend) name() string { return "dnf" }

func (b *dnfBackend) idents() (plan.Ident, plan.Ident) { return plan.RPMPackage, plan.RPMVersion }

var (
	dnfWaitRE      = regexp.MustCompile(`Waiting for process with pid (\d+) to finish`)
	dnfExitLockRE  = regexp.MustCompile(`(?:RPMDB|metadata|cachedir|log) already locked by (\d+)`)
	dnfLockOwnerRE = regexp.MustCompile(`The application with PID \d+ is: (\S+)`)
	yumLockRE      = regexp.MustCompile(`(?s)Another app is currently holding the yum lock.*?The other application is: (\S+).*?pid: (\d+)`)
	// yum with exit_on_lock (written from yum 3.4's yummain.py, not
	// recorded: no yum here): the lock error, then "Another app is
	// currently holding the yum lock; exiting as configured by
	// exit_on_lock".
	yumExitLockRE   = regexp.MustCompile(`Existing lock (\S+): another copy is running as pid (\d+)`)
	dnfUnavailRE    = regexp.MustCompile(`No match for argument: \S+|Unable to find a match: [^\n]+|No matching Packages to list|No package \S+ available`)
	dnfNoSpaceRE    = regexp.MustCompile(`needs \S+ more space on the \S+ filesystem|Not enough free space in \S+|No space left on device`)
	dnfNoVersionlck = regexp.MustCompile(`No such command: versionlock`)
)

func (b *dnfBackend) run(ctx context.Context, args ...string) (string, error) {
	if b.opts.Root != "" {
		args = append([]string{"--installroot=" + b.opts.Root}, args...)
	}
	stdout, stderr, err := b.r.Run(ctx, nil, b.opts.Command, args...)
	if err == nil {
		return string(stdout), nil
	}
	return string(stdout), b.classify(commandLine(b.opts.Command, args...), stdout, stderr, err)
}

// classify turns a failed dnf run into the driver's errors: lock,
// unavailable version, no space, no versionlock plugin.
func (b *dnfBackend) classify(line string, stdout, stderr []byte, err error) error {
	msg := string(stderr) + "\n" + string(stdout)
	if m := dnfExitLockRE.FindStringSubmatch(msg); m != nil {
		le := &LockError{Tool: "dnf", Command: line, Err: err}
		le.PID, _ = strconv.Atoi(m[1])
		if o := dnfLockOwnerRE.FindStringSubmatch(msg); o != nil {
			le.Holder = o[1]
		}
		return le
	}
	if m := dnfWaitRE.FindStringSubmatch(msg); m != nil {
		pid, _ := strconv.Atoi(m[1])
		return &LockError{Tool: "dnf", Command: line, PID: pid, Err: err}
	}
	if m := yumLockRE.FindStringSubmatch(msg); m != nil {
		pid, _ := strconv.Atoi(m[2])
		return &LockError{Tool: "dnf", Command: line, Lock: "/var/run/yum.pid", PID: pid, Holder: m[1], Err: err}
	}
	if m := yumExitLockRE.FindStringSubmatch(msg); m != nil {
		pid, _ := strconv.Atoi(m[2])
		return &LockError{Tool: "dnf", Command: line, Lock: m[1], PID: pid, Err: err}
	}
	switch {
	case dnfNoSpaceRE.MatchString(msg):
		return cmdError(ErrNoSpace, "dnf: "+line, err, dnfNoSpaceRE.FindString(msg))
	case dnfUnavailRE.MatchString(msg):
		return cmdError(ErrUnavailable, "dnf: "+line, err, dnfUnavailRE.FindString(msg))
	case dnfNoVersionlck.MatchString(msg):
		return cmdError(ErrUnsupported, "dnf: "+line, err, "dnf's versionlock plugin is not installed (install python3-dnf-plugin-versionlock; yum-plugin-versionlock for RHEL 7's yum)")
	}
	return cmdError(nil, "dnf: "+line, err, "")
}

// change runs a dnf command that changes the system, failing at once
// (ErrLocked) instead of waiting when another process holds the lock.
func (b *dnfBackend) change(ctx context.Context, args ...string) (string, error) {
	return b.run(ctx, append([]string{"--setopt=exit_on_lock=True"}, args...)...)
}

func (b *dnfBackend) refresh(ctx context.Context, _ bool) (bool, error) {
	// Not always: dnf refreshes expired metadata by itself.
	if !b.opts.Update {
		return false, nil
	}
	_, err := b.run(ctx, "makecache")
	return true, err
}

func (b *dnfBackend) installed(ctx context.Context, name string) (pkgState, error) {
	return rpmInstalled(ctx, b.r, "dnf", b.opts.Root, name)
}

const rpmQueryFormat = `%{EPOCH}:%{VERSION}-%{RELEASE}\n`

// rpmInstalled runs rpm -q --qf EPOCH:VERSION-RELEASE for one package, in
// root ("" for /).
func rpmInstalled(ctx context.Context, r Runner, tool, root, name string) (pkgState, error) {
	var args []string
	if root != "" {
		args = []string{"--root", root}
	}
	args = append(args, "-q", "--qf", rpmQueryFormat, name)
	stdout, _, err := r.Run(ctx, nil, "rpm", args...)
	if err != nil {
		if exitCode(err) == 1 && strings.Contains(string(stdout), "is not installed") {
			return pkgState{}, nil
		}
		return pkgState{}, cmdError(nil, tool+": "+commandLine("rpm", args...), err, "")
	}
	st, err := parseRPMQuery(string(stdout))
	if err != nil {
		return pkgState{}, fmt.Errorf("%s: rpm -q %s: %w", tool, name, err)
	}
	return st, nil
}

// parseRPMQuery reads "EPOCH:VERSION-RELEASE" lines ("(none)" for no
// epoch); several lines for a package installed in several versions
// (rpm -q lists them in the order they were installed), or for several
// architectures. Versions come back once each, oldest first, as rpm tools
// print them: without an epoch of 0.
func parseRPMQuery(out string) (pkgState, error) {
	var st pkgState
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		epoch, vr, ok := strings.Cut(line, ":")
		if !ok || !strings.Contains(vr, "-") || strings.HasPrefix(vr, "-") || strings.HasSuffix(vr, "-") {
			return pkgState{}, fmt.Errorf("malformed rpm -q line %q", line)
		}
		switch epoch {
		case "(none)", "0":
		default:
			if _, err := strconv.ParseUint(epoch, 10, 32); err != nil {
				return pkgState{}, fmt.Errorf("malformed rpm -q line %q: epoch %q", line, epoch)
			}
			vr = epoch + ":" + vr
		}
		st.Present = true
		st.Versions = append(st.Versions, vr)
	}
	if !st.Present {
		return pkgState{}, errors.New("rpm -q printed nothing")
	}
	slices.SortFunc(st.Versions, rpmVerCmp)
	st.Versions = slices.Compact(st.Versions)
	return st, nil
}

func (b *dnfBackend) available(ctx context.Context, name string) ([]string, error) {
	out, err := b.run(ctx, "list", "--showduplicates", name)
	if errors.Is(err, ErrUnavailable) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	vs, err := parseDNFList(out, name)
	if err != nil {
		return nil, fmt.Errorf("dnf: dnf list %s: %w", name, err)
	}
	return vs, nil
}

// parseDNFList reads the versions of name from dnf list output ("NAME.ARCH
// VERSION REPO" rows under "Installed Packages" and "Available Packages").
// Without a terminal dnf 4 lets a long NAME.ARCH overflow its column; yum,
// and dnf on a terminal, wrap it onto a line of its own.
func parseDNFList(out, name string) ([]string, error) {
	var vs []string
	var pending string
	rows := 0
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if pending != "" {
			f = append([]string{pending}, f...)
			pending = ""
		}
		switch {
		case len(f) == 0:
			continue
		case len(f) == 1 && strings.Contains(f[0], ".") && !strings.HasSuffix(f[0], ":"):
			pending = f[0]
			continue
		case len(f) != 3:
			continue // headers, "Last metadata expiration check: ..."
		}
		n, _, ok := cutLast(f[0], ".")
		if !ok {
			continue
		}
		rows++
		if n == name && !containsString(vs, f[1]) {
			vs = append(vs, f[1])
		}
	}
	if rows == 0 && strings.TrimSpace(out) != "" && !strings.Contains(out, "Packages") {
		return nil, fmt.Errorf("malformed dnf list output %q", firstLine(out))
	}
	return vs, nil
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (b *dnfBackend) downloadSize(context.Context, plan.PackagePin) (int64, error) { return 0, nil }
func (b *dnfBackend) freeSpace(context.Context) (int64, error)                     { return -1, nil }

// install runs one dnf install for new and newer versions and one dnf
// downgrade for older ones.
func (b *dnfBackend) install(ctx context.Context, changes []pkgChange) error {
	up, down := splitByRPMOrder(changes)
	if len(up) > 0 {
		if _, err := b.change(ctx, append([]string{"install", "-y"}, up...)...); err != nil {
			return err
		}
	}
	if len(down) > 0 {
		if _, err := b.change(ctx, append([]string{"downgrade", "-y"}, down...)...); err != nil {
			return err
		}
	}
	return nil
}

// splitByRPMOrder returns NAME-VERSION specs to install (absent or newer)
// and to downgrade (every installed version newer than the pin).
func splitByRPMOrder(changes []pkgChange) (up, down []string) {
	for _, c := range changes {
		spec := c.Pin.Name + "-" + c.Pin.Version
		older := c.Present
		for v := range strings.SplitSeq(strings.TrimSuffix(c.From, ")"), ",") {
			v, _, _ = strings.Cut(v, " ")
			if rpmVerCmp(c.Pin.Version, v) >= 0 {
				older = false
			}
		}
		if older {
			down = append(down, spec)
		} else {
			up = append(up, spec)
		}
	}
	return up, down
}

func (b *dnfBackend) remove(ctx context.Context, names []string) error {
	_, err := b.change(ctx, append([]string{"remove", "-y"}, names...)...)
	return err
}

func (b *dnfBackend) multiVersion() bool { return true }

// removeVersions runs dnf remove NAME-VERSION, which removes that version
// of an installonly package and leaves the others.
func (b *dnfBackend) removeVersions(ctx context.Context, pins []plan.PackagePin) error {
	args := []string{"remove", "-y"}
	for _, p := range pins {
		args = append(args, p.Name+"-"+p.Version)
	}
	_, err := b.change(ctx, args...)
	return err
}

func (b *dnfBackend) runningKernel(ctx context.Context) (runningKernel, error) {
	return rpmRunningKernel(ctx, b.r, "dnf", b.opts.Root)
}

// rpmRunningKernel asks rpm which packages own the running kernel's
// /boot/vmlinuz-R and /lib/modules/R (R from uname -r), as dnf finds the
// kernel it protects. A root is not the running system: no kernel.
func rpmRunningKernel(ctx context.Context, r Runner, tool, root string) (runningKernel, error) {
	if root != "" {
		return runningKernel{}, nil
	}
	stdout, _, err := r.Run(ctx, nil, "uname", "-r")
	if err != nil {
		return runningKernel{}, cmdError(nil, tool+": uname -r", err, "")
	}
	k := runningKernel{Release: strings.TrimSpace(string(stdout))}
	if k.Release == "" || strings.ContainsAny(k.Release, "/ \n") {
		return runningKernel{}, fmt.Errorf("%s: uname -r: malformed release %q", tool, k.Release)
	}
	args := []string{"-qf", "--qf", `%{NAME} ` + rpmQueryFormat, "/boot/vmlinuz-" + k.Release, "/lib/modules/" + k.Release}
	stdout, _, err = r.Run(ctx, nil, "rpm", args...)
	// rpm exits 1 when a path is missing or owned by no package; it
	// prints the owners of the others.
	if err != nil && exitCode(err) <= 0 {
		return runningKernel{}, cmdError(nil, tool+": "+commandLine("rpm", args...), err, "")
	}
	for line := range strings.SplitSeq(string(stdout), "\n") {
		name, evr, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || plan.RPMPackage.Check(name) != nil {
			continue // "file /boot/vmlinuz-R is not owned by any package"
		}
		st, err := parseRPMQuery(evr)
		if err != nil {
			continue
		}
		p := plan.PackagePin{Name: name, Version: st.Versions[0]}
		if !slices.Contains(k.Owners, p) {
			k.Owners = append(k.Owners, p)
		}
	}
	return k, nil
}

// held lists dnf versionlock entries. Without the plugin it returns an
// error wrapping ErrUnsupported (nothing is held).
func (b *dnfBackend) held(ctx context.Context, names []string) (map[string]bool, error) {
	out, err := b.run(ctx, "versionlock", "list")
	if err != nil {
		return nil, err
	}
	held := map[string]bool{}
	for _, n := range parseVersionlockList(out) {
		held[n] = true
	}
	return held, nil
}

// parseVersionlockList returns the locked package names of dnf
// versionlock list: dnf 4 prints "NAME-EPOCH:VERSION-RELEASE.*", dnf 5
// "Package name: NAME".
func parseVersionlockList(out string) []string {
	var names []string
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimSpace(line)
		if n, ok := strings.CutPrefix(line, "Package name:"); ok {
			names = append(names, strings.TrimSpace(n))
			continue
		}
		spec, ok := strings.CutSuffix(line, ".*")
		if !ok || strings.ContainsAny(spec, " \t") {
			continue
		}
		spec = strings.TrimPrefix(spec, "!") // excluded versions
		rest, _, ok1 := cutLast(spec, "-")
		n, _, ok2 := cutLast(rest, "-")
		if ok1 && ok2 && n != "" {
			names = append(names, n)
		}
	}
	return names
}

func (b *dnfBackend) hold(ctx context.Context, pins []plan.PackagePin) error {
	args := []string{"versionlock", "add"}
	for _, p := range pins {
		args = append(args, p.Name+"-"+p.Version)
	}
	_, err := b.change(ctx, args...)
	return err
}

func (b *dnfBackend) unhold(ctx context.Context, names []string) error {
	_, err := b.change(ctx, append([]string{"versionlock", "delete"}, names...)...)
	return err
}

// rebootRequired runs needs-restarting -r: exit 1 means a reboot is
// required; a host without it (dnf-utils) reports no reboot, as does a
// Root, which is not the running system.
func (b *dnfBackend) rebootRequired(ctx context.Context) (bool, string, error) {
	if b.opts.Root != "" {
		return false, "", nil
	}
	stdout, _, err := b.r.Run(ctx, nil, "needs-restarting", "-r")
	switch {
	case err == nil:
		return false, "", nil
	case isNotFound(err):
		return false, "", nil
	case exitCode(err) == 1:
		return true, needsRestartingReason(string(stdout)), nil
	}
	return false, "", cmdError(nil, "dnf: needs-restarting -r", err, "")
}

// needsRestartingReason lists the "  * kernel" items of needs-restarting -r.
func needsRestartingReason(out string) string {
	var items []string
	for line := range strings.SplitSeq(out, "\n") {
		if it, ok := strings.CutPrefix(strings.TrimSpace(line), "* "); ok {
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		return "needs-restarting -r"
	}
	return "updated since boot: " + strings.Join(items, ", ")
}

// rpmVerCmp compares two [EPOCH:]VERSION-RELEASE strings as rpm does
// (rpmvercmp on epoch, version, then release): -1, 0 or 1.
func rpmVerCmp(a, b string) int {
	ea, va, ra := splitEVR(a)
	eb, vb, rb := splitEVR(b)
	if c := rpmSegCmp(ea, eb); c != 0 {
		return c
	}
	if c := rpmSegCmp(va, vb); c != 0 {
		return c
	}
	return rpmSegCmp(ra, rb)
}

func splitEVR(s string) (e, v, r string) {
	e = "0"
	if i := strings.IndexByte(s, ':'); i >= 0 {
		e, s = s[:i], s[i+1:]
	}
	v, r, _ = cutLast(s, "-")
	return e, v, r
}

// rpmSegCmp is rpmvercmp: alternating runs of digits and letters compared
// numerically and lexically; '~' sorts before everything, '^' after the
// end of a version but before anything else.
func rpmSegCmp(a, b string) int {
	if a == b {
		return 0
	}
	sep := func(r byte) bool {
		return !(r >= '0' && r <= '9') && !unicode.IsLetter(rune(r)) && r != '~' && r != '^'
	}
	for len(a) > 0 || len(b) > 0 {
		for len(a) > 0 && sep(a[0]) {
			a = a[1:]
		}
		for len(b) > 0 && sep(b[0]) {
			b = b[1:]
		}
		// tilde sorts before everything
		if strings.HasPrefix(a, "~") || strings.HasPrefix(b, "~") {
			if !strings.HasPrefix(a, "~") {
				return 1
			}
			if !strings.HasPrefix(b, "~") {
				return -1
			}
			a, b = a[1:], b[1:]
			continue
		}
		// caret sorts after the end but before anything else
		if strings.HasPrefix(a, "^") || strings.HasPrefix(b, "^") {
			switch {
			case len(a) == 0:
				return -1
			case len(b) == 0:
				return 1
			case !strings.HasPrefix(a, "^"):
				return 1
			case !strings.HasPrefix(b, "^"):
				return -1
			}
			a, b = a[1:], b[1:]
			continue
		}
		if len(a) == 0 || len(b) == 0 {
			break
		}
		isNum := a[0] >= '0' && a[0] <= '9'
		span := func(s string) (string, string) {
			i := 0
			for i < len(s) && ((isNum && s[i] >= '0' && s[i] <= '9') || (!isNum && unicode.IsLetter(rune(s[i])))) {
				i++
			}
			return s[:i], s[i:]
		}
		var sa, sb string
		sa, a = span(a)
		sb, b = span(b)
		if sb == "" {
			if isNum {
				return 1
			}
			return -1
		}
		if isNum {
			sa, sb = strings.TrimLeft(sa, "0"), strings.TrimLeft(sb, "0")
			if len(sa) != len(sb) {
				if len(sa) > len(sb) {
					return 1
				}
				return -1
			}
		}
		if c := strings.Compare(sa, sb); c != 0 {
			return c
		}
	}
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return -1
	}
	return 1
}

// simulate runs dnf's own rehearsal of the change, install (and
// downgrade) with --assumeno: dnf resolves the transaction, prints it
// and answers no, changing nothing. It reads the transaction table; an
// unresolvable change ("Problem: ...") is an error wrapping ErrConflict.
func (b *dnfBackend) simulate(ctx context.Context, changes []pkgChange) ([]PlannedOp, []string, error) {
	up, down := splitByRPMOrder(changes)
	var planned []PlannedOp
	for _, verb := range []struct {
		name  string
		specs []string
	}{{"install", up}, {"downgrade", down}} {
		if len(verb.specs) == 0 {
			continue
		}
		args := append([]string{"--setopt=exit_on_lock=True", verb.name, "--assumeno"}, verb.specs...)
		if b.opts.Root != "" {
			args = append([]string{"--installroot=" + b.opts.Root}, args...)
		}
		stdout, stderr, err := b.r.Run(ctx, nil, b.opts.Command, args...)
		out := string(stdout) + "\n" + string(stderr)
		if err != nil && !strings.Contains(out, "Operation aborted") {
			if p := dnfProblem(out); p != "" {
				return nil, nil, cmdError(ErrConflict, "dnf: "+commandLine(b.opts.Command, args...), err, p)
			}
			return nil, nil, b.classify(commandLine(b.opts.Command, args...), stdout, stderr, err)
		}
		planned = append(planned, parseDNFTransaction(string(stdout))...)
	}
	return planned, nil, nil
}

// dnfProblem returns dnf's explanation of a transaction it cannot
// resolve, or "".
func dnfProblem(out string) string {
	var parts []string
	for line := range strings.SplitSeq(out, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "Problem") || strings.HasPrefix(t, "- ") {
			parts = append(parts, strings.TrimPrefix(t, "- "))
		}
	}
	return strings.Join(parts, "; ")
}

// dnfSections maps dnf's transaction table headings to operations.
var dnfSections = map[string]string{
	"Installing:": "install", "Installing dependencies:": "install", "Installing weak dependencies:": "install",
	"Upgrading:": "upgrade", "Downgrading:": "downgrade", "Reinstalling:": "install",
	"Removing:": "remove", "Removing dependent packages:": "remove", "Removing unused dependencies:": "remove",
	"Installing group/module packages:": "install",
}

// parseDNFTransaction reads the table dnf prints before asking:
//
//	 Package            Arch      Version     Repository        Size
//	Upgrading:
//	 drover-testsvc     noarch    1.1-1       drover-test       6.9 k
//
// A long package name is printed on a line of its own, its columns on
// the next.
func parseDNFTransaction(out string) []PlannedOp {
	var planned []PlannedOp
	op, carry := "", ""
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if o, ok := dnfSections[strings.TrimSpace(line)]; ok && !strings.HasPrefix(line, " ") {
			op, carry = o, ""
			continue
		}
		if op == "" {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			op = "" // the table ended (Transaction Summary, a rule)
			continue
		}
		f := strings.Fields(line)
		if carry != "" {
			f = append([]string{carry}, f...)
			carry = ""
		}
		switch {
		case len(f) == 1:
			carry = f[0]
			continue
		case len(f) < 3:
			continue
		}
		p := PlannedOp{Op: op, Name: f[0]}
		if op == "remove" {
			p.From = f[2]
		} else {
			p.To = f[2]
		}
		planned = append(planned, p)
	}
	return planned
}
