package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/store"
)

// testEvidence: a bundle is stored compressed and returned as sent, with
// its SHA-256 in the audit log; listing filters by rollout, newest first;
// retention keeps at most PerNode per node and none older than MaxAge; an
// on-demand request is handed out until a bundle answers it, once.
func testEvidence(t *testing.T, s Backend) {
	ctx := t.Context()
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	body := []byte(`{"node":"n1","sections":[{"name":"kernel","data":{"release":"6.1.0"}}],"pad":"` + strings.Repeat("x", 10000) + `"}`)
	keep := store.EvidenceRetention{MaxAge: 24 * time.Hour, PerNode: 3}
	r, err := s.AddEvidence(ctx, store.EvidenceRecord{ID: "e1", Node: "n1", Rollout: "r1", Step: "s1", Reason: "failure", CapturedAt: now, StoredAt: now, Body: body}, keep)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.SHA256) != 64 || r.Size != int64(len(body)) {
		t.Fatalf("stored %+v", r)
	}
	got, err := s.GetEvidence(ctx, "e1")
	if err != nil || string(got.Body) != string(body) || got.SHA256 != r.SHA256 || got.Step != "s1" || !got.CapturedAt.Equal(now) {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := s.GetEvidence(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown bundle: %v", err)
	}
	entries, err := s.ListAudit(ctx, 0, 1000, "r1")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		found = found || (e.Action == "node.evidence" && strings.Contains(string(e.Detail), r.SHA256))
	}
	if !found {
		t.Fatalf("no node.evidence audit entry with the bundle's sha256 in %+v", entries)
	}
	// More bundles: the oldest beyond 3 per node go.
	for i := 2; i <= 4; i++ {
		ro := "r2"
		if _, err := s.AddEvidence(ctx, store.EvidenceRecord{ID: fmt.Sprintf("e%d", i), Node: "n1", Rollout: ro, Reason: "failure",
			CapturedAt: now.Add(time.Duration(i) * time.Minute), StoredAt: now.Add(time.Duration(i) * time.Minute), Body: []byte(`{}`)}, keep); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListEvidence(ctx, "n1", "")
	if err != nil || len(list) != 3 || list[0].ID != "e4" || list[2].ID != "e2" || list[0].Body != nil {
		t.Fatalf("list after pruning to 3: %+v %v", list, err)
	}
	if list, err := s.ListEvidence(ctx, "n1", "r1"); err != nil || len(list) != 0 {
		t.Fatalf("r1's bundle was pruned, yet: %+v %v", list, err)
	}
	// On-demand: asked, handed out, answered once.
	ask := store.EvidenceAsk{ID: "q1", Node: "n2", Actor: "alice", AskedAt: now, Deadline: now.Add(5 * time.Minute), Payload: []byte(`{"id":"q1"}`)}
	if err := s.AskEvidence(ctx, ask); err != nil {
		t.Fatal(err)
	}
	if open, err := s.OpenEvidenceRequests(ctx, "n2", now); err != nil || len(open) != 1 || string(open[0]) != `{"id":"q1"}` {
		t.Fatalf("open: %q %v", open, err)
	}
	if _, err := s.AddEvidence(ctx, store.EvidenceRecord{ID: "e5", Node: "n1", Request: "q1", Reason: "on-demand", CapturedAt: now, StoredAt: now, Body: []byte(`{}`)}, keep); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another node's request: %v", err)
	}
	if _, err := s.AddEvidence(ctx, store.EvidenceRecord{ID: "e6", Node: "n2", Request: "q1", Reason: "on-demand", CapturedAt: now, StoredAt: now.Add(time.Minute), Body: []byte(`{}`)}, keep); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddEvidence(ctx, store.EvidenceRecord{ID: "e7", Node: "n2", Request: "q1", Reason: "on-demand", CapturedAt: now, StoredAt: now.Add(time.Minute), Body: []byte(`{}`)}, keep); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("answered twice: %v", err)
	}
	if q, err := s.GetEvidenceRequest(ctx, "q1"); err != nil || q.Bundle != "e6" {
		t.Fatalf("request: %+v %v", q, err)
	}
	if open, err := s.OpenEvidenceRequests(ctx, "n2", now); err != nil || len(open) != 0 {
		t.Fatalf("answered, yet open: %q %v", open, err)
	}
	// Age: a bundle stored two days later prunes everything older than a day.
	later := now.Add(48 * time.Hour)
	if _, err := s.AddEvidence(ctx, store.EvidenceRecord{ID: "e8", Node: "n3", Reason: "on-demand", CapturedAt: later, StoredAt: later, Body: []byte(`{}`)}, keep); err != nil {
		t.Fatal(err)
	}
	if list, err := s.ListEvidence(ctx, "n1", ""); err != nil || len(list) != 0 {
		t.Fatalf("past the max age, yet kept: %+v %v", list, err)
	}
}
