package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/gate/gatetest"
	"github.com/drover-dev/drover/internal/store"
)

// TestServerDowntimeNotCountedAgainstLeases: a node is dispatched a step,
// then the server is down for ten minutes of the injected clock (far past
// the lease). The next server's first tick restarts every lease from
// then: the node stays queued, not "agent silent". A lease window later
// with no sign of the agent, it does become unknown.
func TestServerDowntimeNotCountedAgainstLeases(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	cfg := testConfig(t)
	cfg.Tick = 50 * time.Millisecond
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(cfg.DataDir, "drover.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	run := func() (stop func(), base string) {
		srv, err := New(cfg, Deps{Store: st, Now: clock.Now, Registry: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		ready, done := make(chan string, 1), make(chan error, 1)
		go func() { done <- srv.Run(sctx, func(a string) { ready <- a }) }()
		return func() { cancel(); <-done }, "http://" + <-ready
	}
	now := clock.Now()
	if _, err := st.UpsertNode(ctx, store.NodeRecord{ID: "n1", Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}},
		Labels: map[string]string{"env": "prod"}, Protocol: api.ProtocolVersion, RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(cfg.Lease)}); err != nil {
		t.Fatal(err)
	}
	stop, base := run()
	c := &api.Client{Base: base, Token: "alice-token-0123456789"}
	ro, err := c.CreateRollout(ctx, "p.yaml", `apiVersion: drover.dev/v1
name: leases
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - package:
        packages: [{name: openssl, version: "3.0.16-1"}]
waves:
  - name: all
preflight:
  onFail: ignore # n1 has no agent to answer; leases are the point here
`)
	if err != nil {
		t.Fatal(err)
	}
	phase := func() engine.Phase {
		data, err := st.LoadRollout(ctx, ro.ID)
		if err != nil {
			t.Fatal(err)
		}
		return data.Nodes[0].State.Phase
	}
	gatetest.Eventually(t, 10*time.Second, "n1 dispatched", func() (bool, string) { return phase() == engine.PhaseQueued, string(phase()) })
	stop()

	clock.Add(10 * time.Minute) // the server is down
	restart := clock.Now()
	stop, _ = run()
	defer stop()
	gatetest.Eventually(t, 10*time.Second, "leases restarted by the new leader", func() (bool, string) {
		n, err := st.GetNode(ctx, "n1")
		return err == nil && !n.LeaseUntil.Before(restart.Add(cfg.Lease)), fmt.Sprintf("lease until %s, %v", n.LeaseUntil, err)
	})
	time.Sleep(10 * cfg.Tick) // ten scheduling passes at the restart's instant
	if p := phase(); p != engine.PhaseQueued {
		t.Fatalf("after the server's downtime n1 is %s: the downtime was counted against its lease", p)
	}
	clock.Add(cfg.Lease + time.Second) // a whole window with no sign of the agent
	gatetest.Eventually(t, 10*time.Second, "n1 unknown a lease after the restart", func() (bool, string) {
		return phase() == engine.PhaseUnknown, string(phase())
	})
}
