package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store"
)

// testDryRuns: a dry run reads back as stored (a seed past 2^63
// included), is audited, and retention keeps the DryRunsKept newest and
// nothing older than DryRunMaxAge.
func testDryRuns(t *testing.T, s Backend) {
	ctx := context.Background()
	d := store.DryRun{ID: "dr-1", Name: "openssl", Author: "alice", Plan: []byte(plan), PlanSHA256: "abc",
		Seed: 1<<63 + 7, Assignment: []byte(`{"nodes":[]}`), AssignmentSHA256: "def", CreatedAt: at(0)}
	ok(t, s.CreateDryRun(ctx, d))
	got := get(s.GetDryRun(ctx, "dr-1"))(t)
	if got.Seed != d.Seed || got.PlanSHA256 != "abc" || got.AssignmentSHA256 != "def" || string(got.Plan) != plan ||
		string(got.Assignment) != `{"nodes":[]}` || !got.CreatedAt.Equal(at(0)) || got.Author != "alice" || got.Name != "openssl" {
		t.Fatalf("GetDryRun = %+v, want %+v", got, d)
	}
	wantErr(t, s.CreateDryRun(ctx, d), store.ErrConflict, "a second dry run with the same ID")
	_, err := s.GetDryRun(ctx, "dr-none")
	wantErr(t, err, store.ErrNotFound, "an unknown dry run")
	entries := get(s.ListAudit(ctx, 0, 1000, ""))(t)
	if e := entries[len(entries)-1]; e.Action != "dryrun.create" || e.Object != "dryrun/dr-1" || !strings.Contains(string(e.Detail), "9223372036854775815") {
		t.Fatalf("last audit entry = %+v (detail %s), want the dry run's creation with its seed", e, e.Detail)
	}

	// Older than DryRunMaxAge: gone with the next dry run.
	d.ID, d.CreatedAt = "dr-2", at(store.DryRunMaxAge+time.Second)
	ok(t, s.CreateDryRun(ctx, d))
	_, err = s.GetDryRun(ctx, "dr-1")
	wantErr(t, err, store.ErrNotFound, "a dry run past DryRunMaxAge")
	// Past DryRunsKept: the oldest go.
	for i := range store.DryRunsKept {
		d.ID, d.CreatedAt = fmt.Sprintf("dr-3-%04d", i), at(store.DryRunMaxAge+time.Duration(i+2)*time.Second)
		ok(t, s.CreateDryRun(ctx, d))
	}
	_, err = s.GetDryRun(ctx, "dr-2")
	wantErr(t, err, store.ErrNotFound, "the oldest dry run past DryRunsKept")
	get(s.GetDryRun(ctx, "dr-3-0000"))(t)
}

// testApprovalBindsAssignment: an approval records the rollout's plan
// and assignment hashes, is audited with both, and stops counting when
// the assignment hash changes.
func testApprovalBindsAssignment(t *testing.T, s Backend) {
	ctx := context.Background()
	get(s.CreateRollout(ctx, store.Rollout{ID: "r3", Name: "kernel", Author: "alice", Plan: []byte(plan),
		State: engine.RolloutPendingApproval, AssignmentSHA256: "aaaa", DryRun: "dr-x", CreatedAt: at(0)}, nil,
		[]store.Wave{{Name: "canary", WaveStatus: engine.WaveStatus{State: engine.WavePending}}}, "alice"))(t)
	ro := get(s.GetRollout(ctx, "r3"))(t)
	if ro.AssignmentSHA256 != "aaaa" || ro.DryRun != "dr-x" {
		t.Fatalf("rollout = %+v, want assignment aaaa from dry run dr-x", ro)
	}
	get(s.Command(ctx, "r3", 0, store.Command{Actor: "bob", Action: "approve"}, at(time.Minute)))(t)
	data := load(t, s, "r3")
	if len(data.Approvals) != 1 || data.Approvals[0].AssignmentSHA256 != "aaaa" {
		t.Fatalf("approvals = %+v, want bob's bound to assignment aaaa", data.Approvals)
	}
	entries := get(s.ListAudit(ctx, 0, 1000, "r3"))(t)
	if e := entries[len(entries)-1]; e.Action != "rollout.approve" || !strings.Contains(string(e.Detail), `"assignment_sha256":"aaaa"`) {
		t.Fatalf("approval audit entry = %+v (detail %s), want the assignment hash", e, e.Detail)
	}
	if c := entries[0]; c.Action != "rollout.create" || !strings.Contains(string(c.Detail), `"dry_run":"dr-x"`) {
		t.Fatalf("creation audit entry = %+v (detail %s), want its dry run", c, c.Detail)
	}
	_, err := s.ExecRaw(ctx, "UPDATE rollouts SET assignment_sha256 = ? WHERE id = ?", "bbbb", "r3")
	ok(t, err)
	if got := load(t, s, "r3").Approvals; len(got) != 0 {
		t.Fatalf("approvals of another assignment were returned: %+v", got)
	}
	// Bob approves the new assignment: a new approval, not a repeat.
	ro = get(s.Command(ctx, "r3", 0, store.Command{Actor: "bob", Action: "approve"}, at(2*time.Minute)))(t)
	if got := load(t, s, "r3").Approvals; len(got) != 1 || got[0].AssignmentSHA256 != "bbbb" || ro.Version != 3 {
		t.Fatalf("after approving the new assignment: approvals %+v, version %d", got, ro.Version)
	}
}
