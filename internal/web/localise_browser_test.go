package web_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/server/servertest"
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

// TestLocalisationInBrowser: a real server with twelve real agents on
// simulated nodes, the three of hardware class gen3 failing to apply
// (after the others succeeded). The halted rollout's page, in Chromium,
// shows what the failed nodes share: hardware.class=gen3, 3 of 3 failed,
// 0 of 9 succeeded, p 0.005.
func TestLocalisationInBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	const token = "admin-token-0123456789"
	url, _, cfg := servertest.Start(t, ctx, func(c *server.Config) {
		c.Tick, c.PollWait = 50*time.Millisecond, time.Second
		c.AgentToken = "agent-token-0123456789"
		c.Users = []server.User{{Name: "admin", Role: server.RoleAdmin, Token: token}}
	})
	c := &api.Client{Base: url, Token: token}
	agentCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	for i := range 12 {
		id, class := fmt.Sprintf("n%02d", i+1), "gen1"
		s := driver.NewSimState(id, "debian", "6.1.0-26-amd64", map[string]string{"openssl": "3.0.11-1"})
		s.ApplyDelay = 100 * time.Millisecond
		if i%4 == 1 {
			class, s.ApplyDelay = "gen3", time.Second
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
	waitFor(t, 30*time.Second, "agents registered", func() bool {
		ns, err := c.AllNodes(ctx, "")
		return err == nil && len(ns) == 12
	})
	ro, err := c.CreateRollout(ctx, "fw.yaml", localisePlan)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "rollout halts", func() bool {
		ro, err = c.GetRollout(ctx, ro.ID, false)
		return err == nil && ro.State == engine.RolloutHalted
	})

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-background-networking", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1280, 800)); err != nil { // starts the browser on the tab's own context
		t.Fatalf("start chromium %s: %v", chromium, err)
	}
	f := &fixture{t: t, ctx: ctx, base: url, users: map[string]server.User{"admin": {Name: "admin", Token: token}}, browser: tab, shots: artifactDir(t)}
	f.signIn("admin")
	f.do("open halted rollout", chromedp.Navigate(url+"/ui/rollouts/"+ro.ID), chromedp.WaitVisible(chromedp.CSS("#localisation")))
	sec := f.text("#localisation")
	for _, want := range []string{"What the failed nodes share", "hardware.class=gen3", "3 of 3", "0 of 9", "0.005"} {
		if !strings.Contains(sec, want) {
			t.Errorf("localisation section lacks %q:\n%s", want, sec)
		}
	}
	if got := f.text("#rollout-reason"); !strings.Contains(got, "localised: 3 of 3 failed nodes have hardware.class=gen3") {
		t.Errorf("reason shown %q does not name hardware.class=gen3", got)
	}
	f.screenshot("rollout-localised", 1280, 800)
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
	}
}
