package demo

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
)

// TestRehearsalOnDemo: on the demo's real agents, a dry run of the
// bundled good change, then the live rollout created from it: every wave
// has the same members, the canary included, before and after it ran.
func TestRehearsalOnDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	text, err := plans.ReadFile("plans/2-good-change.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checked := false
	ready := func(acc Access) {
		defer cancel() // the test is done: stop the demo before it runs its own plans
		c := &api.Client{Base: acc.URL, Token: acc.Users[0].Token}
		dr, err := c.Rehearse(ctx, api.DryRunRequest{Plan: string(text), File: "2-good-change.yaml"})
		if err != nil {
			t.Errorf("dry run: %v", err)
			return
		}
		if len(dr.Canary) != 6 || !slices.Equal(dr.Members["canary"], dr.Canary) {
			t.Errorf("dry run canary = %v, members %v; want the 6 canary wave members", dr.Canary, dr.Members)
		}
		ro, err := c.CreateRolloutFrom(ctx, api.CreateRolloutRequest{FromDryRun: dr.ID})
		if err != nil {
			t.Errorf("create from dry run %s: %v", dr.ID, err)
			return
		}
		if ro.DryRun != dr.ID || ro.Seed != dr.Seed || ro.AssignmentSHA256 != dr.AssignmentSHA256 || len(ro.Moves) > 0 {
			t.Errorf("rollout %s: dry run %q seed %s assignment %s moves %v; want dry run %s seed %s assignment %s, identical",
				ro.ID, ro.DryRun, ro.Seed, ro.AssignmentSHA256, ro.Moves, dr.ID, dr.Seed, dr.AssignmentSHA256)
		}
		for {
			got, err := c.GetRollout(ctx, ro.ID, true)
			if err != nil {
				t.Errorf("get rollout: %v", err)
				return
			}
			members := map[string][]string{}
			for _, n := range got.Nodes {
				members[n.Wave] = append(members[n.Wave], n.ID)
			}
			for w := range members {
				slices.Sort(members[w])
			}
			if !maps.EqualFunc(members, dr.Members, slices.Equal) {
				t.Errorf("rollout %s (%s) waves %v, dry run %s waves %v", ro.ID, got.State, members, dr.ID, dr.Members)
				return
			}
			if got.State.Terminal() {
				if got.State != "succeeded" {
					t.Errorf("rollout %s ended %s: %s", ro.ID, got.State, got.Reason)
				}
				checked = true
				return
			}
			select {
			case <-ctx.Done():
				t.Errorf("rollout %s still %s: %v", ro.ID, got.State, ctx.Err())
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	_, err = Run(ctx, Options{Nodes: 24, Step: 100 * time.Millisecond, Dir: t.TempDir(), Ready: ready})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("demo: %v", err)
	}
	if !checked {
		t.Fatal("the rollout created from the dry run was not followed to its end")
	}
}
