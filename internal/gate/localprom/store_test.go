package localprom

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

var s0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func gauge(v float64) []Sample {
	return []Sample{{Labels: map[string]string{"__name__": "g", "instance": "a"}, Value: v}}
}

// Samples span several chunks (one is cut every 120) and every one is
// read back, in order, by a range query.
func TestStoreAcrossChunks(t *testing.T) {
	p := New(Options{})
	for i := range 500 {
		if err := p.Append(s0.Add(time.Duration(i)*time.Second), gauge(float64(i))); err != nil {
			t.Fatal(err)
		}
	}
	v, _, _, err := p.QueryRange(context.Background(), "g", v1.Range{Start: s0, End: s0.Add(499 * time.Second), Step: time.Second})
	m, ok := v.(model.Matrix)
	if err != nil || !ok || len(m) != 1 || len(m[0].Values) != 500 {
		t.Fatalf("%v %v", v, err)
	}
	for i, sp := range m[0].Values {
		if float64(sp.Value) != float64(i) {
			t.Fatalf("sample %d = %v", i, sp.Value)
		}
	}
}

// A sample not after its series' last one is refused, as Prometheus
// refuses it.
func TestStoreRefusesOutOfOrder(t *testing.T) {
	p := New(Options{})
	if err := p.Append(s0.Add(time.Minute), gauge(1)); err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{s0, s0.Add(time.Minute)} {
		if err := p.Append(at, gauge(2)); err == nil || !strings.Contains(err.Error(), "out of order") {
			t.Errorf("append at %s: %v", at.Format(time.TimeOnly), err)
		}
	}
}

// Chunks wholly older than the retention are dropped.
func TestStoreRetention(t *testing.T) {
	p := New(Options{Retention: 5 * time.Minute, Lookback: time.Minute})
	for i := range 1200 { // 20 minutes
		if err := p.Append(s0.Add(time.Duration(i)*time.Second), gauge(float64(i))); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if v, _, _, err := p.Query(ctx, "g", s0.Add(3*time.Minute)); err != nil || len(v.(model.Vector)) != 0 {
		t.Errorf("a sample older than the retention is still there: %v %v", v, err)
	}
	if v, _, _, err := p.Query(ctx, "g", s0.Add(19*time.Minute)); err != nil || len(v.(model.Vector)) != 1 || v.(model.Vector)[0].Value != 1140 {
		t.Errorf("a recent sample: %v %v", v, err)
	}
}

// Queries read while samples are appended (run with -race).
func TestStoreConcurrent(t *testing.T) {
	p := New(Options{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 1000 {
			if err := p.Append(s0.Add(time.Duration(i)*time.Second), gauge(float64(i))); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 50 {
		if _, _, _, err := p.Query(context.Background(), "max_over_time(g[1h])", s0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}
