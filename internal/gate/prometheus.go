package gate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// Defaults of the Prometheus evaluator (see the options).
const (
	DefaultQueryTimeout = 10 * time.Second
	DefaultStep         = time.Minute
	DefaultMinWindow    = time.Minute
	// maxPoints bounds the points per series of a range query (Prometheus
	// refuses more than 11,000); a longer bake keeps its latest part.
	maxPoints = 10_000
)

// Querier runs PromQL. Prometheus's HTTP API client (v1.API, which
// NewPrometheus uses) is one; an engine inside the process over its own
// storage (internal/gate/localprom, which the demo uses) is the other.
// Errors should be *v1.Error where the HTTP API would answer with one
// (bad_data for a query that does not parse), so reasons read the same.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error)
	QueryRange(ctx context.Context, query string, r v1.Range, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error)
}

var _ Querier = v1.API(nil)

// Prometheus evaluates wave gates with PromQL: over Prometheus's HTTP API
// (NewPrometheus) or any other Querier (NewEvaluator). It is safe for
// concurrent use and holds no state between evaluations.
type Prometheus struct {
	api       Querier
	base      string
	timeout   time.Duration
	step      time.Duration
	minWindow time.Duration
	instance  func(*fleet.Node) string
	rt        http.RoundTripper
	log       *slog.Logger
}

var _ Evaluator = (*Prometheus)(nil)

// Option configures NewPrometheus.
type Option func(*Prometheus)

// WithTimeout bounds every query (connection, evaluation and response);
// default DefaultQueryTimeout. It is also sent as the query's timeout.
func WithTimeout(d time.Duration) Option { return func(p *Prometheus) { p.timeout = d } }

// WithStep sets the resolution of statistical gates' range queries,
// which is also their .Window: one sample per step per series, each over
// its own non-overlapping window. Default DefaultStep; keep it at least
// twice the scrape interval.
func WithStep(d time.Duration) Option { return func(p *Prometheus) { p.step = d } }

// WithMinWindow sets the shortest .Window of instant-mode gates (which
// is otherwise the gate's interval). Default DefaultMinWindow: four
// scrapes at Prometheus's default 15s interval.
func WithMinWindow(d time.Duration) Option { return func(p *Prometheus) { p.minWindow = d } }

// WithInstance sets how a node maps to the value of Prometheus's
// instance label, as `{{ .Nodes | regex }}` writes it. The default is
// the node ID; a fleet whose exporters listen on one port may prefer
// `{{ .Nodes | instances ":9100" | regex }}` in the query instead.
func WithInstance(f func(*fleet.Node) string) Option {
	return func(p *Prometheus) { p.instance = f }
}

// WithRoundTripper sets the HTTP transport (authentication, TLS).
func WithRoundTripper(rt http.RoundTripper) Option { return func(p *Prometheus) { p.rt = rt } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(p *Prometheus) { p.log = l } }

// NewPrometheus returns an evaluator querying the Prometheus server at
// baseURL ("http://prometheus:9090").
func NewPrometheus(baseURL string, opts ...Option) (*Prometheus, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("prometheus address %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus address %q: want http(s)://host:port", baseURL)
	}
	p, err := newEvaluator(baseURL, opts)
	if err != nil {
		return nil, err
	}
	if p.rt == nil {
		p.rt = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: min(p.timeout, 5*time.Second), KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   min(p.timeout, 5*time.Second),
			ResponseHeaderTimeout: p.timeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		}
	}
	c, err := api.NewClient(api.Config{Address: baseURL, RoundTripper: p.rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", baseURL, err)
	}
	p.api = v1.NewAPI(c)
	return p, nil
}

// NewEvaluator returns an evaluator running its queries on q, named
// source in reasons; the same templates, modes and judges as
// NewPrometheus. WithRoundTripper does not apply.
func NewEvaluator(source string, q Querier, opts ...Option) (*Prometheus, error) {
	if q == nil {
		return nil, fmt.Errorf("gate evaluator %s: no querier", source)
	}
	p, err := newEvaluator(source, opts)
	if err != nil {
		return nil, err
	}
	p.api = q
	return p, nil
}

func newEvaluator(source string, opts []Option) (*Prometheus, error) {
	p := &Prometheus{
		base:      source,
		timeout:   DefaultQueryTimeout,
		step:      DefaultStep,
		minWindow: DefaultMinWindow,
		instance:  func(n *fleet.Node) string { return n.ID },
	}
	for _, o := range opts {
		o(p)
	}
	if p.timeout <= 0 || p.step <= 0 || p.minWindow < 0 {
		return nil, fmt.Errorf("prometheus %s: timeout and step must be positive, min window not negative", source)
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// Evaluate runs one evaluation of req.Gate. It never returns Pass
// without data: every problem (no series, too few samples, a query
// error, an unreachable server, a result of the wrong type, NaN or ±Inf)
// is Fail, or Inconclusive under onNoData: inconclusive, with a reason
// saying what was wrong.
func (p *Prometheus) Evaluate(ctx context.Context, req Request) Evaluation {
	g := req.Gate
	start := time.Now()
	ev, warnings := p.evaluate(ctx, req)
	if len(warnings) > 0 {
		ev.Reason += " [prometheus warnings: " + strings.Join(warnings, "; ") + "]"
	}
	p.log.DebugContext(ctx, "gate evaluated", "rollout", req.Rollout, "wave", req.Wave, "gate", g.Name,
		"mode", string(g.Mode), "verdict", string(ev.Verdict), "reason", ev.Reason, "duration_ms", time.Since(start).Milliseconds())
	return ev
}

func (p *Prometheus) evaluate(ctx context.Context, req Request) (Evaluation, []string) {
	g := req.Gate
	if len(req.Nodes) == 0 {
		return problemf("no changed nodes to judge").evaluation(g), nil
	}
	if prob := checkGate(g); prob != nil {
		return prob.evaluation(g), nil
	}
	data := QueryData{Canary: req.Nodes, Rollout: req.Rollout, Wave: req.Wave, Gate: g.Name}
	u := unitOf(g.Query)
	switch g.Mode {
	case plan.ModeThreshold:
		data.Nodes, data.Side, data.Window = req.Nodes, "canary", p.Window(g)
		ss, w, prob := p.instant(ctx, g, data, "", req.Now)
		if prob != nil {
			return prob.evaluation(g), w
		}
		return judgeThreshold(g, u, ss), w

	case plan.ModeDelta:
		if len(req.Baseline) == 0 {
			return p.beforeAfter(ctx, req, data, u)
		}
		data.Baseline, data.Window = req.Baseline, p.Window(g)
		can, base := data, data
		can.Nodes, can.Side = req.Nodes, "canary"
		base.Nodes, base.Side = req.Baseline, "baseline"
		var cs, bs []series
		var cw, bw []string
		var cp, bp *problem
		both(func() { cs, cw, cp = p.instant(ctx, g, can, "", req.Now) },
			func() { bs, bw, bp = p.instant(ctx, g, base, "", req.Now) })
		w := append(cw, bw...)
		if prob := cmp.Or(cp, bp); prob != nil {
			return prob.evaluation(g), w
		}
		return judgeDelta(g, u, "baseline", cs, bs), w

	case plan.ModeBeforeAfter:
		return p.beforeAfter(ctx, req, data, u)

	case plan.ModeStatistical:
		if len(req.Baseline) == 0 {
			if prob := p.checkStart(req, true); prob != nil {
				return prob.evaluation(g), nil
			}
		}
		r, prob := p.bakeRange(g, req)
		if prob != nil {
			return prob.evaluation(g), nil
		}
		if len(req.Baseline) == 0 {
			return p.statisticalBefore(ctx, req, data, u, r)
		}
		data.Baseline, data.Window = req.Baseline, p.Window(g)
		can, base := data, data
		can.Nodes, can.Side = req.Nodes, "canary"
		base.Nodes, base.Side = req.Baseline, "baseline"
		var cs, bs []series
		var cw, bw []string
		var cp, bp *problem
		both(func() { cs, cw, cp = p.rangeQuery(ctx, g, can, r) },
			func() { bs, bw, bp = p.rangeQuery(ctx, g, base, r) })
		w := append(cw, bw...)
		if prob := cmp.Or(cp, bp); prob != nil {
			return prob.evaluation(g), w
		}
		return judgeStatistical(g, u, "baseline", cs, bs), w
	}
	return problemf("unknown gate mode %q", g.Mode).evaluation(g), nil // checkGate refused it already
}

// both runs a and b concurrently and waits for both.
func both(a, b func()) {
	var wg sync.WaitGroup
	wg.Go(a)
	b()
	wg.Wait()
}

// Window is the .Window g's query is rendered with (see window).
func (p *Prometheus) Window(g plan.WaveGate) string { return window(g, p.minWindow, p.step) }

// window is the .Window of g's query under an evaluator's minimum
// window and step: the step for statistical gates (one sample per
// step, each over its own window), else the gate's interval, at least
// the minimum window.
func window(g plan.WaveGate, minWindow, step time.Duration) string {
	if g.Mode == plan.ModeStatistical {
		return promDuration(step)
	}
	return promDuration(max(g.Interval.D(), minWindow))
}

// beforeAfter compares the wave's nodes now with the same nodes at the
// time the wave started (req.StartedAt): a before-after gate, and a
// delta gate without unchanged nodes to compare with.
func (p *Prometheus) beforeAfter(ctx context.Context, req Request, data QueryData, u unit) (Evaluation, []string) {
	g := req.Gate
	fallback := g.Mode != plan.ModeBeforeAfter
	if prob := p.checkStart(req, fallback); prob != nil {
		return prob.evaluation(g), nil
	}
	data.Nodes, data.Side, data.Window = req.Nodes, "canary", p.Window(g)
	var as, bs []series
	var aw, bw []string
	var ap, bp *problem
	both(func() { as, aw, ap = p.instant(ctx, g, data, " now", req.Now) },
		func() { bs, bw, bp = p.instant(ctx, g, data, " before the change", req.StartedAt) })
	w := append(aw, bw...)
	var ev Evaluation
	if prob := cmp.Or(ap, bp); prob != nil {
		ev = prob.evaluation(g)
	} else {
		ev = judgeDelta(g, u, "before", as, bs)
	}
	if fallback {
		ev.Reason += " (" + NoUnchanged + ")"
	}
	return ev, w
}

// statisticalBefore is a statistical gate without unchanged nodes: the
// wave's samples over r against the same nodes' samples over as long a
// range ending when the wave started (checked by checkStart).
func (p *Prometheus) statisticalBefore(ctx context.Context, req Request, data QueryData, u unit, r v1.Range) (Evaluation, []string) {
	g := req.Gate
	before := v1.Range{Start: req.StartedAt.Add(-r.End.Sub(r.Start)), End: req.StartedAt, Step: r.Step}
	data.Nodes, data.Side, data.Window = req.Nodes, "canary", p.Window(g)
	var cs, bs []series
	var cw, bw []string
	var cp, bp *problem
	both(func() { cs, cw, cp = p.rangeQuery(ctx, g, data, r) },
		func() { bs, bw, bp = p.rangeQuery(ctx, g, data, before) })
	w := append(cw, bw...)
	var ev Evaluation
	if prob := cmp.Or(cp, bp); prob != nil {
		ev = prob.evaluation(g)
	} else {
		ev = judgeStatistical(g, u, "before", cs, bs)
	}
	ev.Reason += " (" + NoUnchanged + ")"
	return ev, w
}

// checkStart refuses a comparison with before the change without the
// time the wave started, or with one not before now. fallback says the
// comparison stands in for missing unchanged nodes.
func (p *Prometheus) checkStart(req Request, fallback bool) *problem {
	const none = "no baseline nodes to compare with, nor the same nodes before the change: "
	switch {
	case req.StartedAt.IsZero() && fallback:
		return problemf(none + "the time the wave started is unknown (Request.StartedAt)")
	case req.StartedAt.IsZero():
		return problemf("before-after needs the time the wave started (Request.StartedAt)")
	case !req.Now.IsZero() && !req.StartedAt.Before(req.Now) && fallback:
		return problemf(none+"the wave started at %s, not before now", req.StartedAt.UTC().Format(time.RFC3339))
	case !req.Now.IsZero() && !req.StartedAt.Before(req.Now):
		return problemf("the wave started at %s, not before now", req.StartedAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// bakeRange is the range of a statistical gate's samples: from the bake
// start plus the initial delay plus one step (so the first sample's
// window holds no data from before the bake), when its first check is
// due (see firstCheck), to now, at most maxPoints steps.
func (p *Prometheus) bakeRange(g plan.WaveGate, req Request) (v1.Range, *problem) {
	if req.BakeFrom.IsZero() || req.Now.IsZero() {
		return v1.Range{}, problemf("statistical gates need the bake start and now")
	}
	start := firstCheck(g, req.BakeFrom, p.step)
	if req.Now.Before(start) {
		return v1.Range{}, problemf("too few samples: the bake window has no complete %s step yet (%s since the bake started)",
			promDuration(p.step), req.Now.Sub(req.BakeFrom).Round(time.Second))
	}
	if limit := req.Now.Add(-maxPoints * p.step); start.Before(limit) {
		start = limit
	}
	return v1.Range{Start: start, End: req.Now, Step: p.step}, nil
}

// instant renders the query for data and runs it at ts (zero: the
// server's now). The result must be a non-empty vector or a scalar of
// finite values.
func (p *Prometheus) instant(ctx context.Context, g plan.WaveGate, data QueryData, when string, ts time.Time) ([]series, []string, *problem) {
	what := data.Side + " nodes" + when
	q, err := renderQuery(g.Query, data, p.instance)
	if err != nil {
		return nil, nil, problemf("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	began := time.Now()
	val, warnings, _, err := p.api.Query(ctx, q, ts, v1.WithTimeout(p.timeout))
	p.log.DebugContext(ctx, "prometheus query", "gate", g.Name, "side", data.Side, "query", q,
		"duration_ms", time.Since(began).Milliseconds(), "err", err)
	if err != nil {
		return nil, warnings, &problem{msg: p.describe(err), err: err}
	}
	var ss []series
	switch v := val.(type) {
	case model.Vector:
		for _, s := range v {
			ss = append(ss, series{labels: brief(s.Metric), values: []float64{float64(s.Value)}})
		}
	case *model.Scalar:
		if v == nil {
			return nil, warnings, problemf("query returned no result for the %s", what)
		}
		ss = []series{{values: []float64{float64(v.Value)}}}
	case nil:
		return nil, warnings, problemf("query returned no result for the %s", what)
	default:
		return nil, warnings, problemf("query returned a %s for the %s; a %s gate needs an instant vector or a scalar", typeName(val), what, g.Mode)
	}
	if len(ss) == 0 {
		return nil, warnings, problemf("query returned no series for the %s: %s", what, shorten(q))
	}
	if prob := checkFinite(data.Side+" value"+when, ss); prob != nil {
		return nil, warnings, prob
	}
	return ss, warnings, nil
}

// rangeQuery renders the query for data and runs it over r. The result
// must be a non-empty matrix; NaN samples are left to the judge.
func (p *Prometheus) rangeQuery(ctx context.Context, g plan.WaveGate, data QueryData, r v1.Range) ([]series, []string, *problem) {
	what := data.Side + " nodes"
	q, err := renderQuery(g.Query, data, p.instance)
	if err != nil {
		return nil, nil, problemf("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	began := time.Now()
	val, warnings, _, err := p.api.QueryRange(ctx, q, r, v1.WithTimeout(p.timeout))
	p.log.DebugContext(ctx, "prometheus range query", "gate", g.Name, "side", data.Side, "query", q,
		"start", r.Start, "end", r.End, "step", r.Step, "duration_ms", time.Since(began).Milliseconds(), "err", err)
	if err != nil {
		return nil, warnings, &problem{msg: p.describe(err), err: err}
	}
	m, ok := val.(model.Matrix)
	if !ok {
		return nil, warnings, problemf("range query returned a %s for the %s; a statistical gate needs a range vector (matrix)", typeName(val), what)
	}
	var ss []series
	for _, s := range m {
		vals := make([]float64, len(s.Values))
		for i, sp := range s.Values {
			vals[i] = float64(sp.Value)
		}
		if len(vals) > 0 {
			ss = append(ss, series{labels: brief(s.Metric), values: vals})
		}
	}
	if len(ss) == 0 {
		return nil, warnings, problemf("query returned no series for the %s over the bake window (%s to %s): %s",
			what, r.Start.UTC().Format(time.TimeOnly), r.End.UTC().Format(time.TimeOnly), shorten(q))
	}
	return ss, warnings, nil
}

func typeName(v model.Value) string {
	switch v.(type) {
	case model.Matrix:
		return "range vector (matrix)"
	case model.Vector:
		return "instant vector"
	case *model.Scalar:
		return "scalar"
	case *model.String:
		return "string"
	case nil:
		return "nothing"
	}
	return v.Type().String()
}

// describe writes a query error for a reason: Prometheus's own error
// ("bad_data: parse error ..."), an unreachable server, or a timeout.
func (p *Prometheus) describe(err error) string {
	var apiErr *v1.Error
	var urlErr *url.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("prometheus did not answer within %s", p.timeout)
	case errors.Is(err, context.Canceled):
		return "evaluation canceled"
	case errors.As(err, &apiErr):
		s := apiErr.Error()
		switch {
		case apiErr.Type == v1.ErrBadResponse && strings.HasPrefix(apiErr.Msg, "unexpected value type"):
			s = "query returned a result type the gate cannot judge: " + s
		case apiErr.Type == v1.ErrBadResponse || (apiErr.Type == v1.ErrClient && apiErr.Detail != ""):
			s += " from " + p.base + " (is it Prometheus?)"
		}
		return s
	case errors.As(err, &urlErr):
		return "prometheus unreachable: " + urlErr.Err.Error()
	}
	return "prometheus query failed: " + err.Error()
}

// brief writes a series' labels short: sorted, without __name__, at most
// four ("{code="500", instance="a"}").
func brief(m model.Metric) string {
	return briefLabels(m, "__name__")
}

func briefLabels(m model.Metric, drop ...string) string {
	names := make([]string, 0, len(m))
	for k := range m {
		if !slices.Contains(drop, string(k)) {
			names = append(names, string(k))
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	const most = 4
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range names {
		if i == most {
			fmt.Fprintf(&b, ", …+%d", len(names)-most)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, string(m[model.LabelName(k)]))
	}
	b.WriteByte('}')
	return b.String()
}

func shorten(q string) string {
	const most = 300
	q = strings.Join(strings.Fields(q), " ")
	if len(q) <= most {
		return q
	}
	return q[:most] + "…"
}

// matcherRE accepts one or more PromQL label matchers separated by commas:
// name="value", name!="value", name=~"re", name!~"re" (double, single or
// back quotes).
var matcherRE = regexp.MustCompile(`^\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|` + "`[^`]*`" + `)\s*(?:,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|` + "`[^`]*`" + `)\s*)*,?\s*$`)

// FiringAlerts returns the alerts firing now that match any of the
// matchers, each once, sorted, written as the alert name and its labels
// (`HighErrorRate{instance="a", severity="page"}`). Each matcher is one
// or more PromQL label matchers (`severity="page"`); a malformed matcher
// or a failed query is an error, since an alert that cannot be checked
// must block as if it fired.
func (p *Prometheus) FiringAlerts(ctx context.Context, matchers []string) ([]string, error) {
	seen := map[string]bool{}
	for _, m := range matchers {
		if !matcherRE.MatchString(m) {
			return nil, fmt.Errorf("alert matcher %q: want label matchers such as severity=\"page\"", m)
		}
		sel := alertSelector(m)
		qctx, cancel := context.WithTimeout(ctx, p.timeout)
		val, _, _, err := p.api.Query(qctx, sel, time.Time{}, v1.WithTimeout(p.timeout))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("firing alerts %s: %w", sel, &queryError{msg: p.describe(err), err: err})
		}
		vec, ok := val.(model.Vector)
		if !ok {
			return nil, fmt.Errorf("firing alerts %s: got a %s, want an instant vector", sel, typeName(val))
		}
		for _, s := range vec {
			name := string(s.Metric[model.AlertNameLabel])
			seen[name+briefLabels(s.Metric, "__name__", "alertname", "alertstate")] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	p.log.DebugContext(ctx, "firing alerts", "matchers", len(matchers), "firing", len(out))
	return out, nil
}

// queryError carries a described query error (see describe) and the
// error behind it, for errors.Is/As.
type queryError struct {
	msg string
	err error
}

func (e *queryError) Error() string { return e.msg }
func (e *queryError) Unwrap() error { return e.err }
