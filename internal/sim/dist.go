package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// DistKind names the shape of a duration distribution.
type DistKind string

const (
	DistFixed     DistKind = "fixed"
	DistUniform   DistKind = "uniform"
	DistNormal    DistKind = "normal"
	DistLogNormal DistKind = "lognormal"
)

// MinSample is the smallest duration a distribution yields: samples below
// it (a normal's left tail) are clamped to it.
const MinSample = time.Second

// Dist is a distribution of durations. The zero value is not usable; build
// one with ParseDist or Fixed.
//
//	5m                  always 5 minutes
//	uniform:2m-8m       uniformly between 2 and 8 minutes
//	normal:5m,1m        mean 5m, standard deviation 1m (clamped to >= 1s)
//	lognormal:5m,0.5    median 5m, sigma 0.5 of the underlying normal
type Dist struct {
	Kind  DistKind
	A     time.Duration // fixed value, uniform low, normal mean, lognormal median
	B     time.Duration // uniform high, normal standard deviation
	Sigma float64       // lognormal shape
}

// Fixed returns a distribution that always yields d.
func Fixed(d time.Duration) Dist { return Dist{Kind: DistFixed, A: d} }

// ParseDist parses the textual forms documented on Dist.
func ParseDist(s string) (Dist, error) {
	s = strings.TrimSpace(s)
	kind, args, ok := strings.Cut(s, ":")
	if !ok {
		d, err := parsePositive(s)
		if err != nil {
			return Dist{}, fmt.Errorf("duration distribution %q: %w", s, err)
		}
		return Fixed(d), nil
	}
	bad := func(err error) (Dist, error) {
		return Dist{}, fmt.Errorf("duration distribution %q: %w", s, err)
	}
	switch DistKind(kind) {
	case DistFixed:
		d, err := parsePositive(args)
		if err != nil {
			return bad(err)
		}
		return Fixed(d), nil
	case DistUniform:
		lo, hi, ok := strings.Cut(args, "-")
		if !ok {
			return bad(fmt.Errorf("want uniform:LOW-HIGH, e.g. uniform:2m-8m"))
		}
		a, err := parsePositive(lo)
		if err != nil {
			return bad(err)
		}
		b, err := parsePositive(hi)
		if err != nil {
			return bad(err)
		}
		if b < a {
			return bad(fmt.Errorf("high %s is below low %s", b, a))
		}
		return Dist{Kind: DistUniform, A: a, B: b}, nil
	case DistNormal:
		m, sd, ok := strings.Cut(args, ",")
		if !ok {
			return bad(fmt.Errorf("want normal:MEAN,STDDEV, e.g. normal:5m,1m"))
		}
		a, err := parsePositive(m)
		if err != nil {
			return bad(err)
		}
		b, err := time.ParseDuration(strings.TrimSpace(sd))
		if err != nil || b < 0 {
			return bad(fmt.Errorf("standard deviation %q: want a duration >= 0", sd))
		}
		return Dist{Kind: DistNormal, A: a, B: b}, nil
	case DistLogNormal:
		m, sg, ok := strings.Cut(args, ",")
		if !ok {
			return bad(fmt.Errorf("want lognormal:MEDIAN,SIGMA, e.g. lognormal:5m,0.5"))
		}
		a, err := parsePositive(m)
		if err != nil {
			return bad(err)
		}
		sigma, err := strconv.ParseFloat(strings.TrimSpace(sg), 64)
		if err != nil || sigma < 0 || sigma > 5 || math.IsNaN(sigma) {
			return bad(fmt.Errorf("sigma %q: want a number between 0 and 5", sg))
		}
		return Dist{Kind: DistLogNormal, A: a, Sigma: sigma}, nil
	}
	return bad(fmt.Errorf("unknown kind %q (want a duration, uniform:, normal: or lognormal:)", kind))
}

func parsePositive(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration %s must be positive", d)
	}
	return d, nil
}

// Sample draws one duration from r, never below MinSample.
func (d Dist) Sample(r *rand.Rand) time.Duration {
	var v time.Duration
	switch d.Kind {
	case DistUniform:
		v = d.A
		if d.B > d.A {
			v += time.Duration(r.Int64N(int64(d.B-d.A) + 1))
		}
	case DistNormal:
		v = d.A + time.Duration(r.NormFloat64()*float64(d.B))
	case DistLogNormal:
		f := float64(d.A) * math.Exp(r.NormFloat64()*d.Sigma)
		v = time.Duration(min(f, float64(30*24*time.Hour)))
	default:
		v = d.A
	}
	return max(v, MinSample)
}

// Mean returns the distribution's expected value (before clamping).
func (d Dist) Mean() time.Duration {
	switch d.Kind {
	case DistUniform:
		return (d.A + d.B) / 2
	case DistLogNormal:
		return time.Duration(float64(d.A) * math.Exp(d.Sigma*d.Sigma/2))
	}
	return d.A
}

// String returns the form ParseDist reads, exact to the nanosecond.
func (d Dist) String() string {
	switch d.Kind {
	case DistUniform:
		return fmt.Sprintf("uniform:%s-%s", exact(d.A), exact(d.B))
	case DistNormal:
		return fmt.Sprintf("normal:%s,%s", exact(d.A), exact(d.B))
	case DistLogNormal:
		return fmt.Sprintf("lognormal:%s,%g", exact(d.A), d.Sigma)
	case "":
		return ""
	}
	return exact(d.A)
}

// exact formats d for people when that loses nothing, else as Go does.
func exact(d time.Duration) string {
	if s := FormatDuration(d); mustParse(s) == d {
		return s
	}
	return d.String()
}

func mustParse(s string) time.Duration {
	v, err := time.ParseDuration(s)
	if err != nil {
		return -1
	}
	return v
}

// Set parses s into d, so that a *Dist can serve as a command-line flag.
func (d *Dist) Set(s string) error {
	v, err := ParseDist(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Type names the flag value type in help output.
func (d *Dist) Type() string { return "dist" }

// FormatDuration renders d for people: "4m30s", "2h5m", "1d3h", "850ms";
// zero is "0s". Units below the second are dropped past one minute.
func FormatDuration(d time.Duration) string {
	if d < 0 {
		return "-" + FormatDuration(-d)
	}
	if d < time.Second {
		if d == 0 {
			return "0s"
		}
		return d.Round(time.Millisecond).String()
	}
	if d < time.Minute {
		return strconv.FormatFloat(d.Round(100*time.Millisecond).Seconds(), 'f', -1, 64) + "s"
	}
	d = d.Round(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h := d / time.Hour
	d -= h * time.Hour
	m := d / time.Minute
	d -= m * time.Minute
	s := d / time.Second
	var b strings.Builder
	if days > 0 {
		fmt.Fprintf(&b, "%dd", days)
	}
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 && days == 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if s > 0 && days == 0 && h == 0 {
		fmt.Fprintf(&b, "%ds", s)
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}
