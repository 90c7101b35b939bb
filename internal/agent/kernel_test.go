package agent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

const (
	oldKernel = "6.1.0-26-amd64"
	newKernel = "6.1.0-27-amd64"
)

// bootNewKernel applies a kernel action on n (the simulated node reboots
// in-process into the new kernel) and returns the action.
func bootNewKernel(t *testing.T, n *testNode, srv *fakeServer, k plan.KernelAction) plan.Action {
	t.Helper()
	act := plan.Action{Kernel: &k}
	step := applyStep(1, act)
	step.Reboot = plan.RebootIfRequired
	step.Probes = nil
	srv.dispatch(step)
	if final, _ := srv.final(t); final.Phase != engine.PhaseVerifying || final.Gate != engine.Pass {
		t.Fatalf("apply: %s/%s %q", final.Phase, final.Gate, final.Reason)
	}
	if k := n.state.Facts(fleet.Facts{}).Kernel; k != newKernel {
		t.Fatalf("after the apply the node runs %s, want %s", k, newKernel)
	}
	return act
}

var rollbackStep = api.StepPayload{ID: "r1/n1/rollback/1", Rollout: "r1", Kind: "rollback", Attempt: 1, Reboot: plan.RebootIfRequired}

// probedRollback is rollbackStep with the plan's node probe (check-app).
func probedRollback() api.StepPayload {
	p := rollbackStep
	p.Probes = applyStep(1).Probes
	p.HealthyDeadline = plan.Duration(2 * time.Minute)
	return p
}

// stages lists the journal's action stages and reboots of step id.
func stages(t *testing.T, dir, id string) []string {
	t.Helper()
	// The agent may still be appending the step's last records (it
	// reports, then journals): wait until it is idle, so the journal read
	// holds whole lines. Every caller runs inside a synctest bubble.
	synctest.Wait()
	var out []string
	for _, r := range journalRecords(t, dir) {
		if r.Step != id {
			continue
		}
		switch r.Type {
		case recAction:
			out = append(out, r.Stage)
		case recRebooting:
			out = append(out, "rebooting")
		}
	}
	return out
}

// TestKernelFallback: the node booted the step's kernel; the rollback
// sets the boot loader to start the kernel it ran before, reboots,
// confirms the boot (new boot ID, that kernel running), then removes (or
// holds) the new kernel: the node ends on the old kernel, which is the
// default again, after one reboot of the rollback, with each point
// journaled. Then the node's probes run on the fallen-back kernel: the
// report says verified healthy, with the probes' evidence.
func TestKernelFallback(t *testing.T) {
	for _, k := range []plan.KernelAction{
		{Version: newKernel, Fallback: plan.KernelFallbackOneShot, OnRollback: plan.KernelRemove},
		{Version: newKernel, Fallback: plan.KernelFallbackDefault, OnRollback: plan.KernelRemove},
		{Version: newKernel, Fallback: plan.KernelFallbackOneShot, OnRollback: plan.KernelHold},
	} {
		t.Run(string(k.Fallback)+"-"+string(k.OnRollback), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newTestNode(t)
				srv := newFakeServer(t)
				stop, _ := start(t, n.config(t, srv))
				defer stop()
				bootNewKernel(t, n, srv, k)
				boot := n.state.BootID()
				srv.dispatch(probedRollback())
				final, seen := srv.final(t)
				if phases(seen) != "running rolled-back/pass" || !strings.Contains(final.Reason, "undid kernel "+newKernel+" (booted kernel "+oldKernel+" (boot ID "+boot+" -> ") ||
					!strings.HasSuffix(final.Reason, "; verified healthy: 1 node probes passed") {
					t.Fatalf("reports %q, reason %q", phases(seen), final.Reason)
				}
				held := "; the new kernel stays installed but held, not booted, as onRollback: hold says"
				if strings.Contains(final.Reason, held) != (k.OnRollback == plan.KernelHold) || strings.Contains(final.Reason, "restored the snapshots") == (k.OnRollback == plan.KernelHold) {
					t.Errorf("onRollback %s: reason %q", k.OnRollback, final.Reason)
				}
				if pr, _ := final.Evidence["probesAfterRollback"].(map[string]any); pr["verdict"] != "pass" {
					t.Errorf("evidence probesAfterRollback = %v", final.Evidence["probesAfterRollback"])
				}
				f := n.state.Facts(fleet.Facts{})
				if f.Kernel != oldKernel || f.RebootRequired || n.state.Reboots() != 2 || final.BootID != n.state.BootID() {
					t.Errorf("kernel %s, reboot required %v (default differs), reboots %d (want apply's and the fallback's); reported boot %s, node %s",
						f.Kernel, f.RebootRequired, n.state.Reboots(), final.BootID, n.state.BootID())
				}
				want := "fallback-boot-set rebooting fallback-confirmed rolled-back"
				if got := strings.Join(stages(t, n.dir, rollbackStep.ID), " "); got != want {
					t.Errorf("journal %q, want %q", got, want)
				}
				ev, _ := final.Evidence["actions"].([]any)
				if len(ev) != 1 || !strings.Contains(toJSON(t, ev[0]), `"fallbackConfirmed":"booted kernel `+oldKernel) {
					t.Errorf("evidence %s", toJSON(t, final.Evidence))
				}
			})
		})
	}
}

// TestKernelFallbackStillUnhealthy: the fallback boots the previous
// kernel, but the node's probes still fail on it: the rollback is
// reported done but still unhealthy (rolled back with a failing gate,
// which the server keeps as rollback-unhealthy), naming the fallback.
func TestKernelFallbackStillUnhealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		bootNewKernel(t, n, srv, plan.KernelAction{Version: newKernel, Fallback: plan.KernelFallbackOneShot, OnRollback: plan.KernelRemove})
		n.healthy.Store(false) // the damage outlives the kernel
		srv.dispatch(probedRollback())
		final, seen := srv.final(t)
		if phases(seen) != "running rolled-back/fail" ||
			!strings.HasPrefix(final.Reason, "rollback done but still unhealthy: node probes did not pass within 2m0s of the rollback: command check-app: exit status 1") ||
			!strings.Contains(final.Reason, "(undid kernel "+newKernel+" (booted kernel "+oldKernel) {
			t.Fatalf("reports %q, reason %q", phases(seen), final.Reason)
		}
		if k := n.state.Facts(fleet.Facts{}).Kernel; k != oldKernel {
			t.Errorf("node runs %s, want %s", k, oldKernel)
		}
	})
}

// TestKernelFallbackNotNeeded: the node never booted the step's kernel
// (the reboot had not happened): no fallback, the rollback restores the
// default kernel as before.
func TestKernelFallbackNotNeeded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		step := applyStep(1, plan.Action{Kernel: &plan.KernelAction{Version: newKernel}})
		step.Probes = nil // reboot: never
		srv.dispatch(step)
		srv.final(t)
		srv.dispatch(api.StepPayload{ID: "r1/n1/rollback/1", Rollout: "r1", Kind: "rollback", Attempt: 1, Reboot: plan.RebootNever})
		final, _ := srv.final(t)
		if final.Phase != engine.PhaseRolledBack || n.state.Reboots() != 0 || strings.Contains(final.Reason, "booted kernel") {
			t.Fatalf("%s %q, reboots %d", final.Phase, final.Reason, n.state.Reboots())
		}
		if got := stages(t, n.dir, "r1/n1/rollback/1"); strings.Join(got, " ") != "rolled-back" {
			t.Errorf("journal %q", got)
		}
	})
}

// ignoringLoader is the simulated driver with a boot loader that says it
// set the entry but boots the default kernel anyway (a firmware that
// ignores the one-shot entry).
type ignoringLoader struct{ *driver.Sim }

func (l ignoringLoader) SetFallbackBoot(context.Context, plan.Action, driver.Snapshot) (driver.Outcome, error) {
	return driver.Outcome{Summary: "boot entry set (ignored)", RebootRequired: true}, nil
}

// TestKernelFallbackNotConfirmed: after the fallback's reboot the node
// runs the new kernel again: the rollback fails, saying so, and leaves
// the new kernel installed (removing the running kernel is never done).
func TestKernelFallbackNotConfirmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		n.reg.Register(plan.ActionKernel, ignoringLoader{driver.NewSim(n.state)}, "debian") // the family wins over the generic sim
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		bootNewKernel(t, n, srv, plan.KernelAction{Version: newKernel})
		srv.dispatch(rollbackStep)
		final, _ := srv.final(t)
		if final.Phase != engine.PhaseFailed || !strings.Contains(final.Reason, "kernel fallback not confirmed: the node rebooted (boot ID ") ||
			!strings.Contains(final.Reason, "runs kernel "+newKernel+" again, not "+oldKernel) || !strings.Contains(final.Reason, "the new kernel was left in place") {
			t.Fatalf("%s %q", final.Phase, final.Reason)
		}
		f := n.state.Facts(fleet.Facts{})
		if f.Kernel != newKernel || f.RebootRequired || n.state.Reboots() != 2 {
			t.Errorf("kernel %s (default differs: %v), reboots %d", f.Kernel, f.RebootRequired, n.state.Reboots())
		}
		if got := strings.Join(stages(t, n.dir, rollbackStep.ID), " "); got != "fallback-boot-set rebooting rollback-failed" {
			t.Errorf("journal %q", got)
		}
	})
}

// TestKernelFallbackCrash stops the agent at each journal point of the
// fallback, as a kill would, and starts it again: the rollback ends
// rolled back, on the old kernel, with one reboot for the fallback.
// "reboot kills the agent" is a real reboot: the agent dies when it asks
// for it, and the node then boots.
func TestKernelFallbackCrash(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after func(record) bool
		kill  bool // the reboot kills the agent (then the node reboots)
	}{
		{name: "after fallback-boot-set", after: func(r record) bool { return r.Stage == stageFallbackSet }},
		{name: "after rebooting", after: func(r record) bool { return r.Type == recRebooting }},
		{name: "reboot kills the agent", kill: true},
		{name: "after fallback-confirmed", after: func(r record) bool { return r.Stage == stageFallbackConfirmed }},
		{name: "after rolled-back", after: func(r record) bool { return r.Stage == stageRolledBack }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newTestNode(t)
				srv := newFakeServer(t)
				stop, _ := start(t, n.config(t, srv))
				bootNewKernel(t, n, srv, plan.KernelAction{Version: newKernel})
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				cfg := n.config(t, srv)
				ctx, cancel := context.WithCancel(t.Context())
				var killed atomic.Bool
				if tc.kill {
					cfg.Rebooter = &killingRebooter{cancel: func() { killed.Store(true); cancel() }}
				} else {
					cfg.afterAppend = func(r record) {
						if r.Step == rollbackStep.ID && tc.after(r) {
							cancel() // the crash: the agent stops here
						}
					}
				}
				done := make(chan error, 1)
				go func() { done <- Run(ctx, cfg) }()
				srv.dispatch(rollbackStep)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if st, _ := readJournal(t, n.dir).step(rollbackStep.ID); st.finished() {
					t.Fatalf("the rollback finished before the crash")
				}
				if killed.Load() {
					n.state.Reboot(t.Context(), "the OS reboots")
				}
				srv2 := newFakeServer(t)
				stop, _ = start(t, n.config(t, srv2))
				defer stop()
				var final api.StepReport
				for final = srv2.next(t); !isFinal(final); final = srv2.next(t) {
				}
				f := n.state.Facts(fleet.Facts{})
				if final.Phase != engine.PhaseRolledBack || f.Kernel != oldKernel || f.RebootRequired || n.state.Reboots() != 2 {
					t.Errorf("%s %q; kernel %s (default differs: %v), reboots %d (want 2: the apply's and the fallback's)",
						final.Phase, final.Reason, f.Kernel, f.RebootRequired, n.state.Reboots())
				}
				got := strings.Join(stages(t, n.dir, rollbackStep.ID), " ")
				if !strings.HasPrefix(got, "fallback-boot-set rebooting") || strings.Count(got, "fallback-boot-set") != 1 || strings.Count(got, "fallback-confirmed") != 1 ||
					strings.Count(got, "rolled-back") != 1 {
					t.Errorf("journal %q: the entry set once, confirmed once, rolled back once", got)
				}
			})
		})
	}
}

// journalRecords reads every record of the journal in dir.
func journalRecords(t *testing.T, dir string) []record {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	var recs []record
	for line := range strings.SplitSeq(strings.TrimSpace(string(raw)), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("journal line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// brokenAfterBoot is the simulated driver whose kernel action fails its
// Verify once the node runs the new kernel (a kernel that boots but
// lacks what the action checks).
type brokenAfterBoot struct {
	*driver.Sim
	st *driver.SimState
}

func (b brokenAfterBoot) Verify(ctx context.Context, a plan.Action) error {
	if a.Kernel != nil && b.st.Facts(fleet.Facts{}).Kernel == a.Kernel.Version {
		return errors.New("module drover_test missing on kernel " + a.Kernel.Version)
	}
	return b.Sim.Verify(ctx, a)
}

// TestKernelFallbackInStep: the apply step's own check fails after the
// reboot into the new kernel; its in-step rollback falls back the same
// way (journaled in the apply step) and the step reports failed, rolled
// back, on the old kernel.
func TestKernelFallbackInStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		n.reg.Register(plan.ActionKernel, brokenAfterBoot{driver.NewSim(n.state), n.state}, "debian")
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		step := applyStep(1, plan.Action{Kernel: &plan.KernelAction{Version: newKernel}})
		step.Reboot = plan.RebootIfRequired
		srv.dispatch(step)
		final, _ := srv.final(t)
		if final.Phase != engine.PhaseFailed || !strings.Contains(final.Reason, "after reboot, verify failed: module drover_test missing") ||
			!strings.HasSuffix(final.Reason, "; rolled back kernel "+newKernel+"; verified healthy: 1 node probes passed") {
			t.Fatalf("%s %q", final.Phase, final.Reason)
		}
		f := n.state.Facts(fleet.Facts{})
		if f.Kernel != oldKernel || f.RebootRequired || n.state.Reboots() != 2 {
			t.Errorf("kernel %s (default differs: %v), reboots %d", f.Kernel, f.RebootRequired, n.state.Reboots())
		}
		want := "preflight snapshot applied verified rebooting fallback-boot-set rebooting fallback-confirmed rolled-back"
		if got := strings.Join(stages(t, n.dir, step.ID), " "); got != want {
			t.Errorf("journal %q, want %q (the apply's reboot, then the fallback's)", got, want)
		}
	})
}
