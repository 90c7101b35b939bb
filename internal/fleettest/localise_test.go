package fleettest

import (
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// TestDebianFleetLocalisation: a change that hurts only the nodes of one
// label value is localised to that value. Seven containers: four in
// zone a, three in zone b whose /srv/data is mounted read-only (docker
// run --tmpfs /srv/data:ro, as a data disk the kernel remounted
// read-only). drover-testsvc 1.4 keeps its state in /srv/data: it is
// healthy in zone a and answers 503 in zone b. The rollout takes all
// seven at once and allows two failures, so the three zone-b failures
// breach the budget after the zone-a nodes succeeded and pause the
// rollout; the reason
// ends with the localisation, naming labels.zone=b (3 of 3 failed, 0 of
// 4 succeeded: Fisher p = 1/35 ≈ 0.029, one testable value).
func TestDebianFleetLocalisation(t *testing.T) {
	if d, ok := t.Deadline(); ok && time.Until(d) < 5*time.Minute {
		t.Fatalf("the localisation fleet test needs up to 5 minutes (it takes about 1); go test's -timeout leaves %s (run it with -timeout 20m)", time.Until(d).Round(time.Second))
	}
	var nodes []*node
	for _, n := range []string{"a1", "a2", "a3", "a4"} {
		nodes = append(nodes, &node{name: n, suite: "bookworm", zone: "a", role: "fleet"})
	}
	for _, n := range []string{"b1", "b2", "b3"} {
		nodes = append(nodes, &node{name: n, suite: "bookworm", zone: "b", role: "fleet", tmpfs: "/srv/data:ro"})
	}
	f := setup(t, nodes)
	id := f.create(t, planSpec{Name: "localise-zone", Selector: `node.labels.role == "fleet"`, Version: "1.4",
		Waves:  "  - name: all\n    failureBudget:\n      maxFailures: 2\n",
		Limits: "  maxInFlight: 7\n", MaxFailures: "2", OnBreach: "pause", MinHealthy: "3s", Deadline: "20s"})
	ro := f.waitRollout(t, id, 5*time.Minute, "paused or stopped", func(ro api.Rollout) bool {
		return ro.State == engine.RolloutPaused || ro.State.Terminal()
	})
	t.Logf("rollout %s: %s", ro.State, ro.Reason)
	if ro.State != engine.RolloutHalted && ro.State != engine.RolloutPaused && ro.State != engine.RolloutFailed {
		t.Errorf("rollout %s, want stopped:\n%s", ro.State, describeRollout(ro))
	}
	const want = "3 of 3 failed nodes have labels.zone=b; 0 of 4 succeeded nodes do"
	if !strings.Contains(ro.Reason, want) {
		t.Errorf("halt reason %q does not localise the failures to labels.zone=b (want %q):\n%s", ro.Reason, want, describeRollout(ro))
	}
	for _, n := range nodes {
		rn := rolloutNode(ro, n.name)
		failed := rn.Phase == engine.PhaseFailed || rn.Phase == engine.PhaseRolledBack || rn.Phase == engine.PhaseRollbackUnhealthy
		if (n.zone == "b" && !failed) || (n.zone == "a" && rn.Phase != engine.PhaseSucceeded) {
			t.Errorf("%s (zone %s): %s %s", n.name, n.zone, rn.Phase, rn.Reason)
		}
	}
}
