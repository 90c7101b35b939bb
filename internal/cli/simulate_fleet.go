package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drover-dev/drover/internal/disruption"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/ical"
	"github.com/drover-dev/drover/internal/sim"
)

// parseBudgetFlag reads --budget NAME:MAX[:PER[:SELECTOR]] (the selector
// last, so that it may hold colons).
func parseBudgetFlag(s string) (disruption.Budget, error) {
	parts := strings.SplitN(s, ":", 4)
	if len(parts) < 2 {
		return disruption.Budget{}, fmt.Errorf("--budget %q: want NAME:MAX[:PER[:SELECTOR]]", s)
	}
	q, err := disruption.ParseMaxUnavailable(parts[1])
	if err != nil {
		return disruption.Budget{}, fmt.Errorf("--budget %q: max %q: %w", s, parts[1], err)
	}
	b := disruption.Budget{Name: parts[0], MaxUnavailable: q}
	if len(parts) > 2 {
		b.Per = parts[2]
	}
	if len(parts) > 3 {
		b.Selector = parts[3]
	}
	if err := b.Validate(); err != nil {
		return b, fmt.Errorf("--budget %q: %w", s, err)
	}
	return b, nil
}

// runSimulateFleet rehearses several rollouts at once under fleet
// budgets and freezes (sim.RunFleet).
func runSimulateFleet(ctx context.Context, e *env, planFiles []string, f *simulateFlags, nodesGiven bool) error {
	out, err := f.check(nodesGiven)
	if err != nil {
		return err
	}
	failures, err := parseFailures(f)
	if err != nil {
		return usagef("simulate: %w", err)
	}
	var start time.Time
	if f.start != "" {
		if start, err = time.Parse(time.RFC3339, f.start); err != nil {
			return usagef("simulate: --start: %w", err)
		}
	}
	if err := f.readHistory(); err != nil {
		return err
	}
	cfg := sim.FleetConfig{Start: start, Tick: f.tick, Seed: f.seed}
	for _, b := range f.budgets {
		bu, err := parseBudgetFlag(b)
		if err != nil {
			return usagef("simulate: %w", err)
		}
		cfg.Budgets = append(cfg.Budgets, bu)
	}
	if f.freezes != "" {
		data, err := os.ReadFile(f.freezes)
		if err != nil {
			return exitf(ExitError, "%w", err)
		}
		evs, err := ical.Parse(filepath.Base(f.freezes), data, "UTC")
		if err != nil {
			return exitf(ExitError, "%w", err)
		}
		for i, ev := range evs {
			name := slug(ev.Summary)
			if name == "" {
				name = fmt.Sprintf("event-%d", i+1)
			}
			cfg.Freezes = append(cfg.Freezes, disruption.Freeze{Name: name, Calendar: ev.Spec, Reason: ev.Summary})
		}
	}
	if f.inventory != "" {
		if cfg.Nodes, err = fleet.LoadInventoryFile(f.inventory); err != nil {
			return exitf(ExitError, "inventory: %w", err)
		}
	} else {
		mix, err := parseMixFlag(f.mix)
		if err != nil {
			return usagef("simulate: %w", err)
		}
		if cfg.Nodes, err = fleet.Generate(fleet.GenSpec{N: f.nodes, Mix: mix, Zones: f.zones, HardwareClasses: f.hardwareClasses}, f.seed); err != nil {
			return usagef("simulate: %w", err)
		}
	}
	names := map[string]int{}
	for k, file := range planFiles {
		p, err := loadPlan(e, file)
		if err != nil {
			return err
		}
		id := p.Name
		if names[id]++; names[id] > 1 {
			id = fmt.Sprintf("%s-%d", id, names[id])
		}
		cfg.Rollouts = append(cfg.Rollouts, sim.Config{Plan: p, RolloutID: id, Failures: failures, Durations: f.durations(p),
			GateTiming: f.hist != nil, Seed: f.seed + uint64(k), Logger: e.log})
	}
	res, err := sim.RunFleet(ctx, cfg)
	if err != nil {
		return exitf(ExitError, "%w", err)
	}
	switch out {
	case formatJSON:
		err = writeJSON(e.stdout, res)
	case formatYAML:
		err = writeYAML(e.stdout, res)
	default:
		err = fleetSummary(e.stdout, res)
	}
	if err != nil {
		return exitf(ExitError, "%w", err)
	}
	if res.InvariantViolations > 0 {
		return exitf(ExitViolations, "%d fleet invariant violation(s): the engine broke a safety rule (first: %s)", res.InvariantViolations, res.Violations[0].Msg)
	}
	for _, r := range res.Rollouts {
		if err := resultCode(e, r); err != nil {
			return err
		}
	}
	return nil
}

// fleetSummary prints each rollout's summary, then the fleet: budget
// domain peaks against their limits and the waits other rollouts,
// budgets and freezes caused.
func fleetSummary(w io.Writer, res *sim.FleetResult) error {
	for _, r := range res.Rollouts {
		fmt.Fprintf(w, "== rollout %s\n%s\n", r.Rollout, sim.Summary(r))
	}
	fmt.Fprintf(w, "== fleet: %d rollouts, %s, peak %d nodes in flight across them\n", len(res.Rollouts),
		seconds(res.MakespanSeconds), res.PeakInFlight)
	fmt.Fprintf(w, "waits (node-decisions): %d for a node another rollout held, %d for a fleet budget, %d for a fleet freeze\n",
		res.HoldWaits, res.BudgetWaits, res.FreezeWaits)
	if len(res.Budgets) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BUDGET\tDOMAIN\tPEAK\tLIMIT")
		for _, b := range res.Budgets {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", b.Budget, dash(b.Domain), b.Peak, b.Limit)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "fleet invariant violations: %d\n", res.InvariantViolations)
	return nil
}
