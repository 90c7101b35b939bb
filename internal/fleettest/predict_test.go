package fleettest

import (
	"context"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/sim"
)

// TestDebianFleetPrediction: on the Debian fleet, rollouts of the test
// package (1.0 -> 1.1 -> 1.0 with real apt) build the step history;
// the prediction stored at the next one's creation (1.1 again) then
// gives its makespan, and the ETA halfway through the real end, within
// ±10%; a dry run made before it, which the rollout is created from,
// within ±10% too.
func TestDebianFleetPrediction(t *testing.T) {
	if d, ok := t.Deadline(); ok && time.Until(d) < 8*time.Minute {
		t.Fatalf("the Debian fleet test needs up to 8 minutes; go test's -timeout leaves %s (run it with -timeout 20m)", time.Until(d).Round(time.Second))
	}
	var nodes []*node
	for _, n := range fleetNodes() {
		if n.role == "fleet" {
			nodes = append(nodes, n)
		}
	}
	f := setup(t, nodes)
	ctx := context.Background()
	spec := func(name, version string) planSpec {
		// A 6 s soak: the fixed part of each step (soak, bake, the
		// scheduler's tick) outweighs apt's time, which varies with the
		// machine's load between the history's rollouts and this one.
		return planSpec{Name: name, Selector: fleetSelector, Version: version, MinHealthy: "6s",
			Waves:  "  - name: canary\n    nodes: 2\n    canary: true\n  - name: rest\n",
			Limits: "  maxInFlight: 2\n  caps:\n    zone: 1\n"}
	}
	// The first rollout on containers just started is cold (apt's
	// caches, the page cache: its steps took 2–3 times as long); the
	// history keeps the newest rollout per key, the second one's.
	for _, p := range []planSpec{spec("testsvc-1-1", "1.1"), spec("testsvc-back-1-0", "1.0")} {
		ro := f.waitTerminal(t, f.create(t, p), 5*time.Minute)
		if ro.State != engine.RolloutSucceeded {
			t.Fatalf("history rollout %s %s:\n%s", p.Name, ro.State, describeRollout(ro))
		}
	}

	next := spec("testsvc-1-1-again", "1.1")
	dry, err := f.api.DryRun(ctx, next.Name+".yaml", next.yaml())
	if err != nil {
		t.Fatal(err)
	}
	var res sim.Result
	if err := json.Unmarshal(dry.Result, &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("dry run:\n%s", dry.Text)

	// The rollout is the one the dry run rehearsed: its seed, its waves.
	created, err := f.api.CreateRolloutFrom(ctx, api.CreateRolloutRequest{FromDryRun: dry.ID})
	if err != nil {
		t.Fatal(err)
	}
	id := created.ID
	if created.DryRun != dry.ID || created.Seed != dry.Seed || created.AssignmentSHA256 != dry.AssignmentSHA256 || len(created.Moves) > 0 {
		t.Errorf("rollout %s: dry run %q seed %s assignment %s moves %v; want dry run %s seed %s assignment %s, identical",
			id, created.DryRun, created.Seed, created.AssignmentSHA256, created.Moves, dry.ID, dry.Seed, dry.AssignmentSHA256)
	}
	var half *api.ETA
	var halfAt time.Time
	ro := f.waitRollout(t, id, 5*time.Minute, "a terminal state", func(ro api.Rollout) bool {
		if half == nil && ro.ETA != nil && ro.Counts["succeeded"]*2 >= ro.Total {
			half, halfAt = ro.ETA, time.Now()
		}
		return ro.State.Terminal()
	})
	if ro.State != engine.RolloutSucceeded || ro.Prediction == nil || ro.Prediction.ErrorPercent == nil || half == nil {
		t.Fatalf("second rollout %s, prediction %+v, ETA at half %+v:\n%s", ro.State, ro.Prediction, half, describeRollout(ro))
	}
	// Wave membership: every node in the wave the dry run named, the
	// canary's members the same.
	members, canary := rolloutMembers(ro)
	if !maps.EqualFunc(members, dry.Members, slices.Equal) {
		t.Errorf("rollout %s waves %v, dry run %s waves %v", id, members, dry.ID, dry.Members)
	}
	if len(dry.Canary) == 0 || !slices.Equal(canary, dry.Canary) {
		t.Errorf("rollout %s canary %v, dry run %s canary %v", id, canary, dry.ID, dry.Canary)
	}
	t.Logf("waves identical to the dry run's: %v (canary %v)", members, canary)
	actual := *ro.Prediction.ActualMakespanSeconds
	dryErr := (actual - res.MakespanSeconds) / res.MakespanSeconds * 100
	end := ro.CreatedAt.Add(time.Duration(actual * float64(time.Second)))
	etaErr := half.End.Sub(end).Seconds() / actual * 100
	t.Logf("Debian fleet: dry run %.1fs, prediction at creation %.1fs, actual %.1fs: dry-run error %+.1f%%, prediction error %+.1f%%; "+
		"ETA at half (%.1fs in) off by %+.1fs, %+.1f%% of the makespan (p10–p90 %.1fs–%.1fs from the real end)",
		res.MakespanSeconds, ro.Prediction.MakespanSeconds, actual, dryErr, *ro.Prediction.ErrorPercent,
		halfAt.Sub(ro.CreatedAt).Seconds(), half.End.Sub(end).Seconds(), etaErr, half.EndP10.Sub(end).Seconds(), half.EndP90.Sub(end).Seconds())
	// The rollout was created from the dry run (its seed, its waves): the
	// dry run and the prediction at creation are both held to ±10%.
	if math.Abs(dryErr) > 10 {
		t.Errorf("dry run makespan off by %+.1f%%", dryErr)
	}
	if e := *ro.Prediction.ErrorPercent; math.Abs(e) > 10 {
		t.Errorf("prediction at creation off by %+.1f%%", e)
	}
	if math.Abs(etaErr) > 10 {
		t.Errorf("ETA at half off by %+.1f%% of the makespan", etaErr)
	}
}

// rolloutMembers returns a rollout's (fetched with its nodes) wave ->
// nodes and its canary waves' nodes, each in node ID order, as a dry
// run reports them.
func rolloutMembers(ro api.Rollout) (map[string][]string, []string) {
	isCanary := map[string]bool{}
	for _, w := range ro.Waves {
		isCanary[w.Name] = w.Canary
	}
	members := map[string][]string{}
	var canary []string
	for _, n := range ro.Nodes {
		members[n.Wave] = append(members[n.Wave], n.ID)
		if isCanary[n.Wave] {
			canary = append(canary, n.ID)
		}
	}
	for w := range members {
		slices.Sort(members[w])
	}
	slices.Sort(canary)
	return members, canary
}
