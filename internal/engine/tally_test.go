package engine

import (
	"reflect"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

func TestTallyPhases(t *testing.T) {
	for _, c := range []struct {
		counts   map[string]int
		summary  string
		failures int
	}{
		{map[string]int{}, "0/0 succeeded", 0},
		{map[string]int{"succeeded": 6}, "6/6 succeeded", 0},
		// A failed node rolled back after a breach: counted once, as rolled back.
		{map[string]int{"succeeded": 2, "rolled-back": 3, "failed": 1}, "2/6 succeeded, 1 failed, 3 rolled back", 1},
		{map[string]int{"succeeded": 1, "quarantined": 1, "verifying": 2, "running": 1, "pending": 4, "skipped": 1},
			"1/10 succeeded, 1 quarantined, 3 in flight, 4 pending, 1 skipped", 1},
		{map[string]int{"unknown": 1, "rolling-back": 1, "queued": 1}, "0/3 succeeded, 1 unknown, 2 in flight", 0},
	} {
		tl := TallyPhases(c.counts)
		if tl.FailedEver() != c.failures {
			t.Errorf("TallyPhases(%v).FailedEver() = %d, want %d", c.counts, tl.FailedEver(), c.failures)
		}
		if got := tl.Summary(); got != c.summary {
			t.Errorf("TallyPhases(%v).Summary() = %q, want %q", c.counts, got, c.summary)
		}
		if got := tl.Failures(); got != c.failures {
			t.Errorf("TallyPhases(%v).Failures() = %d, want %d", c.counts, got, c.failures)
		}
	}
}

// TestTallyFilledIn: what the shell fills in from the steps shows too.
func TestTallyFilledIn(t *testing.T) {
	tl := TallyPhases(map[string]int{"rolled-back": 6})
	tl.RolledBackFailed = 1
	if got, want := tl.Summary(), "0/6 succeeded, 6 rolled back (1 after failing)"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	if tl.Failures() != 0 || tl.FailedEver() != 1 {
		t.Errorf("Failures = %d, FailedEver = %d; want 0 and 1", tl.Failures(), tl.FailedEver())
	}
	tl = TallyPhases(map[string]int{"succeeded": 40})
	tl.Unchanged = 12
	if got, want := tl.Summary(), "40/40 succeeded (28 changed, 12 already up to date)"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
}

func TestFormatDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{2011172614 * time.Nanosecond, "2s"},
		{2511172614 * time.Nanosecond, "2.5s"},
		{1234567 * time.Nanosecond, "1ms"},
		{24*time.Second + 400*time.Millisecond, "24s"},
		{30 * time.Minute, "30m"},
		{90*time.Minute + 29*time.Second, "1h30m"},
		{2 * time.Hour, "2h"},
		{0, "0s"},
		{-1500 * time.Millisecond, "-1.5s"},
	} {
		if got := FormatDuration(c.d); got != c.want {
			t.Errorf("FormatDuration(%s) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestClocks(t *testing.T) {
	p, err := plan.Parse("clocks.yaml", []byte(`apiVersion: drover.dev/v1
name: clocks
target:
  selector: "true"
change:
  actions:
    - package:
        packages: [{name: openssl, version: "3.0.15"}]
waves:
  - name: canary
    nodes: 1
    bakeTime: 30m
  - name: rest
gates:
  bakeTime: 5m
  node:
    minHealthy: 1m
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)
	node := func(id, wave string, ph Phase, gate Verdict, healthy time.Duration) Node {
		st := NodeState{Phase: ph, Wave: wave, Gate: gate}
		if healthy > 0 {
			st.HealthySince = now.Add(-healthy)
		}
		return Node{Node: &fleet.Node{ID: id}, State: st}
	}
	in := Input{Plan: p, Now: now, State: RolloutRunning,
		Waves: map[string]WaveStatus{
			"canary": {State: WaveBaking, BakeFrom: now.Add(-6 * time.Minute)},
			"rest":   {State: WaveRunning},
		},
		Nodes: []Node{
			node("a", "canary", PhaseSucceeded, Pass, time.Hour),
			node("b", "rest", PhaseVerifying, Pass, 20*time.Second),
			node("c", "rest", PhaseVerifying, Pass, 50*time.Second),
			node("d", "rest", PhaseVerifying, "", 0),
			node("e", "rest", PhaseRunning, "", 0),
		}}
	got := Clocks(in)
	want := []WaveClock{
		{Wave: "canary", BakeUntil: now.Add(24 * time.Minute)},
		{Wave: "rest", Soaking: 3, SoakUntil: now.Add(40 * time.Second)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Clocks = %+v\nwant     %+v", got, want)
	}
}
