package rehearsal_test

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/rehearsal"
	"github.com/drover-dev/drover/internal/sim"
)

// selectors exercises every input of the assignment: a target selector,
// a wave selector, a canary spread and a held-back zone.
const selectors = `apiVersion: drover.dev/v1
name: kernel
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - package:
        packages: [{name: linux-image, version: "6.1.0"}]
      noRollbackOn: [macos]
waves:
  - name: canary
    canary: true
    nodes: 4
    spread: [zone, os.family]
  - name: web
    selector: node.labels.tier == "web"
    nodes: 50%
  - name: rest
limits:
  maxInFlight: 6
  holdBack:
    key: zone
    domain: c
    until: [canary, web]
`

func mustPlan(t *testing.T, name string, text []byte) *plan.Plan {
	t.Helper()
	p, err := plan.Parse(name, text)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func record(t *testing.T, p *plan.Plan, nodes []*fleet.Node, seed uint64) (*engine.Assignment, rehearsal.Record) {
	t.Helper()
	a, err := engine.Assign(p, nodes, seed)
	if err != nil {
		t.Fatal(err)
	}
	r, err := rehearsal.Build(p, nodes, a)
	if err != nil {
		t.Fatal(err)
	}
	return a, r
}

// TestRehearsalIsTheRollout is the promise, as a property: on the demo
// fleet and on fleets as `simulate --nodes N` generates them, for the
// demo's plans and one using every input of the assignment, a dry run
// (the simulator) and a rollout created with the same seed (Assign on
// the inventory in any order, as the server loads it) give every wave
// the same members, the canary included.
func TestRehearsalIsTheRollout(t *testing.T) {
	mix, err := fleet.ParseMix(fleet.DefaultMix)
	if err != nil {
		t.Fatal(err)
	}
	fleets := map[string]fleet.GenSpec{
		"demo":         {N: 40, Mix: mix, Zones: 3, HardwareClasses: 3},
		"simulate-100": {N: 100, Mix: mix, Zones: 3, HardwareClasses: 3},
		"simulate-500": {N: 500, Mix: mix, Zones: 5, HardwareClasses: 4},
	}
	plans := map[string]*plan.Plan{"selectors": mustPlan(t, "selectors.yaml", []byte(selectors))}
	for _, f := range []string{"1-hurts-gen3.yaml", "2-good-change.yaml"} {
		text, err := os.ReadFile("../demo/plans/" + f)
		if err != nil {
			t.Fatal(err)
		}
		plans[f] = mustPlan(t, f, text)
	}
	rng := rand.New(rand.NewPCG(21, 21))
	for fname, spec := range fleets {
		genSeed := uint64(7) // the demo's
		if fname != "demo" {
			genSeed = 1
		}
		nodes, err := fleet.Generate(spec, genSeed)
		if err != nil {
			t.Fatal(err)
		}
		for pname, p := range plans {
			for range 40 / (1 + spec.N/100) {
				seed := rng.Uint64()
				res, err := sim.Run(context.Background(), sim.Config{Plan: p, Nodes: nodes, Seed: seed})
				if err != nil {
					t.Fatalf("%s on %s seed %d: %v", pname, fname, seed, err)
				}
				shuffled := slices.Clone(nodes)
				rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				live, rec := record(t, p, shuffled, seed)
				if h := rehearsal.Hash(live); res.AssignmentSHA256 != h || rec.Hash() != h {
					t.Fatalf("%s on %s seed %d: dry run assignment %s, live %s, record %s", pname, fname, seed, res.AssignmentSHA256, h, rec.Hash())
				}
				_, again := record(t, p, nodes, seed)
				if moves := rehearsal.Diff(again, rec); len(moves) > 0 || !slices.Equal(again.Canary(), rec.Canary()) {
					t.Fatalf("%s on %s seed %d: moves %v, canary %v vs %v", pname, fname, seed, moves, again.Canary(), rec.Canary())
				}
				var canary int
				for _, w := range p.Waves {
					if w.Canary != nil {
						canary += len(rec.Waves()[w.Name])
					}
				}
				if canary == 0 || canary != len(rec.Canary()) {
					t.Fatalf("%s on %s seed %d: canary members %v, canary waves hold %d", pname, fname, seed, rec.Canary(), canary)
				}
			}
		}
	}
}

// TestDiff: each way a node can move, and why it says it moved.
func TestDiff(t *testing.T) {
	p := mustPlan(t, "selectors.yaml", []byte(selectors))
	mk := func(id, zone, tier, env string) *fleet.Node {
		return &fleet.Node{ID: id, Facts: fleet.Facts{OS: fleet.OS{Family: "debian"}},
			Labels: map[string]string{"zone": zone, "tier": tier, "env": env}}
	}
	var base []*fleet.Node
	for i, z := range []string{"a", "a", "b", "b", "c", "c", "a", "b"} {
		tier := "app"
		if i%2 == 0 {
			tier = "web"
		}
		base = append(base, mk("n"+string(rune('0'+i)), z, tier, "prod"))
	}
	const seed = 99
	_, then := record(t, p, base, seed)
	if _, same := record(t, p, slices.Clone(base), seed); len(rehearsal.Diff(then, same)) != 0 {
		t.Fatalf("unchanged inventory: moves %v", rehearsal.Diff(then, same))
	}
	wave := func(r rehearsal.Record, id string) string {
		for _, e := range r.Nodes {
			if e.Node == id {
				return e.Wave
			}
		}
		return "?"
	}
	find := func(moves []rehearsal.Move, id string) rehearsal.Move {
		t.Helper()
		for _, m := range moves {
			if m.Node == id {
				return m
			}
		}
		t.Fatalf("no move of %s in %+v", id, moves)
		return rehearsal.Move{}
	}

	// Gone, and new.
	gone := slices.Clone(base[1:])
	gone = append(gone, mk("n9", "a", "web", "prod"))
	_, now := record(t, p, gone, seed)
	moves := rehearsal.Diff(then, now)
	if m := find(moves, "n0"); m.Why != "gone from the inventory" || m.From != wave(then, "n0") || m.To != "" {
		t.Errorf("n0 = %+v", m)
	}
	if m := find(moves, "n9"); m.Why != "new in the inventory" || m.From != "" || m.To == "" {
		t.Errorf("n9 = %+v", m)
	}
	for _, m := range moves {
		if m.Node != "n0" && m.Node != "n9" && !strings.Contains(m.Why, "the target changed (1 nodes left it, 1 joined)") {
			t.Errorf("%s moved for another reason than the reshuffle: %+v", m.Node, m)
		}
	}

	// Leaves the target: its label and the target selector are named.
	staged := slices.Clone(base)
	staged[3] = mk("n3", "b", "app", "staging")
	_, now = record(t, p, staged, seed)
	m := find(rehearsal.Diff(then, now), "n3")
	if m.To != "" || !strings.Contains(m.Why, `labels.env changed "prod" -> "staging"`) || !strings.Contains(m.Why, "target selector no longer matches it") {
		t.Errorf("n3 = %+v", m)
	}

	// Moves into the held-back zone: it can join neither canary nor web.
	for _, n := range base {
		if w := wave(then, n.ID); (w == "canary" || w == "web") && n.Labels["zone"] != "c" {
			held := slices.Clone(base)
			i := slices.Index(base, n)
			held[i] = mk(n.ID, "c", n.Labels["tier"], "prod")
			_, now = record(t, p, held, seed)
			m := find(rehearsal.Diff(then, now), n.ID)
			if m.To != "rest" || !strings.Contains(m.Why, `zone changed "`+n.Labels["zone"]+`" -> "c"`) {
				t.Errorf("%s into the held-back zone = %+v", n.ID, m)
			}
			break
		}
	}
}

// TestHash: the hash is the node-to-wave list, whatever the order, and
// changes when one node changes wave.
func TestHash(t *testing.T) {
	a := &engine.Assignment{Nodes: []engine.Node{
		{Node: &fleet.Node{ID: "b"}, State: engine.NodeState{Phase: engine.PhasePending, Wave: "canary"}},
		{Node: &fleet.Node{ID: "a"}, State: engine.NodeState{Phase: engine.PhasePending, Wave: "rest"}},
		{Node: &fleet.Node{ID: "c"}, State: engine.NodeState{Phase: engine.PhaseSkipped, Reason: "no wave selects it"}},
	}}
	b := &engine.Assignment{Nodes: []engine.Node{a.Nodes[1], a.Nodes[0]}}
	if rehearsal.Hash(a) != rehearsal.Hash(b) {
		t.Errorf("order or skipped nodes changed the hash")
	}
	c := &engine.Assignment{Nodes: []engine.Node{a.Nodes[1],
		{Node: &fleet.Node{ID: "b"}, State: engine.NodeState{Phase: engine.PhasePending, Wave: "rest"}}}}
	if rehearsal.Hash(a) == rehearsal.Hash(c) {
		t.Errorf("a node changing wave kept the hash")
	}
}
