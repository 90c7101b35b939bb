package driver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/drover-dev/drover/internal/plan"
)

// AptOptions configures the apt driver.
type AptOptions struct {
	// Family is the node's os.family, choosing PackageAction.Families
	// entries ("debian" or "ubuntu"); default "debian".
	Family string
	// Update runs apt-get update before Preflight and Apply.
	Update bool
	// FS reads /var/run/reboot-required*; nil means the real files.
	FS FileSystem
	// BootLoader sets the kernel to boot when a kernel rollback falls
	// back; nil means the one DetectBootLoader finds when it is needed.
	BootLoader BootLoader
	// PolicyRCD is the policy-rc.d path invoke-rc.d and
	// deb-systemd-invoke consult (default /usr/sbin/policy-rc.d), and
	// DeferredLog where the one ApplyDeferred installs records what it
	// held back (default /run/drover-deferred-restarts). Tests point
	// them elsewhere.
	PolicyRCD, DeferredLog string
}

// NewApt returns the driver for Debian and Ubuntu: dpkg-query for the
// installed state, apt-cache policy/show for availability and size, df for
// free space in /var/cache/apt/archives, apt-get install NAME=VERSION with
// --allow-downgrades for apply and rollback, apt-mark for holds, and
// /var/run/reboot-required plus needrestart -b (when installed) for the
// reboot. Every apt-get runs with DEBIAN_FRONTEND=noninteractive, keeps
// changed configuration files (--force-confdef --force-confold) and sets
// NEEDRESTART_MODE=l so needrestart's apt hook lists but never restarts
// services (restarts are separate service-restart actions).
//
// Kernels: Debian and Ubuntu install each kernel version as a package of
// its own (linux-image-6.1.0-25-amd64), so apt never has two versions of
// one package. A kernel action naming such a package installs it, and its
// rollback removes it, unless it is the running kernel (dpkg-query -S
// /boot/vmlinuz-$(uname -r)): see PackageDriver.Rollback. A package
// action upgrading a metapackage (linux-image-amd64, linux-generic)
// installs, as a dependency, the new version's package beside the old;
// its rollback downgrades the metapackage, which does not remove that new
// package (apt leaves it installed, and APT::NeverAutoRemove keeps
// autoremove off the newest kernels), so the boot loader still defaults
// to the new kernel, the newest installed. The snapshot records only the
// pinned packages: pin the versioned kernel package in a kernel action
// to have rollback remove it.
func NewApt(r Runner, opts AptOptions) *PackageDriver {
	if opts.Family == "" {
		opts.Family = "debian"
	}
	if opts.FS == nil {
		opts.FS = OSFileSystem{}
	}
	if opts.PolicyRCD == "" {
		opts.PolicyRCD = "/usr/sbin/policy-rc.d"
	}
	if opts.DeferredLog == "" {
		opts.DeferredLog = "/run/drover-deferred-restarts"
	}
	return &PackageDriver{b: &aptBackend{r: r, opts: opts}, family: opts.Family, boot: bootLoaderFor(r, opts.FS, opts.BootLoader)}
}

type aptBackend struct {
	r    Runner
	opts AptOptions
}

var aptEnv = []string{"DEBIAN_FRONTEND=noninteractive", "NEEDRESTART_MODE=l"}

const aptArchives = "/var/cache/apt/archives"

func (b *aptBackend) name() string { return "apt" }

func (b *aptBackend) idents() (plan.Ident, plan.Ident) { return plan.DebianPackage, plan.DebianVersion }

// run runs a command and turns apt's and dpkg's complaints into the
// driver's sentinel errors.
func (b *aptBackend) run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	stdout, stderr, err := b.r.Run(ctx, env, name, args...)
	if err == nil {
		return string(stdout), nil
	}
	line := commandLine(name, args...)
	msg := string(stderr) + "\n" + string(stdout)
	if lk, ok := parseAptLock(msg); ok {
		lk.Tool, lk.Command, lk.Err = "apt", line, err
		return "", lk
	}
	switch {
	case strings.Contains(msg, aptDpkgInterrupted):
		return "", cmdError(errDpkgInterrupted, "apt: "+line, err, "")
	case strings.Contains(msg, "You don't have enough free space"), strings.Contains(msg, "No space left on device"):
		return "", cmdError(ErrNoSpace, "apt: "+line, err, "")
	case aptUnavailableRE.MatchString(msg):
		return "", cmdError(ErrUnavailable, "apt: "+line, err, aptUnavailableRE.FindString(msg))
	}
	return "", cmdError(nil, "apt: "+line, err, "")
}

var aptUnavailableRE = regexp.MustCompile(`Version '[^']*' for '[^']*' was not found|Unable to locate package \S+|Package '?[^' ]+'? has no installation candidate`)

func (b *aptBackend) refresh(ctx context.Context, always bool) (bool, error) {
	if !b.opts.Update && !always {
		return false, nil
	}
	_, err := b.run(ctx, aptEnv, "apt-get", "update")
	return true, err
}

const dpkgQueryFormat = "-f=${db:Status-Status} ${Version}\\n"

func (b *aptBackend) installed(ctx context.Context, name string) (pkgState, error) {
	stdout, stderr, err := b.r.Run(ctx, nil, "dpkg-query", "-W", dpkgQueryFormat, name)
	if err != nil {
		if exitCode(err) == 1 && strings.Contains(string(stderr), "no packages found matching") {
			return pkgState{}, nil
		}
		return pkgState{}, cmdError(nil, "apt: "+commandLine("dpkg-query", "-W", dpkgQueryFormat, name), err, "")
	}
	st, err := parseDpkgQuery(string(stdout))
	if err != nil {
		return pkgState{}, fmt.Errorf("apt: dpkg-query %s: %w", name, err)
	}
	return st, nil
}

// parseDpkgQuery reads "STATUS VERSION" lines (one per architecture of a
// multi-arch package). config-files and not-installed count as absent.
func parseDpkgQuery(out string) (pkgState, error) {
	var st pkgState
	seen := false
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		seen = true
		status, version, _ := strings.Cut(line, " ")
		version = strings.TrimSpace(version)
		switch status {
		case "not-installed", "config-files":
		case "installed", "triggers-pending", "triggers-awaited":
			if version == "" {
				return pkgState{}, fmt.Errorf("malformed dpkg-query line %q: no version", line)
			}
			st.Present = true
			st.Versions = append(st.Versions, version)
		case "half-installed", "unpacked", "half-configured":
			st.Present = true
			st.Versions = append(st.Versions, version)
			st.Broken = status + "; an earlier dpkg run was interrupted"
		default:
			return pkgState{}, fmt.Errorf("malformed dpkg-query line %q: unknown status %q", line, status)
		}
	}
	if !seen {
		return pkgState{}, errors.New("dpkg-query printed nothing")
	}
	return st, nil
}

func (b *aptBackend) available(ctx context.Context, name string) ([]string, error) {
	out, err := b.run(ctx, nil, "apt-cache", "policy", name)
	if err != nil {
		return nil, err
	}
	p, err := parseAptPolicy(out)
	if err != nil {
		return nil, fmt.Errorf("apt: apt-cache policy %s: %w", name, err)
	}
	return p.Versions, nil
}

// aptPolicy is one package's apt-cache policy.
type aptPolicy struct {
	Package   string
	Installed string // "" for (none)
	Candidate string // "" for (none)
	Versions  []string
}

// parseAptPolicy reads apt-cache policy output for one package. An
// unknown package prints nothing: the policy is then empty, no error.
func parseAptPolicy(out string) (aptPolicy, error) {
	var p aptPolicy
	inTable := false
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimRight(line, " \r")
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
		case !strings.HasPrefix(line, " ") && strings.HasSuffix(line, ":"):
			if p.Package != "" {
				return p, nil // policy of a second package (architecture): keep the first
			}
			p.Package = strings.TrimSuffix(line, ":")
		case p.Package == "":
			return aptPolicy{}, fmt.Errorf("malformed apt-cache policy output: %q before the package name", trimmed)
		case strings.HasPrefix(trimmed, "Installed:"):
			p.Installed = noneEmpty(strings.TrimSpace(strings.TrimPrefix(trimmed, "Installed:")))
		case strings.HasPrefix(trimmed, "Candidate:"):
			p.Candidate = noneEmpty(strings.TrimSpace(strings.TrimPrefix(trimmed, "Candidate:")))
		case strings.HasPrefix(trimmed, "Version table:"):
			inTable = true
		case strings.HasPrefix(trimmed, "Package pin:"):
		case inTable:
			// "     1.2-1 500" or " *** 1.2-1 100" (a version line, indented 5) or
			// "        500 http://... Packages" (a source line, indented 8).
			f := strings.Fields(strings.TrimPrefix(trimmed, "***"))
			if len(f) < 2 {
				return aptPolicy{}, fmt.Errorf("malformed apt-cache policy version line %q", trimmed)
			}
			if indent(line) >= 8 {
				continue
			}
			if _, err := strconv.Atoi(f[1]); err != nil {
				return aptPolicy{}, fmt.Errorf("malformed apt-cache policy version line %q: priority %q", trimmed, f[1])
			}
			p.Versions = append(p.Versions, f[0])
		}
	}
	return p, nil
}

func indent(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

func noneEmpty(s string) string {
	if s == "(none)" {
		return ""
	}
	return s
}

func (b *aptBackend) downloadSize(ctx context.Context, pin plan.PackagePin) (int64, error) {
	out, err := b.run(ctx, nil, "apt-cache", "show", pin.Name+"="+pin.Version)
	if err != nil {
		return 0, err
	}
	size, err := parseAptShowSize(out)
	if err != nil {
		return 0, fmt.Errorf("apt: apt-cache show %s=%s: %w", pin.Name, pin.Version, err)
	}
	return size, nil
}

// parseAptShowSize returns the Size field (bytes of the .deb) of the first
// record of apt-cache show.
func parseAptShowSize(out string) (int64, error) {
	for line := range strings.SplitSeq(out, "\n") {
		if line == "" || line == "\r" {
			break // end of the first record
		}
		if v, ok := strings.CutPrefix(line, "Size:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("malformed Size field %q", strings.TrimSpace(v))
			}
			return n, nil
		}
	}
	return 0, errors.New("no Size field in apt-cache show output")
}

func (b *aptBackend) freeSpace(ctx context.Context) (int64, error) {
	return dfAvail(ctx, b.r, "apt", aptArchives)
}

// dfAvail runs df --output=avail -B1 on dir.
func dfAvail(ctx context.Context, r Runner, tool, dir string) (int64, error) {
	args := []string{"--output=avail", "-B1", dir}
	stdout, _, err := r.Run(ctx, nil, "df", args...)
	if err != nil {
		return 0, cmdError(nil, tool+": "+commandLine("df", args...), err, "")
	}
	n, err := parseDf(string(stdout))
	if err != nil {
		return 0, fmt.Errorf("%s: df %s: %w", tool, dir, err)
	}
	return n, nil
}

// parseDf reads "Avail\n12345\n" from df --output=avail -B1.
func parseDf(out string) (int64, error) {
	f := strings.Fields(out)
	if len(f) != 2 || f[0] != "Avail" {
		return 0, fmt.Errorf("malformed df output %q", firstLine(out))
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("malformed df output: available bytes %q", f[1])
	}
	return n, nil
}

// aptDpkgInterrupted is how apt refuses to work after a dpkg run was cut
// short (a crash or a reboot while a package was being installed):
//
//	E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem.
const aptDpkgInterrupted = "dpkg was interrupted, you must manually run 'dpkg --configure -a'"

// errDpkgInterrupted: apt refused to run because an earlier dpkg run was
// interrupted.
var errDpkgInterrupted = errors.New("an earlier dpkg run was interrupted")

// install runs one apt-get install of every pin. When apt refuses because
// an earlier dpkg run was interrupted (the node crashed or rebooted in the
// middle of a step), it finishes that run with dpkg --configure -a, as apt
// asks, and tries once more: a package left half-installed is then
// installed at its pin, which is what Apply and Rollback want.
func (b *aptBackend) install(ctx context.Context, changes []pkgChange) error {
	// A policy-rc.d of ours left by an agent that died in an
	// installDeferred would hold back every later restart.
	if err := b.restorePolicy(); err != nil {
		return err
	}
	return b.installArgs(ctx, changes)
}

// installArgs runs apt-get install of the changes (see install).
func (b *aptBackend) installArgs(ctx context.Context, changes []pkgChange) error {
	args := []string{"install", "-y", "--allow-downgrades",
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}
	for _, c := range changes {
		if c.Reinstall {
			args = append(args, "--reinstall")
			break
		}
	}
	for _, c := range changes {
		args = append(args, c.Pin.Name+"="+c.Pin.Version)
	}
	_, err := b.run(ctx, aptEnv, "apt-get", args...)
	if !errors.Is(err, errDpkgInterrupted) {
		return err
	}
	if _, cerr := b.run(ctx, aptEnv, "dpkg", "--configure", "-a", "--force-confdef", "--force-confold"); cerr != nil {
		return fmt.Errorf("%w; finishing it with dpkg --configure -a failed: %w", err, cerr)
	}
	_, err = b.run(ctx, aptEnv, "apt-get", args...)
	return err
}

func (b *aptBackend) remove(ctx context.Context, names []string) error {
	_, err := b.run(ctx, aptEnv, "apt-get", append([]string{"remove", "-y"}, names...)...)
	return err
}

// multiVersion: a Debian package is installed in one version (one per
// architecture, which Snapshot refuses to pick from).
func (b *aptBackend) multiVersion() bool { return false }

func (b *aptBackend) removeVersions(context.Context, []plan.PackagePin) error {
	return fmt.Errorf("apt: removing one version of a package: %w", ErrUnsupported)
}

// runningKernel asks dpkg which package owns /boot/vmlinuz-$(uname -r):
// linux-image-6.1.0-25-amd64 on Debian; none for a kernel no package
// owns, as in a container.
func (b *aptBackend) runningKernel(ctx context.Context) (runningKernel, error) {
	stdout, _, err := b.r.Run(ctx, nil, "uname", "-r")
	if err != nil {
		return runningKernel{}, cmdError(nil, "apt: uname -r", err, "")
	}
	k := runningKernel{Release: strings.TrimSpace(string(stdout))}
	if k.Release == "" || strings.ContainsAny(k.Release, "/ \n") {
		return runningKernel{}, fmt.Errorf("apt: uname -r: malformed release %q", k.Release)
	}
	path := "/boot/vmlinuz-" + k.Release
	stdout, stderr, err := b.r.Run(ctx, nil, "dpkg-query", "-S", path)
	if err != nil {
		if exitCode(err) == 1 && strings.Contains(string(stderr), "no path found matching pattern") {
			return k, nil
		}
		return runningKernel{}, cmdError(nil, "apt: dpkg-query -S "+path, err, "")
	}
	k.Owners = parseDpkgSearch(string(stdout))
	return k, nil
}

// parseDpkgSearch reads the packages of dpkg-query -S lines ("pkg: path",
// "pkg1:amd64, pkg2: path"; "diversion by pkg from: path" lines skipped).
func parseDpkgSearch(out string) []plan.PackagePin {
	var owners []plan.PackagePin
	for line := range strings.SplitSeq(out, "\n") {
		pkgs, _, ok := strings.Cut(line, ": ")
		if !ok || strings.HasPrefix(line, "diversion by ") {
			continue
		}
		for p := range strings.SplitSeq(pkgs, ", ") {
			name, _, _ := strings.Cut(strings.TrimSpace(p), ":")
			if plan.DebianPackage.Check(name) == nil && !slices.Contains(owners, plan.PackagePin{Name: name}) {
				owners = append(owners, plan.PackagePin{Name: name})
			}
		}
	}
	return owners
}

func (b *aptBackend) held(ctx context.Context, names []string) (map[string]bool, error) {
	out, err := b.run(ctx, nil, "apt-mark", append([]string{"showhold"}, names...)...)
	if err != nil {
		return nil, err
	}
	held := map[string]bool{}
	for _, f := range strings.Fields(out) {
		name, _, _ := strings.Cut(f, ":") // pkg:arch
		held[name] = true
	}
	return held, nil
}

func (b *aptBackend) hold(ctx context.Context, pins []plan.PackagePin) error {
	_, err := b.run(ctx, nil, "apt-mark", append([]string{"hold"}, pinNames(pins)...)...)
	return err
}

func (b *aptBackend) unhold(ctx context.Context, names []string) error {
	_, err := b.run(ctx, nil, "apt-mark", append([]string{"unhold"}, names...)...)
	return err
}

// rebootRequired reads /var/run/reboot-required (and .pkgs, naming the
// packages asking for it) and, when needrestart is installed, its batch
// output: NEEDRESTART-KSTA 2 (ABI-compatible) or 3 (version upgrade)
// means the running kernel is not the newest installed one.
func (b *aptBackend) rebootRequired(ctx context.Context) (bool, string, error) {
	if _, err := b.opts.FS.ReadFile("/var/run/reboot-required"); err == nil {
		reason := "/var/run/reboot-required exists"
		if pkgs, err := b.opts.FS.ReadFile("/var/run/reboot-required.pkgs"); err == nil {
			if f := strings.Fields(string(pkgs)); len(f) > 0 {
				reason = "requested by " + strings.Join(dedupe(f), ", ")
			}
		}
		return true, reason, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, "", fmt.Errorf("apt: read /var/run/reboot-required: %w", err)
	}
	stdout, _, err := b.r.Run(ctx, nil, "needrestart", "-b")
	if err != nil {
		if isNotFound(err) {
			return false, "", nil
		}
		return false, "", cmdError(nil, "apt: needrestart -b", err, "")
	}
	nr, err := parseNeedrestart(string(stdout))
	if err != nil {
		return false, "", fmt.Errorf("apt: needrestart -b: %w", err)
	}
	if nr.KSTA == 2 || nr.KSTA == 3 {
		return true, fmt.Sprintf("running kernel %s, expected %s (needrestart)", nr.KCur, nr.KExp), nil
	}
	return false, "", nil
}

func dedupe(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// needrestartBatch is needrestart -b output.
type needrestartBatch struct {
	KSTA       int // 0 unknown, 1 current, 2 ABI upgrade pending, 3 version upgrade pending
	KCur, KExp string
	Services   []string
}

// parseNeedrestart reads "NEEDRESTART-KEY: value" lines.
func parseNeedrestart(out string) (needrestartBatch, error) {
	var nr needrestartBatch
	seen := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasPrefix(k, "NEEDRESTART-") {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "NEEDRESTART-VER":
			seen = true
		case "NEEDRESTART-KCUR":
			nr.KCur = v
		case "NEEDRESTART-KEXP":
			nr.KExp = v
		case "NEEDRESTART-KSTA":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 3 {
				return needrestartBatch{}, fmt.Errorf("malformed NEEDRESTART-KSTA %q", v)
			}
			nr.KSTA, seen = n, true
		case "NEEDRESTART-SVC":
			nr.Services = append(nr.Services, v)
		}
	}
	if !seen {
		return needrestartBatch{}, fmt.Errorf("no NEEDRESTART- lines in %q", firstLine(out))
	}
	return nr, nil
}

// Lock wordings of apt and dpkg, oldest to newest:
//
//	E: Could not get lock /var/lib/dpkg/lock - open (11: Resource temporarily unavailable)
//	E: Unable to lock the administration directory (/var/lib/dpkg/), is another process using it?
//	E: Could not get lock /var/lib/dpkg/lock-frontend - open (11: Resource temporarily unavailable)
//	E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (apt-get)
//	Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (unattended-upgr)...
//	dpkg: error: dpkg frontend lock was locked by another process with pid 1234
//	dpkg: error: dpkg status database is locked by another process
var (
	aptLockHeldRE = regexp.MustCompile(`Could not get lock (\S+?)\.? It is held by process (\d+)(?: \(([^)\n]*)\))?`)
	aptLockOpenRE = regexp.MustCompile(`Could not get lock (\S+) - open \(\d+: `)
	aptLockDirRE  = regexp.MustCompile(`Unable to (?:acquire the dpkg frontend lock|lock the administration directory|lock directory) \(?([^),\s]+)`)
	dpkgLockRE    = regexp.MustCompile(`dpkg: error: dpkg (?:frontend lock|status database) (?:was|is) locked by another process(?: with pid (\d+))?`)
)

// parseAptLock finds a lock complaint in apt or dpkg output.
func parseAptLock(msg string) (*LockError, bool) {
	if m := aptLockHeldRE.FindStringSubmatch(msg); m != nil {
		pid, _ := strconv.Atoi(m[2])
		return &LockError{Lock: m[1], PID: pid, Holder: m[3]}, true
	}
	if m := aptLockOpenRE.FindStringSubmatch(msg); m != nil {
		return &LockError{Lock: m[1]}, true
	}
	if m := aptLockDirRE.FindStringSubmatch(msg); m != nil {
		return &LockError{Lock: m[1]}, true
	}
	if m := dpkgLockRE.FindStringSubmatch(msg); m != nil {
		pid, _ := strconv.Atoi(m[1])
		lock := "/var/lib/dpkg/lock"
		if strings.Contains(m[0], "frontend") {
			lock += "-frontend"
		}
		return &LockError{Lock: lock, PID: pid}, true
	}
	return nil, false
}

// policyMark is in every policy-rc.d installDeferred writes, so that one
// left behind by a crash is recognised and removed.
const policyMark = "# drover: service restarts held back until the pre-restart check passed"

// installDeferred installs as install does, with a policy-rc.d in place
// that records and refuses (exit 101) every start and restart the
// maintainer scripts ask of invoke-rc.d or deb-systemd-invoke; it
// returns them ("nginx.service restart"), once each. The policy-rc.d in
// place before (an image's "exit 101") is set aside and put back.
func (b *aptBackend) installDeferred(ctx context.Context, changes []pkgChange) ([]string, error) {
	if err := b.restorePolicy(); err != nil {
		return nil, err
	}
	path, log := b.opts.PolicyRCD, b.opts.DeferredLog
	if strings.ContainsAny(log, "'\n") {
		return nil, fmt.Errorf("apt: deferred restart log path %q: quotes and newlines are not allowed", log)
	}
	if err := os.Remove(log); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("apt: %w", err)
	}
	if err := os.Rename(path, path+".drover-saved"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("apt: set aside %s: %w", path, err)
	}
	script := "#!/bin/sh\n" + policyMark + "\necho \"$*\" >> '" + log + "'\nexit 101\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		_ = b.restorePolicy()
		return nil, fmt.Errorf("apt: write %s: %w", path, err)
	}
	err := b.installArgs(ctx, changes)
	if rerr := b.restorePolicy(); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(log)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("apt: read the held-back restarts: %w", err)
	}
	_ = os.Remove(log)
	return parseDeferred(string(raw)), nil
}

// restorePolicy removes a policy-rc.d of ours and puts back the one it
// set aside, if any.
func (b *aptBackend) restorePolicy() error {
	path := b.opts.PolicyRCD
	cur, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("apt: read %s: %w", path, err)
	case !strings.Contains(string(cur), policyMark):
		return nil // not ours
	default:
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("apt: remove drover's %s: %w", path, err)
		}
	}
	if err := os.Rename(path+".drover-saved", path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("apt: put back %s: %w", path, err)
	}
	return nil
}

// deferrable are the actions of invoke-rc.d and deb-systemd-invoke that
// RunDeferred runs again; a held-back stop is not (the service went on
// running the version it had).
var deferrable = []string{"start", "restart", "try-restart", "reload", "force-reload", "reload-or-restart", "try-reload-or-restart"}

// parseDeferred reads policy-rc.d calls, "[--quiet] ID ACTION [RUNLEVEL]"
// (ACTION in parentheses when invoke-rc.d asks whether to retry), into
// "ID ACTION" once per ID, keeping its last deferrable action, in the
// order first asked. IDs that are not plan.SystemdUnit names are dropped.
func parseDeferred(log string) []string {
	var order []string
	last := map[string]string{}
	for line := range strings.SplitSeq(log, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "--quiet" {
			f = f[1:]
		}
		if len(f) < 2 || plan.SystemdUnit.Check(f[0]) != nil {
			continue
		}
		action := strings.Trim(f[1], "()")
		if !slices.Contains(deferrable, action) {
			continue
		}
		if _, seen := last[f[0]]; !seen {
			order = append(order, f[0])
		}
		last[f[0]] = action
	}
	out := make([]string, len(order))
	for i, id := range order {
		out[i] = id + " " + last[id]
	}
	return out
}

// runDeferred runs each held-back restart as the tool that asked for it
// would have: deb-systemd-invoke ACTION UNIT for a systemd unit
// (NAME.service), invoke-rc.d ID ACTION for an init script.
func (b *aptBackend) runDeferred(ctx context.Context, deferred []string) error {
	var errs []string
	for _, d := range deferred {
		id, action, ok := strings.Cut(d, " ")
		if !ok || plan.SystemdUnit.Check(id) != nil || !slices.Contains(deferrable, action) {
			return fmt.Errorf("apt: malformed held-back restart %q", d)
		}
		var err error
		if strings.Contains(id, ".") {
			_, err = b.run(ctx, aptEnv, "deb-systemd-invoke", action, id)
		} else {
			_, err = b.run(ctx, aptEnv, "invoke-rc.d", id, action)
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("apt: held-back restarts failed: %s", strings.Join(errs, "; "))
	}
	return nil
}

// simulate runs apt-get -s install of every pin (without the lock: a
// simulation changes nothing) and reads what apt would do: its Inst and
// Remv lines, its DOWNGRADED section, and its held packages that would be
// changed. Unmet dependencies and conflicts are an error wrapping
// ErrConflict that quotes apt's explanation.
func (b *aptBackend) simulate(ctx context.Context, changes []pkgChange) ([]PlannedOp, []string, error) {
	args := []string{"-s", "install", "--allow-downgrades", "-o", "Debug::NoLocking=1"}
	for _, c := range changes {
		args = append(args, c.Pin.Name+"="+c.Pin.Version)
	}
	stdout, stderr, err := b.r.Run(ctx, aptEnv, "apt-get", args...)
	if err != nil {
		msg := string(stdout) + "\n" + string(stderr)
		if detail := aptConflict(msg); detail != "" {
			return nil, nil, cmdError(ErrConflict, "apt: "+commandLine("apt-get", args...), err, detail)
		}
		if m := aptUnavailableRE.FindString(msg); m != "" {
			return nil, nil, cmdError(ErrUnavailable, "apt: "+commandLine("apt-get", args...), err, m)
		}
		return nil, nil, cmdError(nil, "apt: "+commandLine("apt-get", args...), err, "")
	}
	planned, held := parseAptSimulation(string(stdout))
	return planned, held, nil
}

// aptConflict returns apt's explanation of a change it cannot resolve
// ("hello : Depends: libfoo (>= 2) but 1 is to be installed", then "E:
// Unable to correct problems, you have held broken packages."), or ""
// when msg is not one.
func aptConflict(msg string) string {
	if !strings.Contains(msg, "have unmet dependencies") && !strings.Contains(msg, "Unable to correct problems") &&
		!strings.Contains(msg, "held packages were changed") {
		return ""
	}
	var parts []string
	for line := range strings.SplitSeq(msg, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.Contains(t, " : ") || strings.HasPrefix(t, "Depends:") || strings.HasPrefix(t, "Conflicts:") ||
			strings.HasPrefix(t, "Breaks:") || strings.HasPrefix(t, "PreDepends:"):
			parts = append(parts, strings.Join(strings.Fields(t), " "))
		case strings.HasPrefix(t, "E: "):
			parts = append(parts, strings.TrimPrefix(t, "E: "))
		}
	}
	if len(parts) == 0 {
		return "unmet dependencies"
	}
	return strings.Join(parts, "; ")
}

// parseAptSimulation reads apt-get -s output:
//
//	The following held packages will be changed:
//	  hello
//	The following packages will be DOWNGRADED:
//	  hello
//	Inst hello [2.10-3] (2.10-2 local [amd64])
//	Inst libnew (1.0 local [amd64])
//	Remv oldpkg [0.9]
//	Conf hello (2.10-2 local [amd64])
func parseAptSimulation(out string) ([]PlannedOp, []string) {
	var planned []PlannedOp
	var held, downgraded []string
	var section *[]string
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, "  ") && section != nil {
			*section = append(*section, strings.Fields(line)...)
			continue
		}
		section = nil
		switch {
		case strings.HasPrefix(line, "The following held packages will be changed"):
			section = &held
		case strings.HasPrefix(line, "The following packages will be DOWNGRADED"):
			section = &downgraded
		case strings.HasPrefix(line, "Inst "), strings.HasPrefix(line, "Remv "):
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			op := PlannedOp{Name: f[1]}
			rest := f[2:]
			if len(rest) > 0 && strings.HasPrefix(rest[0], "[") {
				op.From = strings.Trim(rest[0], "[]")
				rest = rest[1:]
			}
			switch {
			case f[0] == "Remv":
				op.Op = "remove"
			case len(rest) > 0 && strings.HasPrefix(rest[0], "("):
				op.To = strings.TrimPrefix(rest[0], "(")
				op.Op = "upgrade"
				if op.From == "" {
					op.Op = "install"
				}
			default:
				continue
			}
			planned = append(planned, op)
		}
	}
	for i := range planned {
		if planned[i].Op == "upgrade" && slices.Contains(downgraded, planned[i].Name) {
			planned[i].Op = "downgrade"
		}
	}
	return planned, held
}
