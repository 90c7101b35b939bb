package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/disruption"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	dplan "github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/window"
)

func locksOf(t *testing.T, s store.Store) store.FleetLocks {
	t.Helper()
	l, ok := store.AsFleetLocks(s)
	if !ok {
		t.Fatalf("store %T keeps no FleetLock slots", s)
	}
	return l
}

// wantRefusal checks that err is a FleetLock refusal of kind, whose
// reason contains want.
func wantRefusal(t *testing.T, err error, kind, want string) {
	t.Helper()
	var r *store.FleetLockRefusal
	if !errors.As(err, &r) {
		t.Fatalf("err = %v, want a FleetLock refusal %s", err, kind)
	}
	if r.Kind != kind || !strings.Contains(r.Reason, want) {
		t.Fatalf("refusal = %s %q, want %s containing %q", r.Kind, r.Reason, kind, want)
	}
}

// testFleetLock: FleetLock slots are node holds of their own kind: a
// group's semaphore, idempotent, exclusive with rollouts' holds both
// ways, counted against fleet budgets, refused while the line is
// stopped or a freeze covers the node; every lock and unlock audited.
func testFleetLock(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fleetFixture(t, s, [][2]string{{"f1", "a"}, {"f2", "a"}, {"f3", "b"}, {"f4", "b"}}, "ra")
	l := locksOf(t, s)
	req := func(node string, now time.Duration) store.FleetLockRequest {
		return store.FleetLockRequest{Node: node, Group: "default", MaxHolders: 1, Peer: "192.0.2.1:4000", Now: at(now)}
	}
	already, err := l.FleetLockAcquire(ctx, req("f1", time.Minute))
	ok(t, err)
	if already {
		t.Fatal("first pre-reboot reported as already holding")
	}
	if e := lastAudit(t, s); e.Action != "fleetlock.lock" || e.Object != "node/f1" || !strings.Contains(string(e.Detail), `"group":"default"`) {
		t.Fatalf("last audit = %+v %s", e, e.Detail)
	}
	before := auditCount(t, s)
	if already := get(l.FleetLockAcquire(ctx, req("f1", 2*time.Minute)))(t); !already {
		t.Fatal("a second pre-reboot of the holder is not idempotent")
	}
	if auditCount(t, s) != before {
		t.Fatal("an idempotent pre-reboot was audited again")
	}
	// The group's semaphore: one holder.
	_, err = l.FleetLockAcquire(ctx, req("f3", 2*time.Minute))
	wantRefusal(t, err, store.FleetLockGroupFull, "FleetLock group default has 1/1 holders")
	// Another group has its own slots.
	other := req("f3", 2*time.Minute)
	other.Group, other.MaxHolders = "workers", 2
	get(l.FleetLockAcquire(ctx, other))(t)
	if h := holdsOf(t, s); h["f1"] != "fleetlock:default" || h["f3"] != "fleetlock:workers" || len(h) != 2 {
		t.Fatalf("holds = %v", h)
	}
	// A rollout cannot dispatch a node a FleetLock client holds, and the
	// error names the holder.
	_, err = s.ApplyCommit(ctx, moveCommit(t, load(t, s, "ra"), term, at(3*time.Minute), engine.PhaseQueued, "f1"))
	wantErr(t, err, store.ErrConflict, "dispatching a node FleetLock holds")
	if !strings.Contains(err.Error(), "node f1 is held by fleetlock default (reboot)") {
		t.Fatalf("error %q does not name the FleetLock holder", err)
	}
	// And vice versa.
	get(s.ApplyCommit(ctx, moveCommit(t, load(t, s, "ra"), term, at(3*time.Minute), engine.PhaseQueued, "f2")))(t)
	other.Node = "f2"
	_, err = l.FleetLockAcquire(ctx, other)
	wantRefusal(t, err, store.FleetLockNodeHeld, "node f2 is held by rollout ra (plan-ra)")
	// Steady-state releases, idempotently; a wrong group releases nothing.
	if released := get(l.FleetLockRelease(ctx, "f1", "workers", "peer", at(4*time.Minute)))(t); released {
		t.Fatal("released f1 from a group it does not hold")
	}
	if released := get(l.FleetLockRelease(ctx, "f1", "default", "peer", at(4*time.Minute)))(t); !released {
		t.Fatal("steady-state did not release f1")
	}
	if e := lastAudit(t, s); e.Action != "fleetlock.unlock" || e.Object != "node/f1" {
		t.Fatalf("last audit = %+v", e)
	}
	before = auditCount(t, s)
	if released := get(l.FleetLockRelease(ctx, "f1", "default", "peer", at(4*time.Minute)))(t); released {
		t.Fatal("a second steady-state released again")
	}
	if auditCount(t, s) != before {
		t.Fatal("a steady-state that released nothing was audited")
	}
	_, err = l.FleetLockRelease(ctx, "ghost", "default", "peer", at(4*time.Minute))
	wantRefusal(t, err, store.FleetLockUnknownNode, "node ghost is not enrolled")
	_, err = l.FleetLockAcquire(ctx, req("ghost", 4*time.Minute))
	wantRefusal(t, err, store.FleetLockUnknownNode, "node ghost is not enrolled")
	// A group's selector.
	sel, err := fleet.CompileSelector(`node.labels.zone == "b"`)
	ok(t, err)
	zb := req("f1", 4*time.Minute)
	zb.Selector = sel
	_, err = l.FleetLockAcquire(ctx, zb)
	wantRefusal(t, err, store.FleetLockNotInGroup, "node f1 is not in FleetLock group default")
	// Fleet budgets count FleetLock holds with rollouts' holds: zone a
	// has f2 (rollout ra) in flight.
	f := fleetOf(t, s)
	get(f.PutBudget(ctx, disruption.Budget{Name: "zones", MaxUnavailable: dplan.Quantity{Count: 1}, Per: "zone"}, 0, "alice", at(0)))(t)
	_, err = l.FleetLockAcquire(ctx, req("f1", 5*time.Minute))
	wantRefusal(t, err, store.FleetLockBudget, "node f1 would put fleet budget zones zone=a at 2/1")
	// Zone b has f3 held by FleetLock group workers: a rollout may not
	// dispatch f4.
	_, err = s.ApplyCommit(ctx, moveCommit(t, load(t, s, "ra"), term, at(5*time.Minute), engine.PhaseQueued, "f4"))
	wantErr(t, err, store.ErrConflict, "a rollout filling a budget domain a FleetLock client holds")
	if h := holdsOf(t, s); len(h) != 2 || h["f1"] != "" {
		t.Fatalf("refusals wrote holds: %v", h)
	}
	ok(t, f.DeleteBudget(ctx, "zones", "alice", at(0)))
	// A freeze covering the node refuses; one covering other nodes does not.
	fr := store.FreezeRecord{Freeze: disruption.Freeze{Name: "eoq", Selector: `node.labels.zone == "a"`, Reason: "quarter end",
		Calendar: window.CalendarSpec{TimeZone: "UTC", Start: "2000-01-01", End: "2100-01-01"}}}
	get(f.PutFreezes(ctx, []store.FreezeRecord{fr}, 0, "alice", at(0)))(t)
	_, err = l.FleetLockAcquire(ctx, req("f1", 6*time.Minute))
	wantRefusal(t, err, store.FleetLockFrozen, "fleet freeze eoq is in force until 2100-01-01T00:00:00Z: quarter end")
	other.Node = "f4"
	get(l.FleetLockAcquire(ctx, other))(t)
	ok(t, f.DeleteFreeze(ctx, "eoq", "alice", at(0)))
	// Stop-the-line refuses; lifting it lets the reboot through.
	if _, _, err := s.StopLine(ctx, "bob", "incident 9", at(7*time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, err = l.FleetLockAcquire(ctx, req("f1", 7*time.Minute))
	wantRefusal(t, err, store.FleetLockLineStopped, "line stopped by bob: incident 9")
	get(s.LiftLine(ctx, "bob", "fixed", at(8*time.Minute)))(t)
	get(l.FleetLockAcquire(ctx, req("f1", 8*time.Minute)))(t)
	// A refusal is audited on demand.
	r := &store.FleetLockRefusal{Kind: store.FleetLockGroupFull, Reason: "full"}
	ok(t, l.FleetLockRefused(ctx, req("f2", 9*time.Minute), "pre-reboot", r))
	if e := lastAudit(t, s); e.Action != "fleetlock.refuse" || !strings.Contains(string(e.Detail), `"kind":"group_full"`) {
		t.Fatalf("last audit = %+v %s", e, e.Detail)
	}
	hs := get(l.FleetLockHolders(ctx))(t)
	if len(hs) != 3 || hs[0].Node != "f3" || hs[0].Name != store.FleetLockHoldName {
		t.Fatalf("holders = %+v", hs)
	}
	// An operator releases a slot whatever its group; a node holding
	// none is not found.
	h := get(l.FleetLockBreak(ctx, "f3", "root", "node f3 died in its reboot", at(10*time.Minute)))(t)
	if h.Holder != "workers" || !h.Since.Equal(at(2*time.Minute)) {
		t.Fatalf("released %+v", h)
	}
	if e := lastAudit(t, s); e.Action != "fleetlock.break" || e.Actor != "root" || !strings.Contains(string(e.Detail), `"reason":"node f3 died in its reboot"`) {
		t.Fatalf("last audit = %+v %s", e, e.Detail)
	}
	_, err = l.FleetLockBreak(ctx, "f3", "root", "again", at(10*time.Minute))
	wantErr(t, err, store.ErrNotFound, "releasing a released slot")
	if h := holdsOf(t, s); len(h) != 2 || h["f3"] != "" {
		t.Fatalf("holds = %v", h)
	}
	verifyOK(t, s)
}

// testConcurrentFleetLock: in each round every node of a group of two
// slots asks at once, through two stores (two servers): exactly two get
// a slot, however the races fall, and the rest are told the group is
// full.
func testConcurrentFleetLock(t *testing.T, s Backend) {
	ctx := context.Background()
	var nodes [][2]string
	for i := range 8 {
		nodes = append(nodes, [2]string{fmt.Sprintf("g%d", i), "a"})
	}
	fleetFixture(t, s, nodes)
	stores := []store.FleetLocks{locksOf(t, s), locksOf(t, reopen(t, s))}
	for round := range 6 {
		var wg sync.WaitGroup
		var granted atomic.Int32
		errs := make(chan error, len(nodes))
		for i, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := store.FleetLockRequest{Node: n[0], Group: "pairs", MaxHolders: 2, Now: at(time.Duration(round) * time.Minute)}
				_, err := stores[i%2].FleetLockAcquire(ctx, req)
				var r *store.FleetLockRefusal
				switch {
				case err == nil:
					granted.Add(1)
				case errors.As(err, &r) && r.Kind == store.FleetLockGroupFull:
				default:
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		hs := get(stores[0].FleetLockHolders(ctx))(t)
		if granted.Load() != 2 || len(hs) != 2 {
			t.Fatalf("round %d: %d granted, %d held; want 2 of a group of 2", round, granted.Load(), len(hs))
		}
		for _, h := range hs {
			get(stores[1].FleetLockRelease(ctx, h.Node, "pairs", "", at(time.Duration(round)*time.Minute)))(t)
		}
	}
	verifyOK(t, s)
}
