package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store/storetest"
)

// fleetPlans are three rollouts over the same twelve nodes, each
// changing another package, each allowing 3 nodes in flight and 2 per
// zone on its own: together, under the fleet budget of 1 node per zone,
// at most 3 nodes of the fleet may be in flight, one per zone.
func fleetPlans() []string {
	var out []string
	for _, p := range []struct{ name, pkg, version, op string }{
		{"chaos-openssl", "openssl", "3.0.15", ""}, {"chaos-curl", "curl", "7.88.1", "install"}, {"chaos-jq", "jq", "1.6", "install"},
	} {
		op := ""
		if p.op != "" {
			op = "\n        operation: " + p.op
		}
		out = append(out, fmt.Sprintf(`apiVersion: drover.dev/v1
name: %s
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - name: %s
      package:%s
        packages:
          - name: %s
            version: %s
  reboot: never
waves:
  - name: all
limits:
  maxInFlight: 3
  caps:
    zone: 2
gates:
  node:
    probes:
      - name: health
        kind: command
        command: [drover-sim-health]
        interval: 200ms
        timeout: 2s
    minHealthy: 400ms
    healthyDeadline: 20s
`, p.name, p.pkg, op, p.pkg, p.version))
	}
	return out
}

var fleetVersions = map[string]string{"openssl": "3.0.15", "curl": "7.88.1", "jq": "1.6"}

// TestOverlappingRolloutsChaos runs three overlapping rollouts at once
// under a fleet budget of one node per zone, killing servers with
// SIGKILL while they run: on SQLite the one server at failpoints (after a
// commit, before a commit), on PostgreSQL the leader of three servers,
// twice. Every rollout must complete, every node be changed once by each,
// and, from the audit log (transaction by transaction) and from the
// agents' driver calls, no node may ever be in flight in two rollouts and
// no zone have more than one node in flight across them.
func TestOverlappingRolloutsChaos(t *testing.T) {
	bin := buildDrover(t)
	t.Run("sqlite", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
		defer cancel()
		dir := t.TempDir()
		cfg := serverConfig{Listen: freePort(t), DataDir: filepath.Join(dir, "server"), ServerID: "chaos",
			Lease: 3 * time.Second, PollWait: time.Second, Tick: 100 * time.Millisecond}
		p := newServerProc(t, bin, dir, cfg)
		kills := []string{"after-commit=6", "before-commit=3"}
		if err := p.start(kills[0]); err != nil {
			t.Fatal(err)
		}
		f := newSimFleet(t, dir, 12, 250*time.Millisecond, nil, func(int) string { return p.url() })
		f.startAll()
		c := p.client()
		if err := waitOnline(ctx, c, len(f.nodes)); err != nil {
			t.Fatal(err)
		}
		ids := createFleetRollouts(ctx, t, []*api.Client{c})
		for i, spec := range kills {
			// No early-end check: one rollout may end while the others
			// still commit, and any commit reaches the failpoint.
			if err := waitKilled(ctx, p, c, "", 60*time.Second); err != nil {
				t.Fatalf("failpoint %s: %v", spec, err)
			}
			point, _, _ := strings.Cut(spec, "=")
			if !p.killedBySIGKILL() || !strings.Contains(p.logBuf.String(), "failpoint "+point+" hit") {
				t.Fatalf("server life %d ended (%s) but not at failpoint %s", i+1, p.exitState(), spec)
			}
			next := ""
			if i+1 < len(kills) {
				next = kills[i+1]
			}
			if err := p.start(next); err != nil {
				t.Fatal(err)
			}
		}
		finishFleet(ctx, t, c, f, ids)
	})
	t.Run("postgres", func(t *testing.T) {
		pg := storetest.NewPostgres(t)
		dsn := pg.CreateDB(t)
		ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
		defer cancel()
		dir := t.TempDir()
		servers := make([]*serverProc, 3)
		for i := range servers {
			cfg := serverConfig{Listen: freePort(t), Database: dsn, ServerID: fmt.Sprintf("pg-%d", i),
				DataDir: filepath.Join(dir, fmt.Sprintf("pg-%d", i)), AuditKey: filepath.Join(dir, "audit.key"),
				Lease: 4 * time.Second, PollWait: time.Second, Tick: 100 * time.Millisecond}
			servers[i] = newServerProc(t, bin, dir, cfg)
			if err := servers[i].start(""); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				if _, err := waitLeader(servers[:1], nil, 20*time.Second); err != nil {
					t.Fatal(err)
				}
			}
		}
		f := newSimFleet(t, dir, 12, 250*time.Millisecond, nil, func(i int) string { return servers[i%3].url() })
		f.startAll()
		if err := waitOnline(ctx, servers[1].client(), len(f.nodes)); err != nil {
			t.Fatal(err)
		}
		clients := []*api.Client{servers[0].client(), servers[1].client(), servers[2].client()}
		ids := createFleetRollouts(ctx, t, clients)
		for _, at := range []int{8, 20} {
			if err := waitFleetSucceeded(ctx, servers, ids, at, 90*time.Second); err != nil {
				t.Fatal(err)
			}
			old, err := waitLeader(servers, nil, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			old.kill()
			next, err := waitLeader(servers, old, 15*time.Second)
			if err != nil {
				t.Fatalf("after SIGKILL of leader %s: %v", old.cfg.ServerID, err)
			}
			t.Logf("leader %s killed at %d node steps succeeded; %s leads", old.cfg.ServerID, at, next.cfg.ServerID)
			if err := old.start(""); err != nil {
				t.Fatal(err)
			}
		}
		finishFleet(ctx, t, servers[1].client(), f, ids)
	})
}

// createFleetRollouts creates the fleet budget and the three rollouts at
// once (through the clients given, in turn: several servers race).
func createFleetRollouts(ctx context.Context, t *testing.T, cs []*api.Client) []string {
	t.Helper()
	if _, err := cs[0].CreateBudget(ctx, api.BudgetRequest{Name: "zones", MaxUnavailable: "1", Per: "zone"}); err != nil {
		t.Fatalf("create budget: %v", err)
	}
	plans := fleetPlans()
	ids := make([]string, len(plans))
	errs := make([]error, len(plans))
	var wg sync.WaitGroup
	for i, text := range plans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ro, err := cs[i%len(cs)].CreateRollout(ctx, "chaos.yaml", text)
			ids[i], errs[i] = ro.ID, err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create rollout %d: %v", i, err)
		}
	}
	return ids
}

// waitFleetSucceeded waits until n node steps succeeded across the
// rollouts, asking any server that answers.
func waitFleetSucceeded(ctx context.Context, servers []*serverProc, ids []string, n int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, p := range servers {
			total, ok := 0, true
			for _, id := range ids {
				ro, err := p.client().GetRollout(ctx, id, false)
				if err != nil {
					ok = false
					break
				}
				total += ro.Counts[string(engine.PhaseSucceeded)]
			}
			if ok && total >= n {
				return nil
			}
			if ok {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%d node steps not succeeded within %s", n, d)
}

// finishFleet waits for the rollouts to end and checks everything.
func finishFleet(ctx context.Context, t *testing.T, c *api.Client, f *simFleet, ids []string) {
	t.Helper()
	for _, id := range ids {
		if _, err := waitTerminal(ctx, c, id, 150*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	f.stopAll()
	rep, err := verifyFleet(ctx, c, f, ids)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rollouts, %d steps dispatched, %d applies; audit log: peak %d nodes in flight across rollouts, per zone %v (budget 1), most rollouts in flight on one node %d; driver calls: per zone peak %v",
		len(ids), rep.dispatched, rep.applies, rep.maxInFlight, rep.maxZone, rep.maxPerNode, rep.ledgerZone)
}

type fleetReport struct {
	report
	maxPerNode int
	ledgerZone map[string]int
}

// verifyFleet checks the rollouts of a run against the audit log and the
// agents' ledger.
func verifyFleet(ctx context.Context, c *api.Client, f *simFleet, ids []string) (fleetReport, error) {
	var ck checks
	var rep fleetReport
	v, err := c.VerifyAudit(ctx)
	if err != nil {
		return rep, err
	}
	if !v.OK {
		ck.errorf("audit chain broken at seq %d: %s", v.FirstBad, v.Problem)
	}
	zoneOf := map[string]string{}
	for _, sn := range f.nodes {
		zoneOf[sn.id] = sn.zone
	}
	entries, err := allAudit(ctx, c)
	if err != nil {
		return rep, err
	}
	ours := map[string]bool{}
	for _, id := range ids {
		ours[id] = true
		ro, err := c.GetRollout(ctx, id, true)
		if err != nil {
			return rep, err
		}
		if ro.State != engine.RolloutSucceeded {
			ck.errorf("rollout %s: %s (%s), want succeeded", id, ro.State, ro.Reason)
		}
		for _, n := range ro.Nodes {
			if n.Phase != engine.PhaseSucceeded {
				var hist strings.Builder
				for _, e := range entries {
					if e.Rollout == id && e.Object == "node/"+n.ID {
						fmt.Fprintf(&hist, "\n    #%d %s %s %s %s", e.Seq, e.At.Format("15:04:05.000000"), e.Actor, e.Action, e.Detail)
					}
				}
				ck.errorf("rollout %s (%s) node %s: %s (%s), step %s; its audit:%s", id, ro.State, n.ID, n.Phase, n.Reason, n.StepID, hist.String())
			}
		}
	}

	// The audit log, transaction by transaction: phases per rollout and node.
	type key struct{ rollout, node string }
	phase := map[key]engine.Phase{}
	stepRollout := map[string]string{}
	applySteps := map[string]int{} // node -> apply steps dispatched
	rep.maxZone = map[string]int{}
	context := func(i int) string {
		var b strings.Builder
		for j := max(0, i-12); j <= i; j++ {
			e := entries[j]
			fmt.Fprintf(&b, "\n    #%d %s %s %s %s %s %s", e.Seq, e.At.Format("15:04:05.000000"), e.Actor, e.Action, e.Object, e.Rollout, e.Detail)
		}
		return b.String()
	}
	measure := func(seq int64, i int) {
		perNode, zone, all := map[string][]string{}, map[string]int{}, 0
		for k, ph := range phase {
			if ph.InFlight() {
				perNode[k.node] = append(perNode[k.node], k.rollout)
				zone[zoneOf[k.node]]++
				all++
			}
		}
		for n, ros := range perNode {
			rep.maxPerNode = max(rep.maxPerNode, len(ros))
			if len(ros) > 1 {
				slices.Sort(ros)
				ck.errorf("audit seq %d: node %s in flight in rollouts %v; the log up to there:%s", seq, n, ros, context(i))
			}
		}
		for z, k := range zone {
			rep.maxZone[z] = max(rep.maxZone[z], k)
			if k > 1 {
				ck.errorf("audit seq %d: %d nodes of zone %s in flight, fleet budget zones allows 1; the log up to there:%s", seq, k, z, context(i))
			}
		}
		rep.maxInFlight = max(rep.maxInFlight, all)
	}
	for i, e := range entries {
		if ours[e.Rollout] {
			node, isNode := strings.CutPrefix(e.Object, "node/")
			switch e.Action {
			case "step.dispatch":
				var d struct{ Step, Kind string }
				if err := json.Unmarshal(e.Detail, &d); err != nil || !isNode {
					return rep, fmt.Errorf("audit %d: %s: %v", e.Seq, e.Detail, err)
				}
				if _, dup := stepRollout[d.Step]; dup {
					ck.errorf("step %s dispatched twice", d.Step)
				}
				stepRollout[d.Step] = e.Rollout
				rep.dispatched++
				if d.Kind == "apply" {
					applySteps[node]++
					phase[key{e.Rollout, node}] = engine.PhaseQueued
				} else {
					phase[key{e.Rollout, node}] = engine.PhaseRollingBack
				}
			case "node.phase":
				var d struct {
					To engine.Phase `json:"to"`
				}
				if err := json.Unmarshal(e.Detail, &d); err != nil || !isNode {
					return rep, fmt.Errorf("audit %d: %s: %v", e.Seq, e.Detail, err)
				}
				phase[key{e.Rollout, node}] = d.To
			}
		}
		if i == len(entries)-1 || !entries[i+1].At.Equal(e.At) || entries[i+1].Actor != e.Actor {
			measure(e.Seq, i)
		}
	}

	// The ledger: every driver call belongs to a dispatched step; calls of
	// two rollouts on one node never overlap; per zone one at a time.
	led := f.l.all()
	applied := map[string]int{}
	perNode := map[string]int{}
	byNode := map[string][]ledgerEntry{}
	for _, e := range led {
		ro, ok := stepRollout[e.Step]
		if !ok {
			ck.errorf("node %s: %s for step %q, never dispatched", e.Node, e.Op, e.Step)
			continue
		}
		_ = ro
		if e.Op == "apply" {
			applied[e.Step]++
			perNode[e.Node]++
			rep.applies++
		}
		byNode[e.Node] = append(byNode[e.Node], e)
	}
	for st, n := range applied {
		if n > 1 {
			ck.errorf("step %s applied %d times", st, n)
		}
	}
	for n, es := range byNode {
		sort.Slice(es, func(i, j int) bool { return es[i].Start.Before(es[j].Start) })
		for i := 1; i < len(es); i++ {
			if stepRollout[es[i].Step] != stepRollout[es[i-1].Step] && es[i].Start.Before(es[i-1].End) {
				ck.errorf("node %s: driver calls of rollouts %s and %s overlap", n, stepRollout[es[i-1].Step], stepRollout[es[i].Step])
			}
		}
	}
	rep.ledgerZone = maxOverlap(led, func(e ledgerEntry) string { return zoneOf[e.Node] })
	for z, n := range rep.ledgerZone {
		if n > 1 {
			ck.errorf("ledger: %d driver calls at once in zone %s, fleet budget zones allows 1", n, z)
		}
	}
	for _, sn := range f.nodes {
		if got := sn.state.Applies(); got != len(ids) || perNode[sn.id] != len(ids) || applySteps[sn.id] != len(ids) {
			ck.errorf("node %s: sim applies %d, ledger applies %d, apply steps dispatched %d; want %d each", sn.id, got, perNode[sn.id], applySteps[sn.id], len(ids))
		}
		for pkg, want := range fleetVersions {
			if v, _ := sn.state.Version(pkg); v != want {
				ck.errorf("node %s: %s %s, want %s", sn.id, pkg, v, want)
			}
		}
	}
	return rep, ck.err()
}
