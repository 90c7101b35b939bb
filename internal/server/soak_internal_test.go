package server

import (
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/plan"
)

// TestSoakingReport: a gate pass inside its rollout's node soak is the
// one report that does not ask for a scheduling pass; a pass at or after
// the soak's end, a failure, a pass without HealthySince, and a report of
// a rollout this scheduler has not cached all do. (The soak ending in a
// success end to end: internal/bench TestRolloutStepProbe, real server
// and agents with minHealthy.)
func TestSoakingReport(t *testing.T) {
	p := &plan.Plan{}
	p.Gates.Node.MinHealthy = plan.Duration(500 * time.Millisecond)
	sc := &scheduler{rollouts: map[string]*rolloutCache{"ro-1": {id: "ro-1", plan: p}, "ro-nosoak": {id: "ro-nosoak", plan: &plan.Plan{}}}}
	since := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		step string
		gate engine.Verdict
		hs   time.Time
		at   time.Time
		want bool
	}{
		{"pass inside the soak", "ro-1/n1/apply/1", engine.Pass, since, since.Add(100 * time.Millisecond), true},
		{"pass at the soak's end", "ro-1/n1/apply/1", engine.Pass, since, since.Add(500 * time.Millisecond), false},
		{"fail inside the soak", "ro-1/n1/apply/1", engine.Fail, since, since.Add(100 * time.Millisecond), false},
		{"pass without healthySince", "ro-1/n1/apply/1", engine.Pass, time.Time{}, since, false},
		{"rollout without a soak", "ro-nosoak/n1/apply/1", engine.Pass, since, since, false},
		{"rollout not cached", "ro-2/n1/apply/1", engine.Pass, since, since, false},
		{"malformed step ID", "ro-1", engine.Pass, since, since, false},
	}
	for _, c := range cases {
		if got := sc.soaking(c.step, c.gate, c.hs, c.at); got != c.want {
			t.Errorf("%s: soaking = %v, want %v", c.name, got, c.want)
		}
	}
}
