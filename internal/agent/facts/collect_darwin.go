//go:build darwin

package facts

import (
	"context"
	"fmt"
	"runtime"
	"strings"

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/fleet"
)

// Collect returns the facts of this macOS node.
func Collect(ctx context.Context, r driver.Runner) (fleet.Facts, error) {
	out, _, err := r.Run(ctx, nil, "sw_vers")
	if err != nil {
		return fleet.Facts{}, fmt.Errorf("facts: sw_vers: %w", err)
	}
	var f fleet.Facts
	f.OS, _ = ParseSwVers(out)
	f.Arch = runtime.GOARCH
	if out, _, err := r.Run(ctx, nil, "uname", "-r"); err == nil {
		f.Kernel = strings.TrimSpace(string(out))
	}
	if out, _, err := r.Run(ctx, nil, "sysctl", "-n", "kern.boottime"); err == nil {
		f.BootID = ParseBootTime(out)
	}
	if out, _, err := r.Run(ctx, nil, "sysctl", "-n", "hw.model"); err == nil {
		f.Hardware.Class = strings.TrimSpace(string(out))
	}
	if out, _, err := r.Run(ctx, nil, "pkgutil", "--pkgs"); err == nil {
		f.Packages = ParsePkgutilPkgs(out)
	}
	return f, nil
}

// PackageStamp is "": the agent reads this OS's updates on its facts
// interval and after each step only.
func PackageStamp() string { return "" }
