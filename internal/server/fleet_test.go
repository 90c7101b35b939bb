package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/window"
)

// fleetPlan is testPlan without the fleet pre-flight: these tests step
// the scheduler by hand over nodes that have no agent, and are about
// budgets, holds and freezes, which a pre-flight phase would only delay.
const fleetPlan = testPlan + "preflight:\n  onFail: ignore\n"

func decodeJSON[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return v
}

func waitsOf(t *testing.T, s *Server, id string) string {
	t.Helper()
	_, _, body := call(t, s.Handler(), "GET", "/v1/rollouts/"+id, vera, nil)
	ro := decodeJSON[api.Rollout](t, body)
	var rs []string
	for _, w := range ro.Waits {
		rs = append(rs, fmt.Sprintf("%d: %s", w.Count, w.Reason))
	}
	return strings.Join(rs, "\n")
}

// TestFleetBudgetsAndOverlap: budgets through the API with their roles,
// versions and audit; a second rollout over the same nodes is refused
// with overlap: refuse and otherwise reports the overlap and waits for
// the nodes the first holds and for the budget, naming both.
func TestFleetBudgetsAndOverlap(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	ctx := context.Background()
	seedNodes(t, s, 3)
	budget := api.BudgetRequest{Name: "zone-a", MaxUnavailable: "1", Per: "zone", Selector: `node.os.family == "debian"`}
	if st, _, _ := call(t, h, "POST", "/v1/budgets", vera, budget); st != 403 {
		t.Fatalf("viewer creating a budget: %d", st)
	}
	st, ae, body := call(t, h, "POST", "/v1/budgets", alice, budget)
	if st != 201 {
		t.Fatalf("create: %d %v", st, ae)
	}
	b := decodeJSON[api.Budget](t, body)
	if b.Version != 1 || len(b.Domains) != 1 || fmt.Sprint(b.Domains[0]) != fmt.Sprint(api.BudgetDomain{Domain: "a", Nodes: 3, Limit: 1, Holders: []api.Hold{}}) {
		t.Fatalf("created = %+v", b)
	}
	if st, ae, _ := call(t, h, "POST", "/v1/budgets", alice, api.BudgetRequest{Name: "x", MaxUnavailable: "120%"}); st != 400 || !strings.Contains(ae.Error, "maxUnavailable") {
		t.Fatalf("bad quantity: %d %v", st, ae)
	}
	budget.MaxUnavailable = "2"
	if st, _, _ := call(t, h, "PUT", "/v1/budgets/zone-a", alice, budget, "If-Match", `"1"`); st != 403 {
		t.Fatalf("operator loosening a budget: %d", st)
	}
	if st, _, _ := call(t, h, "PUT", "/v1/budgets/zone-a", root, budget); st != 428 {
		t.Fatalf("update without If-Match: %d", st)
	}
	budget.MaxUnavailable = "1"
	if st, ae, _ := call(t, h, "PUT", "/v1/budgets/zone-a", root, budget, "If-Match", `"1"`); st != 200 {
		t.Fatalf("update: %d %v", st, ae)
	}

	first := strings.Replace(fleetPlan, `node.os.family == "debian"`, `node.id == "deb-a"`, 1)
	st, ae, body = call(t, h, "POST", "/v1/rollouts", alice, api.CreateRolloutRequest{Plan: first})
	if st != 201 {
		t.Fatalf("create r1: %d %v", st, ae)
	}
	r1 := decodeJSON[api.Rollout](t, body)
	if len(r1.Overlaps) != 0 {
		t.Fatalf("first rollout overlaps: %+v", r1.Overlaps)
	}
	second := strings.Replace(strings.Replace(fleetPlan, "name: openssl", "name: kernel", 1), "  - name: canary\n    nodes: 1\n  - name: rest\n", "  - name: all\n", 1)
	st, ae, _ = call(t, h, "POST", "/v1/rollouts", alice, api.CreateRolloutRequest{Plan: second + "overlap: refuse\n"})
	if st != 409 || ae.Code != api.CodeOverlap || !strings.Contains(ae.Error, "rollout "+r1.ID+" (openssl, running) shares 1 target node (deb-a)") {
		t.Fatalf("overlap: refuse: %d %+v", st, ae)
	}
	st, _, body = call(t, h, "POST", "/v1/plans/dry-run", alice, api.PlanRequest{Plan: second})
	if dr := decodeJSON[api.DryRunResponse](t, body); st != 200 || len(dr.Overlaps) != 1 || dr.Overlaps[0].Rollout != r1.ID {
		t.Fatalf("dry run overlaps: %d %+v", st, dr.Overlaps)
	}
	st, ae, body = call(t, h, "POST", "/v1/rollouts", alice, api.CreateRolloutRequest{Plan: second})
	if st != 201 {
		t.Fatalf("create r2: %d %v", st, ae)
	}
	r2 := decodeJSON[api.Rollout](t, body)
	if len(r2.Overlaps) != 1 || r2.Overlaps[0].Rollout != r1.ID || r2.Overlaps[0].Shared != 1 {
		t.Fatalf("r2 overlaps = %+v", r2.Overlaps)
	}

	term, won, err := s.st.Campaign(ctx, "test")
	if err != nil || !won {
		t.Fatalf("campaign: %v %v", won, err)
	}
	if err := s.sched.step(ctx, r1.ID, term, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.sched.step(ctx, r2.ID, term, ""); err != nil {
		t.Fatal(err)
	}
	data, _ := s.st.LoadRollout(ctx, r1.ID)
	var held string
	for _, n := range data.Nodes {
		if n.State.Phase == engine.PhaseQueued {
			held = n.NodeID
		}
	}
	if held == "" {
		t.Fatal("r1 started nothing")
	}
	data, _ = s.st.LoadRollout(ctx, r2.ID)
	for _, n := range data.Nodes {
		if n.State.Phase != engine.PhasePending {
			t.Fatalf("r2 started %s under a full budget or on a held node", n.NodeID)
		}
	}
	waits := waitsOf(t, s, r2.ID)
	for _, want := range []string{"1: node held by rollout " + r1.ID + " (openssl)",
		fmt.Sprintf("2: fleet budget zone-a zone=a at 1/1, held by %s (%s)", held, r1.ID)} {
		if !strings.Contains(waits, want) {
			t.Errorf("r2 waits do not say %q:\n%s", want, waits)
		}
	}
	_, _, body = call(t, h, "GET", "/v1/budgets/zone-a", vera, nil)
	if b := decodeJSON[api.Budget](t, body); b.Domains[0].InUse != 1 || b.Domains[0].Holders[0].Holder != r1.ID || b.Version != 2 {
		t.Fatalf("budget use = %+v", b)
	}
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "drover_fleet_budget_") {
			for _, m := range mf.GetMetric() {
				k := mf.GetName()
				for _, l := range m.GetLabel() {
					k += " " + l.GetName() + "=" + l.GetValue()
				}
				got[k] = m.GetGauge().GetValue()
			}
		}
	}
	if len(got) != 2 || got["drover_fleet_budget_in_use budget=zone-a domain=a"] != 1 || got["drover_fleet_budget_limit budget=zone-a domain=a"] != 1 {
		t.Errorf("fleet budget metrics = %v", got)
	}
	if st, _, _ := call(t, h, "DELETE", "/v1/budgets/zone-a", alice, nil); st != 403 {
		t.Fatalf("operator deleting a budget: %d", st)
	}
	if st, _, _ := call(t, h, "DELETE", "/v1/budgets/zone-a", root, nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	audit, _ := s.st.ListAudit(ctx, 0, 10000, "")
	for _, a := range [][2]string{{"budget.create", "alice"}, {"budget.update", "root"}, {"budget.delete", "root"}} {
		if !hasAudit(audit, a[0], "budget/zone-a", a[1]) {
			t.Errorf("no %s by %s in the audit log", a[0], a[1])
		}
	}
}

// TestFleetFreezeBreakGlass: a fleet freeze holds every rollout whose
// nodes it covers, naming itself and when it ends in its zone, with the
// next decision due when it ends; an admin's break-glass on one rollout
// overrides it for that rollout alone, and the start is audited.
func TestFleetFreezeBreakGlass(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	ctx := context.Background()
	seedNodes(t, s, 3)
	paris, _ := time.LoadLocation("Europe/Paris")
	now := time.Now().In(paris)
	fz := api.FreezeSpec{Name: "end-of-quarter", TimeZone: "Europe/Paris", Reason: "finance close",
		Start: now.Add(-time.Hour).Format(window.WallLayout), End: now.Add(2 * time.Hour).Format(window.WallLayout)}
	st, ae, body := call(t, h, "POST", "/v1/freezes", alice, api.FreezesRequest{Freezes: []api.FreezeSpec{fz}})
	if st != 201 {
		t.Fatalf("create freeze: %d %v", st, ae)
	}
	fl := decodeJSON[api.FreezeList](t, body)
	if len(fl.Freezes) != 1 || !fl.Freezes[0].Active || fl.Freezes[0].Until == nil {
		t.Fatalf("created = %s", body)
	}
	until := fl.Freezes[0].Until.In(paris).Format("2006-01-02T15:04")
	bad := fz
	bad.Name, bad.Rule = "other", "FREQ=SECONDLY"
	if st, ae, _ := call(t, h, "POST", "/v1/freezes", alice, api.FreezesRequest{Freezes: []api.FreezeSpec{bad}}); st != 400 || !strings.Contains(ae.Error, "FREQ=SECONDLY") {
		t.Fatalf("bad rule: %d %v", st, ae)
	}
	var ids []string
	for _, name := range []string{"openssl", "kernel"} {
		st, ae, body := call(t, h, "POST", "/v1/rollouts", alice, api.CreateRolloutRequest{Plan: strings.Replace(fleetPlan, "openssl", name, 1)})
		if st != 201 {
			t.Fatalf("create: %d %v", st, ae)
		}
		ids = append(ids, decodeJSON[api.Rollout](t, body).ID)
	}
	want := fmt.Sprintf("1: fleet freeze end-of-quarter until %s Europe/Paris (finance close)", until)
	if w := waitsOf(t, s, ids[0]); !strings.Contains(w, want) {
		t.Fatalf("waits do not name the freeze %q:\n%s", want, w)
	}
	in := s.sched.inputFor(t, ids[0])
	if d := engine.Decide(in); len(d.Starts) != 0 || d.NextAt.IsZero() || !d.NextAt.Equal(*fl.Freezes[0].Until) {
		t.Fatalf("decision under the freeze: starts %v, next %s, want next at %s", d.Starts, d.NextAt, fl.Freezes[0].Until)
	}
	if st, _, _ := call(t, h, "POST", "/v1/rollouts/"+ids[0]+"/break-glass", root, api.BreakGlassRequest{Reason: "CVE-2026-0002 exploited"}); st != 200 {
		t.Fatalf("break-glass: %d", st)
	}
	term, _, err := s.st.Campaign(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := s.sched.step(ctx, id, term, ""); err != nil {
			t.Fatal(err)
		}
	}
	started := func(id string) int {
		data, _ := s.st.LoadRollout(ctx, id)
		n := 0
		for _, x := range data.Nodes {
			if x.State.Phase == engine.PhaseQueued {
				n++
			}
		}
		return n
	}
	if started(ids[0]) != 1 || started(ids[1]) != 0 {
		t.Fatalf("started %d under break-glass, %d without; want 1 and 0", started(ids[0]), started(ids[1]))
	}
	audit, _ := s.st.ListAudit(ctx, 0, 10000, ids[0])
	found := false
	for _, e := range audit {
		if e.Action == "rollout.decision" && strings.Contains(string(e.Detail), "break-glass overrides fleet freeze end-of-quarter") &&
			strings.Contains(string(e.Detail), "CVE-2026-0002 exploited") {
			found = true
		}
	}
	if !found {
		t.Fatal("the start under break-glass is not audited naming the freeze and the reason")
	}
	all, _ := s.st.ListAudit(ctx, 0, 10000, "")
	if !hasAudit(all, "freeze.create", "freeze/end-of-quarter", "alice") {
		t.Fatal("freeze creation not audited")
	}
}

// inputFor builds the engine input the scheduler would decide from.
func (sc *scheduler) inputFor(t *testing.T, id string) engine.Input {
	t.Helper()
	data, rc, err := sc.load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	in := rc.input(data, sc.s.now())
	sc.s.applyFleet(context.Background(), &in, true)
	return in
}
