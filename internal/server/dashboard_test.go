package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/drover-dev/drover/internal/api"
)

// dashboardPath is the Grafana dashboard the README points to.
const dashboardPath = "../../docs/grafana/drover.json"

// grafanaVars are the dashboard's Grafana variables, replaced by
// durations so that Prometheus's parser reads the queries.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h")

type dashboardPanel struct {
	Title   string           `json:"title"`
	Panels  []dashboardPanel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// dashboardQueries returns every PromQL expression of the dashboard's
// panels (rows' panels too), by panel title.
func dashboardQueries(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []dashboardPanel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	out := map[string][]string{}
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// exported lists the series names a scrape holds: a histogram's as
// _bucket, _sum and _count, a summary's as itself, _sum and _count.
func exported(mfs map[string]*dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for name, mf := range mfs {
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[name], out[name+"_sum"], out[name+"_count"] = true, true, true
		default:
			out[name] = true
		}
	}
	return out
}

// TestDashboardQueriesExist parses every query of the Grafana dashboard
// with Prometheus's PromQL parser and checks that every metric it reads
// is one a real server exports on /metrics after a rollout (with one
// more waiting for approval, so the figures of rollouts under way show,
// a fleet budget and a fleet freeze):
// a renamed or removed metric breaks the dashboard here, not in front of
// an operator.
func TestDashboardQueriesExist(t *testing.T) {
	queries := dashboardQueries(t)
	if len(queries) < 15 {
		t.Fatalf("%s: %d panels with queries; the dashboard lost its panels?", dashboardPath, len(queries))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := startMetricsFleet(t, ctx)
	if _, err := f.c.CreateBudget(ctx, api.BudgetRequest{Name: "zones", MaxUnavailable: "1", Per: "zone"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.CreateFreezes(ctx, []api.FreezeSpec{{Name: "far-off", TimeZone: "UTC", Start: "2099-01-01", End: "2099-01-02"}}); err != nil {
		t.Fatal(err)
	}
	f.run(t, ctx, "fine", "3.0.15")
	waits, err := f.c.CreateRollout(ctx, "waits.yaml", strings.Replace(fmt.Sprintf(metricsPlan, "waits", "3.0.15"), "waves:", "approvals:\n  start: 1\nwaves:", 1))
	if err != nil {
		t.Fatal(err)
	}
	mfs := scrape(t, f.url, operatorToken)
	if v := value(t, mfs, "drover_rollout_nodes", "rollout="+waits.ID, "phase=pending"); v != 4 {
		t.Errorf(`drover_rollout_nodes{rollout=%q, phase="pending"} = %v, want 4`, waits.ID, v)
	}
	if v := value(t, mfs, "drover_rollout_canary_uncovered_strata", "rollout="+waits.ID); v != float64(len(waits.Uncovered)) {
		t.Errorf("drover_rollout_canary_uncovered_strata = %v, want %d (the rollout's uncovered strata)", v, len(waits.Uncovered))
	}
	if v := value(t, mfs, "drover_rollouts", "state=pending-approval"); v != 1 {
		t.Errorf(`drover_rollouts{state="pending-approval"} = %v, want 1`, v)
	}
	have := exported(mfs)

	used := map[string]bool{}
	for title, exprs := range queries {
		for _, e := range exprs {
			expr, err := parser.ParseExpr(grafanaVars.Replace(e))
			if err != nil {
				t.Errorf("panel %q: query %q does not parse: %v", title, e, err)
				continue
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				if vs.Name == "" {
					t.Errorf("panel %q: query %q selects no metric by name", title, e)
					return nil
				}
				used[vs.Name] = true
				if !have[vs.Name] {
					t.Errorf("panel %q: query %q reads %s, which the server does not export", title, e, vs.Name)
				}
				return nil
			})
		}
	}
	for _, want := range []string{"drover_rollouts", "drover_rollouts_ended_total", "drover_rollout_duration_seconds_bucket",
		"drover_fail_to_halt_seconds_bucket", "drover_halt_to_rollback_complete_seconds_bucket", "drover_recovery_seconds_sum",
		"drover_rollout_nodes", "drover_gate_evaluations_total", "drover_agents_connected", "drover_fleet_budget_in_use",
		"drover_rollout_prediction_error_ratio_bucket", "drover_rollout_prediction_error_ratio_sum"} {
		if !used[want] {
			t.Errorf("the dashboard has no panel on %s", want)
		}
	}
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	slices.Sort(names)
	t.Logf("the dashboard reads %d metrics: %s", len(names), strings.Join(names, " "))
}
