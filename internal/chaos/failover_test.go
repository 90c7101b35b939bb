package chaos

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store/storetest"
)

// TestLeaderFailoverPostgres runs three `drover server` processes on one
// PostgreSQL, agents spread over all three, and SIGKILLs the leader twice
// during a rollout (the killed server is restarted as a follower, so that
// its agents come back). Another server must take over within 15s, the
// rollout must complete, and no step may be dispatched or applied twice.
func TestLeaderFailoverPostgres(t *testing.T) {
	pg := storetest.NewPostgres(t)
	bin := buildDrover(t)
	var takeovers []time.Duration
	for run := range 3 {
		t.Run(fmt.Sprintf("run%d", run+1), func(t *testing.T) {
			takeovers = append(takeovers, runFailover(t, bin, pg.CreateDB(t))...)
		})
	}
	sorted := slices.Clone(takeovers)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	if len(sorted) > 0 {
		t.Logf("takeover after SIGKILL of the leader, %d kills: min %s, median %s, max %s (all: %v)",
			len(sorted), sorted[0], sorted[len(sorted)/2], sorted[len(sorted)-1], takeovers)
	}
}

// runFailover runs one rollout across three servers, killing the leader
// when the rollout is a third and again two thirds done, and returns the
// measured takeover times.
func runFailover(t *testing.T, bin string, dsn string) []time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	dir := t.TempDir()
	servers := make([]*serverProc, 3)
	for i := range servers {
		cfg := serverConfig{Listen: freePort(t), Database: dsn, ServerID: fmt.Sprintf("pg-%d", i),
			DataDir: filepath.Join(dir, fmt.Sprintf("pg-%d", i)), AuditKey: filepath.Join(dir, "audit.key"),
			Lease: 4 * time.Second, PollWait: time.Second, Tick: 100 * time.Millisecond}
		servers[i] = newServerProc(t, bin, filepath.Join(dir), cfg)
		if err := servers[i].start(""); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // the first server migrates the schema and leads
			if _, err := waitLeader(servers[:1], nil, 20*time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	f := newSimFleet(t, dir, 12, 250*time.Millisecond, nil, func(i int) string { return servers[i%3].url() })
	f.startAll()
	c := servers[1].client()
	if err := waitOnline(ctx, c, len(f.nodes)); err != nil {
		t.Fatal(err)
	}
	ro, err := c.CreateRollout(ctx, "chaos.yaml", nodePlan("20s"))
	if err != nil {
		t.Fatalf("create rollout: %v", err)
	}
	var took []time.Duration
	for _, at := range []int{4, 8} {
		if err := waitSucceeded(ctx, servers, ro.ID, at, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		old, err := waitLeader(servers, nil, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		old.kill()
		next, err := waitLeader(servers, old, 15*time.Second)
		if err != nil {
			t.Fatalf("after SIGKILL of leader %s: %v", old.cfg.ServerID, err)
		}
		d := time.Since(killed)
		took = append(took, d)
		elect, err := lastElection(ctx, next.client())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("leader %s killed at %d nodes succeeded; %s leads after %s (healthz), leader.elect audited %s after the kill, term %d",
			old.cfg.ServerID, at, next.cfg.ServerID, d.Round(time.Millisecond), elect.At.Sub(killed).Round(time.Millisecond), elect.term)
		if elect.holder != next.cfg.ServerID {
			t.Errorf("last leader.elect names %s, /healthz says %s leads", elect.holder, next.cfg.ServerID)
		}
		if err := old.start(""); err != nil { // back as a follower: its agents reconnect
			t.Fatal(err)
		}
	}
	if _, err := waitTerminal(ctx, c, ro.ID, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	f.stopAll()
	rep, err := verifyRun(ctx, c, f, ro.ID, limits{maxInFlight: 4, zoneCap: 2}, completed)
	if err != nil {
		t.Errorf("rollout %s: %v", ro.ID, err)
	}
	if err := checkStepsTable(ctx, dsn, len(f.nodes)); err != nil {
		t.Error(err)
	}
	if err := checkElections(ctx, c, 3); err != nil {
		t.Error(err)
	}
	t.Logf("%d steps dispatched, %d applies; max in flight %d, per zone %v", rep.dispatched, rep.applies, rep.maxInFlight, rep.maxZone)
	return took
}

// waitLeader waits until exactly one server other than not reports
// itself leader on /healthz, and returns it.
func waitLeader(servers []*serverProc, not *serverProc, d time.Duration) (*serverProc, error) {
	deadline := time.Now().Add(d)
	for {
		var leaders []*serverProc
		for _, p := range servers {
			if p == not {
				continue
			}
			if h := healthz(p.url()); h != nil && h.Leader {
				leaders = append(leaders, p)
			}
		}
		if len(leaders) == 1 {
			return leaders[0], nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d servers lead after %s, want 1", len(leaders), d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitSucceeded waits until n nodes of the rollout succeeded, asking any
// server that answers.
func waitSucceeded(ctx context.Context, servers []*serverProc, id string, n int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, p := range servers {
			ro, err := p.client().GetRollout(ctx, id, false)
			if err != nil {
				continue
			}
			if ro.Counts[string(engine.PhaseSucceeded)] >= n {
				return nil
			}
			if ro.State.Terminal() {
				return fmt.Errorf("rollout %s ended (%s) before %d nodes succeeded", id, ro.State, n)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("rollout %s: %d nodes not succeeded within %s", id, n, d)
}

type election struct {
	At     time.Time
	term   int64
	holder string
}

func elections(ctx context.Context, c *api.Client) ([]election, error) {
	entries, err := allAudit(ctx, c)
	if err != nil {
		return nil, err
	}
	var out []election
	for _, e := range entries {
		if e.Action != "leader.elect" {
			continue
		}
		var d struct {
			Term int64 `json:"term"`
		}
		if err := json.Unmarshal(e.Detail, &d); err != nil {
			return nil, fmt.Errorf("audit %d: leader.elect %s: %w", e.Seq, e.Detail, err)
		}
		out = append(out, election{At: e.At, term: d.Term, holder: e.Actor})
	}
	return out, nil
}

func lastElection(ctx context.Context, c *api.Client) (election, error) {
	es, err := elections(ctx, c)
	if err != nil || len(es) == 0 {
		return election{}, fmt.Errorf("no leader.elect in the audit log (%v)", err)
	}
	return es[len(es)-1], nil
}

// checkElections checks that terms only grow and that there were exactly
// want elections (the first, and one per kill).
func checkElections(ctx context.Context, c *api.Client, want int) error {
	es, err := elections(ctx, c)
	if err != nil {
		return err
	}
	for i := 1; i < len(es); i++ {
		if es[i].term <= es[i-1].term {
			return fmt.Errorf("leader.elect terms do not grow: %d after %d", es[i].term, es[i-1].term)
		}
	}
	if len(es) != want {
		return fmt.Errorf("%d elections, want %d (one at start, one per kill): %+v", len(es), want, es)
	}
	return nil
}

// checkStepsTable reads the steps table itself: every node has exactly
// one apply step, no rollback, and step IDs are unique.
func checkStepsTable(ctx context.Context, dsn string, nodes int) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	var total, distinct, applyNodes, maxPerNode int
	err = db.QueryRowContext(ctx, `SELECT COUNT(*), COUNT(DISTINCT id),
	COUNT(DISTINCT node_id) FILTER (WHERE kind = 'apply'),
	COALESCE((SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM steps GROUP BY node_id, kind) per), 0)
FROM steps`).Scan(&total, &distinct, &applyNodes, &maxPerNode)
	if err != nil {
		return fmt.Errorf("read steps table: %w", err)
	}
	if total != distinct || total != nodes || applyNodes != nodes || maxPerNode != 1 {
		return fmt.Errorf("steps table: %d rows, %d distinct IDs, %d nodes with an apply step, at most %d steps per node and kind; want %d, %d, %d, 1",
			total, distinct, applyNodes, maxPerNode, nodes, nodes, nodes)
	}
	return nil
}
