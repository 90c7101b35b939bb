package chaos

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store/storetest"
)

// runPGRound is a campaign round on PostgreSQL: three `drover server`
// processes share one database (the round's own), each through a TCP
// proxy on loopback the test owns, the agents spread over the three
// (as in TestLeaderFailoverPostgres), and 2 or 3 overlapping rollouts
// under the fleet budget run while the round alternates two faults:
//
//   - pg-leader-kill: the current leader is SIGKILLed under load;
//     another server must lead within 15 s; the killed one is started
//     again as a follower (its agents come back);
//   - partition-server-db: one server's proxy to PostgreSQL is cut for 2
//     to 4 s (every connection reset, new ones refused); half of the
//     time the server cut off is the leader, which must lose its lock
//     (and with it its term) while another server takes over within
//     15 s.
//
// The ledger and its checker are the campaign's; the election terms in
// the audit log must grow.
func runPGRound(t *testing.T, bin string, pg *storetest.Postgres, rng *lockedRand, tl *tally, want int) roundResult {
	var rr roundResult
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	dsn := pg.CreateDB(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	prom := fakePrometheus(t)
	servers := make([]*serverProc, 3)
	dbProxies := make([]*proxy, 3)
	for i := range servers {
		dbProxies[i] = newProxy(t, func() string { return u.Host })
		pu := *u
		pu.Host = dbProxies[i].ln.Addr().String()
		cfg := serverConfig{Listen: freePort(t), Database: pu.String(), ServerID: fmt.Sprintf("pg-%d", i),
			DataDir: filepath.Join(dir, fmt.Sprintf("pg-%d", i)), AuditKey: filepath.Join(dir, "audit.key"), Prometheus: prom,
			Lease: 3 * time.Second, PollWait: time.Second, Tick: 100 * time.Millisecond}
		servers[i] = newServerProc(t, bin, dir, cfg)
		if err := servers[i].start(""); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // the first server migrates the schema and leads
			if _, err := waitLeader(servers[:1], nil, 20*time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	// anyClient is a client of a server that answers, the first one
	// from a rotating start.
	var rot int
	var rotMu sync.Mutex
	anyClient := func() *api.Client {
		rotMu.Lock()
		rot++
		k := rot
		rotMu.Unlock()
		for j := range servers {
			p := servers[(k+j)%len(servers)]
			if h := healthz(p.url()); h != nil && h.OK {
				return p.client()
			}
		}
		return servers[k%len(servers)].client()
	}

	const nodes = 12
	f := newSimFleet(t, dir, nodes, 200*time.Millisecond, nil, func(i int) string { return servers[i%3].url() })
	f.supervise = true
	f.startAll()
	if err := waitOnlineRetry(ctx, servers[0].client(), nodes); err != nil {
		t.Fatal(err)
	}
	var events []Event
	var evMu sync.Mutex
	record := func(e Event) { evMu.Lock(); events = append(events, e); evMu.Unlock() }

	budget := api.BudgetRequest{Name: "zones", MaxUnavailable: "1", Per: "zone"}
	b, err := anyClient().CreateBudget(ctx, budget)
	if err != nil {
		t.Fatalf("create budget: %v", err)
	}
	record(Event{Source: SrcAPI, Op: OpAck, At: time.Now(), Object: fmt.Sprintf("budget/zones@%d", b.Version)})
	nRollouts := 2 + rng.intN(2)
	limitsOf := map[string]Limits{}
	for i := range nRollouts {
		mif, zc := 2+rng.intN(2), 1+rng.intN(2)
		limitsOf["campaign-"+campaignPackages[i].pkg] = Limits{MaxInFlight: mif, ZoneCap: zc}
		tl.add("overlapping-rollouts")
		ro, err := anyClient().CreateRollout(ctx, "campaign.yaml", campaignPlan(i, mif, zc))
		if err != nil {
			t.Fatalf("create rollout %d: %v", i, err)
		}
		record(Event{Source: SrcAPI, Op: OpAck, At: time.Now(), Object: "rollout/" + ro.ID})
	}

	// Observations and budget writes, through whichever server answers.
	obsDone := make(chan struct{})
	stopObs := make(chan struct{})
	go func() {
		defer close(obsDone)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for {
			select {
			case <-stopObs:
				return
			case <-tick.C:
			}
			n++
			c := anyClient()
			list, err := c.ListRollouts(ctx)
			if err != nil {
				continue
			}
			now := time.Now()
			for _, ro := range list.Rollouts {
				record(observe(now, ro))
			}
			if n%6 == 0 {
				if b, err := c.GetBudget(ctx, "zones"); err == nil {
					if b, err := c.UpdateBudget(ctx, b.Version, budget); err == nil {
						record(Event{Source: SrcAPI, Op: OpAck, At: time.Now(), Object: fmt.Sprintf("budget/zones@%d", b.Version)})
					}
				}
			}
		}
	}()

	allDone := func() bool {
		list, err := anyClient().ListRollouts(ctx)
		if err != nil || len(list.Rollouts) == 0 {
			return false
		}
		for _, ro := range list.Rollouts {
			if !ro.State.Terminal() {
				return false
			}
		}
		return true
	}
	// The faults alternate, from a seeded first; at least one of each.
	kill := rng.intN(2) == 0
	injected := 0
	for (injected < want && !allDone() || injected < 2) && ctx.Err() == nil && !t.Failed() {
		time.Sleep(rng.dur(200*time.Millisecond, 800*time.Millisecond))
		leader, err := waitLeader(servers, nil, 20*time.Second)
		if err != nil {
			t.Errorf("before fault %d: %v", injected+1, err)
			break
		}
		if kill {
			tl.add("pg-leader-kill")
			killed := time.Now()
			leader.kill()
			next, err := waitLeader(servers, leader, 15*time.Second)
			if err != nil {
				t.Errorf("after SIGKILL of leader %s: %v", leader.cfg.ServerID, err)
			} else {
				t.Logf("leader %s killed; %s leads after %s", leader.cfg.ServerID, next.cfg.ServerID, time.Since(killed).Round(time.Millisecond))
			}
			if err := leader.start(""); err != nil { // back as a follower
				t.Fatal(err)
			}
		} else {
			tl.add("partition-server-db")
			victim := leader
			if rng.intN(2) == 0 {
				victim = servers[rng.intN(len(servers))]
			}
			i := slices.Index(servers, victim)
			d := rng.dur(2*time.Second, 4*time.Second)
			cut := time.Now()
			dbProxies[i].setCut(true)
			if victim == leader {
				next, err := waitLeader(servers, leader, 15*time.Second)
				if err != nil {
					t.Errorf("leader %s cut off from PostgreSQL: %v", leader.cfg.ServerID, err)
				} else {
					t.Logf("leader %s cut off from PostgreSQL; %s leads after %s", leader.cfg.ServerID, next.cfg.ServerID, time.Since(cut).Round(time.Millisecond))
				}
				// The old leader knows it lost: it no longer says it leads.
				for deadline := time.Now().Add(5 * time.Second); next != nil; time.Sleep(20 * time.Millisecond) {
					if h := healthz(leader.url()); h == nil || !h.Leader {
						break
					}
					if time.Now().After(deadline) {
						t.Errorf("leader %s cut off from PostgreSQL still says it leads after 5s (and %s leads)", leader.cfg.ServerID, next.cfg.ServerID)
						break
					}
				}
			}
			time.Sleep(time.Until(cut.Add(d)))
			dbProxies[i].setCut(false)
			select {
			case <-victim.exited():
				t.Errorf("server %s exited while cut off from PostgreSQL (%s):\n%s", victim.cfg.ServerID, victim.exitState(), tail(victim.logBuf.String(), 3000))
			default:
			}
		}
		kill = !kill
		injected++
	}

	// Heal: every server runs (they all do already), every agent runs.
	f.startAll()
	c := anyClient()
	list, err := c.ListRollouts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	for _, ro := range list.Rollouts {
		if _, err := waitTerminal(ctx, anyClient(), ro.ID, 90*time.Second-time.Since(healed)); err != nil {
			t.Errorf("after the faults healed: %v", err)
			dumpRound(ctx, t, anyClient(), dir)
			break
		}
	}
	close(stopObs)
	<-obsDone
	time.Sleep(500 * time.Millisecond)
	f.stopAll()

	c = anyClient()
	l, err := collectLedger(ctx, c, f, limitsOf, events)
	if err != nil {
		t.Fatal(err)
	}
	rr.violations = Check(l)
	if err := checkTermsGrow(ctx, c); err != nil {
		t.Error(err)
	}
	// No step dispatched twice: a step ID is in one step.dispatch.
	dispatched := map[string]int{}
	for _, e := range l.Events {
		if e.Source == SrcAudit && e.Op == OpDispatch {
			if dispatched[e.Step]++; dispatched[e.Step] == 2 {
				t.Errorf("step %s (node %s, rollout %s) dispatched twice", e.Step, e.Node, e.Rollout)
			}
		}
	}
	for _, fr := range l.Final {
		rr.rollouts++
		if fr.State == engine.RolloutSucceeded {
			rr.succeeded++
		}
	}
	counts := map[Source]int{}
	for _, e := range l.Events {
		counts[e.Source]++
	}
	t.Logf("PostgreSQL round: %d faults, %d rollouts (%d succeeded), ledger %v, %d violations", injected, rr.rollouts, rr.succeeded, counts, len(rr.violations))
	for _, v := range rr.violations {
		t.Errorf("%s", v)
	}
	if len(rr.violations) > 0 {
		dumpRound(ctx, t, c, dir)
		for _, p := range servers {
			t.Logf("server %s, last life:\n%s", p.cfg.ServerID, tail(p.logBuf.String(), 3000))
		}
	}
	return rr
}

// checkTermsGrow checks that every leader.elect's term exceeds the one
// before (a new leader fences the old one's writes).
func checkTermsGrow(ctx context.Context, c *api.Client) error {
	es, err := elections(ctx, c)
	if err != nil {
		return err
	}
	var terms []string
	for i, e := range es {
		terms = append(terms, fmt.Sprintf("%d:%s", e.term, e.holder))
		if i > 0 && e.term <= es[i-1].term {
			return fmt.Errorf("leader.elect terms do not grow: %s", strings.Join(terms, " "))
		}
	}
	return nil
}
