//go:build linux

package facts

import (
	"context"

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/fleet"
)

// Collect returns the facts of this Linux node, read from / and the tools
// r runs.
func Collect(ctx context.Context, r driver.Runner) (fleet.Facts, error) {
	return (&Linux{Runner: r}).Collect(ctx)
}

// PackageStamp is a cheap stamp of this node's package database, which
// changes with every package change (Linux.PackageStamp).
func PackageStamp() string { return (&Linux{}).PackageStamp() }
