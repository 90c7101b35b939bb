package gate

import (
	"context"
	"errors"
	"github.com/drover-dev/drover/internal/gate/gatetest"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// badCase is one malformed query, value or request and what its
// evaluation must say. Every one of them is non-Pass.
type badCase struct {
	name    string
	gate    func(g *plan.WaveGate)
	req     func(r *Request)
	verdict engine.Verdict // default Fail
	want    []string       // substrings of the reason
}

func runBadCases(t *testing.T, ev Evaluator, base Request, cases []badCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := base
			req.Gate = testGate("g", plan.ModeThreshold, "")
			req.Gate.Max = f64(1)
			req.Now = time.Now()
			req.BakeFrom = req.Now.Add(-20 * time.Second)
			req.StartedAt = req.Now.Add(-30 * time.Second)
			if c.gate != nil {
				c.gate(&req.Gate)
			}
			if c.req != nil {
				c.req(&req)
			}
			e := ev.Evaluate(context.Background(), req)
			want := cmpOr(c.verdict, engine.Fail)
			if e.Verdict != want {
				t.Errorf("verdict %q, want %q: %s", e.Verdict, want, e.Reason)
			}
			for _, w := range c.want {
				if !strings.Contains(e.Reason, w) {
					t.Errorf("reason %q does not say %q", e.Reason, w)
				}
			}
			t.Logf("%s: %s", e.Verdict, e.Reason)
		})
	}
}

func cmpOr(v, def engine.Verdict) engine.Verdict {
	if v == "" {
		return def
	}
	return v
}

func mode(m plan.GateMode, q string) func(*plan.WaveGate) {
	return func(g *plan.WaveGate) {
		g.Mode, g.Query = m, q
		if m == plan.ModeDelta || m == plan.ModeBeforeAfter {
			g.MaxIncrease = "20%"
		}
		if m == plan.ModeStatistical {
			g.MinSamples, g.Alpha, g.MinEffect = 5, DefaultAlpha, "10%"
		}
	}
}

const sel = `{instance=~"{{ .Nodes | label "instance" | regex }}"}`

// Bad queries and bad values against a real Prometheus: invalid PromQL,
// the wrong result type, NaN and ±Inf, empty histograms, no series.
func TestPrometheusBadInput(t *testing.T) {
	t.Parallel()
	can := gatetest.StartExporters(t, "can", "gen1", 1, 1100)
	base := gatetest.StartExporters(t, "base", "gen1", 1, 1200)
	ps := gatetest.StartPrometheus(t, gatetest.AddrsOf(can, base), "")
	p := newTestEvaluator(t, ps)
	req := Request{Nodes: gatetest.NodesOf(can), Baseline: gatetest.NodesOf(base)}
	// Data for a few windows, so that only the query is at fault.
	probe := req
	probe.Gate = testGate("probe", plan.ModeDelta, p99Query)
	probe.Gate.MaxIncrease = "20%"
	warmUp(t, p, probe)
	time.Sleep(testInterval)

	emptyHist := `histogram_quantile(0.99, sum by (le) (rate(idle_duration_seconds_bucket` + sel + `[{{ .Window }}])))`
	runBadCases(t, p, req, []badCase{
		{name: "invalid PromQL", gate: mode(plan.ModeThreshold, `rate(http_requests_total`+sel+`[5s]`),
			want: []string{"g: bad_data: ", "parse error", "Fail"}},
		{name: "unknown function", gate: mode(plan.ModeDelta, `rat(http_requests_total`+sel+`[5s])`),
			want: []string{"bad_data: ", `unknown function with name "rat"`}},
		{name: "matrix where a vector is needed", gate: mode(plan.ModeThreshold, `http_requests_total`+sel+`[5s]`),
			want: []string{"query returned a range vector (matrix) for the canary nodes; a threshold gate needs an instant vector or a scalar"}},
		{name: "string result", gate: mode(plan.ModeDelta, `"hello"`),
			want: []string{`query returned a result type the gate cannot judge: bad_response: unexpected value type "string"`}},
		{name: "range vector in a range query", gate: mode(plan.ModeStatistical, `http_requests_total`+sel+`[5s]`),
			want: []string{"bad_data: ", "range vector"}},
		{name: "NaN scalar", gate: mode(plan.ModeThreshold, `0/0`),
			want: []string{"canary value is NaN"}},
		{name: "+Inf vector", gate: mode(plan.ModeThreshold, `vector(1)/0`),
			want: []string{"canary value is +Inf"}},
		{name: "-Inf under min", gate: func(g *plan.WaveGate) {
			mode(plan.ModeThreshold, `-1/0`)(g)
			g.Max, g.Min = nil, f64(0)
		}, want: []string{"canary value is -Inf"}},
		{name: "NaN baseline only", gate: mode(plan.ModeDelta, `{{ if eq .Side "baseline" }}0/0{{ else }}1{{ end }}`),
			want: []string{"baseline value is NaN"}},
		{name: "NaN before the change", gate: mode(plan.ModeBeforeAfter, `0 * sum(rate(http_requests_total`+sel+`[{{ .Window }}])) / 0`),
			want: []string{"canary value now is NaN"}},
		{name: "empty histogram", gate: mode(plan.ModeDelta, emptyHist),
			want: []string{"value is NaN", "empty histogram"}},
		{name: "empty histogram, statistical", gate: mode(plan.ModeStatistical, emptyHist),
			want: []string{"too few samples: canary 0, ", "NaN dropped", "need 5 per side"}},
		{name: "no series", gate: mode(plan.ModeThreshold, `no_such_metric`+sel),
			want: []string{"query returned no series for the canary nodes: no_such_metric{instance=~"}},
		{name: "no series in the baseline", gate: mode(plan.ModeDelta, `{{ if eq .Side "baseline" }}no_such_metric{{ else }}http_requests_total{{ end }}`+sel),
			want: []string{"query returned no series for the baseline nodes"}},
		{name: "no series, onNoData inconclusive", gate: func(g *plan.WaveGate) {
			mode(plan.ModeDelta, `no_such_metric`+sel)(g)
			g.Inconclusive = "inconclusive"
		}, verdict: engine.Inconclusive, want: []string{"no series", "Inconclusive (onNoData: inconclusive)"}},
		{name: "no series over the bake window", gate: mode(plan.ModeStatistical, `no_such_metric`+sel),
			want: []string{"query returned no series for the canary nodes over the bake window"}},
		{name: "bake window shorter than a step", gate: mode(plan.ModeStatistical, p99PerNodeQuery),
			req:  func(r *Request) { r.BakeFrom = r.Now.Add(-time.Second) },
			want: []string{"too few samples: the bake window has no complete 2s step yet"}},
	})
}

// Requests and servers that go wrong before any PromQL runs: no
// Prometheus, a slow one, something else on the port, bad templates,
// incomplete gates and requests.
func TestEvaluateBadRequests(t *testing.T) {
	t.Parallel()
	closed := gatetest.FreeAddr(t) // nothing listens here any more
	unreachable, err := NewPrometheus("http://"+closed, WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*fakeNodes{{"n-1", "10.0.0.1:9100"}, {"n-2", "10.0.0.2:9100"}}
	req := Request{Nodes: fleetNodes(nodes[:1]), Baseline: fleetNodes(nodes[1:])}
	q := `up` + sel
	runBadCases(t, unreachable, req, []badCase{
		{name: "unreachable", gate: mode(plan.ModeThreshold, q),
			want: []string{"g: prometheus unreachable: dial tcp " + closed + ": connect: connection refused: Fail"}},
		{name: "unreachable, delta", gate: mode(plan.ModeDelta, q),
			want: []string{"prometheus unreachable: "}},
		{name: "template parse error", gate: mode(plan.ModeThreshold, `up{instance=~"{{ .Nodes | regex "}`),
			want: []string{"parse query template: "}},
		{name: "unknown field", gate: mode(plan.ModeThreshold, `up{instance=~"{{ .Nodez | regex }}"}`),
			want: []string{"render query: ", "Nodez"}},
		{name: "missing label", gate: mode(plan.ModeThreshold, `up{instance=~"{{ .Nodes | label "rack" | regex }}"}`),
			want: []string{`node n-1 has no label "rack"`}},
		{name: "regex of a string", gate: mode(plan.ModeThreshold, `up{instance=~"{{ .Wave | regex }}"}`),
			want: []string{"regex: expected nodes or strings, got string"}},
		{name: "regex of no nodes", gate: mode(plan.ModeThreshold, `up{instance=~"{{ .Baseline | regex }}"}`),
			want: []string{"regex: no nodes to match"}},
		{name: "empty query", gate: mode(plan.ModeThreshold, ` `),
			want: []string{"the gate has no query"}},
		{name: "unknown mode", gate: mode("canary-magic", q),
			want: []string{`unknown gate mode "canary-magic"`}},
		{name: "no mode", gate: mode("", q),
			want: []string{`unknown gate mode ""`}},
		{name: "no bounds", gate: func(g *plan.WaveGate) { mode(plan.ModeThreshold, q)(g); g.Max = nil },
			want: []string{"a threshold gate needs max or min"}},
		{name: "no nodes", gate: mode(plan.ModeThreshold, q), req: func(r *Request) { r.Nodes = nil },
			want: []string{"no changed nodes to judge"}},
		{name: "no baseline nor the wave start", gate: mode(plan.ModeDelta, q), req: func(r *Request) { r.Baseline, r.StartedAt = nil, time.Time{} },
			want: []string{"no baseline nodes to compare with, nor the same nodes before the change"}},
		{name: "no baseline nor the wave start, statistical", gate: mode(plan.ModeStatistical, q), req: func(r *Request) { r.Baseline, r.StartedAt = nil, time.Time{} },
			want: []string{"no baseline nodes to compare with, nor the same nodes before the change"}},
		{name: "before-after without the wave start", gate: mode(plan.ModeBeforeAfter, q), req: func(r *Request) { r.StartedAt = time.Time{} },
			want: []string{"before-after needs the time the wave started"}},
		{name: "before-after starting after now", gate: mode(plan.ModeBeforeAfter, q), req: func(r *Request) { r.StartedAt = r.Now.Add(time.Minute) },
			want: []string{"not before now"}},
		{name: "statistical without bake start", gate: mode(plan.ModeStatistical, q), req: func(r *Request) { r.BakeFrom = time.Time{} },
			want: []string{"statistical gates need the bake start and now"}},
	})

	// A Prometheus that does not answer in time.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Second): // well past the 200ms timeout
		}
	}))
	t.Cleanup(slow.Close)
	sp, err := NewPrometheus(slow.URL, WithTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// Something that is not Prometheus.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/ok/") {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>hello</html>"))
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(other.Close)
	np, err := NewPrometheus(other.URL)
	if err != nil {
		t.Fatal(err)
	}
	hp, err := NewPrometheus(other.URL + "/ok/")
	if err != nil {
		t.Fatal(err)
	}
	runBadCases(t, sp, req, []badCase{{name: "timeout", gate: mode(plan.ModeDelta, q), want: []string{"prometheus did not answer within 200ms"}}})
	runBadCases(t, np, req, []badCase{{name: "404", gate: mode(plan.ModeThreshold, q), want: []string{"client_error: client error: 404 from " + other.URL + " (is it Prometheus?)"}}})
	runBadCases(t, hp, req, []badCase{{name: "HTML", gate: mode(plan.ModeThreshold, q), want: []string{"bad_response: ", "(is it Prometheus?)"}}})

	// Err carries the error behind the verdict.
	ureq := req
	ureq.Gate = testGate("g", plan.ModeThreshold, q)
	ureq.Gate.Max = f64(1)
	if e := unreachable.Evaluate(context.Background(), ureq); e.Err == nil {
		t.Error("unreachable: no Err")
	} else if _, ok := errors.AsType[*url.Error](e.Err); !ok {
		t.Errorf("unreachable: Err %v is not a *url.Error", e.Err)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if e := sp.Evaluate(canceled, ureq); e.Verdict != engine.Fail || !errors.Is(e.Err, context.Canceled) || !strings.Contains(e.Reason, "evaluation canceled") {
		t.Errorf("canceled: %s %q %v", e.Verdict, e.Reason, e.Err)
	}
	if e := unreachable.Evaluate(context.Background(), Request{Gate: ureq.Gate}); e.Err != nil {
		t.Errorf("no nodes is not an error of the query: %v", e.Err)
	}

	// FiringAlerts: an alert check that cannot be made is an error.
	if _, err := unreachable.FiringAlerts(context.Background(), []string{`severity="page"`}); err == nil || !strings.Contains(err.Error(), "prometheus unreachable") {
		t.Errorf("FiringAlerts on an unreachable Prometheus: %v", err)
	} else if _, ok := errors.AsType[*url.Error](err); !ok {
		t.Errorf("FiringAlerts error does not wrap the *url.Error: %v", err)
	}
	for _, m := range []string{``, `severity`, `severity="page"} or vector(1) #`, `severity="page", `, `"page"`, `a="b" b="c"`} {
		if _, err := unreachable.FiringAlerts(context.Background(), []string{m}); err == nil || (m != `severity="page", ` && !strings.Contains(err.Error(), "alert matcher")) {
			t.Errorf("matcher %q: %v", m, err)
		}
	}
	if got, err := unreachable.FiringAlerts(context.Background(), nil); err != nil || len(got) != 0 {
		t.Errorf("no matchers: %v %v", got, err)
	}

	for _, bad := range []string{"", "prometheus:9090", "ftp://x", "http://", "http://%zz"} {
		if _, err := NewPrometheus(bad); err == nil {
			t.Errorf("NewPrometheus(%q) accepted", bad)
		}
	}
	if _, err := NewPrometheus("http://x", WithStep(0)); err == nil {
		t.Error("NewPrometheus accepted a zero step")
	}
}

type fakeNodes struct{ id, instance string }

func fleetNodes(fs []*fakeNodes) []*fleet.Node {
	out := make([]*fleet.Node, len(fs))
	for i, f := range fs {
		out[i] = &fleet.Node{ID: f.id, Labels: map[string]string{"instance": f.instance}}
	}
	return out
}
