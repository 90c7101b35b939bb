package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/disruption"
	"github.com/drover-dev/drover/internal/engine"
	dplan "github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/window"
)

func runFleet(t *testing.T, h func(f func(t *testing.T, s Backend)) func(t *testing.T)) {
	t.Run("FleetBudgets", h(testFleetBudgets))
	t.Run("FleetFreezes", h(testFleetFreezes))
	t.Run("NodeHolds", h(testNodeHolds))
	t.Run("BudgetEnforced", h(testBudgetEnforced))
	t.Run("ConcurrentFleetCommits", h(testConcurrentFleetCommits))
	t.Run("FleetLock", h(testFleetLock))
	t.Run("ConcurrentFleetLock", h(testConcurrentFleetLock))
}

func fleetOf(t *testing.T, s store.Store) store.FleetSafety {
	t.Helper()
	f, ok := store.AsFleetSafety(s)
	if !ok {
		t.Fatalf("store %T keeps no fleet safety objects", s)
	}
	return f
}

func lastAudit(t *testing.T, s store.Store) store.AuditEntry {
	t.Helper()
	es := get(s.ListAudit(context.Background(), 0, 100000, ""))(t)
	return es[len(es)-1]
}

func testFleetBudgets(t *testing.T, s Backend) {
	ctx := context.Background()
	f := fleetOf(t, s)
	b := disruption.Budget{Name: "prod-web", Selector: `node.labels.tier == "web"`, MaxUnavailable: dplan.Quantity{Count: 2}, Per: "zone"}
	rec := get(f.PutBudget(ctx, b, 0, "alice", at(0)))(t)
	if rec.Version != 1 || rec.CreatedBy != "alice" || !rec.CreatedAt.Equal(at(0)) {
		t.Fatalf("created budget = %+v", rec)
	}
	if e := lastAudit(t, s); e.Action != "budget.create" || e.Object != "budget/prod-web" || e.Actor != "alice" {
		t.Fatalf("audit = %+v", e)
	}
	_, err := f.PutBudget(ctx, b, 0, "bob", at(time.Minute))
	wantErr(t, err, store.ErrConflict, "creating a budget that exists")
	b.MaxUnavailable = dplan.Quantity{Percent: true, Value: 25}
	_, err = f.PutBudget(ctx, b, 7, "bob", at(time.Minute))
	wantErr(t, err, store.ErrConflict, "updating at a stale version")
	rec = get(f.PutBudget(ctx, b, 1, "bob", at(time.Minute)))(t)
	if rec.Version != 2 || rec.CreatedBy != "alice" || rec.MaxUnavailable.String() != "25%" {
		t.Fatalf("updated budget = %+v", rec)
	}
	if e := lastAudit(t, s); e.Action != "budget.update" || !strings.Contains(string(e.Detail), `"maxUnavailable":"25%"`) ||
		!strings.Contains(string(e.Detail), `"from":{"maxUnavailable":"2"`) {
		t.Fatalf("audit = %+v %s", e, e.Detail)
	}
	_, err = f.PutBudget(ctx, disruption.Budget{Name: "Bad Name"}, 0, "bob", at(0))
	if err == nil || !strings.Contains(err.Error(), `budget name "Bad Name"`) {
		t.Fatalf("bad name: %v", err)
	}
	_, err = f.PutBudget(ctx, disruption.Budget{Name: "x", Selector: "node.labels.zone ==", MaxUnavailable: dplan.Quantity{Count: 1}}, 0, "bob", at(0))
	if err == nil || !strings.Contains(err.Error(), "budget x: selector") {
		t.Fatalf("bad selector: %v", err)
	}
	got := get(f.GetBudget(ctx, "prod-web"))(t)
	if got.Selector != b.Selector || got.Per != "zone" || got.Version != 2 {
		t.Fatalf("get = %+v", got)
	}
	if l := get(f.ListBudgets(ctx))(t); len(l) != 1 {
		t.Fatalf("list = %+v", l)
	}
	ok(t, f.DeleteBudget(ctx, "prod-web", "carol", at(2*time.Minute)))
	if e := lastAudit(t, s); e.Action != "budget.delete" || e.Actor != "carol" {
		t.Fatalf("audit = %+v", e)
	}
	wantErr(t, f.DeleteBudget(ctx, "prod-web", "carol", at(2*time.Minute)), store.ErrNotFound, "deleting a deleted budget")
	_, err = f.GetBudget(ctx, "prod-web")
	wantErr(t, err, store.ErrNotFound, "getting a deleted budget")
	verifyOK(t, s)
}

func testFleetFreezes(t *testing.T, s Backend) {
	ctx := context.Background()
	f := fleetOf(t, s)
	eoq := store.FreezeRecord{Freeze: disruption.Freeze{Name: "end-of-quarter", Reason: "finance close",
		Calendar: window.CalendarSpec{TimeZone: "Europe/Paris", Start: "2026-03-25", End: "2026-04-01", Rule: "FREQ=YEARLY;BYMONTH=3,6,9,12;BYMONTHDAY=25"}}}
	pt := store.FreezeRecord{Freeze: disruption.Freeze{Name: "patch-tuesday", Selector: `node.os.family == "windows"`,
		Calendar: window.CalendarSpec{TimeZone: "America/New_York", Start: "2026-01-13T10:00", End: "2026-01-14T10:00", Rule: "FREQ=MONTHLY;BYDAY=2TU"}},
		Source: "it.ics#pt"}
	recs := get(f.PutFreezes(ctx, []store.FreezeRecord{eoq, pt}, 0, "alice", at(0)))(t)
	if len(recs) != 2 || recs[1].Version != 1 || recs[1].Source != "it.ics#pt" {
		t.Fatalf("created = %+v", recs)
	}
	// An import that clashes with one existing freeze imports nothing.
	xmas := store.FreezeRecord{Freeze: disruption.Freeze{Name: "xmas", Calendar: window.CalendarSpec{TimeZone: "UTC", Start: "2026-12-24", End: "2026-12-27"}}}
	before := auditCount(t, s)
	_, err := f.PutFreezes(ctx, []store.FreezeRecord{xmas, eoq}, 0, "bob", at(time.Minute))
	wantErr(t, err, store.ErrConflict, "importing a freeze that exists")
	if _, err := f.GetFreeze(ctx, "xmas"); !errors.Is(err, store.ErrNotFound) || auditCount(t, s) != before {
		t.Fatalf("a failed import wrote something: %v, audit %d -> %d", err, before, auditCount(t, s))
	}
	bad := xmas
	bad.Calendar.Rule = "FREQ=HOURLY"
	_, err = f.PutFreezes(ctx, []store.FreezeRecord{bad}, 0, "bob", at(time.Minute))
	if err == nil || !strings.Contains(err.Error(), "FREQ=HOURLY") {
		t.Fatalf("bad rule: %v", err)
	}
	eoq.Reason = "quarter close"
	upd := get(f.PutFreezes(ctx, []store.FreezeRecord{eoq}, 1, "bob", at(time.Minute)))(t)
	if upd[0].Version != 2 || upd[0].Reason != "quarter close" {
		t.Fatalf("updated = %+v", upd)
	}
	if e := lastAudit(t, s); e.Action != "freeze.update" || e.Object != "freeze/end-of-quarter" {
		t.Fatalf("audit = %+v", e)
	}
	got := get(f.GetFreeze(ctx, "patch-tuesday"))(t)
	if got.Calendar.Rule != "FREQ=MONTHLY;BYDAY=2TU" || got.Selector != pt.Selector || got.Calendar.TimeZone != "America/New_York" {
		t.Fatalf("get = %+v", got)
	}
	ok(t, f.DeleteFreeze(ctx, "patch-tuesday", "carol", at(2*time.Minute)))
	if l := get(f.ListFreezes(ctx))(t); len(l) != 1 || l[0].Name != "end-of-quarter" {
		t.Fatalf("list = %+v", l)
	}
	if e := lastAudit(t, s); e.Action != "freeze.delete" {
		t.Fatalf("audit = %+v", e)
	}
	verifyOK(t, s)
}

// fleetFixture registers nodes (id -> zone), creates running rollouts
// each targeting all of them in one wave, and makes s the leader.
func fleetFixture(t *testing.T, s store.Store, nodes [][2]string, rollouts ...string) int64 {
	t.Helper()
	ctx := context.Background()
	for _, n := range nodes {
		get(s.UpsertNode(ctx, store.NodeRecord{ID: n[0], Facts: facts("debian", "6.1.0"), Labels: map[string]string{"zone": n[1], "tier": "web"},
			AgentVersion: "1.0.0", Protocol: 1, LastSeen: at(0), LeaseUntil: at(time.Hour)}))(t)
	}
	for i, id := range rollouts {
		var rns []store.RolloutNode
		for _, n := range nodes {
			rns = append(rns, store.RolloutNode{NodeID: n[0], State: engine.NodeState{Phase: engine.PhasePending, Wave: "all", Since: at(0)}})
		}
		get(s.CreateRollout(ctx, store.Rollout{ID: id, Name: "plan-" + id, Author: "alice", Plan: []byte(plan), State: engine.RolloutRunning,
			Seed: uint64(i), CreatedAt: at(time.Duration(i) * time.Second)}, rns,
			[]store.Wave{{Name: "all", WaveStatus: engine.WaveStatus{State: engine.WaveRunning}}}, "alice"))(t)
	}
	term, won, err := s.Campaign(ctx, "server-1")
	ok(t, err)
	if !won {
		t.Fatal("not leading")
	}
	return term
}

// moveCommit moves nodes of a rollout from their loaded state to phase
// to; a move to queued dispatches a step.
func moveCommit(t *testing.T, data store.RolloutData, term int64, now time.Time, to engine.Phase, ids ...string) store.Commit {
	t.Helper()
	c := store.Commit{Rollout: data.Rollout.ID, Version: data.Rollout.Version, Term: term, Now: now, State: engine.RolloutRunning}
	for _, id := range ids {
		n := nodeOf(t, data, id)
		st := n.State
		st.Phase, st.Since = to, now
		sid := ""
		if to == engine.PhaseQueued {
			st.Attempt++
			st.StartedAt = now
			sid = fmt.Sprintf("%s/%s/apply/%d", data.Rollout.ID, id, st.Attempt)
			c.Steps = append(c.Steps, store.Step{ID: sid, NodeID: id, Kind: store.StepApply, Attempt: st.Attempt, Payload: json.RawMessage(`{}`)})
		}
		c.Nodes = append(c.Nodes, store.NodeUpdate{NodeID: id, From: n.State, To: st, StepID: sid})
	}
	return c
}

func holdsOf(t *testing.T, s store.Store) map[string]string {
	t.Helper()
	st := get(fleetOf(t, s).LoadFleetState(context.Background()))(t)
	out := map[string]string{}
	for _, h := range st.Holds {
		out[h.Node] = h.Kind + ":" + h.Holder
	}
	return out
}

// testNodeHolds: a node in flight in one rollout cannot be dispatched by
// another until it leaves the in-flight phases or its rollout ends.
func testNodeHolds(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fleetFixture(t, s, [][2]string{{"h1", "a"}, {"h2", "a"}, {"h3", "b"}}, "ra", "rb")
	var create store.AuditEntry
	for _, e := range get(s.ListAudit(ctx, 0, 1000, "rb"))(t) {
		if e.Action == "rollout.create" {
			create = e
		}
	}
	if !strings.Contains(string(create.Detail), `"overlaps":{"ra":3}`) {
		t.Fatalf("rollout.create of rb does not record its overlap with ra: %s", create.Detail)
	}
	get(s.ApplyCommit(ctx, moveCommit(t, load(t, s, "ra"), term, at(time.Minute), engine.PhaseQueued, "h1")))(t)
	if h := holdsOf(t, s); h["h1"] != "rollout:ra" || len(h) != 1 {
		t.Fatalf("holds = %v", h)
	}
	before := load(t, s, "rb")
	_, err := s.ApplyCommit(ctx, moveCommit(t, before, term, at(time.Minute), engine.PhaseQueued, "h2", "h1"))
	wantErr(t, err, store.ErrConflict, "dispatching a node another rollout holds")
	if !strings.Contains(err.Error(), "node h1 is held by rollout ra (plan-ra)") {
		t.Fatalf("error %q does not name the holder", err)
	}
	if after := load(t, s, "rb"); after.Rollout.Version != before.Rollout.Version || nodeOf(t, after, "h2").State.Phase != engine.PhasePending {
		t.Fatal("the refused commit wrote something")
	}
	if h := holdsOf(t, s); len(h) != 1 {
		t.Fatalf("holds after a refused commit = %v", h)
	}
	// Failed keeps the hold; an agent's report and a resolution move it on.
	ra := load(t, s, "ra")
	ok(t, s.ReportStep(ctx, store.Report{StepID: nodeOf(t, ra, "h1").StepID, NodeID: "h1", Phase: engine.PhaseFailed, Reason: "boom", At: at(2 * time.Minute)}))
	if h := holdsOf(t, s); h["h1"] != "rollout:ra" {
		t.Fatalf("a failed node lost its hold: %v", h)
	}
	get(s.Command(ctx, "ra", 0, store.Command{Actor: "bob", Action: "resolve", NodeID: "h1", Resolution: engine.PhaseQuarantined}, at(3*time.Minute)))(t)
	if h := holdsOf(t, s); len(h) != 0 {
		t.Fatalf("a quarantined node still held: %v", h)
	}
	get(s.ApplyCommit(ctx, moveCommit(t, load(t, s, "rb"), term, at(4*time.Minute), engine.PhaseQueued, "h1", "h2")))(t)
	// A report of success releases; the same rollout's rollback takes it again.
	rb := load(t, s, "rb")
	ok(t, s.ReportStep(ctx, store.Report{StepID: nodeOf(t, rb, "h2").StepID, NodeID: "h2", Phase: engine.PhaseSucceeded, At: at(5 * time.Minute)}))
	if h := holdsOf(t, s); h["h1"] != "rollout:rb" || h["h2"] != "" {
		t.Fatalf("holds = %v", h)
	}
	get(s.ApplyCommit(ctx, moveCommit(t, load(t, s, "ra"), term, at(6*time.Minute), engine.PhaseQueued, "h2")))(t)
	// The end of a rollout releases every node it held.
	get(s.Command(ctx, "rb", 0, store.Command{Actor: "bob", Action: "abort", Reason: "test"}, at(7*time.Minute)))(t)
	if h := holdsOf(t, s); len(h) != 1 || h["h2"] != "rollout:ra" {
		t.Fatalf("holds after abort = %v", h)
	}
	verifyOK(t, s)
}

// testBudgetEnforced: a commit that would fill a fleet budget domain past
// its limit is refused, whichever rollout it comes from.
func testBudgetEnforced(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fleetFixture(t, s, [][2]string{{"b1", "a"}, {"b2", "a"}, {"b3", "a"}, {"b4", "b"}}, "ra", "rb")
	f := fleetOf(t, s)
	get(f.PutBudget(ctx, disruption.Budget{Name: "zones", MaxUnavailable: dplan.Quantity{Count: 1}, Per: "zone"}, 0, "alice", at(0)))(t)
	get(s.ApplyCommit(ctx, moveCommit(t, load(t, s, "ra"), term, at(time.Minute), engine.PhaseQueued, "b1")))(t)
	_, err := s.ApplyCommit(ctx, moveCommit(t, load(t, s, "rb"), term, at(time.Minute), engine.PhaseQueued, "b2"))
	wantErr(t, err, store.ErrConflict, "a second node of zone a in another rollout")
	if !strings.Contains(err.Error(), "node b2 would put fleet budget zones zone=a at 2/1") {
		t.Fatalf("error %q does not name the budget domain", err)
	}
	_, err = s.ApplyCommit(ctx, moveCommit(t, load(t, s, "ra"), term, at(time.Minute), engine.PhaseQueued, "b2"))
	wantErr(t, err, store.ErrConflict, "a second node of zone a in the same rollout")
	get(s.ApplyCommit(ctx, moveCommit(t, load(t, s, "rb"), term, at(time.Minute), engine.PhaseQueued, "b4")))(t)
	// Relabelling a node moves it between domains for later commits.
	get(s.SetNodeLabels(ctx, "b3", map[string]string{"zone": "c", "tier": "web"}, 0, "alice"))(t)
	get(s.ApplyCommit(ctx, moveCommit(t, load(t, s, "rb"), term, at(2*time.Minute), engine.PhaseQueued, "b3")))(t)
	// A percent: 50% of zone a's 2 nodes is 1.
	get(f.PutBudget(ctx, disruption.Budget{Name: "zones", MaxUnavailable: dplan.Quantity{Percent: true, Value: 50}, Per: "zone"}, 1, "alice", at(0)))(t)
	_, err = s.ApplyCommit(ctx, moveCommit(t, load(t, s, "rb"), term, at(3*time.Minute), engine.PhaseQueued, "b2"))
	wantErr(t, err, store.ErrConflict, "50% of zone a")
	// Deleting the budget lifts the limit.
	ok(t, f.DeleteBudget(ctx, "zones", "alice", at(0)))
	get(s.ApplyCommit(ctx, moveCommit(t, load(t, s, "rb"), term, at(3*time.Minute), engine.PhaseQueued, "b2")))(t)
	verifyOK(t, s)
}

// testConcurrentFleetCommits: three rollouts over the same nine nodes
// (three zones), dispatched by workers on two stores (two servers) at
// once under two fleet budgets (1 per zone, 2 in all). In every round the
// holds stay within both budgets and no node is in flight in two
// rollouts, however the races fall.
func testConcurrentFleetCommits(t *testing.T, s Backend) {
	ctx := context.Background()
	var nodes [][2]string
	for i := range 9 {
		nodes = append(nodes, [2]string{fmt.Sprintf("c%d", i), string(rune('a' + i%3))})
	}
	rollouts := []string{"r-x", "r-y", "r-z"}
	term := fleetFixture(t, s, nodes, rollouts...)
	f := fleetOf(t, s)
	get(f.PutBudget(ctx, disruption.Budget{Name: "per-zone", MaxUnavailable: dplan.Quantity{Count: 1}, Per: "zone"}, 0, "alice", at(0)))(t)
	get(f.PutBudget(ctx, disruption.Budget{Name: "fleet", MaxUnavailable: dplan.Quantity{Count: 2}}, 0, "alice", at(0)))(t)
	stores := []store.Store{s, reopen(t, s)}
	rounds := 12
	if testing.Short() {
		rounds = 4
	}
	var wins, conflicts, peakZone, peakAll int
	for round := range rounds {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				ro := rollouts[w%3]
				st := stores[w%2]
				for range 4 {
					data, err := st.LoadRollout(ctx, ro)
					if err != nil {
						t.Error(err)
						return
					}
					var pending []string
					for _, n := range data.Nodes {
						if n.State.Phase == engine.PhasePending {
							pending = append(pending, n.NodeID)
						}
					}
					if len(pending) == 0 {
						return
					}
					id := pending[rng.IntN(len(pending))]
					_, err = st.ApplyCommit(ctx, moveCommit(t, data, term, at(time.Duration(round)*time.Minute), engine.PhaseQueued, id))
					mu.Lock()
					switch {
					case err == nil:
						wins++
					case errors.Is(err, store.ErrConflict):
						conflicts++
					default:
						t.Errorf("round %d worker %d: %v", round, w, err)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		// Quiescent: check the invariants, then finish every step.
		zone := map[string]int{}
		inFlight := map[string][]string{}
		holds := holdsOf(t, s)
		for _, ro := range rollouts {
			data := load(t, s, ro)
			var queued []string
			for _, n := range data.Nodes {
				if n.State.Phase.InFlight() {
					inFlight[n.NodeID] = append(inFlight[n.NodeID], ro)
					queued = append(queued, n.NodeID)
					if holds[n.NodeID] != "rollout:"+ro {
						t.Fatalf("round %d: %s in flight in %s but held by %q", round, n.NodeID, ro, holds[n.NodeID])
					}
					zone[nodes[n.NodeID[1]-'0'][1]]++
				}
			}
			if len(queued) > 0 {
				get(s.ApplyCommit(ctx, moveCommit(t, data, term, at(time.Duration(round)*time.Minute+30*time.Second), engine.PhaseSucceeded, queued...)))(t)
			}
		}
		total := 0
		for id, ros := range inFlight {
			if len(ros) > 1 {
				t.Fatalf("round %d: node %s in flight in %v", round, id, ros)
			}
			total++
		}
		for z, n := range zone {
			if n > 1 {
				t.Fatalf("round %d: zone %s has %d nodes in flight, budget per-zone allows 1", round, z, n)
			}
			peakZone = max(peakZone, n)
		}
		if total > 2 {
			t.Fatalf("round %d: %d nodes in flight, budget fleet allows 2", round, total)
		}
		peakAll = max(peakAll, total)
		if len(holdsOf(t, s)) != 0 {
			t.Fatalf("round %d: holds left after every step finished: %v", round, holdsOf(t, s))
		}
		// Put the nodes back to pending so that the next round races again.
		for _, ro := range rollouts {
			data := load(t, s, ro)
			var done []string
			for _, n := range data.Nodes {
				if n.State.Phase == engine.PhaseSucceeded {
					done = append(done, n.NodeID)
				}
			}
			if len(done) > 0 {
				get(s.ApplyCommit(ctx, moveCommit(t, data, term, at(time.Duration(round)*time.Minute+45*time.Second), engine.PhasePending, done...)))(t)
			}
		}
	}
	t.Logf("%s: %d rounds, %d dispatches won, %d refused; peak per zone %d (limit 1), peak overall %d (limit 2)",
		s.Dialect(), rounds, wins, conflicts, peakZone, peakAll)
	if wins == 0 || conflicts == 0 || peakAll != 2 {
		t.Fatalf("the races exercised nothing: %d wins, %d conflicts, peak %d", wins, conflicts, peakAll)
	}
	verifyOK(t, s)
}
