package web

import (
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/drover-dev/drover/internal/engine"
)

func TestParseGateChart(t *testing.T) {
	g := parseGateChart("p99 latency 414 ms vs baseline 300 ms (+38%), U-test p=0.003 over 120+600 samples", engine.Fail)
	if g == nil {
		t.Fatal("no chart")
	}
	if g.Metric != "p99 latency" || g.Canary != 414 || g.Base != 300 || g.Unit != "ms" || g.Delta != "+38%" || g.P != "0.003" || !g.Fail {
		t.Errorf("chart %+v", g)
	}
	if g.CanW != 200 || g.BaseW >= g.CanW {
		t.Errorf("bars %v %v", g.CanW, g.BaseW)
	}
	if got := g.Label(); got != "p99 latency: canary 414 ms vs baseline 300 ms (+38%)" {
		t.Errorf("label %q", got)
	}
	g = parseGateChart("p99-before-after p99 312 ms (worst of 3 series) vs before 300 ms (median of 3 series) (+4.0%), allowed +20%: pass", engine.Pass)
	if g == nil || g.Ref != "before" || g.Canary != 312 || g.Base != 300 || g.Label() != "p99-before-after p99: after 312 ms vs before 300 ms (+4%)" {
		t.Errorf("before-after chart %+v", g)
	}
	for _, reason := range []string{"no samples for the wave's nodes", "p99 latency 306 ms over 180 samples, no unchanged baseline left", ""} {
		if g := parseGateChart(reason, engine.Pass); g != nil {
			t.Errorf("%q: chart %+v, want none", reason, g)
		}
	}
}

func TestNaturalLess(t *testing.T) {
	got := []string{"debian 12", "3.0.15", "debian 9", "3.0.9", "3.0.15-1", "windows 2019", "10.0"}
	slices.SortFunc(got, naturalLess)
	want := []string{"3.0.9", "3.0.15", "3.0.15-1", "10.0", "debian 9", "debian 12", "windows 2019"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSSEFilterDropsEventLines(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "text/event-stream")
	f := &sseFilter{w: rec}
	for _, chunk := range []string{"id: 7\nevent: node.ph", "ase\ndata: {}\n\n", ": keepalive\n\n"} {
		if n, err := f.Write([]byte(chunk)); err != nil || n != len(chunk) {
			t.Fatalf("write %q: %d %v", chunk, n, err)
		}
	}
	if got, want := rec.Body.String(), "id: 7\ndata: {}\n\n: keepalive\n\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{"/ui/rollouts/x": "/ui/rollouts/x", "https://evil.example/": "/ui/fleet",
		"//evil.example/ui/": "/ui/fleet", "/ui/login": "/ui/fleet", "": "/ui/fleet", "/v1/nodes": "/ui/fleet"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
