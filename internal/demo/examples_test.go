package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/sim"
)

// TestExamplesOnDemo dry-runs every plan in examples/ and the demo's
// bundled plans on the demo's server (its inventory of 40 real agents,
// the server's own plan checks and simulator), each of which must select
// nodes, cover every stratum of its canary's spread keys and succeed, then runs
// examples/quick-start.yaml for real (`drover demo --plan`), which must
// succeed on every node in under two minutes with its wave gates judged
// by the production evaluator on the embedded Prometheus.
func TestExamplesOnDemo(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	bundled, err := filepath.Glob("plans/*.yaml")
	if err != nil || len(bundled) == 0 {
		t.Fatalf("no bundled plans: %v", err)
	}
	files = append(files, bundled...)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out bytes.Buffer
	dryRun := func(a Access) {
		c := &api.Client{Base: a.URL, Token: a.Users[0].Token, HTTP: http.DefaultClient}
		for _, f := range files {
			text, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.DryRun(ctx, filepath.Base(f), string(text))
			if err != nil {
				t.Errorf("dry run of %s on the demo: %v", filepath.Base(f), err)
				continue
			}
			var r sim.Result
			if err := json.Unmarshal(res.Result, &r); err != nil {
				t.Fatalf("%s: %v", filepath.Base(f), err)
			}
			if r.Nodes.Target == 0 || !r.Succeeded() {
				t.Errorf("dry run of %s on the demo: %d nodes, %s:\n%s", filepath.Base(f), r.Nodes.Target, r.State, res.Text)
			}
			if len(r.UncoveredStrata) > 0 {
				t.Errorf("dry run of %s on the demo: the canary leaves %d strata uncovered:\n%s", filepath.Base(f), len(r.UncoveredStrata), res.Text)
			}
			t.Logf("dry run of %s on the demo: %d of 40 nodes, %s after %s", filepath.Base(f), r.Nodes.Target, r.State,
				time.Duration(r.MakespanSeconds)*time.Second)
		}
	}
	// A gate whose query cannot run is refused before anything starts,
	// as on any server with Prometheus: its template calls an undefined
	// function, or its PromQL does not parse.
	broken := func(a Access) {
		c := &api.Client{Base: a.URL, Token: a.Users[0].Token, HTTP: http.DefaultClient}
		text, err := os.ReadFile("../../examples/quick-start.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []struct{ from, to, want string }{
			{"{{ .Nodes | regex }}", "{{ .Nodes | nosuch }}", `function "nosuch" not defined`},
			{"avg_over_time(", "avg_over_time((", "does not parse as PromQL"},
		} {
			bad := strings.Replace(string(text), q.from, q.to, 1)
			_, err := c.DryRun(ctx, "broken.yaml", bad)
			var apiErr *api.StatusError
			if !errors.As(err, &apiErr) || !strings.Contains(fmt.Sprint(apiErr.Body.Problems), q.want) {
				t.Errorf("dry run of a gate query with %q: %v, want a plan problem saying %q", q.to, err, q.want)
			}
		}
	}
	sum, err := Run(ctx, Options{Progress: &out, Dir: t.TempDir(), Plans: []string{"../../examples/quick-start.yaml"}, Ready: func(a Access) { dryRun(a); broken(a) }})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	t.Logf("demo output:\n%s", out.String())
	if len(sum.Rollouts) != 1 {
		t.Fatalf("summary: %+v", sum)
	}
	r := sum.Rollouts[0]
	if r.State != "succeeded" || r.NodesSucceeded != 40 || r.NodesFailed != 0 {
		t.Errorf("quick-start on the demo: %s, %d succeeded, %d failed (%s)", r.State, r.NodesSucceeded, r.NodesFailed, r.HaltReason)
	}
	if r.Seconds >= 120 {
		t.Errorf("quick-start took %.0fs on the demo, want under 2 minutes", r.Seconds)
	}
}
