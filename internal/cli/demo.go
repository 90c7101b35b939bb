package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/demo"
)

func newDemoCmd(e *env) *cobra.Command {
	var asJSON, keep bool
	var nodes int
	var listen string
	var plans []string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a real server and 40 simulated agents through two bundled rollouts",
		Long: `Start a drover server on SQLite in a temporary directory and a
heterogeneous fleet of real agents in the same process (Debian 11/12,
Ubuntu 22.04/24.04, RHEL 8/9, SLES 15, Windows Server 2019/2022, macOS 14
and Kubernetes nodes; three zones, three hardware classes, three tiers),
talking to it over HTTP on loopback and changing simulated machines. Then
run two bundled plans:

  1. a change that hurts one hardware class: the representative canary
     catches it, the rollout halts and rolls the canary back, and nothing
     outside the canary is touched;
  2. a good change rolling through the whole fleet in waves, under zone
     caps, each wave's p99 latency compared with the same nodes before the
     change.

Wave gates are judged as on a production server: the plan's PromQL,
rendered by the gate templates, run by Prometheus's own query engine
(embedded, over the simulated nodes' metrics: http_requests_total{code},
http_request_duration_seconds_p99 and up, labelled instance=NODE), judged
by the gate's mode. A query that does not parse fails the gate here as it
would there.

With --plan FILE (repeatable) the demo runs your plans on its fleet instead
of the bundled ones; the simulated change is good everywhere, so only the
plan's own limits, gates, windows and approvals decide how it goes.

With --keep the server keeps running afterwards so that the CLI (and the
dashboard) can be used against it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := demo.Options{Nodes: nodes, Keep: keep, Listen: listen, Logger: e.log, Plans: plans}
			if !asJSON {
				opts.Progress = e.stdout
			}
			if keep {
				opts.Ready = func(a demo.Access) {
					fmt.Fprintf(e.stderr, "\ndrover demo --keep: the server stays up at %s until you interrupt it (Ctrl-C).\n", a.URL)
					fmt.Fprintf(e.stderr, "  export DROVER_SERVER=%s\n", a.URL)
					for _, u := range a.Users {
						fmt.Fprintf(e.stderr, "  export DROVER_TOKEN=%s   # %s (%s)\n", u.Token, u.Name, u.Role)
					}
					fmt.Fprintln(e.stderr)
				}
			}
			sum, err := demo.Run(cmd.Context(), opts)
			if err != nil {
				return exitf(ExitError, "demo: %w", err)
			}
			if asJSON {
				return writeJSON(e.stdout, sum)
			}
			fmt.Fprintf(e.stdout, "\n== summary (%.0fs, %d nodes)\n", sum.Seconds, sum.Nodes)
			for _, r := range sum.Rollouts {
				fmt.Fprintf(e.stdout, "%s: %s in %.1fs — %d succeeded (%d changed, %d already up to date), %d failed, %d rolled back, %d touched\n",
					r.Name, r.State, r.Seconds, r.NodesSucceeded, r.NodesSucceeded-r.NodesUnchanged, r.NodesUnchanged, r.NodesFailed,
					r.NodesRolledBack, r.NodesTouched)
				if r.Halted {
					fmt.Fprintf(e.stdout, "  halted: %s\n", r.HaltReason)
				}
				var waves []string
				for _, w := range r.Waves {
					waves = append(waves, fmt.Sprintf("%s %s %d nodes %.1fs", w.Name, w.State, w.Nodes, w.Seconds))
				}
				fmt.Fprintf(e.stdout, "  waves: %s\n", strings.Join(waves, "; "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON summary instead of the progress")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the server running afterwards and print how to reach it")
	cmd.Flags().IntVar(&nodes, "nodes", 40, "fleet size")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "server address")
	cmd.Flags().StringArrayVar(&plans, "plan", nil, "run the plan `FILE` on the demo fleet instead of the bundled plans (repeatable)")
	return cmd
}
