package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store"
)

func testApprove(t *testing.T, s Backend) {
	ctx := context.Background()
	fixture(t, s)
	get(s.CreateRollout(ctx, store.Rollout{ID: "r2", Name: "kernel", Author: "alice", Plan: []byte(plan),
		State: engine.RolloutPendingApproval, CreatedAt: at(0)}, nil,
		[]store.Wave{{Name: "canary", WaveStatus: engine.WaveStatus{State: engine.WavePending}}}, "alice"))(t)
	approve := func(actor, wave string, ifVersion int64) (store.Rollout, error) {
		return s.Command(ctx, "r2", ifVersion, store.Command{Actor: actor, Action: "approve", Wave: wave}, at(time.Minute))
	}
	_, err := approve("alice", "", 1)
	wantErr(t, err, store.ErrForbidden, "the author approving their own rollout")
	ro := get(approve("bob", "", 1))(t)
	if ro.Version != 2 || ro.State != engine.RolloutPendingApproval {
		t.Fatalf("after approval: %+v", ro)
	}
	count := auditCount(t, s)
	again := get(approve("bob", "", 1))(t) // a retry with the If-Match it used the first time
	if again.Version != 2 || auditCount(t, s) != count {
		t.Fatalf("a repeated approval changed something: version %d, %d audit entries", again.Version, auditCount(t, s)-count)
	}
	get(approve("carol", "canary", 0))(t)
	data := load(t, s, "r2")
	if len(data.Approvals) != 2 {
		t.Fatalf("approvals = %+v", data.Approvals)
	}
	for _, a := range data.Approvals {
		if a.PlanSHA256 != data.Rollout.PlanSHA256 || !a.At.Equal(at(time.Minute)) {
			t.Fatalf("approval %+v not bound to plan %s", a, data.Rollout.PlanSHA256)
		}
	}
	if a := data.Approvals[0]; a.By != "bob" || a.Wave != "" {
		t.Fatalf("first approval = %+v", a)
	}
	entries := get(s.ListAudit(ctx, 0, 1000, "r2"))(t)
	if e := entries[len(entries)-1]; e.Action != "rollout.approve" || e.Actor != "carol" {
		t.Fatalf("approval audit entry = %+v", e)
	}
	// Approvals of another plan text do not count for this one.
	_, err = s.ExecRaw(ctx, "UPDATE rollouts SET plan_sha256 = ? WHERE id = ?", strings.Repeat("0", 64), "r2")
	ok(t, err)
	if got := load(t, s, "r2").Approvals; len(got) != 0 {
		t.Fatalf("approvals of another plan hash were returned: %+v", got)
	}
	// Nothing to approve once finished.
	get(s.Command(ctx, "r2", 0, store.Command{Actor: "bob", Action: "abort"}, at(2*time.Minute)))(t)
	_, err = approve("dave", "", 0)
	wantErr(t, err, store.ErrConflict, "approving an aborted rollout")
}

func testCommands(t *testing.T, s Backend) {
	ctx := context.Background()
	fixture(t, s)
	cmd := func(action string, ifVersion int64, c store.Command) (store.Rollout, error) {
		c.Action = action
		if c.Actor == "" {
			c.Actor = "bob"
		}
		return s.Command(ctx, "r1", ifVersion, c, at(time.Minute))
	}
	conflict := func(action string, c store.Command, state string) {
		t.Helper()
		_, err := cmd(action, 0, c)
		wantErr(t, err, store.ErrConflict, action+" of a "+state+" rollout")
		if !strings.Contains(err.Error(), state) {
			t.Fatalf("%s: error %q does not name the state %s", action, err, state)
		}
	}
	_, err := cmd("pause", 5, store.Command{})
	wantErr(t, err, store.ErrConflict, "pause with a stale If-Match")
	ro := get(cmd("pause", 1, store.Command{Reason: "change freeze"}))(t)
	if ro.State != engine.RolloutPaused || ro.Version != 2 || ro.Reason != "paused by bob: change freeze" {
		t.Fatalf("after pause: %+v", ro)
	}
	conflict("pause", store.Command{}, "paused")
	ro = get(cmd("resume", 2, store.Command{}))(t)
	if ro.State != engine.RolloutRunning || ro.Reason != "" || ro.Version != 3 {
		t.Fatalf("after resume: %+v", ro)
	}
	conflict("resume", store.Command{}, "running")
	_, err = cmd("rollback", 0, store.Command{Wave: "nope"})
	wantErr(t, err, store.ErrNotFound, "rollback of a missing wave")
	ro = get(cmd("rollback", 0, store.Command{Wave: "canary", Reason: "p99 +38%"}))(t)
	if ro.State != engine.RolloutRollingBack || ro.RollbackScope != "canary" || ro.Reason != "rollback ordered by bob: p99 +38%" {
		t.Fatalf("after rollback: %+v", ro)
	}
	conflict("pause", store.Command{}, "rolling-back")
	ro = get(cmd("abort", 0, store.Command{Actor: "carol"}))(t)
	if ro.State != engine.RolloutAborted || ro.Version != 5 {
		t.Fatalf("after abort: %+v", ro)
	}
	conflict("abort", store.Command{}, "aborted")
	conflict("pause", store.Command{}, "aborted")
	conflict("rollback", store.Command{}, "aborted")
	if _, err := cmd("explode", 0, store.Command{}); err == nil {
		t.Fatal("an unknown command succeeded")
	}
	_, err = s.Command(ctx, "nope", 0, store.Command{Actor: "bob", Action: "pause"}, at(0))
	wantErr(t, err, store.ErrNotFound, "command on a missing rollout")
	if active := get(s.ActiveRollouts(ctx))(t); len(active) != 0 {
		t.Fatalf("an aborted rollout is active: %v", active)
	}
	var actions []string
	for _, e := range get(s.ListAudit(ctx, 0, 1000, "r1"))(t) {
		actions = append(actions, e.Actor+":"+e.Action)
	}
	want := "alice:rollout.create bob:rollout.pause bob:rollout.resume bob:rollout.rollback carol:rollout.abort"
	if got := strings.Join(actions, " "); got != want {
		t.Fatalf("audit of r1:\n got %s\nwant %s", got, want)
	}
	verifyOK(t, s)
}

func testResolve(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	get(s.ApplyCommit(ctx, startCommit(t, load(t, s, "r1"), term, at(time.Minute), "n1", "n2", "n3")))(t)
	data := load(t, s, "r1")
	n1, n2 := nodeOf(t, data, "n1"), nodeOf(t, data, "n2")
	failed, unknown := n1.State, n2.State
	failed.Phase, failed.Reason = engine.PhaseFailed, "no progress within 10m"
	unknown.Phase = engine.PhaseUnknown
	get(s.ApplyCommit(ctx, store.Commit{Rollout: "r1", Version: data.Rollout.Version, Term: term, Now: at(20 * time.Minute),
		State: engine.RolloutRunning, Nodes: []store.NodeUpdate{{NodeID: "n1", From: n1.State, To: failed}, {NodeID: "n2", From: n2.State, To: unknown}}}))(t)
	resolve := func(node string, res engine.Phase) (store.Rollout, error) {
		return s.Command(ctx, "r1", 0, store.Command{Actor: "bob", Action: "resolve", NodeID: node, Resolution: res, Reason: "checked by hand"}, at(30*time.Minute))
	}
	_, err := resolve("n3", engine.PhasePending)
	wantErr(t, err, store.ErrConflict, "resolving a queued node")
	_, err = resolve("n4", engine.PhaseSkipped)
	wantErr(t, err, store.ErrConflict, "resolving a pending node")
	_, err = resolve("n9", engine.PhaseSkipped)
	wantErr(t, err, store.ErrNotFound, "resolving a node not in the rollout")
	if _, err := resolve("n1", engine.PhaseSucceeded); err == nil {
		t.Fatal("resolving to succeeded was accepted")
	}

	version := load(t, s, "r1").Rollout.Version
	ro := get(resolve("n1", engine.PhasePending))(t)
	if ro.Version != version+1 {
		t.Fatalf("resolve did not bump the version: %d", ro.Version)
	}
	n1 = nodeOf(t, load(t, s, "r1"), "n1")
	if n1.State.Phase != engine.PhasePending || n1.State.Attempt != 1 || !n1.State.Since.Equal(at(30*time.Minute)) {
		t.Fatalf("n1 after retry = %+v", n1.State)
	}
	// The old step is closed: a late report of it changes nothing.
	if steps := get(s.PendingSteps(ctx, "n1", at(31*time.Minute)))(t); len(steps) != 0 {
		t.Fatalf("the resolved node's old step is still pending: %+v", steps)
	}
	err = s.ReportStep(ctx, store.Report{StepID: stepID("n1", 1), NodeID: "n1", Phase: engine.PhaseSucceeded, At: at(32 * time.Minute)})
	wantErr(t, err, store.ErrConflict, "a late report of a resolved node's step")
	// The retry starts attempt 2.
	get(s.ApplyCommit(ctx, startCommit(t, load(t, s, "r1"), term, at(33*time.Minute), "n1")))(t)
	if st := nodeOf(t, load(t, s, "r1"), "n1"); st.State.Attempt != 2 || st.StepID != stepID("n1", 2) {
		t.Fatalf("n1 after the retry started = %+v", st)
	}

	get(resolve("n2", engine.PhaseQuarantined))(t)
	if p := nodeOf(t, load(t, s, "r1"), "n2").State.Phase; p != engine.PhaseQuarantined {
		t.Fatalf("n2 after quarantine is %s", p)
	}
	entries := get(s.ListAudit(ctx, 0, 1000, "r1"))(t)
	if e := entries[len(entries)-1]; e.Action != "rollout.resolve" || e.Actor != "bob" || !strings.Contains(string(e.Detail), `"node":"n2"`) {
		t.Fatalf("resolve audit entry = %+v", e)
	}
	verifyOK(t, s)
}
