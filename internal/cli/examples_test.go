package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/sim"
)

// examplesDir is the repository's examples/.
const examplesDir = "../../examples"

// examples lists every plan in examples/ with where it is rehearsed
// besides the demo fleet and a generated fleet: a new example must be
// added here, so that none goes untested.
var examples = map[string]struct {
	inventory string // an inventory file in examples/ it also runs on
}{
	"quick-start.yaml":           {},
	"openssl-security.yaml":      {inventory: "inventory.ini"},
	"windows-patch-tuesday.yaml": {},
	"macos-update.yaml":          {},
	"kernel-livepatch.yaml":      {},
	"k8s-node-image.yaml":        {},
	"zone-by-zone.yaml":          {},
	"ramp.yaml":                  {},
}

// run runs the CLI in-process and returns its exit code and output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestExamples runs every example through `drover plan validate`, then
// `drover simulate` on the demo fleet (--nodes 40 --seed 7 generates it
// exactly: the demo's mix, zones, classes and seed), on a larger
// generated fleet, and on its inventory when it has one: each must
// select nodes and succeed. On the demo fleet each must also pass the
// checks a server runs at creation (plan validate --inventory): its
// canary covers every stratum of its spread keys (no uncovered strata),
// and every action has a way back on every target node or the plan says
// it goes without one. The demo test (internal/demo) dry-runs them
// on the demo's server and runs quick-start for real.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	for name := range examples {
		if !slices.Contains(names, name) {
			t.Errorf("examples table names %s, which is not in examples/", name)
		}
	}
	mix, err := fleet.ParseMix(fleet.DefaultMix)
	if err != nil {
		t.Fatal(err)
	}
	demo, err := fleet.Generate(fleet.GenSpec{N: 40, Mix: mix, Zones: 3, HardwareClasses: 3}, 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		ex, ok := examples[name]
		if !ok {
			t.Errorf("examples/%s is not in the examples table of this test", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			if code, out, errOut := run(t, "plan", "validate", f); code != 0 {
				t.Fatalf("plan validate: exit %d\n%s%s", code, out, errOut)
			}
			problems, summary := validatePlan(f, demo, true)
			if len(problems) > 0 {
				t.Errorf("plan validate against the demo fleet:\n%s", strings.Join(problems, "\n"))
			}
			if strings.Contains(summary, "uncovered") {
				t.Errorf("plan validate against the demo fleet: %s", summary)
			}
			fleets := [][]string{{"--nodes", "40", "--seed", "7"}, {"--nodes", "500", "--seed", "1"}}
			if ex.inventory != "" {
				inv := filepath.Join(examplesDir, ex.inventory)
				if code, out, errOut := run(t, "plan", "validate", "--inventory", inv, f); code != 0 {
					t.Fatalf("plan validate --inventory %s: exit %d\n%s%s", ex.inventory, code, out, errOut)
				}
				fleets = append(fleets, []string{"--inventory", inv})
			}
			for _, fl := range fleets {
				args := append([]string{"simulate", f, "--json"}, fl...)
				code, out, errOut := run(t, args...)
				if code != 0 {
					t.Fatalf("drover %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
				}
				var res sim.Result
				if err := json.Unmarshal([]byte(out), &res); err != nil {
					t.Fatalf("drover %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				if !res.Succeeded() || res.Nodes.Target == 0 || res.Nodes.Succeeded != res.Nodes.Target || res.InvariantViolations != 0 {
					t.Errorf("%s: state %s, %d of %d nodes succeeded, %d invariant violations", strings.Join(fl, " "),
						res.State, res.Nodes.Succeeded, res.Nodes.Target, res.InvariantViolations)
				}
				if fl[0] == "--nodes" && fl[1] == "40" && len(res.UncoveredStrata) > 0 {
					t.Errorf("on the demo fleet the canary leaves %d strata uncovered, e.g. wave %s: %v (%s)", len(res.UncoveredStrata),
						res.UncoveredStrata[0].Wave, res.UncoveredStrata[0].Values, res.UncoveredStrata[0].Reason)
				}
				t.Logf("%s: %d nodes, makespan %s", strings.Join(fl, " "), res.Nodes.Target,
					(time.Duration(res.MakespanSeconds) * time.Second).String())
			}
		})
	}
}

// The quick-start example stops a change that hurts one hardware class
// at its canary, on the demo fleet: its canary covers the fleet's 14
// os.family × hardware.class strata, gen3 among them.
func TestExampleQuickStartHalts(t *testing.T) {
	f := filepath.Join(examplesDir, "quick-start.yaml")
	code, out, errOut := run(t, "simulate", f, "--nodes", "40", "--seed", "7", "--json", "--fail", `node.hardware.class == "gen3"=1`)
	if code != ExitHalted {
		t.Fatalf("exit %d, want %d\n%s", code, ExitHalted, errOut)
	}
	var res sim.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Halted || !strings.HasPrefix(res.HaltReason, "wave canary: ") || res.NodesTouchedBeforeHalt > 14 {
		t.Errorf("halted %v (%s), %d touched before the halt", res.Halted, res.HaltReason, res.NodesTouchedBeforeHalt)
	}
}
