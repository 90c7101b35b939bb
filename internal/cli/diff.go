package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/api"
)

// newDiffCmd compares a failing node with a healthy one (named, or
// picked by the server), ranked as the server ranks it.
func newDiffCmd(e *env) *cobra.Command {
	var r remote
	var rollout string
	cmd := &cobra.Command{Use: "diff FAILING [HEALTHY] [--rollout R]",
		Short: "Compare a failing node with a healthy one: what the rollout changed, then what is known to break updates, then the rest",
		Long: `Compare a failing node with a healthy one, ranked: first what the rollout
changed on the failing node (from its steps' evidence) and whether the
healthy node got the same change; then differences known to break updates
(OS release, kernel, packages with the direction of their versions, failed
services, container runtime and kubelet, agent version and protocol,
hardware class, zone, kernel modules); then labels. Without HEALTHY, the
server picks the most similar online node (same OS family and version,
hardware class, zone) that succeeded in the rollout or is untouched by it,
and says why. --rollout defaults to the failing node's latest rollout.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("%s: want FAILING [HEALTHY], got %d argument(s)", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			healthy := ""
			if len(args) == 2 {
				healthy = args[1]
			}
			d, err := c.NodeDiff(cmd.Context(), args[0], healthy, rollout)
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, d, func(w io.Writer) { diffTable(w, d) })
		}}
	cmd.Flags().StringVar(&rollout, "rollout", "", "the rollout whose changes are compared (default: the failing node's latest)")
	r.flags(cmd, e, true)
	return cmd
}

func diffTable(w io.Writer, d api.NodeDiff) {
	in := ""
	if d.Rollout != "" {
		in = " in rollout " + d.Rollout
	}
	fmt.Fprintf(w, "failing\t%s (%s%s)\n", d.Failing, orDash(d.FailingState), in)
	fmt.Fprintf(w, "healthy\t%s (%s)\n", d.Healthy, orDash(d.HealthyState))
	if d.Picked != nil {
		fmt.Fprintf(w, "picked\t%s\n", d.Picked.Reason)
	}
	for _, s := range d.Warnings {
		fmt.Fprintf(w, "warning\t%s\n", s)
	}
	if len(d.Sections) == 0 {
		fmt.Fprintln(w, "\nno differences drover knows of")
		return
	}
	fmt.Fprintln(w, "\nRANK\tTIER\tDIMENSION\tKEY\tFAILING\tHEALTHY\tWHY")
	rank := 0
	for _, s := range d.Sections {
		for _, x := range s.Differences {
			rank++
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", rank, s.Tier, s.Dimension, x.Key, orDash(x.Failing), orDash(x.Healthy), x.Reason)
		}
		if s.More > 0 {
			fmt.Fprintf(w, "\t%s\t%s\t(%d more)\t\t\t\n", s.Tier, s.Dimension, s.More)
		}
	}
}
