package agent

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/plan"
)

// hungDriver is the simulated driver with an Apply that changes the node
// and then hangs until its context ends, as an apt-get stuck on a
// maintainer script's prompt does; with hangRollback its Rollback hangs
// the same way, before restoring anything.
type hungDriver struct {
	*driver.Sim
	hangRollback bool
	applies      atomic.Int32
}

func (d *hungDriver) Apply(ctx context.Context, a plan.Action) (driver.Outcome, error) {
	d.applies.Add(1)
	if _, err := d.Sim.Apply(ctx, a); err != nil {
		return driver.Outcome{}, err
	}
	<-ctx.Done()
	return driver.Outcome{}, ctx.Err()
}

func (d *hungDriver) Rollback(ctx context.Context, a plan.Action, s driver.Snapshot) (driver.Outcome, error) {
	if d.hangRollback {
		<-ctx.Done()
		return driver.Outcome{}, ctx.Err()
	}
	return d.Sim.Rollback(ctx, a, s)
}

func hang(n *testNode, rollbackToo bool) *hungDriver {
	d := &hungDriver{Sim: driver.NewSim(n.state), hangRollback: rollbackToo}
	n.reg.Register(plan.ActionPackage, d, "debian") // before the generic sim
	return d
}

// TestHungDriverTimesOut: a driver call that hangs fails the step once
// the plan's change.timeout has passed, with a reason that says which
// call of which driver; the change is rolled back and the node probed,
// as for any failure. The failed report is what frees the node's slot on
// the server (the engine's rules; the chaos campaign checks them).
func TestHungDriverTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		d := hang(n, false)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		step := applyStep(1, pkg("openssl", "3.0.15-1~deb12u1"))
		step.Timeout = plan.Duration(2 * time.Minute)
		began := time.Now()
		srv.dispatch(step)
		final, seen := srv.final(t)
		if got := phases(seen); got != "running failed" {
			t.Fatalf("reports %q", got)
		}
		want := "package openssl 3.0.15-1~deb12u1: apply timed out after 2m (driver sim); rolled back package openssl 3.0.15-1~deb12u1; verified healthy: 1 node probes passed"
		if final.Reason != want {
			t.Errorf("reason\n got %s\nwant %s", final.Reason, want)
		}
		// Reported within the bound: the timeout, the rollback and the
		// probes after it (the sim's apply takes 30s, its rollback 30s).
		if took := final.At.Sub(began); took < 2*time.Minute || took > 4*time.Minute {
			t.Errorf("failed reported %s after dispatch, want 2m timeout plus the rollback", took)
		}
		if v, _ := n.state.Version("openssl"); v != "3.0.11-1~deb12u2" {
			t.Errorf("openssl %s, want restored 3.0.11-1~deb12u2", v)
		}
		if d.applies.Load() != 1 || n.state.Rollbacks() != 1 {
			t.Errorf("%d applies, %d rollbacks; want 1 and 1", d.applies.Load(), n.state.Rollbacks())
		}
		st, _ := readJournal(t, n.dir).step(step.ID)
		if !strings.Contains(st.Failing, "apply timed out after 2m") {
			t.Errorf("journal's failing record %q does not say the apply timed out", st.Failing)
		}
	})
}

// TestHungRollbackTimesOut: the in-step rollback is bounded by the same
// timeout, and one that times out is a failed rollback.
func TestHungRollbackTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		hang(n, true)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		step := applyStep(1, pkg("openssl", "3.0.15-1~deb12u1"))
		step.Timeout = plan.Duration(time.Minute)
		began := time.Now()
		srv.dispatch(step)
		final, _ := srv.final(t)
		want := "package openssl 3.0.15-1~deb12u1: apply timed out after 1m (driver sim); in-step rollback FAILED: package openssl 3.0.15-1~deb12u1: rollback timed out after 1m (driver sim)"
		if final.Phase != "failed" || final.Reason != want {
			t.Errorf("final %s %q\nwant failed %q", final.Phase, final.Reason, want)
		}
		if took := final.At.Sub(began); took != 2*time.Minute {
			t.Errorf("failed reported %s after dispatch, want 2m (1m apply + 1m rollback)", took)
		}
	})
}

// TestOlderPayloadUsesDefaultTimeout: a payload without a timeout (an
// older server) is bounded by plan.DefaultChangeTimeout.
func TestOlderPayloadUsesDefaultTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		hang(n, false)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		// Sent as an older server's JSON: no "timeout" key at all.
		srv.dispatchRaw(`{"id":"r1/n1/apply/1","rollout":"r1","kind":"apply","attempt":1,"term":1,"reboot":"never",` +
			`"actions":[{"package":{"operation":"upgrade","rollback":"previous-version","packages":[{"name":"openssl","version":"3.0.15-1~deb12u1"}]}}]}`)
		began := time.Now()
		final, _ := srv.final(t)
		if !strings.HasPrefix(final.Reason, "package openssl 3.0.15-1~deb12u1: apply timed out after 30m (driver sim); rolled back") {
			t.Errorf("reason %q", final.Reason)
		}
		if took := final.At.Sub(began); took < 30*time.Minute || took > 32*time.Minute {
			t.Errorf("failed reported %s after dispatch, want the 30m default", took)
		}
	})
}

// TestRestartDuringTimedOutRollback: the agent stops right after it
// journaled the timeout; the next start resumes the rollback with the
// recorded reason and never applies the change again.
func TestRestartDuringTimedOutRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		d := hang(n, false)
		srv := newFakeServer(t)
		cfg := n.config(t, srv)
		ctx, cancel := context.WithCancel(t.Context())
		cfg.afterAppend = func(r record) {
			if r.Type == recFailing {
				cancel()
			}
		}
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg) }()
		step := applyStep(1, pkg("openssl", "3.0.15-1~deb12u1"))
		step.Timeout = plan.Duration(2 * time.Minute)
		srv.dispatch(step)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if st, _ := readJournal(t, n.dir).step(step.ID); st.finished() || !strings.Contains(st.Failing, "apply timed out") {
			t.Fatalf("journal before restart: finished %v, failing %q", st.finished(), st.Failing)
		}
		srv2 := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv2))
		defer stop()
		var final api.StepReport
		for final = srv2.next(t); !isFinal(final); final = srv2.next(t) {
		}
		want := "package openssl 3.0.15-1~deb12u1: apply timed out after 2m (driver sim) (rollback resumed after the agent restarted); rolled back package openssl 3.0.15-1~deb12u1; verified healthy: 1 node probes passed"
		if final.Phase != "failed" || final.Reason != want {
			t.Errorf("final %s %q\nwant failed %q", final.Phase, final.Reason, want)
		}
		if d.applies.Load() != 1 {
			t.Errorf("%d applies, want 1: a timed-out step is not applied again", d.applies.Load())
		}
		if v, _ := n.state.Version("openssl"); v != "3.0.11-1~deb12u2" {
			t.Errorf("openssl %s, want restored", v)
		}
	})
}
