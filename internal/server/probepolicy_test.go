package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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

// rootProbePlan is the attack: an operator's plan that
// "restarts nginx" and whose node probe writes `id` to a file as the
// agent's user (root on a real fleet). %s is the file, %s extra target
// fields.
const rootProbePlan = `apiVersion: drover.dev/v1
name: restart-nginx
target:
  selector: node.labels.env == "prod"%s
change:
  actions:
    - serviceRestart:
        service: nginx
  reboot: never
waves:
  - name: all
limits:
  maxInFlight: 2
failureBudget:
  maxFailures: 0
  onBreach: pause
gates:
  node:
    probes:
      - kind: command
        command: ["/bin/sh", "-c", "id > %s"]
`

// liveFleet is a real server on SQLite with real agents on simulated
// nodes, whose probes run through a real exec runner: a probe that ran
// leaves its mark on disk.
type liveFleet struct {
	base   string
	ctx    context.Context
	alice  *api.Client // operator
	vera   *api.Client // viewer
	states map[string]*driver.SimState
}

func startLiveFleet(t *testing.T, gates gate.Evaluator, agents int, tune func(*agent.Config)) *liveFleet {
	t.Helper()
	cfg := testConfig(t)
	cfg.Tick, cfg.PollWait = 50*time.Millisecond, time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	st, err := store.Open(ctx, filepath.Join(cfg.DataDir, "drover.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := New(cfg, Deps{Store: st, Gates: gates, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(ctx, func(a string) { ready <- a }) }()
	f := &liveFleet{base: "http://" + <-ready, ctx: ctx, states: map[string]*driver.SimState{}}
	var wg sync.WaitGroup
	agentCtx, stopAgents := context.WithCancel(ctx)
	t.Cleanup(func() { stopAgents(); wg.Wait(); cancel(); <-done })
	for i := range agents {
		id := fmt.Sprintf("web-%d", i+1)
		st := driver.NewSimState(id, "debian", "6.1.0-26-amd64", map[string]string{"nginx": "1.22.1"})
		st.ApplyDelay = 50 * time.Millisecond
		f.states[id] = st
		reg := &driver.Registry{}
		reg.Register(plan.ActionServiceRestart, driver.NewSim(st))
		facts := fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Hardware: fleet.Hardware{Class: "gen1"}}
		acfg := agent.Config{ServerURL: f.base, StateDir: t.TempDir(), NodeID: id, Token: cfg.AgentToken,
			Labels: map[string]string{"env": "prod"}, Drivers: reg, Runner: driver.NewExecRunner(time.Minute),
			Facts: func(context.Context) (fleet.Facts, error) { return st.Facts(facts), nil }, Heartbeat: 200 * time.Millisecond}
		if tune != nil {
			tune(&acfg)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = agent.Run(agentCtx, acfg) }()
	}
	f.alice = &api.Client{Base: f.base, Token: "alice-token-0123456789"}
	f.vera = &api.Client{Base: f.base, Token: "vera-token-0123456789a"}
	waitNodes(t, ctx, f.alice, agents)
	return f
}

// problems returns the plan problems of an invalid_plan error, one
// "FILE:LINE:COL: PATH: MESSAGE" line each.
func problems(t *testing.T, err error) []string {
	t.Helper()
	var se *api.StatusError
	if !errors.As(err, &se) || se.Body.Code != api.CodeInvalidPlan {
		t.Fatalf("want an invalid_plan error, got %v", err)
	}
	var out []string
	for _, p := range se.Body.Problems {
		out = append(out, fmt.Sprintf("%s:%d:%d: %s: %s", p.File, p.Line, p.Col, p.Path, p.Message))
	}
	return out
}

// TestOperatorCommandProbeChangesNothing is the attack against
// a real server and real agents in their default configuration. The
// operator's plan is refused at creation, naming both nodes and the
// probe's line; with target.onRefusal: fail-node it is created, and
// both agents refuse the step before anything runs: nginx is not
// restarted, the probe's file never appears, and what a viewer reads
// carries no output of the probe.
func TestOperatorCommandProbeChangesNothing(t *testing.T) {
	f := startLiveFleet(t, nil, 2, nil)
	mark := filepath.Join(t.TempDir(), "owned")
	planText := fmt.Sprintf(rootProbePlan, "", mark)

	_, err := f.alice.CreateRollout(f.ctx, "nginx.yaml", planText)
	got := problems(t, err)
	want := "nginx.yaml:20:9: gates.node.probes[0]: 2 nodes (web-1, web-2) would refuse it: command probe /bin/sh -c id > " + mark +
		": the agent does not allow command probes (--allow-command-probes); allow it in their agents' configuration, or set target.onRefusal: fail-node to create the rollout anyway (those nodes then fail without anything run)"
	if len(got) != 1 || got[0] != want {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
	// The dry run refuses it the same way, and so does validate.
	if _, err := f.alice.DryRun(f.ctx, "nginx.yaml", planText); len(problems(t, err)) != 1 {
		t.Errorf("dry run: %v", err)
	}
	if v, err := f.alice.ValidatePlan(f.ctx, "nginx.yaml", planText); err != nil || v.Valid || len(v.Problems) != 1 {
		t.Errorf("validate: %+v %v", v, err)
	}
	if rs, err := f.alice.ListRollouts(f.ctx); err != nil || len(rs.Rollouts) != 0 {
		t.Fatalf("refused plan left rollouts: %+v %v", rs, err)
	}

	// Created anyway: every node fails without anything run.
	ro, err := f.alice.CreateRollout(f.ctx, "nginx.yaml", fmt.Sprintf(rootProbePlan, "\n  onRefusal: fail-node", mark))
	if err != nil {
		t.Fatal(err)
	}
	if ro.State != engine.RolloutRunning || len(ro.Refusals) != 1 || strings.Join(ro.Refusals[0].Nodes, ",") != "web-1,web-2" {
		t.Fatalf("created %s with refusals %+v; want running, both nodes listed", ro.State, ro.Refusals)
	}
	gatetest.Eventually(t, 60*time.Second, "both nodes failed", func() (bool, string) {
		ro, err = f.vera.GetRollout(f.ctx, ro.ID, true)
		failed := 0
		for _, n := range ro.Nodes {
			if n.Phase == engine.PhaseFailed {
				failed++
			}
		}
		return err == nil && failed == 2, fmt.Sprintf("%s %+v %v", ro.State, ro.Nodes, err)
	})
	for _, n := range ro.Nodes {
		if !strings.Contains(n.Reason, "refused by this agent's configuration") || !strings.Contains(n.Reason, "nothing was run") {
			t.Errorf("node %s failed with %q; want the agent's refusal", n.ID, n.Reason)
		}
		if strings.Contains(n.Reason, "uid=") {
			t.Errorf("node %s reason carries probe output: %q", n.ID, n.Reason)
		}
	}
	for id, st := range f.states {
		if st.Applies() != 0 {
			t.Errorf("node %s: nginx restarted %d times; want never", id, st.Applies())
		}
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the probe ran: %s exists (%v)", mark, err)
	}

	// The creation's audit entry names the command the rollout could
	// have caused.
	entries, err := f.vera.ListAudit(f.ctx, 0, 100, ro.ID)
	if err != nil {
		t.Fatal(err)
	}
	var commands []string
	for _, e := range entries.Entries {
		if e.Action == "rollout.create" {
			var d struct{ Commands []string }
			if err := json.Unmarshal(e.Detail, &d); err != nil {
				t.Fatal(err)
			}
			commands = d.Commands
		}
	}
	wantCmds := []string{"change.actions[0]: service-restart nginx",
		fmt.Sprintf("gates.node.probes[0]: command probe runs \"/bin/sh\" \"-c\" %s", strconv.Quote("id > "+mark))}
	if strings.Join(commands, "\n") != strings.Join(wantCmds, "\n") {
		t.Errorf("audited commands:\n%s\nwant:\n%s", strings.Join(commands, "\n"), strings.Join(wantCmds, "\n"))
	}
}

// TestAllowedCommandProbeRuns: the same plan on agents whose node
// allows command probes is created and its probe runs, once per node.
func TestAllowedCommandProbeRuns(t *testing.T) {
	f := startLiveFleet(t, nil, 2, func(c *agent.Config) { c.AllowCommandProbes = true })
	dir := t.TempDir()
	ro, err := f.alice.CreateRollout(f.ctx, "nginx.yaml", fmt.Sprintf(rootProbePlan, "", filepath.Join(dir, "mark-$$")))
	if err != nil {
		t.Fatal(err)
	}
	if len(ro.Refusals) != 0 {
		t.Fatalf("refusals %+v, want none", ro.Refusals)
	}
	gatetest.Eventually(t, 60*time.Second, "rollout succeeds", func() (bool, string) {
		ro, err = f.vera.GetRollout(f.ctx, ro.ID, false)
		return err == nil && ro.State == engine.RolloutSucceeded, fmt.Sprintf("%s %s %v", ro.State, ro.Reason, err)
	})
	if files, _ := os.ReadDir(dir); len(files) == 0 {
		t.Error("the allowed probe left no mark")
	}
}

// oldAgent registers a node as an agent of protocol 1 does: no policy
// in its facts.
func oldAgent(t *testing.T, base, id string) {
	t.Helper()
	body, _ := json.Marshal(api.RegisterRequest{NodeID: id, Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}},
		Labels: map[string]string{"env": "prod"}, AgentVersion: "0.9"})
	req, _ := http.NewRequest(http.MethodPost, base+api.PathRegister, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer agent-token-0123456789")
	req.Header.Set("Drover-Node", id)
	req.Header.Set(api.HeaderProtocol, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("register %s: %s", id, resp.Status)
	}
}

// TestOldAgentsCannotBeGivenCommandProbes: an agent of protocol 1 would
// run any command probe without its node's consent: a plan with one is
// refused whatever target.onRefusal says.
func TestOldAgentsCannotBeGivenCommandProbes(t *testing.T) {
	f := startLiveFleet(t, nil, 1, func(c *agent.Config) { c.AllowCommandProbes = true })
	oldAgent(t, f.base, "legacy-1")
	_, err := f.alice.CreateRollout(f.ctx, "nginx.yaml", fmt.Sprintf(rootProbePlan, "\n  onRefusal: fail-node", "/tmp/x"))
	got := problems(t, err)
	if len(got) != 1 || !strings.Contains(got[0], "1 node (legacy-1) would refuse it") ||
		!strings.Contains(got[0], "older than protocol 2") || !strings.Contains(got[0], "target.onRefusal cannot override this") {
		t.Fatalf("problems %q", got)
	}
}

// promFake is a configured metrics source that is never asked: the
// checks here happen before anything runs.
type promFake struct{ gate.Unconfigured }

func (promFake) InstanceOf(n *fleet.Node) string { return n.ID + ":9100" }

// Window is the evaluator's .Window, which the pre-flight renders with.
func (promFake) Window(plan.WaveGate) string { return "45s" }

const gatePlan = `apiVersion: drover.dev/v1
name: gated
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - serviceRestart:
        service: nginx
waves:
  - name: all
gates:
  wave:
    - name: errors
      mode: threshold
      max: 0.01
      query: %s
`

// TestPreflightAgainstTheServer: wave gates with no metrics source,
// queries that do not render or parse as PromQL, windows named by nodes
// but not defined, a canary that cannot cover its strata and an action
// without a way back the plan does not accept are refused at creation
// with their positions, before anything is touched.
func TestPreflightAgainstTheServer(t *testing.T) {
	good := `sum(rate(http_requests_total{code=~"5..", instance=~"{{ .Nodes | regex }}"}[5m]))`
	t.Run("no metrics source", func(t *testing.T) {
		f := startLiveFleet(t, nil, 1, nil)
		_, err := f.alice.CreateRollout(f.ctx, "g.yaml", fmt.Sprintf(gatePlan, good))
		got := problems(t, err)
		if len(got) != 1 || !strings.HasPrefix(got[0], "g.yaml:13:7: gates.wave[0]: wave gate errors needs a metrics source and this server has none") {
			t.Fatalf("problems %q", got)
		}
	})
	f := startLiveFleet(t, promFake{}, 2, nil)
	tests := []struct {
		name, query, want string
	}{
		{"unbalanced", `sum(rate(x{instance=~"{{ .Nodes | regex }}"}[5m])`,
			"g.yaml:16:14: gates.wave[0].query: wave gate errors over the nodes of wave all: query (canary side) does not parse as PromQL: unclosed left parenthesis"},
		{"template", `'up{instance=~"{{ .Nodes | regex }"}'`,
			"g.yaml:16:14: gates.wave[0].query: wave gate errors over the nodes of wave all: query (canary side): parse query template"},
		{"missing label", `'up{pod=~"{{ .Nodes | label "pod" | regex }}"}'`,
			`g.yaml:16:14: gates.wave[0].query: wave gate errors over the nodes of wave all: query (canary side): render query: template: query:1:21: executing "query" at <label "pod">: error calling label: node web-`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.alice.CreateRollout(f.ctx, "g.yaml", fmt.Sprintf(gatePlan, tt.query))
			got := problems(t, err)
			if len(got) != 1 || !strings.HasPrefix(got[0], tt.want) {
				t.Fatalf("problems %q\nwant prefix %q", got, tt.want)
			}
		})
	}
	if _, err := f.alice.DryRun(f.ctx, "g.yaml", fmt.Sprintf(gatePlan, good)); err != nil {
		t.Fatalf("a good query is refused: %v", err)
	}
	// The query parses only with the evaluator's .Window.
	byWindow := `'{{ if ne .Window "45s" }}(window {{ .Window }}{{ end }}up{instance=~"{{ .Nodes | regex }}"}'`
	if _, err := f.alice.DryRun(f.ctx, "g.yaml", fmt.Sprintf(gatePlan, byWindow)); err != nil {
		t.Fatalf("the pre-flight does not render the evaluator's .Window: %v", err)
	}

	// A canary that must cover its strata and cannot within its max is
	// refused, listing them; allowed, the dry run lists them.
	t.Run("canary cannot cover", func(t *testing.T) {
		for id, rack := range map[string]string{"web-1": "r1", "web-2": "r2"} {
			n, err := f.alice.GetNode(f.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.alice.SetLabels(f.ctx, id, n.Version, map[string]string{"env": "prod", "rack": rack}); err != nil {
				t.Fatal(err)
			}
		}
		text := strings.Replace(fmt.Sprintf(gatePlan, good), "waves:\n  - name: all\n",
			"waves:\n  - name: canary\n    canary: {max: 1}\n    spread: [rack]\n  - name: all\n", 1)
		_, err := f.alice.CreateRollout(f.ctx, "c.yaml", text)
		got := problems(t, err)
		want := `c.yaml:11:13: waves[0].canary: wave canary: a canary of at most 1 node covers 1 of the 2 strata of its spread keys (rack); uncovered: {rack=r`
		if len(got) != 1 || !strings.HasPrefix(got[0], want) {
			t.Fatalf("problems %q\nwant prefix %q", got, want)
		}
		res, err := f.alice.DryRun(f.ctx, "c.yaml", strings.Replace(text, "{max: 1}", "{max: 1, allowUncovered: true}", 1))
		if err != nil || !strings.Contains(res.Text, "uncovered    wave canary: 1 stratum, canary max 1 cannot cover all 2 combinations") {
			t.Fatalf("dry run with allowUncovered: %v\n%s", err, res.Text)
		}
	})
	// An action without a way back on the target nodes is refused unless
	// the plan accepts it; the dry run then names the nodes.
	t.Run("no way back", func(t *testing.T) {
		text := strings.Replace(fmt.Sprintf(gatePlan, good), "    - serviceRestart:\n        service: nginx\n",
			"    - name: tune\n      script:\n        artifact: tune.sh\n", 1)
		text = strings.Replace(text, "  selector: node.labels.env == \"prod\"\n", "  selector: node.labels.env == \"prod\"\n  onRefusal: fail-node\n", 1)
		_, err := f.alice.CreateRollout(f.ctx, "s.yaml", text)
		want := `s.yaml:8:7: change.actions[0]: tune cannot be rolled back on 2 nodes (web-1, web-2) (os.family debian): script tune.sh names no rollback artifact`
		if got := problems(t, err); len(got) != 1 || !strings.HasPrefix(got[0], want) {
			t.Fatalf("problems %q\nwant prefix %q", got, want)
		}
		res, err := f.alice.DryRun(f.ctx, "s.yaml", strings.Replace(text, "artifact: tune.sh\n", "artifact: tune.sh\n        rollback: none\n", 1))
		if err != nil || !strings.Contains(res.Text, "no way back: change.actions[0] (tune) on 2 nodes (web-1, web-2): the plan says rollback: none\n") {
			t.Fatalf("dry run with rollback: none: %v\n%s", err, res.Text)
		}
	})

	t.Run("undefined window", func(t *testing.T) {
		n, err := f.alice.GetNode(f.ctx, "web-2")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.alice.SetLabels(f.ctx, "web-2", n.Version, map[string]string{"env": "prod", "maintenance-window": "night-shift"}); err != nil {
			t.Fatal(err)
		}
		text := strings.Replace(fmt.Sprintf(gatePlan, good), "waves:", "windows:\n  definitions:\n    weekend:\n      timeZone: UTC\n      spans: [{days: [Sat], start: \"00:00\", duration: 24h}]\nwaves:", 1)
		_, err = f.alice.CreateRollout(f.ctx, "g.yaml", text)
		got := problems(t, err)
		want := `g.yaml:11:5: windows.definitions: window "night-shift" is named by 1 node (web-2) (label maintenance-window) but not defined: they would never start; the plan defines "weekend"`
		if len(got) != 1 || got[0] != want {
			t.Fatalf("problems %q\nwant %q", got, want)
		}
	})
	for id, st := range f.states {
		if st.Applies() != 0 {
			t.Errorf("node %s changed by a refused plan", id)
		}
	}
}
