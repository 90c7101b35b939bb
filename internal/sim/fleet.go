package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/drover-dev/drover/internal/disruption"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
)

// Fleet-wide rules the multi-rollout simulation checks after every
// decision, besides each rollout's own.
const (
	RuleNodeHeld    Rule = "node-held"    // no node in flight in two rollouts at once
	RuleFleetBudget Rule = "fleet-budget" // no fleet budget domain held past its limit by a decision that adds holds there
	RuleFleetFreeze Rule = "fleet-freeze" // no start inside a fleet freeze covering the node
)

// FleetConfig simulates several rollouts at once over one fleet, under
// fleet disruption budgets and fleet freezes, as one server runs them:
// one table of node holds, each rollout deciding in turn on a shared
// virtual clock with what the others hold.
type FleetConfig struct {
	// Rollouts are the rollouts, each with its own Plan, Failures, Seed,
	// durations and RolloutID ("" names it r1, r2, ...). Their Nodes,
	// Start, Tick and Horizon are FleetConfig's.
	Rollouts []Config
	Nodes    []*fleet.Node
	Budgets  []disruption.Budget
	Freezes  []disruption.Freeze
	// Start, Tick and Horizon are as in Config.
	Start   time.Time
	Tick    time.Duration
	Horizon time.Duration
	// Seed orders the rollouts' turns within a tick.
	Seed uint64
}

// FleetResult is the outcome of RunFleet: each rollout's result, the
// peak use of every fleet budget domain against its limit, and the
// fleet-wide rules broken (a bug if any).
type FleetResult struct {
	Rollouts            []*Result    `json:"rollouts"`
	Budgets             []BudgetPeak `json:"budgets"`
	InvariantViolations int          `json:"invariantViolations"`
	Violations          []Violation  `json:"violations,omitempty"`
	MakespanSeconds     float64      `json:"makespanSeconds"`
	PeakInFlight        int          `json:"peakInFlight"` // nodes in flight across all rollouts at once
	HoldWaits           int          `json:"holdWaits"`    // node-decisions that waited for another rollout's hold
	BudgetWaits         int          `json:"budgetWaits"`  // node-decisions that waited for a fleet budget
	FreezeWaits         int          `json:"freezeWaits"`  // node-decisions that waited for a fleet freeze
}

// BudgetPeak is the highest number of nodes held at once in one fleet
// budget domain.
type BudgetPeak struct {
	Budget string `json:"budget"`
	Domain string `json:"domain,omitempty"`
	Peak   int    `json:"peak"`
	Limit  int    `json:"limit"`
}

// fleetRun is the shared state of RunFleet.
type fleetRun struct {
	cfg     FleetConfig
	sims    []*simulator
	index   *disruption.Index
	freezes *disruption.Freezes
	holds   map[string]int // node -> rollout index
	order   []string       // nodes in the order their holds were taken
	peaks   []map[string]int
	res     FleetResult
}

// RunFleet runs the rollouts together until all end or nothing can change.
func RunFleet(ctx context.Context, cfg FleetConfig) (*FleetResult, error) {
	if len(cfg.Rollouts) == 0 {
		return nil, errors.New("simulate: no rollouts")
	}
	if cfg.Start.IsZero() {
		cfg.Start = DefaultStart()
	}
	if cfg.Horizon <= 0 {
		cfg.Horizon = DefaultHorizon
	}
	if cfg.Tick <= 0 {
		cfg.Tick = AutoTick(len(cfg.Nodes))
	}
	f := &fleetRun{cfg: cfg, holds: map[string]int{}, peaks: make([]map[string]int, len(cfg.Budgets))}
	for k, rc := range cfg.Rollouts {
		rc.Nodes, rc.Start, rc.Tick, rc.Horizon = cfg.Nodes, cfg.Start, cfg.Tick, cfg.Horizon
		if rc.RolloutID == "" {
			rc.RolloutID = fmt.Sprintf("r%d", k+1)
		}
		s, err := newSimulator(rc)
		if err != nil {
			return nil, fmt.Errorf("rollout %s: %w", rc.RolloutID, err)
		}
		f.sims = append(f.sims, s)
	}
	var err error
	if f.index, err = disruption.NewIndex(cfg.Budgets, cfg.Nodes); err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	if f.freezes, err = disruption.CompileFreezes(cfg.Freezes); err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	for b := range f.peaks {
		f.peaks[b] = map[string]int{}
	}
	if err := f.run(ctx); err != nil {
		return nil, err
	}
	for _, s := range f.sims {
		r := s.result()
		f.res.Rollouts = append(f.res.Rollouts, r)
		f.res.MakespanSeconds = max(f.res.MakespanSeconds, r.MakespanSeconds)
	}
	for b, bu := range cfg.Budgets {
		for _, d := range f.index.Domains(b) {
			f.res.Budgets = append(f.res.Budgets, BudgetPeak{Budget: bu.Name, Domain: d, Peak: f.peaks[b][d], Limit: f.index.Limit(b, d)})
		}
	}
	return &f.res, nil
}

func (f *fleetRun) run(ctx context.Context) error {
	start := f.cfg.Start
	horizon := start.Add(f.cfg.Horizon)
	tick := int64(f.cfg.Tick)
	rng := rand.New(rand.NewPCG(f.cfg.Seed, 0x5eed))
	for _, k := range rng.Perm(len(f.sims)) {
		f.turn(k)
	}
	now := start
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
		next := int64(-1)
		for _, s := range f.sims {
			if s.state.Terminal() {
				continue
			}
			if len(s.events) > 0 && (next < 0 || s.events[0].at < next) {
				next = s.events[0].at
			}
			if !s.nextAt.IsZero() {
				if at := int64(s.nextAt.Sub(start)); next < 0 || at < next {
					next = at
				}
			}
		}
		if next < 0 {
			return nil
		}
		cur := int64(now.Sub(start))
		t := (next + tick - 1) / tick * tick
		if t <= cur {
			t = cur + tick
		}
		now = start.Add(time.Duration(t))
		if now.After(horizon) {
			for _, s := range f.sims {
				if !s.state.Terminal() {
					s.note(fmt.Sprintf("stopped at the horizon of %s of virtual time", FormatDuration(f.cfg.Horizon)))
				}
			}
			return nil
		}
		for _, k := range rng.Perm(len(f.sims)) {
			s := f.sims[k]
			if s.state.Terminal() {
				continue
			}
			for len(s.events) > 0 && s.events[0].at <= t {
				s.report(s.events.pop())
			}
			s.now = now
			s.res.Stats.Ticks++
			f.turn(k)
		}
	}
}

// turn lets rollout k decide with what the others hold, then checks the
// fleet-wide rules and updates the holds.
func (f *fleetRun) turn(k int) {
	s := f.sims[k]
	f.sync(k) // reports since its last turn released nodes
	s.fleet = f.fleetFor(k)
	before := f.use()
	s.decide()
	for _, w := range s.lastWaits {
		switch {
		case hasPrefix(w.Reason, "node held by "):
			f.res.HoldWaits += w.Count
		case hasPrefix(w.Reason, "fleet budget "):
			f.res.BudgetWaits += w.Count
		case hasPrefix(w.Reason, "fleet freeze "):
			f.res.FreezeWaits += w.Count
		}
	}
	if s.fleet != nil && s.cfg.BreakGlass == "" {
		for _, fz := range s.fleet.Freezes {
			for i := range s.nodes {
				st := &s.nodes[i].State
				if fz.Covers != nil && !fz.Covers[i] || st.Phase != engine.PhaseQueued || !st.StartedAt.Equal(s.now) {
					continue // not covered, or not started by this turn
				}
				f.violation(RuleFleetFreeze, s.now, fmt.Sprintf("rollout %s started %s inside fleet freeze %s", s.cfg.RolloutID, s.nodes[i].ID, fz.Name))
			}
		}
	}
	f.sync(k)
	after := f.use()
	total := len(f.holds)
	f.res.PeakInFlight = max(f.res.PeakInFlight, total)
	for b := range f.cfg.Budgets {
		for d, n := range after[b] {
			f.peaks[b][d] = max(f.peaks[b][d], n)
			if lim := f.index.Limit(b, d); n > lim && n > before[b][d] {
				f.violation(RuleFleetBudget, s.now, fmt.Sprintf("rollout %s put fleet budget %s domain %q at %d > %d", s.cfg.RolloutID,
					f.cfg.Budgets[b].Name, d, n, lim))
			}
		}
	}
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// sync makes the holds of rollout k follow its nodes: in-flight nodes
// hold, others do not, a rollout that ended holds nothing. A node in
// flight in k while another rollout holds it breaks RuleNodeHeld.
func (f *fleetRun) sync(k int) {
	s := f.sims[k]
	ended := s.state.Terminal()
	for i := range s.nodes {
		id := s.nodes[i].ID
		h, held := f.holds[id]
		if s.nodes[i].State.Phase.InFlight() && !ended {
			switch {
			case !held:
				f.holds[id] = k
				f.order = append(f.order, id)
			case h != k:
				f.violation(RuleNodeHeld, s.now, fmt.Sprintf("node %s in flight in rollouts %s and %s", id, f.sims[h].cfg.RolloutID, s.cfg.RolloutID))
			}
		} else if held && h == k {
			delete(f.holds, id)
		}
	}
}

// use counts holds per budget and domain.
func (f *fleetRun) use() []map[string]int {
	out := make([]map[string]int, len(f.cfg.Budgets))
	for b := range out {
		out[b] = map[string]int{}
	}
	for id := range f.holds {
		for b := range f.cfg.Budgets {
			if d, ok := f.index.Domain(b, id); ok {
				out[b][d]++
			}
		}
	}
	return out
}

// fleetFor is rollout k's engine.Fleet: the others' holds, the budgets
// and the freezes in force.
func (f *fleetRun) fleetFor(k int) *engine.Fleet {
	s := f.sims[k]
	out := &engine.Fleet{}
	var holds []disruption.Hold
	seen := make(map[string]bool, len(f.holds))
	kept := f.order[:0]
	for _, id := range f.order { // oldest hold first; released and repeated entries dropped
		h, ok := f.holds[id]
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		kept = append(kept, id)
		holder := f.sims[h]
		holds = append(holds, disruption.Hold{Node: id, Kind: disruption.HolderRollout, Holder: holder.cfg.RolloutID, Name: holder.cfg.Plan.Name})
	}
	f.order = kept
	for _, n := range s.nodes {
		if h, ok := f.holds[n.ID]; ok && h != k {
			if out.Held == nil {
				out.Held = map[string]engine.Holder{}
			}
			holder := f.sims[h]
			out.Held[n.ID] = engine.Holder{Kind: disruption.HolderRollout, ID: holder.cfg.RolloutID, Name: holder.cfg.Plan.Name}
		}
	}
	out.Budgets = f.index.ForRollout(s.cfg.RolloutID, s.nodes, holds)
	out.Freezes = f.freezes.ForRollout(s.cfg.RolloutID, s.nodes, s.now)
	if out.Held == nil && out.Budgets == nil && out.Freezes == nil {
		return nil
	}
	return out
}

func (f *fleetRun) violation(rule Rule, at time.Time, msg string) {
	f.res.InvariantViolations++
	if len(f.res.Violations) < maxStoredViolations {
		f.res.Violations = append(f.res.Violations, Violation{At: at, Rule: rule, Msg: msg})
	}
}
