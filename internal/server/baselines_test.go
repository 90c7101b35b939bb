package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/baseline"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/gate/gatetest"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/store/storetest"
	"github.com/drover-dev/drover/internal/webhook"
)

const driftBaseline = `name: prod
selector: node.labels.env == "prod"
rules:
  pins:
    - {package: curl, version: "7.88.1-10+deb12u5"}
`

// runDriftServer is runTestServer on the store at dsn ("" SQLite in the
// test's directory), delivering webhooks to r.
func runDriftServer(t *testing.T, ctx context.Context, dsn string, r *receiver) (*Server, string) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Tick, cfg.PollWait, cfg.Database = 100*time.Millisecond, time.Second, dsn
	cfg.Webhooks = []webhook.Subscription{{Name: "ops", URL: r.url(), Secret: hookSecret}}
	cfg.WebhookRetry = webhook.Retry{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, Poll: 20 * time.Millisecond}
	st, err := store.Open(context.Background(), cfg.DSN(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := New(cfg, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ready := make(chan string, 1)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(runCtx, func(a string) { ready <- a }) }()
	t.Cleanup(func() { stop(); <-done })
	return srv, "http://" + <-ready
}

func TestDriftSQLite(t *testing.T) { testDrift(t, "") }

func TestDriftPostgres(t *testing.T) { testDrift(t, storetest.NewPostgres(t).CreateDB(t)) }

// testDrift runs a real server and a real agent on a simulated node. A
// rollout upgrades app: no drift. Then curl is changed by hand (out of
// band, breaking the baseline's pin) and a second rollout upgrades app
// again: the facts reported after it show both changes; app is
// explained by the step, curl is drift (changed-out-of-band and
// pin-violated), stored, listed, audited as node.drift, delivered as a
// webhook, counted; the node is non-compliant until exempted.
func testDrift(t *testing.T, dsn string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := newReceiver(t)
	srv, base := runDriftServer(t, ctx, dsn, r)
	st := driver.NewSimState("d1", "debian", "6.1.0-26-amd64", map[string]string{"app": "1.9.0", "curl": "7.88.1-10+deb12u5"})
	reg := &driver.Registry{}
	reg.Register(plan.ActionPackage, driver.NewSim(st))
	startSimAgent(t, ctx, base, srv.cfg.AgentToken, "d1", st, reg, appRunner{&atomic.Bool{}}, fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}})
	c := &api.Client{Base: base, Token: alice}
	waitNodes(t, ctx, c, 1)
	applied, err := c.ApplyBaseline(ctx, "prod.yaml", driftBaseline)
	if err != nil || applied.Baseline.Version != 1 || !applied.Changed {
		t.Fatalf("apply: %+v %v", applied, err)
	}
	if _, err := (&api.Client{Base: base, Token: vera}).ApplyBaseline(ctx, "prod.yaml", driftBaseline); err == nil {
		t.Fatal("a viewer applied a baseline")
	}
	if _, err := c.ApplyBaseline(ctx, "bad.yaml", "name: prod\nrules:\n  pins: [{package: curl}]\n"); err == nil || !strings.Contains(err.Error(), "bad.yaml:3:10") {
		t.Fatalf("bad baseline: %v", err)
	}
	rollout := func(version string) {
		t.Helper()
		ro, err := c.CreateRollout(ctx, "app.yaml", strings.Replace(rollbackVerifyPlan, `"2.0.0"`, `"`+version+`"`, 1))
		if err != nil {
			t.Fatal(err)
		}
		if ro = waitEnded(t, ctx, c, ro.ID, 60*time.Second); ro.State != engine.RolloutSucceeded {
			t.Fatalf("rollout %s (%s)", ro.State, ro.Reason)
		}
		gatetest.Eventually(t, 20*time.Second, "facts show app "+version, func() (bool, string) {
			n, err := c.GetNode(ctx, "d1")
			return err == nil && n.Facts.Packages["app"] == version, fmt.Sprint(n.Facts.Packages, err)
		})
	}
	rollout("2.0.0")
	if d, err := c.ListDrift(ctx, "", 0); err != nil || len(d.Events) != 0 {
		t.Fatalf("drift after a drover rollout: %+v %v", d, err)
	}
	comp, err := c.BaselineCompliance(ctx, "prod")
	if err != nil || comp.Counts["compliant"] != 1 {
		t.Fatalf("compliance before: %+v %v", comp, err)
	}

	st.SetPackage("curl", "8.5.0-1") // by hand, between polls
	rollout("2.0.1")
	var d api.DriftList
	gatetest.Eventually(t, 10*time.Second, "drift recorded", func() (bool, string) {
		d, err = c.ListDrift(ctx, "d1", 0)
		return err == nil && len(d.Events) == 2, fmt.Sprintf("%+v %v", d, err)
	})
	if e := d.Events[0]; e.Kind != baseline.DriftChanged || e.Package != "curl" || e.From != "7.88.1-10+deb12u5" || e.To != "8.5.0-1" {
		t.Errorf("first event %+v", e)
	}
	if e := d.Events[1]; e.Kind != baseline.DriftPinViolated || e.Baseline != "prod" {
		t.Errorf("second event %+v", e)
	}
	var drifts []string
	gatetest.Eventually(t, 10*time.Second, "node.drift webhooks", func() (bool, string) {
		evs, _, _ := r.events()
		drifts = drifts[:0]
		for _, ev := range evs {
			if ev.Type == api.WebhookNodeDrift {
				drifts = append(drifts, ev.Summary)
			}
		}
		return len(drifts) == 2, fmt.Sprint(drifts)
	})
	if !strings.Contains(drifts[0], "node d1 drifted") || !strings.Contains(drifts[1], "pinned at 7.88.1-10+deb12u5") {
		t.Errorf("node.drift webhooks: %q", drifts)
	}
	mfs, err := srv.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "drover_drift_events_total":
				got[mf.GetName()] += m.GetCounter().GetValue()
			case "drover_nodes_drifted":
				got[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	if got["drover_drift_events_total"] != 2 || got["drover_nodes_drifted"] != 1 {
		t.Errorf("metrics %v", got)
	}

	comp, err = c.BaselineCompliance(ctx, "prod")
	if err != nil || comp.Counts["non-compliant"] != 1 || len(comp.Needs) != 1 || comp.Needs[0].Packages["curl"] != "7.88.1-10+deb12u5" {
		t.Fatalf("compliance after: %+v %v", comp, err)
	}
	if _, err := (&api.Client{Base: base, Token: vera}).ExemptNode(ctx, "prod", api.BaselineExempt{Node: "d1", Reason: "r", Until: time.Now().Add(time.Hour)}); err == nil {
		t.Fatal("a viewer exempted a node")
	}
	ex, err := c.ExemptNode(ctx, "prod", api.BaselineExempt{Node: "d1", Reason: "testing curl 8", Until: time.Now().Add(24 * time.Hour)})
	if err != nil || ex.By != "alice" {
		t.Fatalf("exempt: %+v %v", ex, err)
	}
	comp, err = c.BaselineCompliance(ctx, "prod")
	if err != nil || comp.Counts["exempt"] != 1 || comp.Nodes[0].Exemption.Reason != "testing curl 8" {
		t.Fatalf("compliance exempt: %+v %v", comp, err)
	}
}

func TestDriftHoldRemovedSQLite(t *testing.T) { testDriftHoldRemoved(t, "") }

func TestDriftHoldRemovedPostgres(t *testing.T) {
	testDriftHoldRemoved(t, storetest.NewPostgres(t).CreateDB(t))
}

// testDriftHoldRemoved runs a real server and a real agent on a
// simulated Debian node whose nginx is held by hand and whose curl is
// below the baseline's pin. Remediation installs the pinned curl and
// holds it (the agent's facts then list both holds): no drift. Both
// holds are then removed by hand, and a rollout of app makes the agent
// report: hold-removed for nginx (no step explains it) and for curl
// (its baseline's pin, although the remediation step touched curl),
// audited and delivered as node.drift and counted by kind.
func testDriftHoldRemoved(t *testing.T, dsn string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := newReceiver(t)
	srv, base := runDriftServer(t, ctx, dsn, r)
	st := driver.NewSimState("d1", "debian", "6.1.0-26-amd64", map[string]string{"app": "1.9.0", "curl": "7.88.1-10", "nginx": "1.22.1-9"})
	st.SetHold("nginx", true)
	reg := &driver.Registry{}
	reg.Register(plan.ActionPackage, driver.NewSim(st))
	startSimAgent(t, ctx, base, srv.cfg.AgentToken, "d1", st, reg, appRunner{&atomic.Bool{}}, fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}})
	c := &api.Client{Base: base, Token: alice}
	waitNodes(t, ctx, c, 1)
	if _, err := c.ApplyBaseline(ctx, "prod.yaml", driftBaseline); err != nil {
		t.Fatal(err)
	}
	rem, err := c.RemediateBaseline(ctx, "prod", api.BaselineRemediate{})
	if err != nil || rem.Rollout == nil || !strings.Contains(rem.Plan, "hold: true") {
		t.Fatalf("remediate: %+v %v", rem, err)
	}
	if ro := waitEnded(t, ctx, c, rem.Rollout.ID, 60*time.Second); ro.State != engine.RolloutSucceeded {
		t.Fatalf("remediation %s (%s)", ro.State, ro.Reason)
	}
	gatetest.Eventually(t, 20*time.Second, "facts show curl pinned and held", func() (bool, string) {
		n, err := c.GetNode(ctx, "d1")
		return err == nil && n.Facts.Packages["curl"] == "7.88.1-10+deb12u5" && slices.Equal(n.Facts.Holds, []string{"curl", "nginx"}), fmt.Sprint(n.Facts.Packages, n.Facts.Holds, err)
	})
	if d, err := c.ListDrift(ctx, "", 0); err != nil || len(d.Events) != 0 {
		t.Fatalf("drift after remediation: %+v %v", d, err)
	}

	st.SetHold("curl", false) // apt-mark unhold, by hand
	st.SetHold("nginx", false)
	ro, err := c.CreateRollout(ctx, "app.yaml", rollbackVerifyPlan)
	if err != nil {
		t.Fatal(err)
	}
	if ro = waitEnded(t, ctx, c, ro.ID, 60*time.Second); ro.State != engine.RolloutSucceeded {
		t.Fatalf("rollout %s (%s)", ro.State, ro.Reason)
	}
	var d api.DriftList
	gatetest.Eventually(t, 20*time.Second, "hold-removed recorded", func() (bool, string) {
		d, err = c.ListDrift(ctx, "d1", 0)
		return err == nil && len(d.Events) == 2, fmt.Sprintf("%+v %v", d, err)
	})
	if e := d.Events[0]; e.Kind != baseline.DriftHoldRemoved || e.Package != "curl" || e.Baseline != "prod" || !strings.Contains(e.Reason, "no longer held") {
		t.Errorf("first event %+v", e)
	}
	if e := d.Events[1]; e.Kind != baseline.DriftHoldRemoved || e.Package != "nginx" || e.Baseline != "" || !strings.Contains(e.Reason, "removed by no drover step") {
		t.Errorf("second event %+v", e)
	}
	gatetest.Eventually(t, 10*time.Second, "node.drift webhooks", func() (bool, string) {
		evs, _, _ := r.events()
		var drifts []string
		for _, ev := range evs {
			if ev.Type == api.WebhookNodeDrift {
				drifts = append(drifts, ev.Summary)
			}
		}
		return len(drifts) == 2, fmt.Sprint(drifts)
	})
	mfs, err := srv.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var held float64
	for _, mf := range mfs {
		if mf.GetName() != "drover_drift_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == baseline.DriftHoldRemoved {
					held += m.GetCounter().GetValue()
				}
			}
		}
	}
	if held != 2 {
		t.Errorf("drover_drift_events_total{kind=hold-removed} = %v, want 2", held)
	}
}
