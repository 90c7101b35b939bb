package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/server/servertest"
	"github.com/drover-dev/drover/internal/store/storetest"
)

const localisePlan = `apiVersion: drover.dev/v1
name: fw-tools
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - package:
        packages: [{name: openssl, version: "3.0.99"}]
waves:
  - name: all
    failureBudget:
      maxFailures: 2
      onBreach: rollback-all
limits:
  maxInFlight: 12
`

// TestHaltLocalisesFailures: twelve real agents on simulated nodes, the
// three of hardware class gen3 fail to apply (after the others have
// succeeded). The third failure breaches the budget, the rollout rolls
// back and halts; its
// reason, its view (localisation) and the audit entry of the halt name
// hardware.class=gen3, counting the rolled-back nodes whose apply failed.
// On SQLite and on PostgreSQL (the store says how rolled-back applies
// ended).
func TestHaltLocalisesFailures(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testHaltLocalises(t, metricsConfig) })
	t.Run("postgres", func(t *testing.T) {
		dsn := storetest.NewPostgres(t).CreateDB(t)
		testHaltLocalises(t, func(cfg *server.Config) { metricsConfig(cfg); cfg.Database = dsn })
	})
}

func testHaltLocalises(t *testing.T, config func(*server.Config)) {
	ctx := t.Context()
	url, _, cfg := servertest.Start(t, ctx, config)
	c := &api.Client{Base: url, Token: operatorToken}
	agentCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	for i := range 12 {
		id, class := fmt.Sprintf("n%02d", i+1), "gen1"
		if i%4 == 1 {
			class = "gen3"
		}
		s := driver.NewSimState(id, "debian", "6.1.0-26-amd64", map[string]string{"openssl": "3.0.11-1"})
		s.ApplyDelay = 100 * time.Millisecond
		if class == "gen3" {
			s.ApplyDelay = time.Second // the others have succeeded by the time the third failure breaches the budget
			s.FailApply = func(plan.Action) error { return errors.New("dpkg: microcode mismatch on gen3") }
		}
		reg := &driver.Registry{}
		reg.Register(plan.ActionPackage, driver.NewSim(s))
		facts := fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Hardware: fleet.Hardware{Class: class}}
		acfg := agent.Config{ServerURL: url, StateDir: t.TempDir(), NodeID: id, Token: cfg.AgentToken,
			Labels: map[string]string{"env": "prod", "zone": "a"}, Drivers: reg, Heartbeat: 200 * time.Millisecond,
			Facts: func(context.Context) (fleet.Facts, error) { return s.Facts(facts), nil }}
		wg.Add(1)
		go func() { defer wg.Done(); _ = agent.Run(agentCtx, acfg) }()
	}
	eventually(t, 30*time.Second, "agents registered", func() (bool, string) {
		ns, err := c.AllNodes(ctx, "")
		return err == nil && len(ns) == 12, fmt.Sprintf("%d nodes, %v", len(ns), err)
	})
	ro, err := c.CreateRollout(ctx, "fw.yaml", localisePlan)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "rollout ends", func() (bool, string) {
		ro, err = c.GetRollout(ctx, ro.ID, false)
		return err == nil && ro.State.Terminal(), fmt.Sprintf("%s %s %v", ro.State, ro.Reason, err)
	})
	const want = "3 of 3 failed nodes have hardware.class=gen3; 0 of 9 succeeded nodes do; p=0.005"
	if ro.State != engine.RolloutHalted || !strings.HasSuffix(ro.Reason, "; localised: "+want) {
		t.Errorf("rollout %s: %s\nwant halted, the reason ending with %q", ro.State, ro.Reason, want)
	}
	if len(ro.Localisation) != 1 || ro.Localisation[0].Text != want || ro.Localisation[0].Attribute != "hardware.class" {
		t.Errorf("localisation = %+v, want %q", ro.Localisation, want)
	}
	entries, err := c.ListAudit(ctx, 0, 5000, ro.ID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries.Entries {
		var d struct {
			To           string        `json:"to"`
			Localisation []api.Finding `json:"localisation"`
		}
		_ = json.Unmarshal(e.Detail, &d)
		if e.Action == "rollout.state" && d.To == string(engine.RolloutHalted) {
			found = len(d.Localisation) == 1 && d.Localisation[0].Text == want
			if !found {
				t.Errorf("halt audit entry: %s", e.Detail)
			}
		}
	}
	if !found {
		t.Error("no audit entry of the halt with its localisation")
	}
}
