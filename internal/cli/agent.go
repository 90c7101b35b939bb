package cli

import (
	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/agent/agentcmd"
)

// newAgentCmd runs the agent of one node. Its command line is
// drover-agent's (internal/agent/agentcmd), so that the full binary and the
// slim one take the same flags and have the same drivers, the Kubernetes
// node driver included.
func newAgentCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "agent --server URL --state-dir DIR [flags]",
		Short: "Run the agent of this node: report facts, execute steps, report results",
		Long: `Run the agent of this node (the same as the slim drover-agent binary;
see drover agent --help for its flags).`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := agentcmd.Main(cmd.Context(), "drover agent", args, e.getenv, e.stdout, e.stderr); code != agentcmd.ExitOK {
				return &exitError{code: code} // agentcmd printed why
			}
			return nil
		},
	}
}
