package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store"
)

func testCommitStart(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	data := load(t, s, "r1")
	c := startCommit(t, data, term, at(time.Minute), "n1")
	v := get(s.ApplyCommit(ctx, c))(t)
	if v != 2 {
		t.Fatalf("new version = %d, want 2", v)
	}
	data = load(t, s, "r1")
	n1 := nodeOf(t, data, "n1")
	if data.Rollout.Version != 2 || n1.State.Phase != engine.PhaseQueued || n1.State.Attempt != 1 || n1.StepID != stepID("n1", 1) ||
		!n1.State.StartedAt.Equal(at(time.Minute)) || !data.Rollout.UpdatedAt.Equal(at(time.Minute)) {
		t.Fatalf("after start: rollout %+v, n1 %+v", data.Rollout, n1)
	}
	if w := data.Waves[0]; w.Name != "canary" || w.State != engine.WaveRunning || !w.StartedAt.Equal(at(time.Minute)) {
		t.Fatalf("wave canary = %+v", w)
	}
	steps := get(s.PendingSteps(ctx, "n1", at(2*time.Minute)))(t)
	if len(steps) != 1 {
		t.Fatalf("pending steps of n1 = %+v", steps)
	}
	st := steps[0]
	var payload map[string]any
	ok(t, json.Unmarshal(st.Payload, &payload))
	if st.ID != stepID("n1", 1) || st.Rollout != "r1" || st.Kind != store.StepApply || st.Attempt != 1 || st.Term != term ||
		!st.CreatedAt.Equal(at(time.Minute)) || payload["actions"] == nil {
		t.Fatalf("step = %+v", st)
	}
	entries := get(s.ListAudit(ctx, 0, 1000, "r1"))(t)
	last := entries[len(entries)-1]
	if last.Action != "node.start" || last.Actor != "scheduler" || last.Rollout != "r1" || !last.At.Equal(at(time.Minute)) {
		t.Fatalf("commit audit entry = %+v", last)
	}
	// A wave the rollout did not have is added after the others.
	c = store.Commit{Rollout: "r1", Version: 2, Term: term, Now: at(2 * time.Minute), State: engine.RolloutRunning,
		Waves: []store.Wave{{Name: "late", WaveStatus: engine.WaveStatus{State: engine.WavePending}}}}
	get(s.ApplyCommit(ctx, c))(t)
	if ws := load(t, s, "r1").Waves; len(ws) != 3 || ws[2].Name != "late" {
		t.Fatalf("waves after upsert = %+v", ws)
	}
	verifyOK(t, s)
}

// snapshot is what a failed commit must leave unchanged.
type snapshot struct {
	version int64
	nodes   string
	audit   int
	steps   int
}

func snap(t *testing.T, s store.Store) snapshot {
	t.Helper()
	data := load(t, s, "r1")
	var steps int
	for _, n := range []string{"n1", "n2", "n3", "n4"} {
		steps += len(get(s.PendingSteps(context.Background(), n, at(time.Hour)))(t))
	}
	return snapshot{version: data.Rollout.Version, nodes: fmt.Sprint(data.Nodes), audit: auditCount(t, s), steps: steps}
}

func testCommitConflicts(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	data := load(t, s, "r1")
	get(s.ApplyCommit(ctx, startCommit(t, data, term, at(time.Minute), "n1")))(t)
	before := snap(t, s)

	// Stale version.
	_, err := s.ApplyCommit(ctx, startCommit(t, data, term, at(2*time.Minute), "n2"))
	wantErr(t, err, store.ErrConflict, "commit at a stale version")

	fresh := load(t, s, "r1")
	// Stale (and future) term.
	_, err = s.ApplyCommit(ctx, startCommit(t, fresh, term-1, at(2*time.Minute), "n2"))
	wantErr(t, err, store.ErrFenced, "commit with an older term")
	_, err = s.ApplyCommit(ctx, startCommit(t, fresh, term+1, at(2*time.Minute), "n2"))
	wantErr(t, err, store.ErrFenced, "commit with a term nobody won")

	// One node's CAS fails: nothing at all is written.
	c := startCommit(t, fresh, term, at(2*time.Minute), "n2", "n3")
	c.Nodes[1].From.Phase = engine.PhaseRunning
	_, err = s.ApplyCommit(ctx, c)
	wantErr(t, err, store.ErrConflict, "commit whose node CAS fails")
	c = startCommit(t, fresh, term, at(2*time.Minute), "n2")
	c.Nodes[0].From.Attempt = 3
	_, err = s.ApplyCommit(ctx, c)
	wantErr(t, err, store.ErrConflict, "commit whose node attempt differs")

	// A step ID that was already dispatched.
	c = startCommit(t, fresh, term, at(2*time.Minute), "n2")
	c.Steps[0].ID = stepID("n1", 1)
	_, err = s.ApplyCommit(ctx, c)
	wantErr(t, err, store.ErrConflict, "commit re-dispatching a step ID")

	if after := snap(t, s); after != before {
		t.Fatalf("failed commits changed the store:\nbefore %+v\nafter  %+v", before, after)
	}
	_, err = s.ApplyCommit(ctx, store.Commit{Rollout: "nope", Version: 1, Term: term, Now: at(0), State: engine.RolloutRunning})
	wantErr(t, err, store.ErrNotFound, "commit to a missing rollout")

	// The same commit at the right version and term goes through.
	get(s.ApplyCommit(ctx, startCommit(t, fresh, term, at(2*time.Minute), "n2")))(t)
	verifyOK(t, s)
}

// testConcurrentCommits: callers on two stores (two servers) race with
// commits decided from the same version; in every round exactly one wins.
func testConcurrentCommits(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	other := reopen(t, s)
	stores := []store.Store{s, other}
	const rounds, workers = 8, 6
	for round := 0; round < rounds; round++ {
		data := load(t, s, "r1")
		n2 := nodeOf(t, data, "n2")
		var wg sync.WaitGroup
		errs := make([]error, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := store.Commit{Rollout: "r1", Version: data.Rollout.Version, Term: term, Now: at(time.Duration(round) * time.Minute),
					State: engine.RolloutRunning, Reason: fmt.Sprintf("round %d worker %d", round, w),
					Audit: []store.AuditEntry{{Action: "rollout.decide", Detail: json.RawMessage(fmt.Sprintf(`{"worker":%d}`, w))}}}
				if round%2 == 1 { // half the rounds also race on the same node
					n := n2
					c.Nodes = []store.NodeUpdate{{NodeID: "n2", From: n.State, To: engine.NodeState{Phase: engine.PhaseQueued, Wave: "rest",
						Attempt: n.State.Attempt + 1, Since: c.Now}, StepID: fmt.Sprintf("r1/n2/%d/w%d", n.State.Attempt+1, w)}}
					c.Steps = []store.Step{{ID: c.Nodes[0].StepID, NodeID: "n2", Attempt: n.State.Attempt + 1}}
				}
				_, errs[w] = stores[w%2].ApplyCommit(ctx, c)
			}()
		}
		wg.Wait()
		wins := 0
		for w, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d worker %d: %v, want nil or ErrConflict", round, w, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d commits won, want exactly 1 (%v)", round, wins, errs)
		}
		if round%2 == 1 {
			// Put n2 back to pending through a commit so the next odd round can start it again.
			d := load(t, s, "r1")
			n := nodeOf(t, d, "n2")
			to := n.State
			to.Phase = engine.PhasePending
			get(s.ApplyCommit(ctx, store.Commit{Rollout: "r1", Version: d.Rollout.Version, Term: term, Now: at(time.Hour),
				State: engine.RolloutRunning, Nodes: []store.NodeUpdate{{NodeID: "n2", From: n.State, To: to}}}))(t)
		}
	}
	if v := load(t, s, "r1").Rollout.Version; v != 1+rounds+rounds/2 {
		t.Fatalf("final version %d, want %d", v, 1+rounds+rounds/2)
	}
	verifyOK(t, s)
}

func testReportStep(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	get(s.ApplyCommit(ctx, startCommit(t, load(t, s, "r1"), term, at(time.Minute), "n1", "n2")))(t)
	version := load(t, s, "r1").Rollout.Version
	sid := stepID("n1", 1)

	report := store.Report{StepID: sid, NodeID: "n1", Phase: engine.PhaseRunning, At: at(2 * time.Minute)}
	ok(t, s.ReportStep(ctx, report))
	n1 := nodeOf(t, load(t, s, "r1"), "n1")
	if n1.State.Phase != engine.PhaseRunning || !n1.State.Since.Equal(at(2*time.Minute)) {
		t.Fatalf("n1 after running report = %+v", n1.State)
	}
	entries := get(s.ListAudit(ctx, 0, 1000, "r1"))(t)
	last := entries[len(entries)-1]
	if last.Action != "node.phase" || last.Actor != "agent:n1" || last.Object != "node/n1" {
		t.Fatalf("report audit entry = %+v", last)
	}
	count := auditCount(t, s)
	report.At = at(3 * time.Minute)
	ok(t, s.ReportStep(ctx, report)) // identical: no-op
	if n := auditCount(t, s); n != count {
		t.Fatalf("a repeated report audited %d entries", n-count)
	}
	if st := nodeOf(t, load(t, s, "r1"), "n1").State; !st.Since.Equal(at(2 * time.Minute)) {
		t.Fatalf("a repeated report moved Since to %v", st.Since)
	}

	ok(t, s.ReportStep(ctx, store.Report{StepID: sid, NodeID: "n1", Phase: engine.PhaseVerifying, Gate: engine.Pass,
		HealthySince: at(4 * time.Minute), At: at(4 * time.Minute)}))
	n1 = nodeOf(t, load(t, s, "r1"), "n1")
	if n1.State.Phase != engine.PhaseVerifying || n1.State.Gate != engine.Pass || !n1.State.HealthySince.Equal(at(4*time.Minute)) {
		t.Fatalf("n1 after verifying report = %+v", n1.State)
	}

	final := store.Report{StepID: sid, NodeID: "n1", Phase: engine.PhaseSucceeded, Gate: engine.Pass, HealthySince: at(4 * time.Minute),
		Evidence: json.RawMessage(`{"openssl":"3.0.13"}`), At: at(5 * time.Minute)}
	ok(t, s.ReportStep(ctx, final))
	if steps := get(s.PendingSteps(ctx, "n1", at(6*time.Minute)))(t); len(steps) != 0 {
		t.Fatalf("a finished step is still pending: %+v", steps)
	}
	if n, err := s.ExecRaw(ctx, "UPDATE steps SET result = result WHERE id = ? AND result = ? AND finished_at = ? AND evidence = ?",
		sid, "succeeded", at(5*time.Minute).UnixNano(), `{"openssl":"3.0.13"}`); err != nil || n != 1 {
		t.Fatalf("step row not finished with its evidence (matched %d rows, %v)", n, err)
	}
	count = auditCount(t, s)
	final.At = at(7 * time.Minute)
	ok(t, s.ReportStep(ctx, final)) // a repeated final report
	if n := auditCount(t, s); n != count {
		t.Fatalf("a repeated final report audited %d entries", n-count)
	}
	err := s.ReportStep(ctx, store.Report{StepID: sid, NodeID: "n1", Phase: engine.PhaseFailed, At: at(8 * time.Minute)})
	wantErr(t, err, store.ErrConflict, "a different report for a finished step")

	wantErr(t, s.ReportStep(ctx, store.Report{StepID: sid, NodeID: "n2", Phase: engine.PhaseRunning, At: at(8 * time.Minute)}),
		store.ErrConflict, "a report from another node")
	wantErr(t, s.ReportStep(ctx, store.Report{StepID: "r1/n9/1", NodeID: "n9", Phase: engine.PhaseRunning, At: at(8 * time.Minute)}),
		store.ErrConflict, "a report for an unknown step")

	// n2's current step becomes a rollback: a report of its first step is stale.
	data := load(t, s, "r1")
	n2 := nodeOf(t, data, "n2")
	to := n2.State
	to.Phase, to.Rollback = engine.PhaseRollingBack, true
	get(s.ApplyCommit(ctx, store.Commit{Rollout: "r1", Version: data.Rollout.Version, Term: term, Now: at(9 * time.Minute),
		State: engine.RolloutRollingBack, Nodes: []store.NodeUpdate{{NodeID: "n2", From: n2.State, To: to, StepID: "r1/n2/rollback/1"}},
		Steps: []store.Step{{ID: "r1/n2/rollback/1", NodeID: "n2", Kind: store.StepRollback, Attempt: 1}}}))(t)
	version = load(t, s, "r1").Rollout.Version
	err = s.ReportStep(ctx, store.Report{StepID: stepID("n2", 1), NodeID: "n2", Phase: engine.PhaseRunning, At: at(10 * time.Minute)})
	wantErr(t, err, store.ErrConflict, "a report of a step that is no longer the node's current step")
	// The rollback restored n2 but its probes still fail: rollback-unhealthy,
	// kept with the evidence; the step row holds when the rollback was
	// dispatched (created_at) and completed (finished_at).
	ev := `{"probesAfterRollback":{"verdict":"fail","reason":"http /health: 502"}}`
	unhealthy := store.Report{StepID: "r1/n2/rollback/1", NodeID: "n2", Phase: engine.PhaseRolledBack, Gate: engine.Fail,
		Reason: "rollback done but still unhealthy: http /health: 502", Evidence: json.RawMessage(ev), At: at(11 * time.Minute)}
	ok(t, s.ReportStep(ctx, unhealthy))
	n2 = nodeOf(t, load(t, s, "r1"), "n2")
	if n2.State.Phase != engine.PhaseRollbackUnhealthy || !n2.State.Rollback {
		t.Fatalf("n2 after an unhealthy rollback report = %+v", n2.State)
	}
	if n, err := s.ExecRaw(ctx, "UPDATE steps SET result = result WHERE id = ? AND kind = 'rollback' AND result = ? AND created_at = ? AND finished_at = ? AND evidence = ?",
		"r1/n2/rollback/1", "rollback-unhealthy", at(9*time.Minute).UnixNano(), at(11*time.Minute).UnixNano(), ev); err != nil || n != 1 {
		t.Fatalf("rollback step row without its times, result and evidence (matched %d rows, %v)", n, err)
	}
	// Out of service: it keeps its hold while the rollout runs.
	if n, err := s.ExecRaw(ctx, "UPDATE node_holds SET since = since WHERE node_id = ? AND holder = ?", "n2", "r1"); err != nil || n != 1 {
		t.Fatalf("rollback-unhealthy n2 lost its hold (matched %d rows, %v)", n, err)
	}
	unhealthy.At = at(12 * time.Minute)
	ok(t, s.ReportStep(ctx, unhealthy)) // a repeated final report
	if v := load(t, s, "r1").Rollout.Version; v != version {
		t.Fatalf("reports bumped the rollout version from %d to %d", version, v)
	}
	verifyOK(t, s)
}

func testPendingSteps(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	get(s.ApplyCommit(ctx, startCommit(t, load(t, s, "r1"), term, at(time.Minute), "n1")))(t)
	data := load(t, s, "r1")
	get(s.ApplyCommit(ctx, startCommit(t, data, term, at(2*time.Minute), "n2")))(t)
	if steps := get(s.PendingSteps(ctx, "n4", at(3*time.Minute)))(t); len(steps) != 0 {
		t.Fatalf("n4 has pending steps %+v", steps)
	}
	// A second step for n1 (a rollback) comes after the first.
	data = load(t, s, "r1")
	n1 := nodeOf(t, data, "n1")
	to := n1.State
	to.Phase, to.Rollback = engine.PhaseRollingBack, true
	get(s.ApplyCommit(ctx, store.Commit{Rollout: "r1", Version: data.Rollout.Version, Term: term, Now: at(3 * time.Minute),
		State: engine.RolloutRollingBack, Nodes: []store.NodeUpdate{{NodeID: "n1", From: n1.State, To: to, StepID: "r1/n1/rollback/1"}},
		Steps: []store.Step{{ID: "r1/n1/rollback/1", NodeID: "n1", Kind: store.StepRollback, Attempt: 1}}}))(t)

	steps := get(s.PendingSteps(ctx, "n1", at(5*time.Minute)))(t)
	if len(steps) != 2 || steps[0].ID != stepID("n1", 1) || steps[1].ID != "r1/n1/rollback/1" || steps[1].Kind != store.StepRollback {
		t.Fatalf("pending steps of n1 = %+v", steps)
	}
	for _, st := range steps {
		if !st.DeliveredAt.Equal(at(5 * time.Minute)) {
			t.Fatalf("step %s delivered at %v, want %v", st.ID, st.DeliveredAt, at(5*time.Minute))
		}
	}
	again := get(s.PendingSteps(ctx, "n1", at(6*time.Minute)))(t)
	if len(again) != 2 || !again[0].DeliveredAt.Equal(at(5*time.Minute)) {
		t.Fatalf("redelivery changed the first delivery time: %+v", again)
	}

	// An aborted rollout's undelivered steps are withheld; delivered ones are not.
	_, err := s.Command(ctx, "r1", 0, store.Command{Actor: "bob", Action: "abort"}, at(7*time.Minute))
	ok(t, err)
	if steps := get(s.PendingSteps(ctx, "n2", at(8*time.Minute)))(t); len(steps) != 0 {
		t.Fatalf("an aborted rollout's undelivered step was handed out: %+v", steps)
	}
	if steps := get(s.PendingSteps(ctx, "n1", at(8*time.Minute)))(t); len(steps) != 2 {
		t.Fatalf("delivered steps of an aborted rollout: %+v", steps)
	}
}

func testGateResults(t *testing.T, s Backend) {
	ctx := context.Background()
	fixture(t, s)
	count := auditCount(t, s)
	ok(t, s.AddGateResults(ctx, "r1", []engine.GateResult{
		{Wave: "canary", Gate: "p99", Verdict: engine.Pass, Reason: "+2%", At: at(time.Minute)},
		{Wave: "canary", Gate: "errors", Verdict: engine.Pass, At: at(time.Minute)},
	}))
	ok(t, s.AddGateResults(ctx, "r1", []engine.GateResult{{Wave: "canary", Gate: "p99", Verdict: engine.Fail, Reason: "+38%", At: at(3 * time.Minute)}}))
	ok(t, s.AddGateResults(ctx, "r1", []engine.GateResult{{Wave: "canary", Gate: "p99", Verdict: engine.Fail, Reason: "+40%", At: at(4 * time.Minute)}}))
	// An older result arriving late does not replace the latest.
	ok(t, s.AddGateResults(ctx, "r1", []engine.GateResult{{Wave: "canary", Gate: "p99", Verdict: engine.Fail, Reason: "late", At: at(2 * time.Minute)}}))
	gates := load(t, s, "r1").Gates
	if len(gates) != 2 {
		t.Fatalf("latest gates = %+v, want 2", gates)
	}
	for _, g := range gates {
		if g.Rollout != "r1" || g.Wave != "canary" {
			t.Fatalf("gate %+v", g)
		}
		if g.Gate == "p99" && (g.Verdict != engine.Fail || g.Reason != "+40%" || !g.At.Equal(at(4*time.Minute))) {
			t.Fatalf("latest p99 = %+v", g)
		}
	}
	if n := auditCount(t, s) - count; n != 3 {
		t.Fatalf("gate results audited %d entries, want 3 (two first verdicts and one change)", n)
	}
	wantErr(t, s.AddGateResults(ctx, "nope", []engine.GateResult{{Wave: "w", Gate: "g", Verdict: engine.Pass}}),
		store.ErrNotFound, "gate results of a missing rollout")
	verifyOK(t, s)
}

func testExpireLeases(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	get(s.ApplyCommit(ctx, startCommit(t, load(t, s, "r1"), term, at(time.Minute), "n1", "n2", "n3")))(t)
	ok(t, s.ReportStep(ctx, store.Report{StepID: stepID("n1", 1), NodeID: "n1", Phase: engine.PhaseRunning, At: at(2 * time.Minute)}))
	ok(t, s.TouchNode(ctx, "n2", at(50*time.Minute), at(3*time.Hour)))
	// n3 is also running in a finished rollout: that one is not touched.
	get(s.CreateRollout(ctx, store.Rollout{ID: "done", Author: "bob", Plan: []byte(plan), State: engine.RolloutSucceeded, CreatedAt: at(0)},
		[]store.RolloutNode{{NodeID: "n3", State: engine.NodeState{Phase: engine.PhaseRunning, Attempt: 1}}}, nil, "bob"))(t)

	_, err := s.ExpireLeases(ctx, at(2*time.Hour), term+1)
	wantErr(t, err, store.ErrFenced, "ExpireLeases with a term nobody won")
	if ids := get(s.ExpireLeases(ctx, at(30*time.Minute), term))(t); len(ids) != 0 {
		t.Fatalf("leases expired before their end: %v", ids)
	}
	count := auditCount(t, s)
	ids := get(s.ExpireLeases(ctx, at(2*time.Hour), term))(t)
	if strings.Join(ids, ",") != "n1,n3" {
		t.Fatalf("expired = %v, want [n1 n3]", ids)
	}
	if n := auditCount(t, s) - count; n != 2 {
		t.Fatalf("expiry audited %d entries, want 2", n)
	}
	data := load(t, s, "r1")
	n1 := nodeOf(t, data, "n1")
	if n1.State.Phase != engine.PhaseUnknown || !n1.State.Since.Equal(at(2*time.Hour)) ||
		n1.State.Reason != "agent silent since 2026-03-01T09:00:00Z" {
		t.Fatalf("n1 after expiry = %+v", n1.State)
	}
	if p := nodeOf(t, data, "n2").State.Phase; p != engine.PhaseQueued {
		t.Fatalf("n2 (lease extended) is %s", p)
	}
	if p := nodeOf(t, data, "n4").State.Phase; p != engine.PhasePending {
		t.Fatalf("n4 (not in flight) is %s", p)
	}
	if p := nodeOf(t, load(t, s, "done"), "n3").State.Phase; p != engine.PhaseRunning {
		t.Fatalf("n3 in a finished rollout is %s", p)
	}
	if ids := get(s.ExpireLeases(ctx, at(3*time.Hour), term))(t); len(ids) != 0 {
		t.Fatalf("second expiry = %v", ids)
	}
	// The agent comes back: an unknown node becomes what it reports.
	ok(t, s.ReportStep(ctx, store.Report{StepID: stepID("n1", 1), NodeID: "n1", Phase: engine.PhaseVerifying, Gate: engine.Pass, At: at(4 * time.Hour)}))
	if p := nodeOf(t, load(t, s, "r1"), "n1").State.Phase; p != engine.PhaseVerifying {
		t.Fatalf("n1 after reporting back is %s", p)
	}
	verifyOK(t, s)
}

func testCancelled(t *testing.T, s Backend) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.GetNode(ctx, "n1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("GetNode with a cancelled context: %v", err)
	}
	if _, err := s.UpsertNode(ctx, store.NodeRecord{ID: "n1"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("UpsertNode with a cancelled context: %v", err)
	}
	if _, err := s.GetNode(context.Background(), "n1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a cancelled UpsertNode wrote: %v", err)
	}
}

// testUnchangedNodes: a succeeded node whose step's evidence says it
// changed nothing is listed; one that changed something, or has not
// succeeded, is not.
func testUnchangedNodes(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	get(s.ApplyCommit(ctx, startCommit(t, load(t, s, "r1"), term, at(time.Minute), "n1", "n2")))(t)
	for _, c := range []struct{ node, evidence string }{
		{"n1", `{"actions":[{"change":{"none":true,"summary":"nothing to change"},"driver":"apt","index":0}]}`},
		{"n2", `{"actions":[{"change":{"none":false},"outcome":{"changed":[{"name":"openssl","from":"3.0.13","to":"3.0.15"}]}}]}`},
	} {
		ok(t, s.ReportStep(ctx, store.Report{StepID: stepID(c.node, 1), NodeID: c.node, Phase: engine.PhaseSucceeded, Gate: engine.Pass,
			HealthySince: at(2 * time.Minute), Evidence: json.RawMessage(c.evidence), At: at(3 * time.Minute)}))
	}
	if got := get(s.UnchangedNodes(ctx, "r1"))(t); fmt.Sprint(got) != "[n1]" {
		t.Fatalf("UnchangedNodes = %v, want [n1]", got)
	}
	if got := get(s.UnchangedNodes(ctx, "nope"))(t); len(got) != 0 {
		t.Fatalf("UnchangedNodes of an unknown rollout = %v", got)
	}
}

// testNodeSteps: a node's latest rollout is the newest that dispatched a
// step to it; its steps come with their results and evidence.
func testNodeSteps(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	if _, err := s.LatestRolloutOf(ctx, "n1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LatestRolloutOf before any step: %v, want ErrNotFound", err)
	}
	get(s.ApplyCommit(ctx, startCommit(t, load(t, s, "r1"), term, at(time.Minute), "n1")))(t)
	ev := `{"actions":[{"outcome":{"changed":[{"name":"openssl","from":"3.0.14","to":"3.0.16"}]}}]}`
	ok(t, s.ReportStep(ctx, store.Report{StepID: stepID("n1", 1), NodeID: "n1", Phase: engine.PhaseFailed, Gate: engine.Fail,
		Reason: "probe failed", Evidence: json.RawMessage(ev), At: at(2 * time.Minute)}))
	if got := get(s.LatestRolloutOf(ctx, "n1"))(t); got != "r1" {
		t.Fatalf("LatestRolloutOf(n1) = %q, want r1", got)
	}
	if _, err := s.LatestRolloutOf(ctx, "n2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LatestRolloutOf of a node never stepped: %v, want ErrNotFound", err)
	}
	steps := get(s.NodeSteps(ctx, "r1", "n1"))(t)
	if len(steps) != 1 || steps[0].ID != stepID("n1", 1) || steps[0].Kind != store.StepApply || steps[0].Result != "failed" {
		t.Fatalf("NodeSteps = %+v", steps)
	}
	var got, want any
	ok(t, json.Unmarshal(steps[0].Evidence, &got))
	ok(t, json.Unmarshal([]byte(ev), &want))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("evidence %s, want %s", steps[0].Evidence, ev)
	}
	if steps := get(s.NodeSteps(ctx, "r1", "n2"))(t); len(steps) != 0 {
		t.Fatalf("NodeSteps of a node without steps = %+v", steps)
	}
}
