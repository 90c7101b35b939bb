package gate

import (
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

func TestCheckQuery(t *testing.T) {
	nodes := []*fleet.Node{
		{ID: "web-1", Labels: map[string]string{"instance": "10.0.0.1:9100"}},
		{ID: "web-2", Labels: map[string]string{"instance": "10.0.0.2:9100"}},
	}
	tests := []struct {
		name  string
		gate  plan.WaveGate
		want  string // "" passes; else a part of the error
		nodes []*fleet.Node
	}{
		{name: "threshold", gate: plan.WaveGate{Mode: plan.ModeThreshold,
			Query: `sum(rate(http_requests_total{code=~"5..", instance=~"{{ .Nodes | regex }}"}[{{ .Window }}]))`}},
		{name: "delta over label values", gate: plan.WaveGate{Mode: plan.ModeDelta,
			Query: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{instance=~"{{ .Nodes | label "instance" | regex }}"}[5m])))`}},
		{name: "statistical", gate: plan.WaveGate{Mode: plan.ModeStatistical,
			Query: `avg by (instance) (node_load1{instance=~"{{ .Nodes | instances ":9100" | regex }}"})`}},
		{name: "unbalanced parenthesis", gate: plan.WaveGate{Mode: plan.ModeThreshold,
			Query: `sum(rate(http_requests_total{instance=~"{{ .Nodes | regex }}"}[5m])`},
			want: "query (canary side) does not parse as PromQL: unclosed left parenthesis"},
		{name: "aggregation without parentheses", gate: plan.WaveGate{Mode: plan.ModeThreshold,
			Query: `sum by (code) rate(http_requests_total[5m])`},
			want: "does not parse as PromQL"},
		{name: "bad duration", gate: plan.WaveGate{Mode: plan.ModeThreshold, Query: `rate(x[5 minutes])`},
			want: "does not parse as PromQL"},
		{name: "unknown function", gate: plan.WaveGate{Mode: plan.ModeThreshold, Query: `rated(x[5m])`},
			want: `unknown function with name "rated"`},
		{name: "template does not parse", gate: plan.WaveGate{Mode: plan.ModeThreshold, Query: `up{instance=~"{{ .Nodes | regex }"}`},
			want: "parse query template"},
		{name: "template names an unknown field", gate: plan.WaveGate{Mode: plan.ModeThreshold, Query: `up{instance=~"{{ .Hosts | regex }}"}`},
			want: "render query"},
		{name: "a node lacks the label", gate: plan.WaveGate{Mode: plan.ModeThreshold, Query: `up{pod=~"{{ .Nodes | label "pod" | regex }}"}`},
			want: `node web-1 has no label "pod"`},
		{name: "baseline side is rendered too", gate: plan.WaveGate{Mode: plan.ModeDelta,
			Query: `{{ if eq .Side "baseline" }}sum(up{{ else }}sum(up){{ end }}`},
			want: "query (baseline side) does not parse as PromQL"},
		{name: "blocking alert matcher", gate: plan.WaveGate{Mode: plan.ModeThreshold, Query: `up`,
			AlertMatchers: []string{`severity="page"`, `alertname=~"High.*", team!="db"`}}},
		{name: "bad blocking alert matcher", gate: plan.WaveGate{Mode: plan.ModeThreshold, Query: `up`,
			AlertMatchers: []string{`severity="page"}) or vector(1`}},
			want: `blocking alert matcher "severity=\"page\"}) or vector(1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckQuery(tt.gate, nodes, nil, nil)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("no error, want one with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestCheckQueryUsesTheInstanceMapping: the check renders with the
// evaluator's own instance mapping, as the gate will.
func TestCheckQueryUsesTheInstanceMapping(t *testing.T) {
	p, err := NewPrometheus("http://prometheus.test:9090", WithInstance(func(n *fleet.Node) string { return n.ID + `"` }))
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*fleet.Node{{ID: "web-1"}}
	g := plan.WaveGate{Mode: plan.ModeThreshold, Query: `up{instance=~"{{ .Nodes | regex }}"}`}
	if err := CheckQuery(g, nodes, p.InstanceOf, p.Window); err != nil {
		t.Fatalf("escaped instance values must parse: %v", err)
	}
	if got := p.InstanceOf(nodes[0]); got != `web-1"` {
		t.Fatalf("InstanceOf = %q", got)
	}
}

// TestCheckQueryRendersTheEvaluatorsWindow: .Window is rendered as the
// evaluator renders it (the gate's interval, at least the minimum
// window; the step for statistical gates), not a fixed 1m. The query
// parses only with the expected window.
func TestCheckQueryRendersTheEvaluatorsWindow(t *testing.T) {
	nodes := []*fleet.Node{{ID: "web-1"}}
	q := func(want string) string {
		return `{{ if ne .Window "` + want + `" }}(window {{ .Window }}{{ end }}up{instance=~"{{ .Nodes | regex }}"}`
	}
	p, err := NewPrometheus("http://prometheus:9090", WithMinWindow(2*time.Minute), WithStep(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		mode     plan.GateMode
		interval time.Duration
		win      func(plan.WaveGate) string
		want     string
	}{
		{"defaults, interval above the minimum", plan.ModeThreshold, 5 * time.Minute, nil, "5m"},
		{"defaults, statistical", plan.ModeStatistical, 5 * time.Minute, nil, "1m"},
		{"evaluator's minimum window", plan.ModeDelta, time.Minute, p.Window, "2m"},
		{"evaluator's interval", plan.ModeBeforeAfter, 3 * time.Minute, p.Window, "3m"},
		{"evaluator's step", plan.ModeStatistical, 3 * time.Minute, p.Window, "15s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := plan.WaveGate{Name: "g", Mode: tt.mode, Interval: plan.Duration(tt.interval), Query: q(tt.want)}
			if err := CheckQuery(g, nodes, nil, tt.win); err != nil {
				t.Fatal(err)
			}
			win := tt.win
			if win == nil {
				win = DefaultWindow
			}
			if got := win(g); got != tt.want {
				t.Fatalf("window %s, want %s", got, tt.want)
			}
		})
	}
}
