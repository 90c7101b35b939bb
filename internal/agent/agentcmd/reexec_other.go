//go:build !unix

package agentcmd

import "io"

// Reexec cannot replace the process here: it returns ExitReplaced, and
// the service manager (the SCM's recovery actions) restarts the agent.
func Reexec(_ []string, _ io.Writer) int { return ExitReplaced }
