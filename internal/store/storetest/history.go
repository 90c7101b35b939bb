package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store"
)

// testStepHistory: the agent's timing split is kept with the step; a
// commit that settles the step writes its history row, completed from
// the step (the agent's start, the split), once; predictions are
// stored and replaced per rollout, and listed once the rollout ended.
func testStepHistory(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	get(s.ApplyCommit(ctx, startCommit(t, load(t, s, "r1"), term, at(time.Minute), "n1", "n2")))(t)
	sid := stepID("n1", 1)
	ok(t, s.ReportStep(ctx, store.Report{StepID: sid, NodeID: "n1", Phase: engine.PhaseRunning, At: at(70 * time.Second)}))
	ok(t, s.ReportStep(ctx, store.Report{StepID: sid, NodeID: "n1", Phase: engine.PhaseVerifying, Gate: engine.Pass,
		HealthySince: at(4 * time.Minute), At: at(5 * time.Minute),
		Timing: json.RawMessage(`{"executionSeconds":100,"rebootSeconds":50,"probeSeconds":20}`)}))
	// n2 reports no split (an agent of protocol 2).
	ok(t, s.ReportStep(ctx, store.Report{StepID: stepID("n2", 1), NodeID: "n2", Phase: engine.PhaseRunning, At: at(80 * time.Second)}))

	tm := func(node string, healthy time.Duration) store.StepTiming {
		return store.StepTiming{StepID: stepID(node, 1), Rollout: "r1", NodeID: node, Action: "package", OSFamily: "debian",
			OSVersion: "12", HardwareClass: "r650", DispatchedAt: at(time.Minute), HealthyAt: at(healthy), SettledAt: at(6 * time.Minute)}
	}
	data := load(t, s, "r1")
	commit := store.Commit{Rollout: "r1", Version: data.Rollout.Version, Term: term, Now: at(6 * time.Minute), State: engine.RolloutRunning,
		Timings: []store.StepTiming{tm("n1", 4*time.Minute), tm("n2", 3*time.Minute)}}
	get(s.ApplyCommit(ctx, commit))(t)
	commit.Version++
	get(s.ApplyCommit(ctx, commit))(t) // again: rows are kept once

	rows := get(s.StepTimings(ctx, at(0), 100))(t)
	if len(rows) != 2 {
		t.Fatalf("%d history rows, want 2: %+v", len(rows), rows)
	}
	by := map[string]store.StepTiming{}
	for _, r := range rows {
		by[r.NodeID] = r
	}
	n1, n2 := by["n1"], by["n2"]
	if !n1.StartedAt.Equal(at(70*time.Second)) || n1.Reboot != 50*time.Second || n1.Probe != 20*time.Second ||
		n1.Execution != 100*time.Second || n1.OSFamily != "debian" || n1.Action != "package" || !n1.SettledAt.Equal(at(6*time.Minute)) {
		t.Errorf("n1 row = %+v", n1)
	}
	if !n2.StartedAt.Equal(at(80*time.Second)) || n2.Execution != 100*time.Second || n2.Reboot != 0 || n2.Probe != 0 {
		t.Errorf("n2 row (no split) = %+v", n2)
	}
	if rows := get(s.StepTimings(ctx, at(7*time.Minute), 100))(t); len(rows) != 0 {
		t.Errorf("rows settled before since returned: %+v", rows)
	}

	_, err := s.PredictionOf(ctx, "r1")
	wantErr(t, err, store.ErrNotFound, "prediction of a rollout without one")
	ok(t, s.SavePrediction(ctx, "r1", []byte(`{"makespanSeconds":1}`), at(0)))
	ok(t, s.SavePrediction(ctx, "r1", []byte(`{"makespanSeconds":2}`), at(0)))
	if p := get(s.PredictionOf(ctx, "r1"))(t); string(p) != `{"makespanSeconds":2}` {
		t.Errorf("prediction = %s", p)
	}

	// Only the predictions of rollouts that ended are listed, with the
	// rollout's creation and end.
	if ps := get(s.EndedPredictions(ctx))(t); len(ps) != 0 {
		t.Errorf("ended predictions of a running rollout: %+v", ps)
	}
	data = load(t, s, "r1")
	get(s.ApplyCommit(ctx, store.Commit{Rollout: "r1", Version: data.Rollout.Version, Term: term, Now: at(7 * time.Minute),
		State: engine.RolloutSucceeded}))(t)
	ps := get(s.EndedPredictions(ctx))(t)
	if len(ps) != 1 || ps[0].Rollout != "r1" || string(ps[0].Prediction) != `{"makespanSeconds":2}` ||
		!ps[0].CreatedAt.Equal(data.Rollout.CreatedAt) || !ps[0].Ended.Equal(at(7*time.Minute)) {
		t.Errorf("ended predictions = %+v, want r1's, created %s, ended %s", ps, data.Rollout.CreatedAt, at(7*time.Minute))
	}
}
