//go:build !windows

package service

import "context"

// Main runs the agent (run) and returns its exit code. Outside Windows a
// service manager (systemd, launchd) starts the agent as a plain process
// and stops it with SIGTERM, which main turns into ctx's end.
func Main(ctx context.Context, run func(context.Context) int) int { return run(ctx) }
