package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// TestRolloutText checks the one-line texts of rollouts: no stray dashes,
// no doubled words, rounded times.
func TestRolloutText(t *testing.T) {
	now := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)
	approved := api.Rollout{ID: "r1", Author: "alice", ApprovalsNeeded: 1, ApprovalsGot: 1,
		Approvals: []api.Approval{{By: "bob"}, {By: "alice"}}}
	for _, c := range []struct {
		name, got, want string
	}{
		{"state without reason", stateLine(api.Rollout{ID: "r1", State: engine.RolloutRunning}), "r1: running"},
		{"state with reason", stateLine(api.Rollout{ID: "r1", State: engine.RolloutPaused, Reason: "change freeze"}), "r1: paused (change freeze)"},
		{"approvals by", approvalCount(approved, ""), "1/1 by bob"},
		{"approvals none yet", approvalCount(api.Rollout{ApprovalsNeeded: 2}, ""), "0/2, none yet"},
		{"uncovered canary wave", uncoveredText(engine.Stratum{Wave: "canary", Values: map[string]string{"zone": "a", "class": "gen3"}, Reason: "held back"}),
			"wave canary does not cover class=gen3 zone=a: held back"},
		{"progress", progress(engine.TallyPhases(map[string]int{"succeeded": 2, "rolled-back": 3, "failed": 1})), "2/6 (1 failed, 3 rolled back)"},
		{"progress unchanged", progress(api.Rollout{Counts: map[string]int{"succeeded": 6}, Unchanged: 2}.Tally()), "6/6 (2 already up to date)"},
		{"baking", watchStatus(api.Rollout{ID: "r1", State: engine.RolloutRunning,
			Waves: []api.Wave{{Name: "canary", BakeUntil: now.Add(23*time.Second + 300*time.Millisecond)}}}, now),
			"r1 running: wave canary baking: 24s left"},
		{"baked, gates pending", watchStatus(api.Rollout{ID: "r1", State: engine.RolloutRunning,
			Waves: []api.Wave{{Name: "canary", BakeUntil: now.Add(-time.Second)}}}, now),
			"r1 running: wave canary baked, waiting for its gates to pass"},
		{"soaking", watchStatus(api.Rollout{ID: "r1", State: engine.RolloutRunning,
			Waves: []api.Wave{{Name: "rest", Soaking: 3, SoakUntil: now.Add(12 * time.Second)}}}, now),
			"r1 running: wave rest: 3 nodes soaking, longest 12s left"},
		{"one soaking, long bake, main wait", watchStatus(api.Rollout{ID: "r1", State: engine.RolloutRunning,
			Waves: []api.Wave{{Name: "canary", BakeUntil: now.Add(29*time.Minute + 31*time.Second), Soaking: 1, SoakUntil: now.Add(1011 * time.Millisecond)}},
			Waits: []engine.Wait{{Reason: "zone a at cap 1/1", Count: 1}, {Reason: "wave rest waits for canary", Count: 5}}}, now),
			"r1 running: wave canary baking: 29m31s left; wave canary: 1 node soaking, 2s left; 5 nodes wait: wave rest waits for canary"},
		{"verifying, gates not passing", watchStatus(api.Rollout{ID: "r1", State: engine.RolloutRunning,
			Waves: []api.Wave{{Name: "rest", Soaking: 2}}}, now),
			"r1 running: wave rest: 2 nodes verifying, node gates not passing yet"},
		{"approval", watchStatus(api.Rollout{ID: "r1", State: engine.RolloutPendingApproval,
			Waits: []engine.Wait{{Reason: "waiting for approvals: 0/1", Count: 4}}}, now),
			"r1 pending-approval: 4 nodes wait: waiting for approvals: 0/1"},
		{"in flight", watchStatus(api.Rollout{ID: "r1", State: engine.RolloutRunning, Counts: map[string]int{"running": 1}}, now),
			"r1 running: 1 node in flight"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
		if strings.Contains(c.got, " -") || strings.Contains(c.got, "canary canary") {
			t.Errorf("%s: stray characters in %q", c.name, c.got)
		}
	}
}
