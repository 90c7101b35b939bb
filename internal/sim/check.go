package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/window"
)

// Rule names a safety rule a decision must keep.
type Rule string

const (
	RuleMaxInFlight Rule = "max-in-flight" // in flight <= limits.maxInFlight after any decision that takes slots
	RuleCap         Rule = "cap"           // per-domain in flight <= limits.caps[key] after any decision that takes slots there
	RuleHoldBack    Rule = "hold-back"     // no start in the held-back domain before every holdBack.until wave succeeded
	RuleWindow      Rule = "window"        // no start outside the node's maintenance window (minus cutoff)
	RuleFreeze      Rule = "freeze"        // no start inside a freeze
	RuleRate        Rule = "rate"          // at most rate.starts starts in any sliding window of rate.per
	RuleRestart     Rule = "restart"       // no node started twice unless its rollback was ordered or it was interrupted since
	RuleBudget      Rule = "budget"        // no start in or after a decision that sees a breached failure budget
	RuleStopped     Rule = "stopped"       // no start unless the rollout is running; no resume without an operator
	RuleWave        Rule = "wave"          // no start of a node whose wave is not running
	RuleCanary      Rule = "canary"        // the canary covers every stratum its size allows, and reports the rest
	RuleUnknownNode Rule = "unknown-node"  // decisions name only nodes of the target
	RuleLineStop    Rule = "line-stop"     // no start and no rollback while the line is stopped
	RuleReport      Rule = "report"        // every report of a node's current step is accepted by the engine's rules
	RulePreflight   Rule = "preflight"     // with a plan's preflight: no start while a pending node's answer is due, none of a node without a passing answer
)

// rateStart is one start in the rate window.
type rateStart struct {
	node int32
	at   time.Time
}

// Violation is one broken rule. It is always a bug: of the engine, or of
// the checker.
type Violation struct {
	At   time.Time `json:"at"`
	Rule Rule      `json:"rule"`
	Msg  string    `json:"msg"`
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: %s: %s", v.At.UTC().Format(time.RFC3339), v.Rule, v.Msg)
}

// BudgetBreach is a failure budget first seen exceeded.
type BudgetBreach struct {
	At       time.Time
	Wave     string // "" for the overall budget
	Failures int
	Max      int
}

func (b BudgetBreach) String() string {
	who := "rollout"
	if b.Wave != "" {
		who = "wave " + b.Wave
	}
	return fmt.Sprintf("%s: failure budget breached (%d failed > %d allowed)", who, b.Failures, b.Max)
}

// Check verifies one decision against its input with a fresh Checker: the
// rules that need history (rate across decisions, restarts, breaches seen
// earlier) only see what the input's node states tell.
func Check(in engine.Input, d engine.Decision) []Violation {
	c, err := NewChecker(in.Plan, in.Nodes)
	if err != nil {
		return []Violation{{At: in.Now, Rule: RuleWindow, Msg: err.Error()}}
	}
	return c.Check(in, d)
}

// Checker verifies the successive decisions of one rollout. It remembers
// what single decisions cannot show: every start (for the sliding rate
// window and restarts), ordered rollbacks, and budgets once breached — a
// breach is sticky: no decision after it may start a node. Build one per
// rollout with the target in assignment order; Check expects Input.Nodes
// to hold the same nodes in the same order.
type Checker struct {
	p        *plan.Plan
	index    map[string]int32
	waveOf   []int16 // plan wave index per node, -1 when skipped
	waveSize []int
	waveIdx  map[string]int
	maxIF    int
	caps     []*checkCap
	held     []bool
	hb       *plan.HoldBack
	winOf    []int16 // window index per node, -1: any time
	windows  []checkWindow
	cutoff   time.Duration
	freezes  []window.Freeze

	// starts are the start times within the rate window, oldest first,
	// with their nodes: a retry after an interruption replaces its node's
	// earlier start (the rate bounds how fast the change reaches nodes; a
	// retry reaches no new node).
	starts   []rateStart
	started  []bool
	rollback []bool // rollback ordered since the last start
	// interrupted is each node's interruption count at its last start: a
	// count grown since allows the retry (gates.onInterrupted: retry).
	interrupted []int
	breached    bool
	seen        map[string]bool // budgets already reported breached ("" overall)
	breaches    []BudgetBreach

	// scratch, reused by Check
	waveFail []int
	inFlight []int32
}

type checkCap struct {
	key      string
	q        plan.Quantity
	of       []int32
	values   []string
	limit    []int
	inFlight []int
	touched  []bool
}

type checkWindow struct {
	name string
	wk   *window.Weekly
	err  error
}

// NewChecker prepares the checks of one rollout's decisions. nodes is the
// target in assignment order, as Assign returned it.
func NewChecker(p *plan.Plan, nodes []engine.Node) (*Checker, error) {
	n := len(nodes)
	c := &Checker{
		p:           p,
		index:       make(map[string]int32, n),
		waveOf:      make([]int16, n),
		waveSize:    make([]int, len(p.Waves)),
		waveIdx:     make(map[string]int, len(p.Waves)),
		maxIF:       n,
		winOf:       make([]int16, n),
		cutoff:      p.Windows.Cutoff.D(),
		started:     make([]bool, n),
		rollback:    make([]bool, n),
		interrupted: make([]int, n),
		seen:        map[string]bool{},
		waveFail:    make([]int, len(p.Waves)),
	}
	for i, w := range p.Waves {
		c.waveIdx[w.Name] = i
	}
	if q := p.Limits.MaxInFlight; q != nil {
		c.maxIF = max(1, q.Of(n))
	}
	keys := make([]string, 0, len(p.Limits.Caps))
	for k := range p.Limits.Caps {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		cp := &checkCap{key: k, q: p.Limits.Caps[k], of: make([]int32, n)}
		idx := map[string]int32{}
		var size []int
		for i := range nodes {
			v := nodes[i].Value(k)
			j, ok := idx[v]
			if !ok {
				j = int32(len(cp.values))
				idx[v] = j
				cp.values = append(cp.values, v)
				size = append(size, 0)
			}
			cp.of[i] = j
			if nodes[i].State.Phase != engine.PhaseSkipped {
				size[j]++
			}
		}
		cp.limit = make([]int, len(cp.values))
		for j := range cp.values {
			if cp.q.Percent {
				cp.limit[j] = max(1, cp.q.Of(size[j]))
			} else {
				cp.limit[j] = cp.q.Count
			}
		}
		cp.inFlight = make([]int, len(cp.values))
		cp.touched = make([]bool, len(cp.values))
		c.caps = append(c.caps, cp)
	}
	if hb := p.Limits.HoldBack; hb != nil {
		c.hb = hb
		c.held = make([]bool, n)
		for i := range nodes {
			c.held[i] = nodes[i].Value(hb.Key) == hb.Domain
		}
	}
	winIdx := map[string]int16{}
	label := p.Windows.Label
	names := make([]string, 0, len(p.Windows.Definitions))
	for name := range p.Windows.Definitions {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		wk, err := compileWindow(name, p.Windows.Definitions[name])
		winIdx[name] = int16(len(c.windows))
		c.windows = append(c.windows, checkWindow{name: name, wk: wk, err: err})
	}
	for i := range nodes {
		nd := &nodes[i]
		c.index[nd.ID] = int32(i)
		c.waveOf[i] = -1
		if wi, ok := c.waveIdx[nd.State.Wave]; ok && nd.State.Phase != engine.PhaseSkipped {
			c.waveOf[i] = int16(wi)
			c.waveSize[wi]++
		}
		name := ""
		if label != "" {
			name = nd.Labels[label]
		}
		if _, ok := winIdx[name]; !ok || name == "" {
			name = p.Windows.Default
		}
		c.winOf[i] = -1
		if j, ok := winIdx[name]; ok && name != "" {
			c.winOf[i] = j
		} else if name != "" {
			// A default naming no definition: no node may start.
			c.winOf[i] = int16(len(c.windows))
			c.windows = append(c.windows, checkWindow{name: name, err: fmt.Errorf("window %q is not defined", name)})
			winIdx[name] = c.winOf[i]
		}
	}
	for _, f := range p.Windows.Freezes {
		c.freezes = append(c.freezes, window.Freeze{Name: f.Name, From: f.From, To: f.To, Reason: f.Reason})
	}
	return c, nil
}

// compileWindow turns a plan window into a window.Weekly.
func compileWindow(name string, def plan.WeeklyWindow) (*window.Weekly, error) {
	spans := make([]window.Span, 0, len(def.Spans))
	for _, s := range def.Spans {
		days, err := window.ParseDays(s.Days)
		if err != nil {
			return nil, fmt.Errorf("window %s: %w", name, err)
		}
		start, err := window.ParseClock(s.Start)
		if err != nil {
			return nil, fmt.Errorf("window %s: %w", name, err)
		}
		spans = append(spans, window.Span{Days: days, Start: start, Duration: s.Duration.D()})
	}
	wk, err := window.New(name, def.TimeZone, spans)
	if err != nil {
		return nil, fmt.Errorf("window %s: %w", name, err)
	}
	return wk, nil
}

// Breached reports whether any failure budget was seen breached.
func (c *Checker) Breached() bool { return c.breached }

// Breaches lists the budgets seen breached, in the order first seen.
func (c *Checker) Breaches() []BudgetBreach { return c.breaches }

// Check verifies decision d taken on input in, then records its starts
// and rollbacks. It costs one pass over in.Nodes.
func (c *Checker) Check(in engine.Input, d engine.Decision) []Violation {
	var out []Violation
	now := in.Now
	bad := func(r Rule, format string, args ...any) {
		out = append(out, Violation{At: now, Rule: r, Msg: fmt.Sprintf(format, args...)})
	}
	if len(in.Nodes) != len(c.waveOf) {
		bad(RuleUnknownNode, "input has %d nodes, the checker was built for %d", len(in.Nodes), len(c.waveOf))
		return out
	}

	// One pass: slots in use, failures per wave, recent starts.
	inFlight := 0
	clear(c.waveFail)
	for _, cp := range c.caps {
		clear(cp.inFlight)
		clear(cp.touched)
	}
	var rateFrom time.Time
	recent := 0
	rate := c.p.Limits.Rate
	if rate != nil {
		rateFrom = now.Add(-rate.Per.D())
	}
	for i := range in.Nodes {
		st := &in.Nodes[i].State
		c.add(i, st.Phase, 1, &inFlight)
		if rate != nil && st.StartedAt.After(rateFrom) && !st.StartedAt.After(now) {
			recent++
		}
	}
	// This decision's transitions.
	trans := make(map[int32]engine.Phase, len(d.Nodes))
	for _, t := range d.Nodes {
		i, ok := c.index[t.Node]
		if !ok {
			bad(RuleUnknownNode, "transition of node %q, not in the target", t.Node)
			continue
		}
		cur, ok := trans[i]
		if !ok {
			cur = in.Nodes[i].State.Phase
		}
		c.add(int(i), cur, -1, &inFlight)
		c.add(int(i), t.To, 1, &inFlight)
		trans[i] = t.To
	}
	phase := func(i int32) engine.Phase {
		if p, ok := trans[i]; ok {
			return p
		}
		return in.Nodes[i].State.Phase
	}

	// Budgets, after the transitions (deadlines, gate verdicts).
	overall := 0
	for wi, w := range c.p.Waves {
		f := c.waveFail[wi]
		overall += f
		b := plan.Budget{Max: &plan.Quantity{}}
		if w.Budget != nil {
			b = *w.Budget
		}
		if b.Max != nil && f > b.Max.Of(c.waveSize[wi]) {
			c.breach(now, w.Name, f, b.Max.Of(c.waveSize[wi]))
		}
	}
	if b := c.p.Budget; b.Max != nil && overall > b.Max.Of(len(in.Nodes)) {
		c.breach(now, "", overall, b.Max.Of(len(in.Nodes)))
	}

	// The rollout state.
	if in.LineStop != "" && (len(d.Starts) > 0 || len(d.Rollbacks) > 0) {
		bad(RuleLineStop, "%d start(s) and %d rollback(s) while the line is stopped", len(d.Starts), len(d.Rollbacks))
	}
	if len(d.Starts) > 0 && d.State != engine.RolloutRunning {
		bad(RuleStopped, "%d start(s) while the rollout is %s", len(d.Starts), d.State)
	}
	if c.p.Preflight.Runs() && len(d.Starts) > 0 {
		c.checkPreflight(in, d, phase, bad)
	}
	if d.State == engine.RolloutRunning {
		switch in.State {
		case engine.RolloutPaused, engine.RolloutHalted, engine.RolloutRollingBack,
			engine.RolloutFailed, engine.RolloutAborted, engine.RolloutSucceeded:
			bad(RuleStopped, "rollout went from %s to running without an operator", in.State)
		}
	}
	if len(d.Starts) > 0 && c.breached {
		bad(RuleBudget, "%d start(s) after a failure budget was breached (%s)", len(d.Starts), c.breaches[0])
	}

	// Wave states after the decision.
	waveState := func(name string) engine.WaveState {
		st := in.Waves[name].State
		for _, t := range d.Waves {
			if t.Wave == name {
				st = t.To
			}
		}
		if st == "" {
			st = engine.WavePending
		}
		return st
	}
	heldOpen := true
	var heldWait []string
	if c.hb != nil {
		for _, u := range c.hb.Until {
			if st := waveState(u); st != engine.WaveSucceeded {
				heldOpen = false
				heldWait = append(heldWait, fmt.Sprintf("%s is %s", u, st))
			}
		}
	}
	frozen, isFrozen := window.Frozen(c.freezes, now)
	winOpen := map[int16]bool{}
	tookSlot := false

	seenStart := map[int32]bool{}
	for _, s := range d.Starts {
		i, ok := c.index[s.Node]
		if !ok {
			bad(RuleUnknownNode, "start of node %q, not in the target", s.Node)
			continue
		}
		nd := &in.Nodes[i]
		if seenStart[i] {
			bad(RuleRestart, "node %s started twice in one decision", s.Node)
		}
		seenStart[i] = true
		ph := phase(i)
		switch {
		case ph != engine.PhasePending && ph != engine.PhaseRolledBack:
			bad(RuleRestart, "node %s started while %s", s.Node, ph)
		case c.started[i] && !c.rollback[i] && nd.State.Interruptions <= c.interrupted[i]:
			bad(RuleRestart, "node %s started again without a rollback ordered or an interruption", s.Node)
		}
		if ws := waveState(nd.State.Wave); ws != engine.WaveRunning {
			bad(RuleWave, "node %s of wave %s started while the wave is %s", s.Node, nd.State.Wave, ws)
		}
		if c.held != nil && c.held[i] && !heldOpen {
			bad(RuleHoldBack, "node %s of held-back domain %s=%s started while %s", s.Node, c.hb.Key, c.hb.Domain, strings.Join(heldWait, ", "))
		}
		if isFrozen {
			bad(RuleFreeze, "node %s started during freeze %q", s.Node, frozen.Name)
		}
		if wi := c.winOf[i]; wi >= 0 {
			open, ok := winOpen[wi]
			if !ok {
				w := c.windows[wi]
				if w.err == nil {
					open, _ = w.wk.CanStart(now, c.cutoff)
				}
				winOpen[wi] = open
			}
			if !open {
				bad(RuleWindow, "node %s started outside its window %q (cutoff %s)", s.Node, c.windows[wi].name, FormatDuration(c.cutoff))
			}
		}
		if !ph.InFlight() {
			c.add(int(i), ph, -1, &inFlight)
			c.add(int(i), engine.PhaseQueued, 1, &inFlight)
			c.touch(i)
			tookSlot = true
		}
	}
	for _, r := range d.Rollbacks {
		i, ok := c.index[r.Node]
		if !ok {
			bad(RuleUnknownNode, "rollback of node %q, not in the target", r.Node)
			continue
		}
		if ph := phase(i); !ph.InFlight() {
			c.add(int(i), ph, -1, &inFlight)
			c.add(int(i), engine.PhaseRollingBack, 1, &inFlight)
			c.touch(i)
			tookSlot = true
		}
	}
	if tookSlot && inFlight > c.maxIF {
		bad(RuleMaxInFlight, "%d nodes in flight after the decision, limit %d", inFlight, c.maxIF)
	}
	for _, cp := range c.caps {
		for j, t := range cp.touched {
			if t && cp.inFlight[j] > cp.limit[j] {
				bad(RuleCap, "%s=%s: %d in flight after the decision, cap %d", cp.key, cp.values[j], cp.inFlight[j], cp.limit[j])
			}
		}
	}

	// Rate: the engine's own view (start times in the node states) and the
	// checker's memory, whichever is stricter.
	if rate != nil && len(d.Starts) > 0 {
		retry := map[int32]bool{}
		for _, st := range d.Starts {
			if i, ok := c.index[st.Node]; ok && c.started[i] && in.Nodes[i].State.Interruptions > c.interrupted[i] {
				retry[i] = true
			}
		}
		kept := c.starts[:0]
		for _, rs := range c.starts {
			if rs.at.After(rateFrom) && !retry[rs.node] {
				kept = append(kept, rs)
			}
		}
		c.starts = kept
		if n := max(recent, len(c.starts)) + len(d.Starts); n > rate.Starts {
			bad(RuleRate, "%d starts within %s, limit %d", n, FormatDuration(rate.Per.D()), rate.Starts)
		}
		for _, st := range d.Starts {
			c.starts = append(c.starts, rateStart{node: c.index[st.Node], at: now})
		}
	}

	for _, s := range d.Starts {
		if i, ok := c.index[s.Node]; ok {
			c.started[i] = true
			c.rollback[i] = false
			c.interrupted[i] = in.Nodes[i].State.Interruptions
		}
	}
	for _, r := range d.Rollbacks {
		if i, ok := c.index[r.Node]; ok {
			c.rollback[i] = true
		}
	}
	return out
}

// add counts node i in phase ph (sign +1) or removes it (-1).
func (c *Checker) add(i int, ph engine.Phase, sign int, inFlight *int) {
	if ph.InFlight() {
		*inFlight += sign
		for _, cp := range c.caps {
			cp.inFlight[cp.of[i]] += sign
		}
	}
	if ph == engine.PhaseFailed || ph == engine.PhaseQuarantined {
		if wi := c.waveOf[i]; wi >= 0 {
			c.waveFail[wi] += sign
		}
	}
}

func (c *Checker) touch(i int32) {
	for _, cp := range c.caps {
		cp.touched[cp.of[i]] = true
	}
}

func (c *Checker) breach(now time.Time, wave string, failures, max int) {
	c.breached = true
	if c.seen[wave] {
		return
	}
	c.seen[wave] = true
	c.breaches = append(c.breaches, BudgetBreach{At: now, Wave: wave, Failures: failures, Max: max})
}

// CheckAssignment verifies canary coverage: for every canary wave, each
// stratum (combination of spread-key values) among the nodes the wave
// could take is covered by a canary node or reported in a.Uncovered; when
// the canary has at least as many nodes as strata, all are covered; when
// it has fewer, no two canary nodes share a stratum; a canary that covers
// its strata takes at most its max.
func CheckAssignment(p *plan.Plan, a *engine.Assignment) []Violation {
	var out []Violation
	bad := func(format string, args ...any) {
		out = append(out, Violation{Rule: RuleCanary, Msg: fmt.Sprintf(format, args...)})
	}
	waveIdx := map[string]int{}
	for i, w := range p.Waves {
		waveIdx[w.Name] = i
	}
	after := heldWaves(p)
	var held func(n *fleet.Node) bool
	if hb := p.Limits.HoldBack; hb != nil {
		held = func(n *fleet.Node) bool { return n.Value(hb.Key) == hb.Domain }
	}
	for wi, w := range p.Waves {
		if w.Canary == nil {
			continue
		}
		var sel *fleet.Selector
		if w.Selector != "" {
			var err error
			if sel, err = fleet.CompileSelector(w.Selector); err != nil {
				bad("wave %s: selector: %v", w.Name, err)
				continue
			}
		}
		key := func(n *fleet.Node) string {
			vals := make([]string, len(w.Spread))
			for k, s := range w.Spread {
				vals[k] = s + "=" + n.Value(s)
			}
			return strings.Join(vals, ",")
		}
		pool := map[string]bool{}
		covered := map[string]bool{}
		size := 0
		for i := range a.Nodes {
			nd := &a.Nodes[i]
			if nd.State.Wave == w.Name {
				size++
				covered[key(nd.Node)] = true
				pool[key(nd.Node)] = true
				continue
			}
			if ow, ok := waveIdx[nd.State.Wave]; ok && ow < wi {
				continue // taken by an earlier wave
			}
			if held != nil && held(nd.Node) && !after[w.Name] {
				continue
			}
			if sel != nil {
				if ok, err := sel.Match(nd.Node); err != nil || !ok {
					continue
				}
			}
			pool[key(nd.Node)] = true
		}
		if w.Covers() && size > w.Canary.Max.Of(len(a.Nodes)) {
			bad("wave %s: canary of %d nodes over its max %s", w.Name, size, w.Canary.Max)
		}
		reported := map[string]bool{}
		for _, s := range a.Uncovered {
			if s.Wave != w.Name {
				continue
			}
			vals := make([]string, len(w.Spread))
			for k, sp := range w.Spread {
				vals[k] = sp + "=" + s.Values[sp]
			}
			k := strings.Join(vals, ",")
			reported[k] = true
			if covered[k] {
				bad("wave %s: stratum {%s} reported uncovered but a canary node covers it", w.Name, k)
			}
		}
		var missing []string
		for k := range pool {
			if !covered[k] && !reported[k] {
				missing = append(missing, k)
			}
		}
		slices.Sort(missing)
		for _, k := range missing {
			bad("wave %s: stratum {%s} neither covered nor reported", w.Name, k)
		}
		switch {
		case size >= len(pool) && len(covered) < len(pool):
			bad("wave %s: %d canary nodes cover %d of %d strata", w.Name, size, len(covered), len(pool))
		case size < len(pool) && len(covered) < size:
			bad("wave %s: %d canary nodes cover only %d distinct strata of %d", w.Name, size, len(covered), len(pool))
		}
	}
	return out
}

// heldWaves reports, for each wave, whether it comes (transitively) after
// every wave of holdBack.until, and so may take held-back nodes.
func heldWaves(p *plan.Plan) map[string]bool {
	ok := make(map[string]bool, len(p.Waves))
	hb := p.Limits.HoldBack
	after := map[string][]string{}
	for _, w := range p.Waves {
		after[w.Name] = w.After
	}
	for _, w := range p.Waves {
		if hb == nil {
			ok[w.Name] = true
			continue
		}
		anc := map[string]bool{}
		stack := slices.Clone(w.After)
		for len(stack) > 0 && len(anc) <= len(p.Waves) {
			a := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if anc[a] {
				continue
			}
			anc[a] = true
			stack = append(stack, after[a]...)
		}
		all := true
		for _, u := range hb.Until {
			all = all && anc[u]
		}
		ok[w.Name] = all
	}
	return ok
}

// checkPreflight checks a decision's starts against the node pre-flight
// (RulePreflight): the nodes were asked, no pending node's answer is
// still due, and every started node answered in time and passed.
func (c *Checker) checkPreflight(in engine.Input, d engine.Decision, phase func(int32) engine.Phase, bad func(Rule, string, ...any)) {
	st := in.Preflight
	if st == nil || st.AskedAt.IsZero() {
		bad(RulePreflight, "%d start(s) before any node was asked for its pre-flight", len(d.Starts))
		return
	}
	now, deadline := in.Now, st.AskedAt.Add(c.p.Preflight.Timeout.D())
	received := func(id string) (engine.PreflightResult, bool) {
		r, ok := st.Results[id]
		return r, ok && !r.At.After(now) && !r.At.After(deadline)
	}
	if now.Before(deadline) {
		due := 0
		for i := range in.Nodes {
			if _, ok := received(in.Nodes[i].ID); !ok && phase(int32(i)) == engine.PhasePending {
				due++
			}
		}
		if due > 0 {
			bad(RulePreflight, "%d start(s) while %d pending node(s) have not answered their pre-flight", len(d.Starts), due)
		}
	}
	for _, s := range d.Starts {
		if r, ok := received(s.Node); !ok || !r.OK {
			bad(RulePreflight, "start of %s, whose pre-flight did not pass in time", s.Node)
		}
	}
}
