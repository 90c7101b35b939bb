// Command drover-agent is `drover agent` in a binary of its own, for the
// managed nodes: it links the agent and its drivers only (no server,
// store, dashboard or CLI), so an idle agent keeps less of its binary in
// memory. Same flags and environment as `drover agent`, plus the
// Kubernetes node driver's; see internal/agent/agentcmd.
//
// Build it as the release builds drover:
//
//	CGO_ENABLED=0 go build -trimpath -o drover-agent ./cmd/drover-agent
//
// Idle resident memory at a 10 s heartbeat (linux/amd64, measured side by
// side in one run): drover agent 27.0 MiB (5.3 anonymous + 21.6 of its
// binary), drover-agent 17.0 MiB (3.9 + 13.1), a ratio of 0.63; most of
// it is the pages of the binary that start-up and the poll loop touch.
// internal/agent's TestIdleProcessFootprint measures both.
//
// When a package upgrade replaced the program on disk, the agent finishes
// its step, returns ExitReplaced, and main starts the new program in the
// same process (Reexec): under systemd, launchd or a container's init
// alike, the agent's PID stays and no step is cut short.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/drover-dev/drover/internal/agent/agentcmd"
	"github.com/drover-dev/drover/internal/agent/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := service.Main(ctx, func(ctx context.Context) int {
		return agentcmd.Main(ctx, "drover-agent", os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	})
	stop()
	if code == agentcmd.ExitReplaced {
		code = agentcmd.Reexec(os.Args, os.Stderr)
	}
	os.Exit(code)
}
