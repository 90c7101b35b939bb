package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store"
)

// drain acknowledges, pass by pass, every event NextWebhookEvents
// offers the subscription (as the deliverer does) and returns them in
// the order offered.
func drain(t *testing.T, s store.Store, name string, events []string, term int64) []store.OutboxEvent {
	t.Helper()
	ctx := context.Background()
	var out []store.OutboxEvent
	for range 100 {
		evs := get(s.NextWebhookEvents(ctx, name, events, 100))(t)
		if len(evs) == 0 {
			return out
		}
		for _, ev := range evs {
			ok(t, s.AckWebhook(ctx, name, ev.Stream, ev.ID(), term, at(time.Hour)))
		}
		out = append(out, evs...)
	}
	t.Fatal("the outbox never drained")
	return nil
}

// streamOf returns the types of the events of one stream, checking that
// they come in sequence order from 1 without gaps.
func streamOf(t *testing.T, evs []store.OutboxEvent, stream string) []string {
	t.Helper()
	var types []string
	for _, ev := range evs {
		if ev.Stream != stream {
			continue
		}
		if want := int64(len(types) + 1); ev.StreamSeq != want {
			t.Fatalf("stream %q: event %d (%s) has sequence %d, want %d", stream, ev.ID(), ev.Type, ev.StreamSeq, want)
		}
		types = append(types, ev.Type)
	}
	return types
}

// testWebhookOutbox: every transition that is a webhook event writes an
// outbox row in its own transaction (a refused command writes none),
// numbered per rollout without gaps; a subscription is offered each
// stream's oldest unacknowledged event, in order, from its start on;
// acknowledgements need the current term and never move back; the
// filter, the pending count and pruning keep their word.
func testWebhookOutbox(t *testing.T, s Backend) {
	ctx := context.Background()
	ok(t, s.OpenWebhook(ctx, "early", at(0))) // before anything: sees everything
	term := fixture(t, s)
	cmd := func(id, actor, action string, d time.Duration) {
		t.Helper()
		get(s.Command(ctx, id, 0, store.Command{Actor: actor, Action: action, Reason: "because"}, at(d)))(t)
	}
	cmd("r1", "bob", "pause", time.Minute)                                                             // rollout.paused
	_, err := s.Command(ctx, "r1", 0, store.Command{Actor: "bob", Action: "pause"}, at(2*time.Minute)) // refused: already paused
	if err == nil {
		t.Fatal("pausing a paused rollout was accepted")
	}
	cmd("r1", "bob", "resume", 3*time.Minute) // no event
	get2 := func(stop store.LineStop, _ bool, err error) error { return err }
	ok(t, get2(s.StopLine(ctx, "carol", "incident 9", at(4*time.Minute)))) // line.stopped
	get(s.LiftLine(ctx, "carol", "fixed", at(5*time.Minute)))(t)           // line.lifted
	get(s.CreateRollout(ctx, store.Rollout{ID: "r2", Name: "kernel", Author: "alice", Plan: []byte(plan),
		State: engine.RolloutPendingApproval, CreatedAt: at(6 * time.Minute)}, nil,
		[]store.Wave{{Name: "canary", WaveStatus: engine.WaveStatus{State: engine.WavePending}}}, "alice"))(t) // approval.requested
	ok(t, s.OpenWebhook(ctx, "late", at(7*time.Minute))) // from here on only
	cmd("r2", "bob", "approve", 8*time.Minute)           // approval.given
	ok(t, s.AddGateResults(ctx, "r1", []engine.GateResult{
		{Wave: "canary", Gate: "p99", Verdict: engine.Inconclusive, Reason: "no data", At: at(9 * time.Minute)},  // gate.inconclusive
		{Wave: "canary", Gate: "p99", Verdict: engine.Inconclusive, Reason: "no data", At: at(10 * time.Minute)}, // same verdict: none
	}))
	ro := get(s.GetRollout(ctx, "r1"))(t)
	get(s.ApplyCommit(ctx, store.Commit{Rollout: "r1", Version: ro.Version, Term: term, Now: at(11 * time.Minute),
		State: engine.RolloutHalted, Reason: "wave canary: 2 failed > budget 1",
		Audit: []store.AuditEntry{
			{Action: "budget.breach", Detail: []byte(`{"reason":"wave canary: 2 failed > budget 1","to":"halted"}`)}, // budget.breached
			{Action: "rollout.state", Detail: []byte(`{"from":"running","to":"halted"}`)},                            // rollout.halted
		}}))(t)
	cmd("r2", "bob", "abort", 12*time.Minute) // rollout.ended

	// A commit refused (stale version) writes no outbox row either.
	if _, err := s.ApplyCommit(ctx, store.Commit{Rollout: "r1", Version: ro.Version, Term: term, Now: at(13 * time.Minute),
		State: engine.RolloutFailed, Audit: []store.AuditEntry{{Action: "rollout.state", Detail: []byte(`{"from":"halted","to":"failed"}`)}}}); err == nil {
		t.Fatal("a commit at a stale version was accepted")
	}

	p := get(s.PendingWebhook(ctx, "early", nil))(t)
	if p.Events != 9 || !p.Oldest.Equal(at(time.Minute)) {
		t.Fatalf("pending for early = %+v; want 9 events, the oldest at %v", p, at(time.Minute))
	}
	// Only the leader's term acknowledges.
	first := get(s.NextWebhookEvents(ctx, "early", nil, 100))(t)
	wantErr(t, s.AckWebhook(ctx, "early", first[0].Stream, first[0].ID(), term+1, at(time.Hour)), store.ErrFenced, "an ack with a stale term")

	evs := drain(t, s, "early", nil, term)
	if got, want := streamOf(t, evs, "r1"), []string{api.WebhookRolloutPaused, api.WebhookGateInconclusive, api.WebhookBudgetBreached, api.WebhookRolloutHalted}; !slices.Equal(got, want) {
		t.Fatalf("r1's events = %v, want %v", got, want)
	}
	if got, want := streamOf(t, evs, "r2"), []string{api.WebhookApprovalRequested, api.WebhookApprovalGiven, api.WebhookRolloutEnded}; !slices.Equal(got, want) {
		t.Fatalf("r2's events = %v, want %v", got, want)
	}
	if got, want := streamOf(t, evs, ""), []string{api.WebhookLineStopped, api.WebhookLineLifted}; !slices.Equal(got, want) {
		t.Fatalf("fleet-wide events = %v, want %v", got, want)
	}
	for _, ev := range evs {
		if ev.Entry.Seq == 0 || ev.Entry.Action == "" || len(ev.Entry.Detail) == 0 {
			t.Fatalf("event %+v lacks its audit entry", ev)
		}
	}
	if p := get(s.PendingWebhook(ctx, "early", nil))(t); p.Events != 0 || !p.Oldest.IsZero() {
		t.Fatalf("pending after draining = %+v", p)
	}
	// An acknowledgement never moves a cursor back.
	ok(t, s.AckWebhook(ctx, "early", "r1", evs[0].ID(), term, at(time.Hour)))
	if n := len(get(s.NextWebhookEvents(ctx, "early", nil, 100))(t)); n != 0 {
		t.Fatalf("an old ack moved the cursor back: %d events offered again", n)
	}

	// The late subscription starts after approval.requested; its filter
	// selects two types.
	filter := []string{api.WebhookRolloutEnded, api.WebhookApprovalGiven}
	late := drain(t, s, "late", filter, term)
	if len(late) != 2 || late[0].Type != api.WebhookApprovalGiven || late[1].Type != api.WebhookRolloutEnded || late[1].StreamSeq != 3 {
		t.Fatalf("late subscription got %v", typesOf(late))
	}
	// Opening is audited once.
	opens := 0
	for _, e := range get(s.ListAudit(ctx, 0, 1000, ""))(t) {
		if e.Action == "webhook.open" {
			opens++
		}
	}
	before := auditCount(t, s)
	ok(t, s.OpenWebhook(ctx, "late", at(time.Hour)))
	if opens != 2 || auditCount(t, s) != before {
		t.Fatalf("webhook.open audited %d times, want 2 (early, late)", opens)
	}
	// Unopened: nothing.
	if evs := get(s.NextWebhookEvents(ctx, "never-opened", nil, 100))(t); len(evs) != 0 {
		t.Fatalf("an unopened subscription was offered %d events", len(evs))
	}

	// Pruning keeps each stream's newest row: the next event of r2 is
	// numbered on.
	n := get(s.PruneWebhookOutbox(ctx, at(time.Hour)))(t)
	if n != 6 {
		t.Fatalf("pruned %d rows, want 6 (9 less the newest of 3 streams)", n)
	}
	cmd2 := func() { ok(t, get2(s.StopLine(ctx, "carol", "incident 10", at(20*time.Minute)))) }
	cmd2()
	evs = drain(t, s, "early", nil, term)
	if len(evs) != 1 || evs[0].Type != api.WebhookLineStopped || evs[0].StreamSeq != 3 {
		t.Fatalf("after pruning: %v", typesOf(evs))
	}
}

func typesOf(evs []store.OutboxEvent) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%s:%s#%d", ev.Stream, ev.Type, ev.StreamSeq))
	}
	return out
}
