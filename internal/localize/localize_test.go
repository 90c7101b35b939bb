package localize

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/drover-dev/drover/internal/fleet"
)

// subjects builds nodes with hardware.class and zone from per-node specs.
func subject(out Outcome, attrs ...string) Subject {
	s := Subject{Outcome: out}
	for i := 0; i+1 < len(attrs); i += 2 {
		s.Attrs = append(s.Attrs, Attr{attrs[i], attrs[i+1]})
	}
	return s
}

// TestIssueExample: 3 of 3 failed on gen3, 0 of 9 succeeded (all gen1):
// the one-sided Fisher p is 1/C(12,3) = 1/220 = 0.004545..., and it is
// the only testable value (gen1's smallest achievable p is 84/220), so
// the correction leaves it as it is.
func TestIssueExample(t *testing.T) {
	var ss []Subject
	for i := 0; i < 3; i++ {
		ss = append(ss, subject(Failed, "hardware.class", "gen3"))
	}
	for i := 0; i < 9; i++ {
		ss = append(ss, subject(Succeeded, "hardware.class", "gen1"))
	}
	ss = append(ss, subject(Excluded, "hardware.class", "gen3")) // not done: ignored
	fs := Localise(ss, Options{})
	if len(fs) != 1 {
		t.Fatalf("findings = %v, want one", fs)
	}
	f := fs[0]
	if math.Abs(f.P-1.0/220) > 1e-12 || f.Tests != 1 {
		t.Errorf("p = %g over %d tests, want 1/220 over 1", f.P, f.Tests)
	}
	want := "3 of 3 failed nodes have hardware.class=gen3; 0 of 9 succeeded nodes do; p=0.005"
	if f.String() != want {
		t.Errorf("sentence\n got %s\nwant %s", f, want)
	}
	if s := Sentence(fs); s != "localised: "+want {
		t.Errorf("Sentence = %q", s)
	}
}

// TestFisherValues checks the exact test against hand-computed values.
func TestFisherValues(t *testing.T) {
	for _, tc := range []struct {
		n, good, draws, x int
		want              float64
	}{
		{12, 3, 3, 3, 1.0 / 220},
		// 2 of 3 failed have it, 1 of 9 succeeded: P(X>=2) with N=12, K=3, F=3
		// = [C(3,2)C(9,1) + C(3,3)] / C(12,3) = (27+1)/220
		{12, 3, 3, 2, 28.0 / 220},
		// the classic tea-tasting table: 4 of 4 right of 8 cups: 1/70
		{8, 4, 4, 4, 1.0 / 70},
		// 3 of 4: (C(4,3)C(4,1)+1)/70 = 17/70
		{8, 4, 4, 3, 17.0 / 70},
		{10, 5, 5, 0, 1},
	} {
		lf := newLogFact(tc.n)
		if got := lf.upperTail(tc.n, tc.good, tc.draws, tc.x); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("upperTail(%d,%d,%d,%d) = %.15g, want %.15g", tc.n, tc.good, tc.draws, tc.x, got, tc.want)
		}
	}
}

// TestLabelValue: a change that hurts one label value (zone b) is
// localised to it, and to nothing else.
func TestLabelValue(t *testing.T) {
	nodes, err := fleet.Generate(fleet.GenSpec{Mix: mix(t), N: 300, Zones: 3, HardwareClasses: 3}, 7)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var ss []Subject
	for _, n := range nodes {
		out := Succeeded
		if n.Labels["zone"] == "b" && rng.IntN(2) == 0 {
			out = Failed
		}
		ss = append(ss, Subject{Attrs: Attributes(n), Outcome: out})
	}
	fs := Localise(ss, Options{})
	if len(fs) == 0 || fs[0].Attribute != "labels.zone" || fs[0].Value != "b" {
		t.Fatalf("findings = %v, want labels.zone=b first", fs)
	}
	for _, f := range fs[1:] {
		if f.P <= fs[0].P && f.Attribute != "labels.zone" {
			t.Errorf("finding %v ranks with the cause", f)
		}
	}
	t.Log(Sentence(fs))
}

// TestRandomFailuresNameNothing: failures drawn at random, independent of
// every attribute, yield no finding in (nearly) every fleet; with alpha
// 0.05 family-wise, at most a few of 100 fleets may show one.
func TestRandomFailuresNameNothing(t *testing.T) {
	nodes, err := fleet.Generate(fleet.GenSpec{Mix: mix(t), N: 400, Zones: 4, HardwareClasses: 4}, 3)
	if err != nil {
		t.Fatal(err)
	}
	false_ := 0
	for seed := uint64(0); seed < 100; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		var ss []Subject
		for _, n := range nodes {
			out := Succeeded
			if rng.IntN(10) == 0 {
				out = Failed
			}
			ss = append(ss, Subject{Attrs: Attributes(n), Outcome: out})
		}
		if fs := Localise(ss, Options{}); len(fs) > 0 {
			false_++
			t.Logf("seed %d: %s", seed, Sentence(fs))
		}
	}
	if false_ > 5 {
		t.Errorf("%d of 100 random-failure fleets named a cause, want at most 5 (alpha 0.05)", false_)
	}
}

// TestWeakEvidence: one failed node proves nothing.
func TestWeakEvidence(t *testing.T) {
	ss := []Subject{subject(Failed, "hardware.class", "gen3")}
	for i := 0; i < 5; i++ {
		ss = append(ss, subject(Succeeded, "hardware.class", "gen1"))
	}
	if fs := Localise(ss, Options{}); len(fs) != 0 {
		t.Errorf("findings = %v, want none (p = 1/6)", fs)
	}
	if fs := Localise(nil, Options{}); fs != nil {
		t.Errorf("no nodes: %v", fs)
	}
}

// TestDeterministic: the same input in any order gives the same findings.
func TestDeterministic(t *testing.T) {
	var ss []Subject
	for i := 0; i < 40; i++ {
		out := Succeeded
		if i%4 == 0 {
			out = Failed
		}
		// class and rack alias each other: both are findings, ordered by name
		ss = append(ss, subject(out, "hardware.class", fmt.Sprint("gen", i%4), "labels.rack", fmt.Sprint("r", i%4)))
	}
	a := Localise(ss, Options{})
	rand.New(rand.NewPCG(5, 5)).Shuffle(len(ss), func(i, j int) { ss[i], ss[j] = ss[j], ss[i] })
	b := Localise(ss, Options{})
	if fmt.Sprint(a) != fmt.Sprint(b) || len(a) != 2 || a[0].Attribute != "hardware.class" || a[1].Attribute != "labels.rack" {
		t.Errorf("findings differ or misordered:\n%v\n%v", a, b)
	}
}

func mix(tb testing.TB) []fleet.Share {
	m, err := fleet.ParseMix(fleet.DefaultMix)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// BenchmarkLocalise: 10,000 nodes with about 50 attributes each.
func BenchmarkLocalise(b *testing.B) {
	nodes, err := fleet.Generate(fleet.GenSpec{Mix: mix(b), N: 10000, Zones: 6, HardwareClasses: 5}, 1)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	ss := make([]Subject, len(nodes))
	attrs := 0
	for i, n := range nodes {
		as := Attributes(n)
		for j := len(as); j < 50; j++ { // pad to ~50 with per-fleet extra labels
			as = append(as, Attr{fmt.Sprint("labels.x", j), fmt.Sprint(rng.IntN(20))})
		}
		attrs += len(as)
		out := Succeeded
		if n.Facts.Hardware.Class == "gen3" && rng.IntN(3) == 0 {
			out = Failed
		}
		ss[i] = Subject{Attrs: as, Outcome: out}
	}
	b.ReportMetric(float64(attrs)/float64(len(ss)), "attrs/node")
	b.ResetTimer()
	for b.Loop() {
		if fs := Localise(ss, Options{}); len(fs) == 0 {
			b.Fatal("no finding")
		}
	}
}
