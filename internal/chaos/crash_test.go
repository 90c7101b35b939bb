package chaos

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
)

// crashPlan is the plan of the crash tests: a canary spread over hardware
// class and zone, then two waves, under 4 in flight and 2 per zone, with
// node probes and a threshold wave gate (served by fakePrometheus). With
// budget 0 on the canary, a change that hurts one class rolls the canary
// back and halts.
func crashPlan(healthyDeadline string) string {
	return nodePlan(healthyDeadline) + `  wave:
    - name: error-ratio
      mode: threshold
      query: chaos_error_ratio
      max: 0.5
      interval: 500ms
      count: 1
`
}

// nodePlan is crashPlan without wave gates (for servers without
// Prometheus, whose wave gates always fail).
func nodePlan(healthyDeadline string) string {
	return `apiVersion: drover.dev/v1
name: chaos-openssl
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - name: openssl
      package:
        packages:
          - name: openssl
            version: 3.0.15
  reboot: never
waves:
  - name: canary
    nodes: 3
    canary: true
    spread: [hardware.class, zone]
    failureBudget:
      maxFailures: 0
      onBreach: rollback-wave
  - name: early
    nodes: 40%
  - name: rest
limits:
  maxInFlight: 4
  caps:
    zone: 2
gates:
  bakeTime: 1s
  node:
    probes:
      - name: health
        kind: command
        command: [drover-sim-health]
        interval: 200ms
        timeout: 2s
    minHealthy: 600ms
    healthyDeadline: ` + healthyDeadline + `
`
}

var crashLimits = limits{maxInFlight: 4, zoneCap: 2}

// crashRun is one rollout with its server killed at failpoints: kills[i]
// is DROVER_FAILPOINTS of the server's (i+1)th life and must kill it; the
// last life runs without failpoints. stopAgent stops the agent of the
// first node whose Apply returns, so that its lease expires, and starts
// it again once the server was killed and restarted.
type crashRun struct {
	kills     []string
	hurts     bool
	stopAgent bool
}

func (r crashRun) name() string {
	return strings.NewReplacer(",", "+", "=", "@").Replace(strings.Join(r.kills, "/"))
}

// runCrash runs r and returns what it measured.
func runCrash(t *testing.T, bin string, r crashRun) report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	dir := t.TempDir()
	cfg := serverConfig{Listen: freePort(t), DataDir: filepath.Join(dir, "server"), ServerID: "chaos",
		Prometheus: fakePrometheus(t), Lease: 3 * time.Second, PollWait: time.Second, Tick: 100 * time.Millisecond}
	p := newServerProc(t, bin, dir, cfg)
	if err := p.start(r.kills[0]); err != nil {
		t.Fatal(err)
	}
	var hurts func(string) bool
	deadline := "20s"
	want := completed
	if r.hurts {
		hurts, deadline, want = func(class string) bool { return class == "gen3" }, "3s", canaryRolledBack
	}
	f := newSimFleet(t, dir, 12, 250*time.Millisecond, hurts, func(int) string { return p.url() })
	var stoppedMu sync.Mutex
	var stopped *simNode
	if r.stopAgent {
		var once sync.Once
		f.l.onApplied = func(node, _ string) {
			once.Do(func() {
				sn := f.byID[node]
				stoppedMu.Lock()
				stopped = sn
				stoppedMu.Unlock()
				go f.stop(sn) // not from inside the agent's own driver call
			})
		}
	}
	f.startAll()
	c := p.client()
	if err := waitOnline(ctx, c, len(f.nodes)); err != nil {
		t.Fatal(err)
	}
	id := ""
	ro, err := c.CreateRollout(ctx, "chaos.yaml", crashPlan(deadline))
	switch {
	case err == nil:
		id = ro.ID
	case strings.HasPrefix(r.kills[0], "after-create") || api.Code(err) == "":
		// The server died before answering (at after-create, or at a
		// failpoint the new rollout reached at once, such as during-poll
		// on a busy machine): the rollout is found after the restart.
	default:
		t.Fatalf("create rollout: %v", err)
	}

	for i, spec := range r.kills {
		point, _, _ := strings.Cut(spec, "=")
		if err := waitKilled(ctx, p, c, id, 60*time.Second); err != nil {
			t.Fatalf("failpoint %s (life %d): %v", spec, i+1, err)
		}
		if !p.killedBySIGKILL() || !strings.Contains(p.logBuf.String(), "failpoint "+point+" hit") {
			t.Fatalf("server life %d ended (%s) but not at failpoint %s:\n%s", i+1, p.exitState(), spec, tail(p.logBuf.String(), 3000))
		}
		next := ""
		if i+1 < len(r.kills) {
			next = r.kills[i+1]
		}
		if err := p.start(next); err != nil {
			t.Fatal(err)
		}
		stoppedMu.Lock()
		if stopped != nil {
			f.start(stopped) // resumes its step from the journal
		}
		stoppedMu.Unlock()
	}
	if id == "" {
		list, err := c.ListRollouts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Rollouts) != 1 {
			t.Fatalf("after the restart: %d rollouts stored, want the 1 created before the crash", len(list.Rollouts))
		}
		id = list.Rollouts[0].ID
	}
	ro, err = waitTerminal(ctx, c, id, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Let the agents deliver what they still hold (final reports of the
	// rollback), then stop them so that the ledger is final.
	time.Sleep(500 * time.Millisecond)
	f.stopAll()
	rep, err := verifyRun(ctx, c, f, id, crashLimits, want)
	if err != nil {
		t.Errorf("rollout %s (%s after %d kills):\n%v", id, ro.State, len(r.kills), err)
	}
	return rep
}

// waitKilled waits until the server's current life ends; it fails early
// when the rollout finishes first (the failpoint is armed too late).
func waitKilled(ctx context.Context, p *serverProc, c *api.Client, id string, d time.Duration) error {
	timeout := time.After(d)
	for {
		select {
		case <-p.exited():
			return nil
		case <-timeout:
			return fmt.Errorf("did not fire within %s", d)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if id == "" {
			continue
		}
		if ro, err := c.GetRollout(ctx, id, false); err == nil && ro.State.Terminal() {
			select {
			case <-p.exited():
				return nil
			default:
			}
			return fmt.Errorf("never fired: the rollout ended first (%s: %s)", ro.State, ro.Reason)
		}
	}
}

// waitTerminal waits until the rollout reaches a terminal state.
func waitTerminal(ctx context.Context, c *api.Client, id string, d time.Duration) (api.Rollout, error) {
	deadline := time.Now().Add(d)
	var last api.Rollout
	var lastErr error
	for time.Now().Before(deadline) {
		ro, err := c.GetRollout(ctx, id, false)
		if err == nil && ro.State.Terminal() {
			return ro, nil
		}
		last, lastErr = ro, err
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last, fmt.Errorf("rollout %s not finished within %s: state %s (%s), last error %v", id, d, last.State, last.Reason, lastErr)
}

// TestCrashRestartRollout kills the server with SIGKILL at every
// failpoint of a rollout that succeeds (one kill per run, and one run
// with four kills in a row), restarts it on the same SQLite store, and
// checks that the rollout completes with every step executed exactly
// once and no cap exceeded.
func TestCrashRestartRollout(t *testing.T) {
	bin := buildDrover(t)
	runs := []crashRun{
		{kills: []string{"after-create=1"}},
		{kills: []string{"after-decide=4"}},
		{kills: []string{"before-commit=7"}},
		{kills: []string{"after-commit=5"}},
		{kills: []string{"wave-transition=2"}},
		{kills: []string{"gate-evaluation=1"}},
		{kills: []string{"during-poll=3"}},
		{kills: []string{"during-report=6"}},
		{kills: []string{"during-report-before-store=9"}},
		{kills: []string{"lease-expiry=1"}, stopAgent: true},
		{kills: []string{"after-commit=4", "during-poll=3", "during-report=4", "wave-transition=2"}},
	}
	runAll(t, bin, runs)
}

// TestCrashRestartRollback kills the server at the failpoints of a
// rollout whose canary fails (the change hurts hardware class gen3): the
// canary's budget breaks, its wave is rolled back, the rollout halts, and
// no node outside the canary is touched, whatever the kills.
func TestCrashRestartRollback(t *testing.T) {
	bin := buildDrover(t)
	runs := []crashRun{
		{kills: []string{"during-rollback=1"}, hurts: true},
		{kills: []string{"wave-transition=2"}, hurts: true},
		{kills: []string{"during-report=4"}, hurts: true},
		{kills: []string{"during-poll=4"}, hurts: true},
		{kills: []string{"after-commit=2", "during-rollback=1", "during-report-before-store=3"}, hurts: true},
	}
	runAll(t, bin, runs)
}

func runAll(t *testing.T, bin string, runs []crashRun) {
	points := map[string]bool{}
	kills, ran, passed := 0, 0, 0
	for _, r := range runs {
		ok := t.Run(r.name(), func(t *testing.T) {
			ran++
			start := time.Now()
			rep := runCrash(t, bin, r)
			t.Logf("%d kills; %d steps dispatched, %d applies, %d rollbacks; max in flight %d, per zone %v; %.1fs",
				len(r.kills), rep.dispatched, rep.applies, rep.rollbacks, rep.maxInFlight, rep.maxZone, time.Since(start).Seconds())
		})
		if !ok {
			continue
		}
		passed++
		for _, k := range r.kills {
			p, _, _ := strings.Cut(k, "=")
			points[p] = true
			kills++
		}
	}
	t.Logf("%d of %d runs passed, with %d SIGKILLs at %d distinct failpoints", passed, ran, kills, len(points))
}
