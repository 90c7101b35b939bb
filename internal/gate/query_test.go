package gate

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
)

func testNodes(ids ...string) []*fleet.Node {
	out := make([]*fleet.Node, len(ids))
	for i, id := range ids {
		out[i] = &fleet.Node{ID: id, Labels: map[string]string{"instance": id + ".example:9100"}}
	}
	return out
}

func byID(n *fleet.Node) string { return n.ID }

func TestRenderQuery(t *testing.T) {
	data := QueryData{
		Nodes: testNodes("web-2", "web-1", "web-1"), Canary: testNodes("web-2", "web-1"), Baseline: testNodes("db.3"),
		Side: "canary", Rollout: "r1", Wave: "canary", Gate: "p99", Window: promDuration(90 * time.Second),
	}
	for _, c := range []struct{ tmpl, want string }{
		{`up{instance=~"{{ .Nodes | regex }}"}`, `up{instance=~"^(?:web-1|web-2)$"}`},
		{`up{instance=~"{{ .Nodes | instances ":9100" | regex }}"}`, `up{instance=~"^(?:web-1:9100|web-2:9100)$"}`},
		{`up{instance=~"{{ .Nodes | label "instance" | regex }}"}`, `up{instance=~"^(?:web-1\\.example:9100|web-2\\.example:9100)$"}`},
		{`up{instance=~"{{ .Baseline | ids | regex }}"}`, `up{instance=~"^(?:db\\.3)$"}`},
		{`rate(x[{{ .Window }}]) # {{ .Rollout }}/{{ .Wave }}/{{ .Gate }}/{{ .Side }}`, `rate(x[1m30s]) # r1/canary/p99/canary`},
	} {
		got, err := renderQuery(c.tmpl, data, byID)
		if err != nil || got != c.want {
			t.Errorf("render %s:\n got %s (%v)\nwant %s", c.tmpl, got, err, c.want)
		}
	}
	for _, c := range []struct{ tmpl, want string }{
		{`{{ .Missing }}`, "can't evaluate field Missing"},
		{`{{ .Nodes | regex`, "parse query template"},
		{`{{ .Wave | regex }}`, "expected nodes or strings"},
		{`{{ .Wave | ids }}`, "expected a list of nodes"},
		{`{{ "" | instances ":1" }}`, "expected a list of nodes"},
		{`{{ .Nodes | label "zone" }}`, `node web-2 has no label "zone"`},
		{`{{ .Nodes | label "instance" | ids }}`, "expected a list of nodes"},
		{`   `, "no query"},
		{`{{ "" }}`, "rendered empty"},
		{`{{ range .Nodes }}{{ range $.Nodes }}{{ range $.Nodes }}{{ $.Window }}{{ end }}{{ end }}{{ end }}`, ""},
	} {
		_, err := renderQuery(c.tmpl, data, byID)
		if c.want == "" {
			continue // only must not panic
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("render %s: %v, want %q", c.tmpl, err, c.want)
		}
	}
	// A node with an empty instance, and a huge rendering.
	if _, err := renderQuery(`{{ .Nodes | regex }}`, QueryData{Nodes: testNodes("")}, byID); err == nil {
		t.Error("empty instance accepted")
	}
	big := QueryData{Nodes: testNodes(strings.Repeat("x", 1000))}
	if _, err := renderQuery(strings.Repeat(`{{ .Nodes | regex }}`, 2000), big, byID); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("huge query: %v", err)
	}
	if _, err := renderQuery(`{{ .Nodes | regex }}`, QueryData{Nodes: []*fleet.Node{nil}}, byID); err == nil {
		t.Error("nil node accepted")
	}
}

// TestNodeRegexMatchesExactly checks, on awkward IDs, that the regex
// read back from its PromQL string matches each ID and nothing else.
func TestNodeRegexMatchesExactly(t *testing.T) {
	ids := []string{"a", "a.b", `we"ird`, `back\slash`, "x|y", "(p)", "ü-node", "10.0.0.1:9100", "a+", "$^"}
	checkRegex(t, ids, []string{"ab", "b", "aXb", "a.", "x", "y", "p", "10.0.0.1", "10x0x0x1:9100", "aa"})
}

func checkRegex(t testing.TB, ids, others []string) {
	t.Helper()
	s, err := nodeRegex(ids)
	if err != nil {
		t.Fatalf("nodeRegex(%q): %v", ids, err)
	}
	// PromQL double-quoted strings unescape as Go's do.
	raw, err := strconv.Unquote(`"` + s + `"`)
	if err != nil {
		t.Fatalf("regex %s is not a valid PromQL string: %v", s, err)
	}
	// Prometheus anchors label regexes itself; ours is anchored already.
	re, err := regexp.Compile("^(?:" + raw + ")$")
	if err != nil {
		t.Fatalf("regex %s does not compile: %v", raw, err)
	}
	for _, id := range ids {
		if !re.MatchString(id) {
			t.Errorf("%s does not match %q", raw, id)
		}
	}
	for _, o := range others {
		if !containsString(ids, o) && re.MatchString(o) {
			t.Errorf("%s matches %q, which is none of the nodes", raw, o)
		}
	}
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestPromDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Minute: "1m", 90 * time.Second: "1m30s", 1500 * time.Millisecond: "1s500ms", 0: "1ms", time.Hour: "1h"} {
		if got := promDuration(d); got != want {
			t.Errorf("promDuration(%s) = %s, want %s", d, got, want)
		}
	}
}
