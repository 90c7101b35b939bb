//go:build windows

package facts

import (
	"context"
	"fmt"

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/fleet"
)

// Collect returns the facts of this Windows node through PowerShell.
func Collect(ctx context.Context, r driver.Runner) (fleet.Facts, error) {
	out, _, err := r.Run(ctx, nil, "powershell.exe", "-NoProfile", "-NonInteractive", "-Command", WindowsOSQuery)
	if err != nil {
		return fleet.Facts{}, fmt.Errorf("facts: %w", err)
	}
	w, err := ParseWindowsOS(out)
	if err != nil {
		return fleet.Facts{}, fmt.Errorf("facts: %w", err)
	}
	var fixes []HotFix
	if out, _, err := r.Run(ctx, nil, "powershell.exe", "-NoProfile", "-NonInteractive", "-Command", WindowsHotFixQuery); err == nil {
		fixes, _ = ParseHotFixes(out)
	}
	return WindowsFacts(w, fixes), nil
}

// PackageStamp is "": the agent reads this OS's updates on its facts
// interval and after each step only.
func PackageStamp() string { return "" }
