package agentcmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/drover-dev/drover/internal/agent/service"
)

// serviceMain is `PROG service install|uninstall`: it registers the agent
// with launchd (macOS) or the service control manager (Windows), started
// as `PROG --config CONFIG`. Linux's packages ship a systemd unit instead.
func serviceMain(prog string, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || (args[0] != "install" && args[0] != "uninstall") {
		fmt.Fprintf(stderr, "Usage: %s service install|uninstall\n", prog)
		return ExitUsage
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "%s: service %s: %v\n", prog, args[0], err)
		return ExitError
	}
	spec := service.DefaultSpec(runtime.GOOS, exe)
	do := service.Install
	if args[0] == "uninstall" {
		do = service.Uninstall
	}
	if err := do(context.Background(), spec); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return ExitError
	}
	fmt.Fprintf(stdout, "%s: service %s: done (config %s)\n", prog, args[0], service.ConfigPath(runtime.GOOS))
	return ExitOK
}
