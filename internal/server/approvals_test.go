package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store"
)

// newFloorServer is a test server whose configuration has floor.
func newFloorServer(t *testing.T, dir string, floor []FloorRule) *Server {
	t.Helper()
	cfg := testConfig(t)
	cfg.DataDir = dir
	cfg.ApprovalFloor = floor
	st, err := store.Open(context.Background(), filepath.Join(dir, "drover.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(cfg, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// decide is what the scheduler decides for the rollout now.
func decide(t *testing.T, s *Server, id string) engine.Decision {
	t.Helper()
	data, rc, err := s.sched.load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return engine.Decide(rc.input(data, s.now()))
}

func getRollout(t *testing.T, s *Server, id string) api.Rollout {
	t.Helper()
	st, ae, body := call(t, s.Handler(), "GET", "/v1/rollouts/"+id, vera, nil)
	if st != 200 {
		t.Fatalf("get %s: %d %v", id, st, ae)
	}
	var ro api.Rollout
	_ = json.Unmarshal(body, &ro)
	return ro
}

// TestApprovalFloor: a floor of 2 approvals holds for a plan asking for
// 0: the rollout waits for two distinct approvers other than the author,
// the requirement is shown in the dry run and the rollout view, and a
// server without the floor on the same store still holds it.
func TestApprovalFloor(t *testing.T) {
	dir := t.TempDir()
	s := newFloorServer(t, dir, []FloorRule{
		{Name: "production", Selector: `node.labels.zone == "a"`, Approvals: 2},
		{Name: "risky", ActionKinds: []string{"kernel", "script"}, Approvals: 3},
		{Name: "zone-b", Selector: `node.labels.zone == "b"`, Approvals: 4},
	})
	h := s.Handler()
	seedNodes(t, s, 3)

	st, ae, body := call(t, h, "POST", "/v1/plans/dry-run", alice, api.PlanRequest{Plan: testPlan})
	if st != 200 {
		t.Fatalf("dry run: %d %v", st, ae)
	}
	var dry api.DryRunResponse
	_ = json.Unmarshal(body, &dry)
	if dry.ApprovalsNeeded != 2 || !strings.Contains(dry.ApprovalFloor, "production: 2") || strings.Contains(dry.ApprovalFloor, "risky") ||
		strings.Contains(dry.ApprovalFloor, "zone-b") || !strings.Contains(dry.Text, "approvals: 2 needed to start") {
		t.Fatalf("dry run: needed %d floor %q text:\n%s", dry.ApprovalsNeeded, dry.ApprovalFloor, dry.Text)
	}

	st, ae, body = call(t, h, "POST", "/v1/rollouts", alice, api.CreateRolloutRequest{Plan: testPlan})
	if st != 201 {
		t.Fatalf("create: %d %v", st, ae)
	}
	var ro api.Rollout
	_ = json.Unmarshal(body, &ro)
	if ro.State != engine.RolloutPendingApproval || ro.ApprovalsNeeded != 2 || ro.ApprovalsGot != 0 || !strings.Contains(ro.ApprovalFloor, "production") {
		t.Fatalf("created: state %s needed %d got %d floor %q", ro.State, ro.ApprovalsNeeded, ro.ApprovalsGot, ro.ApprovalFloor)
	}
	if d := decide(t, s, ro.ID); d.State != engine.RolloutPendingApproval || d.Reason != "waiting for approvals: 0/2" {
		t.Fatalf("decided before approvals: %s %q", d.State, d.Reason)
	}
	approve := func(tok string, want int) {
		t.Helper()
		if st, ae, _ := call(t, h, "POST", "/v1/rollouts/"+ro.ID+"/approve", tok, nil); st != want {
			t.Fatalf("approve: %d %v, want %d", st, ae, want)
		}
	}
	approve(alice, 403) // the author never counts
	approve(bob, 200)
	approve(bob, 200) // twice by one person is one approval
	if got := getRollout(t, s, ro.ID); got.ApprovalsGot != 1 || got.ApprovalsNeeded != 2 {
		t.Fatalf("after bob: %d/%d", got.ApprovalsGot, got.ApprovalsNeeded)
	}
	if d := decide(t, s, ro.ID); d.State != engine.RolloutPendingApproval || d.Reason != "waiting for approvals: 1/2" {
		t.Fatalf("decided after one approval: %s %q", d.State, d.Reason)
	}

	// Another server on the same store, without the floor, holds it too.
	s2, err := New(s.cfg, Deps{Store: s.st})
	if err != nil {
		t.Fatal(err)
	}
	s2.cfg.ApprovalFloor, s2.sec.floor = nil, nil
	if got := getRollout(t, s2, ro.ID); got.ApprovalsNeeded != 2 {
		t.Fatalf("without the floor configured: needed %d", got.ApprovalsNeeded)
	}
	if d := decide(t, s2, ro.ID); d.State != engine.RolloutPendingApproval {
		t.Fatalf("a server without the floor started it: %s", d.State)
	}

	approve(root, 200)
	if d := decide(t, s, ro.ID); d.State != engine.RolloutRunning {
		t.Fatalf("after two approvals: %s %q", d.State, d.Reason)
	}
	audit, _ := s.st.ListAudit(context.Background(), 0, 100, ro.ID)
	if !strings.Contains(string(audit[0].Detail), `"approvals_needed":2`) {
		t.Fatalf("rollout.create does not record the requirement: %s", audit[0].Detail)
	}

	// The kind rule: a kernel plan needs 3.
	kernel := strings.Replace(testPlan, `- package:
        packages: [{name: openssl, version: "3.0.15-1~deb12u1"}]`, `- kernel: {version: "6.1.0-30"}`, 1)
	st, ae, body = call(t, h, "POST", "/v1/rollouts", alice, api.CreateRolloutRequest{Plan: kernel})
	if st != 201 {
		t.Fatalf("create kernel rollout: %d %v", st, ae)
	}
	_ = json.Unmarshal(body, &ro)
	if ro.ApprovalsNeeded != 3 || !strings.Contains(ro.ApprovalFloor, "risky: 3 (actions of kind kernel, script)") {
		t.Fatalf("kernel rollout: needed %d floor %q", ro.ApprovalsNeeded, ro.ApprovalFloor)
	}
	// bob and root are the only approvers other than alice: warned.
	if len(ro.Warnings) != 1 || !strings.Contains(ro.Warnings[0], "needs 3 approvals but the server has 2 approvers other than alice (bob, root)") {
		t.Fatalf("warnings: %q", ro.Warnings)
	}
}

// TestApprovalFloorConfig: rules are validated at startup with clear
// errors.
func TestApprovalFloorConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.ApprovalFloor = []FloorRule{
		{Name: "a", Selector: `node.labels.env ==`, Approvals: 2},
		{Name: "b", ActionKinds: []string{"kernal"}, Approvals: 2},
		{Name: "c", Approvals: 0},
		{Name: "c", Approvals: 1},
	}
	err := cfg.Validate()
	for _, want := range []string{"approvalFloor[0] a: selector", `approvalFloor[1] b: actionKinds: "kernal" is not one of package, kernel`,
		"approvalFloor[2] c: approvals 0: want 1..20", `approvalFloor[3] c: duplicate name "c"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

// TestApprovalsSayTheTruth: approving an unknown wave is an error, so is
// approving a wave or a start that needs none; the view counts distinct
// approvers per wave.
func TestApprovalsSayTheTruth(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	seedNodes(t, s, 3)
	p := strings.Replace(testPlan, "  - name: rest\n", "  - name: rest\n    approvals: 1\n", 1)
	st, ae, body := call(t, h, "POST", "/v1/rollouts", alice, api.CreateRolloutRequest{Plan: p})
	if st != 201 {
		t.Fatalf("create: %d %v", st, ae)
	}
	var ro api.Rollout
	_ = json.Unmarshal(body, &ro)
	if len(ro.Warnings) != 0 {
		t.Fatalf("warnings: %q", ro.Warnings)
	}
	path := "/v1/rollouts/" + ro.ID + "/approve"
	for _, c := range []struct {
		wave   string
		status int
		msg    string
	}{
		{"nosuch", 404, `has no wave "nosuch" (its waves: canary, rest)`},
		{"canary", 409, "wave canary of rollout " + ro.ID + " needs no approval; waves needing approvals: rest"},
		{"", 409, "needs no approval to start; waves needing approvals: rest (approve one with --wave)"},
	} {
		st, ae, _ := call(t, h, "POST", path, bob, api.CommandRequest{Wave: c.wave})
		if st != c.status || !strings.Contains(ae.Error, c.msg) {
			t.Errorf("approve wave %q: %d %q, want %d %q", c.wave, st, ae.Error, c.status, c.msg)
		}
	}
	audit, _ := s.st.ListAudit(context.Background(), 0, 100, ro.ID)
	for _, e := range audit {
		if e.Action == "rollout.approve" {
			t.Fatalf("a refused approval was audited: %+v", e)
		}
	}
	st, ae, body = call(t, h, "POST", path, bob, api.CommandRequest{Wave: "rest"})
	if st != 200 {
		t.Fatalf("approve rest: %d %v", st, ae)
	}
	_ = json.Unmarshal(body, &ro)
	if ro.Waves[1].Name != "rest" || ro.Waves[1].ApprovalsNeeded != 1 || ro.Waves[1].ApprovalsGot != 1 || ro.ApprovalsGot != 0 {
		t.Fatalf("after approving rest: start %d, waves %+v", ro.ApprovalsGot, ro.Waves)
	}
}
