package server

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/window"
)

// TestNewestPerKey: each key learns from the newest rollout that ran
// it, keys the newest rollout did not run keep their older steps.
func TestNewestPerKey(t *testing.T) {
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	row := func(ro, node, family string, settled int) store.StepTiming {
		return store.StepTiming{StepID: ro + "/" + node, Rollout: ro, NodeID: node, Action: "package", OSFamily: family,
			OSVersion: "12", SettledAt: t0.Add(time.Duration(settled) * time.Minute)}
	}
	rows := []store.StepTiming{ // newest first
		row("r2", "d1", "debian", 9), row("r2", "d2", "debian", 8),
		row("r1", "d1", "debian", 5), row("r1", "d2", "debian", 4), row("r1", "h1", "rhel", 3),
	}
	got := newestPerKey(rows)
	var ids []string
	for _, r := range got {
		ids = append(ids, r.StepID)
	}
	want := []string{"r2/d1", "r2/d2", "r1/h1"}
	if len(ids) != len(want) {
		t.Fatalf("kept %v, want %v", ids, want)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("kept %v, want %v", ids, want)
		}
	}
}

// TestETANamesTheFreezeAhead: a running rollout held by a freeze has an
// ETA past the freeze's end, which names the freeze; its prediction
// says the durations came from the default model (no history yet).
func TestETANamesTheFreezeAhead(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	seedNodes(t, s, 3)
	now := time.Now().UTC()
	until := now.Add(time.Hour).Truncate(time.Second)
	p := testPlan + fmt.Sprintf("windows:\n  freezes:\n    - name: launch\n      from: %s\n      to: %s\n",
		now.Add(-time.Hour).Format(time.RFC3339), until.Format(time.RFC3339))
	status, ae, body := call(t, h, "POST", "/v1/rollouts", alice, api.CreateRolloutRequest{Plan: p})
	if status != 201 {
		t.Fatalf("create: %d %v", status, ae)
	}
	var ro api.Rollout
	_ = json.Unmarshal(body, &ro)
	_, _, body = call(t, h, "GET", "/v1/rollouts/"+ro.ID, vera, nil)
	var got api.Rollout
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.ETA == nil || got.ETA.End.Before(until) {
		t.Fatalf("ETA %+v, want one past the freeze's end %s", got.ETA, until)
	}
	if len(got.ETA.Delays) == 0 || !strings.Contains(got.ETA.Delays[0], `freeze "launch"`) {
		t.Errorf("ETA delays %q do not name the freeze", got.ETA.Delays)
	}
	if got.Prediction == nil || len(got.Prediction.Model) == 0 || !strings.Contains(got.Prediction.Model[0], "default model") {
		t.Errorf("prediction %+v does not say it used the default model", got.Prediction)
	}
}

// TestETANamesTheFleetFreezeAhead: a fleet freeze (a server object, not
// the plan's) holding a running rollout pushes its ETA past its end and
// is named.
func TestETANamesTheFleetFreezeAhead(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	seedNodes(t, s, 3)
	now := time.Now().UTC()
	fz := api.FreezeSpec{Name: "end-of-quarter", TimeZone: "UTC", Reason: "finance close",
		Start: now.Add(-time.Hour).Format(window.WallLayout), End: now.Add(2 * time.Hour).Format(window.WallLayout)}
	if st, ae, _ := call(t, h, "POST", "/v1/freezes", alice, api.FreezesRequest{Freezes: []api.FreezeSpec{fz}}); st != 201 {
		t.Fatalf("create freeze: %d %v", st, ae)
	}
	status, ae, body := call(t, h, "POST", "/v1/rollouts", alice, api.CreateRolloutRequest{Plan: testPlan})
	if status != 201 {
		t.Fatalf("create: %d %v", status, ae)
	}
	ro := decodeJSON[api.Rollout](t, body)
	_, _, body = call(t, h, "GET", "/v1/rollouts/"+ro.ID, vera, nil)
	got := decodeJSON[api.Rollout](t, body)
	if got.ETA == nil || got.ETA.End.Before(now.Add(2*time.Hour-time.Minute)) {
		t.Fatalf("ETA %+v, want one past the fleet freeze's end", got.ETA)
	}
	if len(got.ETA.Delays) == 0 || !strings.Contains(got.ETA.Delays[0], "fleet freeze end-of-quarter") {
		t.Errorf("ETA delays %q do not name the fleet freeze", got.ETA.Delays)
	}
}
