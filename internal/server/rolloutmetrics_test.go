package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/server/servertest"
	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/store/storetest"
)

const metricsPlan = `apiVersion: drover.dev/v1
name: %s
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - package:
        packages: [{name: openssl, version: "%s"}]
waves:
  - name: all
limits:
  maxInFlight: 4
failureBudget:
  maxFailures: 0
  onBreach: rollback-all
`

const operatorToken = "alice-token-0123456789"

// metricsFleet is a real server with four real agents on simulated
// nodes; n4 fails to apply openssl 3.0.99.
type metricsFleet struct {
	url string
	st  store.Store
	cfg server.Config
	c   *api.Client
}

func startMetricsFleet(t *testing.T, ctx context.Context) *metricsFleet {
	url, st, cfg := servertest.Start(t, ctx, metricsConfig)
	f := &metricsFleet{url: url, st: st, cfg: cfg, c: &api.Client{Base: url, Token: operatorToken}}
	startAgents(t, ctx, url, cfg.AgentToken)
	return f
}

func metricsConfig(cfg *server.Config) {
	cfg.Tick, cfg.PollWait = 50*time.Millisecond, time.Second
	cfg.AgentToken = "agent-token-0123456789"
	cfg.Users = []server.User{{Name: "alice", Role: server.RoleAdmin, Token: operatorToken}}
}

// startAgents runs the four agents against the server at url until the
// test ends, and waits until they are registered.
func startAgents(t *testing.T, ctx context.Context, url, token string) {
	agentCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	for i := range 4 {
		id := fmt.Sprintf("n%d", i+1)
		s := driver.NewSimState(id, "debian", "6.1.0-26-amd64", map[string]string{"openssl": "3.0.11-1"})
		s.ApplyDelay = 100 * time.Millisecond
		if id == "n4" {
			s.FailApply = func(a plan.Action) error {
				if a.Package != nil && a.Package.Packages[0].Version == "3.0.99" {
					return errors.New("dpkg: dependency problems prevent configuration of openssl")
				}
				return nil
			}
		}
		reg := &driver.Registry{}
		reg.Register(plan.ActionPackage, driver.NewSim(s))
		facts := fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}}
		acfg := agent.Config{ServerURL: url, StateDir: t.TempDir(), NodeID: id, Token: token,
			Labels: map[string]string{"env": "prod", "zone": "a"}, Drivers: reg, Heartbeat: 200 * time.Millisecond,
			Facts: func(context.Context) (fleet.Facts, error) { return s.Facts(facts), nil }}
		wg.Add(1)
		go func() { defer wg.Done(); _ = agent.Run(agentCtx, acfg) }()
	}
	c := &api.Client{Base: url, Token: operatorToken}
	eventually(t, 20*time.Second, "agents registered", func() (bool, string) {
		ns, err := c.AllNodes(ctx, "")
		return err == nil && len(ns) == 4, fmt.Sprintf("%d nodes, %v", len(ns), err)
	})
}

// run creates a rollout of openssl at version and waits for its end.
func (f *metricsFleet) run(t *testing.T, ctx context.Context, name, version string) api.Rollout {
	t.Helper()
	ro, err := f.c.CreateRollout(ctx, name+".yaml", fmt.Sprintf(metricsPlan, name, version))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "rollout "+name+" ends", func() (bool, string) {
		ro, err = f.c.GetRollout(ctx, ro.ID, false)
		return err == nil && ro.State.Terminal(), fmt.Sprintf("%s %s %v", ro.State, ro.Reason, err)
	})
	return ro
}

func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
	}
	t.Fatalf("%s: not within %s (last: %s)", what, within, last)
}

// scrape reads /metrics with the token (metrics.auth is token by
// default).
func scrape(t *testing.T, url, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest("GET", url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s %s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// metric returns the metric of family name whose labels include want
// ("k=v" pairs), or nil.
func metric(mfs map[string]*dto.MetricFamily, name string, want ...string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == k && l.GetValue() == v
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := metric(mfs, name, labels...)
	switch {
	case m == nil:
		t.Fatalf("/metrics lacks %s%v", name, labels)
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("%s%v is neither a counter nor a gauge", name, labels)
	return 0
}

func hist(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) (uint64, float64) {
	t.Helper()
	m := metric(mfs, name, labels...)
	if m == nil || m.Histogram == nil {
		t.Fatalf("/metrics lacks the histogram %s%v", name, labels)
	}
	return m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum()
}

// TestRolloutMetrics drives a real server and real agents through a
// rollout that halts on a node failure reported by its agent (the case
// drover_fail_to_halt_seconds used to miss: it only saw failures the
// scheduler decided, in one process's memory) and one that succeeds, and
// reads the rollout metrics on /metrics: outcomes, durations, failure
// to halt, halt to rollback dispatched and complete, time to recovery,
// each equal to what the stored times say, and the prediction error
// equal to what rollout get shows. Another server on the same
// database (or this one after a restart) exports the same figures.
func TestRolloutMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := startMetricsFleet(t, ctx)

	bad := f.run(t, ctx, "broken", "3.0.99")
	if bad.State != engine.RolloutHalted {
		t.Fatalf("rollout broken: %s (%s), want halted", bad.State, bad.Reason)
	}
	good := f.run(t, ctx, "fine", "3.0.15")
	if good.State != engine.RolloutSucceeded {
		t.Fatalf("rollout fine: %s (%s), want succeeded", good.State, good.Reason)
	}

	ro, err := f.st.GetRollout(ctx, bad.ID)
	if err != nil {
		t.Fatal(err)
	}
	tm := ro.Times
	// The prediction error of each ended rollout, as rollout get shows
	// it: the metric observes the same.
	var errSum float64
	for _, r := range []api.Rollout{bad, good} {
		got, err := f.c.GetRollout(ctx, r.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		if got.Prediction == nil || got.Prediction.ErrorPercent == nil {
			t.Fatalf("rollout %s: prediction %+v, want one with its error", r.Name, got.Prediction)
		}
		errSum += math.Abs(*got.Prediction.ErrorPercent) / 100
	}
	if tm.FirstFailure.IsZero() || tm.Halted.Before(tm.FirstFailure) || tm.RollbackDispatched.Before(tm.Halted) ||
		tm.RollbackDone.Before(tm.RollbackDispatched) || !tm.Recovered.Equal(tm.RollbackDone) || tm.Ended.Before(tm.RollbackDone) {
		t.Fatalf("stored times of the halted rollout out of order: %+v", tm)
	}

	check := func(mfs map[string]*dto.MetricFamily) {
		t.Helper()
		for state, want := range map[string]float64{"halted": 1, "succeeded": 1, "failed": 0, "aborted": 0} {
			if v := value(t, mfs, "drover_rollouts_ended_total", "state="+state); v != want {
				t.Errorf("drover_rollouts_ended_total{state=%q} = %v, want %v", state, v, want)
			}
			if n, _ := hist(t, mfs, "drover_rollout_duration_seconds", "state="+state); n != uint64(want) {
				t.Errorf("drover_rollout_duration_seconds_count{state=%q} = %d, want %v", state, n, want)
			}
		}
		if v := value(t, mfs, "drover_rollouts", "state=halted"); v != 1 {
			t.Errorf(`drover_rollouts{state="halted"} = %v, want 1`, v)
		}
		secs := func(from, to time.Time) float64 { return to.Sub(from).Seconds() }
		if n, sum := hist(t, mfs, "drover_rollout_prediction_error_ratio"); n != 2 || math.Abs(sum-errSum) > 1e-9 {
			t.Errorf("drover_rollout_prediction_error_ratio: count %d sum %v, want 2 observations summing to %v (rollout get's errors)", n, sum, errSum)
		}
		for _, h := range []struct {
			name string
			want float64
		}{
			{"drover_fail_to_halt_seconds", secs(tm.FirstFailure, tm.Halted)},
			{"drover_halt_to_rollback_dispatch_seconds", secs(tm.Halted, tm.RollbackDispatched)},
			{"drover_halt_to_rollback_complete_seconds", secs(tm.Halted, tm.RollbackDone)},
			{"drover_recovery_seconds", secs(tm.FirstFailure, tm.Recovered)},
		} {
			n, sum := hist(t, mfs, h.name)
			if n != 1 || fmt.Sprintf("%.6f", sum) != fmt.Sprintf("%.6f", h.want) {
				t.Errorf("%s: count %d sum %v, want 1 observation of %v (the stored times)", h.name, n, sum, h.want)
			}
		}
	}
	check(scrape(t, f.url, operatorToken))

	// Another server on the same database, fresh memory, nothing run:
	// the same figures.
	reg := prometheus.NewRegistry()
	cfg := f.cfg
	cfg.ServerID = "server-2"
	if _, err := server.New(cfg, server.Deps{Store: f.st, Logger: slog.New(slog.DiscardHandler), Registry: reg}); err != nil {
		t.Fatal(err)
	}
	gathered, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	mfs := map[string]*dto.MetricFamily{}
	for _, mf := range gathered {
		mfs[mf.GetName()] = mf
	}
	check(mfs)
}

// TestRolloutMetricsSharedPostgres runs two servers on one PostgreSQL,
// the agents talking to the one that does not lead: the failure reports
// reach one server, the halt and the rollbacks are decided by the other.
// Both export the same rollout figures, each from the stored times.
func TestRolloutMetricsSharedPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn := storetest.NewPostgres(t).CreateDB(t)
	key := filepath.Join(t.TempDir(), "audit.key")
	shared := func(id string) func(*server.Config) {
		return func(cfg *server.Config) {
			metricsConfig(cfg)
			cfg.ServerID, cfg.Database, cfg.AuditKey = id, dsn, key
		}
	}
	leaderURL, st, _ := servertest.Start(t, ctx, shared("server-a"))
	eventually(t, 20*time.Second, "server-a leads", func() (bool, string) {
		v := metric(scrape(t, leaderURL, operatorToken), "drover_leader")
		return v != nil && v.GetGauge().GetValue() == 1, "not leading"
	})
	otherURL, _, _ := servertest.Start(t, ctx, shared("server-b"))
	startAgents(t, ctx, otherURL, "agent-token-0123456789")
	f := &metricsFleet{url: otherURL, st: st, c: &api.Client{Base: otherURL, Token: operatorToken}}
	bad := f.run(t, ctx, "broken", "3.0.99")
	if bad.State != engine.RolloutHalted {
		t.Fatalf("rollout broken: %s (%s), want halted", bad.State, bad.Reason)
	}
	if v := value(t, scrape(t, otherURL, operatorToken), "drover_leader"); v != 0 {
		t.Fatalf("server-b led (drover_leader %v): the agents' server must not", v)
	}
	a, b := scrape(t, leaderURL, operatorToken), scrape(t, otherURL, operatorToken)
	for _, name := range []string{"drover_fail_to_halt_seconds", "drover_halt_to_rollback_dispatch_seconds",
		"drover_halt_to_rollback_complete_seconds", "drover_recovery_seconds"} {
		na, sa := hist(t, a, name)
		nb, sb := hist(t, b, name)
		if na != 1 || nb != 1 || sa != sb {
			t.Errorf("%s: server-a count %d sum %v, server-b count %d sum %v; want one observation, the same on both", name, na, sa, nb, sb)
		}
	}
	for _, mfs := range []map[string]*dto.MetricFamily{a, b} {
		if v := value(t, mfs, "drover_rollouts_ended_total", "state=halted"); v != 1 {
			t.Errorf(`drover_rollouts_ended_total{state="halted"} = %v, want 1`, v)
		}
	}
}
