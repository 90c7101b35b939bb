// Package hostcheck owns host checks: the probes of what breaks on a
// node after an update (the clock, name resolution, TLS to an endpoint,
// mounts, failed units, the firewall backend, MTUs, kernel errors, the
// linkage of a service's binary), and
// the snapshot of the host the agent takes before a step, which
// "unchanged" and "new" compare with. The readers are pure parse
// functions (parse.go); Host supplies the bytes.
package hostcheck

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	pathpkg "path"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/plan"
)

// Runner runs a command and returns its standard output.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// Host reads one host. The zero Host reads the machine it runs on.
type Host struct {
	// FS is the host's file system from /; nil means os.DirFS("/").
	FS fs.FS
	// Run runs commands (iptables, systemctl, chronyc); nil means
	// os/exec.
	Run Runner
	// KernelLog returns the kernel log's records; nil means /dev/kmsg.
	KernelLog func(ctx context.Context) ([]KernelLine, error)
	// Clock returns the kernel's view of its clock when chronyc is
	// absent; nil means adjtimex(2).
	Clock func() (ClockState, error)
	// GOOS is the host's operating system; "" means runtime.GOOS.
	GOOS string
	// Now is the time; nil means time.Now.
	Now func() time.Time
}

func (h *Host) fsys() fs.FS {
	if h.FS != nil {
		return h.FS
	}
	return os.DirFS("/")
}

func (h *Host) goos() string {
	if h.GOOS != "" {
		return h.GOOS
	}
	return runtime.GOOS
}

func (h *Host) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Host) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if h.Run != nil {
		return h.Run(ctx, name, args...)
	}
	return exec.CommandContext(ctx, name, args...).Output()
}

// Unsupported says why a host check of kind k cannot run on goos ("" when
// it can). Checks of the network (dns, tls) run everywhere; the others
// read Linux interfaces, but for failed-units on Windows (automatic
// services not running). A Windows or macOS node has equivalents of the
// others (w32tm, netsh, the event log; sntp, launchctl, pfctl) that
// drover does not read yet: such a probe fails, it never passes unread.
func Unsupported(k plan.ProbeKind, goos string) string {
	if !k.HostCheck() || k == plan.ProbeDNS || k == plan.ProbeTLS || goos == "linux" {
		return ""
	}
	if k == plan.ProbeFailedUnits && goos == "windows" {
		return "" // automatic services not running (Get-Service)
	}
	return fmt.Sprintf("%s probes are not supported on %s (they read Linux interfaces)", k, goos)
}

// Snapshot is the host before a step, for the probes that compare with
// it. A part that could not be read holds why in its Err field, and the
// probes that compare with it fail naming it.
type Snapshot struct {
	Taken          time.Time      `json:"taken"`
	Mounts         []Mount        `json:"mounts,omitempty"`
	MountsErr      string         `json:"mountsErr,omitempty"`
	FailedUnits    []string       `json:"failedUnits,omitempty"`
	FailedUnitsErr string         `json:"failedUnitsErr,omitempty"`
	Firewall       string         `json:"firewall,omitempty"`
	FirewallErr    string         `json:"firewallErr,omitempty"`
	MTUs           map[string]int `json:"mtus,omitempty"`
	MTUsErr        string         `json:"mtusErr,omitempty"`
	// KernelSeq is the sequence number of the kernel log's last record
	// when the step began; later records are new.
	KernelSeq uint64 `json:"kernelSeq,omitempty"`
	KernelErr string `json:"kernelErr,omitempty"`
	// KernelBoot is the boot ID the kernel log was read in: after a
	// reboot every record of the new boot is new.
	KernelBoot string `json:"kernelBoot,omitempty"`
	// Kinds are the probe kinds the snapshot was taken for.
	Kinds []plan.ProbeKind `json:"kinds"`
}

// Needs returns the baselined kinds among probes (nil: no snapshot is
// needed).
func Needs(probes []plan.Probe) []plan.ProbeKind {
	var ks []plan.ProbeKind
	for _, p := range probes {
		if p.Kind.Baselined() && !slices.Contains(ks, p.Kind) {
			ks = append(ks, p.Kind)
		}
	}
	return ks
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Snapshot reads what the baselined kinds compare with.
func (h *Host) Snapshot(ctx context.Context, kinds []plan.ProbeKind) *Snapshot {
	s := &Snapshot{Taken: h.now(), Kinds: kinds}
	for _, k := range kinds {
		if why := Unsupported(k, h.goos()); why != "" {
			switch k {
			case plan.ProbeMounts:
				s.MountsErr = why
			case plan.ProbeFailedUnits:
				s.FailedUnitsErr = why
			case plan.ProbeFirewallBackend:
				s.FirewallErr = why
			case plan.ProbeMTU:
				s.MTUsErr = why
			case plan.ProbeKernelErrors:
				s.KernelErr = why
			}
			continue
		}
		var err error
		switch k {
		case plan.ProbeMounts:
			s.Mounts, err = h.Mounts()
			s.MountsErr = errString(err)
		case plan.ProbeFailedUnits:
			s.FailedUnits, err = h.FailedUnits(ctx)
			s.FailedUnitsErr = errString(err)
		case plan.ProbeFirewallBackend:
			s.Firewall, err = h.FirewallBackend(ctx)
			s.FirewallErr = errString(err)
		case plan.ProbeMTU:
			s.MTUs, err = ReadMTUs(h.fsys())
			s.MTUsErr = errString(err)
		case plan.ProbeKernelErrors:
			var lines []KernelLine
			lines, err = h.kernelLog(ctx)
			s.KernelErr = errString(err)
			s.KernelBoot = h.bootID()
			for _, l := range lines {
				s.KernelSeq = max(s.KernelSeq, l.Seq)
			}
		}
	}
	return s
}

// Mounts reads /proc/self/mountinfo.
func (h *Host) Mounts() ([]Mount, error) {
	b, err := fs.ReadFile(h.fsys(), "proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("mounts: %w", err)
	}
	return ParseMountinfo(b)
}

// psStoppedAutomatic lists the services Windows starts automatically
// that are not running: what it has instead of failed units.
const psStoppedAutomatic = "Get-Service | Where-Object { $_.StartType -eq 'Automatic' -and $_.Status -ne 'Running' } | ForEach-Object { $_.Name }"

// FailedUnits lists the systemd units in the failed state (on Windows:
// the automatic services not running).
func (h *Host) FailedUnits(ctx context.Context) ([]string, error) {
	if h.goos() == "windows" {
		out, err := h.run(ctx, "powershell.exe", "-NoProfile", "-NonInteractive", "-Command", psStoppedAutomatic)
		if err != nil {
			return nil, fmt.Errorf("Get-Service: %w", err)
		}
		return ParseLines(out), nil
	}
	out, err := h.run(ctx, "systemctl", "list-units", "--failed", "--plain", "--no-legend", "--no-pager")
	if err != nil {
		return nil, fmt.Errorf("systemctl list-units --failed: %w", err)
	}
	return ParseFailedUnits(out), nil
}

// FirewallBackend reads iptables' backend (BackendNone without
// iptables).
func (h *Host) FirewallBackend(ctx context.Context) (string, error) {
	out, err := h.run(ctx, "iptables", "-V")
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return BackendNone, nil
		}
		return "", fmt.Errorf("iptables -V: %w", err)
	}
	return ParseIptablesVersion(out)
}

// bootID reads the kernel's boot ID ("" if unreadable).
func (h *Host) bootID() string {
	b, err := fs.ReadFile(h.fsys(), "proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (h *Host) kernelLog(ctx context.Context) ([]KernelLine, error) {
	if h.KernelLog != nil {
		return h.KernelLog(ctx)
	}
	return readKmsg()
}

// ReadClock reads the clock's synchronisation: from chronyc when chronyd
// answers, else from the kernel (adjtimex).
func (h *Host) ReadClock(ctx context.Context) (ClockState, error) {
	if out, err := h.run(ctx, "chronyc", "tracking"); err == nil {
		return ParseChronyTracking(out)
	}
	if h.Clock != nil {
		return h.Clock()
	}
	return readAdjtimex()
}

// ErrNoBaseline fails a probe that compares with a snapshot the step
// did not take.
var ErrNoBaseline = errors.New("no snapshot of the host from before the step to compare with")

// Check runs one host check; base is the snapshot from before the step
// (needed by the baselined kinds). nil means the check passed.
func (h *Host) Check(ctx context.Context, p plan.Probe, base *Snapshot) error {
	if why := Unsupported(p.Kind, h.goos()); why != "" {
		return errors.New(why)
	}
	if p.Kind.Baselined() && (base == nil || !slices.Contains(base.Kinds, p.Kind)) {
		return ErrNoBaseline
	}
	switch p.Kind {
	case plan.ProbeClock:
		return h.checkClock(ctx, p)
	case plan.ProbeDNS:
		return checkDNS(ctx, p)
	case plan.ProbeTLS:
		return h.checkTLS(ctx, p)
	case plan.ProbeMounts:
		return h.checkMounts(p, base)
	case plan.ProbeFailedUnits:
		if base.FailedUnitsErr != "" {
			return fmt.Errorf("%w: %s", ErrNoBaseline, base.FailedUnitsErr)
		}
		now, err := h.FailedUnits(ctx)
		if err != nil {
			return err
		}
		if n := newOnes(base.FailedUnits, now); len(n) > 0 {
			if h.goos() == "windows" {
				return fmt.Errorf("automatic services stopped since the step began: %s", strings.Join(n, ", "))
			}
			return fmt.Errorf("units failed since the step began: %s", strings.Join(n, ", "))
		}
		return nil
	case plan.ProbeFirewallBackend:
		if base.FirewallErr != "" {
			return fmt.Errorf("%w: %s", ErrNoBaseline, base.FirewallErr)
		}
		now, err := h.FirewallBackend(ctx)
		if err != nil {
			return err
		}
		if now != base.Firewall {
			return fmt.Errorf("iptables backend is %s, was %s before the step", now, base.Firewall)
		}
		return nil
	case plan.ProbeMTU:
		return h.checkMTU(p, base)
	case plan.ProbeLinkage:
		return h.checkLinkage(ctx, p)
	case plan.ProbeKernelErrors:
		if base.KernelErr != "" {
			return fmt.Errorf("%w: %s", ErrNoBaseline, base.KernelErr)
		}
		lines, err := h.kernelLog(ctx)
		if err != nil {
			return err
		}
		since := base.KernelSeq
		if boot := h.bootID(); boot != base.KernelBoot {
			since = 0 // rebooted during the step: the new boot's log is all new (record 0 is its banner)
		}
		return NewKernelErrors(lines, since)
	}
	return fmt.Errorf("%s is not a host check", p.Kind)
}

// NewKernelErrors fails when lines hold a kernel record at level err or
// worse after sequence number since, naming the first and the count.
func NewKernelErrors(lines []KernelLine, since uint64) error {
	var bad []KernelLine
	for _, l := range lines {
		if l.Kernel && l.Seq > since && l.Priority <= 3 {
			bad = append(bad, l)
		}
	}
	switch len(bad) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("new kernel error: %q", bad[0].Message)
	}
	return fmt.Errorf("%d new kernel errors, the first: %q", len(bad), bad[0].Message)
}

func newOnes(before, now []string) []string {
	var n []string
	for _, u := range now {
		if !slices.Contains(before, u) {
			n = append(n, u)
		}
	}
	return n
}

func (h *Host) checkClock(ctx context.Context, p plan.Probe) error {
	st, err := h.ReadClock(ctx)
	if err != nil {
		return err
	}
	limit := p.MaxOffset.D()
	if limit <= 0 {
		limit = plan.DefaultClockMaxOffset.D()
	}
	if !st.Synced {
		return fmt.Errorf("clock not synchronised (%s)", st.Source)
	}
	if st.Offset > limit {
		return fmt.Errorf("clock off by %s, at most %s allowed (%s)", st.Offset, limit, st.Source)
	}
	return nil
}

// checkMounts fails for a mount read-only now that was not before or,
// for the paths asked, a path not mounted (or no longer a mount point)
// or that cannot be read.
func (h *Host) checkMounts(p plan.Probe, base *Snapshot) error {
	if base.MountsErr != "" {
		return fmt.Errorf("%w: %s", ErrNoBaseline, base.MountsErr)
	}
	now, err := h.Mounts()
	if err != nil {
		return err
	}
	wasRO := map[string]bool{}
	for _, m := range base.Mounts {
		wasRO[m.Point] = m.ReadOnly
	}
	var bad []string
	if len(p.Paths) > 0 {
		for _, path := range p.Paths {
			path = pathpkg.Clean(path)
			m, ok := MountOf(now, path)
			switch {
			case !ok:
				bad = append(bad, path+" not mounted")
			case m.Point != path:
				if _, was := wasRO[path]; was {
					bad = append(bad, path+" no longer mounted")
				} else if m.ReadOnly && !wasRO[m.Point] {
					bad = append(bad, fmt.Sprintf("%s (on %s) read-only", path, m.Point))
				}
			case m.ReadOnly && !wasRO[m.Point]:
				bad = append(bad, path+" read-only ("+m.FSType+")")
			}
			if ok {
				if _, err := fs.Stat(h.fsys(), strings.TrimPrefix(path, "/")); err != nil && path != "/" {
					bad = append(bad, fmt.Sprintf("%s in error: %v", path, err))
				}
			}
		}
	} else {
		// Every mount: read-only now and not before. A mount that came
		// or went is not a failure here; name it in paths to require it.
		for _, m := range now {
			if ro, was := wasRO[m.Point]; was && m.ReadOnly && !ro {
				bad = append(bad, m.Point+" read-only ("+m.FSType+")")
			}
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return errors.New(strings.Join(slices.Compact(bad), ", "))
	}
	return nil
}

func (h *Host) checkMTU(p plan.Probe, base *Snapshot) error {
	if base.MTUsErr != "" {
		return fmt.Errorf("%w: %s", ErrNoBaseline, base.MTUsErr)
	}
	now, err := ReadMTUs(h.fsys())
	if err != nil {
		return err
	}
	names := p.Interfaces
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(base.MTUs))
	}
	var bad []string
	for _, n := range names {
		was, hadIt := base.MTUs[n]
		is, has := now[n]
		switch {
		case !hadIt && !has:
			bad = append(bad, n+": no such interface")
		case !hadIt:
			bad = append(bad, fmt.Sprintf("%s: MTU %d, but the interface did not exist before the step", n, is))
		case !has:
			bad = append(bad, fmt.Sprintf("%s: gone (MTU %d before the step)", n, was))
		case is != was:
			bad = append(bad, fmt.Sprintf("%s: MTU %d, was %d before the step", n, is, was))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, ", "))
	}
	return nil
}

// UnitBinary is the binary a systemd unit starts (its ExecStart).
func (h *Host) UnitBinary(ctx context.Context, unit string) (string, error) {
	out, err := h.run(ctx, "systemctl", "show", "-p", "ExecStart", "--value", "--", unit)
	if err != nil {
		return "", fmt.Errorf("systemctl show -p ExecStart %s: %w", unit, err)
	}
	b := ParseExecStart(out)
	if b == "" {
		return "", fmt.Errorf("unit %s has no ExecStart", unit)
	}
	return b, nil
}

// LinkageOf resolves the linkage of binary (ResolveLinkage on the host's
// file system).
func (h *Host) LinkageOf(binary string) (*Linkage, error) {
	return ResolveLinkage(h.fsys(), binary)
}

// checkLinkage fails when a binary the probe names (binaries, and the
// unit's ExecStart) cannot be read or has a shared library (or program
// interpreter) that does not resolve. Each failure names its binary,
// unless the probe names one binary and no unit (its description
// already does).
func (h *Host) checkLinkage(ctx context.Context, p plan.Probe) error {
	bins := slices.Clone(p.Binaries)
	if p.Unit != "" {
		b, err := h.UnitBinary(ctx, p.Unit)
		if err != nil {
			return err
		}
		bins = append(bins, b)
	}
	prefix := func(b string) string {
		if len(bins) == 1 && p.Unit == "" {
			return ""
		}
		return b + ": "
	}
	var bad []string
	for _, b := range bins {
		l, err := h.LinkageOf(b)
		if err != nil {
			bad = append(bad, prefix(b)+err.Error())
			continue
		}
		if err := l.Problem(); err != nil {
			bad = append(bad, prefix(b)+err.Error())
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}
