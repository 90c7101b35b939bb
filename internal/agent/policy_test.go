package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// countingRunner is the test node's runner, recording every command.
type countingRunner struct {
	n   *testNode
	mu  sync.Mutex
	ran []string
}

func (r *countingRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, []byte, error) {
	r.mu.Lock()
	r.ran = append(r.ran, strings.Join(append([]string{name}, args...), " "))
	r.mu.Unlock()
	if strings.HasPrefix(name, "/verified/") || name == "/bin/sh" {
		return []byte("ok"), nil, nil
	}
	return r.n.Run(ctx, env, name, args...)
}

func (r *countingRunner) commands() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ran...)
}

type fakeVerifier map[string]bool

func (v fakeVerifier) Verify(_ context.Context, name string) (string, error) {
	if v[name] {
		return "/verified/" + name, nil
	}
	return "", fmt.Errorf("target %s: signature does not verify", name)
}

// TestProbePolicy: what a step's probes may run is this node's
// decision. A command probe on an agent that does not allow command
// probes fails the step before any action or command runs; an artifact
// probe runs only once verified, and one that does not verify fails the
// step before anything changes.
func TestProbePolicy(t *testing.T) {
	evil := plan.Probe{Kind: plan.ProbeCommand, Command: []string{"/bin/sh", "-c", "id > /tmp/owned"}}
	signed := plan.Probe{Kind: plan.ProbeCommand, Artifact: "check-db", Args: []string{"--quick"}}
	forged := plan.Probe{Kind: plan.ProbeCommand, Artifact: "forged"}
	tests := []struct {
		name     string
		allow    bool
		verifier fakeVerifier
		probe    plan.Probe
		phase    engine.Phase
		reason   string
		applies  int
		ran      []string
	}{
		{name: "command probe refused", probe: evil, phase: engine.PhaseFailed,
			reason: "probe 1 refused by this agent's configuration: command probe /bin/sh -c id > /tmp/owned: the agent does not allow command probes (--allow-command-probes); nothing was run"},
		{name: "command probe allowed", allow: true, probe: evil, phase: engine.PhaseVerifying, applies: 1, ran: []string{"/bin/sh -c id > /tmp/owned"}},
		{name: "artifact probe without a verifier", probe: signed, phase: engine.PhaseFailed,
			reason: "probe 1 refused by this agent's configuration: command probe runs signed artifact check-db and the agent verifies none (--artifact-root); nothing was run"},
		{name: "artifact probe verified", verifier: fakeVerifier{"check-db": true}, probe: signed, phase: engine.PhaseVerifying, applies: 1,
			ran: []string{"/verified/check-db --quick"}},
		{name: "artifact probe not verified", verifier: fakeVerifier{"check-db": true}, probe: forged, phase: engine.PhaseFailed,
			reason: "probe 1: artifact forged refused: verify artifact: target forged: signature does not verify; nothing was changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newTestNode(t)
				srv := newFakeServer(t)
				cfg := n.config(t, srv)
				r := &countingRunner{n: n}
				cfg.Runner, cfg.AllowCommandProbes = r, tt.allow
				if tt.verifier != nil {
					cfg.Verifier = tt.verifier
				}
				stop, _ := start(t, cfg)
				defer stop()
				step := applyStep(1, plan.Action{ServiceRestart: &plan.ServiceRestartAction{Service: "nginx"}})
				step.Probes, step.MinHealthy = []plan.Probe{tt.probe}, 0
				srv.dispatch(step)
				final, _ := srv.final(t)
				if final.Phase != tt.phase || (tt.reason != "" && final.Reason != tt.reason) {
					t.Fatalf("final %s %q\nwant %s %q", final.Phase, final.Reason, tt.phase, tt.reason)
				}
				if got := n.state.Applies(); got != tt.applies {
					t.Errorf("%d applies, want %d", got, tt.applies)
				}
				if got := r.commands(); strings.Join(got, "|") != strings.Join(tt.ran, "|") {
					t.Errorf("ran %q, want %q", got, tt.ran)
				}
			})
		})
	}
}

// TestPolicyInFacts: the agent reports its policy in the facts it
// registers, so that the server can tell who would refuse a plan.
func TestPolicyInFacts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		cfg := n.config(t, srv)
		cfg.Accepts = []plan.ActionKind{plan.ActionPackage, plan.ActionScript}
		cfg.AllowCommandProbes, cfg.AllowProbeOutput, cfg.Verifier = false, true, fakeVerifier{}
		stop, _ := start(t, cfg)
		defer stop()
		srv.dispatch(applyStep(1, pkg("openssl", "3.0.15")))
		srv.final(t)
		srv.mu.Lock()
		regs := append([]api.RegisterRequest(nil), srv.registers...)
		srv.mu.Unlock()
		if len(regs) == 0 {
			t.Fatal("no registration")
		}
		got := regs[0].Facts.Agent
		want := fleet.AgentPolicy{Accepts: []string{"package", "script"}, ProbeOutput: true, Artifacts: true}
		if got == nil || fmt.Sprint(*got) != fmt.Sprint(want) {
			t.Fatalf("facts.agent = %+v, want %+v", got, want)
		}
	})
}
