package agent

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/drover-dev/drover/internal/api"
)

// A step that upgrades the agent's own package replaces its program on
// disk while it runs: the agent finishes the step, the soak included,
// reports it, and only then returns ErrReplaced (to re-execute the new
// program). The step is never cut short.
func TestReplacedDuringStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		srv.token = "secret"
		var replaced, asked atomic.Bool
		cfg := n.config(t, srv)
		cfg.Replaced = func() bool { asked.Store(true); return replaced.Load() }
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg) }()
		synctest.Wait()
		replaced.Store(true) // dpkg unpacked the new drover-agent
		srv.dispatch(applyStep(1, pkg("openssl", "3.0.15-1~deb12u1")))
		var all []api.StepReport
		for len(all) < 3 {
			select {
			case err := <-done:
				t.Fatalf("Run returned %v before the step's final report (%d reports)", err, len(all))
			default:
			}
			all = append(all, srv.next(t))
		}
		if got, want := phases(all), "running verifying/pass verifying/pass"; got != want {
			t.Fatalf("reports %q, want %q", got, want)
		}
		select {
		case err := <-done:
			if !errors.Is(err, ErrReplaced) {
				t.Fatalf("Run: %v, want ErrReplaced", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("Run did not return after the step although the program was replaced")
		}
		if v, _ := n.state.Version("openssl"); v != "3.0.15-1~deb12u1" {
			t.Errorf("openssl %s", v)
		}
		// The next start finds the step reported and runs nothing again.
		j, err := openJournal(n.dir)
		if err != nil {
			t.Fatal(err)
		}
		defer j.close()
		for _, st := range j.all() {
			if !st.finished() || !st.Reported {
				t.Errorf("step %s finished %v reported %v", st.ID, st.finished(), st.Reported)
			}
		}
	})
}

// An idle agent looks every ReplacedCheck; an agent whose program is not
// replaced keeps running.
func TestReplacedWhileIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		srv.token = "secret"
		var replaced atomic.Bool
		cfg := n.config(t, srv)
		cfg.Replaced = replaced.Load
		cfg.ReplacedCheck = 10 * time.Second
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg) }()
		time.Sleep(time.Minute)
		select {
		case err := <-done:
			t.Fatalf("Run returned %v although nothing was replaced", err)
		default:
		}
		replaced.Store(true)
		start := time.Now()
		select {
		case err := <-done:
			if !errors.Is(err, ErrReplaced) {
				t.Fatalf("Run: %v, want ErrReplaced", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("noticed after %s, want within ReplacedCheck (10s)", d)
			}
		case <-time.After(time.Minute):
			t.Fatal("idle agent did not notice its replaced program")
		}
	})
}
