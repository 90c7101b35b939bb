package engine

import (
	"fmt"
	"testing"

	"github.com/drover-dev/drover/internal/plan"
)

// coverFleet has 6 strata of (os.family, hardware.class): debian and rhel
// on gen1, gen2 and gen3, 8 nodes in all.
const coverFleet = `
deb-1 os.family=debian os.version=12 hardware.class=gen1 zone=a
deb-2 os.family=debian os.version=12 hardware.class=gen2 zone=b
deb-3 os.family=debian os.version=12 hardware.class=gen3 zone=c
deb-4 os.family=debian os.version=12 hardware.class=gen1 zone=b
rhel-1 os.family=rhel os.version=9 hardware.class=gen1 zone=a
rhel-2 os.family=rhel os.version=9 hardware.class=gen2 zone=b
rhel-3 os.family=rhel os.version=9 hardware.class=gen3 zone=c
rhel-4 os.family=rhel os.version=9 hardware.class=gen2 zone=a
`

// TestAssignCanaryCover checks how a canary is sized: cover strata takes
// one node per stratum up to max, and leaves the rest uncovered and
// blocking unless allowUncovered; a canary of a set size (cover count,
// and canary: true with nodes:) leaves them uncovered as warnings.
func TestAssignCanaryCover(t *testing.T) {
	nodes := parseFleet(t, coverFleet)
	for _, tc := range []struct {
		name     string
		canary   string // the canary wave's lines after its name
		size     int    // canary nodes
		covered  int    // distinct strata among them
		unc      int
		blocking bool
	}{
		{"strata within max", "canary: {max: 10}", 6, 6, 0, false},
		{"strata explicit", "canary: {cover: strata, max: 6}", 6, 6, 0, false},
		{"strata over max", "canary: {max: 4}", 4, 4, 2, true},
		{"strata over percent max", `canary: {max: "50%"}`, 4, 4, 2, true},
		{"strata over max allowed", "canary: {max: 4, allowUncovered: true}", 4, 4, 2, false},
		{"strata default max is 10%", "canary: true", 1, 1, 5, true},
		{"count (canary true with nodes)", "canary: true\n    nodes: 4", 4, 4, 2, false},
		{"count explicit", "canary: {cover: count}\n    nodes: 7", 7, 6, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := fmt.Sprintf(`apiVersion: drover.dev/v1
name: cover
target:
  selector: "true"
change:
  actions:
    - package:
        packages: [{name: fwupd, version: "1.9.5"}]
waves:
  - name: canary
    spread: [os.family, hardware.class]
    %s
  - name: rest
`, tc.canary)
			p, err := plan.Parse("cover.yaml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			a, err := Assign(p, nodes, 3)
			if err != nil {
				t.Fatal(err)
			}
			strata := map[string]bool{}
			size := 0
			for _, n := range a.Nodes {
				if n.State.Wave == "canary" {
					size++
					strata[n.Node.Value("os.family")+"/"+n.Node.Value("hardware.class")] = true
				}
			}
			if size != tc.size || len(strata) != tc.covered {
				t.Errorf("canary of %d nodes over %d strata, want %d over %d", size, len(strata), tc.size, tc.covered)
			}
			if len(a.Uncovered) != tc.unc {
				t.Fatalf("%d uncovered strata, want %d: %+v", len(a.Uncovered), tc.unc, a.Uncovered)
			}
			for _, u := range a.Uncovered {
				if u.Blocking != tc.blocking || u.Wave != "canary" {
					t.Errorf("uncovered %+v: blocking %v, want %v", u, u.Blocking, tc.blocking)
				}
				if strata[u.Values["os.family"]+"/"+u.Values["hardware.class"]] {
					t.Errorf("uncovered %+v is covered by a canary node", u)
				}
			}
		})
	}
}

// A stratum only held-back nodes have never blocks: the plan chose to
// keep them untouched.
func TestAssignCanaryCoverHeldBack(t *testing.T) {
	p, err := plan.Parse("held.yaml", []byte(`apiVersion: drover.dev/v1
name: held
target:
  selector: "true"
change:
  actions:
    - package:
        packages: [{name: fwupd, version: "1.9.5"}]
waves:
  - name: canary
    spread: [zone]
    canary: {max: 5}
  - name: rest
limits:
  holdBack: {key: zone, domain: c, until: [canary]}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Assign(p, parseFleet(t, coverFleet), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Uncovered) != 1 || a.Uncovered[0].Blocking || a.Uncovered[0].Values["zone"] != "c" {
		t.Errorf("uncovered %+v, want zone c held back, not blocking", a.Uncovered)
	}
}
