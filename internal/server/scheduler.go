package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/gate"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/store"
)

// errFenced ends a leadership term.
var errFenced = errors.New("leadership lost")

// scheduler is the shell around the engine. While this server leads, for
// every active rollout in turn it: loads the state in one read, decides,
// commits the decision with a version check and the leadership term (slot,
// node state and dispatch record in one transaction), and only then wakes
// the agents. A conflict (a report or a human command moved the state)
// means load and decide again.
type scheduler struct {
	s        *Server
	term     atomic.Int64
	isLeader atomic.Bool
	kickc    chan struct{}
	done     chan struct{}
	// housekept is when the leading loop last expired leases; only that
	// loop reads or writes it.
	housekept time.Time
	stopOnce  sync.Once

	mu       sync.Mutex
	rollouts map[string]*rolloutCache
	tracker  gate.Tracker
}

// rolloutCache holds what does not change while a rollout runs: its parsed
// plan, its target nodes' identity and labels, and the engine's index.
type rolloutCache struct {
	id        string
	sha       string
	plan      *plan.Plan
	nodes     map[string]*fleet.Node
	enodes    []engine.Node
	byID      map[string]int
	index     *engine.Index
	uncovered []engine.Stratum
	author    string
	seed      uint64

	// mu guards the mirror of the stored node states: every node as of
	// node revision rev, in index order. Loads read only the nodes changed
	// since rev and patch it.
	mu  sync.Mutex
	rev int64
	rn  []store.RolloutNode
	// preflight is the node pre-flight once it can no longer change what
	// the engine decides (every node asked answered, or past the
	// deadline, after which answers do not count): read once, not at
	// every decision. Guarded by mu.
	preflight *engine.PreflightStatus
}

// patch applies a load of the nodes changed since rc.rev. It reports
// false, changing nothing, when the load does not fit the mirror (a
// revision older than the mirror's, a node out of place): the caller
// then reloads in full.
func (rc *rolloutCache) patch(data store.RolloutData) bool {
	if data.Rollout.NodeRev < rc.rev {
		return false
	}
	for _, n := range data.Nodes {
		if n.Index < 0 || n.Index >= len(rc.rn) || rc.rn[n.Index].NodeID != n.NodeID {
			return false
		}
	}
	for _, n := range data.Nodes {
		rc.rn[n.Index] = n
	}
	rc.rev = data.Rollout.NodeRev
	return true
}

func newScheduler(s *Server) *scheduler {
	return &scheduler{s: s, kickc: make(chan struct{}, 1), done: make(chan struct{}), rollouts: map[string]*rolloutCache{},
		tracker: gate.Tracker{Step: gate.StepOf(s.gates)}}
}

func (sc *scheduler) leading() bool { return sc.isLeader.Load() }

// leaderTerm returns the term this server leads in; false while it
// does not lead.
func (sc *scheduler) leaderTerm() (int64, bool) {
	if !sc.isLeader.Load() {
		return 0, false
	}
	return sc.term.Load(), true
}

// kick asks for a scheduling pass now.
func (sc *scheduler) kick() {
	select {
	case sc.kickc <- struct{}{}:
	default:
	}
}

// soaking reports whether a step report is a gate pass still inside its
// rollout's node soak (at before healthySince + minHealthy): a report no
// decision can follow from. False when the rollout's plan is not cached
// here (a rollout this server has not scheduled yet): then kick.
func (sc *scheduler) soaking(stepID string, g engine.Verdict, healthySince, at time.Time) bool {
	if g != engine.Pass || healthySince.IsZero() {
		return false
	}
	id, _, ok := strings.Cut(stepID, "/")
	if !ok {
		return false
	}
	sc.mu.Lock()
	rc := sc.rollouts[id]
	sc.mu.Unlock()
	if rc == nil || rc.plan == nil {
		return false
	}
	mh := rc.plan.Gates.Node.MinHealthy.D()
	return mh > 0 && at.Before(healthySince.Add(mh))
}

func (sc *scheduler) stop() { sc.stopOnce.Do(func() { close(sc.done) }) }

// remember keeps the canary strata Assign left uncovered at creation.
func (sc *scheduler) remember(id string, unc []engine.Stratum) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if rc := sc.rollouts[id]; rc != nil {
		rc.uncovered = unc
		return
	}
	sc.rollouts[id] = &rolloutCache{id: id, uncovered: unc}
}

// run campaigns for leadership and schedules while leading, until ctx
// ends.
func (sc *scheduler) run(ctx context.Context) error {
	s := sc.s
	for {
		term, ok, err := s.st.Campaign(ctx, s.cfg.ServerID)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("campaign failed", "err", err)
		}
		if ok {
			sc.term.Store(term)
			s.wake.newEpoch()
			sc.isLeader.Store(true)
			s.m.leader.Set(1)
			s.log.Info("leading", "term", term, "server_id", s.cfg.ServerID)
			err := sc.lead(ctx)
			sc.isLeader.Store(false)
			s.wake.newEpoch()
			s.m.leader.Set(0)
			s.log.Warn("leadership ended", "term", term, "err", err)
			resign, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.st.Resign(resign)
			cancel()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-sc.done:
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

// lead schedules until leadership is lost or ctx ends. Its first act
// restarts every agent's lease from now: the time no server led (a
// restart, a failover) is never counted against the agents.
func (sc *scheduler) lead(ctx context.Context) error {
	s := sc.s
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	s.fp.hit(fpLeaderElected)
	if err := sc.restartLeases(ctx); err != nil {
		return err
	}
	for {
		if !s.st.Leading(ctx) {
			return errFenced
		}
		if err := sc.pass(ctx); err != nil {
			if errors.Is(err, errFenced) || errors.Is(err, store.ErrFenced) {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Error("scheduling pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sc.done:
			return nil
		case <-t.C:
		case <-sc.kickc:
		}
	}
}

// restartLeases gives every node a full lease window from the new
// leader's first tick (engine.RestartLease over the fleet).
func (sc *scheduler) restartLeases(ctx context.Context) error {
	s := sc.s
	now := s.now()
	n, err := s.st.RestartLeases(ctx, engine.RestartLease(time.Time{}, now, s.cfg.Lease), sc.term.Load())
	if err != nil {
		return fmt.Errorf("restart leases: %w", err)
	}
	if n > 0 {
		s.log.Info("leases restarted from the first tick of this leader", "nodes", n, "until", now.Add(s.cfg.Lease))
	}
	return nil
}

// pass expires leases and steps every active rollout once. Leases expire
// at most once a tick: passes kicked by reports come
// hundreds of times a second in a large rollout, and each expiry is a
// write transaction.
func (sc *scheduler) pass(ctx context.Context) error {
	s := sc.s
	term := sc.term.Load()
	housekeeping := time.Since(sc.housekept) >= s.cfg.Tick
	if housekeeping {
		sc.housekept = time.Now()
		expired, err := s.st.ExpireLeases(ctx, s.now(), term)
		if err != nil {
			return fmt.Errorf("expire leases: %w", err)
		}
		if len(expired) > 0 {
			s.fp.hit(fpLeaseExpiry)
			s.log.Warn("agents silent past their lease", "nodes", len(expired))
			s.wake.broadcast()
		}
	}
	ids, err := s.st.ActiveRollouts(ctx)
	if err != nil {
		return fmt.Errorf("active rollouts: %w", err)
	}
	line, err := s.lineStop(ctx)
	if err != nil {
		return err
	}
	s.fleet.pass(len(ids))
	for _, id := range ids {
		if err := sc.step(ctx, id, term, line); err != nil {
			if errors.Is(err, store.ErrFenced) || ctx.Err() != nil {
				return err
			}
			s.log.Error("rollout step failed", "rollout", id, "err", err)
		}
	}
	return nil
}

// load reads a rollout to decide it or to show it, with every node in
// index order (in a slice of the caller's own). Only the first load of a
// rollout reads all its nodes; later ones read the nodes changed since
// the cache's mirror and patch it.
func (sc *scheduler) load(ctx context.Context, id string) (store.RolloutData, *rolloutCache, error) {
	sc.mu.Lock()
	rc := sc.rollouts[id]
	sc.mu.Unlock()
	if rc != nil && rc.plan != nil {
		rc.mu.Lock()
		data, err := sc.s.st.LoadRolloutSince(ctx, id, rc.rev)
		if err == nil && rc.patch(data) {
			data.Nodes = slices.Clone(rc.rn)
			rc.mu.Unlock()
			return data, rc, nil
		}
		rc.mu.Unlock()
		if err != nil {
			return store.RolloutData{}, nil, err
		}
		sc.s.log.Warn("rollout cache out of step with the store; reloading", "rollout", id, "rev", rc.rev, "stored_rev", data.Rollout.NodeRev)
	}
	data, err := sc.s.st.LoadRollout(ctx, id)
	if err != nil {
		return store.RolloutData{}, nil, err
	}
	rc, err = sc.rollout(ctx, data)
	if err != nil {
		return store.RolloutData{}, nil, err
	}
	return data, rc, nil
}

// rollout builds the rollout's cache from a full load, reusing the
// parsed plan and nodes of an earlier cache of the same target.
func (sc *scheduler) rollout(ctx context.Context, data store.RolloutData) (*rolloutCache, error) {
	sc.mu.Lock()
	rc := sc.rollouts[data.Rollout.ID]
	sc.mu.Unlock()
	if rc != nil && rc.plan != nil && len(rc.enodes) == len(data.Nodes) {
		rc.mu.Lock()
		rc.rn, rc.rev = slices.Clone(data.Nodes), data.Rollout.NodeRev
		rc.mu.Unlock()
		return rc, nil
	}
	ro := data.Rollout
	p, err := plan.Parse(ro.Name+".yaml", ro.Plan)
	if err != nil {
		return nil, fmt.Errorf("rollout %s: stored plan no longer parses: %w", ro.ID, err)
	}
	nrc := &rolloutCache{id: ro.ID, sha: ro.PlanSHA256, plan: p, nodes: map[string]*fleet.Node{}, author: ro.Author, seed: ro.Seed,
		enodes: make([]engine.Node, len(data.Nodes)), rn: slices.Clone(data.Nodes), rev: ro.NodeRev}
	for i, rn := range data.Nodes {
		n, err := sc.s.st.GetNode(ctx, rn.NodeID)
		var fn *fleet.Node
		switch {
		case err == nil:
			fn = n.Node()
		case errors.Is(err, store.ErrNotFound):
			fn = &fleet.Node{ID: rn.NodeID} // removed from the fleet since; keeps its place
		default:
			return nil, fmt.Errorf("rollout %s: load node %s: %w", ro.ID, rn.NodeID, err)
		}
		nrc.nodes[fn.ID] = fn
		nrc.enodes[i] = engine.Node{Node: fn, State: rn.State}
	}
	nrc.byID = engine.ByID(nrc.enodes)
	nrc.index = engine.NewIndex(p, nrc.enodes)
	if rc != nil && rc.uncovered != nil {
		nrc.uncovered = rc.uncovered
	} else {
		targets := make([]*fleet.Node, 0, len(nrc.enodes))
		for _, n := range nrc.enodes {
			targets = append(targets, n.Node)
		}
		if a, err := engine.Assign(p, targets, ro.Seed); err == nil {
			nrc.uncovered = a.Uncovered
		}
	}
	sc.mu.Lock()
	sc.rollouts[ro.ID] = nrc
	sc.mu.Unlock()
	return nrc, nil
}

// input builds the engine's input from stored state. It returns a copy of
// the node slice, so that concurrent readers (the API) never share it.
func (rc *rolloutCache) input(data store.RolloutData, now time.Time) engine.Input {
	nodes := make([]engine.Node, len(rc.enodes))
	for i, rn := range data.Nodes {
		nodes[i] = engine.Node{Node: rc.enodes[i].Node, State: rn.State}
	}
	in := engine.Input{RolloutID: data.Rollout.ID, Author: data.Rollout.Author, Plan: rc.plan, State: data.Rollout.State,
		Reason: data.Rollout.Reason, RollbackScope: data.Rollout.RollbackScope, Nodes: nodes,
		Waves: make(map[string]engine.WaveStatus, len(data.Waves)), Now: now, Seed: data.Rollout.Seed, Index: rc.index,
		StartApprovals: data.Rollout.ApprovalsNeeded}
	for _, w := range data.Waves {
		in.Waves[w.Name] = w.WaveStatus
	}
	for _, g := range data.Gates {
		in.Gates = append(in.Gates, g.GateResult)
	}
	for _, a := range data.Approvals {
		in.Approvals = append(in.Approvals, engine.Approval{By: a.By, Wave: a.Wave, At: a.At})
	}
	return in
}

// step decides one rollout and commits the decision, retrying on
// conflicts with a fresh load. line is the fleet-wide stop in force ("" if
// none): checked before any dispatch here, and enforced by the store in
// the committing transaction (a stop that came since is ErrLineStopped:
// read it and decide again).
func (sc *scheduler) step(ctx context.Context, id string, term int64, line string) error {
	s := sc.s
	for attempt := 0; attempt < 8; attempt++ {
		data, rc, err := sc.load(ctx, id)
		if err != nil {
			return fmt.Errorf("load rollout %s: %w", id, err)
		}
		now := s.now()
		in := rc.input(data, now)
		if in.Preflight, err = s.preflightStatus(ctx, rc, in.State, now); err != nil {
			return fmt.Errorf("rollout %s: %w", id, err)
		}
		if in.State == engine.RolloutRollingBack {
			// the halt's localisation counts rolled-back nodes by how their apply ended
			if in.Before, err = s.st.RolledBackApplies(ctx, id); err != nil {
				return fmt.Errorf("rollout %s: %w", id, err)
			}
		}
		in.BlockingAlerts = sc.alerts(ctx, rc.plan)
		in.BreakGlass = s.breakGlassReason(ctx, id, rc.plan)
		in.LineStop = line
		s.applyFleet(ctx, &in, attempt > 0)
		start := time.Now()
		d := engine.Decide(in)
		s.m.decideLatency.Observe(time.Since(start).Seconds())
		if idle(in, d) {
			sc.evaluate(ctx, rc, in, d)
			return nil
		}
		if len(d.AskPreflight) > 0 {
			// Persisted before the decision's commit, which audits the
			// ask: a commit lost to a conflict decides again and finds
			// the nodes asked.
			if err := s.askPreflight(ctx, id, rc.plan, d.AskPreflight, now); err != nil {
				return fmt.Errorf("rollout %s: %w", id, err)
			}
		}
		s.fp.hit(fpAfterDecide)
		if len(d.Waves) > 0 {
			s.fp.hit(fpWaveTransition)
		}
		c, notify := sc.commit(rc, &in, d, term)
		c.Version = data.Rollout.Version
		c.Timings = timings(rc, data, d, now)
		if s.fp != nil {
			c.InTx = func() { s.fp.hit(fpInsideCommit) }
		}
		start = time.Now()
		s.fp.hit(fpBeforeCommit)
		if _, err := s.st.ApplyCommit(ctx, c); err != nil {
			if errors.Is(err, store.ErrConflict) {
				s.m.conflicts.Inc()
				continue
			}
			if errors.Is(err, store.ErrLineStopped) {
				if line, err = s.lineStop(ctx); err != nil {
					return err
				}
				if line == "" {
					return fmt.Errorf("commit rollout %s: the store says the line is stopped, yet no stop is found", id)
				}
				continue
			}
			return fmt.Errorf("commit rollout %s: %w", id, err)
		}
		s.m.dispatchLatency.Observe(time.Since(start).Seconds())
		if len(c.Timings) > 0 {
			s.pred.learned()
		}
		if len(c.Steps) > 0 {
			s.fleet.dispatched()
		}
		s.fp.hit(fpAfterCommit)
		if len(d.Rollbacks) > 0 {
			s.fp.hit(fpDuringRollback)
		}
		sc.observe(rc, in, d, now)
		for _, n := range notify {
			s.wake.notify(n)
		}
		s.wake.broadcast()
		sc.evaluate(ctx, rc, in, d)
		if in.State.Terminal() {
			sc.forget(id)
			s.pred.forget(id)
		}
		return nil
	}
	return fmt.Errorf("rollout %s: %w after 8 attempts", id, store.ErrConflict)
}

// idle reports whether a decision changes nothing that must be stored.
func idle(in engine.Input, d engine.Decision) bool {
	return len(d.Nodes) == 0 && len(d.Waves) == 0 && len(d.Starts) == 0 && len(d.Rollbacks) == 0 && len(d.AskPreflight) == 0 &&
		d.State == in.State && d.Reason == in.Reason && d.RollbackScope == in.RollbackScope
}

// commit turns a decision into the store's commit: the node updates with
// their expected previous states, the wave changes, the steps to dispatch
// with their payloads, and one audit entry per transition. It applies the
// decision to in (engine.Apply) on the way. It returns the nodes to wake.
func (sc *scheduler) commit(rc *rolloutCache, in *engine.Input, d engine.Decision, term int64) (store.Commit, []string) {
	now := in.Now
	before := map[int]engine.NodeState{}
	for _, t := range d.Nodes {
		if i, ok := rc.byID[t.Node]; ok {
			before[i] = in.Nodes[i].State
		}
	}
	for _, st := range append(append([]engine.Start(nil), d.Starts...), d.Rollbacks...) {
		if i, ok := rc.byID[st.Node]; ok {
			if _, seen := before[i]; !seen {
				before[i] = in.Nodes[i].State
			}
		}
	}
	prevState, prevWaves := in.State, in.Waves
	in.Waves = make(map[string]engine.WaveStatus, len(prevWaves))
	for k, v := range prevWaves {
		in.Waves[k] = v
	}
	changed := engine.Apply(in, d, rc.byID)
	c := store.Commit{Rollout: in.RolloutID, Term: term, Now: now, State: in.State, Reason: in.Reason, RollbackScope: in.RollbackScope}
	steps := map[string]string{}
	var notify []string
	p := rc.plan
	addStep := func(st engine.Start, kind store.StepKind) {
		payload := api.StepPayload{ID: st.StepID, Rollout: in.RolloutID, Kind: string(kind), Attempt: st.Attempt, Term: term,
			Actions: p.Change.Actions, Reboot: p.Change.Reboot, Probes: p.Gates.Node.Probes,
			MinHealthy: p.Gates.Node.MinHealthy, HealthyDeadline: p.Gates.Node.HealthyDeadline, Timeout: p.Change.Timeout}
		raw, _ := json.Marshal(payload)
		c.Steps = append(c.Steps, store.Step{ID: st.StepID, Rollout: in.RolloutID, NodeID: st.Node, Kind: kind,
			Attempt: st.Attempt, Term: term, Payload: raw, CreatedAt: now})
		steps[st.Node] = st.StepID
		notify = append(notify, st.Node)
		c.Audit = append(c.Audit, audit(now, "scheduler", "step.dispatch", "node/"+st.Node, in.RolloutID,
			map[string]any{"step": st.StepID, "kind": kind, "wave": st.Wave, "term": term}))
	}
	for _, st := range d.Starts {
		addStep(st, store.StepApply)
	}
	for _, st := range d.Rollbacks {
		addStep(st, store.StepRollback)
	}
	seen := map[int]bool{}
	for _, i := range changed {
		if seen[i] {
			continue
		}
		seen[i] = true
		id := in.Nodes[i].ID
		c.Nodes = append(c.Nodes, store.NodeUpdate{NodeID: id, From: before[i], To: in.Nodes[i].State, StepID: steps[id]})
	}
	for _, t := range d.Nodes {
		c.Audit = append(c.Audit, audit(now, "scheduler", "node.phase", "node/"+t.Node, in.RolloutID,
			map[string]any{"from": t.From, "to": t.To, "reason": t.Reason}))
	}
	for _, t := range d.Waves {
		c.Waves = append(c.Waves, store.Wave{Name: t.Wave, WaveStatus: in.Waves[t.Wave]})
		c.Audit = append(c.Audit, audit(now, "scheduler", "wave.state", "rollout/"+in.RolloutID+"/wave/"+t.Wave, in.RolloutID,
			map[string]any{"from": t.From, "to": t.To, "reason": t.Reason}))
	}
	if d.Breach != "" {
		// Its own entry, before the state change it causes: the
		// budget.breached webhook event (store.WebhookEventOf).
		c.Audit = append(c.Audit, audit(now, "scheduler", "budget.breach", "rollout/"+in.RolloutID, in.RolloutID,
			map[string]any{"reason": d.Breach, "to": in.State, "scope": in.RollbackScope}))
	}
	if in.State != prevState || d.Reason != "" && len(d.Events) > 0 {
		detail := map[string]any{"from": prevState, "to": in.State, "reason": in.Reason, "scope": in.RollbackScope}
		if len(d.Localisation) > 0 {
			detail["localisation"] = apiFindings(d.Localisation)
		}
		c.Audit = append(c.Audit, audit(now, "scheduler", "rollout.state", "rollout/"+in.RolloutID, in.RolloutID, detail))
	}
	if len(d.Events) > 0 {
		c.Audit = append(c.Audit, audit(now, "scheduler", "rollout.decision", "rollout/"+in.RolloutID, in.RolloutID,
			map[string]any{"events": d.Events}))
	}
	return c, notify
}

func audit(at time.Time, actor, action, object, rollout string, detail any) store.AuditEntry {
	raw, _ := json.Marshal(detail)
	return store.AuditEntry{At: at, Actor: actor, Action: action, Object: object, Rollout: rollout, Detail: raw}
}

// observe updates metrics after a committed decision. The rollout-level
// figures (halts, rollbacks, recovery) are not observed here but read from
// the times the store keeps (rolloutCollector).
func (sc *scheduler) observe(rc *rolloutCache, in engine.Input, d engine.Decision, now time.Time) {
	m := sc.s.m
	for _, t := range d.Nodes {
		if t.To == engine.PhaseSucceeded {
			if i, ok := rc.byID[t.Node]; ok && !in.Nodes[i].State.StartedAt.IsZero() {
				m.stepDuration.Observe(now.Sub(in.Nodes[i].State.StartedAt).Seconds())
			}
		}
	}
	m.starts.Add(float64(len(d.Starts)))
	m.rollbacks.Add(float64(len(d.Rollbacks)))
}

// evaluate runs the wave gates of baking waves that are due, and stores
// the verdicts they reach.
func (sc *scheduler) evaluate(ctx context.Context, rc *rolloutCache, in engine.Input, d engine.Decision) {
	s := sc.s
	if len(d.Evaluate) == 0 {
		return
	}
	var results []engine.GateResult
	for _, wave := range d.Evaluate {
		ws := in.Waves[wave]
		for _, g := range rc.plan.Gates.Wave {
			key := in.RolloutID + "/" + wave + "/" + g.Name
			sc.mu.Lock()
			due := sc.tracker.Due(key, g, ws.BakeFrom, in.Now)
			sc.mu.Unlock()
			if !due {
				continue
			}
			req := gate.Request{Rollout: in.RolloutID, Wave: wave, Gate: g, BakeFrom: ws.BakeFrom, StartedAt: ws.StartedAt, Now: in.Now}
			req.Nodes, req.Baseline = gate.Baseline(in.Nodes, wave, g.Baseline)
			ev := s.gates.Evaluate(ctx, req)
			if ctx.Err() != nil {
				return // shutting down: an interrupted query is not a verdict
			}
			s.m.gateEvals.WithLabelValues(string(ev.Verdict)).Inc()
			sc.mu.Lock()
			v, reason, ok := sc.tracker.Observe(key, g, ev, in.Now)
			sc.mu.Unlock()
			if ok {
				results = append(results, engine.GateResult{Wave: wave, Gate: g.Name, Verdict: v, Reason: reason, At: in.Now})
			}
		}
	}
	if len(results) == 0 {
		return
	}
	if err := s.st.AddGateResults(ctx, in.RolloutID, results); err != nil {
		s.log.Error("store gate results", "rollout", in.RolloutID, "err", err)
		return
	}
	s.fp.hit(fpGateEvaluation)
	sc.kick()
	s.wake.broadcast()
}

// alerts returns the blocking alerts firing now for a plan's matchers. If
// they cannot be checked, that blocks too: unknown is not "no alert".
func (sc *scheduler) alerts(ctx context.Context, p *plan.Plan) []string {
	var matchers []string
	for _, g := range p.Gates.Wave {
		matchers = append(matchers, g.AlertMatchers...)
	}
	if len(matchers) == 0 {
		return nil
	}
	firing, err := sc.s.gates.FiringAlerts(ctx, matchers)
	if err != nil {
		return []string{fmt.Sprintf("cannot check blocking alerts (%v)", err)}
	}
	return firing
}

// uncoveredStrata returns how many canary strata Assign left uncovered,
// by rollout, for the rollouts this server knows the assignment of.
func (sc *scheduler) uncoveredStrata() map[string]int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	out := make(map[string]int, len(sc.rollouts))
	for id, rc := range sc.rollouts {
		if rc.plan != nil || rc.uncovered != nil {
			out[id] = len(rc.uncovered)
		}
	}
	return out
}

func (sc *scheduler) forget(id string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	delete(sc.rollouts, id)
	sc.tracker.Forget(id + "/")
}
