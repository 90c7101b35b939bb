package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// newStopCmd is stop-the-line: `drover stop --all --reason R` stops
// dispatch fleet-wide, `drover stop ROLLOUT --reason R` one rollout,
// `drover stop --lift --reason R` lifts the fleet-wide stop. A stop waits,
// printing what is still in flight, until nothing is: that line is the
// confirmation that the stop took.
func newStopCmd(e *env) *cobra.Command {
	var r remote
	var all, lift, noWait bool
	var reason string
	var timeout, interval time.Duration
	cmd := &cobra.Command{
		Use:   "stop (--all | ROLLOUT | --lift) --reason R",
		Short: "Stop the line: nothing new is dispatched, steps not begun are cancelled, wait until nothing is in flight",
		Long: `Stop the line.

  drover stop --all --reason R    no server dispatches anything, for any rollout
  drover stop ROLLOUT --reason R  one rollout: it is paused ("stopped by ...")
  drover stop --lift --reason R   lift the fleet-wide stop (admin)

Steps not yet begun on agents are cancelled (their agents acknowledge and
do nothing); steps under way finish, or roll themselves back as the plan
says. The command then waits, printing the nodes still in flight by
rollout, until nothing is in flight, and says so. A stopped rollout is
resumed with 'drover rollout resume ROLLOUT'. Stopping needs the operator
role; lifting the fleet-wide stop needs admin.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) > 1:
				return usagef("stop takes one rollout ID at most")
			case lift && (all || len(args) > 0):
				return usagef("--lift lifts the fleet-wide stop: give neither --all nor a rollout")
			case !lift && all == (len(args) == 1):
				return usagef("say what to stop: --all for the whole fleet, or one rollout ID")
			case reason == "":
				return usagef("--reason is required: it goes into the audit log")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var rollout string
			switch {
			case lift:
				st, err := c.LiftLine(ctx, reason)
				if err != nil {
					return apiErr(err)
				}
				fmt.Fprintf(e.stdout, "line stop lifted: dispatch resumes (%d node(s) in flight)\n", st.InFlight)
				return nil
			case all:
				st, err := c.StopLine(ctx, reason)
				if err != nil {
					return apiErr(err)
				}
				if st.Already {
					fmt.Fprintf(e.stdout, "line already stopped by %s at %s: %s\n", st.By, st.At.UTC().Format(time.RFC3339), st.Reason)
				} else {
					fmt.Fprintf(e.stdout, "line stopped: nothing is dispatched; %d step(s) cancelled before they were handed out, %d cancel(s) sent to agents\n",
						st.Cancelled, st.CancelRequested)
				}
			default:
				rollout = args[0]
				ro, err := c.Command(ctx, rollout, "stop", 0, api.CommandRequest{Reason: reason})
				if err != nil {
					return apiErr(err)
				}
				fmt.Fprintln(e.stdout, stateLine(ro))
			}
			if noWait {
				return nil
			}
			return waitNothingInFlight(ctx, e, c, rollout, timeout, interval)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "stop the whole fleet (every rollout, every server)")
	cmd.Flags().BoolVar(&lift, "lift", false, "lift the fleet-wide stop")
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the audit log)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the stop is recorded, without waiting for the nodes in flight")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up waiting after this long (exit 3)")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "how often to look at what is in flight")
	r.flags(cmd, e, false)
	return cmd
}

// waitNothingInFlight polls the line's status (one rollout's part when
// rollout is set), printing the nodes in flight whenever they change,
// until none is; then it prints "nothing in flight" with each rollout's
// counts. It gives up after timeout with ExitHalted.
func waitNothingInFlight(ctx context.Context, e *env, c *api.Client, rollout string, timeout, interval time.Duration) error {
	start := time.Now()
	deadline := start.Add(timeout)
	seen := map[string]bool{}
	last := ""
	for {
		st, err := c.Line(ctx)
		if err != nil {
			return apiErr(err)
		}
		var flying []api.LineRollout
		for _, ro := range st.Rollouts {
			if rollout == "" || ro.ID == rollout {
				flying = append(flying, ro)
				seen[ro.ID] = true
			}
		}
		if len(flying) == 0 {
			return nothingInFlight(ctx, e, c, rollout, seen, time.Since(start))
		}
		if line := inFlightLine(flying); line != last {
			fmt.Fprintf(e.stdout, "[%5s] %s\n", time.Since(start).Round(time.Second), line)
			last = line
		}
		if time.Now().After(deadline) {
			return exitf(ExitHalted, "still in flight after %s: %s", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// inFlightLine names the nodes in flight by rollout.
func inFlightLine(rs []api.LineRollout) string {
	n := 0
	var parts []string
	for _, ro := range rs {
		var nodes []string
		for _, nd := range ro.Nodes {
			s := nd.ID + " " + string(nd.Phase)
			if nd.CancelRequested {
				s += " (cancel sent)"
			}
			nodes = append(nodes, s)
		}
		n += len(ro.Nodes)
		parts = append(parts, fmt.Sprintf("%s: %s", ro.ID, sampleIDs(nodes, len(nodes))))
	}
	return fmt.Sprintf("in flight: %d node(s); %s", n, strings.Join(parts, "; "))
}

// nothingInFlight prints the confirmation with what each rollout's nodes
// carry now.
func nothingInFlight(ctx context.Context, e *env, c *api.Client, rollout string, seen map[string]bool, took time.Duration) error {
	ids := []string{}
	if rollout != "" {
		ids = append(ids, rollout)
	} else {
		for id := range seen {
			ids = append(ids, id)
		}
		slices.Sort(ids)
	}
	fmt.Fprintf(e.stdout, "nothing in flight (waited %s)\n", took.Round(100*time.Millisecond))
	for _, id := range ids {
		ro, err := c.GetRollout(ctx, id, false)
		var se *api.StatusError
		if errors.As(err, &se) && se.Status == http.StatusNotFound {
			continue // removed meanwhile
		}
		if err != nil {
			return apiErr(err)
		}
		fmt.Fprintf(e.stdout, "  %s: %s; %s\n", ro.ID, ro.State, phaseCounts(ro.Counts))
	}
	return nil
}

// phaseCounts lists the node counts in phase order.
func phaseCounts(counts map[string]int) string {
	order := []engine.Phase{engine.PhaseSucceeded, engine.PhaseVerifying, engine.PhaseFailed, engine.PhaseQuarantined,
		engine.PhaseRolledBack, engine.PhaseRollbackUnhealthy, engine.PhaseRollingBack, engine.PhaseRunning, engine.PhaseQueued, engine.PhaseUnknown,
		engine.PhasePending, engine.PhaseSkipped}
	var parts []string
	for _, p := range order {
		if n := counts[string(p)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, p))
		}
	}
	return strings.Join(parts, ", ")
}
