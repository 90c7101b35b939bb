package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

const benchPlan = `apiVersion: drover.dev/v1
name: bench
target:
  selector: node.os.family != "macos"
change:
  actions:
    - package:
        packages: [{name: openssl, version: "3.0.15"}]
waves:
  - name: canary
    canary: true
    nodes: 20
  - name: early
    nodes: "5%"
  - name: w25
    nodes: "20%"
  - name: w50
    nodes: "25%"
  - name: w75
    nodes: "25%"
  - name: rest
limits:
  maxInFlight: "2%"
  caps:
    zone: "1%"
    hardware.class: 500
  rate:
    starts: 5000
    per: 1h
windows:
  default: always
  definitions:
    always:
      timeZone: UTC
      spans:
        - days: [Mon, Tue, Wed, Thu, Fri, Sat, Sun]
          start: "00:00"
          duration: 24h
`

// benchInput is a rollout in the middle of its third wave: earlier waves
// succeeded, the running wave has nodes in every phase and most pending.
func benchInput(b *testing.B, n int) Input {
	p, err := plan.Parse("bench.yaml", []byte(benchPlan))
	if err != nil {
		b.Fatal(err)
	}
	mix, _ := fleet.ParseMix("debian:40,rhel:30,windows:20,suse:10")
	nodes, err := fleet.Generate(fleet.GenSpec{N: n, Mix: mix, Zones: 3, HardwareClasses: 3}, 1)
	if err != nil {
		b.Fatal(err)
	}
	a, err := Assign(p, nodes, 1)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)
	in := Input{RolloutID: "r", Plan: p, State: RolloutRunning, Nodes: a.Nodes, Now: now,
		Waves: map[string]WaveStatus{
			"canary": {State: WaveSucceeded}, "early": {State: WaveSucceeded},
			"w25": {State: WaveRunning, StartedAt: now.Add(-time.Hour)},
		}}
	k := 0
	for i := range in.Nodes {
		st := &in.Nodes[i].State
		switch st.Wave {
		case "canary", "early":
			st.Phase = PhaseSucceeded
		case "w25":
			k++
			switch {
			case k%50 == 0:
				st.Phase, st.StartedAt, st.Since = PhaseRunning, now.Add(-time.Minute), now.Add(-time.Minute)
			case k%50 == 1:
				st.Phase, st.Gate, st.HealthySince, st.Since = PhaseVerifying, Pass, now.Add(-time.Minute), now.Add(-2*time.Minute)
			case k%3 == 0:
				st.Phase, st.StartedAt = PhaseSucceeded, now.Add(-30*time.Minute)
			}
		}
	}
	in.Index = NewIndex(p, in.Nodes)
	return in
}

func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			in := benchInput(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			var d Decision
			for b.Loop() {
				d = Decide(in)
			}
			if len(d.Starts) == 0 && len(d.Nodes) == 0 {
				b.Fatalf("decision did nothing: %+v", d.Waits)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/node")
		})
	}
}

func BenchmarkAssign(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			p, err := plan.Parse("bench.yaml", []byte(benchPlan))
			if err != nil {
				b.Fatal(err)
			}
			mix, _ := fleet.ParseMix("debian:40,rhel:30,windows:20,suse:10")
			nodes, err := fleet.Generate(fleet.GenSpec{N: n, Mix: mix, Zones: 3, HardwareClasses: 3}, 1)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Assign(p, nodes, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
