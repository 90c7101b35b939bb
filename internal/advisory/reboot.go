package advisory

import (
	"strings"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/pkgversion"
)

// KernelBehind reports whether the node runs an older kernel than the
// newest installed: Debian and Ubuntu name each kernel package after its
// release (linux-image-6.1.0-27-amd64, against uname -r 6.1.0-25-amd64);
// rpm families give the kernel package's version-release, which is
// uname -r without the architecture. It returns the running and the
// newest installed kernel; false when the facts cannot tell.
func KernelBehind(f fleet.Facts) (running, installed string, behind bool) {
	running = f.Kernel
	if running == "" {
		return "", "", false
	}
	kind, ok := KindOf(f.OS.Family)
	if !ok {
		return running, "", false
	}
	switch kind {
	case pkgversion.Dpkg:
		for p := range f.Packages {
			rel, ok := strings.CutPrefix(p, "linux-image-")
			if !ok || rel == "" || rel[0] < '0' || rel[0] > '9' {
				continue // meta packages (linux-image-amd64)
			}
			if installed == "" || pkgversion.Debian(rel, installed) > 0 {
				installed = rel
			}
		}
		return running, installed, installed != "" && pkgversion.Debian(installed, running) > 0
	case pkgversion.RPM:
		for _, p := range []string{"kernel-core", "kernel", "kernel-default"} {
			if v, ok := f.Packages[p]; ok {
				installed = stripEpoch(v)
				break
			}
		}
		return running, installed, installed != "" && pkgversion.RPMEVR(stripArch(running), installed) < 0 &&
			!strings.HasPrefix(stripArch(running), installed)
	}
	return running, "", false
}

// RebootDebt reports whether the node needs a reboot: its facts say so,
// or it runs an older kernel than the newest installed.
func RebootDebt(f fleet.Facts) bool {
	_, _, behind := KernelBehind(f)
	return f.RebootRequired || behind
}
