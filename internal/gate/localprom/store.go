package localprom

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
)

// memStore holds float series in memory in Prometheus's own XOR chunk
// encoding (tsdb/chunkenc), a chunk cut every chunkSamples samples and
// chunks older than the retention dropped. It is the engine's
// storage.Queryable. It is not Prometheus's TSDB: that package links
// Prometheus's configuration and with it the AWS, Azure and Google
// clients of remote write, megabytes the demo does not use.
type memStore struct {
	retention int64 // milliseconds

	mu     sync.RWMutex
	series map[uint64][]*memSeries // by labels hash; a slice for collisions
}

// chunkSamples is when a chunk is cut, as Prometheus's head does.
const chunkSamples = 120

type memSeries struct {
	lset   labels.Labels
	closed []memChunk // immutable, oldest first
	head   memChunk   // the chunk being appended to
	app    chunkenc.Appender
	lastT  int64
}

type memChunk struct {
	c          *chunkenc.XORChunk
	mint, maxt int64
	n          int
}

func newMemStore(retentionMillis int64) *memStore {
	return &memStore{retention: retentionMillis, series: map[uint64][]*memSeries{}}
}

// append adds one sample. Like Prometheus it refuses a sample older than
// or as old as its series' last one.
func (m *memStore) append(lset labels.Labels, t int64, v float64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := lset.Hash()
	var s *memSeries
	for _, c := range m.series[h] {
		if labels.Equal(c.lset, lset) {
			s = c
			break
		}
	}
	if s == nil {
		s = &memSeries{lset: lset, lastT: t - 1}
		m.series[h] = append(m.series[h], s)
	}
	if t <= s.lastT {
		return fmt.Errorf("out of order sample: %d ms is not after the series' last sample at %d ms", t, s.lastT)
	}
	if s.app == nil || s.head.n >= chunkSamples {
		if s.app != nil {
			s.closed = append(s.closed, s.head)
		}
		c := chunkenc.NewXORChunk()
		app, err := c.Appender()
		if err != nil {
			return err
		}
		s.head, s.app = memChunk{c: c, mint: t}, app
	}
	s.app.Append(t, v)
	s.head.maxt, s.lastT = t, t
	s.head.n++
	// Retention: drop closed chunks wholly before it.
	drop := 0
	for drop < len(s.closed) && s.closed[drop].maxt < t-m.retention {
		drop++
	}
	if drop > 0 {
		s.closed = slices.Delete(s.closed, 0, drop)
	}
	return nil
}

// Querier implements storage.Queryable.
func (m *memStore) Querier(mint, maxt int64) (storage.Querier, error) {
	return &memQuerier{m: m, mint: mint, maxt: maxt}, nil
}

type memQuerier struct {
	m          *memStore
	mint, maxt int64
}

// selectSeries returns the series matching every matcher with samples
// in [mint, maxt], sorted by labels. The head chunk is copied (appends
// go on while the query reads); closed chunks are shared.
func (q *memQuerier) selectSeries(mint, maxt int64, ms []*labels.Matcher) []storage.Series {
	q.m.mu.RLock()
	defer q.m.mu.RUnlock()
	var out []storage.Series
	for _, bucket := range q.m.series {
		for _, s := range bucket {
			if !matches(s.lset, ms) {
				continue
			}
			var its []chunkenc.Iterable
			for _, c := range s.closed {
				if c.maxt >= mint && c.mint <= maxt {
					its = append(its, c.c)
				}
			}
			if s.app != nil && s.head.maxt >= mint && s.head.mint <= maxt {
				head, err := chunkenc.FromData(chunkenc.EncXOR, slices.Clone(s.head.c.Bytes()))
				if err == nil {
					its = append(its, head)
				}
			}
			if len(its) == 0 {
				continue
			}
			out = append(out, &storage.SeriesEntry{Lset: s.lset, SampleIteratorFn: func(it chunkenc.Iterator) chunkenc.Iterator {
				return storage.ChainSampleIteratorFromIterables(it, its)
			}})
		}
	}
	slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return out
}

func matches(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (q *memQuerier) Select(_ context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	return &seriesSet{list: q.selectSeries(mint, maxt, ms), i: -1}
}

func (q *memQuerier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]bool{}
	for _, s := range q.selectSeries(q.mint, q.maxt, ms) {
		if v := s.Labels().Get(name); v != "" {
			seen[v] = true
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil, nil
}

func (q *memQuerier) LabelNames(_ context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]bool{}
	for _, s := range q.selectSeries(q.mint, q.maxt, ms) {
		s.Labels().Range(func(l labels.Label) { seen[l.Name] = true })
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil, nil
}

func (q *memQuerier) Close() error { return nil }

type seriesSet struct {
	list []storage.Series
	i    int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.list) }
func (s *seriesSet) At() storage.Series                { return s.list[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }
