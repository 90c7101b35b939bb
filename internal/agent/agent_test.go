package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
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

// testNode is a simulated node with its state directory; it outlives agent
// restarts like a real node's disk does.
type testNode struct {
	state *driver.SimState
	reg   *driver.Registry
	dir   string
	// healthy, when set, answers the "check-app" probe command.
	healthy atomic.Bool
	// badConfig, when set, fails the "config-test" command.
	badConfig atomic.Bool
}

func newTestNode(t *testing.T) *testNode {
	st := driver.NewSimState("n1", "debian", "6.1.0-26-amd64", map[string]string{
		"openssl": "3.0.11-1~deb12u2", "telemetry-agent": "7.1.0", "nginx": "1.22.1-9",
	})
	st.Clock = SystemClock{}
	st.ApplyDelay = 30 * time.Second
	sim := driver.NewSim(st)
	reg := &driver.Registry{}
	for _, k := range []plan.ActionKind{plan.ActionPackage, plan.ActionKernel, plan.ActionLivePatch, plan.ActionServiceRestart,
		plan.ActionContainerRuntime, plan.ActionKubernetesNode, plan.ActionScript} {
		reg.Register(k, sim)
	}
	n := &testNode{state: st, reg: reg, dir: t.TempDir()}
	n.healthy.Store(true)
	return n
}

// Run implements driver.Runner for probes: "check-app" follows n.healthy,
// the rest goes to the simulated node.
func (n *testNode) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, []byte, error) {
	if name == "config-test" {
		if n.badConfig.Load() {
			msg := `nginx: [emerg] unknown directive "ssl_protocols_x" in /etc/nginx/nginx.conf:12`
			return nil, []byte(msg), &driver.ExitError{Code: 1, Stderr: msg}
		}
		return []byte("nginx: configuration file /etc/nginx/nginx.conf test is successful"), nil, nil
	}
	if name == "check-app" {
		if n.healthy.Load() {
			return []byte("ok"), nil, nil
		}
		return nil, []byte("app answers 500 on /orders"), &driver.ExitError{Code: 1, Stderr: "app answers 500 on /orders"}
	}
	return n.state.Runner(nil).Run(ctx, env, name, args...)
}

func (n *testNode) config(t *testing.T, srv http.Handler) Config {
	return Config{
		ServerURL:  "http://drover.test",
		StateDir:   n.dir,
		NodeID:     "n1",
		Token:      "secret",
		HTTPClient: &http.Client{Transport: handlerTransport{srv}},
		Labels:     map[string]string{"zone": "a"},
		Drivers:    n.reg,
		Facts: func(ctx context.Context) (fleet.Facts, error) {
			return n.state.Facts(fleet.Facts{OS: fleet.OS{Family: "debian", Name: "debian", Version: "12"}, Arch: "amd64"}), nil
		},
		Rebooter: n.state,
		Runner:   n,
		// check-app is the operator's own probe on this test node.
		AllowCommandProbes: true,
		ProbeHTTPClient:    &http.Client{Transport: n.state.Transport()},
		Logger:             slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// start runs an agent until the returned stop is called; stop returns
// Run's error.
func start(t *testing.T, cfg Config) (stop func() error, ctx context.Context) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	return func() error { cancel(); return <-done }, ctx
}

func pkg(name, version string) plan.Action {
	return plan.Action{Package: &plan.PackageAction{Operation: plan.PackageUpgrade, Rollback: plan.RollbackPreviousVersion,
		Packages: []plan.PackagePin{{Name: name, Version: version}}}}
}

func applyStep(attempt int, acts ...plan.Action) api.StepPayload {
	return api.StepPayload{
		ID: "r1/n1/apply/" + string(rune('0'+attempt)), Rollout: "r1", Kind: "apply", Attempt: attempt, Term: 1,
		Actions: acts, Reboot: plan.RebootNever,
		Probes:          []plan.Probe{{Kind: plan.ProbeCommand, Command: []string{"check-app"}, Interval: plan.Duration(10 * time.Second)}},
		MinHealthy:      plan.Duration(time.Minute),
		HealthyDeadline: plan.Duration(5 * time.Minute),
	}
}

func phases(rs []api.StepReport) string {
	var s []string
	for _, r := range rs {
		p := string(r.Phase)
		if r.Gate != "" {
			p += "/" + string(r.Gate)
		}
		s = append(s, p)
	}
	return strings.Join(s, " ")
}

func TestApplyEndToEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		srv.token = "secret"
		stop, _ := start(t, n.config(t, srv))
		step := applyStep(1, pkg("openssl", "3.0.15-1~deb12u1"))
		srv.dispatch(step)
		var all []api.StepReport
		for len(all) < 3 {
			all = append(all, srv.next(t))
		}
		// Healthy at the first probe round: no report of probing without
		// a verdict; the soak's start and its end.
		if got, want := phases(all), "running verifying/pass verifying/pass"; got != want {
			t.Fatalf("reports %q, want %q", got, want)
		}
		pass, last := all[1], all[2]
		if pass.HealthySince.IsZero() || !last.HealthySince.Equal(pass.HealthySince) || last.At.Sub(pass.HealthySince) < time.Minute {
			t.Errorf("healthy since %v, final at %v: want a minute of soak", pass.HealthySince, last.At)
		}
		if last.Evidence["actions"] == nil || last.StepID != step.ID || last.NodeID != "n1" {
			t.Errorf("final report %+v lacks evidence or ids", last)
		}
		// The healthy report splits the step's time for the server's
		// history: actions, no reboot, probes (protocol 3).
		if tm := last.Timing; tm == nil || tm.RebootSeconds != 0 || tm.ExecutionSeconds < 0 || tm.ProbeSeconds < 0 ||
			tm.ExecutionSeconds+tm.ProbeSeconds > last.HealthySince.Sub(all[0].At).Seconds()+1e-6 {
			t.Errorf("final report timing %+v (started %v, healthy %v)", tm, all[0].At, last.HealthySince)
		}
		if v, _ := n.state.Version("openssl"); v != "3.0.15-1~deb12u1" {
			t.Errorf("openssl %s after apply", v)
		}
		// The next poll carries the changed facts; polls before did not.
		synctest.Wait()
		time.Sleep(2 * DefaultHeartbeat)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(srv.registers) != 1 || srv.registers[0].Facts.Packages["openssl"] != "3.0.11-1~deb12u2" || srv.registers[0].Labels["zone"] != "a" {
			t.Errorf("registration %+v", srv.registers)
		}
		var withFacts int
		for _, p := range srv.polls {
			if p.Facts != nil {
				withFacts++
				if p.Facts.Packages["openssl"] != "3.0.15-1~deb12u1" {
					t.Errorf("poll sent stale facts")
				}
			}
		}
		if withFacts != 1 {
			t.Errorf("%d of %d polls carried facts, want exactly 1 (after the step changed them)", withFacts, len(srv.polls))
		}
	})
}

// lockErr is how a package driver reports a held lock.
type lockErr struct{ pid int }

func (e lockErr) Error() string { return "dpkg lock held by another process (pid 1234)" }
func (e lockErr) Unwrap() error { return driver.ErrLocked }

func TestFailureRollsBackInStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		n.state.FailApply = func(a plan.Action) error {
			if a.Package != nil && a.Package.Packages[0].Name == "openssl" {
				return lockErr{1234}
			}
			return nil
		}
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		srv.dispatch(applyStep(1, pkg("telemetry-agent", "7.2.0"), pkg("openssl", "3.0.15-1~deb12u1")))
		final, seen := srv.final(t)
		if got := phases(seen); got != "running failed" {
			t.Fatalf("reports %q", got)
		}
		want := "package openssl 3.0.15-1~deb12u1: dpkg lock held by another process (pid 1234); rolled back package openssl 3.0.15-1~deb12u1, package telemetry-agent 7.2.0; verified healthy: 1 node probes passed"
		if final.Reason != want {
			t.Errorf("reason\n got %s\nwant %s", final.Reason, want)
		}
		if v, _ := n.state.Version("telemetry-agent"); v != "7.1.0" {
			t.Errorf("telemetry-agent %s, want restored 7.1.0", v)
		}
		if n.state.Rollbacks() != 2 {
			t.Errorf("%d rollbacks, want 2", n.state.Rollbacks())
		}
	})
}

func TestRefusedAndMalformedSteps(t *testing.T) {
	script := plan.Action{Script: &plan.ScriptAction{Artifact: "fix-ntp"}}
	twoKinds := plan.Action{Name: "confused", Kernel: &plan.KernelAction{Version: "6.1.0-27"}, LivePatch: &plan.LivePatchAction{ID: "kpatch-1"}}
	weird := applyStep(3, pkg("openssl", "3.0.15"))
	weird.Kind = "upgrade-everything"
	tests := []struct {
		step api.StepPayload
		want string
	}{
		{applyStep(1, pkg("openssl", "3.0.15"), script), "action kind script not allowed by this agent's configuration (action 2, script fix-ntp); nothing was run"},
		{applyStep(2, twoKinds), `malformed step: action 1: action "confused" has 2 kinds (kernel and livepatch): unsupported action`},
		{weird, `malformed step: unknown step kind "upgrade-everything" (want apply or rollback)`},
	}
	for _, tt := range tests {
		t.Run(tt.step.ID, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newTestNode(t)
				srv := newFakeServer(t)
				stop, _ := start(t, n.config(t, srv))
				defer stop()
				srv.dispatch(tt.step)
				final, seen := srv.final(t)
				if len(seen) != 1 || final.Phase != engine.PhaseFailed || final.Reason != tt.want {
					t.Errorf("reports %q, reason\n got %s\nwant %s", phases(seen), final.Reason, tt.want)
				}
				if n.state.Applies() != 0 {
					t.Errorf("%d applies, want none", n.state.Applies())
				}
			})
		})
	}
}

// TestUndecodableStep: a step whose payload does not decode fails with a
// clear reason and runs nothing, without blocking the steps handed out
// with it; handed out again, its recorded result is reported again.
func TestUndecodableStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		bad := `{"id":"r1/n1/apply/7","rollout":"r1","kind":"apply","actions":"rm -rf /"}`
		srv.dispatchRaw(bad, `{"rollout":"r1","kind":"apply","actions":7}`)
		srv.dispatch(applyStep(1, pkg("openssl", "3.0.15")))
		var badFinal, goodFinal api.StepReport
		for badFinal.StepID == "" || goodFinal.StepID == "" {
			r := srv.next(t)
			switch {
			case r.StepID == "r1/n1/apply/7" && isFinal(r):
				badFinal = r
			case r.StepID == "r1/n1/apply/1" && isFinal(r):
				goodFinal = r
			}
		}
		want := "malformed step: payload does not decode (json: cannot unmarshal string into Go struct field StepPayload.actions of type []plan.Action); nothing was run"
		if badFinal.Phase != engine.PhaseFailed || badFinal.Reason != want {
			t.Errorf("undecodable step: %s %q, want failed %q", badFinal.Phase, badFinal.Reason, want)
		}
		if goodFinal.Phase != engine.PhaseVerifying || goodFinal.Gate != engine.Pass || n.state.Applies() != 1 {
			t.Errorf("step handed out with it: %s %s, %d applies", goodFinal.Phase, goodFinal.Gate, n.state.Applies())
		}
		srv.dispatchRaw(bad)
		if again := srv.next(t); again.StepID != "r1/n1/apply/7" || again.Reason != want {
			t.Errorf("handed out again: %+v", again)
		}
	})
}

// TestCrashMidStep stops the agent right after a chosen journal record, as
// a crash would, restarts it on the same state directory and checks the
// step is verified, never applied again.
func TestCrashMidStep(t *testing.T) {
	tests := []struct {
		name    string
		after   func(record) bool
		final   string
		reason  string
		applies int
		version string
	}{
		{
			name:  "after the step record",
			after: func(r record) bool { return r.Type == recStep },
			final: "interrupted", applies: 0, version: "3.0.11-1~deb12u2",
			reason: "interrupted before package openssl 3.0.15-1~deb12u1 was applied: the agent restarted (journal's last record: step at 2000-01-01T00:00:00Z); not re-run; package openssl 3.0.15-1~deb12u1: verify: sim verify: not in target state: openssl 3.0.11-1~deb12u2 -> 3.0.15-1~deb12u1; nothing had been changed",
		},
		{
			name:  "during apply",
			after: func(r record) bool { return r.Type == recAction && r.Stage == stageSnapshot },
			final: "interrupted", applies: 1, version: "3.0.11-1~deb12u2",
			reason: "interrupted while package openssl 3.0.15-1~deb12u1 was being applied: the agent restarted (journal's last record: action 1 snapshot at 2000-01-01T00:00:00Z); not re-run; package openssl 3.0.15-1~deb12u1: verify: sim verify: not in target state: openssl 3.0.11-1~deb12u2 -> 3.0.15-1~deb12u1; rolled back package openssl 3.0.15-1~deb12u1; verified healthy: 1 node probes passed",
		},
		{
			name:  "after apply",
			after: func(r record) bool { return r.Type == recAction && r.Stage == stageApplied },
			final: "verifying/pass", applies: 1, version: "3.0.15-1~deb12u1",
		},
		{
			name:  "while probing",
			after: func(r record) bool { return r.Type == recVerifying },
			final: "verifying/pass", applies: 1, version: "3.0.15-1~deb12u1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newTestNode(t)
				srv := newFakeServer(t)
				cfg := n.config(t, srv)
				crashed := make(chan struct{})
				var once atomic.Bool
				var stop func() error
				cfg.afterAppend = func(r record) {
					if tt.after(r) && once.CompareAndSwap(false, true) {
						close(crashed)
					}
				}
				// The hook only signals; the crash is a cancel racing the
				// agent, as a kill would.
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				cfg2 := cfg
				cfg2.afterAppend = func(r record) {
					cfg.afterAppend(r)
					if tt.after(r) {
						cancel()
					}
				}
				go func() { done <- Run(ctx, cfg2) }()
				srv.dispatch(applyStep(1, pkg("openssl", "3.0.15-1~deb12u1")))
				<-crashed
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				applies := n.state.Applies()
				st, _ := readJournal(t, n.dir).step("r1/n1/apply/1")
				if st.finished() {
					t.Fatalf("step finished before the crash")
				}
				// Restart: the server does not hand the step out again.
				srv2 := newFakeServer(t)
				stop, _ = start(t, n.config(t, srv2))
				defer stop()
				var final api.StepReport
				for {
					final = srv2.next(t)
					if final.Phase == "failed" || final.Phase == "interrupted" || (final.Phase == "verifying" && final.Gate != "" && final.Evidence != nil) {
						break
					}
				}
				got := string(final.Phase)
				if final.Gate != "" && final.Phase == "verifying" {
					got += "/" + string(final.Gate)
				}
				// When the step was taken depends on whether the first poll
				// came before the dispatch (else the next heartbeat takes
				// it): the record's time is not compared.
				if got != tt.final || (tt.reason != "" && recordTime.ReplaceAllString(final.Reason, "at T") != recordTime.ReplaceAllString(tt.reason, "at T")) {
					t.Errorf("final %s %q\nwant %s %q", got, final.Reason, tt.final, tt.reason)
				}
				if n.state.Applies() != tt.applies || applies != tt.applies {
					t.Errorf("applies %d before restart, %d after; want %d, never re-run", applies, n.state.Applies(), tt.applies)
				}
				if v, _ := n.state.Version("openssl"); v != tt.version {
					t.Errorf("openssl %s, want %s", v, tt.version)
				}
			})
		})
	}
}

func readJournal(t *testing.T, dir string) *journal {
	t.Helper()
	j, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.close() })
	return j
}

func TestFinishedStepIsNotExecutedAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		step := applyStep(1, pkg("openssl", "3.0.15-1~deb12u1"))
		step.Probes = nil
		srv.dispatch(step)
		first, _ := srv.final(t)
		srv.dispatch(step) // the server lost the result
		again, seen := srv.final(t)
		if len(seen) != 1 || again.Phase != first.Phase || again.Gate != first.Gate || !again.At.Equal(first.At) {
			t.Errorf("handed out again: reports %q, want the recorded %s/%s", phases(seen), first.Phase, first.Gate)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		// Also across a restart.
		stop, _ = start(t, n.config(t, srv))
		defer stop()
		srv.dispatch(step)
		again, _ = srv.final(t)
		if !again.At.Equal(first.At) || n.state.Applies() != 1 {
			t.Errorf("after restart: report at %v (first at %v), %d applies; want the recorded result and 1 apply", again.At, first.At, n.state.Applies())
		}
	})
}

// TestJournalDurability: the records later decisions depend on are
// flushed to the disk before the agent goes on; the ones resuming can do
// without are not (each fsync is milliseconds).
func TestJournalDurability(t *testing.T) {
	for _, tt := range []struct {
		rec  record
		want bool
	}{
		{record{Type: recStep}, true},
		{record{Type: recAction, Stage: stagePreflight}, false},
		{record{Type: recAction, Stage: stageSnapshot}, true},
		{record{Type: recAction, Stage: stageApplied}, false},
		{record{Type: recAction, Stage: stageVerified}, false},
		{record{Type: recAction, Stage: stageRolledBack}, true},
		{record{Type: recAction, Stage: stageRestoreErr}, true},
		{record{Type: recAction, Stage: stageUncordoning}, true},
		{record{Type: recAction, Stage: stageUncordoned}, false},
		{record{Type: recAction, Stage: stageHeld}, true},
		{record{Type: recFailing}, true},
		{record{Type: recRebooting}, true},
		{record{Type: recVerifying}, false},
		{record{Type: recResult}, true},
		{record{Type: recReported}, false},
	} {
		if got := tt.rec.durable(); got != tt.want {
			t.Errorf("%s %s: durable %v, want %v", tt.rec.Type, tt.rec.Stage, got, tt.want)
		}
	}
}

func TestTornJournal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		cfg := n.config(t, srv)
		ctx, cancel := context.WithCancel(t.Context())
		cfg.afterAppend = func(r record) {
			if r.Type == recAction && r.Stage == stageApplied {
				cancel()
			}
		}
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg) }()
		srv.dispatch(applyStep(1, pkg("openssl", "3.0.15-1~deb12u1")))
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// The power went out while the verified record was written.
		path := filepath.Join(n.dir, JournalFile)
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(`{"type":"action","step":"r1/n1/apply/1","at":"2000-01-01T00:00:30Z","sta`)
		f.Close()

		stop, _ := start(t, n.config(t, srv))
		defer stop()
		var final api.StepReport
		for final = srv.next(t); !(final.Phase == "verifying" && final.Evidence != nil && final.Gate != ""); final = srv.next(t) {
		}
		if final.Gate != engine.Pass || n.state.Applies() != 1 {
			t.Errorf("final %s/%s with %d applies, want pass with 1", final.Phase, final.Gate, n.state.Applies())
		}
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), `"sta`+"\n") || !strings.HasSuffix(string(b), "\n") {
			t.Errorf("torn record not cut from the journal")
		}
	})
}

func TestJournalReplayTornResult(t *testing.T) {
	dir := t.TempDir()
	j := readJournal(t, dir)
	p := applyStep(1, pkg("openssl", "3.0.15"))
	if err := j.append(record{Type: recStep, Step: p.ID, Payload: &p, BootID: "b1"}); err != nil {
		t.Fatal(err)
	}
	j.close()
	f, _ := os.OpenFile(filepath.Join(dir, JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("{not json at all\n")                                 // unreadable, then more: skipped
	f.WriteString(`{"type":"verifying","step":"r1/n1/apply/1"}` + "\n") // intact
	f.WriteString(`{"type":"result","step":"r1/n1/apply/1","report":{"phase":"verifying","gate":"pa`)
	f.Close()
	j2 := readJournal(t, dir)
	st, ok := j2.step(p.ID)
	if !ok || st.finished() || !st.Verifying || j2.skipped != 1 || j2.torn == 0 {
		t.Fatalf("replay: known %v finished %v verifying %v skipped %d torn %d", ok, st.finished(), st.Verifying, j2.skipped, j2.torn)
	}
}

func TestRebootInProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		step := applyStep(1, plan.Action{Kernel: &plan.KernelAction{Version: "6.1.0-27-amd64"}})
		step.Reboot = plan.RebootIfRequired
		boot := n.state.BootID()
		srv.dispatch(step)
		final, seen := srv.final(t)
		if got := phases(seen); got != "running verifying/pass verifying/pass" {
			t.Fatalf("reports %q (%s)", got, final.Reason)
		}
		if n.state.Reboots() != 1 || n.state.BootID() == boot || final.BootID != n.state.BootID() {
			t.Errorf("reboots %d, boot %s -> %s, reported %s", n.state.Reboots(), boot, n.state.BootID(), final.BootID)
		}
		if f := n.state.Facts(fleet.Facts{}); f.Kernel != "6.1.0-27-amd64" {
			t.Errorf("running kernel %s after reboot", f.Kernel)
		}
	})
}

// killingRebooter asks for a reboot the way a real one does: the agent is
// killed (its context cancelled) before the boot ID changes.
type killingRebooter struct {
	cancel context.CancelFunc
	asked  atomic.Int32
}

func (r *killingRebooter) Reboot(ctx context.Context, reason string) error {
	r.asked.Add(1)
	r.cancel()
	return nil
}

func TestRebootKillsAgentAndResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		cfg := n.config(t, srv)
		ctx, cancel := context.WithCancel(t.Context())
		rb := &killingRebooter{cancel: cancel}
		cfg.Rebooter = rb
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg) }()
		step := applyStep(1, plan.Action{Kernel: &plan.KernelAction{Version: "6.1.0-27-amd64"}})
		step.Reboot = plan.RebootAlways
		srv.dispatch(step)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if rb.asked.Load() != 1 {
			t.Fatalf("reboot asked %d times", rb.asked.Load())
		}
		n.state.Reboot(t.Context(), "the OS reboots")
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		var final api.StepReport
		for final = srv.next(t); !isFinal(final); final = srv.next(t) {
		}
		if final.Phase != engine.PhaseVerifying || final.Gate != engine.Pass || n.state.Applies() != 1 || n.state.Reboots() != 1 {
			t.Errorf("final %s/%s %q; applies %d reboots %d; want pass, 1, 1", final.Phase, final.Gate, final.Reason, n.state.Applies(), n.state.Reboots())
		}
	})
}

func TestSoakFailureAndDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		// The probe asks for its output and the agent allows it: the
		// reasons carry the probe's stderr.
		cfg := n.config(t, srv)
		cfg.AllowProbeOutput = true
		stop, _ := start(t, cfg)
		defer stop()
		withOutput := func(p api.StepPayload) api.StepPayload {
			p.Probes[0].IncludeOutput = true
			return p
		}
		srv.dispatch(withOutput(applyStep(1, pkg("openssl", "3.0.15-1~deb12u1"))))
		for r := srv.next(t); r.Gate != engine.Pass; r = srv.next(t) {
		}
		time.Sleep(15 * time.Second) // between the probes at +10s and +20s
		n.healthy.Store(false)
		final := srv.next(t)
		want := "command check-app: exit status 1, want 0: app answers 500 on /orders (after 1 try) (healthy since 2000-01-01T00:00:30Z, failed after 20s of the 1m0s soak)"
		if final.Phase != engine.PhaseVerifying || final.Gate != engine.Fail || final.Reason != want {
			t.Errorf("final %s/%s %q\nwant verifying/fail %q", final.Phase, final.Gate, final.Reason, want)
		}
		// A node that never gets healthy fails at the deadline.
		srv.dispatch(withOutput(applyStep(2, pkg("nginx", "1.22.1-9+deb12u1"))))
		final, _ = srv.final(t)
		want = "node probes did not pass within 5m0s: command check-app: exit status 1, want 0: app answers 500 on /orders (after 1 try)"
		if final.Phase != engine.PhaseFailed || final.Reason != want {
			t.Errorf("final %s %q\nwant failed %q", final.Phase, final.Reason, want)
		}
	})
}

// TestProbingReported: a node not healthy at the first probe round
// reports verifying without a verdict, once, while it is probed; then the
// verdict.
func TestProbingReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		n.healthy.Store(false)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		step := applyStep(1, pkg("openssl", "3.0.15-1~deb12u1"))
		step.MinHealthy = 0
		srv.dispatch(step)
		var all []api.StepReport
		for len(all) < 2 {
			all = append(all, srv.next(t))
		}
		time.Sleep(35 * time.Second) // three more failed rounds, 10 s apart
		n.healthy.Store(true)
		final, seen := srv.final(t)
		if got, want := phases(append(all, seen...)), "running verifying verifying/pass"; got != want || final.Gate != engine.Pass {
			t.Fatalf("reports %q, want %q", got, want)
		}
		if !final.HealthySince.After(all[1].At) {
			t.Errorf("healthy since %v, probing reported at %v", final.HealthySince, all[1].At)
		}
	})
}

func TestRollbackStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		step := applyStep(1, pkg("telemetry-agent", "7.2.0"), plan.Action{LivePatch: &plan.LivePatchAction{ID: "kpatch-cve-2026-1"}})
		step.Probes = nil
		srv.dispatch(step)
		srv.final(t)
		srv.dispatch(api.StepPayload{ID: "r1/n1/rollback/1", Rollout: "r1", Kind: "rollback", Attempt: 1, Reboot: plan.RebootIfRequired})
		final, seen := srv.final(t)
		want := "undid livepatch kpatch-cve-2026-1, package telemetry-agent 7.2.0: restored the snapshots taken before r1/n1/apply/1; not verified: the plan has no node probes"
		if phases(seen) != "running rolled-back" || final.Reason != want {
			t.Errorf("reports %q, reason %q\nwant %q", phases(seen), final.Reason, want)
		}
		if v, _ := n.state.Version("telemetry-agent"); v != "7.1.0" {
			t.Errorf("telemetry-agent %s after rollback", v)
		}
		// A rollback of a rollout this node never applied.
		srv.dispatch(api.StepPayload{ID: "r9/n1/rollback/1", Rollout: "r9", Kind: "rollback", Attempt: 1})
		final, _ = srv.final(t)
		if final.Phase != engine.PhaseFailed || !strings.HasPrefix(final.Reason, "rollback failed: no apply step of rollout r9") {
			t.Errorf("unknown rollout: %s %q", final.Phase, final.Reason)
		}
	})
}

// TestRollbackVerified: after a rollback the node's probes run again
// (the plan's node probes, as after the apply): a node healthy again is
// reported rolled back with a passing gate; one still unhealthy at the
// healthy deadline with a failing gate, the probe's reason, and the
// evidence (the probes' verdict, the apply's change record).
func TestRollbackVerified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		cfg := n.config(t, srv)
		cfg.AllowProbeOutput = true
		stop, _ := start(t, cfg)
		defer stop()
		rollback := func(rollout string, probes []plan.Probe) api.StepPayload {
			return api.StepPayload{ID: rollout + "/n1/rollback/1", Rollout: rollout, Kind: "rollback", Attempt: 1, Reboot: plan.RebootNever,
				Probes: probes, HealthyDeadline: plan.Duration(2 * time.Minute)}
		}
		step := applyStep(1, pkg("telemetry-agent", "7.2.0"))
		step.MinHealthy = 0
		srv.dispatch(step)
		srv.final(t)
		srv.dispatch(rollback("r1", step.Probes))
		final, _ := srv.final(t)
		want := "undid package telemetry-agent 7.2.0: restored the snapshots taken before r1/n1/apply/1; verified healthy: 1 node probes passed"
		if final.Phase != engine.PhaseRolledBack || final.Gate != engine.Pass || final.Reason != want {
			t.Errorf("healthy: %s/%s %q\nwant rolled-back/pass %q", final.Phase, final.Gate, final.Reason, want)
		}

		step = applyStep(1, pkg("nginx", "1.22.1-9+deb12u1"))
		step.ID, step.Rollout, step.MinHealthy = "r2/n1/apply/1", "r2", 0
		step.Probes[0].IncludeOutput = true
		srv.dispatch(step)
		srv.final(t)
		n.healthy.Store(false) // the rollback does not cure it
		t0 := time.Now()
		srv.dispatch(rollback("r2", step.Probes))
		final, _ = srv.final(t)
		want = "rollback done but still unhealthy: node probes did not pass within 2m0s of the rollback: " +
			"command check-app: exit status 1, want 0: app answers 500 on /orders (after 1 try) " +
			"(undid package nginx 1.22.1-9+deb12u1: restored the snapshots taken before r2/n1/apply/1)"
		if final.Phase != engine.PhaseRolledBack || final.Gate != engine.Fail || final.Reason != want {
			t.Errorf("unhealthy: %s/%s %q\nwant rolled-back/fail %q", final.Phase, final.Gate, final.Reason, want)
		}
		if took := time.Since(t0); took < 2*time.Minute || took > 3*time.Minute+30*time.Second {
			t.Errorf("rollback took %s, want the 30s restore and probes up to the 2m healthy deadline", took)
		}
		if v, _ := n.state.Version("nginx"); v != "1.22.1-9" {
			t.Errorf("nginx %s after the rollback, want 1.22.1-9", v)
		}
		pr, _ := final.Evidence["probesAfterRollback"].(map[string]any)
		if pr["verdict"] != "fail" || !strings.Contains(pr["reason"].(string), "app answers 500") {
			t.Errorf("evidence probesAfterRollback = %v", pr)
		}
		acts, _ := final.Evidence["actions"].([]any)
		if len(acts) != 1 {
			t.Fatalf("evidence actions = %v, want one", acts)
		}
		if a, _ := acts[0].(map[string]any); a["change"] == nil || a["rollback"] == nil {
			t.Errorf("evidence actions = %v, want the apply's change record with the rollback's", final.Evidence["actions"])
		}
	})
}

func TestRetriesThenProtocolRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		srv.failPolls = 4
		stop, _ := start(t, n.config(t, srv))
		step := applyStep(1, pkg("openssl", "3.0.15-1~deb12u1"))
		step.Probes = nil
		srv.dispatch(step)
		t0 := time.Now()
		srv.final(t)
		// 4 failed polls: backoff 1s, 2s, 4s, 8s, each jittered to [d/2, d).
		if took := time.Since(t0); took < 7500*time.Millisecond || took >= 15*time.Second+time.Minute {
			t.Errorf("took %s to get through 4 failed polls", took)
		}
		stop()
	})
	// Protocol refusal over a real socket: Run stops with a clear error.
	srv := newFakeServer(t)
	srv.minProto = api.ProtocolVersion + 1
	hs := httptest.NewServer(srv)
	defer hs.Close()
	n := newTestNode(t)
	cfg := n.config(t, srv)
	cfg.ServerURL, cfg.HTTPClient = hs.URL, hs.Client()
	err := Run(t.Context(), cfg)
	if !errors.Is(err, ErrProtocolUnsupported) || !strings.Contains(err.Error(), "protocol_unsupported") {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("protocol refusal: %v", err)
}

// TestOverRealHTTP runs one step through a real HTTP server and client,
// with the real clock and short intervals.
func TestOverRealHTTP(t *testing.T) {
	n := newTestNode(t)
	n.state.ApplyDelay = 0
	srv := newFakeServer(t)
	srv.token = "secret"
	srv.hold = time.Second
	hs := httptest.NewServer(srv)
	defer hs.Close()
	cfg := n.config(t, srv)
	cfg.ServerURL, cfg.HTTPClient, cfg.Heartbeat = hs.URL, hs.Client(), 10*time.Millisecond
	stop, _ := start(t, cfg)
	defer stop()
	step := applyStep(1, pkg("openssl", "3.0.15-1~deb12u1"))
	step.MinHealthy = 0
	srv.dispatch(step)
	final, seen := srv.final(t)
	// No soak, and done within the progress reports' coalescing time:
	// the one verdict is the only report.
	if phases(seen) != "verifying/pass" || final.Gate != engine.Pass {
		t.Fatalf("reports %q", phases(seen))
	}
}

// TestProgressSender: progress reports go out in order, in the
// background, each after waiting progressCoalesce for a newer one; one
// still unsent when a newer one comes is dropped; drain drops the unsent
// one and waits for the one being sent.
func TestProgressSender(t *testing.T) {
	p := progressSender{clock: SystemClock{}}
	p.idle.L = &p.mu
	started, release := make(chan string), make(chan struct{})
	var mu sync.Mutex
	var sent []string
	send := func(_ context.Context, rep api.StepReport) {
		started <- rep.Reason
		<-release
		mu.Lock()
		sent = append(sent, rep.Reason)
		mu.Unlock()
	}
	ctx := context.Background()
	want := func(r string) {
		t.Helper()
		if got := <-started; got != r {
			t.Fatalf("sending %q, want %q", got, r)
		}
	}
	p.post(ctx, api.StepReport{Reason: "running"}, send) // replaced within the coalescing time: never sent
	p.post(ctx, api.StepReport{Reason: "a"}, send)
	want("a")
	p.post(ctx, api.StepReport{Reason: "b"}, send) // replaced by c before it is sent
	p.post(ctx, api.StepReport{Reason: "c"}, send)
	release <- struct{}{}
	want("c")
	release <- struct{}{}
	p.post(ctx, api.StepReport{Reason: "d"}, send)
	want("d")
	p.post(ctx, api.StepReport{Reason: "e"}, send) // dropped by drain: the final report supersedes it
	done := make(chan struct{})
	go func() { p.drain(); close(done) }()
	select {
	case <-done:
		t.Fatal("drain returned while a report was being sent")
	case <-time.After(50 * time.Millisecond):
	}
	release <- struct{}{}
	<-done
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(sent, " "); got != "a c d" {
		t.Fatalf("sent %q, want \"a c d\"", got)
	}
}

// deferringSim is the simulated driver with its service restarts held
// back on request, as apt's policy-rc.d does: ApplyDeferred lists
// "nginx.service restart", RunDeferred records what it runs.
type deferringSim struct {
	driver.Driver
	mu  sync.Mutex
	ran []string
}

func (d *deferringSim) ApplyDeferred(ctx context.Context, a plan.Action) (driver.Outcome, error) {
	out, err := d.Driver.Apply(ctx, a)
	out.Deferred = []string{"nginx.service restart"}
	return out, err
}

func (d *deferringSim) RunDeferred(_ context.Context, _ plan.Action, deferred []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ran = append(d.ran, deferred...)
	return nil
}

func (d *deferringSim) VerifyRollback(ctx context.Context, a plan.Action, s driver.Snapshot) error {
	return d.Driver.(rollbackVerifier).VerifyRollback(ctx, a, s)
}

func (d *deferringSim) restarts() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.ran...)
}

// TestPreRestartCheck: an action's pre-restart check runs after the
// package changed, with its service restarts held back: passing, the
// restarts run; failing, the step rolls back before any service
// restarted on the new version, and says why (the check's output, the
// agent allowing it). The check is a command probe: an agent that does
// not allow them refuses the step.
func TestPreRestartCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		ds := &deferringSim{Driver: driver.NewSim(n.state)}
		n.reg = &driver.Registry{}
		n.reg.Register(plan.ActionPackage, ds)
		srv := newFakeServer(t)
		cfg := n.config(t, srv)
		cfg.AllowProbeOutput = true
		stop, _ := start(t, cfg)
		defer stop()
		checked := func(attempt int, version string) api.StepPayload {
			act := pkg("nginx", version)
			act.PreRestartCheck = &plan.RestartCheck{Command: []string{"config-test"}}
			step := applyStep(attempt, act)
			step.MinHealthy = 0
			return step
		}

		srv.dispatch(checked(1, "1.22.1-9+deb12u1"))
		if final, _ := srv.final(t); final.Gate != engine.Pass {
			t.Fatalf("good config: %s/%s %q", final.Phase, final.Gate, final.Reason)
		}
		if got := strings.Join(ds.restarts(), ","); got != "nginx.service restart" {
			t.Errorf("restarts after a passing check: %q, want the held-back nginx.service restart", got)
		}
		if st, _ := readJournal(t, n.dir).step("r1/n1/apply/1"); st.Actions[0] == nil || !st.Actions[0].Restarted {
			t.Error("journal: restarted not recorded")
		}

		n.badConfig.Store(true)
		srv.dispatch(checked(2, "1.22.1-9+deb12u2"))
		final, _ := srv.final(t)
		want := "package nginx 1.22.1-9+deb12u2: pre-restart check failed, so no service restarted on the change: pre-restart check: command config-test: exit status 1, want 0: " +
			`nginx: [emerg] unknown directive "ssl_protocols_x" in /etc/nginx/nginx.conf:12 (after 1 try); rolled back package nginx 1.22.1-9+deb12u2; verified healthy: 1 node probes passed`
		if final.Phase != engine.PhaseFailed || final.Reason != want {
			t.Errorf("bad config: %s %q\nwant failed %q", final.Phase, final.Reason, want)
		}
		if got := len(ds.restarts()); got != 1 {
			t.Errorf("%d restarts after a failing check, want none more", got-1)
		}
		if v, _ := n.state.Version("nginx"); v != "1.22.1-9+deb12u1" {
			t.Errorf("nginx %s, want 1.22.1-9+deb12u1 restored", v)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		cfg := n.config(t, srv)
		cfg.AllowCommandProbes = false
		stop, _ := start(t, cfg)
		defer stop()
		act := pkg("nginx", "1.22.1-9+deb12u1")
		act.PreRestartCheck = &plan.RestartCheck{Command: []string{"config-test"}}
		step := applyStep(1, act)
		step.Probes = nil
		srv.dispatch(step)
		final, _ := srv.final(t)
		want := "pre-restart check of action 1 refused by this agent's configuration: command probe config-test: the agent does not allow command probes (--allow-command-probes); nothing was run"
		if final.Phase != engine.PhaseFailed || final.Reason != want {
			t.Errorf("not allowed: %s %q\nwant failed %q", final.Phase, final.Reason, want)
		}
		// A signed check needs an agent that verifies artifacts.
		act.PreRestartCheck = &plan.RestartCheck{Artifact: "check-nginx", Args: []string{"-t"}}
		step = applyStep(2, act)
		step.Probes = nil
		srv.dispatch(step)
		final, _ = srv.final(t)
		want = "pre-restart check of action 1 refused by this agent's configuration: command probe runs signed artifact check-nginx and the agent verifies none (--artifact-root); nothing was run"
		if final.Phase != engine.PhaseFailed || final.Reason != want {
			t.Errorf("signed check, no verifier: %s %q\nwant failed %q", final.Phase, final.Reason, want)
		}
		if v, _ := n.state.Version("nginx"); v != "1.22.1-9" {
			t.Errorf("nginx %s: changed by a refused step", v)
		}
	})
}

// TestPackageChangedByHandReportedAtNextPoll: with a PackageStamp, a
// package changed by hand between steps is in the facts of the next
// poll (the server detects drift from them), not 5 minutes later; an
// unchanged stamp sends no facts.
func TestPackageChangedByHandReportedAtNextPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		srv.token = "secret"
		cfg := n.config(t, srv)
		var stamp atomic.Int64
		cfg.PackageStamp = func() string { return strconv.FormatInt(stamp.Load(), 10) }
		stop, _ := start(t, cfg)
		synctest.Wait()
		time.Sleep(3 * DefaultHeartbeat)
		synctest.Wait()
		withFacts := func() []api.PollRequest {
			srv.mu.Lock()
			defer srv.mu.Unlock()
			var out []api.PollRequest
			for _, p := range srv.polls {
				if p.Facts != nil {
					out = append(out, p)
				}
			}
			return out
		}
		if got := withFacts(); len(got) != 0 {
			t.Fatalf("%d polls carried facts while nothing changed", len(got))
		}
		n.state.SetPackage("curl", "7.88.1-10+deb12u8") // apt-get install curl, by hand
		stamp.Add(1)
		time.Sleep(2 * DefaultHeartbeat)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		got := withFacts()
		if len(got) != 1 || got[0].Facts.Packages["curl"] != "7.88.1-10+deb12u8" {
			t.Fatalf("polls with facts after the change by hand: %d (%+v), want 1 carrying curl", len(got), got)
		}
	})
}

// recordTime is a journal record's time in a reason.
var recordTime = regexp.MustCompile(`at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
