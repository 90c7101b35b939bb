package engine_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

var fleetCases = flag.Int("fleet.cases", 120, "seeds TestFleetSafetyProperties runs")

// fleetBudget is a fleet disruption budget of the test: which nodes it
// covers, split per label, and its max unavailable.
type fleetBudget struct {
	name   string
	covers func(*fleet.Node) bool
	per    string
	max    plan.Quantity
}

// fleetWorld is the shell the property test plays: several rollouts over
// one fleet, one table of node holds (node -> rollout index), fleet
// budgets and a fleet freeze, as the server's store keeps them.
type fleetWorld struct {
	t       *testing.T
	rng     *rand.Rand
	nodes   []*fleet.Node
	budgets []fleetBudget
	limits  []map[string]int // per budget: domain -> limit
	holds   map[string]int
	ros     []*fleetRollout
	freeze  [2]time.Time // a fleet freeze over zone a
	now     time.Time
	peak    []map[string]int // per budget: domain -> highest use seen
}

type fleetRollout struct {
	in   engine.Input
	byID map[string]int
	done map[string]time.Time // in-flight node -> when its step reports
}

// TestFleetSafetyProperties runs 2 to 5 rollouts at once over one random
// fleet, all targeting overlapping nodes with random plans (caps, rates,
// windows, budgets...), under 1 to 3 random fleet disruption budgets
// (some per zone, counts or percents) and a fleet freeze, with random
// step failures. After every decision of every rollout it checks what
// the store enforces: no node in two in-flight steps, no fleet budget
// domain above its limit, no start in a fleet freeze, and that every
// wait the fleet causes names its cause. It logs the peak use seen per
// budget domain against its limit.
func TestFleetSafetyProperties(t *testing.T) {
	n := *fleetCases
	if testing.Short() {
		n = 30
	}
	var decisions, starts, waits, peakAtLimit, domains int
	for c := range n {
		seed := uint64(c + 1)
		w := newFleetWorld(t, seed)
		d, s, wt := w.run(400)
		decisions, starts, waits = decisions+d, starts+s, waits+wt
		for b := range w.budgets {
			for dom, lim := range w.limits[b] {
				peak := w.peak[b][dom]
				if peak > lim {
					t.Fatalf("seed %d: budget %s domain %q peaked at %d > limit %d", seed, w.budgets[b].name, dom, peak, lim)
				}
				domains++
				if peak == lim {
					peakAtLimit++
				}
			}
		}
	}
	t.Logf("%d seeds, %d decisions, %d starts, %d fleet waits; %d of %d budget domains reached their limit, none exceeded it",
		n, decisions, starts, waits, peakAtLimit, domains)
	if starts == 0 || waits == 0 || peakAtLimit == 0 {
		t.Fatalf("the property test exercised nothing: %d starts, %d fleet waits, %d domains at limit", starts, waits, peakAtLimit)
	}
}

func newFleetWorld(t *testing.T, seed uint64) *fleetWorld {
	rng := rand.New(rand.NewPCG(seed, 13))
	w := &fleetWorld{t: t, rng: rng, nodes: randomFleet(rng, 10+rng.IntN(110)), holds: map[string]int{},
		now: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}
	nb := 1 + rng.IntN(3)
	for b := range nb {
		fb := fleetBudget{name: fmt.Sprintf("b%d", b)}
		switch rng.IntN(3) {
		case 0:
			fb.covers = func(*fleet.Node) bool { return true }
		case 1:
			tier := tiers[rng.IntN(len(tiers))]
			fb.covers = func(n *fleet.Node) bool { return n.Labels["tier"] == tier }
		default:
			fam := families[rng.IntN(len(families))]
			fb.covers = func(n *fleet.Node) bool { return n.Facts.OS.Family != fam }
		}
		if rng.IntN(2) == 0 {
			fb.per = "zone"
		}
		if rng.IntN(2) == 0 {
			fb.max = plan.Quantity{Count: 1 + rng.IntN(3)}
		} else {
			fb.max = plan.Quantity{Percent: true, Value: float64(5 + rng.IntN(30))}
		}
		w.budgets = append(w.budgets, fb)
		size := map[string]int{}
		for _, n := range w.nodes {
			if fb.covers(n) {
				size[n.Labels[fb.per]]++
			}
		}
		lim := map[string]int{}
		for dom, sz := range size {
			lim[dom] = fb.max.Of(sz)
		}
		w.limits = append(w.limits, lim)
		w.peak = append(w.peak, map[string]int{})
	}
	from := w.now.Add(time.Duration(rng.IntN(300)) * time.Minute)
	w.freeze = [2]time.Time{from, from.Add(time.Duration(30+rng.IntN(300)) * time.Minute)}
	for r := range 2 + rng.IntN(4) {
		var p *plan.Plan
		for p == nil {
			text := randomPlan(rng)
			var err error
			if p, err = plan.Parse("random.yaml", []byte(text)); err != nil {
				t.Fatalf("generated plan does not parse: %v\n%s", err, text)
			}
			if p.Approvals.Start > 0 {
				p = nil
			}
		}
		a, err := engine.Assign(p, w.nodes, seed+uint64(r))
		if err != nil {
			continue // a wave selecting nothing: a valid refusal
		}
		ro := &fleetRollout{in: engine.Input{RolloutID: fmt.Sprintf("r%d", r), Plan: p, State: engine.RolloutRunning,
			Nodes: a.Nodes, Seed: seed + uint64(r)}, byID: engine.ByID(a.Nodes), done: map[string]time.Time{}}
		w.ros = append(w.ros, ro)
	}
	return w
}

// fleetOf builds rollout r's engine.Fleet from the world, as the server's
// scheduler does from the store.
func (w *fleetWorld) fleetOf(r int) *engine.Fleet {
	ro := w.ros[r]
	f := &engine.Fleet{Held: map[string]engine.Holder{}}
	for i, n := range ro.in.Nodes {
		if h, ok := w.holds[n.ID]; ok && h != r {
			f.Held[n.ID] = engine.Holder{Kind: "rollout", ID: w.ros[h].in.RolloutID, Name: "random"}
		}
		if n.Labels["zone"] == "a" && !w.now.Before(w.freeze[0]) && w.now.Before(w.freeze[1]) {
			if f.Freezes == nil {
				f.Freezes = []engine.FleetFreeze{{Name: "zone-a-freeze", Until: w.freeze[1], Covers: make([]bool, len(ro.in.Nodes))}}
			}
			f.Freezes[0].Covers[i] = true
		}
	}
	byNode := map[string]*fleet.Node{}
	for _, n := range w.nodes {
		byNode[n.ID] = n
	}
	for b, fb := range w.budgets {
		eb := engine.FleetBudget{Name: fb.name, Per: fb.per, Of: make([]int32, len(ro.in.Nodes))}
		idx := map[string]int32{}
		domain := func(v string) int32 {
			if j, ok := idx[v]; ok {
				return j
			}
			idx[v] = int32(len(eb.Domains))
			eb.Domains = append(eb.Domains, engine.BudgetDomain{Value: v, Limit: w.limits[b][v]})
			return idx[v]
		}
		for i, n := range ro.in.Nodes {
			eb.Of[i] = -1
			if fb.covers(n.Node) {
				eb.Of[i] = domain(n.Labels[fb.per])
			}
		}
		for id, h := range w.holds {
			if h == r || !fb.covers(byNode[id]) {
				continue
			}
			j := domain(byNode[id].Labels[fb.per])
			eb.Domains[j].Held++
			eb.Domains[j].Holders = append(eb.Domains[j].Holders, fmt.Sprintf("%s (%s)", id, w.ros[h].in.RolloutID))
		}
		f.Budgets = append(f.Budgets, eb)
	}
	return f
}

// run advances the world minute by minute; it returns the decisions
// taken, the starts and the waits the fleet caused.
func (w *fleetWorld) run(minutes int) (decisions, starts, waits int) {
	for range minutes {
		for _, r := range w.rng.Perm(len(w.ros)) {
			ro := w.ros[r]
			if ro.in.State.Terminal() {
				continue
			}
			w.report(r)
			ro.in.Now = w.now
			ro.in.Fleet = w.fleetOf(r)
			d := engine.Decide(ro.in)
			decisions++
			starts += len(d.Starts)
			waits += w.checkWaits(r, d)
			w.check(r, d)
			engine.Apply(&ro.in, d, ro.byID)
			if len(d.AskPreflight) > 0 { // every node passes its pre-flight at once
				ro.in.Preflight = &engine.PreflightStatus{AskedAt: w.now, Results: map[string]engine.PreflightResult{}}
				for _, n := range d.AskPreflight {
					ro.in.Preflight.Results[n] = engine.PreflightResult{OK: true, At: w.now}
				}
			}
			w.sync(r)
			w.checkBudgets(r, d)
		}
		w.now = w.now.Add(time.Minute)
	}
	return decisions, starts, waits
}

// check asserts what the store would refuse: a start or rollback on a
// node another rollout holds, past a fleet budget domain's limit, or (a
// start) in a fleet freeze.
func (w *fleetWorld) check(r int, d engine.Decision) {
	t := w.t
	ro := w.ros[r]
	for _, s := range slices.Concat(d.Starts, d.Rollbacks) {
		if h, ok := w.holds[s.Node]; ok && h != r {
			t.Fatalf("%s: %s dispatched %s, which %s holds", w.now, ro.in.RolloutID, s.Node, w.ros[h].in.RolloutID)
		}
	}
	for _, s := range d.Starts {
		i := ro.byID[s.Node]
		if ro.in.Nodes[i].Labels["zone"] == "a" && !w.now.Before(w.freeze[0]) && w.now.Before(w.freeze[1]) {
			t.Fatalf("%s: %s started %s in zone a during the fleet freeze", w.now, ro.in.RolloutID, s.Node)
		}
	}
}

// checkBudgets asserts, after rollout r's decision was applied, that no
// fleet budget domain holds more than its limit, and records the peaks.
func (w *fleetWorld) checkBudgets(r int, d engine.Decision) {
	use := w.use()
	for b := range w.budgets {
		for dom, n := range use[b] {
			if n > w.limits[b][dom] {
				w.t.Fatalf("%s: %s's decision puts budget %s domain %q at %d > %d (starts %v, limits %+v)", w.now, w.ros[r].in.RolloutID,
					w.budgets[b].name, dom, n, w.limits[b][dom], d.Starts, d.Limits)
			}
			w.peak[b][dom] = max(w.peak[b][dom], n)
		}
	}
}

// use counts holds per budget domain.
func (w *fleetWorld) use() []map[string]int {
	out := make([]map[string]int, len(w.budgets))
	for b, fb := range w.budgets {
		out[b] = map[string]int{}
		for _, n := range w.nodes {
			if _, held := w.holds[n.ID]; held && fb.covers(n) {
				out[b][n.Labels[fb.per]]++
			}
		}
	}
	return out
}

// checkWaits asserts that nodes held by another rollout never wait for
// anything vaguer than the hold, and counts the waits the fleet causes.
func (w *fleetWorld) checkWaits(r int, d engine.Decision) int {
	n := 0
	for _, wt := range d.Waits {
		switch {
		case hasPrefix(wt.Reason, "node held by rollout r"), hasPrefix(wt.Reason, "fleet budget b"),
			hasPrefix(wt.Reason, "fleet freeze zone-a-freeze until "):
			n += wt.Count
		}
	}
	return n
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// sync updates the holds after rollout r's decision was applied, as the
// store's triggers do: in-flight nodes hold, others do not, and a
// rollout in a terminal state holds nothing.
func (w *fleetWorld) sync(r int) {
	ro := w.ros[r]
	for _, n := range ro.in.Nodes {
		inFlight := n.State.Phase.InFlight() && !ro.in.State.Terminal()
		if inFlight {
			if h, ok := w.holds[n.ID]; ok && h != r {
				w.t.Fatalf("%s: node %s in flight in %s and %s", w.now, n.ID, ro.in.RolloutID, w.ros[h].in.RolloutID)
			}
			w.holds[n.ID] = r
		} else if h, ok := w.holds[n.ID]; ok && h == r {
			delete(w.holds, n.ID)
		}
	}
}

// report plays the agents of rollout r: a queued node runs for 1 to 20
// minutes, then verifies healthy, or fails one time in ten; a rollback
// finishes rolled back.
func (w *fleetWorld) report(r int) {
	ro := w.ros[r]
	for i := range ro.in.Nodes {
		n := &ro.in.Nodes[i]
		st := &n.State
		switch st.Phase {
		case engine.PhaseQueued, engine.PhaseRollingBack:
			at, ok := ro.done[n.ID]
			if !ok {
				ro.done[n.ID] = w.now.Add(time.Duration(1+w.rng.IntN(20)) * time.Minute)
				continue
			}
			if w.now.Before(at) {
				continue
			}
			delete(ro.done, n.ID)
			switch {
			case st.Phase == engine.PhaseRollingBack:
				st.Phase = engine.PhaseRolledBack
			case w.rng.IntN(10) == 0:
				st.Phase, st.Reason = engine.PhaseFailed, "apply failed"
			default:
				st.Phase, st.Gate, st.HealthySince = engine.PhaseVerifying, engine.Pass, w.now
			}
			st.Since = w.now
		}
	}
	w.sync(r)
}
