package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/baseline"
	"github.com/drover-dev/drover/internal/store"
)

func runBaselines(t *testing.T, h func(f func(t *testing.T, s Backend)) func(t *testing.T)) {
	t.Run("Baselines", h(testBaselines))
	t.Run("BaselineDrift", h(testBaselineDrift))
}

func baselinesOf(t *testing.T, s store.Store) store.Baselines {
	t.Helper()
	b, ok := store.AsBaselines(s)
	if !ok {
		t.Fatalf("store %T keeps no baselines", s)
	}
	return b
}

func auditsOf(t *testing.T, s Backend, action string) []store.AuditEntry {
	t.Helper()
	var out []store.AuditEntry
	for _, e := range get(s.ListAudit(context.Background(), 0, 100000, ""))(t) {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// testBaselines: versions increment on change only, every version is
// kept, exemptions need the baseline and replace the node's earlier one,
// every change is audited.
func testBaselines(t *testing.T, s Backend) {
	ctx := context.Background()
	bs := baselinesOf(t, s)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b := baseline.Baseline{Name: "prod", Selector: `node.labels.env == "prod"`,
		Rules: baseline.Rules{Advisories: &baseline.AdvisoryRule{MinSeverity: "high", Within: 14 * 24 * time.Hour}}}
	v1, changed := func() (baseline.Baseline, bool) {
		b, c, err := bs.PutBaseline(ctx, b, "alice", now)
		must(t, err)
		return b, c
	}()
	if !changed || v1.Version != 1 || v1.Actor != "alice" {
		t.Fatalf("first put: %+v changed %v", v1, changed)
	}
	again, changed, err := bs.PutBaseline(ctx, b, "bob", now)
	must(t, err)
	if changed || again.Version != 1 || again.Actor != "alice" {
		t.Fatalf("same rules again: %+v changed %v", again, changed)
	}
	b.Rules.Pins = []baseline.Pin{{Package: "openssl", Version: "3.0.15-1"}}
	v2, changed, err := bs.PutBaseline(ctx, b, "bob", now.Add(time.Hour))
	must(t, err)
	if !changed || v2.Version != 2 {
		t.Fatalf("changed rules: %+v", v2)
	}
	bad := b
	bad.Rules.Advisories = &baseline.AdvisoryRule{MinSeverity: "severe"}
	if _, _, err := bs.PutBaseline(ctx, bad, "eve", now); err == nil {
		t.Fatal("invalid baseline stored")
	}
	if old := get(bs.GetBaseline(ctx, "prod", 1))(t); len(old.Rules.Pins) != 0 || old.Version != 1 {
		t.Errorf("version 1: %+v", old)
	}
	if cur := get(bs.GetBaseline(ctx, "prod", 0))(t); cur.Version != 2 || cur.Rules.Pins[0].Package != "openssl" {
		t.Errorf("current: %+v", cur)
	}
	if _, err := bs.GetBaseline(ctx, "nope", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing baseline: %v", err)
	}
	_, _, err = bs.PutBaseline(ctx, baseline.Baseline{Name: "dev"}, "alice", now)
	must(t, err)
	if l := get(bs.ListBaselines(ctx))(t); len(l) != 2 || l[0].Name != "dev" || l[1].Version != 2 {
		t.Errorf("list: %+v", l)
	}
	if n := len(auditsOf(t, s, "baseline.apply")); n != 3 {
		t.Errorf("%d baseline.apply entries, want 3", n)
	}
	e := baseline.Exemption{Baseline: "prod", Node: "db-1", By: "carol", Reason: "vendor freeze", Expires: now.Add(48 * time.Hour), At: now}
	must(t, bs.PutExemption(ctx, e))
	e.Reason, e.Expires = "longer freeze", now.Add(72*time.Hour)
	must(t, bs.PutExemption(ctx, e))
	if err := bs.PutExemption(ctx, baseline.Exemption{Baseline: "nope", Node: "x", By: "c", Reason: "r", Expires: now.Add(time.Hour), At: now}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("exemption from a missing baseline: %v", err)
	}
	if err := bs.PutExemption(ctx, baseline.Exemption{Baseline: "prod", Node: "x", By: "c", Reason: "r", Expires: now.Add(-time.Hour), At: now}); err == nil {
		t.Error("expired exemption stored")
	}
	ex := get(bs.ListExemptions(ctx, "prod"))(t)
	if len(ex) != 1 || ex[0].Reason != "longer freeze" || !ex[0].Expires.Equal(now.Add(72*time.Hour)) || ex[0].By != "carol" {
		t.Errorf("exemptions: %+v", ex)
	}
	if n := len(auditsOf(t, s, "baseline.exempt")); n != 2 {
		t.Errorf("%d baseline.exempt entries, want 2", n)
	}
}

// testBaselineDrift: drift events are stored, listed by node and
// audited as node.drift (a webhook event).
func testBaselineDrift(t *testing.T, s Backend) {
	ctx := context.Background()
	bs := baselinesOf(t, s)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ds := []baseline.Drift{
		{Node: "web-1", Package: "curl", From: "7.88", To: "8.0", Kind: baseline.DriftChanged, Reason: "curl changed"},
		{Node: "web-1", Package: "curl", From: "7.88", To: "8.0", Kind: baseline.DriftPinViolated, Baseline: "prod", Reason: "pinned"},
	}
	get(bs.RecordDrift(ctx, ds, now))(t)
	get(bs.RecordDrift(ctx, []baseline.Drift{{Node: "web-2", Package: "vim", From: "9.0", Kind: baseline.DriftChanged, Reason: "removed"}}, now.Add(time.Minute)))(t)
	all := get(bs.ListDrift(ctx, store.DriftQuery{}))(t)
	if len(all) != 3 || all[0].ID >= all[1].ID || all[1].Baseline != "prod" || !all[2].DetectedAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("drift: %+v", all)
	}
	if w1 := get(bs.ListDrift(ctx, store.DriftQuery{Node: "web-1", Newest: true}))(t); len(w1) != 2 || w1[0].Kind != baseline.DriftPinViolated {
		t.Errorf("web-1 drift: %+v", w1)
	}
	if n := get(bs.DriftedNodes(ctx, now))(t); n != 2 {
		t.Errorf("drifted nodes %d, want 2", n)
	}
	if n := get(bs.DriftedNodes(ctx, now.Add(30*time.Second)))(t); n != 1 {
		t.Errorf("drifted nodes since +30s %d, want 1", n)
	}
	au := auditsOf(t, s, "node.drift")
	if len(au) != 3 || store.WebhookEventOf(au[0]) != "node.drift" || au[0].Object != "node/web-1" {
		t.Errorf("node.drift audit: %+v", au)
	}
	if steps := get(bs.RecentSteps(ctx, "web-1", now))(t); len(steps) != 0 {
		t.Errorf("steps of a node without any: %d", len(steps))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
