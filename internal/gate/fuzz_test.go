package gate

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// FuzzRenderQuery renders arbitrary templates over arbitrary node IDs:
// no panic, and the regex of the IDs matches each of them exactly.
func FuzzRenderQuery(f *testing.F) {
	f.Add(`up{instance=~"{{ .Nodes | regex }}"}`, "a.b", `c"d`)
	f.Add(`{{ .Nodes | instances ":9100" | regex }}`, "x", "y")
	f.Add(`{{ .Nodes | label "instance" | regex }}[{{ .Window }}]`, `\`, "|")
	f.Add(`{{ range .Baseline }}{{ .ID }}{{ end }}{{ index .Nodes 5 }}`, "", "z")
	f.Add(`{{ template "x" }}{{ define "x" }}{{ .Nodes | ids | regex }}{{ end }}`, "(", ")")
	f.Fuzz(func(t *testing.T, tmpl, id1, id2 string) {
		nodes := []*fleet.Node{{ID: id1, Labels: map[string]string{"instance": id1}}, {ID: id2}}
		data := QueryData{Nodes: nodes, Canary: nodes, Side: "canary", Window: "1m"}
		q, err := renderQuery(tmpl, data, byID)
		if err == nil && strings.TrimSpace(q) == "" {
			t.Fatal("empty query accepted")
		}
		if id1 != "" && id2 != "" && utf8.ValidString(id1+id2) && !strings.ContainsRune(id1+id2, utf8.RuneError) {
			checkRegex(t, []string{id1, id2}, []string{id1 + id2, id1 + "x"})
		}
	})
}

// FuzzEvaluate feeds arbitrary sample values (as Prometheus writes them:
// "0.5", "NaN", "+Inf", or garbage) and gates through Evaluate against a
// fake Prometheus. It must not panic, must always return a verdict, and
// must pass only on finite numbers (statistical gates: at least
// minSamples finite ones per side).
func FuzzEvaluate(f *testing.F) {
	var canary, baseline string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		vals := canary
		if strings.Contains(r.Form.Get("query"), "baseline") {
			vals = baseline
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(fakeResult(strings.HasSuffix(r.URL.Path, "query_range"), vals))
	}))
	f.Cleanup(srv.Close)
	p, err := NewPrometheus(srv.URL, WithTimeout(2*time.Second), WithStep(time.Second))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(0), "x{side=\"{{ .Side }}\"}", "0.5,0.7", "0.5", "20%")
	f.Add(uint8(1), "x{side=\"{{ .Side }}\"}", "NaN", "0.5", "20%")
	f.Add(uint8(1), "x{side=\"{{ .Side }}\"}", "0.5", "+Inf", "0.1")
	f.Add(uint8(2), "x", "1,2", "-Inf", "5%")
	f.Add(uint8(3), "x{side=\"{{ .Side }}\"}", strings.Repeat("1,", 30)+"NaN", strings.Repeat("0.9,", 30), "10%")
	f.Add(uint8(3), "x", "", "", "1")
	f.Add(uint8(1), "x", "1e309,abc", "", "%")
	f.Fuzz(func(t *testing.T, m uint8, tmpl, cvals, bvals, inc string) {
		modes := []plan.GateMode{plan.ModeThreshold, plan.ModeDelta, plan.ModeBeforeAfter, plan.ModeStatistical}
		g := plan.WaveGate{Name: "g", Mode: modes[int(m)%len(modes)], Query: tmpl, MaxIncrease: inc, MinSamples: 3, Max: f64(1)}
		if m >= 128 {
			g.Direction, g.Max, g.Min = "lower-is-worse", nil, f64(0)
		}
		canary, baseline = cvals, bvals
		now := time.Unix(1_700_000_000, 0)
		req := Request{Gate: g, Nodes: testNodes("a", "b"), Baseline: testNodes("c"), BakeFrom: now.Add(-time.Minute), StartedAt: now.Add(-2 * time.Minute), Now: now}
		e := p.Evaluate(context.Background(), req)
		switch e.Verdict {
		case engine.Pass, engine.Fail, engine.Inconclusive:
		default:
			t.Fatalf("verdict %q: %s", e.Verdict, e.Reason)
		}
		if e.Reason == "" {
			t.Fatal("no reason")
		}
		if e.Verdict != engine.Pass {
			return
		}
		// The fake answers a query with the baseline values only when the
		// query names the baseline.
		sides := []string{cvals}
		if g.Mode == plan.ModeDelta || g.Mode == plan.ModeStatistical {
			bq, _ := renderQuery(tmpl, QueryData{Nodes: req.Baseline, Canary: req.Nodes, Baseline: req.Baseline, Side: "baseline", Gate: "g", Window: "1m"}, byID)
			if strings.Contains(bq, "baseline") {
				sides = append(sides, bvals)
			}
		}
		for _, side := range sides {
			finite := 0
			for _, s := range splitVals(side) {
				v, err := strconv.ParseFloat(s, 64)
				if err != nil {
					t.Fatalf("passed with unparsable value %q: %s", s, e.Reason)
				}
				if math.IsInf(v, 0) || (math.IsNaN(v) && g.Mode != plan.ModeStatistical) {
					t.Fatalf("passed with %q: %s", s, e.Reason)
				}
				if !math.IsNaN(v) {
					finite++
				}
			}
			if finite == 0 || (g.Mode == plan.ModeStatistical && finite < g.MinSamples) {
				t.Fatalf("passed with %d finite values: %s", finite, e.Reason)
			}
		}
	})
}

func splitVals(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// fakeResult writes a Prometheus query result: a vector with one series
// per value, or a matrix with one series holding all values.
func fakeResult(matrix bool, vals string) []byte {
	var b strings.Builder
	vs := splitVals(vals)
	if matrix {
		b.WriteString(`{"status":"success","data":{"resultType":"matrix","result":[`)
		if len(vs) > 0 {
			b.WriteString(`{"metric":{"instance":"a"},"values":[`)
			for i, v := range vs {
				if i > 0 {
					b.WriteByte(',')
				}
				q, _ := json.Marshal(v)
				fmt.Fprintf(&b, "[%d,%s]", 1_700_000_000+i, q)
			}
			b.WriteString("]}")
		}
		b.WriteString("]}}")
		return []byte(b.String())
	}
	b.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		q, _ := json.Marshal(v)
		fmt.Fprintf(&b, `{"metric":{"instance":"n%d"},"value":[1700000000,%s]}`, i, q)
	}
	b.WriteString("]}}")
	return []byte(b.String())
}
