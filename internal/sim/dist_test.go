package sim

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseDist(t *testing.T) {
	tests := []struct {
		in   string
		want Dist
		err  string
	}{
		{in: "5m", want: Fixed(5 * time.Minute)},
		{in: "fixed:90s", want: Fixed(90 * time.Second)},
		{in: "uniform:2m-8m", want: Dist{Kind: DistUniform, A: 2 * time.Minute, B: 8 * time.Minute}},
		{in: "normal:5m,1m", want: Dist{Kind: DistNormal, A: 5 * time.Minute, B: time.Minute}},
		{in: "lognormal:5m,0.5", want: Dist{Kind: DistLogNormal, A: 5 * time.Minute, Sigma: 0.5}},
		{in: "0s", err: "must be positive"},
		{in: "uniform:8m-2m", err: "below low"},
		{in: "uniform:2m", err: "want uniform:LOW-HIGH"},
		{in: "normal:5m", err: "want normal:MEAN,STDDEV"},
		{in: "lognormal:5m,x", err: "sigma"},
		{in: "gamma:1m", err: "unknown kind"},
		{in: "soon", err: "invalid duration"},
	}
	for _, tt := range tests {
		got, err := ParseDist(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseDist(%q) error = %v, want containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDist(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		back, err := ParseDist(got.String())
		if err != nil || back != got {
			t.Errorf("round trip of %q via %q = %+v, %v", tt.in, got.String(), back, err)
		}
	}
}

func TestDistSampleBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range []string{"uniform:2m-8m", "normal:5s,1h", "lognormal:5m,0.5", "3m"} {
		d, err := ParseDist(s)
		if err != nil {
			t.Fatal(err)
		}
		for range 2000 {
			v := d.Sample(r)
			if v < MinSample {
				t.Fatalf("%s: sample %s below %s", s, v, MinSample)
			}
			if d.Kind == DistUniform && (v < d.A || v > d.B) {
				t.Fatalf("%s: sample %s out of range", s, v)
			}
		}
	}
}

func TestFormatDuration(t *testing.T) {
	tests := map[time.Duration]string{
		0:                                     "0s",
		850 * time.Millisecond:                "850ms",
		12 * time.Second:                      "12s",
		1500 * time.Millisecond:               "1.5s",
		4*time.Minute + 30*time.Second:        "4m30s",
		2*time.Hour + 5*time.Minute:           "2h5m",
		2*time.Hour + 5*time.Second:           "2h",
		26*time.Hour + 10*time.Minute:         "1d2h",
		-90 * time.Second:                     "-1m30s",
		time.Hour:                             "1h",
		59*time.Minute + 59*time.Second:       "59m59s",
		10*time.Minute + 400*time.Millisecond: "10m",
	}
	for d, want := range tests {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParseFailure(t *testing.T) {
	tests := []struct {
		in      string
		sel     string
		p       float64
		wantErr bool
	}{
		{in: `node.hardware.class == "gen3"=0.5`, sel: `node.hardware.class == "gen3"`, p: 0.5},
		{in: `node.hardware.class == "gen3"`, sel: `node.hardware.class == "gen3"`, p: 1},
		{in: `node.labels.zone != "a" = 1`, sel: `node.labels.zone != "a"`, p: 1},
		{in: `node.os.family == "suse"=1.5`, wantErr: true},
		{in: `node.os.family == "suse"=x`, wantErr: true},
		{in: `=0.5`, wantErr: true},
	}
	for _, tt := range tests {
		f, err := ParseFailure(tt.in, FailApply)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseFailure(%q) = %+v, want error", tt.in, f)
			}
			continue
		}
		if err != nil || f.Selector != tt.sel || f.Probability != tt.p || f.Kind != FailApply {
			t.Errorf("ParseFailure(%q) = %+v, %v", tt.in, f, err)
		}
	}
}

func TestDrawIsStableAndUniform(t *testing.T) {
	if draw(7, "n1", 0) != draw(7, "n1", 0) {
		t.Fatal("draw not deterministic")
	}
	if draw(7, "n1", 0) == draw(8, "n1", 0) {
		t.Fatal("draw ignores the seed")
	}
	hits := 0
	for i := range 10000 {
		if draw(1, "node-"+strconv.Itoa(i), 0) < 0.3 {
			hits++
		}
	}
	if hits < 2500 || hits > 3500 {
		t.Fatalf("draw < 0.3 for %d of 10000, want about 3000", hits)
	}
}

func FuzzParseDist(f *testing.F) {
	for _, s := range []string{"5m", "uniform:2m-8m", "normal:5m,1m", "lognormal:5m,0.5", "fixed:1s", "uniform:-", "normal:1h,-1s"} {
		f.Add(s)
	}
	r := rand.New(rand.NewPCG(1, 1))
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDist(s)
		if err != nil {
			return
		}
		back, err := ParseDist(d.String())
		if err != nil {
			t.Fatalf("%q parsed to %+v, whose String %q does not parse: %v", s, d, d.String(), err)
		}
		if back != d {
			t.Fatalf("%q: round trip through %q changed %+v to %+v", s, d.String(), d, back)
		}
		if v := d.Sample(r); v < MinSample {
			t.Fatalf("%q: sample %s below %s", s, v, MinSample)
		}
		if _, err := ParseFailure(s, FailHealth); err == nil && strings.TrimSpace(s) == "" {
			t.Fatal("empty failure accepted")
		}
	})
}
