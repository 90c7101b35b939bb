package nodediff

import (
	"fmt"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/pkgversion"
)

func node(id, fam, ver, class, zone string, pkgs map[string]string) *Node {
	return &Node{ID: id, Facts: fleet.Facts{OS: fleet.OS{Family: fam, Version: ver}, Kernel: "6.1.0-26-amd64", Arch: "amd64",
		Hardware: fleet.Hardware{Class: class}, Packages: pkgs}, Labels: map[string]string{"zone": zone}}
}

// lines renders sections one difference a line: tier dimension key failing|healthy.
func lines(ss []Section) string {
	var b strings.Builder
	for _, s := range ss {
		for _, d := range s.Differences {
			fmt.Fprintf(&b, "%s %s %s %s|%s\n", s.Tier, s.Dimension, d.Key, d.Failing, d.Healthy)
		}
		if s.More > 0 {
			fmt.Fprintf(&b, "%s %s +%d\n", s.Tier, s.Dimension, s.More)
		}
	}
	return b.String()
}

func TestDiffRanking(t *testing.T) {
	base := map[string]string{"openssl": "3.0.14", "curl": "7.88", "zlib": "1.2.13"}
	for _, c := range []struct {
		name          string
		failing, peer func() *Node
		maxPer        int
		want          string
	}{{
		// The failing node's facts still hold the version it rolled back
		// from (openssl 3.0.16): the rollout tier shows the change once.
		name: "rollout change first, then known, then labels",
		failing: func() *Node {
			n := node("f", "debian", "12", "gen1", "a", map[string]string{"openssl": "3.0.16", "curl": "7.88", "zlib": "1.2.13", "libc6": "2.36-9"})
			n.Facts.Kernel = "6.1.0-27-amd64"
			n.Labels["tier"] = "web"
			n.Changed = &Changed{Items: []Change{{Name: "openssl", From: "3.0.14", To: "3.0.16"}}, RolledBack: true}
			return n
		},
		peer: func() *Node {
			n := node("h", "debian", "12", "gen1", "b", map[string]string{"openssl": "3.0.14", "curl": "7.74", "zlib": "1.2.13", "libc6": "2.36-9+deb12u1"})
			n.Labels["tier"] = "db"
			return n
		},
		want: `rollout rollout openssl 3.0.14 → 3.0.16 (rolled back)|3.0.14 (not changed)
known kernel release 6.1.0-27-amd64|6.1.0-26-amd64
known packages libc6 2.36-9|2.36-9+deb12u1
known packages curl 7.88|7.74
known zone zone a|b
other labels tier web|db
`,
	}, {
		name: "the same change on both comes after a change on the failing node only",
		failing: func() *Node {
			n := node("f", "debian", "12", "gen1", "a", base)
			n.Changed = &Changed{Items: []Change{{Name: "openssl", From: "3.0.14", To: "3.0.16"}, {Name: "curl", From: "7.74", To: "7.88"}}}
			return n
		},
		peer: func() *Node {
			n := node("h", "debian", "12", "gen1", "a", base)
			n.Changed = &Changed{Items: []Change{{Name: "openssl", From: "3.0.14", To: "3.0.16"}}}
			return n
		},
		want: `rollout rollout curl 7.74 → 7.88|7.88 (not changed)
rollout rollout openssl 3.0.14 → 3.0.16|3.0.14 → 3.0.16
`,
	}, {
		name:    "identical nodes: nothing",
		failing: func() *Node { return node("f", "debian", "12", "gen1", "a", base) },
		peer:    func() *Node { return node("h", "debian", "12", "gen1", "a", base) },
	}, {
		name: "bounded: top N per dimension, critical packages first, the rest counted",
		failing: func() *Node {
			p := map[string]string{"openssl": "3.0.16"}
			for i := range 5 {
				p[fmt.Sprintf("pkg%d", i)] = "2"
			}
			return node("f", "debian", "12", "gen1", "a", p)
		},
		peer: func() *Node {
			p := map[string]string{"openssl": "3.0.14"}
			for i := range 5 {
				p[fmt.Sprintf("pkg%d", i)] = "1"
			}
			return node("h", "debian", "12", "gen1", "a", p)
		},
		maxPer: 2,
		want: `known packages openssl 3.0.16|3.0.14
known packages pkg0 2|1
known packages +4
`,
	}, {
		name: "os, runtime, agent, services, hardware, modules",
		failing: func() *Node {
			n := node("f", "ubuntu", "24.04", "gen3", "a", nil)
			n.Facts.Runtime.Containerd = "1.7.2"
			n.Facts.Services = map[string]string{"myapp.service": "failed"}
			n.Facts.Modules = []string{"overlay"}
			n.AgentVersion, n.Protocol = "v1.2.0", 4
			return n
		},
		peer: func() *Node {
			n := node("h", "ubuntu", "22.04", "gen2", "a", nil)
			n.Facts.Runtime.Containerd = "1.6.9"
			n.Facts.Modules = []string{"overlay", "br_netfilter"}
			n.AgentVersion, n.Protocol = "v1.1.0", 3
			return n
		},
		want: `known os version 24.04|22.04
known services myapp.service failed|(none)
known runtime containerd 1.7.2|1.6.9
known agent version v1.2.0|v1.1.0
known agent protocol 4|3
known hardware class gen3|gen2
known modules module |br_netfilter
`,
	}} {
		t.Run(c.name, func(t *testing.T) {
			got := lines(Diff(c.failing(), c.peer(), nil, c.maxPer))
			if got != c.want {
				t.Fatalf("diff:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}

func TestDiffReasons(t *testing.T) {
	f := node("f", "debian", "12", "gen1", "a", map[string]string{"openssl": "3.0.16", "curl": "7.74"})
	h := node("h", "debian", "12", "gen1", "a", map[string]string{"openssl": "3.0.14", "curl": "7.88", "jq": "1.6"})
	ss := Diff(f, h, nil, 0)
	want := map[string]string{
		"openssl": "failing node's version is newer; a library or tool whose updates often break services",
		"curl":    "failing node's version is older",
		"jq":      "installed on the healthy node only",
	}
	for _, d := range ss[0].Differences {
		if !strings.Contains(d.Reason, want[d.Key]) {
			t.Errorf("%s: reason %q, want it to contain %q", d.Key, d.Reason, want[d.Key])
		}
		if d.Dimension != "packages" {
			t.Errorf("%s: dimension %q", d.Key, d.Dimension)
		}
	}
}

func TestPickPeer(t *testing.T) {
	failing := node("f", "debian", "12", "gen1", "a", map[string]string{"openssl": "3.0.14"})
	for _, c := range []struct {
		name       string
		candidates []*Node
		want       string
		reason     string
	}{{
		name: "same class and zone beats another class",
		candidates: []*Node{
			node("x", "debian", "12", "gen2", "a", nil),
			node("y", "debian", "12", "gen1", "a", nil),
			node("z", "rhel", "9", "gen1", "a", nil),
		},
		want:   "y",
		reason: "untouched, the most similar of 3 healthy nodes (score 21/21: same os debian, version 12, hardware class gen1, zone a, arch amd64, kernel 6.1.0-26-amd64; 1 package differs)",
	}, {
		name: "tie: succeeded in the rollout before untouched",
		candidates: func() []*Node {
			a, b := node("a", "debian", "12", "gen1", "a", nil), node("b", "debian", "12", "gen1", "a", nil)
			b.State = "succeeded"
			return []*Node{a, b}
		}(),
		want: "b",
	}, {
		name: "tie: fewer differing packages",
		candidates: []*Node{
			node("a", "debian", "12", "gen1", "a", map[string]string{"openssl": "3.0.13"}),
			node("b", "debian", "12", "gen1", "a", map[string]string{"openssl": "3.0.14"}),
		},
		want: "b",
	}, {
		name: "tie: smaller ID",
		candidates: []*Node{
			node("c", "debian", "12", "gen1", "b", nil),
			node("b", "debian", "12", "gen1", "b", nil),
		},
		want: "b",
	}, {
		name: "zone outweighs kernel and arch",
		candidates: func() []*Node {
			a := node("a", "debian", "12", "gen1", "b", nil)
			return []*Node{a, func() *Node {
				n := node("b", "debian", "12", "gen1", "a", nil)
				n.Facts.Kernel, n.Facts.Arch = "x", "arm64"
				return n
			}()}
		}(),
		want: "b",
	}, {
		name:       "the failing node itself is never its peer",
		candidates: []*Node{node("f", "debian", "12", "gen1", "a", nil)},
	}} {
		t.Run(c.name, func(t *testing.T) {
			p, ok := PickPeer(failing, c.candidates)
			if !ok {
				if c.want != "" {
					t.Fatalf("no peer, want %s", c.want)
				}
				return
			}
			if p.Node.ID != c.want {
				t.Fatalf("peer %s (%s), want %s", p.Node.ID, p.Reason, c.want)
			}
			if c.reason != "" && p.Reason != c.reason {
				t.Fatalf("reason %q\nwant   %q", p.Reason, c.reason)
			}
		})
	}
}

func TestChangesOf(t *testing.T) {
	apply := `{"actions":[{"index":0,"change":{"summary":"s","none":false,"items":[{"name":"openssl","from":"3.0.14","to":"3.0.16"}]},
"outcome":{"summary":"o","changed":[{"name":"openssl","from":"3.0.14","to":"3.0.16"}]}}]}`
	for _, c := range []struct {
		name  string
		steps []Step
		want  string
	}{
		{"apply then rollback", []Step{{Kind: "apply", Result: "failed", Evidence: []byte(apply)}, {Kind: "rollback", Result: "rolled-back", Evidence: []byte(`{"restores":"s1"}`)}},
			"&{[{openssl 3.0.14 3.0.16}] true}"},
		{"failed before its outcome: pre-flight's items", []Step{{Kind: "apply", Result: "failed",
			Evidence: []byte(`{"actions":[{"change":{"items":[{"name":"curl","from":"1","to":"2"}]}}]}`)}}, "&{[{curl 1 2}] false}"},
		{"succeeded without outcome changed nothing", []Step{{Kind: "apply", Result: "succeeded",
			Evidence: []byte(`{"actions":[{"change":{"none":true}}]}`)}}, "<nil>"},
		{"no evidence", []Step{{Kind: "apply"}}, "<nil>"},
		{"two applies: the last version wins", []Step{{Kind: "apply", Result: "failed", Evidence: []byte(apply)},
			{Kind: "apply", Result: "succeeded", Evidence: []byte(`{"actions":[{"outcome":{"changed":[{"name":"openssl","from":"3.0.14","to":"3.0.17"}]}}]}`)}},
			"&{[{openssl 3.0.14 3.0.17}] false}"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ChangesOf(c.steps)
			if err != nil {
				t.Fatal(err)
			}
			if s := fmt.Sprint(got); s != c.want {
				t.Fatalf("ChangesOf = %s, want %s", s, c.want)
			}
		})
	}
	if _, err := ChangesOf([]Step{{Kind: "apply", Evidence: []byte(`{"actions":7}`)}}); err == nil || !strings.Contains(err.Error(), "step 1 (apply) evidence") {
		t.Fatalf("bad evidence: %v", err)
	}
}

// FuzzChangesOf: any evidence either parses into changes with names or
// is refused; a diff built from it is bounded and never panics.
func FuzzChangesOf(f *testing.F) {
	f.Add([]byte(`{"actions":[{"outcome":{"changed":[{"name":"openssl","from":"1","to":"2"}]}}]}`), "failed")
	f.Add([]byte(`{"actions":[{"change":{"items":[{"name":"a","from":"","to":"~1"}]}}]}`), "failed")
	f.Add([]byte(`null`), "")
	f.Fuzz(func(t *testing.T, ev []byte, result string) {
		ch, err := ChangesOf([]Step{{Kind: "apply", Result: result, Evidence: ev}})
		if err != nil {
			return
		}
		if ch != nil {
			for _, c := range ch.Items {
				if c.Name == "" {
					t.Fatalf("a change without a name: %+v", ch)
				}
				_ = pkgversion.Debian(c.From, c.To)
			}
		}
		f := node("f", "debian", "12", "gen1", "a", nil)
		f.Changed = ch
		for _, s := range Diff(f, node("h", "debian", "12", "gen1", "a", nil), nil, 3) {
			if len(s.Differences) > 3 {
				t.Fatalf("section %s has %d differences", s.Dimension, len(s.Differences))
			}
		}
	})
}

// TestDiffDimensionsByTier: sections come by tier whatever the order of
// the dimensions given, so a new kind of data slots into its tier.
func TestDiffDimensionsByTier(t *testing.T) {
	f, h := node("f", "debian", "12", "gen1", "a", nil), node("h", "debian", "12", "gen2", "a", nil)
	f.Labels["tier"] = "web"
	resolver := Dimension{Name: "resolver", Tier: TierKnown, Compare: func(f, h *Node) []Difference {
		return []Difference{{Key: "nameserver", Failing: "10.0.0.9", Healthy: "10.0.0.2"}}
	}}
	dims := append([]Dimension{{Name: "labels", Tier: TierOther, Compare: compareLabels}, resolver}, Dimensions()...)
	var got []string
	for _, s := range Diff(f, h, dims, 0) {
		got = append(got, s.Dimension)
	}
	if fmt.Sprint(got) != "[resolver hardware labels labels]" {
		t.Fatalf("sections %v", got)
	}
}
