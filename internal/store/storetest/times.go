package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store"
)

// testRolloutTimes walks a rollout through a node failure reported by
// its agent, the halt, the rollback and its end, and checks the times the
// metrics are computed from, as stored (and read by another connection).
func testRolloutTimes(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	get(s.ApplyCommit(ctx, startCommit(t, load(t, s, "r1"), term, at(time.Minute), "n1", "n2")))(t)
	ok(t, s.ReportStep(ctx, store.Report{StepID: stepID("n1", 1), NodeID: "n1", Phase: engine.PhaseFailed, Reason: "dpkg error", At: at(2 * time.Minute)}))
	ph := get(s.ActiveNodePhases(ctx))(t)
	if r1 := ph["r1"]; r1[engine.PhaseFailed] != 1 || r1[engine.PhaseQueued] != 1 || r1[engine.PhasePending] != 2 {
		t.Fatalf("ActiveNodePhases = %v", ph)
	}

	data := load(t, s, "r1")
	n1 := nodeOf(t, data, "n1")
	rb := "r1/n1/rollback/1"
	to := n1.State
	to.Phase, to.Since, to.Rollback = engine.PhaseRollingBack, at(3*time.Minute), true
	get(s.ApplyCommit(ctx, store.Commit{Rollout: "r1", Version: data.Rollout.Version, Term: term, Now: at(3 * time.Minute),
		State: engine.RolloutRollingBack, Reason: "n1 failed",
		Nodes: []store.NodeUpdate{{NodeID: "n1", From: n1.State, To: to, StepID: rb}},
		Steps: []store.Step{{ID: rb, NodeID: "n1", Kind: store.StepRollback, Attempt: 1}}}))(t)
	ok(t, s.ReportStep(ctx, store.Report{StepID: rb, NodeID: "n1", Phase: engine.PhaseRolledBack, At: at(4 * time.Minute)}))
	data = load(t, s, "r1")
	get(s.ApplyCommit(ctx, store.Commit{Rollout: "r1", Version: data.Rollout.Version, Term: term, Now: at(5 * time.Minute),
		State: engine.RolloutHalted, Reason: "n1 failed; rolled back 1 node"}))(t)

	want := store.RolloutTimes{Started: at(0), FirstFailure: at(2 * time.Minute), Halted: at(3 * time.Minute),
		RollbackDispatched: at(3 * time.Minute), RollbackDone: at(4 * time.Minute), Recovered: at(4 * time.Minute), Ended: at(5 * time.Minute)}
	for _, st := range []store.Store{s, reopen(t, s)} {
		tls := get(st.ListRolloutTimes(ctx))(t)
		if len(tls) != 1 || tls[0].ID != "r1" || tls[0].State != engine.RolloutHalted || !sameTimes(tls[0].Times, want) {
			t.Fatalf("ListRolloutTimes = %+v\nwant times %+v", tls, want)
		}
		if ro := get(st.GetRollout(ctx, "r1"))(t); !sameTimes(ro.Times, want) {
			t.Fatalf("GetRollout times = %+v, want %+v", ro.Times, want)
		}
	}
	if ph := get(s.ActiveNodePhases(ctx))(t); len(ph) != 0 {
		t.Fatalf("ActiveNodePhases of an ended rollout = %v", ph)
	}
}

func sameTimes(a, b store.RolloutTimes) bool {
	eq := func(x, y time.Time) bool { return x.Equal(y) }
	return eq(a.Started, b.Started) && eq(a.FirstFailure, b.FirstFailure) && eq(a.Halted, b.Halted) &&
		eq(a.RollbackDispatched, b.RollbackDispatched) && eq(a.RollbackDone, b.RollbackDone) && eq(a.Recovered, b.Recovered) && eq(a.Ended, b.Ended)
}
