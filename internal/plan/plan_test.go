package plan

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const minimal = `apiVersion: drover.dev/v1
name: minimal
target:
  selector: node.os.family == "debian"
change:
  actions:
    - package:
        packages:
          - {name: openssl, version: 3.0.16-1}
waves:
`

func mustParse(t *testing.T, src string) *Plan {
	t.Helper()
	p, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse:\n%v", err)
	}
	return p
}

func TestParseQuantity(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Quantity
		ok   bool
	}{
		{"20%", Quantity{Value: 20, Percent: true}, true},
		{"0.5%", Quantity{Value: 0.5, Percent: true}, true},
		{"100%", Quantity{Value: 100, Percent: true}, true},
		{"0%", Quantity{}, false},
		{"101%", Quantity{}, false},
		{"-5%", Quantity{}, false},
		{"5", Quantity{}, false},
		{"abc%", Quantity{}, false},
		{"NaN%", Quantity{}, false},
		{"1e2%", Quantity{}, false},
	} {
		got, err := ParseQuantity(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseQuantity(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestQuantityJSON(t *testing.T) {
	for _, q := range []Quantity{{Count: 5}, {Value: 20, Percent: true}, {Value: 2.5, Percent: true}} {
		b, err := json.Marshal(q)
		if err != nil {
			t.Fatal(err)
		}
		var back Quantity
		if err := json.Unmarshal(b, &back); err != nil || back != q {
			t.Errorf("JSON round trip of %v: %s -> %v, %v", q, b, back, err)
		}
	}
	var q Quantity
	if err := json.Unmarshal([]byte(`"abc"`), &q); err == nil {
		t.Error(`"abc" accepted as a quantity`)
	}
}

func TestDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		str  string
	}{
		{"90s", 90 * time.Second, "1m30s"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"2d", 48 * time.Hour, "2d"},
		{"1d12h", 36 * time.Hour, "36h"},
		{"10m", 10 * time.Minute, "10m"},
		{"1h", time.Hour, "1h"},
		{"0", 0, "0s"},
	} {
		d, err := ParseDuration(tt.in)
		if err != nil || d.D() != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, d.D(), err, tt.want)
			continue
		}
		if d.String() != tt.str {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.want, d.String(), tt.str)
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Errorf("round trip of %q: %v, %v", d.String(), back, err)
		}
		b, _ := json.Marshal(d)
		var j Duration
		if err := json.Unmarshal(b, &j); err != nil || j != d {
			t.Errorf("JSON round trip of %v: %s -> %v, %v", d, b, j, err)
		}
	}
	for _, bad := range []string{"-5m", "d", "5 minutes", "", "1x", "99999999999d"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

func TestAfterDefaults(t *testing.T) {
	p := mustParse(t, minimal+`  - name: a
    nodes: 1
  - name: b
    after: []
  - name: c
`)
	got := [][]string{p.Waves[0].After, p.Waves[1].After, p.Waves[2].After}
	want := [][]string{{}, {}, {"b"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after = %q, want %q", got, want)
	}
	for i, w := range p.Waves {
		if w.After == nil {
			t.Errorf("waves[%d].After is nil after Defaults", i)
		}
	}
	out, err := Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out), "after: []"); n != 2 {
		t.Errorf("want 2 explicit roots in the effective plan, got %d:\n%s", n, out)
	}
	b, err := json.Marshal(p.Waves[0])
	if err != nil || !strings.Contains(string(b), `"after":[]`) {
		t.Errorf("JSON of a root wave = %s, %v; want an explicit empty after", b, err)
	}
}

func TestRampExpansion(t *testing.T) {
	p := mustParse(t, minimal+`  - name: canary
    nodes: 1
  - name: main
    ramp: [2, 5, "20%", "100%"]
    approvals: 1
    selector: node.labels.zone != "c"
  - name: last
    after: [main]
  - name: zone-c
limits:
  holdBack: {key: zone, domain: c, until: [main]}
`)
	var names []string
	for _, w := range p.Waves {
		names = append(names, w.Name)
	}
	if want := "canary main-1 main-2 main-3 main-4 last zone-c"; strings.Join(names, " ") != want {
		t.Fatalf("waves = %s, want %s", strings.Join(names, " "), want)
	}
	steps := p.Waves[1:5]
	for i, s := range steps {
		if s.RampOf != "main" || s.Selector != `node.labels.zone != "c"` || s.Ramp != nil {
			t.Errorf("step %d: %+v", i+1, s)
		}
		wantApprovals := 0
		if i == 0 {
			wantApprovals = 1
		}
		if s.Approvals != wantApprovals {
			t.Errorf("step %d approvals = %d, want %d", i+1, s.Approvals, wantApprovals)
		}
	}
	if got := steps[2].Nodes.String(); got != "20%" {
		t.Errorf("main-3 nodes = %s, want 20%%", got)
	}
	if !reflect.DeepEqual(steps[0].After, []string{"canary"}) || !reflect.DeepEqual(steps[3].After, []string{"main-3"}) {
		t.Errorf("ramp after: %q, %q", steps[0].After, steps[3].After)
	}
	if !reflect.DeepEqual(p.Waves[5].After, []string{"main-4"}) {
		t.Errorf("last.after = %q, want [main-4]", p.Waves[5].After)
	}
	if !reflect.DeepEqual(p.Waves[6].After, []string{"last"}) {
		t.Errorf("zone-c.after = %q, want [last]", p.Waves[6].After)
	}
	if !reflect.DeepEqual(p.Limits.HoldBack.Until, []string{"main-4"}) {
		t.Errorf("holdBack.until = %q, want [main-4]", p.Limits.HoldBack.Until)
	}
	// Positions follow the waves: main-3's nodes is the third ramp entry,
	// and "last" (now waves[5]) keeps its own lines.
	if got := p.Where("waves[3].nodes"); got != "t.yaml:14:18" {
		t.Errorf("Where(waves[3].nodes) = %s, want t.yaml:14:18", got)
	}
	if got := p.Where("waves[5].after"); got != "t.yaml:18:12" {
		t.Errorf("Where(waves[5].after) = %s, want t.yaml:18:12", got)
	}
	again := clonePlan(t, p)
	Defaults(again)
	assertSamePlan(t, p, again)
}

func TestDefaults(t *testing.T) {
	p := mustParse(t, minimal+`  - name: canary
    nodes: 2
    canary: true
  - name: rest
failureBudget:
  onBreach: pause
gates:
  bakeTime: 5m
  node:
    probes:
      - kind: http
        url: http://localhost/healthz
  wave:
    - name: s
      mode: statistical
      query: up
`)
	if p.Change.Reboot != RebootIfRequired || p.Change.Actions[0].Package.Operation != PackageUpgrade ||
		p.Change.Actions[0].Package.Rollback != RollbackPreviousVersion {
		t.Errorf("change defaults: %+v", p.Change)
	}
	if p.Limits.MaxInFlight.String() != "1" || p.Windows.Label != "maintenance-window" {
		t.Errorf("limits/windows defaults: %v %q", p.Limits.MaxInFlight, p.Windows.Label)
	}
	if p.Budget.Max != nil {
		t.Errorf("overall budget defaulted to %v; want none", p.Budget.Max)
	}
	w := p.Waves[0]
	if !reflect.DeepEqual(w.Spread, DefaultSpread()) || w.Budget.Max.String() != "0" || w.Budget.Action != BreachPause || w.BakeTime.D() != 5*time.Minute {
		t.Errorf("wave defaults: %+v budget %+v", w, w.Budget)
	}
	if p.Waves[1].Spread != nil {
		t.Errorf("non-canary wave got a spread: %q", p.Waves[1].Spread)
	}
	pr := p.Gates.Node.Probes[0]
	if pr.Status != 200 || pr.Timeout.D() != 5*time.Second || pr.Interval.D() != 10*time.Second {
		t.Errorf("probe defaults: %+v", pr)
	}
	g := p.Gates.Wave[0]
	if g.Interval.D() != time.Minute || g.Count != 3 || g.FailureLimit != 1 || g.Inconclusive != "fail" ||
		g.MinSamples != 100 || g.Alpha != 0.005 || g.MinEffect != "10%" || g.Direction != "higher-is-worse" {
		t.Errorf("wave gate defaults: %+v", g)
	}
	if p.Gates.OnFail != BreachRollbackWave || p.Gates.ProgressDeadline.D() != 30*time.Minute || p.Gates.Node.HealthyDeadline.D() != 10*time.Minute {
		t.Errorf("gate defaults: %+v", p.Gates)
	}
}

func TestWhereAndErrorf(t *testing.T) {
	p := mustParse(t, minimal+`  - name: canary
    nodes: 2
    selector: node.labels.zone == "a"
limits:
  caps:
    hardware.class: 2
`)
	for path, want := range map[string]string{
		"waves[0].selector":             "t.yaml:13:15",
		"waves[0].canary":               "t.yaml:11:5", // defaulted: the wave itself
		`limits.caps["hardware.class"]`: "t.yaml:16:21",
		"nothing.here":                  "t.yaml:1:1",
	} {
		if got := p.Where(path); got != want {
			t.Errorf("Where(%q) = %q, want %q", path, got, want)
		}
	}
	e := p.Errorf("waves[0].selector", "wave %s selects no node", "canary")
	if e.Error() != "t.yaml:13:15: waves[0].selector: wave canary selects no node" {
		t.Errorf("Errorf = %q", e.Error())
	}
	var built Plan
	if got := built.Where("waves[0]"); got != "" {
		t.Errorf("Where on a plan built in code = %q, want empty", got)
	}
}

func TestCELPositions(t *testing.T) {
	for _, tt := range []struct{ selector, want string }{
		// CEL puts a bad field at the dot before it.
		{`node.os.familly == "debian"`, "t.yaml:4:20"},
		{`'node.os.familly == "debian"'`, "t.yaml:4:21"},
		{"|\n    node.os.family == \"debian\" &&\n      node.labelz.zone == \"a\"", "t.yaml:6:11"},
		{">-\n    node.os.family == \"debian\" &&\n      node.labelz.zone == \"a\"", "t.yaml:6:11"},
	} {
		src := strings.Replace(minimal, `node.os.family == "debian"`, tt.selector, 1) + "  - name: all\n"
		_, err := Parse("t.yaml", []byte(src))
		var es Errors
		if !errors.As(err, &es) || len(es) != 1 {
			t.Errorf("selector %q: want one error, got %v", tt.selector, err)
			continue
		}
		if got := strings.Join(strings.SplitN(es[0].Error(), ":", 4)[:3], ":"); got != tt.want {
			t.Errorf("selector %q: error at %s, want %s (%v)", tt.selector, got, tt.want, es[0])
		}
	}
}

func TestAliasesAndMerge(t *testing.T) {
	p := mustParse(t, minimal+`  - &base
    name: a
    nodes: 1
    failureBudget: {maxFailures: 1, onBreach: pause}
  - <<: *base
    name: b
`)
	if p.Waves[1].Name != "b" || p.Waves[1].Budget.Action != BreachPause || p.Waves[1].Nodes.Count != 1 {
		t.Errorf("merged wave: %+v", p.Waves[1])
	}
}

func TestSuggest(t *testing.T) {
	fields := []string{"maxInFlight", "caps", "rate", "holdBack", "jitter"}
	for got, want := range map[string]string{
		"maxConcurent":  "maxInFlight",
		"maxConcurrent": "maxInFlight",
		"max_in_flight": "maxInFlight",
		"hold_back":     "holdBack",
		"jiter":         "jitter",
		"banana":        "",
	} {
		if s := suggest(got, fields); s != want {
			t.Errorf("suggest(%q) = %q, want %q", got, s, want)
		}
	}
}

func TestAliasBomb(t *testing.T) {
	src := minimal + "  - name: a\n" + `x: &a ["x","x","x","x","x","x","x","x","x"]
y: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
z: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
w: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
`
	if _, err := Parse("bomb.yaml", []byte(src)); err == nil {
		t.Fatal("unknown top-level keys accepted")
	}
}
