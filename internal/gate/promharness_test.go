package gate

import (
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/gate/gatetest"
)

// newTestEvaluator returns an evaluator for ps with test-sized windows:
// one-second scrapes allow a 3s minimum window and a 2s step.
func newTestEvaluator(t *testing.T, ps *gatetest.Prometheus, opts ...Option) *Prometheus {
	t.Helper()
	opts = append([]Option{WithTimeout(5 * time.Second), WithMinWindow(3 * time.Second), WithStep(2 * time.Second)}, opts...)
	p, err := NewPrometheus(ps.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Queries of the scenarios, over the simulated nodes' metrics.
const (
	p99Query = `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{instance=~"{{ .Nodes | label "instance" | regex }}"}[{{ .Window }}])))`
	// One p99 per node and step, for the statistical gate.
	p99PerNodeQuery = `histogram_quantile(0.99, sum by (instance, le) (rate(http_request_duration_seconds_bucket{instance=~"{{ .Nodes | label "instance" | regex }}"}[{{ .Window }}])))`
	errRatioQuery   = `sum(rate(http_requests_total{code="500", instance=~"{{ .Nodes | label "instance" | regex }}"}[{{ .Window }}])) / sum(rate(http_requests_total{instance=~"{{ .Nodes | label "instance" | regex }}"}[{{ .Window }}]))`
)
