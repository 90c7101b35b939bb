package cli

import (
	"context"
	"embed"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/sim"
)

// demoPlans are the bundled plans of `drover demo`, run in name order.
//
//go:embed demo/*.yaml
var demoPlans embed.FS

// demoScenario is one bundled rollout: a plan, the failure the demo
// injects and what the demo expects to happen.
type demoScenario struct {
	file     string
	title    string
	failures func(nodes []*fleet.Node) ([]sim.Failure, string)
	// expectHalt is true for the scenario that must be caught.
	expectHalt bool
}

func demoScenarios() []demoScenario {
	return []demoScenario{
		{
			file:  "demo/1-hurts-gen3.yaml",
			title: "a change that hurts one hardware class",
			failures: func(nodes []*fleet.Node) ([]sim.Failure, string) {
				class := lastClass(nodes)
				f := sim.Failure{
					Selector:    fmt.Sprintf("node.hardware.class == %q", class),
					Probability: 1,
					Kind:        sim.FailHealth,
					Reason:      "simulated: agent 7.2 stalls the NIC driver, p99 latency +38%",
				}
				return []sim.Failure{f}, fmt.Sprintf("the change degrades every %s node", class)
			},
			expectHalt: true,
		},
		{
			file:  "demo/2-good-change.yaml",
			title: "a good change through the whole fleet",
			failures: func([]*fleet.Node) ([]sim.Failure, string) {
				return nil, "nothing: the change is good"
			},
		},
	}
}

// lastClass is the highest hardware class of the fleet ("gen3").
func lastClass(nodes []*fleet.Node) string {
	var classes []string
	for _, n := range nodes {
		classes = append(classes, n.Facts.Hardware.Class)
	}
	slices.Sort(classes)
	return classes[len(classes)-1]
}

// demoFleet is the generated heterogeneous fleet the demo runs on.
func demoFleet(seed uint64) ([]*fleet.Node, error) {
	mix, err := fleet.ParseMix("debian:10,ubuntu:8,rhel:8,suse:4,windows:6,macos:4")
	if err != nil {
		return nil, fmt.Errorf("demo fleet: %w", err)
	}
	nodes, err := fleet.Generate(fleet.GenSpec{N: 40, Mix: mix, Zones: 3, HardwareClasses: 3}, seed)
	if err != nil {
		return nil, fmt.Errorf("demo fleet: %w", err)
	}
	return nodes, nil
}

// demoRollout is one rollout in `drover demo --json`.
type demoRollout struct {
	Name                string           `json:"name"`
	Title               string           `json:"title"`
	State               string           `json:"state"`
	Halted              bool             `json:"halted"`
	HaltReason          string           `json:"haltReason"`
	MakespanSeconds     float64          `json:"makespanSeconds"`
	NodesTarget         int              `json:"nodesTarget"`
	NodesSucceeded      int              `json:"nodesSucceeded"`
	NodesFailed         int              `json:"nodesFailed"`
	NodesRolledBack     int              `json:"nodesRolledBack"`
	NodesTouched        int              `json:"nodesTouched"`
	InvariantViolations int              `json:"invariantViolations"`
	Waves               []sim.WaveResult `json:"waves"`
}

func newDemoCmd(e *env) *cobra.Command {
	var asJSON bool
	var seed uint64
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run two bundled rollouts over a simulated 40-node heterogeneous fleet",
		Long: `Run two bundled plans on a virtual clock over a generated fleet of 40
nodes (Debian, Ubuntu, RHEL, SUSE, Windows, macOS; 3 zones; 3 hardware
classes; web, app and db tiers):

  1. a change that hurts one hardware class: the representative canary
     catches it, the rollout halts and rolls the canary back;
  2. a good change rolling through the whole fleet in waves, under zone caps.

The control plane is not needed: the engine that decides is the same one
the server runs.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), e, seed, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON summary instead of the narrative")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "seed of the fleet and the simulation")
	return cmd
}

func runDemo(ctx context.Context, e *env, seed uint64, asJSON bool) error {
	nodes, err := demoFleet(seed)
	if err != nil {
		return exitf(ExitError, "%w", err)
	}
	say := func(format string, args ...any) {
		if !asJSON {
			fmt.Fprintf(e.stdout, format, args...)
		}
	}
	say("drover demo: %s\n\n", describeFleet(nodes))
	var rollouts []demoRollout
	var problems []string
	violations := 0
	scenarios := demoScenarios()
	for k, sc := range scenarios {
		data, err := demoPlans.ReadFile(sc.file)
		if err != nil {
			return exitf(ExitError, "demo: %w", err)
		}
		p, err := plan.Parse(sc.file, data)
		if err != nil {
			return exitf(ExitError, "demo: bundled plan: %w", err)
		}
		failures, injected := sc.failures(nodes)
		say("━━ %d/%d  %s — %s\n", k+1, len(scenarios), p.Name, sc.title)
		say("   injected: %s\n", injected)
		if p.Approvals.Start > 0 {
			say("   (approvals are granted automatically in the demo)\n")
		}
		say("\n")
		cfg := sim.Config{Plan: p, Nodes: nodes, Failures: failures, Seed: seed, Logger: e.log}
		if !asJSON {
			cfg.Progress = func(pr sim.Progress) {
				if pr.Kind != sim.ProgressNodes {
					fmt.Fprintf(e.stdout, "   %s\n", pr)
				}
			}
		}
		res, err := sim.Run(ctx, cfg)
		if err != nil {
			return planErr(p, err)
		}
		violations += res.InvariantViolations
		say("\n%s", indent(sim.Summary(res), "   "))
		say("\n   %s\n\n", demoVerdict(res, sc.expectHalt))
		if sc.expectHalt != res.Halted {
			problems = append(problems, fmt.Sprintf("%s: expected halted=%v, got state %s (%s)", p.Name, sc.expectHalt, res.State, res.HaltReason))
		}
		rollouts = append(rollouts, demoRollout{
			Name: p.Name, Title: sc.title, State: string(res.State), Halted: res.Halted, HaltReason: res.HaltReason,
			MakespanSeconds: res.MakespanSeconds, NodesTarget: res.Nodes.Target,
			NodesSucceeded: res.Nodes.Succeeded, NodesFailed: res.Nodes.Failed + res.Nodes.Quarantined,
			NodesRolledBack: res.Nodes.RolledBack, NodesTouched: res.Nodes.Touched,
			InvariantViolations: res.InvariantViolations, Waves: res.Waves,
		})
	}
	if asJSON {
		if err := writeJSON(e.stdout, map[string]any{"rollouts": rollouts}); err != nil {
			return exitf(ExitError, "%w", err)
		}
	}
	switch {
	case violations > 0:
		return exitf(ExitViolations, "demo: %d invariant violation(s): the engine broke a safety rule", violations)
	case len(problems) > 0:
		return exitf(ExitError, "demo did not go as designed: %s", strings.Join(problems, "; "))
	}
	return nil
}

// demoVerdict is the one-line moral of a demo rollout.
func demoVerdict(r *sim.Result, expectHalt bool) string {
	if r.Halted {
		hurt := "none of them hurt"
		if len(r.HurtTouchedBeforeHalt) > 0 {
			hurt = fmt.Sprintf("hurt: %s", strings.Join(r.HurtTouchedBeforeHalt, ", "))
		}
		untouched := r.Nodes.Target - r.Nodes.Touched
		return fmt.Sprintf("⇒ halted: %d node(s) touched before the halt (%s), %d rolled back, %d never touched.",
			r.NodesTouchedBeforeHalt, hurt, r.Nodes.RolledBack, untouched)
	}
	if r.Succeeded() {
		return fmt.Sprintf("⇒ succeeded: %d nodes changed in %s, peak %d in flight, %d failed.",
			r.Nodes.Succeeded, seconds(r.MakespanSeconds), r.PeakInFlight, r.Nodes.Failed+r.Nodes.Quarantined)
	}
	return fmt.Sprintf("⇒ %s: %s", r.State, r.HaltReason)
}

// describeFleet summarizes a fleet in one line: families, zones, classes.
func describeFleet(nodes []*fleet.Node) string {
	count := func(key string) string {
		m := map[string]int{}
		for _, n := range nodes {
			m[n.Value(key)]++
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprintf("%d simulated nodes\n  os:       %s\n  zone:     %s\n  hardware: %s\n  tier:     %s\n  clock:    virtual, from %s",
		len(nodes), count("os.family"), count("zone"), count("hardware.class"), count("tier"), sim.DefaultStart().Format(time.RFC1123))
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}
