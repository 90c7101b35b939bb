package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
)

// quickPlan rolls a package through a canary and the rest with a short
// soak and bake, so that step durations dominate the makespan.
const quickPlan = `apiVersion: drover.dev/v1
name: quick
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - package:
        packages:
          - name: openssl
            version: 3.0.16
waves:
  - name: canary
    nodes: 4
    canary: true
  - name: rest
limits:
  maxInFlight: 10
gates:
  bakeTime: 10s
  node:
    minHealthy: 5s
`

// observations are steps of "package" that took about active on every
// node of nodes except rhel ones, with a 2 s dispatch.
func observations(nodes []*fleet.Node, active time.Duration) []Observation {
	var obs []Observation
	for i, n := range nodes {
		if n.Facts.OS.Family == "rhel" {
			continue
		}
		jitter := time.Duration(i%5) * time.Second
		obs = append(obs, Observation{HistoryKey: nodeKey("package", n), Dispatch: 2 * time.Second,
			Execution: active - 5*time.Second + jitter, Probe: 5 * time.Second, Soak: 5 * time.Second})
	}
	return obs
}

func TestHistoryRoundTripAndFallback(t *testing.T) {
	nodes := genFleet(t, 60)
	h := Aggregate(observations(nodes, 30*time.Second), DefaultStart())
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(h); err != nil {
		t.Fatal(err)
	}
	back, err := ReadHistory(&b)
	if err != nil {
		t.Fatalf("ReadHistory of an export: %v", err)
	}
	if back.Steps != h.Steps || len(back.Buckets) != len(h.Buckets) {
		t.Fatalf("round trip: %d steps %d buckets, want %d and %d", back.Steps, len(back.Buckets), h.Steps, len(h.Buckets))
	}
	var top *Bucket
	for i := range back.Buckets {
		if back.Buckets[i].HistoryKey == (HistoryKey{Action: "package"}) {
			top = &back.Buckets[i]
		}
	}
	if top == nil || top.Samples != h.Steps {
		t.Fatalf("no action-only bucket over all %d steps: %+v", h.Steps, top)
	}
	if got := top.Active.At(0.5); got < 30*time.Second || got > 34*time.Second {
		t.Errorf("median active %s, want 30–34s", got)
	}

	m := back.Model("package", nil)
	var rhel, deb []*fleet.Node
	for _, n := range nodes {
		switch n.Facts.OS.Family {
		case "rhel":
			rhel = append(rhel, n)
		case "debian":
			deb = append(deb, n)
		}
	}
	// The action-only bucket covers every family, rhel included.
	if e := m.Explain(rhel); !strings.HasPrefix(e, "learned from") {
		t.Errorf("rhel with an action-only bucket: %q", e)
	}
	// A history of another action kind covers nothing: default model, said so.
	if e := back.Model("kernel", nil).Explain(deb); !strings.Contains(e, "no history for kernel on debian") || !strings.Contains(e, "default model") {
		t.Errorf("kernel: %q", e)
	}

	for _, bad := range []string{`{"version": 2, "buckets": []}`, `{"version": 1, "buckets": [{"action": "package", "dispatch": [1], "active": []}]}`,
		`{"version": 1, "surprise": true}`} {
		if _, err := ReadHistory(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadHistory(%s) accepted", bad)
		}
	}
}

// TestLearnedModelPredicts: with a history of 30 s steps the simulation
// of a plan takes about the learned time, deterministically per seed,
// where the default model (3–7 min steps) is far off; per wave the notes
// say where the durations come from.
func TestLearnedModelPredicts(t *testing.T) {
	p := mustPlan(t, quickPlan)
	nodes := genFleet(t, 40)
	h := Aggregate(observations(nodes, 30*time.Second), DefaultStart())
	cfg := Config{Plan: p, Nodes: nodes, Seed: 7, Tick: time.Second, Durations: h.Model(ActionKey(p), nil)}
	a, b := run(t, cfg), run(t, cfg)
	if a.MakespanSeconds != b.MakespanSeconds {
		t.Fatalf("same seed, makespans %v and %v", a.MakespanSeconds, b.MakespanSeconds)
	}
	// canary: dispatch 2 + ~32 + soak 5 + bake 10; rest: 36 nodes in 4
	// rounds of 10 at ~39 s, + bake 10: about 4 minutes.
	if a.MakespanSeconds < 150 || a.MakespanSeconds > 260 {
		t.Errorf("learned makespan %.0fs, want 150–260s\n%s", a.MakespanSeconds, Summary(a))
	}
	def := run(t, Config{Plan: p, Nodes: nodes, Seed: 7, Tick: time.Second})
	if def.MakespanSeconds < 3*a.MakespanSeconds {
		t.Errorf("default model %.0fs, learned %.0fs: want the default far longer", def.MakespanSeconds, a.MakespanSeconds)
	}
	notes := strings.Join(a.Notes, "\n")
	if !strings.Contains(notes, "wave canary: learned from") || !strings.Contains(notes, "wave rest: ") {
		t.Errorf("notes do not say per wave where durations come from:\n%s", notes)
	}
}

// TestRunFromSnapshot: a run started from a rollout's state halfway
// (canary done, some rest nodes in flight) does not run what is done
// again and ends before a run from the start.
func TestRunFromSnapshot(t *testing.T) {
	p := mustPlan(t, quickPlan)
	nodes := genFleet(t, 40)
	h := Aggregate(observations(nodes, 30*time.Second), DefaultStart())
	model := h.Model(ActionKey(p), nil)
	full := run(t, Config{Plan: p, Nodes: nodes, Seed: 3, Tick: time.Second, Durations: model})

	a, err := engine.Assign(p, nodes, 3)
	if err != nil {
		t.Fatal(err)
	}
	start := DefaultStart()
	now := start.Add(60 * time.Second)
	snap := &Snapshot{Nodes: a.Nodes, State: engine.RolloutRunning, Waves: map[string]engine.WaveStatus{
		"canary": {State: engine.WaveSucceeded, StartedAt: start, BakeFrom: start.Add(40 * time.Second), EndedAt: start.Add(50 * time.Second)},
		"rest":   {State: engine.WaveRunning, StartedAt: start.Add(50 * time.Second)},
	}}
	inFlight := 0
	for i := range snap.Nodes {
		st := &snap.Nodes[i].State
		switch {
		case st.Wave == "canary":
			st.Phase, st.Attempt, st.StartedAt, st.Since, st.HealthySince = engine.PhaseSucceeded, 1, start, start.Add(40*time.Second), start.Add(34*time.Second)
		case st.Wave == "rest" && inFlight < 10:
			inFlight++
			st.Phase, st.Attempt, st.StartedAt, st.Since = engine.PhaseRunning, 1, start.Add(50*time.Second), start.Add(52*time.Second)
		}
	}
	res := run(t, Config{Plan: p, Seed: 3, Tick: time.Second, Durations: model, Start: now, From: snap})
	if !res.Succeeded() {
		t.Fatalf("from the snapshot: %s\n%s", res.State, Summary(res))
	}
	if res.Nodes.Succeeded != 40 {
		t.Errorf("%d nodes succeeded, want 40", res.Nodes.Succeeded)
	}
	if w := res.Waves[0]; w.EndedAtSeconds == nil || *w.EndedAtSeconds != -10 {
		t.Errorf("canary end %v, want its real end, 10 s before the snapshot", w.EndedAtSeconds)
	}
	// The rest from 60 s in: the 10 in flight finish ~8 s later, then 26
	// more nodes in 3 rounds, then the bake.
	if rest := res.MakespanSeconds; rest > full.MakespanSeconds-40 || rest < 60 {
		t.Errorf("from the snapshot %.0fs to the end, from the start %.0fs", rest, full.MakespanSeconds)
	}
}

// TestGateTiming: with GateTiming a wave gate passes after its initial
// delay and count intervals, as the server's tracker decides, not at
// once.
func TestGateTiming(t *testing.T) {
	src := strings.Replace(quickPlan, "  bakeTime: 10s\n", `  bakeTime: 1s
  wave:
    - name: latency
      mode: threshold
      query: up
      max: 1
      initialDelay: 20s
      interval: 5s
      count: 3
`, 1)
	p := mustPlan(t, src)
	nodes := genFleet(t, 20)
	cfg := Config{Plan: p, Nodes: nodes, Seed: 1, Tick: time.Second, Durations: PlanDurations{StepDist: Fixed(10 * time.Second)}}
	instant := run(t, cfg)
	cfg.GateTiming = true
	timed := run(t, cfg)
	if !timed.Succeeded() {
		t.Fatalf("timed: %s", Summary(timed))
	}
	// Two waves, each waiting 20 s + 2 × 5 s more for its gate.
	extra := timed.MakespanSeconds - instant.MakespanSeconds
	if math.Abs(extra-2*30) > 4 {
		t.Errorf("gate timing added %.0fs, want about 60s (instant %.0fs, timed %.0fs)", extra, instant.MakespanSeconds, timed.MakespanSeconds)
	}
}

// TestDelaysNameTheFreeze: a freeze ahead of a rollout pushes its end
// out, and the result says which.
func TestDelaysNameTheFreeze(t *testing.T) {
	src := quickPlan + `windows:
  freezes:
    - name: release-week
      from: 2026-01-05T00:01:00Z
      to: 2026-01-05T02:00:00Z
`
	p := mustPlan(t, src)
	res := run(t, Config{Plan: p, Nodes: genFleet(t, 20), Seed: 1, Tick: time.Second, Durations: PlanDurations{StepDist: Fixed(30 * time.Second)}})
	if !res.Succeeded() || res.MakespanSeconds < 2*3600 {
		t.Fatalf("want a rollout held by the freeze until 02:00: %s", Summary(res))
	}
	if len(res.Delays) == 0 || !strings.Contains(res.Delays[0], "release-week") {
		t.Errorf("delays %q do not name the freeze", res.Delays)
	}
}
