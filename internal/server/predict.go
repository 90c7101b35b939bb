package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/sim"
	"github.com/drover-dev/drover/internal/store"
)

// historyWindow and historyLimit bound the step history a model learns
// from: the last 30 days, the newest 20,000 steps.
const (
	historyWindow = 30 * 24 * time.Hour
	historyLimit  = 20_000
)

// etaRuns is how many simulations (seeds) an ETA takes its range from;
// etaMinInterval is the least time between two ETA computations of one
// rollout (the cost is bounded: at most one batch of runs per rollout per
// interval, and only when a report or decision changed its state).
const (
	etaRuns        = 7
	etaMinInterval = time.Second
	etaKeep        = 10 * time.Minute // an ETA not recomputed for this long is dropped
)

// predictor learns step durations from the store and runs the
// simulations behind dry runs, predictions and ETAs.
type predictor struct {
	s *Server

	mu   sync.Mutex
	hist *sim.History
	at   time.Time // when hist was built
	etas map[string]*etaEntry
}

type etaEntry struct {
	state etaState
	at    time.Time
	eta   *api.ETA
}

// stale reports whether an ETA must be computed again: its end has
// passed or the rollout changed since, and the last computation is
// etaMinInterval old (a break-glass or a stop of the line at once).
func (e *etaEntry) stale(st etaState, now time.Time) bool {
	switch {
	case !now.Before(e.eta.End):
		return now.Sub(e.at) >= etaMinInterval
	case st.breakGlass != e.state.breakGlass || st.lineStop != e.state.lineStop:
		return true
	}
	return st != e.state && now.Sub(e.at) >= etaMinInterval
}

// etaState is what an ETA was computed from: a change of any of it
// computes it again.
type etaState struct {
	version, rev         int64
	breakGlass, lineStop string
}

func newPredictor(s *Server) *predictor { return &predictor{s: s, etas: map[string]*etaEntry{}} }

// learned drops the cached history: this server just recorded steps.
func (pr *predictor) learned() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.hist = nil
}

// history returns the fleet's step history, rebuilt when this server
// recorded steps since, and at most once a second for steps other
// servers record.
func (pr *predictor) history(ctx context.Context) (*sim.History, error) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	now := pr.s.now()
	if pr.hist != nil && now.Sub(pr.at) < time.Second {
		return pr.hist, nil
	}
	rows, err := pr.s.st.StepTimings(ctx, now.Add(-historyWindow), historyLimit)
	if err != nil {
		return nil, err
	}
	rows = newestPerKey(rows)
	obs := make([]sim.Observation, len(rows))
	for i, r := range rows {
		obs[i] = sim.Observation{HistoryKey: sim.HistoryKey{Action: r.Action, OSFamily: r.OSFamily, OSVersion: r.OSVersion,
			HardwareClass: r.HardwareClass}, Dispatch: r.StartedAt.Sub(r.DispatchedAt), Execution: r.Execution,
			Reboot: r.Reboot, Probe: r.Probe, Soak: r.SettledAt.Sub(r.HealthyAt)}
	}
	pr.hist, pr.at = sim.Aggregate(obs, now), now
	return pr.hist, nil
}

// newestPerKey keeps, for each full key (action, OS family and version,
// hardware class), the steps of the newest rollout that ran it: what a
// fleet does now (warm caches, a faster mirror, a new agent) predicts
// the next rollout better than what it did months ago, and a first
// rollout on cold nodes does not weigh on every later prediction. rows
// are newest first, as StepTimings returns them.
func newestPerKey(rows []store.StepTiming) []store.StepTiming {
	type key struct{ action, family, version, class string }
	newest := map[key]string{}
	var out []store.StepTiming
	for _, r := range rows {
		k := key{r.Action, r.OSFamily, r.OSVersion, r.HardwareClass}
		ro, seen := newest[k]
		if !seen {
			newest[k], ro = r.Rollout, r.Rollout
		}
		if ro == r.Rollout {
			out = append(out, r)
		}
	}
	return out
}

// config is the simulation of plan p on this server: the learned model
// (the default model where there is no history), wave gates timed as
// the scheduler's tracker times them, and the scheduler's tick for
// fleets it can afford.
func (pr *predictor) config(ctx context.Context, p *plan.Plan, nodes int) (sim.Config, error) {
	h, err := pr.history(ctx)
	if err != nil {
		return sim.Config{}, err
	}
	tick := pr.s.cfg.Tick
	if nodes > 5000 || tick <= 0 {
		tick = 0 // sim.AutoTick
	}
	cfg := sim.Config{Plan: p, Durations: h.Model(sim.ActionKey(p), nil), GateTiming: true, Tick: tick}
	if cfg.PreflightDuration, err = pr.preflightDuration(ctx); err != nil {
		return sim.Config{}, err
	}
	return cfg, nil
}

// preflightDuration is the node pre-flight's duration learned from the
// fleet, ask to answer: uniform between the 10th and 90th percentile of
// the newest answers; the zero Dist (the simulator's default model) with
// fewer than 3 answers.
func (pr *predictor) preflightDuration(ctx context.Context) (sim.Dist, error) {
	ds, err := pr.s.st.PreflightTimes(ctx, 500)
	if err != nil || len(ds) < 3 {
		return sim.Dist{}, err
	}
	slices.Sort(ds)
	lo, hi := ds[len(ds)/10], ds[len(ds)*9/10]
	if lo == hi {
		return sim.Fixed(lo), nil
	}
	return sim.Dist{Kind: sim.DistUniform, A: lo, B: hi}, nil
}

// dryRun simulates plan p over nodes with seed from start.
func (pr *predictor) dryRun(ctx context.Context, p *plan.Plan, nodes []*fleet.Node, seed uint64, start time.Time, preflight map[string]engine.PreflightResult) (*sim.Result, error) {
	cfg, err := pr.config(ctx, p, len(nodes))
	if err != nil {
		return nil, err
	}
	cfg.Nodes, cfg.Seed, cfg.Start, cfg.Preflight = nodes, seed, start, preflight
	return sim.Run(ctx, cfg)
}

// predict runs the simulation of a rollout just created (its own seed,
// the learned model) and stores it as the rollout's prediction. A
// failure is logged: a rollout does not depend on its prediction.
func (pr *predictor) predict(ctx context.Context, ro store.Rollout, p *plan.Plan, nodes []*fleet.Node) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := pr.dryRun(ctx, p, nodes, ro.Seed, ro.CreatedAt, nil)
	if err != nil {
		pr.s.log.Warn("rollout prediction failed", "rollout", ro.ID, "err", err)
		return
	}
	pred := api.Prediction{CreatedAt: ro.CreatedAt, State: string(res.State), MakespanSeconds: res.MakespanSeconds}
	for _, n := range res.Notes {
		if len(n) > 5 && n[:5] == "wave " {
			pred.Model = append(pred.Model, n)
		}
	}
	for _, w := range res.Waves {
		pred.Waves = append(pred.Waves, api.WavePrediction{Name: w.Name, StartSeconds: w.StartedAtSeconds, EndSeconds: w.EndedAtSeconds})
	}
	raw, err := json.Marshal(pred)
	if err == nil {
		err = pr.s.st.SavePrediction(ctx, ro.ID, raw, ro.CreatedAt)
	}
	if err != nil {
		pr.s.log.Warn("rollout prediction not stored", "rollout", ro.ID, "err", err)
	}
}

// prediction returns a rollout's stored prediction beside what happened
// (nil when none is stored).
func (pr *predictor) prediction(ctx context.Context, ro store.Rollout, waves []store.Wave) (*api.Prediction, error) {
	raw, err := pr.s.st.PredictionOf(ctx, ro.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p api.Prediction
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("rollout %s: stored prediction: %w", ro.ID, err)
	}
	ended := map[string]time.Time{}
	var last time.Time
	for _, w := range waves {
		if !w.EndedAt.IsZero() {
			ended[w.Name] = w.EndedAt
			if w.EndedAt.After(last) {
				last = w.EndedAt
			}
		}
	}
	for i := range p.Waves {
		w := &p.Waves[i]
		if e, ok := ended[w.Name]; ok {
			a := e.Sub(ro.CreatedAt).Seconds()
			w.ActualEndSeconds = &a
			w.ErrorPercent = errorPercent(w.EndSeconds, a)
		}
	}
	if ro.State.Terminal() {
		switch {
		case !ro.Times.Ended.IsZero():
			last = ro.Times.Ended // the drover_rollout_prediction_error_ratio metric's end
		case last.IsZero():
			last = ro.UpdatedAt
		}
		a := last.Sub(ro.CreatedAt).Seconds()
		p.ActualMakespanSeconds = &a
		p.ErrorPercent = errorPercent(&p.MakespanSeconds, a)
	}
	return &p, nil
}

func errorPercent(predicted *float64, actual float64) *float64 {
	if predicted == nil || *predicted <= 0 {
		return nil
	}
	e := math.Round((actual-*predicted)/(*predicted)*1000) / 10
	return &e
}

// eta simulates the rest of a running rollout from its current state
// (etaRuns seeds) and returns when each wave and the rollout should end.
// It is recomputed only when the rollout's state changed since the last
// computation, at most once per etaMinInterval.
func (pr *predictor) eta(ctx context.Context, rc *rolloutCache, data store.RolloutData, in engine.Input) (*api.ETA, error) {
	ro := data.Rollout
	now := in.Now
	state := etaState{version: ro.Version, rev: ro.NodeRev, breakGlass: in.BreakGlass, lineStop: in.LineStop}
	pr.mu.Lock()
	e := pr.etas[ro.ID]
	if e != nil && !e.stale(state, now) {
		pr.mu.Unlock()
		return e.eta, nil
	}
	pr.mu.Unlock()
	if in.LineStop != "" {
		return &api.ETA{ComputedAt: now, Stalled: "the line is stopped (" + in.LineStop + "): nothing starts until it is lifted"}, nil
	}
	cfg, err := pr.config(ctx, rc.plan, len(in.Nodes))
	if err != nil {
		return nil, err
	}
	cfg.Start, cfg.RolloutID, cfg.Author, cfg.BreakGlass = now, ro.ID, ro.Author, in.BreakGlass
	cfg.From = &sim.Snapshot{Nodes: in.Nodes, Waves: in.Waves, State: in.State, Reason: in.Reason,
		RollbackScope: in.RollbackScope, Gates: in.Gates, Approvals: in.Approvals}
	runs := etaRuns
	if len(in.Nodes) > 5000 {
		runs = 3
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out := &api.ETA{ComputedAt: now, Runs: runs + 2}
	var ends []time.Duration
	waveEnds := map[string][]time.Duration{}
	learned, _ := cfg.Durations.(*sim.Learned)
	for i := range runs + 2 {
		c := cfg
		c.Seed = ro.Seed + uint64(i)*0x9e3779b97f4a7c15
		switch {
		case i == runs && learned != nil:
			c.Durations = learned.AtQuantile(0.1) // every step as fast as one in ten
		case i == runs+1 && learned != nil:
			c.Durations = learned.AtQuantile(0.9) // every step as slow as one in ten
		}
		res, err := pr.runETA(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("eta of rollout %s: %w", ro.ID, err)
		}
		if !res.State.Terminal() {
			out.Stalled = res.HaltReason
		}
		ends = append(ends, time.Duration(res.MakespanSeconds*float64(time.Second)))
		for _, w := range res.Waves {
			if w.EndedAtSeconds != nil {
				waveEnds[w.Name] = append(waveEnds[w.Name], time.Duration(*w.EndedAtSeconds*float64(time.Second)))
			}
		}
		for _, d := range res.Delays {
			if !slices.Contains(out.Delays, d) {
				out.Delays = append(out.Delays, d)
			}
		}
	}
	out.EndP10, out.End, out.EndP90 = spread(now, ends, runs)
	for _, w := range rc.plan.Waves {
		we := api.WaveETA{Name: w.Name}
		if st := in.Waves[w.Name]; !st.EndedAt.IsZero() {
			we.Ended, we.End, we.EndP10, we.EndP90 = true, st.EndedAt, st.EndedAt, st.EndedAt
		} else if ds := waveEnds[w.Name]; len(ds) == len(ends) {
			we.EndP10, we.End, we.EndP90 = spread(now, ds, runs)
		}
		out.Waves = append(out.Waves, we)
	}
	pr.mu.Lock()
	for id, e := range pr.etas {
		if now.Sub(e.at) > etaKeep {
			delete(pr.etas, id) // rollouts no longer watched, or ended on another server
		}
	}
	pr.etas[ro.ID] = &etaEntry{state: state, at: now, eta: out}
	pr.mu.Unlock()
	return out, nil
}

// timings are the step-history rows of the apply steps decision d
// settles healthy: nodes moved from verifying with a passing gate to
// succeeded (data holds their states and steps before d).
func timings(rc *rolloutCache, data store.RolloutData, d engine.Decision, now time.Time) []store.StepTiming {
	var out []store.StepTiming
	action := ""
	for _, t := range d.Nodes {
		if t.To != engine.PhaseSucceeded || t.From != engine.PhaseVerifying {
			continue
		}
		i, ok := rc.byID[t.Node]
		if !ok || i >= len(data.Nodes) {
			continue
		}
		rn := data.Nodes[i]
		st := rn.State
		if rn.StepID == "" || st.Rollback || st.StartedAt.IsZero() || st.HealthySince.IsZero() {
			continue
		}
		if action == "" {
			action = sim.ActionKey(rc.plan)
		}
		tm := store.StepTiming{StepID: rn.StepID, Rollout: rc.id, NodeID: t.Node, Action: action,
			DispatchedAt: st.StartedAt, HealthyAt: st.HealthySince, SettledAt: now}
		if n := rc.nodes[t.Node]; n != nil {
			tm.OSFamily, tm.OSVersion, tm.HardwareClass = n.Facts.OS.Family, n.Facts.OS.Version, n.Facts.Hardware.Class
		}
		out = append(out, tm)
	}
	return out
}

// runETA runs one ETA simulation: under the fleet's disruption budgets
// and freezes when there are any (sim.RunFleet; other rollouts' holds
// are not simulated), else on its own.
func (pr *predictor) runETA(ctx context.Context, c sim.Config) (*sim.Result, error) {
	fv, err := pr.s.fleet.view(ctx, false)
	if err != nil || len(fv.state.Budgets)+len(fv.state.Freezes) == 0 {
		return sim.Run(ctx, c)
	}
	fc := sim.FleetConfig{Rollouts: []sim.Config{c}, Start: c.Start, Tick: c.Tick, Seed: c.Seed}
	for _, n := range c.From.Nodes {
		fc.Nodes = append(fc.Nodes, n.Node)
	}
	for _, b := range fv.state.Budgets {
		fc.Budgets = append(fc.Budgets, b.Budget)
	}
	for _, f := range fv.state.Freezes {
		fc.Freezes = append(fc.Freezes, f.Freeze)
	}
	res, err := sim.RunFleet(ctx, fc)
	if err != nil {
		return nil, err
	}
	return res.Rollouts[0], nil
}

// forget drops a rollout's cached ETA.
func (pr *predictor) forget(id string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	delete(pr.etas, id)
}

// spread returns the range and the median of the ends ds of ETA runs,
// as instants after start: the median of the first sampled runs, and as
// the range the earliest and latest of every run, the runs at the 10th
// and 90th percentile durations included (or the sampled runs' 10th
// and 90th percentile, nearest rank, when there are no such runs).
func spread(start time.Time, ds []time.Duration, sampled int) (lo, mid, hi time.Time) {
	at := func(d time.Duration) time.Time { return start.Add(d).Round(time.Millisecond) }
	s := slices.Clone(ds[:min(sampled, len(ds))])
	slices.Sort(s)
	rank := func(q float64) time.Duration { return s[int(math.Round(q*float64(len(s)-1)))] }
	mid, lo, hi = at(rank(0.5)), at(rank(0.1)), at(rank(0.9))
	if len(ds) > sampled {
		lo, hi = at(min(rank(0.1), slices.Min(ds))), at(max(rank(0.9), slices.Max(ds)))
	}
	return lo, mid, hi
}

// exportHistory answers GET /v1/history: the fleet's step history in
// the export format (sim.History, see docs/history.md).
func (s *Server) exportHistory(w http.ResponseWriter, r *http.Request, _ identity) error {
	h, err := s.pred.history(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}
