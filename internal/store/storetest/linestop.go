package storetest

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store"
)

// testLineStop: a fleet-wide stop cancels the steps not begun (at once if
// never handed out, by asking the agent otherwise), leaves the ones under
// way, refuses every later commit with steps on any server, is seen by
// a second server, and is lifted once; all of it audited with actor and
// reason.
func testLineStop(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	data := get(s.LoadRollout(ctx, "r1"))(t)
	get(s.ApplyCommit(ctx, startCommit(t, data, term, at(time.Minute), "n1", "n2", "n3")))(t)
	get(s.PendingSteps(ctx, "n1", at(2*time.Minute)))(t) // n1's step handed out, not begun
	ok(t, s.ReportStep(ctx, store.Report{StepID: stepID("n2", 1), NodeID: "n2", Phase: engine.PhaseRunning, At: at(2 * time.Minute)}))

	stop, already, err := s.StopLine(ctx, "bob", "incident 7", at(3*time.Minute))
	ok(t, err)
	if already || stop.By != "bob" || stop.Reason != "incident 7" {
		t.Fatalf("StopLine = %+v, already %v", stop, already)
	}
	if _, already, err := s.StopLine(ctx, "carol", "again", at(4*time.Minute)); err != nil || !already {
		t.Fatalf("second StopLine: already %v, err %v", already, err)
	}
	other, err := s.Reopen(ctx)
	ok(t, err)
	defer other.Close()
	if l, stopped, err := other.GetLineStop(ctx); err != nil || !stopped || l.By != "bob" {
		t.Fatalf("another server reads the stop as %+v, %v, %v", l, stopped, err)
	}
	data = get(s.LoadRollout(ctx, "r1"))(t)
	if n := nodeOf(t, data, "n3"); n.State.Phase != engine.PhasePending || !strings.Contains(n.State.Reason, "cancelled before it was handed out") {
		t.Fatalf("n3 never handed out: %+v", n.State)
	}
	if steps := get(s.PendingSteps(ctx, "n3", at(5*time.Minute)))(t); len(steps) != 0 {
		t.Fatalf("n3's cancelled step still handed out: %+v", steps)
	}
	if n := nodeOf(t, data, "n1"); n.State.Phase != engine.PhaseQueued || !strings.Contains(n.State.Reason, "cancel requested") {
		t.Fatalf("n1 handed out, not begun: %+v", n.State)
	}
	if steps := get(s.PendingSteps(ctx, "n1", at(5*time.Minute)))(t); len(steps) != 1 || steps[0].CancelRequested.IsZero() {
		t.Fatalf("n1's step should carry its cancel: %+v", steps)
	}
	if n := nodeOf(t, data, "n2"); n.State.Phase != engine.PhaseRunning {
		t.Fatalf("n2 under way: %+v", n.State)
	}

	c := startCommit(t, data, term, at(6*time.Minute), "n4")
	_, err = s.ApplyCommit(ctx, c)
	wantErr(t, err, store.ErrLineStopped, "a commit dispatching while the line is stopped")
	// A commit that dispatches nothing (judging nodes) goes on.
	get(s.ApplyCommit(ctx, store.Commit{Rollout: "r1", Version: data.Rollout.Version, Term: term, Now: at(6 * time.Minute), State: engine.RolloutRunning}))(t)

	err = s.ReportStep(ctx, store.Report{StepID: stepID("n2", 1), NodeID: "n2", Phase: engine.PhaseCancelled, At: at(7 * time.Minute)})
	wantErr(t, err, store.ErrConflict, "a cancelled report of a step under way")
	ok(t, s.ReportStep(ctx, store.Report{StepID: stepID("n1", 1), NodeID: "n1", Phase: engine.PhaseCancelled, At: at(7 * time.Minute)}))
	ok(t, s.ReportStep(ctx, store.Report{StepID: stepID("n1", 1), NodeID: "n1", Phase: engine.PhaseCancelled, At: at(8 * time.Minute)})) // a repeat
	err = s.ReportStep(ctx, store.Report{StepID: stepID("n1", 1), NodeID: "n1", Phase: engine.PhaseRunning, At: at(8 * time.Minute)})
	wantErr(t, err, store.ErrConflict, "a running report after the agent acknowledged the cancel")
	flying := get(s.InFlight(ctx))(t)
	if len(flying) != 1 || flying[0].Node != "n2" || flying[0].Phase != engine.PhaseRunning {
		t.Fatalf("in flight after the cancels: %+v", flying)
	}
	ok(t, s.ReportStep(ctx, store.Report{StepID: stepID("n2", 1), NodeID: "n2", Phase: engine.PhaseFailed, Reason: "apt: exit 100", At: at(9 * time.Minute)}))
	if flying := get(s.InFlight(ctx))(t); len(flying) != 0 {
		t.Fatalf("in flight after n2's result: %+v", flying)
	}

	lifted, err := s.LiftLine(ctx, "alice", "incident over", at(10*time.Minute))
	ok(t, err)
	if lifted.By != "bob" {
		t.Fatalf("lifted %+v", lifted)
	}
	_, err = s.LiftLine(ctx, "alice", "", at(11*time.Minute))
	wantErr(t, err, store.ErrConflict, "lifting a line that runs")
	data = get(s.LoadRollout(ctx, "r1"))(t)
	get(s.ApplyCommit(ctx, startCommit(t, data, term, at(12*time.Minute), "n4")))(t)

	var actions []string
	for _, e := range get(s.ListAudit(ctx, 0, 1000, ""))(t) {
		if strings.HasPrefix(e.Action, "line.") {
			var d map[string]any
			ok(t, json.Unmarshal(e.Detail, &d))
			actions = append(actions, e.Actor+" "+e.Action+" "+d["reason"].(string))
		}
	}
	if want := []string{"bob line.stop incident 7", "alice line.lift incident over"}; !slices.Equal(actions, want) {
		t.Fatalf("audit of the line: %q, want %q", actions, want)
	}
}

// validPlan is a plan that parses (the store reads gates.onInterrupted
// from it).
const validPlan = `apiVersion: drover.dev/v1
name: openssl
target:
  selector: node.os.family == "debian"
change:
  actions:
    - package:
        packages: [{name: openssl, version: "3.0.16-1"}]
waves:
  - name: canary
  - name: rest
`

// testInterrupted: an interrupted step closes, the node goes back to
// pending once (attempt kept, interruption counted), and a second
// interruption fails it.
func testInterrupted(t *testing.T, s Backend) {
	ctx := context.Background()
	addNode(t, s, "n1", at(time.Hour))
	get(s.CreateRollout(ctx, store.Rollout{ID: "r1", Name: "openssl", Author: "alice", Plan: []byte(validPlan),
		State: engine.RolloutRunning, Seed: 1, CreatedAt: at(0)},
		[]store.RolloutNode{{NodeID: "n1", State: engine.NodeState{Phase: engine.PhasePending, Wave: "canary", Since: at(0)}}},
		[]store.Wave{{Name: "canary", WaveStatus: engine.WaveStatus{State: engine.WaveRunning}}, {Name: "rest", WaveStatus: engine.WaveStatus{State: engine.WavePending}}},
		"alice"))(t)
	term, _, err := s.Campaign(ctx, "server-1")
	ok(t, err)
	for attempt, want := range []engine.Phase{engine.PhasePending, engine.PhaseFailed} {
		data := get(s.LoadRollout(ctx, "r1"))(t)
		get(s.ApplyCommit(ctx, startCommit(t, data, term, at(time.Duration(attempt)*time.Hour), "n1")))(t)
		ok(t, s.ReportStep(ctx, store.Report{StepID: stepID("n1", attempt+1), NodeID: "n1", Phase: engine.PhaseInterrupted,
			Reason: "the node rebooted while package openssl was being applied; undone", At: at(time.Duration(attempt)*time.Hour + time.Minute)}))
		n := nodeOf(t, get(s.LoadRollout(ctx, "r1"))(t), "n1")
		if n.State.Phase != want || n.State.Interruptions != attempt+1 || n.State.Attempt != attempt+1 {
			t.Fatalf("after interruption %d: %+v, want %s", attempt+1, n.State, want)
		}
		if steps := get(s.PendingSteps(ctx, "n1", at(2*time.Hour)))(t); len(steps) != 0 {
			t.Fatalf("interrupted step still open: %+v", steps)
		}
	}
}

// testRestartLeases: a new leader's first tick gives every node a lease
// of at least one window from then (longer ones kept), so the downtime
// before it expires nobody; a stale term changes nothing.
func testRestartLeases(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	addNode(t, s, "n9", at(5*time.Hour)) // a longer lease, kept
	data := get(s.LoadRollout(ctx, "r1"))(t)
	get(s.ApplyCommit(ctx, startCommit(t, data, term, at(time.Minute), "n1")))(t)
	_, err := s.RestartLeases(ctx, at(3*time.Hour), term+1)
	wantErr(t, err, store.ErrFenced, "restarting leases with a stale term")
	// The server was down from t0+1m to t0+2h: every lease (t0+1h) ended.
	n := get(s.RestartLeases(ctx, at(2*time.Hour+30*time.Second), term))(t)
	if n != 4 {
		t.Fatalf("restarted %d leases, want 4", n)
	}
	if expired := get(s.ExpireLeases(ctx, at(2*time.Hour+10*time.Second), term))(t); len(expired) != 0 {
		t.Fatalf("expired after the restart: %v", expired)
	}
	if got := get(s.GetNode(ctx, "n9"))(t).LeaseUntil; !got.Equal(at(5 * time.Hour)) {
		t.Fatalf("longer lease changed to %s", got)
	}
	if expired := get(s.ExpireLeases(ctx, at(2*time.Hour+31*time.Second), term))(t); !slices.Equal(expired, []string{"n1"}) {
		t.Fatalf("expired a window after the restart: %v, want [n1]", expired)
	}
}
