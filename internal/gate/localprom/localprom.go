// Package localprom is a Prometheus inside the process: Prometheus's own
// PromQL engine over an in-memory store of series in Prometheus's chunk
// encoding, fed by Append instead of scrapes. It
// implements gate.Querier, so the production gate evaluator
// (gate.NewEvaluator) renders, runs and judges wave gates on it exactly
// as it does over Prometheus's HTTP API: a query that does not parse
// fails with the same bad_data error, a query that selects nothing fails
// for lack of data. `drover demo` feeds it its simulated nodes' metrics.
package localprom

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/drover-dev/drover/internal/gate"
)

// Defaults of the engine: Prometheus's own lookback, how long samples are
// kept, a bound on samples a query may load and on its run time.
const (
	DefaultLookback   = 5 * time.Minute
	DefaultRetention  = 2 * time.Hour
	maxSamples        = 50_000_000
	defaultTimeout    = 10 * time.Second
	maxWarningStrings = 10
)

// Prometheus is the engine and its storage. It is safe for concurrent
// use: Append while gates query.
type Prometheus struct {
	db     *memStore
	engine *promql.Engine
}

var _ gate.Querier = (*Prometheus)(nil)

// Options configure Open.
type Options struct {
	// Lookback is how far back an instant selector looks for a sample
	// (Prometheus's --query.lookback-delta); default DefaultLookback.
	// A feeder appending every second may set it to a few seconds, so a
	// series that stops being fed goes stale as quickly.
	Lookback time.Duration
	// Retention is how long samples are kept; default DefaultRetention.
	Retention time.Duration
	Logger    *slog.Logger // nil discards
}

// New returns an engine over an empty store. Samples live in memory
// only.
func New(o Options) *Prometheus {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	retention := o.Retention
	if retention <= 0 {
		retention = DefaultRetention
	}
	lookback := o.Lookback
	if lookback <= 0 {
		lookback = DefaultLookback
	}
	eng := promql.NewEngine(promql.EngineOpts{
		Logger:               log,
		MaxSamples:           maxSamples,
		Timeout:              defaultTimeout,
		LookbackDelta:        lookback,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
	})
	return &Prometheus{db: newMemStore(retention.Milliseconds()), engine: eng}
}

// Sample is one value of one series at one time.
type Sample struct {
	Labels map[string]string // with __name__
	Value  float64
}

// Append stores samples at time t. A sample not after its series' last
// one is refused, as Prometheus refuses it; the others are stored.
func (p *Prometheus) Append(t time.Time, samples []Sample) error {
	var errs []error
	for _, s := range samples {
		if err := p.db.append(labels.FromMap(s.Labels), t.UnixMilli(), s.Value); err != nil {
			errs = append(errs, fmt.Errorf("append %v: %w", s.Labels, err))
		}
	}
	return errors.Join(errs...)
}

// Query runs an instant query at ts (zero: now). Options (the HTTP
// API's timeout and limit) are ignored: the context bounds the query.
func (p *Prometheus) Query(ctx context.Context, query string, ts time.Time, _ ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	if ts.IsZero() {
		ts = time.Now()
	}
	q, err := p.engine.NewInstantQuery(ctx, p.db, nil, query, ts)
	if err != nil {
		return nil, nil, nil, apiError(err)
	}
	return p.exec(ctx, q, query)
}

// QueryRange runs a range query over r.
func (p *Prometheus) QueryRange(ctx context.Context, query string, r v1.Range, _ ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	if r.Step <= 0 {
		return nil, nil, nil, &v1.Error{Type: v1.ErrBadData, Msg: "zero or negative query resolution step widths are not accepted. Try a positive integer"}
	}
	if r.End.Before(r.Start) {
		return nil, nil, nil, &v1.Error{Type: v1.ErrBadData, Msg: "end timestamp must not be before start time"}
	}
	q, err := p.engine.NewRangeQuery(ctx, p.db, nil, query, r.Start, r.End, r.Step)
	if err != nil {
		return nil, nil, nil, apiError(err)
	}
	return p.exec(ctx, q, query)
}

func (p *Prometheus) exec(ctx context.Context, q promql.Query, query string) (model.Value, v1.Warnings, v1.Infos, error) {
	defer q.Close()
	res := q.Exec(ctx)
	warnings, infos := res.Warnings.AsStrings(query, maxWarningStrings, maxWarningStrings)
	if res.Err != nil {
		return nil, warnings, infos, apiError(res.Err)
	}
	v, err := toModel(res.Value)
	if err != nil {
		return nil, warnings, infos, &v1.Error{Type: v1.ErrExec, Msg: err.Error()}
	}
	return v, warnings, infos, nil
}

// apiError is err as Prometheus's HTTP API would report it (see its
// web/api/v1 returnAPIError), so gate reasons read the same.
func apiError(err error) error {
	var (
		perr     parser.ParseErrors
		perr1    *parser.ParseErr
		canceled promql.ErrQueryCanceled
		timeout  promql.ErrQueryTimeout
		stor     promql.ErrStorage
	)
	switch {
	case errors.As(err, &perr), errors.As(err, &perr1):
		return &v1.Error{Type: v1.ErrBadData, Msg: err.Error()}
	case errors.As(err, &canceled), errors.Is(err, context.Canceled):
		return &v1.Error{Type: v1.ErrCanceled, Msg: err.Error()}
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return &v1.Error{Type: v1.ErrTimeout, Msg: err.Error()}
	case errors.As(err, &stor):
		return &v1.Error{Type: v1.ErrServer, Msg: err.Error()}
	}
	// Anything else (a range query of a non-vector, too many samples)
	// is a bad query or an execution error, as the HTTP API says.
	return &v1.Error{Type: v1.ErrBadData, Msg: err.Error()}
}

// toModel converts the engine's value to the HTTP client's, as the JSON
// API would deliver it.
func toModel(v parser.Value) (model.Value, error) {
	switch v := v.(type) {
	case promql.Vector:
		out := make(model.Vector, 0, len(v))
		for _, s := range v {
			if s.H != nil {
				return nil, fmt.Errorf("series %s holds a native histogram; gates judge float samples", s.Metric)
			}
			out = append(out, &model.Sample{Metric: metric(s.Metric), Value: model.SampleValue(s.F), Timestamp: model.Time(s.T)})
		}
		return out, nil
	case promql.Scalar:
		return &model.Scalar{Value: model.SampleValue(v.V), Timestamp: model.Time(v.T)}, nil
	case promql.String:
		return &model.String{Value: v.V, Timestamp: model.Time(v.T)}, nil
	case promql.Matrix:
		out := make(model.Matrix, 0, len(v))
		for _, s := range v {
			if len(s.Histograms) > 0 {
				return nil, fmt.Errorf("series %s holds native histograms; gates judge float samples", s.Metric)
			}
			ss := &model.SampleStream{Metric: metric(s.Metric), Values: make([]model.SamplePair, len(s.Floats))}
			for i, f := range s.Floats {
				ss.Values[i] = model.SamplePair{Timestamp: model.Time(f.T), Value: model.SampleValue(f.F)}
			}
			out = append(out, ss)
		}
		return out, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("result of type %s", v.Type())
}

func metric(ls labels.Labels) model.Metric {
	m := make(model.Metric, ls.Len())
	ls.Range(func(l labels.Label) { m[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
	return m
}
