package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/baseline"
	"github.com/drover-dev/drover/internal/plan"
)

func newBaselineCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "baseline", Short: "Apply and show baselines (desired state) and nodes' compliance",
		Long: `A baseline is a selector plus rules: advisories of a severity applied
within a delay, packages pinned at a version, feature updates only with
approval, live patches preferred to reboots. Every change makes a new
version; every version is kept. See docs/baselines.md.`}
	cmd.AddCommand(newBaselineApplyCmd(e), newBaselineListCmd(e), newBaselineGetCmd(e), newBaselineComplianceCmd(e), newBaselineExemptCmd(e), newBaselineRemediateCmd(e))
	return cmd
}

func newBaselineApplyCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "apply FILE", Short: "Apply a baseline file (a new version when its rules changed)",
		Args: exactArgs(1, "a baseline file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return exitf(ExitError, "%w", err)
			}
			if _, err := baseline.Parse(args[0], b); err != nil { // errors with file:line:col before anything is sent
				return exitf(ExitError, "%w", err)
			}
			c, err := r.client(e)
			if err != nil {
				return err
			}
			res, err := c.ApplyBaseline(cmd.Context(), args[0], string(b))
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, res, func(w io.Writer) {
				if res.Changed {
					fmt.Fprintf(w, "baseline %s version %d applied\n", res.Baseline.Name, res.Baseline.Version)
				} else {
					fmt.Fprintf(w, "baseline %s unchanged (version %d)\n", res.Baseline.Name, res.Baseline.Version)
				}
			})
		}}
	r.flags(cmd, e, true)
	return cmd
}

func rulesText(rl baseline.Rules) string {
	var out []string
	if a := rl.Advisories; a != nil {
		out = append(out, fmt.Sprintf("advisories >= %s within %s", a.MinSeverity, plan.Duration(a.Within)))
	}
	for _, p := range rl.Pins {
		s := "pin " + p.Package + "=" + p.Version
		if p.Ecosystem != "" {
			s += " (" + p.Ecosystem + ")"
		}
		out = append(out, s)
	}
	if rl.FeatureUpdates != "" {
		out = append(out, "feature updates: "+rl.FeatureUpdates)
	}
	if rl.LivePatchPreferred {
		out = append(out, "live patch preferred")
	}
	return strings.Join(out, "; ")
}

func newBaselineListCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "list", Short: "List baselines (their current versions)", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			l, err := c.ListBaselines(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, l, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tVERSION\tBY\tAT\tSELECTOR\tRULES")
				for _, b := range l.Baselines {
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", b.Name, b.Version, b.Actor, b.At.UTC().Format(time.RFC3339), dash(b.Selector), dash(clipText(rulesText(b.Rules), 100)))
				}
			})
		}}
	r.flags(cmd, e, true)
	return cmd
}

func newBaselineGetCmd(e *env) *cobra.Command {
	var r remote
	var version int
	cmd := &cobra.Command{Use: "get NAME [--version N]", Short: "Show a baseline (the current version, or --version)", Args: exactArgs(1, "a baseline name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			b, err := c.GetBaseline(cmd.Context(), args[0], version)
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, b, func(w io.Writer) {
				fmt.Fprintf(w, "name\t%s\nversion\t%d\napplied by\t%s\nat\t%s\nselector\t%s\nrules\t%s\n", b.Name, b.Version, b.Actor,
					b.At.UTC().Format(time.RFC3339), dash(b.Selector), dash(rulesText(b.Rules)))
			})
		}}
	cmd.Flags().IntVar(&version, "version", 0, "a version (default the current)")
	r.flags(cmd, e, true)
	return cmd
}

func newBaselineComplianceCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "compliance NAME", Short: "Show each selected node's compliance with a baseline",
		Long: `Each node the baseline selects: compliant, non-compliant (the advisories
past their deadline, published + within, and the pins broken), exempt
(who, why, until) or unknown (the facts say too little). -o json adds
what each non-compliant node needs (packages and versions, reboot, live
patches): the input of a remediation rollout.`,
		Args: exactArgs(1, "a baseline name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			rep, err := c.BaselineCompliance(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, rep, func(w io.Writer) {
				fmt.Fprintln(w, "NODE\tSTATUS\tWHY")
				for _, n := range rep.Nodes {
					var why []string
					for _, v := range n.Violations {
						why = append(why, v.Reason)
					}
					if n.Exemption != nil {
						why = append(why, fmt.Sprintf("by %s until %s: %s", n.Exemption.By, n.Exemption.Expires.UTC().Format(time.RFC3339), n.Exemption.Reason))
					}
					if n.Reason != "" {
						why = append(why, n.Reason)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\n", n.Node, n.Status, dash(clipText(strings.Join(why, "; "), 160)))
				}
				var counts []string
				for _, s := range []baseline.Status{baseline.Compliant, baseline.NonCompliant, baseline.Exempt, baseline.Unknown, baseline.NotSelected} {
					if rep.Counts[string(s)] > 0 {
						counts = append(counts, fmt.Sprintf("%d %s", rep.Counts[string(s)], s))
					}
				}
				fmt.Fprintf(w, "baseline %s version %d: %s\n", rep.Baseline, rep.Version, dash(strings.Join(counts, ", ")))
			})
		}}
	r.flags(cmd, e, true)
	return cmd
}

// parseUntil reads a time (RFC 3339, or a date) or a duration from now
// (7d, 36h).
func parseUntil(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	d, err := plan.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--until %q: want a time (2026-03-01T12:00:00Z, 2026-03-01) or a duration from now (7d, 36h)", s)
	}
	return now.Add(time.Duration(d)), nil
}

func newBaselineExemptCmd(e *env) *cobra.Command {
	var r remote
	var reason, until string
	cmd := &cobra.Command{Use: "exempt NAME NODE --reason R --until T", Short: "Exempt a node from a baseline until a time, with a reason",
		Args: exactArgs(2, "a baseline name and a node"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" || until == "" {
				return exitf(ExitUsage, "--reason and --until are required")
			}
			t, err := parseUntil(until, time.Now())
			if err != nil {
				return exitf(ExitUsage, "%w", err)
			}
			c, err := r.client(e)
			if err != nil {
				return err
			}
			ex, err := c.ExemptNode(cmd.Context(), args[0], api.BaselineExempt{Node: args[1], Reason: reason, Until: t})
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, ex, func(w io.Writer) {
				fmt.Fprintf(w, "node %s exempt from %s until %s (by %s)\n", ex.Node, ex.Baseline, ex.Expires.UTC().Format(time.RFC3339), ex.By)
			})
		}}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	cmd.Flags().StringVar(&until, "until", "", "when the exemption expires: a time or a duration from now, at most a year (required)")
	r.flags(cmd, e, true)
	return cmd
}

func newDriftCmd(e *env) *cobra.Command {
	var r remote
	var node string
	var after int64
	cmd := &cobra.Command{Use: "drift [--node N]", Short: "Show drift: package changes no drover step explains, pins broken",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			l, err := c.ListDrift(cmd.Context(), node, after)
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, l, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tDETECTED\tNODE\tKIND\tPACKAGE\tFROM\tTO\tBASELINE")
				for _, d := range l.Events {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.DetectedAt.UTC().Format(time.RFC3339), d.Node, d.Kind, d.Package,
						dash(d.From), dash(d.To), dash(d.Baseline))
				}
				more := ""
				if l.Next != "" {
					more = " (more: --after " + l.Next + ")"
				}
				fmt.Fprintf(w, "%d events%s\n", len(l.Events), more)
			})
		}}
	cmd.Flags().StringVar(&node, "node", "", "one node's drift")
	cmd.Flags().Int64Var(&after, "after", 0, "events after this id")
	r.flags(cmd, e, true)
	return cmd
}

func newBaselineRemediateCmd(e *env) *cobra.Command {
	var r remote
	var dryRun bool
	var seed string
	cmd := &cobra.Command{Use: "remediate NAME [--dry-run]", Short: "Build the rollout that brings a baseline's non-compliant nodes into compliance, show its dry run, and create it",
		Long: `Builds a plan from the baseline's rollout template for its non-compliant
nodes (one package action with the target versions per os family: apt,
dnf, zypper, Windows updates by KB, macOS updates; the baseline's pins
held by a second one; live patches instead of kernels and reboots when
the baseline prefers them), rehearses it on the
live inventory showing the advisories each wave closes, and, without
--dry-run, creates it as "drover rollout create" does. The baseline's
autoApprove policy may approve the start of security remediations; the
server's approval floor and feature updates are left to people (with
featureUpdates: approval the plan asks for a start approval).`,
		Args: exactArgs(1, "a baseline name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			res, err := c.RemediateBaseline(cmd.Context(), args[0], api.BaselineRemediate{DryRun: dryRun, Seed: seed})
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, res, func(w io.Writer) { remediationText(w, res) })
		}}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show the plan and its dry run; create nothing")
	cmd.Flags().StringVar(&seed, "seed", "", "fix the assignment (decimal); default random")
	r.flags(cmd, e, true)
	return cmd
}

func remediationText(w io.Writer, res api.BaselineRemediation) {
	fmt.Fprintf(w, "baseline %s version %d: %d nodes to remediate\n", res.Baseline, res.Version, len(res.Nodes))
	for _, sk := range res.Skipped {
		fmt.Fprintf(w, "not remediable\t%s\t%s\n", sk.Node, sk.Reason)
	}
	if res.Plan == "" {
		fmt.Fprintln(w, "nothing to do")
		return
	}
	fmt.Fprintf(w, "--- plan\n%s---\n", res.Plan)
	fmt.Fprintln(w, "WAVE\tNODES\tCLOSES")
	for _, wv := range res.Waves {
		fmt.Fprintf(w, "%s\t%d (%s)\t%s\n", wv.Name, len(wv.Nodes), dash(clipText(strings.Join(wv.Nodes, ", "), 80)), dash(strings.Join(wv.Advisories, ", ")))
	}
	if res.DryRun != nil && res.DryRun.Text != "" {
		fmt.Fprintf(w, "dry run %s:\n%s", res.DryRun.ID, res.DryRun.Text)
	}
	if res.AutoApproved {
		fmt.Fprintf(w, "approved by policy: %s\n", res.Policy)
	} else {
		fmt.Fprintf(w, "approval: %s\n", res.Policy)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if ro := res.Rollout; ro != nil {
		fmt.Fprintf(w, "created rollout %s (%s)\n", ro.ID, ro.State)
	}
}
