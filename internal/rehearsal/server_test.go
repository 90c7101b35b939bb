package rehearsal_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/server/servertest"
	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/store/storetest"
)

// TestCreateFromDryRun on a real server: a dry run is kept with its seed;
// a rollout created from it on the same inventory is identical (and so
// is its approval's binding); after a node's labels change, creation is
// refused with the moved node and why, then accepted on request with the
// moves listed, and the new rollout's assignment hash differs.
func TestCreateFromDryRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, st, _ := servertest.Start(t, ctx, func(cfg *server.Config) {
		cfg.Users = []server.User{{Name: "alice", Role: server.RoleOperator, Token: "alice-token-0123456789"},
			{Name: "bob", Role: server.RoleApprover, Token: "bob-token-0123456789ab"}}
	})
	mix, err := fleet.ParseMix(fleet.DefaultMix)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := fleet.Generate(fleet.GenSpec{N: 30, Mix: mix, Zones: 3, HardwareClasses: 3}, 7)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, n := range nodes {
		if _, err := st.UpsertNode(ctx, store.NodeRecord{ID: n.ID, Facts: n.Facts, Labels: n.Labels, Protocol: 2,
			RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	alice := &api.Client{Base: url, Token: "alice-token-0123456789"}
	bob := &api.Client{Base: url, Token: "bob-token-0123456789ab"}
	text := strings.Replace(selectors, "limits:", "approvals:\n  start: 1\nlimits:", 1)

	dr, err := alice.Rehearse(ctx, api.DryRunRequest{Plan: text, File: "kernel.yaml", Seed: "18446744073709551615"})
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		AssignmentSHA256 string `json:"assignmentSha256"`
	}
	if err := json.Unmarshal(dr.Result, &res); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dr.ID, "dr-") || dr.Seed != "18446744073709551615" || res.AssignmentSHA256 != dr.AssignmentSHA256 || len(dr.Canary) != 4 {
		t.Fatalf("dry run %s seed %s assignment %s (simulated: %s) canary %v", dr.ID, dr.Seed, dr.AssignmentSHA256, res.AssignmentSHA256, dr.Canary)
	}

	ro, err := alice.CreateRolloutFrom(ctx, api.CreateRolloutRequest{FromDryRun: dr.ID})
	if err != nil {
		t.Fatal(err)
	}
	if ro.DryRun != dr.ID || ro.Seed != dr.Seed || ro.AssignmentSHA256 != dr.AssignmentSHA256 || len(ro.Moves) != 0 {
		t.Fatalf("created %+v; want dry run %s's seed and assignment, no moves", ro, dr.ID)
	}
	if _, err := bob.Command(ctx, ro.ID, "approve", 0, api.CommandRequest{}); err != nil {
		t.Fatal(err)
	}
	got, err := alice.GetRollout(ctx, ro.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Approvals) != 1 || got.Approvals[0].AssignmentSHA256 != dr.AssignmentSHA256 {
		t.Fatalf("approvals %+v; want bob's, bound to assignment %s", got.Approvals, dr.AssignmentSHA256)
	}
	for _, n := range got.Nodes {
		if slices.Contains(dr.Canary, n.ID) != (n.Wave == "canary") || !slices.Contains(dr.Members[n.Wave], n.ID) {
			t.Fatalf("node %s is in wave %s; the dry run had %v", n.ID, n.Wave, dr.Members)
		}
	}
	if _, err := alice.Command(ctx, ro.ID, "abort", 0, api.CommandRequest{Reason: "test"}); err != nil {
		t.Fatal(err)
	}

	// A canary node leaves the target: its env label changes.
	moved := dr.Canary[0]
	n, err := alice.GetNode(ctx, moved)
	if err != nil {
		t.Fatal(err)
	}
	labels := n.Labels
	labels["env"] = "staging"
	if _, err := alice.SetLabels(ctx, moved, n.Version, labels); err != nil {
		t.Fatal(err)
	}
	_, err = alice.CreateRolloutFrom(ctx, api.CreateRolloutRequest{FromDryRun: dr.ID})
	var se *api.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusConflict || se.Body.Code != api.CodeAssignmentChanged {
		t.Fatalf("create after the change: %v; want 409 %s", err, api.CodeAssignmentChanged)
	}
	const want = `labels.env changed "prod" -> "staging"; target selector no longer matches it`
	i := slices.IndexFunc(se.Body.Moves, func(m api.AssignmentMove) bool { return m.Node == moved })
	if i < 0 || se.Body.Moves[i].From != "canary" || se.Body.Moves[i].To != "" || se.Body.Moves[i].Why != want {
		t.Fatalf("moves %+v; want %s: canary -> (none): %s", se.Body.Moves, moved, want)
	}
	if !strings.Contains(se.Error(), moved+": canary -> (none): "+want) || !strings.Contains(se.Error(), "--accept-changes") {
		t.Fatalf("error text %q does not list the move and the way on", se.Error())
	}

	ro2, err := alice.CreateRolloutFrom(ctx, api.CreateRolloutRequest{FromDryRun: dr.ID, AcceptChanges: true})
	if err != nil {
		t.Fatal(err)
	}
	if ro2.DryRun != dr.ID || ro2.AssignmentSHA256 == dr.AssignmentSHA256 || !slices.Equal(ro2.Moves, se.Body.Moves) {
		t.Fatalf("accepted: dry run %s assignment %s moves %+v; want a new assignment with the refused moves", ro2.DryRun, ro2.AssignmentSHA256, ro2.Moves)
	}

	// The plan and the seed are the dry run's, or nothing.
	other := strings.Replace(text, "6.1.0", "6.1.1", 1)
	_, err = alice.CreateRolloutFrom(ctx, api.CreateRolloutRequest{FromDryRun: dr.ID, Plan: other, File: "kernel.yaml"})
	if api.Code(err) != api.CodeConflict || !strings.Contains(err.Error(), "is not the plan dry run "+dr.ID+" rehearsed") {
		t.Fatalf("another plan: %v", err)
	}
	_, err = alice.CreateRolloutFrom(ctx, api.CreateRolloutRequest{FromDryRun: dr.ID, Seed: "1"})
	if api.Code(err) != api.CodeConflict || !strings.Contains(err.Error(), "seed 1 is not the seed of dry run") {
		t.Fatalf("another seed: %v", err)
	}
	_, err = alice.CreateRolloutFrom(ctx, api.CreateRolloutRequest{FromDryRun: "dr-nosuch"})
	if api.Code(err) != api.CodeNotFound {
		t.Fatalf("unknown dry run: %v", err)
	}
	_, err = alice.Rehearse(ctx, api.DryRunRequest{Plan: text, Seed: "-1"})
	if api.Code(err) != api.CodeBadRequest || !strings.Contains(err.Error(), `seed "-1"`) {
		t.Fatalf("bad seed: %v", err)
	}
	// The same seed without a dry run: the same waves.
	ro3, err := alice.CreateRolloutFrom(ctx, api.CreateRolloutRequest{Plan: text, Seed: dr.Seed})
	if err != nil {
		t.Fatal(err)
	}
	if ro3.AssignmentSHA256 != ro2.AssignmentSHA256 || ro3.DryRun != "" {
		t.Fatalf("seed %s without the dry run: assignment %s, want %s", dr.Seed, ro3.AssignmentSHA256, ro2.AssignmentSHA256)
	}

	// A rollout whose nodes no longer hash to its assignment (moved
	// behind the server's back) cannot be approved.
	if _, err := st.(storetest.Backend).ExecRaw(ctx, "UPDATE rollout_nodes SET wave = 'rest' WHERE rollout_id = ? AND wave = 'canary'", ro3.ID); err != nil {
		t.Fatal(err)
	}
	_, err = bob.Command(ctx, ro3.ID, "approve", 0, api.CommandRequest{})
	if api.Code(err) != api.CodeConflict || !strings.Contains(err.Error(), "not to the assignment "+ro3.AssignmentSHA256+" it was created with") {
		t.Fatalf("approving a rollout whose nodes moved: %v", err)
	}
}
