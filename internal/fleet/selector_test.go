package fleet

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func testNode() *Node {
	return &Node{
		ID: "web-01",
		Facts: Facts{
			OS:             OS{Family: "debian", Name: "Debian GNU/Linux", Version: "12"},
			Kernel:         "6.1.0-26-amd64",
			Arch:           "amd64",
			Hardware:       Hardware{Class: "gen2"},
			BootID:         "b-1",
			Packages:       map[string]string{"openssl": "3.0.15-1~deb12u1", "nginx": "1.22.1-9"},
			Services:       map[string]string{"nginx.service": "active"},
			Modules:        []string{"overlay", "br_netfilter"},
			LivePatches:    []string{"lp-2024-01"},
			Runtime:        Runtime{Containerd: "1.7.20"},
			Kubelet:        "1.30.4",
			RebootRequired: true,
		},
		Labels: map[string]string{"zone": "a", "tier": "web"},
	}
}

func TestSelectorMatch(t *testing.T) {
	bare := &Node{ID: "bare"}
	tests := []struct {
		expr string
		node *Node
		want bool
	}{
		{`node.os.family == "debian"`, nil, true},
		{`node.os.family == "rhel"`, nil, false},
		{`node.id == "web-01" && node.os.version == "12"`, nil, true},
		{`node.os.name.startsWith("Debian")`, nil, true},
		{`node.kernel.startsWith("6.1")`, nil, true},
		{`node.arch == "amd64" && node.hardware.class == "gen2"`, nil, true},
		{`node.bootId == "b-1"`, nil, true},
		{`node.labels.zone == "a"`, nil, true},
		{`node.labels["zone"] in ["a", "b"]`, nil, true},
		{`node.labels.zone in ["b", "c"]`, nil, false},
		{`"openssl" in node.packages`, nil, true},
		{`node.packages.openssl.startsWith("3.0")`, nil, true},
		{`node.services["nginx.service"] == "active"`, nil, true},
		{`"overlay" in node.modules`, nil, true},
		{`node.modules.exists(m, m == "br_netfilter")`, nil, true},
		{`size(node.livePatches) == 1`, nil, true},
		{`node.runtime.containerd != "" && node.runtime.docker == ""`, nil, true},
		{`node.runtime.crio == ""`, nil, true},
		{`node.kubelet == "1.30.4"`, nil, true},
		{`node.rebootRequired`, nil, true},
		{`has(node.labels.zone)`, nil, true},
		{`has(node.labels.rack)`, nil, false},
		{`node.labels.?rack.orValue("none") == "none"`, nil, true},
		{`node.labels[?"zone"].orValue("") == "a"`, nil, true},
		{`node.os.family.upperAscii() == "DEBIAN"`, nil, true},
		// Missing keys: no match, no error.
		{`node.labels.rack == "r1"`, nil, false},
		{`node.labels.rack != "r1"`, nil, false},
		{`node.labels.tier != "db"`, bare, false},
		{`!has(node.labels.tier) || node.labels.tier != "db"`, bare, true},
		{`node.labels.?tier.orValue("") != "db"`, bare, true},
		// Short circuit absorbs the missing key when the result is decided.
		{`node.labels.rack == "r1" || node.os.family == "debian"`, nil, true},
		{`node.os.family == "rhel" && node.labels.rack == "r1"`, nil, false},
		{`node.packages.openssl == "x"`, bare, false},
		{`node.os.family == ""`, bare, true},
		{`size(node.modules) == 0 && !node.rebootRequired`, bare, true},
	}
	c, err := NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		n := tt.node
		if n == nil {
			n = testNode()
		}
		s, err := c.Compile(tt.expr)
		if err != nil {
			t.Errorf("Compile(%s): %v", tt.expr, err)
			continue
		}
		got, err := s.Match(n)
		if err != nil {
			t.Errorf("Match(%s) on %s: %v", tt.expr, n.ID, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Match(%s) on %s = %v, want %v", tt.expr, n.ID, got, tt.want)
		}
		if s.String() != tt.expr {
			t.Errorf("String() = %q, want %q", s.String(), tt.expr)
		}
	}
}

func TestSelectorCompileErrors(t *testing.T) {
	tests := []struct {
		expr      string
		line, col int
		msg       string // substring
	}{
		{`node.os.famly == "debian"`, 1, 8, "undefined field 'famly'"},
		{`node.zone == "a"`, 1, 5, "undefined field 'zone'"},
		{`node.facts.os.famly == "debian"`, 1, 14, "undefined field 'famly'"},
		{"node.os.family == \"debian\" &&\n  node.hardware.klass == \"g\"", 2, 16, "undefined field 'klass'"},
		{`nodes.id == "x"`, 1, 1, "undeclared reference to 'nodes'"},
		{`1 + 2`, 1, 1, "selector must be a bool expression, got int"},
		{`node.labels`, 1, 1, "selector must be a bool expression, got map(string, string)"},
		{`node.id`, 1, 1, "selector must be a bool expression, got string"},
		{`node.rebootRequired == "yes"`, 1, 21, "no matching overload"},
		{`node.modules == "overlay"`, 1, 14, "no matching overload"},
		{`node.os.family == `, 1, 19, "Syntax error"},
		{``, 1, 1, "Syntax error"},
		{`node.labels.zone == 1`, 1, 18, "no matching overload"},
	}
	for _, tt := range tests {
		_, err := CompileSelector(tt.expr)
		var se *SelectorError
		if !errors.As(err, &se) {
			t.Errorf("CompileSelector(%q) err = %v, want *SelectorError", tt.expr, err)
			continue
		}
		if se.Line != tt.line || se.Col != tt.col || !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("CompileSelector(%q) = %d:%d %q, want %d:%d containing %q",
				tt.expr, se.Line, se.Col, se.Msg, tt.line, tt.col, tt.msg)
		}
		if want := fmt.Sprintf("selector: %d:%d: ", se.Line, se.Col); !strings.HasPrefix(se.Error(), want) {
			t.Errorf("Error() = %q, want prefix %q", se.Error(), want)
		}
		if len(se.Issues) == 0 || se.Issues[0].Msg != se.Msg {
			t.Errorf("Issues = %+v, want first = Msg", se.Issues)
		}
	}
}

func TestSelectorMultipleIssues(t *testing.T) {
	_, err := CompileSelector(`node.a == "x" || node.b == "y"`)
	var se *SelectorError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v", err)
	}
	if len(se.Issues) != 2 || se.Issues[1].Col != 22 {
		t.Fatalf("Issues = %+v, want two, second at col 22", se.Issues)
	}
}

// TestSelectorFieldNames pins the CEL names of node fields: they come from
// json tags, so a renamed tag must fail here, not in an operator's plan.
func TestSelectorFieldNames(t *testing.T) {
	fields := []string{
		"id", "os.family", "os.name", "os.version", "kernel", "arch",
		"hardware.class", "bootId", "runtime.containerd", "runtime.docker",
		"runtime.crio", "kubelet",
	}
	for _, f := range fields {
		if _, err := CompileSelector(fmt.Sprintf("node.%s == %q", f, "")); err != nil {
			t.Errorf("field %s: %v", f, err)
		}
	}
	for _, e := range []string{
		`size(node.packages) >= 0`, `size(node.services) >= 0`, `size(node.labels) >= 0`,
		`size(node.modules) >= 0`, `size(node.livePatches) >= 0`, `node.rebootRequired || true`,
		`"openssl" in node.holds`, `size(node.facts.holds) >= 0`,
	} {
		if _, err := CompileSelector(e); err != nil {
			t.Errorf("%s: %v", e, err)
		}
	}
}

func TestSelectorCostLimit(t *testing.T) {
	n := testNode()
	n.Facts.Modules = make([]string, 200)
	for i := range n.Facts.Modules {
		n.Facts.Modules[i] = fmt.Sprint("m", i)
	}
	s, err := CompileSelector(`node.modules.all(a, node.modules.all(b, node.modules.all(c, a + b + c != "")))`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Match(n); err == nil || !strings.Contains(err.Error(), "cost limit") {
		t.Fatalf("Match = %v, want cost limit error", err)
	}
}

func TestSelectorRuntimeError(t *testing.T) {
	s, err := CompileSelector(`int(node.labels.zone) > 2`)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := s.Match(testNode())
	if err == nil || ok {
		t.Fatalf("Match = %v, %v; want error", ok, err)
	}
	if !strings.Contains(err.Error(), "web-01") {
		t.Errorf("error %q does not name the node", err)
	}
}

func TestSelectorFilterConcurrent(t *testing.T) {
	nodes, err := Generate(GenSpec{N: 2000, Mix: []Share{{"debian", 1}, {"rhel", 1}}, Zones: 3, HardwareClasses: 2}, 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := CompileSelector(`node.os.family == "debian" && node.labels.zone != "c"`)
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.Filter(nodes)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || len(want) == len(nodes) {
		t.Fatalf("Filter picked %d of %d", len(want), len(nodes))
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			got, err := s.Filter(nodes)
			if err != nil || len(got) != len(want) {
				t.Errorf("concurrent Filter = %d, %v; want %d", len(got), err, len(want))
			}
		})
	}
	wg.Wait()
}

func BenchmarkCompileSelector(b *testing.B) {
	for b.Loop() {
		if _, err := CompileSelector(`node.os.family == "debian" && node.labels.zone != "c"`); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMatch100k reports the time to match one selector against a
// 100,000-node generated fleet (one op = the whole fleet).
func BenchmarkMatch100k(b *testing.B) {
	nodes, err := Generate(GenSpec{N: 100_000, Mix: []Share{{"debian", 4}, {"rhel", 3}, {"windows", 2}, {"macos", 1}}, Zones: 3, HardwareClasses: 3}, 42)
	if err != nil {
		b.Fatal(err)
	}
	for _, expr := range []string{
		`node.os.family == "debian"`,
		`node.os.family == "debian" && node.labels.zone != "c" && node.labels.tier in ["web", "app"]`,
		`"openssl" in node.packages && node.packages.openssl.startsWith("3.")`,
		`node.labels.rack == "r1"`,
	} {
		s, err := CompileSelector(expr)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(expr, func(b *testing.B) {
			for b.Loop() {
				for _, n := range nodes {
					if _, err := s.Match(n); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// TestSelectorJSONPaths: the paths `drover nodes get -o json` shows
// (facts.*, labels.*) select as the short names do, and an unknown
// field's error names the paths there are.
func TestSelectorJSONPaths(t *testing.T) {
	n := testNode()
	for _, c := range []struct{ long, short string }{
		{`"openssl" in node.facts.packages`, `"openssl" in node.packages`},
		{`node.facts.os.family == "debian"`, `node.os.family == "debian"`},
		{`node.facts.hardware.class == "gen3"`, `node.hardware.class == "gen3"`},
		{`node.facts.kernel.startsWith("6.")`, `node.kernel.startsWith("6.")`},
		{`size(node.facts.modules) >= 0 && size(node.facts.services) >= 0 && size(node.facts.livePatches) >= 0`, `true`},
		{`node.facts.runtime.containerd == node.runtime.containerd && node.facts.kubelet == node.kubelet`, `true`},
		{`node.facts.rebootRequired == node.rebootRequired && node.facts.bootId == node.bootId && node.facts.arch == node.arch`, `true`},
	} {
		long, err := CompileSelector(c.long)
		if err != nil {
			t.Fatalf("%s: %v", c.long, err)
		}
		short, err := CompileSelector(c.short)
		if err != nil {
			t.Fatalf("%s: %v", c.short, err)
		}
		a, errA := long.Match(n)
		b, errB := short.Match(n)
		if errA != nil || errB != nil || a != b {
			t.Errorf("%s = %v (%v); %s = %v (%v)", c.long, a, errA, c.short, b, errB)
		}
	}
	_, err := CompileSelector(`node.facts.pakages.size() > 0`)
	var se *SelectorError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "undefined field 'pakages'") || !strings.Contains(se.Msg, "facts.packages") {
		t.Fatalf("unknown field error = %v; want it to name facts.packages", err)
	}
}
