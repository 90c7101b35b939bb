package engine

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/plan"
)

// Decide computes what to do next from the rollout's persisted state. It
// is pure: the same input gives the same decision, and nothing in the
// input is modified. The order of work inside is the order of safety:
// node deadlines and gate results first, then failure budgets (a breach
// stops starts in the same decision), then wave progress, then rollbacks,
// then starts under every limit at once.
func Decide(in Input) Decision {
	d := newDecider(&in, "")
	d.run()
	return d.out
}

// Explain returns why one node is where it is, in the words Decide would
// use: why it waits, or its phase and reason.
func Explain(in Input, nodeID string) string {
	d := newDecider(&in, nodeID)
	d.run()
	if d.traced != "" {
		return nodeID + " waits: " + d.traced
	}
	for i := range in.Nodes {
		n := &in.Nodes[i]
		if n.ID != nodeID {
			continue
		}
		ph := n.State.Phase
		if d.phase != nil {
			ph = d.phase[i]
		}
		for _, t := range d.out.Nodes {
			if t.Node == nodeID {
				return fmt.Sprintf("%s: %s (%s)", nodeID, t.To, t.Reason)
			}
		}
		for _, s := range d.out.Starts {
			if s.Node == nodeID {
				return fmt.Sprintf("%s: starts now in wave %s (step %s)", nodeID, s.Wave, s.StepID)
			}
		}
		for _, s := range d.out.Rollbacks {
			if s.Node == nodeID {
				return fmt.Sprintf("%s: rolls back now (step %s)", nodeID, s.StepID)
			}
		}
		if n.State.Reason != "" {
			return fmt.Sprintf("%s: %s (%s)", nodeID, ph, n.State.Reason)
		}
		return fmt.Sprintf("%s: %s", nodeID, ph)
	}
	return nodeID + ": not in this rollout's target"
}

// waveCount tallies one wave's nodes by effective phase.
type waveCount struct {
	total, pending, active, succeeded, failed, quarantined int
	rollingBack, rolledBack, unknown, rollbackFailed       int
	rollbackUnhealthy                                      int
	failedNodes                                            []string // first few, for reasons
}

func (c *waveCount) failures() int { return c.failed + c.quarantined }

// done reports whether every node of the wave reached an end for this
// wave: the wave may bake.
func (c *waveCount) done() bool {
	return c.pending == 0 && c.active == 0 && c.unknown == 0 && c.failed == 0 && c.rollingBack == 0
}

type decider struct {
	in    *Input
	p     *plan.Plan
	trace string // node whose wait reason to record (Explain)

	out    Decision
	state  RolloutState
	reason string
	scope  string

	waveIdx  map[string]int
	waves    []WaveStatus // effective wave status, by plan index
	counts   []waveCount
	overall  waveCount
	phase    []Phase    // effective phase of each node
	waveOf   []int32    // plan index of each node's wave, -1 for none
	blocks   []*waitKey // why each pending wave has not started, computed once
	inFlight int
	maxIF    int
	x        *Index
	used     [][]int     // per cap, slots in use per domain
	fleet    *fleetState // nil without Input.Fleet
	// allHolders and holders sample the nodes holding slots, overall and
	// per cap and domain (allocated on first use), for wait reasons.
	allHolders holders
	holders    [][]holders
	recent     int       // starts within the rate window
	oldest     time.Time // oldest start within the rate window
	traced     string
	waits      map[waitKey]*Wait
	lastKey    waitKey // fast path: consecutive nodes usually wait for the same reason
	lastWait   *Wait
	waitList   []*Wait
	// excluded marks the nodes the node pre-flight skips in this
	// decision (onFail: exclude); nil when none.
	excluded []bool
}

func newDecider(in *Input, trace string) *decider {
	p := in.Plan
	d := &decider{in: in, p: p, trace: trace, state: in.State, reason: in.Reason, scope: in.RollbackScope,
		waveIdx: make(map[string]int, len(p.Waves)), waits: map[waitKey]*Wait{}}
	d.waves = make([]WaveStatus, len(p.Waves))
	d.blocks = make([]*waitKey, len(p.Waves))
	d.counts = make([]waveCount, len(p.Waves))
	for i, w := range p.Waves {
		d.waveIdx[w.Name] = i
		ws, ok := in.Waves[w.Name]
		if !ok || ws.State == "" {
			ws.State = WavePending
		}
		d.waves[i] = ws
	}
	d.maxIF = len(in.Nodes)
	if q := p.Limits.MaxInFlight; q != nil {
		d.maxIF = max(1, q.Of(len(in.Nodes)))
	}
	d.x = in.Index
	if d.x == nil || d.x.n != len(in.Nodes) || d.x.plan != p {
		d.x = NewIndex(p, in.Nodes)
	}
	d.fleet = newFleetState(in.Fleet)
	d.used = make([][]int, len(d.x.caps))
	d.holders = make([][]holders, len(d.x.caps))
	for c := range d.x.caps {
		d.used[c] = make([]int, len(d.x.caps[c].names))
	}
	return d
}

func (d *decider) run() {
	d.out.State, d.out.Reason, d.out.RollbackScope = d.in.State, d.in.Reason, d.in.RollbackScope
	if d.state.Terminal() || d.state == RolloutAborted {
		for i := range d.in.Nodes {
			if d.in.Nodes[i].State.Phase.InFlight() {
				d.take(i)
			}
		}
		d.limits()
		return
	}
	if d.state == RolloutPendingApproval && !d.approve() {
		d.limits()
		d.finish()
		return
	}
	if d.state == RolloutRunning && d.p.Preflight.Runs() && !d.preflight() {
		d.limits()
		d.finish()
		return
	}
	d.tally()
	d.limits()
	d.quarantine()
	if d.state == RolloutRunning || d.state == RolloutPaused {
		d.budgets()
	}
	d.progressWaves()
	if d.state == RolloutRollingBack {
		d.rollback()
	}
	d.schedule()
	d.complete()
	d.finish()
}

// approve moves a rollout waiting for approvals to running when enough
// distinct approvers other than the author approved.
func (d *decider) approve() bool {
	need := max(d.p.Approvals.Start, d.in.StartApprovals)
	got := approvers(d.in, "")
	if len(got) >= need {
		d.setState(RolloutRunning, "", "")
		d.event(fmt.Sprintf("approved by %s (%d/%d)", strings.Join(got, ", "), len(got), need))
		return true
	}
	d.out.Reason = fmt.Sprintf("waiting for approvals: %d/%d", len(got), need)
	for i := range d.in.Nodes {
		if d.in.Nodes[i].State.Phase == PhasePending {
			d.wait(i, waitKey{kind: waitApproval, a: len(got), b: need})
		}
	}
	return false
}

// approvers lists the distinct approvers of wave ("" for the start), never
// counting the rollout's author.
func approvers(in *Input, wave string) []string {
	return Approvers(in.Author, in.Approvals, wave)
}

// Approvers lists, sorted, the distinct people other than author who
// approved wave ("" for the start): the approvals that count.
func Approvers(author string, approvals []Approval, wave string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range approvals {
		if a.Wave != wave || a.By == "" || a.By == author || seen[a.By] {
			continue
		}
		seen[a.By] = true
		out = append(out, a.By)
	}
	slices.Sort(out)
	return out
}

// tally computes each node's effective phase (applying deadlines and node
// gate results) and counts nodes per wave, slots in use and recent starts.
func (d *decider) tally() {
	in, p := d.in, d.p
	now := in.Now
	d.phase = make([]Phase, len(in.Nodes))
	var rateFrom time.Time
	if r := p.Limits.Rate; r != nil {
		rateFrom = now.Add(-r.Per.D())
	}
	progress := p.Gates.ProgressDeadline.D()
	healthy := p.Gates.Node.HealthyDeadline.D()
	minHealthy := p.Gates.Node.MinHealthy.D()
	for i := range in.Nodes {
		n := &in.Nodes[i]
		st := &n.State
		ph := st.Phase
		switch ph {
		case PhaseQueued, PhaseRunning, PhaseRollingBack:
			if progress > 0 {
				if dl := st.Since.Add(progress); !now.Before(dl) {
					what := "step"
					if ph == PhaseRollingBack {
						what = "rollback"
					}
					ph = d.transition(i, PhaseFailed, fmt.Sprintf("%s made no progress within %s (since %s)", what, fmtDur(progress), fmtTime(st.Since)))
				} else {
					d.next(dl)
				}
			}
		case PhaseVerifying:
			switch {
			case st.Gate == Fail:
				ph = d.transition(i, PhaseFailed, "node gate failed: "+orElse(st.Reason, "probe failed"))
			case st.Gate == Pass && !st.HealthySince.IsZero() && !now.Before(st.HealthySince.Add(minHealthy)):
				ph = d.transition(i, PhaseSucceeded, "healthy for "+FormatDuration(now.Sub(st.HealthySince)))
			case healthy > 0 && !now.Before(st.Since.Add(healthy)):
				ph = d.transition(i, PhaseFailed, fmt.Sprintf("not healthy within %s", fmtDur(healthy)))
			default:
				if st.Gate == Inconclusive && d.state == RolloutRunning {
					d.setState(RolloutPaused, fmt.Sprintf("node %s gate inconclusive: %s; paused for a human", n.ID, orElse(st.Reason, "no verdict")), "")
				}
				if st.Gate == Pass && !st.HealthySince.IsZero() {
					d.next(st.HealthySince.Add(minHealthy))
				}
				if healthy > 0 {
					d.next(st.Since.Add(healthy))
				}
			}
		}
		if d.excluded != nil && d.excluded[i] {
			ph = PhaseSkipped
		}
		d.phase[i] = ph
		if !rateFrom.IsZero() && !st.StartedAt.IsZero() && st.StartedAt.After(rateFrom) && !st.StartedAt.After(now) {
			d.recent++
			if d.oldest.IsZero() || st.StartedAt.Before(d.oldest) {
				d.oldest = st.StartedAt
			}
		}
		if ph.InFlight() {
			d.take(i)
		}
		wi := d.x.waveOf[i]
		if wi < 0 {
			continue
		}
		d.count(&d.counts[wi], i, ph)
		d.count(&d.overall, i, ph)
	}
}

func (d *decider) count(c *waveCount, i int, ph Phase) {
	c.total++
	switch ph {
	case PhasePending:
		c.pending++
	case PhaseQueued, PhaseRunning, PhaseVerifying:
		c.active++
	case PhaseSucceeded:
		c.succeeded++
	case PhaseFailed:
		c.failed++
		if d.in.Nodes[i].State.Rollback {
			c.rollbackFailed++
		}
		if len(c.failedNodes) < 3 {
			c.failedNodes = append(c.failedNodes, d.in.Nodes[i].ID)
		}
	case PhaseQuarantined:
		c.quarantined++
	case PhaseRollingBack:
		c.rollingBack++
	case PhaseRolledBack:
		c.rolledBack++
	case PhaseRollbackUnhealthy:
		c.rollbackUnhealthy++
	case PhaseUnknown:
		c.unknown++
	}
}

// quarantine sets failed nodes aside, freeing their slots, in waves whose
// budget allows it and asks for it.
func (d *decider) quarantine() {
	if d.state != RolloutRunning && d.state != RolloutPaused {
		return
	}
	for wi, w := range d.p.Waves {
		c := &d.counts[wi]
		b := d.waveBudget(wi)
		if c.failed == 0 || !b.Quarantine || d.breached(c.failures(), b, c.total) {
			continue
		}
		if ob := d.p.Budget; ob.Max != nil && d.breached(d.overall.failures(), ob, len(d.in.Nodes)) {
			continue
		}
		for i := range d.in.Nodes {
			n := &d.in.Nodes[i]
			if n.State.Wave != w.Name || d.phase[i] != PhaseFailed || n.State.Rollback {
				continue
			}
			d.transition(i, PhaseQuarantined, fmt.Sprintf("quarantined within budget (%d failed ≤ %s)", c.failures(), budgetText(b, c.total)))
			d.phase[i] = PhaseQuarantined
			c.failed--
			c.quarantined++
			d.overall.failed--
			d.overall.quarantined++
			d.release(i)
		}
	}
}

func (d *decider) waveBudget(wi int) plan.Budget {
	if b := d.p.Waves[wi].Budget; b != nil {
		return *b
	}
	return plan.Budget{Max: &plan.Quantity{}, Action: orElseAction(d.p.Budget.Action, plan.BreachRollbackWave)}
}

// breached applies the documented threshold: failures > budget breaches.
func (d *decider) breached(failures int, b plan.Budget, of int) bool {
	if b.Max == nil {
		return false
	}
	return failures > b.Max.Of(of)
}

type breach struct {
	action plan.BreachAction
	wave   int // -1 for the overall budget
	reason string
}

// budgets checks every wave's failure budget and the overall one.
func (d *decider) budgets() {
	var bs []breach
	for wi, w := range d.p.Waves {
		c := &d.counts[wi]
		b := d.waveBudget(wi)
		if d.breached(c.failures(), b, c.total) {
			bs = append(bs, breach{action: b.Action, wave: wi, reason: fmt.Sprintf("wave %s: %d failed > budget %s (%s)",
				w.Name, c.failures(), budgetText(b, c.total), d.failureDetail(c))})
		}
	}
	if b := d.p.Budget; d.breached(d.overall.failures(), b, len(d.in.Nodes)) {
		bs = append(bs, breach{action: b.Action, wave: -1, reason: fmt.Sprintf("rollout: %d failed > budget %s (%s)",
			d.overall.failures(), budgetText(b, len(d.in.Nodes)), d.failureDetail(&d.overall))})
	}
	if len(bs) > 0 {
		d.applyBreach(bs)
	}
}

func (d *decider) failureDetail(c *waveCount) string {
	var parts []string
	for _, id := range c.failedNodes {
		for i := range d.in.Nodes {
			if d.in.Nodes[i].ID == id {
				parts = append(parts, id+": "+d.nodeReason(i))
				break
			}
		}
	}
	if c.failed > len(c.failedNodes) {
		parts = append(parts, fmt.Sprintf("and %d more", c.failed-len(c.failedNodes)))
	}
	if len(parts) == 0 && c.quarantined > 0 {
		parts = append(parts, fmt.Sprintf("%d quarantined", c.quarantined))
	}
	return strings.Join(parts, "; ")
}

// nodeReason is the node's reason after this decision's transitions.
func (d *decider) nodeReason(i int) string {
	id := d.in.Nodes[i].ID
	for j := len(d.out.Nodes) - 1; j >= 0; j-- {
		if d.out.Nodes[j].Node == id {
			return d.out.Nodes[j].Reason
		}
	}
	return d.in.Nodes[i].State.Reason
}

var severity = map[plan.BreachAction]int{plan.BreachPause: 1, plan.BreachRollbackWave: 2, plan.BreachRollbackAll: 3}

// applyBreach stops starts and orders the most severe breach action. A
// rollback of one wave becomes a rollback of all when several waves
// breached at once.
func (d *decider) applyBreach(bs []breach) {
	worst := bs[0]
	var reasons []string
	waves := map[int]bool{}
	for _, b := range bs {
		if severity[b.action] > severity[worst.action] {
			worst = b
		}
		reasons = append(reasons, b.reason)
		if b.wave >= 0 {
			waves[b.wave] = true
		}
	}
	reason := strings.Join(reasons, "; ")
	if worst.action == plan.BreachPause && d.state == RolloutPaused && strings.HasPrefix(d.reason, reason) &&
		(len(d.reason) == len(reason) || strings.HasPrefix(d.reason[len(reason):], localisedSep)) {
		return // paused for this breach already; not localised again at every decision
	}
	reason = d.localised(reason, "")
	if worst.action != plan.BreachPause { // a paused wave may still succeed once a human resolves its failures
		for wi := range waves {
			d.setWave(wi, WaveFailed, "failure budget breached")
		}
	}
	switch worst.action {
	case plan.BreachPause:
		if d.state == RolloutPaused && d.reason == reason {
			return
		}
		d.out.Breach = reason
		d.setState(RolloutPaused, reason, "")
	default:
		scope := ""
		if worst.action == plan.BreachRollbackWave {
			scope = d.rollbackWave(waves)
		}
		d.out.Breach = reason
		d.setState(RolloutRollingBack, reason, scope)
	}
}

// rollbackWave picks the single wave to roll back, or "" (all) when the
// failures span several waves.
func (d *decider) rollbackWave(breached map[int]bool) string {
	with := map[int]bool{}
	for wi := range breached {
		with[wi] = true
	}
	if len(with) == 0 { // overall budget: the waves that have failures
		for wi := range d.counts {
			if d.counts[wi].failures() > 0 {
				with[wi] = true
			}
		}
	}
	if len(with) != 1 {
		return ""
	}
	for wi := range with {
		return d.p.Waves[wi].Name
	}
	return ""
}

// progressWaves moves waves along: running waves whose nodes are all done
// bake; baked waves whose gates pass succeed; pending waves whose
// predecessors succeeded start. It repeats until nothing moves, so that
// empty waves and zero bake times do not cost a decision each.
func (d *decider) progressWaves() {
	for range len(d.p.Waves) + 1 {
		moved := false
		for wi := range d.p.Waves {
			if d.stepWave(wi) {
				moved = true
			}
		}
		if !moved {
			return
		}
	}
}

func (d *decider) stepWave(wi int) bool {
	w := &d.p.Waves[wi]
	ws := d.waves[wi]
	c := &d.counts[wi]
	switch ws.State {
	case WavePending:
		if d.state != RolloutRunning {
			return false
		}
		for _, a := range w.After {
			if pi, ok := d.waveIdx[a]; !ok || d.waves[pi].State != WaveSucceeded {
				return false
			}
		}
		if w.Approvals > 0 {
			got := approvers(d.in, w.Name)
			if len(got) < w.Approvals {
				return false
			}
		}
		if c.total == 0 {
			d.setWave(wi, WaveSucceeded, "no nodes")
			return true
		}
		d.setWave(wi, WaveRunning, plural(c.total, "node"))
		return true
	case WaveRunning:
		if !c.done() {
			return false
		}
		d.setWave(wi, WaveBaking, fmt.Sprintf("%d succeeded, %d quarantined", c.succeeded, c.quarantined))
		return true
	case WaveBaking:
		return d.bake(wi)
	}
	return false
}

// bake judges a baking wave: any failing gate result since baking began
// fails it (and triggers the plan's onFail action); an inconclusive one
// pauses; it succeeds once its bake time has passed and every gate of
// the plan passed since baking began.
func (d *decider) bake(wi int) bool {
	w := &d.p.Waves[wi]
	ws := d.waves[wi]
	latest := map[string]GateResult{}
	for _, g := range d.in.Gates {
		if g.Wave != w.Name || g.At.Before(ws.BakeFrom) {
			continue
		}
		if cur, ok := latest[g.Gate]; !ok || !g.At.Before(cur.At) {
			latest[g.Gate] = g
		}
	}
	names := make([]string, 0, len(latest))
	for name := range latest {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if g := latest[name]; g.Verdict == Fail {
			reason := fmt.Sprintf("wave %s gate %s failed: %s", w.Name, name, g.Reason)
			d.setWave(wi, WaveFailed, reason)
			if d.state == RolloutRunning || d.state == RolloutPaused {
				act := orElseAction(d.p.Gates.OnFail, plan.BreachRollbackWave)
				d.applyBreach([]breach{{action: act, wave: wi, reason: reason}})
			}
			return true
		}
	}
	var missing []string
	for _, g := range d.p.Gates.Wave {
		r, ok := latest[g.Name]
		switch {
		case ok && r.Verdict == Inconclusive:
			if d.state == RolloutRunning {
				d.setState(RolloutPaused, fmt.Sprintf("wave %s gate %s inconclusive: %s; paused for a human", w.Name, g.Name, r.Reason), "")
			}
			return false
		case !ok || r.Verdict != Pass:
			missing = append(missing, g.Name)
		}
	}
	bake := d.p.Gates.BakeTime.D()
	if w.BakeTime != nil {
		bake = w.BakeTime.D()
	}
	until := ws.BakeFrom.Add(bake)
	if d.in.Now.Before(until) {
		d.next(until)
		return false
	}
	if len(missing) > 0 {
		return false
	}
	why := fmt.Sprintf("baked %s", fmtDur(bake))
	if len(d.p.Gates.Wave) > 0 {
		why += ", gates passed"
	}
	d.setWave(wi, WaveSucceeded, why)
	return true
}

// rollback orders rollbacks of the nodes in scope that the change reached,
// failed nodes first, under max in flight and the per-domain caps (a
// rollback restarts services too) but not windows, freezes, rate or jitter:
// remediation does not wait for a window.
func (d *decider) rollback() {
	inScope := func(i int) bool { return d.scope == "" || d.in.Nodes[i].State.Wave == d.scope }
	needs := func(i int) (bool, bool) { // needs rollback, already holds a slot
		st := &d.in.Nodes[i].State
		switch d.phase[i] {
		case PhaseSucceeded, PhaseQuarantined:
			return true, false
		case PhaseVerifying:
			return true, true
		case PhaseFailed:
			return !st.Rollback, true
		}
		return false, false
	}
	busy, failedRollback, unhealthy, rolled := 0, 0, 0, 0
	moving, waiting := 0, 0           // nodes in flight; nodes waiting for a slot
	for pass := 0; pass < 2; pass++ { // failed nodes first
		for i := range d.in.Nodes {
			if !inScope(i) {
				continue
			}
			if pass == 0 {
				switch d.phase[i] {
				case PhaseQueued, PhaseRunning, PhaseRollingBack, PhaseUnknown:
					busy++
					moving++
				case PhaseRolledBack:
					rolled++
				case PhaseRollbackUnhealthy:
					unhealthy++
				case PhaseFailed:
					if d.in.Nodes[i].State.Rollback {
						failedRollback++
					}
				}
			}
			need, holds := needs(i)
			if !need || (pass == 0) != (d.phase[i] == PhaseFailed) {
				continue
			}
			n := &d.in.Nodes[i]
			if d.in.LineStop != "" {
				d.wait(i, waitKey{kind: waitLineStop, s: d.in.LineStop})
				busy++
				continue
			}
			if !holds && d.inFlight >= d.maxIF {
				d.wait(i, waitKey{kind: waitMaxInFlight, a: d.inFlight, b: d.maxIF})
				busy++
				waiting++
				continue
			}
			if !holds {
				k, blocked := d.fleetBlocked(i, false)
				if !blocked {
					k, blocked = d.capBlocked(i)
				}
				if !blocked {
					k, blocked = d.fleet.blocked(i)
				}
				if blocked {
					d.wait(i, k)
					busy++
					waiting++
					continue
				}
				d.take(i)
			}
			d.out.Rollbacks = append(d.out.Rollbacks, Start{Node: n.ID, Wave: n.State.Wave, Attempt: n.State.Attempt,
				StepID: fmt.Sprintf("%s/%s/rollback/%d", d.in.RolloutID, n.ID, n.State.Attempt)})
			d.phase[i] = PhaseRollingBack
			busy++
		}
	}
	if len(d.out.Rollbacks) > 0 {
		d.event(fmt.Sprintf("rolling back %s: %s", plural(len(d.out.Rollbacks), "node"), sample(d.out.Rollbacks)))
	}
	if failedRollback > 0 && moving == 0 && len(d.out.Rollbacks) == 0 && waiting > 0 && busy == waiting {
		// Nothing moves, and a node whose rollback failed already needs
		// a person: it keeps its slot (it is unavailable), so the
		// rollbacks waiting for a slot may wait for it forever. Stop
		// here and say so, instead of holding the slots of every
		// rollout that shares them.
		d.setState(RolloutFailed, d.localised(d.reason, fmt.Sprintf("; rollback failed on %s, a human must resolve them; %s not rolled back (waiting for a slot)",
			plural(failedRollback, "node"), plural(waiting, "node"))), d.scope)
		return
	}
	if busy > 0 {
		return
	}
	if failedRollback > 0 {
		d.setState(RolloutFailed, d.localised(d.reason, fmt.Sprintf("; rollback failed on %s, a human must resolve them", plural(failedRollback, "node"))), d.scope)
		return
	}
	if unhealthy > 0 {
		d.setState(RolloutFailed, d.localised(d.reason, fmt.Sprintf("; rolled back %s, %s still unhealthy after the rollback (kept out of service; a human must resolve them)",
			plural(rolled+unhealthy, "node"), plural(unhealthy, "node"))), d.scope)
		return
	}
	d.setState(RolloutHalted, d.localised(d.reason, "; rolled back "+plural(rolled, "node")), d.scope)
}

// schedule starts pending nodes of running waves while every limit allows,
// and records why the others wait.
func (d *decider) schedule() {
	in, p := d.in, d.p
	now := in.Now
	blocked := waitKey{}
	switch {
	case in.LineStop != "":
		blocked = waitKey{kind: waitLineStop, s: in.LineStop}
	case d.state == RolloutPaused:
		blocked = waitKey{kind: waitPaused, s: d.reason}
	case d.state != RolloutRunning:
		blocked = waitKey{kind: waitState, s: string(d.state)}
	case len(in.BlockingAlerts) > 0:
		blocked = waitKey{kind: waitAlerts, s: strings.Join(in.BlockingAlerts, ", ")}
	}
	freezes := freezesOf(p)
	if blocked.kind == 0 && in.BreakGlass == "" {
		if f, ok := frozen(freezes, now); ok {
			end := freezeEnd(freezes, now)
			blocked = waitKey{kind: waitFreeze, s: f.Name, t: end}
			d.next(end)
		}
	}
	rate := p.Limits.Rate
	win := newWindows(p)
	hb := p.Limits.HoldBack
	heldOpen := hb == nil
	if hb != nil {
		heldOpen = true
		for _, u := range hb.Until {
			if wi, ok := d.waveIdx[u]; !ok || d.waves[wi].State != WaveSucceeded {
				heldOpen = false
			}
		}
	}
	jitter := p.Limits.Jitter.D()
	started := 0
	for i := range in.Nodes {
		if d.phase[i] != PhasePending {
			continue
		}
		n := &in.Nodes[i]
		wi := int(d.x.waveOf[i])
		if wi < 0 {
			continue
		}
		ws := &d.waves[wi]
		if ws.State != WaveRunning {
			if ws.State == WavePending {
				if d.blocks[wi] == nil {
					k := d.waveBlock(wi)
					d.blocks[wi] = &k
				}
				d.wait(i, *d.blocks[wi])
			}
			continue
		}
		if blocked.kind != 0 {
			d.wait(i, blocked)
			continue
		}
		if k, ok := d.fleetBlocked(i, in.BreakGlass == ""); ok {
			d.wait(i, k)
			continue
		}
		if d.inFlight >= d.maxIF {
			d.wait(i, waitKey{kind: waitMaxInFlight, a: d.inFlight, b: d.maxIF})
			continue
		}
		if rate != nil && d.recent >= rate.Starts {
			free := d.oldest.Add(rate.Per.D())
			d.next(free)
			d.wait(i, waitKey{kind: waitRate, a: rate.Starts, d: rate.Per.D(), t: free})
			continue
		}
		if !heldOpen && d.x.held[i] {
			d.wait(i, waitKey{kind: waitHeld, key: hb.Key, dom: hb.Domain, s: strings.Join(hb.Until, ", ")})
			continue
		}
		if k, ok := win.canStart(d.x, i, now); !ok {
			if !k.t.IsZero() {
				d.next(k.t)
			}
			d.wait(i, k)
			continue
		}
		if jitter > 0 {
			at := ws.StartedAt.Add(jitterOf(in.Seed, n.ID, jitter))
			if now.Before(at) {
				d.next(at)
				d.wait(i, waitKey{kind: waitJitter, t: at})
				continue
			}
		}
		if k, blocked := d.capBlocked(i); blocked {
			d.wait(i, k)
			continue
		}
		if k, blocked := d.fleet.blocked(i); blocked {
			d.wait(i, k)
			continue
		}
		d.take(i)
		d.breakGlassStart(i)
		if rate != nil {
			d.recent++
			if d.oldest.IsZero() {
				d.oldest = now
			}
		}
		attempt := n.State.Attempt + 1
		d.out.Starts = append(d.out.Starts, Start{Node: n.ID, Wave: n.State.Wave, Attempt: attempt,
			StepID: fmt.Sprintf("%s/%s/apply/%d", in.RolloutID, n.ID, attempt)})
		d.phase[i] = PhaseQueued
		d.counts[wi].pending--
		d.counts[wi].active++
		started++
	}
	if started > 0 {
		d.event(fmt.Sprintf("starting %s: %s", plural(started, "node"), sample(d.out.Starts)))
	}
}

// take uses one slot for node i.
func (d *decider) take(i int) {
	d.inFlight++
	d.allHolders.add(i)
	d.fleet.take(i)
	for c := range d.x.caps {
		dom := d.x.caps[c].dom[i]
		d.used[c][dom]++
		d.capHolders(int32(c), dom).add(i)
	}
}

// limits records the slots in use now in the decision.
func (d *decider) limits() {
	d.out.Limits = append(d.out.Limits[:0], Limit{Key: "maxInFlight", InUse: d.inFlight, Limit: d.maxIF})
	for c := range d.x.caps {
		ci := &d.x.caps[c]
		order := make([]int32, len(ci.names))
		for j := range order {
			order[j] = int32(j)
		}
		slices.SortFunc(order, func(a, b int32) int { return strings.Compare(ci.names[a], ci.names[b]) })
		for _, dom := range order {
			d.out.Limits = append(d.out.Limits, Limit{Key: ci.key, Domain: ci.names[dom], InUse: d.used[c][dom], Limit: ci.limit(dom)})
		}
	}
	d.out.Limits = d.fleet.limits(d.out.Limits)
}

// release frees node i's slot.
func (d *decider) release(i int) {
	d.inFlight--
	d.allHolders.remove(i)
	d.fleet.release(i)
	for c := range d.x.caps {
		dom := d.x.caps[c].dom[i]
		d.used[c][dom]--
		d.capHolders(int32(c), dom).remove(i)
	}
}

// capBlocked reports the first per-domain cap that node i would exceed.
func (d *decider) capBlocked(i int) (waitKey, bool) {
	for c := range d.x.caps {
		ci := &d.x.caps[c]
		dom := ci.dom[i]
		if lim := ci.limit(dom); d.used[c][dom] >= lim {
			return waitKey{kind: waitCap, key: ci.key, dom: ci.names[dom], a: d.used[c][dom], b: lim, capIdx: int32(c), domIdx: dom}, true
		}
	}
	return waitKey{}, false
}

// fleetBlocked reports whether another rollout or holder holds node i,
// or, when freezes count, whether a fleet freeze covers it (the freeze's
// end is then a time to decide again).
func (d *decider) fleetBlocked(i int, freezes bool) (waitKey, bool) {
	if h, ok := d.fleet.held(d.in.Nodes[i].ID); ok {
		return waitKey{kind: waitHeldBy, s: h.String()}, true
	}
	if !freezes {
		return waitKey{}, false
	}
	if f, ok := d.fleet.frozen(i); ok {
		d.next(f.Until)
		return waitKey{kind: waitFleetFreeze, s: f.Name, key: f.Reason, t: f.Until}, true
	}
	return waitKey{}, false
}

// waveBlock says why a pending wave has not started.
func (d *decider) waveBlock(wi int) waitKey {
	w := &d.p.Waves[wi]
	var pending []string
	for _, a := range w.After {
		if pi, ok := d.waveIdx[a]; ok && d.waves[pi].State != WaveSucceeded {
			pending = append(pending, fmt.Sprintf("%s (%s)", a, d.waves[pi].State))
		}
	}
	if len(pending) > 0 {
		return waitKey{kind: waitWave, key: w.Name, s: strings.Join(pending, ", ")}
	}
	if w.Approvals > 0 {
		got := approvers(d.in, w.Name)
		if len(got) < w.Approvals {
			return waitKey{kind: waitWaveApproval, key: w.Name, a: len(got), b: w.Approvals}
		}
	}
	return waitKey{kind: waitState, s: string(d.state)}
}

// complete ends a running rollout whose waves all succeeded.
func (d *decider) complete() {
	if d.state != RolloutRunning {
		return
	}
	for _, ws := range d.waves {
		if ws.State != WaveSucceeded {
			return
		}
	}
	o := &d.overall
	why := plural(o.succeeded, "node") + " succeeded" // applied and healthy; whether a step changed anything is the agents' evidence
	if o.quarantined > 0 {
		why += fmt.Sprintf(", %d quarantined", o.quarantined)
	}
	d.setState(RolloutSucceeded, why, "")
}

// finish orders the outputs and lists the waves whose gates to evaluate.
func (d *decider) finish() {
	for wi, ws := range d.waves {
		if ws.State == WaveBaking && (d.state == RolloutRunning || d.state == RolloutPaused) {
			d.out.Evaluate = append(d.out.Evaluate, d.p.Waves[wi].Name)
		}
	}
	d.out.Waits = make([]Wait, 0, len(d.waitList))
	for _, w := range d.waitList {
		d.out.Waits = append(d.out.Waits, *w)
	}
	slices.SortStableFunc(d.out.Waits, func(a, b Wait) int { return cmp.Compare(b.Count, a.Count) })
}

func (d *decider) transition(i int, to Phase, reason string) Phase {
	n := &d.in.Nodes[i]
	d.out.Nodes = append(d.out.Nodes, NodeTransition{Node: n.ID, From: n.State.Phase, To: to, Reason: reason})
	return to
}

func (d *decider) setWave(wi int, to WaveState, reason string) {
	from := d.waves[wi].State
	if from == to {
		return
	}
	name := d.p.Waves[wi].Name
	d.out.Waves = append(d.out.Waves, WaveTransition{Wave: name, From: from, To: to, Reason: reason})
	ws := &d.waves[wi]
	ws.State, ws.Reason = to, reason
	switch to {
	case WaveRunning:
		ws.StartedAt = d.in.Now
	case WaveBaking:
		ws.BakeFrom = d.in.Now
	case WaveSucceeded, WaveFailed:
		ws.EndedAt = d.in.Now
	}
	d.event(fmt.Sprintf("wave %s %s: %s", name, to, reason))
}

func (d *decider) setState(to RolloutState, reason, scope string) {
	if d.state == to && d.reason == reason && d.scope == scope {
		return
	}
	d.state, d.reason, d.scope = to, reason, scope
	d.out.State, d.out.Reason, d.out.RollbackScope = to, reason, scope
	msg := "rollout " + string(to)
	if reason != "" {
		msg += ": " + reason
	}
	d.event(msg)
}

func (d *decider) event(s string) { d.out.Events = append(d.out.Events, s) }

// next records a time at which deciding again may change something.
func (d *decider) next(t time.Time) {
	if !t.After(d.in.Now) {
		return
	}
	if d.out.NextAt.IsZero() || t.Before(d.out.NextAt) {
		d.out.NextAt = t
	}
}

func budgetText(b plan.Budget, of int) string {
	if b.Max == nil {
		return "unlimited"
	}
	if b.Max.Percent {
		return fmt.Sprintf("%g%% of %d = %d", b.Max.Value, of, b.Max.Of(of))
	}
	return fmt.Sprint(b.Max.Count)
}

func sample(s []Start) string {
	var ids []string
	for i, st := range s {
		if i == 5 {
			ids = append(ids, fmt.Sprintf("and %d more", len(s)-5))
			break
		}
		ids = append(ids, st.Node)
	}
	return strings.Join(ids, ", ")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func orElse(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orElseAction(a, def plan.BreachAction) plan.BreachAction {
	if a == "" {
		return def
	}
	return a
}
