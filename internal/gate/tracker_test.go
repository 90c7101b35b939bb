package gate

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/plan"
)

var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func TestTrackerDue(t *testing.T) {
	g := plan.WaveGate{Name: "g", Interval: plan.Duration(time.Minute), InitialDelay: plan.Duration(2 * time.Minute)}
	var tr Tracker // the zero value is ready
	bake := t0
	if tr.Due("k", g, bake, bake.Add(119*time.Second)) {
		t.Error("due before the initial delay")
	}
	if !tr.Due("k", g, bake, bake.Add(2*time.Minute)) {
		t.Error("not due at the end of the initial delay")
	}
	tr.Observe("k", g, Evaluation{Verdict: engine.Pass, Reason: "ok"}, bake.Add(2*time.Minute))
	if tr.Due("k", g, bake, bake.Add(2*time.Minute+59*time.Second)) {
		t.Error("due again within the interval")
	}
	if !tr.Due("k", g, bake, bake.Add(3*time.Minute)) {
		t.Error("not due one interval later")
	}
	if !tr.Due("other", g, bake, bake.Add(2*time.Minute)) {
		t.Error("keys are not independent")
	}
	// A zero interval (a plan without defaults) is due every time.
	g0 := plan.WaveGate{Name: "g0"}
	tr.Observe("z", g0, Evaluation{Verdict: engine.Pass}, t0)
	if !tr.Due("z", g0, t0, t0) {
		t.Error("zero interval not due")
	}
}

// A statistical gate's first check is due one step after its initial
// delay, when its sample range starts (bakeRange): not one step before,
// where the range would be empty and the first check a Fail.
func TestTrackerDueStatistical(t *testing.T) {
	g := plan.WaveGate{Name: "g", Mode: plan.ModeStatistical, Interval: plan.Duration(time.Minute), InitialDelay: plan.Duration(time.Minute)}
	tr := Tracker{Step: 30 * time.Second}
	if tr.Due("k", g, t0, t0.Add(time.Minute)) {
		t.Error("due at the end of the initial delay, before the range's first step")
	}
	if !tr.Due("k", g, t0, t0.Add(90*time.Second)) {
		t.Error("not due one step after the initial delay")
	}
	p := &Prometheus{step: 30 * time.Second}
	if StepOf(p) != tr.Step || StepOf(Unconfigured{}) != 0 {
		t.Errorf("StepOf: %s, %s", StepOf(p), StepOf(Unconfigured{}))
	}
	r, prob := p.bakeRange(g, Request{BakeFrom: t0, Now: t0.Add(90 * time.Second)})
	if prob != nil || !r.Start.Equal(r.End) {
		t.Errorf("range at the first check: %+v, %v; want one step", r, prob)
	}
	other := g
	other.Mode = plan.ModeDelta
	if !tr.Due("d", other, t0, t0.Add(time.Minute)) {
		t.Error("a delta gate waits for a step")
	}
}

func TestTrackerObserve(t *testing.T) {
	pass := Evaluation{Verdict: engine.Pass, Reason: "p99 fine"}
	fail := Evaluation{Verdict: engine.Fail, Reason: "p99 +38%"}
	inc := Evaluation{Verdict: engine.Inconclusive, Reason: "no data"}
	type step struct {
		ev      Evaluation
		want    engine.Verdict // "" while counting
		reasonS string
	}
	for _, c := range []struct {
		name         string
		count, limit int
		steps        []step
	}{
		{"count passes", 3, 1, []step{{pass, "", ""}, {pass, "", ""}, {pass, engine.Pass, "p99 fine (3/3 passing evaluations)"}, {pass, engine.Pass, "(4/3"}}},
		{"a failure fails at limit 1", 3, 1, []step{{pass, "", ""}, {fail, engine.Fail, "p99 +38% (1 consecutive failing evaluations)"}}},
		{"a failure restarts the count", 2, 2, []step{{pass, "", ""}, {fail, "", ""}, {pass, "", ""}, {pass, engine.Pass, "(2/2"}}},
		{"consecutive failures", 3, 2, []step{{fail, "", ""}, {fail, engine.Fail, "(2 consecutive failing evaluations)"}}},
		{"a pass breaks the failure run", 3, 2, []step{{fail, "", ""}, {pass, "", ""}, {fail, "", ""}, {fail, engine.Fail, "(2 consecutive"}}},
		{"inconclusive at once", 3, 3, []step{{pass, "", ""}, {inc, engine.Inconclusive, "no data"}, {pass, "", ""}, {pass, "", ""}, {pass, engine.Pass, "(3/3"}}},
		// An inconclusive evaluation does not break a failure run: the
		// conservative reading of "consecutive".
		{"inconclusive keeps failures", 3, 2, []step{{fail, "", ""}, {inc, engine.Inconclusive, ""}, {fail, engine.Fail, "(2 consecutive"}}},
		{"zero count and limit mean 1", 0, 0, []step{{pass, engine.Pass, "(1/1"}, {fail, engine.Fail, "(1 consecutive"}}},
		{"the zero verdict is a failure", 1, 1, []step{{Evaluation{Reason: "??"}, engine.Fail, "??"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := plan.WaveGate{Name: "g", Count: c.count, FailureLimit: c.limit}
			var tr Tracker
			for i, s := range c.steps {
				v, reason, ok := tr.Observe("k", g, s.ev, t0.Add(time.Duration(i)*time.Minute))
				if ok != (s.want != "") || v != s.want || !strings.Contains(reason, s.reasonS) {
					t.Fatalf("step %d (%s): got %q %q %v, want %q containing %q", i, s.ev.Verdict, v, reason, ok, s.want, s.reasonS)
				}
			}
		})
	}
}

func TestTrackerForget(t *testing.T) {
	g := plan.WaveGate{Name: "g", Count: 2, Interval: plan.Duration(time.Minute)}
	var tr Tracker
	for _, k := range []string{"r1/canary/g", "r1/rest/g", "r10/canary/g", "r2/canary/g"} {
		tr.Observe(k, g, Evaluation{Verdict: engine.Pass}, t0)
	}
	tr.Forget("r1/")
	for k, wantDue := range map[string]bool{"r1/canary/g": true, "r1/rest/g": true, "r10/canary/g": false, "r2/canary/g": false} {
		if got := tr.Due(k, g, t0, t0.Add(time.Second)); got != wantDue {
			t.Errorf("Due(%s) after Forget(r1/) = %v, want %v", k, got, wantDue)
		}
	}
	// A forgotten key counts from zero: one pass is not two.
	if _, _, ok := tr.Observe("r1/canary/g", g, Evaluation{Verdict: engine.Pass}, t0.Add(time.Minute)); ok {
		t.Error("a forgotten key kept its passes")
	}
	if _, _, ok := tr.Observe("r10/canary/g", g, Evaluation{Verdict: engine.Pass}, t0.Add(time.Minute)); !ok {
		t.Error("Forget(r1/) dropped r10/")
	}
}

// TestTrackerNeverPassesOnBadData is a property test: over random
// sequences of verdicts, the Tracker reports Pass only when the last
// Count evaluations all passed, and Fail only after FailureLimit
// failures with no pass in between.
func TestTrackerNeverPassesOnBadData(t *testing.T) {
	verdicts := []engine.Verdict{engine.Pass, engine.Pass, engine.Fail, engine.Inconclusive, ""}
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 3))
		g := plan.WaveGate{Name: "g", Count: 1 + rng.IntN(4), FailureLimit: 1 + rng.IntN(3)}
		var tr Tracker
		var hist []engine.Verdict
		for i := range 40 {
			v := verdicts[rng.IntN(len(verdicts))]
			hist = append(hist, v)
			got, _, ok := tr.Observe("k", g, Evaluation{Verdict: v}, t0.Add(time.Duration(i)*time.Minute))
			if !ok {
				continue
			}
			switch got {
			case engine.Pass:
				if len(hist) < g.Count {
					t.Fatalf("seed %d: Pass after %d evaluations, count %d", seed, len(hist), g.Count)
				}
				for _, h := range hist[len(hist)-g.Count:] {
					if h != engine.Pass {
						t.Fatalf("seed %d: Pass with %v in the last %d evaluations %v", seed, h, g.Count, hist)
					}
				}
			case engine.Fail:
				fails := 0
				for j := len(hist) - 1; j >= 0 && hist[j] != engine.Pass; j-- {
					if hist[j] != engine.Inconclusive {
						fails++
					}
				}
				if fails < g.FailureLimit {
					t.Fatalf("seed %d: Fail after %d failures, limit %d: %v", seed, fails, g.FailureLimit, hist)
				}
			case engine.Inconclusive:
				if v != engine.Inconclusive {
					t.Fatalf("seed %d: Inconclusive from %q", seed, v)
				}
			}
		}
	}
}
