//go:build unix

package agentcmd

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// Reexec replaces this process with the program now at its path, with
// the same arguments and environment (after ExitReplaced). It returns
// only when that fails, with ExitReplaced: the service manager then
// restarts the agent.
func Reexec(args []string, stderr io.Writer) int {
	exe, err := os.Executable()
	if err == nil {
		err = syscall.Exec(exe, args, os.Environ())
	}
	fmt.Fprintf(stderr, "drover-agent: start the replaced program: %v\n", err)
	return ExitReplaced
}
