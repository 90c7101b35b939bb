package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/preflight"
)

func newPlanCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Validate, show and describe rollout plans",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPlanValidateCmd(e), newPlanShowCmd(e), newPlanSchemaCmd(e))
	return cmd
}

func newPlanValidateCmd(e *env) *cobra.Command {
	var inventory string
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check plans; with --inventory, also assign them to its nodes",
		Long: `Check each plan file strictly (unknown fields, wrong types, bad selectors,
unknown waves, ...) and print one FILE:LINE:COL line per problem.

With --inventory, also assign each valid plan to the inventory's nodes as a
rollout would, and report what only shows against real nodes: a target or
wave selector that matches no node, canary strata left uncovered (a
canary with cover: strata that cannot cover them is refused), actions
that cannot be rolled back on some target nodes (refused unless the plan
says rollback: none or names their os family in noRollbackOn; accepted
ones are listed as "no way back"), a
maintenance window a node's label names that the plan does not define, a
wave gate query that does not render over a wave's nodes or does not parse
as PromQL (Prometheus's own parser). A server runs the same checks at
creation, and also refuses wave gates when it has no Prometheus and plans
its nodes' agents would refuse.`,
		Args: minArgs(1, "at least one plan FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var nodes []*fleet.Node
			if inventory != "" {
				var err error
				if nodes, err = fleet.LoadInventoryFile(inventory); err != nil {
					return exitf(ExitError, "inventory: %w", err)
				}
			}
			bad := 0
			for _, f := range args {
				problems, summary := validatePlan(f, nodes, inventory != "")
				for _, p := range problems {
					fmt.Fprintln(e.stdout, p)
				}
				if len(problems) > 0 {
					bad++
					continue
				}
				fmt.Fprintf(e.stdout, "%s: ok: %s\n", f, summary)
			}
			if bad > 0 {
				return &exitError{code: ExitError}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&inventory, "inventory", "", "inventory `FILE` (drover YAML/JSON, Ansible INI/YAML) to assign the plans against")
	return cmd
}

// validatePlan returns the problems of one plan file, one line each, or a
// one-line summary of the valid plan.
func validatePlan(file string, nodes []*fleet.Node, assign bool) (problems []string, summary string) {
	p, err := plan.ParseFile(file)
	if err != nil {
		var es plan.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				problems = append(problems, e.Error())
			}
			return problems, ""
		}
		return []string{fmt.Sprintf("%s: %v", file, err)}, ""
	}
	summary = fmt.Sprintf("%s, %d wave(s)", p.Name, len(p.Waves))
	if !assign {
		return nil, summary
	}
	a, err := engine.Assign(p, nodes, 0)
	if err != nil {
		var pe *engine.PlanError
		if errors.As(err, &pe) {
			return []string{p.Errorf(pe.Path, "%s", pe.Msg).Error()}, ""
		}
		return []string{fmt.Sprintf("%s: assign: %v", file, err)}, ""
	}
	if es := preflight.Check(p, a, preflight.Metrics{}); len(es) > 0 {
		for _, e := range es {
			problems = append(problems, e.Error())
		}
		return problems, ""
	}
	perWave := map[string]int{}
	skipped := 0
	for _, n := range a.Nodes {
		if n.State.Wave == "" {
			skipped++
			continue
		}
		perWave[n.State.Wave]++
	}
	var parts []string
	for _, w := range p.Waves {
		parts = append(parts, fmt.Sprintf("%s %d", w.Name, perWave[w.Name]))
	}
	summary += fmt.Sprintf("; %d of %d nodes targeted (%s)", len(a.Nodes), len(nodes), strings.Join(parts, ", "))
	if skipped > 0 {
		summary += fmt.Sprintf(", %d skipped", skipped)
	}
	if len(a.Uncovered) > 0 {
		summary += fmt.Sprintf("; %d canary strata uncovered:", len(a.Uncovered))
		for _, s := range a.Uncovered {
			summary += "\n  " + describeStratum(s.Wave, s.Values, s.Reason)
		}
	}
	for _, n := range preflight.NoWayBacks(p, preflight.Targets(a)) {
		summary += "\n  no way back: " + n.Text()
	}
	var targeted []*fleet.Node
	for _, n := range a.Nodes {
		if n.State.Wave != "" {
			targeted = append(targeted, n.Node)
		}
	}
	bad, err := preflight.Compatibility(p, targeted)
	if err != nil {
		return []string{fmt.Sprintf("%s: compatibility: %v", file, err)}, ""
	}
	if len(bad) > 0 {
		summary += fmt.Sprintf("; %d nodes break the compatibility matrix (their pre-flight fails; onFail: %s):", len(bad), p.Preflight.OnFail)
		for _, b := range bad {
			summary += "\n  " + b.Node + ": " + strings.Join(b.Reasons, "; ")
		}
	}
	return nil, summary
}

func describeStratum(wave string, values map[string]string, reason string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(values)) {
		kv = append(kv, k+"="+values[k])
	}
	return fmt.Sprintf("wave %s: %s (%s)", wave, strings.Join(kv, " "), reason)
}

func newPlanShowCmd(e *env) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "show FILE",
		Short: "Print the effective plan: ramps expanded, every default explicit",
		Args:  exactArgs(1, "one plan FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseFormat(out, formatYAML, formatJSON)
			if err != nil {
				return err
			}
			p, err := loadPlan(e, args[0])
			if err != nil {
				return err
			}
			if f == formatJSON {
				b, err := json.MarshalIndent(p, "", "  ")
				if err != nil {
					return exitf(ExitError, "show %s: %w", args[0], err)
				}
				_, err = fmt.Fprintf(e.stdout, "%s\n", b)
				return err
			}
			b, err := plan.Marshal(p)
			if err != nil {
				return exitf(ExitError, "show %s: %w", args[0], err)
			}
			_, err = e.stdout.Write(b)
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "yaml", "output format: yaml | json")
	return cmd
}

func newPlanSchemaCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the plan format",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := plan.Schema()
			if err != nil {
				return exitf(ExitError, "schema: %w", err)
			}
			_, err = e.stdout.Write(b)
			if err == nil && (len(b) == 0 || b[len(b)-1] != '\n') {
				_, err = fmt.Fprintln(e.stdout)
			}
			return err
		},
	}
}

// loadPlan parses a plan file; problems are printed to stderr one
// FILE:LINE:COL line each and turned into exit code 1.
func loadPlan(e *env, file string) (*plan.Plan, error) {
	p, err := plan.ParseFile(file)
	if err == nil {
		return p, nil
	}
	var es plan.Errors
	if errors.As(err, &es) {
		for _, pe := range es {
			fmt.Fprintln(e.stderr, pe.Error())
		}
		return nil, &exitError{code: ExitError, err: fmt.Errorf("%s: %d problem(s)", file, len(es))}
	}
	return nil, exitf(ExitError, "%w", err)
}
