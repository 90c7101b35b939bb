package bench_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/bench"
	"github.com/drover-dev/drover/internal/store/storetest"
)

// TestAgentsThreeServersKill runs the many-agents benchmark small: 60
// agents over three servers sharing a real PostgreSQL, then kills the
// leader under REST reads. It checks the agents spread over all three,
// the kill happened, a survivor took the lead, every read succeeded
// (retried on another server where needed) and every agent polls a
// survivor at the end; never how fast.
func TestAgentsThreeServersKill(t *testing.T) {
	dsn := storetest.NewPostgres(t).CreateDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	defer func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "server*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, b[max(0, len(b)-4000):])
			}
		}
	}()
	res, err := bench.RunAgents(ctx, bench.AgentsConfig{Drover: self(t), WorkDir: dir, Agents: 60, Heartbeat: 2 * time.Second,
		Duration: 3 * time.Second, Servers: 3, Store: dsn, KillWindow: 9 * time.Second, APIWorkers: 3,
		APIPause: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	t.Logf("kill %+v", *res.Kill)
	if res.Kill.Error != "" || res.APIError != "" {
		t.Fatalf("kill phase: %s; REST phase: %s", res.Kill.Error, res.APIError)
	}
	if res.Store != "postgres" || len(res.Servers) != 3 {
		t.Fatalf("store %q, %d server stats; want postgres, 3", res.Store, len(res.Servers))
	}
	leaders := 0
	for i, s := range res.Servers {
		if s.Registered != 20 || s.Polling < 1 {
			t.Errorf("server %d: %d registered, %d polling; want 20 and some", i, s.Registered, s.Polling)
		}
		if s.Leader {
			leaders++
		}
	}
	if leaders != 1 || res.Polling < 55 || res.PollErrors != 0 {
		t.Errorf("%d leaders, %d polling, %d poll errors; want 1, about 60, 0", leaders, res.Polling, res.PollErrors)
	}
	k := res.Kill
	if !k.KilledLeader || !res.Servers[k.Killed].Leader || k.NewLeader < 0 || k.NewLeader == k.Killed {
		t.Errorf("killed %d (leader %v), new leader %d", k.Killed, k.KilledLeader, k.NewLeader)
	}
	if len(k.Survivors) != 2 || k.AgentsMoved < 15 || k.PollingAfter < 55 {
		t.Errorf("%d survivors, %d agents moved, %d polling after; want 2, the killed server's 20, about 60",
			len(k.Survivors), k.AgentsMoved, k.PollingAfter)
	}
	for _, p := range []bench.PhaseStat{k.Before, k.During, k.After} {
		if p.Requests == 0 || p.Errors != 0 {
			t.Errorf("REST phase %+v: want requests and no errors", p)
		}
	}
}

// TestAgentsHTTP2: with HTTP2 the agents' requests go over
// prior-knowledge HTTP/2 to a server serving it, and every agent polls.
func TestAgentsHTTP2(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := bench.RunAgents(ctx, bench.AgentsConfig{Drover: self(t), Agents: 300, Heartbeat: time.Second,
		Duration: 2 * time.Second, HTTP2: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Polling < 290 || res.PollErrors != 0 || res.HTTP2Responses < 600 {
		t.Errorf("%d polling, %d poll errors, %d HTTP/2 responses; want about 300, 0, every registration and poll",
			res.Polling, res.PollErrors, res.HTTP2Responses)
	}
}
