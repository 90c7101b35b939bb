package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
)

func testNodes(t *testing.T, s Backend) {
	ctx := context.Background()
	if _, err := s.GetNode(ctx, "n1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetNode of a missing node: %v, want ErrNotFound", err)
	}
	first := addNode(t, s, "n1", at(time.Minute))
	if first.Version != 1 || first.Labels["zone"] != "a" || !first.RegisteredAt.Equal(at(0)) || !first.LeaseUntil.Equal(at(time.Minute)) {
		t.Fatalf("registered node = %+v", first)
	}
	if first.Facts.Packages["openssl"] != "3.0.11" || first.Facts.OS.Family != "debian" {
		t.Fatalf("facts not stored: %+v", first.Facts)
	}
	before := auditCount(t, s)

	// Same facts, new labels, new lease: labels ignored, no version bump, no audit.
	again := get(s.UpsertNode(ctx, store.NodeRecord{ID: "n1", Facts: facts("debian", "6.1.0"),
		Labels: map[string]string{"zone": "b"}, AgentVersion: "1.0.1", Protocol: 2, LastSeen: at(time.Minute), LeaseUntil: at(2 * time.Minute)}))(t)
	if again.Version != 1 || again.Labels["zone"] != "a" || again.AgentVersion != "1.0.1" || again.Protocol != 2 ||
		!again.LeaseUntil.Equal(at(2*time.Minute)) || !again.RegisteredAt.Equal(at(0)) {
		t.Fatalf("refreshed node = %+v", again)
	}
	if n := auditCount(t, s); n != before {
		t.Fatalf("refresh with the same facts audited %d entries", n-before)
	}

	// Changed facts: version bump, audited.
	changed := get(s.UpsertNode(ctx, store.NodeRecord{ID: "n1", Facts: facts("debian", "6.1.0-18"),
		LastSeen: at(2 * time.Minute), LeaseUntil: at(3 * time.Minute)}))(t)
	if changed.Version != 2 || changed.Facts.Kernel != "6.1.0-18" {
		t.Fatalf("node after facts change = %+v", changed)
	}
	if n := auditCount(t, s); n != before+1 {
		t.Fatalf("facts change audited %d entries, want 1", n-before)
	}

	// Labels: If-Match.
	_, err := s.SetNodeLabels(ctx, "n1", map[string]string{"zone": "c"}, 1, "bob")
	wantErr(t, err, store.ErrConflict, "SetNodeLabels with a stale version")
	got := get(s.SetNodeLabels(ctx, "n1", map[string]string{"zone": "c", "tier": "web"}, 2, "bob"))(t)
	if got.Version != 3 || !maps.Equal(got.Labels, map[string]string{"zone": "c", "tier": "web"}) {
		t.Fatalf("labels set = %+v", got)
	}
	same := get(s.SetNodeLabels(ctx, "n1", map[string]string{"tier": "web", "zone": "c"}, 0, "bob"))(t)
	if same.Version != 3 {
		t.Fatalf("setting equal labels bumped the version to %d", same.Version)
	}
	_, err = s.SetNodeLabels(ctx, "nope", nil, 0, "bob")
	wantErr(t, err, store.ErrNotFound, "SetNodeLabels of a missing node")
	entries := get(s.ListAudit(ctx, 0, 1000, ""))(t)
	last := entries[len(entries)-1]
	if last.Action != "node.labels" || last.Actor != "bob" || last.Object != "node/n1" {
		t.Fatalf("last audit entry = %+v, want node.labels by bob", last)
	}

	// Heartbeats.
	ok(t, s.TouchNode(ctx, "n1", at(time.Hour), at(2*time.Hour)))
	got = get(s.GetNode(ctx, "n1"))(t)
	if !got.LastSeen.Equal(at(time.Hour)) || !got.LeaseUntil.Equal(at(2*time.Hour)) || got.Version != 3 {
		t.Fatalf("touched node = %+v", got)
	}
	wantErr(t, s.TouchNode(ctx, "nope", at(0), at(0)), store.ErrNotFound, "TouchNode of a missing node")
	addNode(t, s, "n2", at(time.Hour))
	missing := get(s.TouchNodes(ctx, []store.Heartbeat{{NodeID: "n1", Seen: at(3 * time.Hour), LeaseUntil: at(4 * time.Hour)},
		{NodeID: "gone", Seen: at(3 * time.Hour), LeaseUntil: at(4 * time.Hour)},
		{NodeID: "n2", Seen: at(5 * time.Hour), LeaseUntil: at(6 * time.Hour)}}))(t)
	if len(missing) != 1 || missing[0] != "gone" {
		t.Fatalf("TouchNodes missing = %v, want [gone]", missing)
	}
	if n1, n2 := get(s.GetNode(ctx, "n1"))(t), get(s.GetNode(ctx, "n2"))(t); !n1.LeaseUntil.Equal(at(4*time.Hour)) ||
		!n2.LastSeen.Equal(at(5*time.Hour)) || !n2.LeaseUntil.Equal(at(6*time.Hour)) || n1.Version != 3 {
		t.Fatalf("after TouchNodes: n1 %+v, n2 %+v", n1, n2)
	}

	// Delete.
	ok(t, s.DeleteNode(ctx, "n1", "carol"))
	_, err = s.GetNode(ctx, "n1")
	wantErr(t, err, store.ErrNotFound, "GetNode after delete")
	wantErr(t, s.DeleteNode(ctx, "n1", "carol"), store.ErrNotFound, "DeleteNode twice")
	verifyOK(t, s)
}

func testListNodesPaging(t *testing.T, s Backend) {
	ctx := context.Background()
	for i := 0; i < 25; i++ {
		addNode(t, s, fmt.Sprintf("node-%02d", i), at(time.Hour))
	}
	var ids []string
	after := ""
	for pages := 0; ; pages++ {
		page := get(s.ListNodes(ctx, store.NodeFilter{After: after, Limit: 10}))(t)
		if len(page) == 0 {
			if pages != 3 {
				t.Fatalf("got %d pages, want 3", pages)
			}
			break
		}
		for _, n := range page {
			ids = append(ids, n.ID)
		}
		after = page[len(page)-1].ID
	}
	if len(ids) != 25 {
		t.Fatalf("paged %d nodes, want 25", len(ids))
	}
	for i, id := range ids {
		if want := fmt.Sprintf("node-%02d", i); id != want {
			t.Fatalf("node %d = %s, want %s (ID order)", i, id, want)
		}
	}
	all := get(s.ListNodes(ctx, store.NodeFilter{}))(t)
	if len(all) != 25 {
		t.Fatalf("default limit listed %d nodes", len(all))
	}
}

func testRollouts(t *testing.T, s Backend) {
	ctx := context.Background()
	_, err := s.GetRollout(ctx, "r1")
	wantErr(t, err, store.ErrNotFound, "GetRollout of a missing rollout")
	_, err = s.LoadRollout(ctx, "r1")
	wantErr(t, err, store.ErrNotFound, "LoadRollout of a missing rollout")
	fixture(t, s)

	ro := get(s.GetRollout(ctx, "r1"))(t)
	if ro.Version != 1 || ro.Author != "alice" || string(ro.Plan) != plan || len(ro.PlanSHA256) != 64 ||
		ro.State != engine.RolloutRunning || ro.Seed != 1<<63+5 || !ro.CreatedAt.Equal(at(0)) {
		t.Fatalf("rollout = %+v", ro)
	}
	_, err = s.CreateRollout(ctx, store.Rollout{ID: "r1", Author: "bob", Plan: []byte("x")}, nil, nil, "bob")
	wantErr(t, err, store.ErrConflict, "CreateRollout with an existing ID")

	data := load(t, s, "r1")
	if len(data.Nodes) != 4 || len(data.Waves) != 2 || data.Waves[0].Name != "canary" || data.Waves[1].Name != "rest" {
		t.Fatalf("loaded %d nodes, waves %+v", len(data.Nodes), data.Waves)
	}
	for i, n := range data.Nodes {
		if n.Index != i || n.NodeID != fmt.Sprintf("n%d", i+1) || n.State.Phase != engine.PhasePending {
			t.Fatalf("node %d = %+v", i, n)
		}
	}
	if data.Nodes[0].State.Wave != "canary" || !data.Nodes[0].State.Since.Equal(at(0)) {
		t.Fatalf("node state not kept: %+v", data.Nodes[0].State)
	}

	// Newest first; terminal ones are not active.
	for i, st := range []engine.RolloutState{engine.RolloutSucceeded, engine.RolloutPendingApproval} {
		get(s.CreateRollout(ctx, store.Rollout{ID: fmt.Sprintf("r%d", i+2), Author: "bob", Plan: []byte(plan), State: st,
			CreatedAt: at(time.Duration(i+1) * time.Minute)}, nil, nil, "bob"))(t)
	}
	list := get(s.ListRollouts(ctx))(t)
	if len(list) != 3 || list[0].ID != "r3" || list[1].ID != "r2" || list[2].ID != "r1" {
		t.Fatalf("ListRollouts order: %v", rolloutIDs(list))
	}
	active := get(s.ActiveRollouts(ctx))(t)
	if len(active) != 2 || active[0] != "r1" || active[1] != "r3" {
		t.Fatalf("ActiveRollouts = %v, want [r1 r3]", active)
	}
	_, err = s.CreateRollout(ctx, store.Rollout{ID: "r9", Author: "bob", Plan: []byte(plan), PlanSHA256: "00"}, nil, nil, "bob")
	if err == nil {
		t.Fatal("CreateRollout accepted a PlanSHA256 that does not match the plan")
	}
	verifyOK(t, s)
}

func rolloutIDs(rs []store.Rollout) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

// testConcurrentRegistration: agents of one node registering through two
// servers at once all succeed, and the node is registered once.
func testConcurrentRegistration(t *testing.T, s Backend) {
	ctx := context.Background()
	stores := []store.Store{s, reopen(t, s)}
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := stores[i%2].UpsertNode(ctx, store.NodeRecord{ID: "twin", Facts: facts("suse", "6.4"),
				Labels: map[string]string{"zone": "a"}, LastSeen: at(0), LeaseUntil: at(time.Hour)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		ok(t, err)
	}
	if n := get(s.GetNode(ctx, "twin"))(t); n.Version != 1 {
		t.Fatalf("node registered concurrently has version %d, want 1", n.Version)
	}
	var registrations int
	for _, e := range get(s.ListAudit(ctx, 0, 100, ""))(t) {
		if e.Action == "node.register" {
			registrations++
		}
	}
	if registrations != 1 {
		t.Fatalf("%d node.register entries, want 1", registrations)
	}
	verifyOK(t, s)
}

// testFactsAuditBounded: the audit of a facts change records the digest
// of the new facts and a bounded diff, never the whole object, so that a
// node sending large facts cannot grow the log by their size.
func testFactsAuditBounded(t *testing.T, s Backend) {
	ctx := context.Background()
	big := func(gen int) fleet.Facts {
		f := facts("debian", fmt.Sprintf("6.1.0-%d", gen))
		f.Packages = map[string]string{}
		for i := range 4000 {
			f.Packages[fmt.Sprintf("pkg%05d", i)] = fmt.Sprintf("%d.%s", gen, strings.Repeat("v", 40))
		}
		return f
	}
	get(s.UpsertNode(ctx, store.NodeRecord{ID: "n1", Facts: big(0), LastSeen: at(0), LeaseUntil: at(time.Hour)}))(t)
	get(s.UpsertNode(ctx, store.NodeRecord{ID: "n1", Facts: big(1), LastSeen: at(time.Minute), LeaseUntil: at(time.Hour)}))(t)
	entries := get(s.ListAudit(ctx, 0, 100, ""))(t)
	if len(entries) != 2 || entries[0].Action != "node.register" || entries[1].Action != "node.facts" {
		t.Fatalf("audit = %v, want node.register and node.facts", actions(entries))
	}
	size := len(get(json.Marshal(big(1)))(t))
	for _, e := range entries {
		if len(e.Detail) > 16<<10 {
			t.Fatalf("%s detail is %d bytes for %d bytes of facts, want a bounded diff", e.Action, len(e.Detail), size)
		}
		var d struct {
			SHA256   string             `json:"sha256"`
			Previous string             `json:"previous_sha256"`
			Bytes    int                `json:"bytes"`
			Changes  []fleet.FactChange `json:"changes"`
			More     int                `json:"more"`
			Facts    any                `json:"facts"`
			Version  int64              `json:"version"`
		}
		ok(t, json.Unmarshal(e.Detail, &d))
		if d.Facts != nil || len(d.SHA256) != 64 || d.Bytes == 0 || len(d.Changes) != 50 || d.More == 0 {
			t.Fatalf("%s detail = %.300s", e.Action, e.Detail)
		}
		if e.Action == "node.facts" {
			want, n, err := fleet.FactsDigest(big(1))
			ok(t, err)
			prev, _, _ := fleet.FactsDigest(big(0))
			if d.SHA256 != want || d.Bytes != n || d.Previous != prev || d.Version != 2 || d.More != 4001-50 ||
				d.Changes[0] != (fleet.FactChange{Op: "changed", Path: "/kernel", Old: "6.1.0-0", New: "6.1.0-1"}) {
				t.Fatalf("node.facts detail = %.400s", e.Detail)
			}
		}
	}
	verifyOK(t, s)
}

func actions(es []store.AuditEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Action)
	}
	return out
}
