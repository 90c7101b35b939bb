package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/store"
)

// testPreflight: a node pre-flight's asks are handed out until answered
// or past their deadline; an answer is taken once; a repeated ask keeps
// the first; the server's own answers need no agent.
func testPreflight(t *testing.T, s Backend) {
	ctx := t.Context()
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	deadline := now.Add(5 * time.Minute)
	asks := []store.PreflightAsk{
		{Node: "n1", Payload: []byte(`{"rollout":"r1"}`)},
		{Node: "n2", Payload: []byte(`{"rollout":"r1"}`), Answered: true, Reason: "agent speaks protocol 2; node pre-flight needs protocol 4"},
	}
	if err := s.AskPreflight(ctx, "r1", asks, now, deadline); err != nil {
		t.Fatal(err)
	}
	if err := s.AskPreflight(ctx, "r1", asks[:1], now.Add(time.Minute), deadline.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if open, err := s.OpenPreflights(ctx, "n1", now); err != nil || len(open) != 1 || string(open[0]) != `{"rollout":"r1"}` {
		t.Fatalf("open pre-flights of n1: %q %v", open, err)
	}
	if open, err := s.OpenPreflights(ctx, "n2", now); err != nil || len(open) != 0 {
		t.Fatalf("n2 was answered by the server, yet open: %q %v", open, err)
	}
	if open, err := s.OpenPreflights(ctx, "n1", deadline); err != nil || len(open) != 0 {
		t.Fatalf("past its deadline the ask is still handed out: %q %v", open, err)
	}
	at := now.Add(40 * time.Second)
	if err := s.AnswerPreflight(ctx, "r1", "n1", false, "apt: hello=2.0: version not available", []byte(`{"ok":false}`), at); err != nil {
		t.Fatal(err)
	}
	if err := s.AnswerPreflight(ctx, "r1", "n1", true, "", nil, at); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a second answer: %v, want ErrConflict", err)
	}
	if err := s.AnswerPreflight(ctx, "r1", "n9", true, "", nil, at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an answer nobody asked for: %v, want ErrNotFound", err)
	}
	if open, err := s.OpenPreflights(ctx, "n1", now); err != nil || len(open) != 0 {
		t.Fatalf("answered, yet open: %q %v", open, err)
	}
	got, err := s.Preflights(ctx, "r1")
	if err != nil || len(got) != 2 {
		t.Fatalf("pre-flights: %+v %v", got, err)
	}
	n1, n2 := got[0], got[1]
	if n1.Node != "n1" || n1.OK || n1.Reason != "apt: hello=2.0: version not available" || !n1.AnsweredAt.Equal(at) ||
		!n1.AskedAt.Equal(now) || !n1.Deadline.Equal(deadline) || string(n1.Report) != `{"ok":false}` {
		t.Fatalf("n1: %+v", n1)
	}
	if n2.Node != "n2" || n2.OK || !n2.AnsweredAt.Equal(now) || n2.Report != nil {
		t.Fatalf("n2: %+v", n2)
	}
	if _, err := s.Preflights(ctx, "r2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("pre-flights of a rollout never asked: %v", err)
	}
	// How long pre-flights took: the agents' answers only (n1's 40 s), not
	// the server's own (n2, answered at the ask) nor unanswered ones.
	if ds, err := s.PreflightTimes(ctx, 10); err != nil || len(ds) != 1 || ds[0] != 40*time.Second {
		t.Fatalf("pre-flight times: %v %v, want [40s]", ds, err)
	}
}
