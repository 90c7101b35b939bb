// Package facts collects a node's facts for the agent: os family, name and
// version, kernel, boot ID, architecture, hardware class, installed
// packages and held packages, failed services, kernel modules, live patches, container
// runtime and kubelet versions, and whether a reboot is pending. The Linux
// collector reads files under a root directory and runs tools through a
// driver.Runner, so tests replay recorded outputs from testdata/; the
// Windows and macOS parsers are plain functions tested on any OS, their
// collectors are built only there.
package facts

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/fleet"
)

// Linux collects the facts of a Linux node.
type Linux struct {
	// Root is the filesystem root the files are read under; "" means "/".
	Root string
	// Runner runs dpkg-query, rpm, systemctl and the runtime tools.
	Runner driver.Runner
	// Arch is the node's architecture; "" means runtime.GOARCH.
	Arch string
	// Logger receives what could not be collected; nil discards.
	Logger *slog.Logger
}

func (l *Linux) path(p string) string {
	root := l.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, p)
}

func (l *Linux) read(p string) (string, error) {
	b, err := os.ReadFile(l.path(p))
	return strings.TrimSpace(string(b)), err
}

func (l *Linux) log() *slog.Logger {
	if l.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Logger
}

// Collect returns the node's facts. It fails only when the essentials
// (os-release, kernel release, boot ID) cannot be read; anything else that
// cannot be collected (a tool not installed, systemd absent in a
// container) is left empty and logged.
func (l *Linux) Collect(ctx context.Context) (fleet.Facts, error) {
	var f fleet.Facts
	osr, err := os.ReadFile(l.path("etc/os-release"))
	if err != nil {
		osr, err = os.ReadFile(l.path("usr/lib/os-release"))
	}
	if err != nil {
		return f, fmt.Errorf("facts: os-release: %w", err)
	}
	f.OS = ParseOSRelease(osr)
	if f.Kernel, err = l.read("proc/sys/kernel/osrelease"); err != nil {
		return f, fmt.Errorf("facts: kernel release: %w", err)
	}
	if f.BootID, err = l.read("proc/sys/kernel/random/boot_id"); err != nil {
		return f, fmt.Errorf("facts: boot ID: %w", err)
	}
	f.Arch = l.Arch
	if f.Arch == "" {
		f.Arch = runtime.GOARCH
	}
	f.Hardware.Class, _ = l.read("sys/class/dmi/id/product_name")
	if b, err := os.ReadFile(l.path("proc/modules")); err == nil {
		f.Modules = ParseProcModules(b)
	}
	f.LivePatches = l.livePatches()
	f.Packages, f.Holds = l.packages(ctx, f.OS.Family)
	f.Services = l.failedUnits(ctx)
	f.Runtime = l.runtimes(ctx)
	if out, err := l.run(ctx, "kubelet", "--version"); err == nil {
		f.Kubelet = strings.TrimPrefix(strings.TrimSpace(string(out)), "Kubernetes ")
	}
	f.RebootRequired = l.rebootRequired(ctx, f.OS.Family)
	return f, nil
}

// run runs a tool, logging (at debug) when it is absent or fails.
func (l *Linux) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if l.Runner == nil {
		return nil, errors.New("no runner")
	}
	out, _, err := l.Runner.Run(ctx, nil, name, args...)
	if err != nil {
		l.log().Debug("fact tool failed", "tool", name, "error", err)
	}
	return out, err
}

// ParseOSRelease reads os-release(5) into the OS facts; ID (then ID_LIKE)
// picks the family: debian, ubuntu, rhel (rhel, rocky, almalinux, centos,
// fedora, ol), suse (sles, opensuse-*).
func ParseOSRelease(b []byte) fleet.OS {
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		kv[k] = strings.Trim(v, `"'`)
	}
	o := fleet.OS{Name: kv["ID"], Version: kv["VERSION_ID"]}
	o.Family = family(kv["ID"])
	if o.Family == "" {
		for _, like := range strings.Fields(kv["ID_LIKE"]) {
			if o.Family = family(like); o.Family != "" {
				break
			}
		}
	}
	return o
}

func family(id string) string {
	switch {
	case id == "debian" || id == "raspbian":
		return "debian"
	case id == "ubuntu":
		return "ubuntu"
	case slices.Contains([]string{"rhel", "rocky", "almalinux", "centos", "fedora", "ol"}, id):
		return "rhel"
	case id == "sles" || id == "sled" || id == "suse" || strings.HasPrefix(id, "opensuse"):
		return "suse"
	}
	return ""
}

// ParseProcModules returns the module names of /proc/modules, sorted.
func ParseProcModules(b []byte) []string {
	var mods []string
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 0 {
			mods = append(mods, f[0])
		}
	}
	slices.Sort(mods)
	return mods
}

// livePatches lists /sys/kernel/livepatch/* with enabled = 1.
func (l *Linux) livePatches() []string {
	entries, err := os.ReadDir(l.path("sys/kernel/livepatch"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if en, err := l.read(filepath.Join("sys/kernel/livepatch", e.Name(), "enabled")); err == nil && en != "1" {
			continue
		}
		out = append(out, e.Name())
	}
	return out
}

// packages lists the installed packages and the held ones (installed,
// sorted): dpkg's hold selection from the same dpkg-query output; dnf's
// versionlock list (etc/dnf/plugins/versionlock.list, dnf 5's
// etc/dnf/versionlock.toml, yum's etc/yum/pluginconf.d/versionlock.list)
// and zypper's etc/zypp/locks, read as files.
func (l *Linux) packages(ctx context.Context, fam string) (map[string]string, []string) {
	var pkgs map[string]string
	var holds []string
	switch fam {
	case "debian", "ubuntu":
		out, err := l.run(ctx, "dpkg-query", "-W", "-f", `${Package}\t${Version}\t${db:Status-Abbrev}\n`)
		if err == nil {
			pkgs, holds = ParseDpkgQuery(out), ParseDpkgHolds(out)
		}
	case "rhel", "suse":
		out, err := l.run(ctx, "rpm", "-qa", "--qf", `%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\n`)
		if err == nil {
			pkgs = ParseRPM(out)
		}
		if fam == "rhel" {
			for _, f := range []string{"etc/dnf/plugins/versionlock.list", "etc/yum/pluginconf.d/versionlock.list"} {
				if b, err := l.readLocks(f); err == nil {
					holds = append(holds, ParseVersionlockList(b)...)
				}
			}
			if b, err := l.readLocks("etc/dnf/versionlock.toml"); err == nil {
				holds = append(holds, ParseVersionlockTOML(b)...)
			}
		} else if b, err := l.readLocks("etc/zypp/locks"); err == nil {
			holds = ParseZyppLocks(b)
		}
	}
	var out []string
	for _, h := range holds {
		if _, ok := pkgs[h]; ok { // a lock of a package not installed holds nothing
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return pkgs, slices.Compact(out)
}

// readLocks reads a package manager's lock file; a missing one is no
// locks (an error, quietly), another failure is logged.
func (l *Linux) readLocks(p string) ([]byte, error) {
	b, err := os.ReadFile(l.path(p))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.log().Warn("cannot read package locks", "file", p, "error", err)
	}
	return b, err
}

// ParseDpkgHolds returns the installed packages whose selection is hold
// (apt-mark hold) in dpkg-query -W -f '${Package}\t${Version}\t${db:Status-Abbrev}\n'
// output: status abbreviation "hi".
func ParseDpkgHolds(b []byte) []string {
	var out []string
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimRight(line, "\n"), "\t")
		if len(f) < 3 {
			continue
		}
		if st := strings.TrimSpace(f[2]); len(st) >= 2 && st[0] == 'h' && st[1] == 'i' {
			out = append(out, f[0])
		}
	}
	return out
}

// ParseVersionlockList returns the package names locked by a dnf 4 (or
// yum) versionlock.list: one "NAME-[EPOCH:]VERSION-RELEASE.ARCH" or
// "....*" pattern a line; comments, blank lines and excluded versions
// ("!" lines, which block a version, not hold one) are skipped.
func ParseVersionlockList(b []byte) []string {
	var out []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "!") {
			continue
		}
		// NAME-VERSION-RELEASE.ARCH: the name is what precedes the last
		// two dashes.
		i := strings.LastIndex(line, "-")
		if i <= 0 {
			continue
		}
		j := strings.LastIndex(line[:i], "-")
		if j <= 0 {
			continue
		}
		out = append(out, line[:j])
	}
	return out
}

// ParseVersionlockTOML returns the package names of dnf 5's
// /etc/dnf/versionlock.toml: the name = "..." of each [[packages]]
// table.
func ParseVersionlockTOML(b []byte) []string {
	var out []string
	table := ""
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			table = strings.Trim(line, "[] ")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && table == "packages" && strings.TrimSpace(k) == "name" {
			if n := strings.Trim(strings.TrimSpace(v), `"'`); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

// ParseZyppLocks returns the package names of zypper's /etc/zypp/locks:
// blank-line separated blocks of "key: value" lines; a block of type
// package (the default) names its package in solvable_name.
func ParseZyppLocks(b []byte) []string {
	var out []string
	name, typ := "", ""
	flush := func() {
		if name != "" && (typ == "" || typ == "package") {
			out = append(out, name)
		}
		name, typ = "", ""
	}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" {
			flush()
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "solvable_name":
			name = strings.TrimSpace(v)
		case "type":
			typ = strings.TrimSpace(v)
		}
	}
	flush()
	return out
}

// ParseDpkgQuery reads dpkg-query -W -f '${Package}\t${Version}\t${db:Status-Abbrev}\n'
// and keeps installed packages ("ii", "hi": status abbreviation starting
// with i or h and second letter i).
func ParseDpkgQuery(b []byte) map[string]string {
	pkgs := map[string]string{}
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimRight(line, "\n"), "\t")
		if len(f) < 3 {
			continue
		}
		st := strings.TrimSpace(f[2])
		if len(st) < 2 || st[1] != 'i' {
			continue // not installed (rc: config files only, un: unknown)
		}
		pkgs[f[0]] = f[1]
	}
	return pkgs
}

// ParseRPM reads rpm -qa --qf '%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\n';
// an epoch of "(none)" is dropped. Of several installed versions (kernels)
// the last listed wins.
func ParseRPM(b []byte) map[string]string {
	pkgs := map[string]string{}
	for line := range strings.Lines(string(b)) {
		name, ver, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if !ok || name == "" || name == "gpg-pubkey" {
			continue
		}
		ver = strings.TrimPrefix(ver, "(none):")
		pkgs[name] = ver
	}
	return pkgs
}

// failedUnits returns failed systemd units as unit -> "failed"; nil
// without systemd (containers).
func (l *Linux) failedUnits(ctx context.Context) map[string]string {
	out, err := l.run(ctx, "systemctl", "list-units", "--failed", "--plain", "--no-legend")
	if err != nil {
		return nil
	}
	return ParseFailedUnits(out)
}

// ParseFailedUnits reads systemctl list-units --failed --plain --no-legend.
func ParseFailedUnits(b []byte) map[string]string {
	var units map[string]string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] == "0" {
			continue
		}
		if units == nil {
			units = map[string]string{}
		}
		units[f[0]] = f[2] // UNIT LOAD ACTIVE SUB DESCRIPTION
	}
	return units
}

func (l *Linux) runtimes(ctx context.Context) fleet.Runtime {
	var r fleet.Runtime
	if out, err := l.run(ctx, "containerd", "--version"); err == nil {
		r.Containerd = ParseContainerdVersion(out)
	}
	if out, err := l.run(ctx, "docker", "version", "--format", "{{.Server.Version}}"); err == nil {
		r.Docker = strings.TrimSpace(string(out))
	}
	if out, err := l.run(ctx, "crio", "--version"); err == nil {
		r.CRIO = ParseCRIOVersion(out)
	}
	return r
}

// ParseContainerdVersion reads "containerd github.com/containerd/containerd
// v1.7.24 88bf19b2..." (or "containerd containerd.io 1.7.24 ...") into
// "1.7.24".
func ParseContainerdVersion(b []byte) string {
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.TrimPrefix(f[2], "v")
}

// ParseCRIOVersion reads the "Version:" line of crio --version.
func ParseCRIOVersion(b []byte) string {
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Version" {
			return strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "crio version "); ok {
			return v
		}
	}
	return ""
}

// rebootRequired: /var/run/reboot-required (Debian family), or
// needs-restarting -r exiting 1 (RHEL family).
func (l *Linux) rebootRequired(ctx context.Context, fam string) bool {
	for _, p := range []string{"var/run/reboot-required", "run/reboot-required"} {
		if _, err := os.Stat(l.path(p)); err == nil {
			return true
		}
	}
	if fam == "rhel" {
		_, err := l.run(ctx, "needs-restarting", "-r")
		var ee *driver.ExitError
		return errors.As(err, &ee) && ee.Code == 1
	}
	return false
}

// packageDBs are the files a package manager rewrites on every change:
// dpkg's status file, the rpm database (sqlite from rpm 4.16, Berkeley
// DB before; under /usr/lib/sysimage on SUSE and newer Fedora).
var packageDBs = []string{
	"var/lib/dpkg/status",
	"var/lib/rpm/rpmdb.sqlite", "var/lib/rpm/Packages",
	"usr/lib/sysimage/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/Packages.db",
}

// PackageStamp is a cheap stamp of the package database: the size and
// modification time of each file of packageDBs that exists. It changes
// whenever a package is installed, removed or changed, by drover or by
// hand; stat(2) only, for the agent to call before every poll.
func (l *Linux) PackageStamp() string {
	var b strings.Builder
	for _, p := range packageDBs {
		st, err := os.Stat(l.path(p))
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d;", p, st.Size(), st.ModTime().UnixNano())
	}
	return b.String()
}
