package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/preflight"
	"github.com/drover-dev/drover/internal/sim"
)

// defaultMix is the os.family mix of a generated fleet when --mix is not
// given: the demo fleet's.
const defaultMix = "os.family=" + fleet.DefaultMix

type simulateFlags struct {
	inventory       string
	nodes           int
	mix             string
	zones           int
	hardwareClasses int
	fail            []string
	failApply       []string
	failRollback    []string
	failInterrupt   []string
	failPreflight   []string
	step            sim.Dist
	rollback        sim.Dist
	seed            uint64
	tick            time.Duration
	start           string
	json            bool
	output          string
	timeline        bool
	progress        string
	budgets         []string
	freezes         string
	history         string
	hist            *sim.History // read from history
}

// durations is the duration model of plan p: learned from --history
// (the --step-duration and --rollback-duration model where it has no
// history), or those flags' model.
func (f *simulateFlags) durations(p *plan.Plan) sim.Durations {
	fallback := sim.PlanDurations{StepDist: f.step, RollbackDist: f.rollback}
	if f.hist == nil {
		return fallback
	}
	return f.hist.Model(sim.ActionKey(p), fallback)
}

// readHistory reads --history, if given.
func (f *simulateFlags) readHistory() error {
	if f.history == "" {
		return nil
	}
	file, err := os.Open(f.history)
	if err != nil {
		return exitf(ExitError, "history: %w", err)
	}
	defer file.Close()
	if f.hist, err = sim.ReadHistory(file); err != nil {
		return exitf(ExitError, "%s: %w", f.history, err)
	}
	if f.tick == 0 {
		f.tick = historyTick
	}
	return nil
}

// historyTick is the tick of a simulation with --history and no --tick:
// a server's default scheduling tick, since learned steps may take
// seconds.
const historyTick = time.Second

func newSimulateCmd(e *env) *cobra.Command {
	f := &simulateFlags{step: sim.DefaultStepDuration(), rollback: sim.DefaultRollbackDuration()}
	cmd := &cobra.Command{
		Use:   "simulate PLAN [PLAN...]",
		Short: "Rehearse a rollout (or several at once) on a virtual clock, with injected failures",
		Long: `Rehearse a plan against an inventory (or a generated fleet) on a virtual
clock. The real engine decides every step; simulated agents apply the
change, and injected failures hurt the nodes they select. Every decision is
checked against the plan's safety rules (caps, windows, budgets, ...).

Failures are SELECTOR=PROBABILITY, the selector a CEL expression over node
as in plans; without =PROBABILITY the failure hits every selected node:
  --fail 'node.hardware.class == "gen3"=1'      the change hurts gen3 nodes
  --fail-apply 'node.os.family == "suse"=0.2'    the step fails on 20% of SUSE
  --fail-interrupt 'node.labels.zone == "a"=0.3' agents crash mid-step (gates.onInterrupted)
  --fail-preflight 'node.labels.zone == "b"'     zone b's repository lacks the version (preflight.onFail)

Durations are 5m, uniform:2m-8m, normal:5m,1m or lognormal:5m,0.5.
With --history FILE (from drover history export) step durations are drawn
from what the fleet's steps really took, per action kind, OS family and
version and hardware class, and wave gates take their initial delay,
interval and count as on a server; nodes without history use
--step-duration, and the result's notes say so per wave.

Several plans run as several rollouts at once over the same fleet, as a
server runs them: a node changes under one rollout at a time, and fleet
disruption budgets (--budget NAME:MAX[:PER[:SELECTOR]], e.g.
--budget 'zones:1:zone' or --budget 'web:25%::node.labels.tier == "web"')
and fleet freezes (--freezes FILE.ics) bound them together; the result
gives each rollout's outcome and each budget domain's peak against its
limit.

Exit status: 0 the rollout succeeded, 3 it halted or failed, 4 the engine
broke an invariant (a bug), 1 on errors, 2 on usage errors.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%s: want at least one PLAN file", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 || len(f.budgets) > 0 || f.freezes != "" {
				return runSimulateFleet(cmd.Context(), e, args, f, cmd.Flags().Changed("nodes"))
			}
			return runSimulate(cmd.Context(), e, args[0], f, cmd.Flags().Changed("nodes"))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.inventory, "inventory", "", "inventory `FILE` (drover YAML/JSON, Ansible INI/YAML)")
	fl.IntVar(&f.nodes, "nodes", 0, "generate a fleet of `N` nodes instead of reading an inventory")
	fl.StringVar(&f.mix, "mix", defaultMix, "generated fleet: os.family=FAMILY:WEIGHT,...")
	fl.IntVar(&f.zones, "zones", 3, "generated fleet: number of zones (labels zone=a, b, ...)")
	fl.IntVar(&f.hardwareClasses, "hardware-classes", 3, "generated fleet: number of hardware classes (gen1, gen2, ...)")
	fl.StringArrayVar(&f.fail, "fail", nil, "the change hurts nodes: 'SELECTOR=PROBABILITY' (repeatable)")
	fl.StringArrayVar(&f.failApply, "fail-apply", nil, "the step fails on nodes: 'SELECTOR=PROBABILITY' (repeatable)")
	fl.StringArrayVar(&f.failRollback, "fail-rollback", nil, "rollback fails on nodes: 'SELECTOR=PROBABILITY' (repeatable)")
	fl.StringArrayVar(&f.failInterrupt, "fail-interrupt", nil, "the agent crashes mid-step on nodes, per attempt: 'SELECTOR=PROBABILITY' (repeatable)")
	fl.StringArrayVar(&f.failPreflight, "fail-preflight", nil, "the node pre-flight fails on nodes (every plan not saying preflight.onFail: ignore): 'SELECTOR=PROBABILITY' (repeatable)")
	fl.Var(&f.step, "step-duration", "duration of one node's step (`DIST`)")
	fl.Var(&f.rollback, "rollback-duration", "duration of one node's rollback (`DIST`)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the assignment, durations and failure draws")
	fl.DurationVar(&f.tick, "tick", 0, "virtual time quantum (0: 10s, coarser for large fleets)")
	fl.StringVar(&f.start, "start", "", "virtual start time, RFC 3339 (default 2026-01-05T00:00:00Z, a Monday)")
	fl.BoolVar(&f.json, "json", false, "print the result as one JSON object (same as -o json)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table | json | yaml")
	fl.BoolVar(&f.timeline, "timeline", false, "table output: also print the event timeline")
	fl.StringVar(&f.progress, "progress", "auto", "progress on stderr: auto (fleets of 1,000 nodes or more) | always | never")
	fl.StringArrayVar(&f.budgets, "budget", nil, "fleet disruption budget NAME:MAX[:PER[:SELECTOR]] over every rollout (repeatable)")
	fl.StringVar(&f.freezes, "freezes", "", "fleet freezes: the events of an iCalendar `FILE` (UTC unless they say)")
	fl.StringVar(&f.history, "history", "", "step durations learned from a fleet: a `FILE` of drover history export (tick 1s unless --tick)")
	return cmd
}

// check returns the output format and refuses flags that do not go
// together: an inventory or a generated fleet, one of them.
func (f *simulateFlags) check(nodesGiven bool) (format, error) {
	out, err := parseFormat(f.output, formatTable, formatJSON, formatYAML)
	if err != nil {
		return "", err
	}
	if f.json {
		out = formatJSON
	}
	switch {
	case f.inventory != "" && nodesGiven:
		return "", usagef("simulate: give --inventory or --nodes, not both")
	case f.inventory == "" && !nodesGiven:
		return "", usagef("simulate: give --inventory FILE or --nodes N")
	case nodesGiven && f.nodes <= 0:
		return "", usagef("simulate: --nodes %d: want a positive count", f.nodes)
	}
	return out, nil
}

func runSimulate(ctx context.Context, e *env, planFile string, f *simulateFlags, nodesGiven bool) error {
	out, err := f.check(nodesGiven)
	if err != nil {
		return err
	}
	switch f.progress {
	case "auto", "always", "never":
	default:
		return usagef("simulate: --progress %q: want auto, always or never", f.progress)
	}
	failures, err := parseFailures(f)
	if err != nil {
		return usagef("simulate: %w", err)
	}
	if err := f.readHistory(); err != nil {
		return err
	}
	var start time.Time
	if f.start != "" {
		if start, err = time.Parse(time.RFC3339, f.start); err != nil {
			return usagef("simulate: --start: %w", err)
		}
	}
	p, err := loadPlan(e, planFile)
	if err != nil {
		return err
	}
	var nodes []*fleet.Node
	if f.inventory != "" {
		if nodes, err = fleet.LoadInventoryFile(f.inventory); err != nil {
			return exitf(ExitError, "inventory: %w", err)
		}
	} else {
		mix, err := parseMixFlag(f.mix)
		if err != nil {
			return usagef("simulate: %w", err)
		}
		spec := fleet.GenSpec{N: f.nodes, Mix: mix, Zones: f.zones, HardwareClasses: f.hardwareClasses}
		if nodes, err = fleet.Generate(spec, f.seed); err != nil {
			return usagef("simulate: %w", err)
		}
	}
	rehearsalNotes(e, p, nodes, f.seed)
	showProgress := f.progress == "always" || (f.progress == "auto" && len(nodes) >= 1000)
	cfg := sim.Config{
		Plan: p, Nodes: nodes, Failures: failures,
		Durations: f.durations(p), GateTiming: f.hist != nil,
		Start: start, Seed: f.seed, Tick: f.tick, Logger: e.log,
	}
	if showProgress {
		cfg.Progress = func(pr sim.Progress) { fmt.Fprintln(e.stderr, pr.String()) }
	}
	wall := time.Now()
	res, err := sim.Run(ctx, cfg)
	if err != nil {
		return planErr(p, err)
	}
	if showProgress {
		fmt.Fprintf(e.stderr, "simulated %d nodes, %s of virtual time, in %s (tick %s, %d decisions)\n",
			len(nodes), sim.FormatDuration(time.Duration(res.MakespanSeconds*float64(time.Second))),
			time.Since(wall).Round(time.Millisecond), sim.FormatDuration(time.Duration(res.TickSeconds*float64(time.Second))), res.Stats.Decisions)
	}
	switch out {
	case formatJSON:
		err = writeJSON(e.stdout, res)
	case formatYAML:
		err = writeYAML(e.stdout, res)
	default:
		_, err = io.WriteString(e.stdout, sim.Summary(res))
		if err == nil && f.timeline {
			_, err = fmt.Fprintf(e.stdout, "\ntimeline:\n%s", sim.Timeline(res))
		}
	}
	if err != nil {
		return exitf(ExitError, "%w", err)
	}
	return resultCode(e, res)
}

// rehearsalNotes prints to stderr what a server would say of the plan on
// these nodes before simulating it: a canary that cannot cover its strata
// and actions without a way back the plan does not accept (creation
// refuses both), and the nodes with no way back the plan accepts. The
// simulation runs either way; assignment errors are left to it.
func rehearsalNotes(e *env, p *plan.Plan, nodes []*fleet.Node, seed uint64) {
	a, err := engine.Assign(p, nodes, seed)
	if err != nil {
		return
	}
	targets := preflight.Targets(a)
	for _, pe := range append(preflight.Cover(p, a), preflight.Rollbacks(p, targets)...) {
		fmt.Fprintf(e.stderr, "a server would refuse this rollout: %s\n", pe.Error())
	}
	for _, n := range preflight.NoWayBacks(p, targets) {
		if n.Accepted {
			fmt.Fprintf(e.stderr, "no way back: %s\n", n.Text())
		}
	}
}

// resultCode maps a simulation result to the exit code, saying loudly why
// it is not 0.
func resultCode(e *env, res *sim.Result) error {
	switch {
	case res.InvariantViolations > 0:
		return exitf(ExitViolations, "%d invariant violation(s): the engine broke a safety rule (first: %s)", res.InvariantViolations, res.Violations[0].Msg)
	case !res.Succeeded():
		return exitf(ExitHalted, "rollout %s %s: %s", res.Rollout, res.State, res.HaltReason)
	}
	return nil
}

// planErr locates an engine.PlanError in the plan file.
func planErr(p *plan.Plan, err error) error {
	var pe *engine.PlanError
	if errors.As(err, &pe) {
		return exitf(ExitError, "%s", p.Errorf(pe.Path, "%s", pe.Msg).Error())
	}
	return exitf(ExitError, "%w", err)
}

func parseFailures(f *simulateFlags) ([]sim.Failure, error) {
	var out []sim.Failure
	for _, set := range []struct {
		vals []string
		kind sim.FailureKind
	}{{f.fail, sim.FailHealth}, {f.failApply, sim.FailApply}, {f.failRollback, sim.FailRollback}, {f.failInterrupt, sim.FailInterrupt}, {f.failPreflight, sim.FailPreflight}} {
		for _, v := range set.vals {
			fl, err := sim.ParseFailure(v, set.kind)
			if err != nil {
				return nil, err
			}
			out = append(out, fl)
		}
	}
	return out, nil
}

// parseMixFlag reads --mix: os.family=FAMILY:WEIGHT,... (the key prefix is
// the only key a mix may use for now).
func parseMixFlag(s string) ([]fleet.Share, error) {
	key, val, ok := strings.Cut(s, "=")
	if !ok {
		return nil, fmt.Errorf("--mix %q: want os.family=FAMILY:WEIGHT,...", s)
	}
	if key != "os.family" {
		return nil, fmt.Errorf("--mix %q: only os.family mixes are supported", s)
	}
	mix, err := fleet.ParseMix(val)
	if err != nil {
		return nil, fmt.Errorf("--mix: %w", err)
	}
	return mix, nil
}

// seconds renders a float second count as a duration for tables.
func seconds(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	return sim.FormatDuration(time.Duration(s * float64(time.Second)))
}
