package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/gate"
	"github.com/drover-dev/drover/internal/gate/gatetest"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/store"
)

const gatedPlan = `apiVersion: drover.dev/v1
name: nic-driver
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - package:
        packages: [{name: nic-driver, version: "2.1.0"}]
waves:
  - name: canary
    canary: true
    nodes: 2
    spread: [hardware.class]
  - name: rest
limits:
  maxInFlight: 4
gates:
  bakeTime: 3s
  onFail: rollback-wave
  wave:
    - name: p99-latency
      mode: delta
      query: histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{instance=~"{{ .Nodes | label "instance" | regex }}"}[{{ .Window }}])))
      maxIncrease: "20%"
      interval: 1s
      initialDelay: 1s
      count: 2
`

// TestWaveGateHaltsRollout runs the product end to end against a real
// Prometheus: a server with the Prometheus gate evaluator, real agents on
// simulated nodes, one exporter per node. The change raises p99 latency by
// 40% on gen2 machines only, and their probes keep passing: only the
// canary-versus-baseline gate can see it. The wave gate fails, the
// rollout rolls the canary back and halts within one evaluation interval,
// the result is stored, shown, audited and counted in /metrics, and no
// node outside the canary is touched.
func TestWaveGateHaltsRollout(t *testing.T) {
	exps := append(gatetest.StartExporters(t, "gen1", "gen1", 4, 1), gatetest.StartExporters(t, "gen2", "gen2", 4, 11)...)
	ps := gatetest.StartPrometheus(t, gatetest.AddrsOf(exps), "")
	ps.WaitTargetsUp(t, len(exps))
	ev, err := gate.NewPrometheus(ps.URL, gate.WithTimeout(5*time.Second), gate.WithMinWindow(6*time.Second), gate.WithStep(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t)
	cfg.Tick, cfg.PollWait = 100*time.Millisecond, 2*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, filepath.Join(cfg.DataDir, "drover.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := New(cfg, Deps{Store: st, Gates: ev, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() { _ = srv.Run(ctx, func(a string) { ready <- a }) }()
	base := "http://" + <-ready

	var wg sync.WaitGroup
	defer wg.Wait()
	agentCtx, stopAgents := context.WithCancel(ctx)
	defer stopAgents()
	for _, e := range exps {
		class := e.Node.Facts.Hardware.Class
		st := driver.NewSimState(e.Node.ID, "debian", "6.1.0-26-amd64", map[string]string{"nic-driver": "2.0.3"})
		st.ApplyDelay = 200 * time.Millisecond
		if class == "gen2" {
			st.OnApply = func(plan.Action) { e.Set(0.140, 0.005) } // +40% p99, probes still pass
		}
		reg := &driver.Registry{}
		reg.Register(plan.ActionPackage, driver.NewSim(st))
		facts := fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Hardware: fleet.Hardware{Class: class}}
		acfg := agent.Config{ServerURL: base, StateDir: t.TempDir(), NodeID: e.Node.ID, Token: cfg.AgentToken,
			Labels:  map[string]string{"env": "prod", "instance": e.Addr},
			Drivers: reg, Facts: func(context.Context) (fleet.Facts, error) { return st.Facts(facts), nil },
			Heartbeat: 500 * time.Millisecond}
		wg.Add(1)
		go func() { defer wg.Done(); _ = agent.Run(agentCtx, acfg) }()
	}
	c := &api.Client{Base: base, Token: "alice-token-0123456789"}
	waitNodes(t, ctx, c, len(exps))

	ro, err := c.CreateRollout(ctx, "gated.yaml", gatedPlan)
	if err != nil {
		t.Fatal(err)
	}
	ro = waitEnded(t, ctx, c, ro.ID, 90*time.Second)
	t.Logf("halted: %s", ro.Reason)
	if ro.State != engine.RolloutHalted {
		t.Fatalf("rollout %s: %s", ro.State, ro.Reason)
	}
	for _, want := range []string{"wave canary gate p99-latency failed", "vs baseline", "allowed +20%"} {
		if !strings.Contains(ro.Reason, want) {
			t.Errorf("halt reason %q lacks %q", ro.Reason, want)
		}
	}
	var failing *api.Gate
	for i, g := range ro.Gates {
		if g.Gate == "p99-latency" && g.Verdict == engine.Fail {
			failing = &ro.Gates[i]
		}
	}
	if failing == nil {
		t.Fatalf("no failing gate result shown: %+v", ro.Gates)
	}
	for _, n := range ro.Nodes {
		if n.Wave != "canary" && n.Attempt > 0 {
			t.Errorf("node %s outside the canary was touched (%s)", n.ID, n.Phase)
		}
		if n.Wave == "canary" && n.Phase != engine.PhaseRolledBack {
			t.Errorf("canary node %s is %s, want rolled-back", n.ID, n.Phase)
		}
	}

	// Audited, and the halt followed the failing verdict within one
	// evaluation interval (1s), by the server's own timestamps.
	entries, err := c.ListAudit(ctx, 0, 5000, ro.ID)
	if err != nil {
		t.Fatal(err)
	}
	var verdictAt, haltAt time.Time
	for _, e := range entries.Entries {
		var d struct {
			To      string `json:"to"`
			Verdict string `json:"verdict"`
		}
		_ = json.Unmarshal(e.Detail, &d)
		if e.Action == "gate.verdict" && strings.Contains(string(e.Detail), "fail") && verdictAt.IsZero() {
			verdictAt = e.At
		}
		if e.Action == "rollout.state" && d.To == string(engine.RolloutRollingBack) && haltAt.IsZero() {
			haltAt = e.At
		}
	}
	if verdictAt.IsZero() || haltAt.IsZero() {
		t.Fatalf("audit lacks the failing verdict (%v) or the halt (%v)", verdictAt, haltAt)
	}
	if d := haltAt.Sub(verdictAt); d < 0 || d > time.Second {
		t.Errorf("halt %s after the failing verdict; want within one evaluation interval (1s)", d)
	}

	// Counted in /metrics.
	req, err := http.NewRequest("GET", base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer vera-token-0123456789a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`drover_gate_evaluations_total{result="fail"}`, "drover_fail_to_halt_seconds_count 1", "drover_halt_to_rollback_dispatch_seconds_count 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
