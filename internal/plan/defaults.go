package plan

import (
	"strconv"
	"strings"
	"time"
)

// Default values Defaults fills in. They are part of the plan format:
// changing one changes what existing plans mean.
const (
	DefaultDrainTimeout      = Duration(10 * time.Minute)
	DefaultProgressDeadline  = Duration(30 * time.Minute)
	DefaultPreflightTimeout  = Duration(5 * time.Minute)
	DefaultHealthyDeadline   = Duration(10 * time.Minute)
	DefaultGateInterval      = Duration(time.Minute)
	DefaultGateCount         = 3
	DefaultGateFailureLimit  = 1
	DefaultGateMinSamples    = 100 // with DefaultGateAlpha: 0.5% false positives, 98.5% detection of +20% (gate.TestJudgeRates)
	DefaultGateAlpha         = 0.005
	DefaultGateMinEffect     = "10%"
	DefaultGateDirection     = "higher-is-worse"
	DefaultGateOnNoData      = "fail"
	DefaultProbeStatus       = 200
	DefaultProbeTimeout      = Duration(5 * time.Second)
	DefaultProbeInterval     = Duration(10 * time.Second)
	DefaultClockMaxOffset    = Duration(time.Second)
	DefaultTLSMinVersion     = "1.2"
	DefaultWindowLabel       = "maintenance-window"
	DefaultKernelRollback    = "previous-kernel"
	DefaultLivePatchProvider = "kpatch"
	DefaultLivePatchRollback = "unload"
	DefaultOnBreach          = BreachRollbackWave
	DefaultMaxInFlightCount  = 1
	DefaultWaveMaxFailures   = 0
	DefaultSpreadOSFamily    = "os.family"
	DefaultSpreadOSVersion   = "os.version"
	DefaultSpreadHardware    = "hardware.class"
	DefaultSpreadZone        = "zone"
)

// DefaultCanaryMax is the most nodes a canary that covers its strata
// takes when the plan sets no max: 10% of the target (at least 1).
func DefaultCanaryMax() *Quantity { return Percent(10) }

// DefaultSpread returns the keys a canary spreads across when the plan
// names none: one node per distinct value of each, as far as the canary's
// size allows.
func DefaultSpread() []string {
	return []string{DefaultSpreadOSFamily, DefaultSpreadOSVersion, DefaultSpreadHardware, DefaultSpreadZone}
}

// Defaults completes p in place so that every field the engine reads is
// explicit. It is idempotent, and Parse calls it on every valid plan;
// callers building a Plan in code must call it before handing the plan to
// the engine. It assumes p is valid (unknown wave names in after are kept
// as they are).
//
// Ordering: a wave whose after is nil comes after the previous wave in the
// list, and the first wave has no predecessors; an after that is empty but
// not nil ("after: []") makes the wave a root. Defaults makes every after
// explicit: afterwards no wave has a nil After, and Marshal writes
// "after: []" for roots.
//
// Ramps: a wave NAME with ramp [s1, ..., sk] is replaced, in place, by k
// waves NAME-1 .. NAME-k. Step i has Nodes = si, which is cumulative over
// the ramp (RampOf = NAME says so): "20%" means the steps up to and
// including this one have taken 20% of the target together; "100%" takes
// every node still unassigned that the wave's selector allows. NAME-1 comes
// after what NAME came after, NAME-i after NAME-(i-1), and every wave (and
// holdBack.until) that named NAME now names NAME-k, the last step: nothing
// that waited for the ramp starts before the whole ramp has passed. The
// steps copy the wave's selector, canary, spread, failure budget and bake
// time; approvals are required only before the first step.
func Defaults(p *Plan) {
	if p.Overlap == "" {
		p.Overlap = OverlapWait
	}
	if p.Change.Reboot == "" {
		p.Change.Reboot = RebootIfRequired
	}
	for i := range p.Change.Actions {
		defaultAction(&p.Change.Actions[i])
	}
	if p.Budget.Action == "" {
		p.Budget.Action = DefaultOnBreach
	}
	if p.Limits.MaxInFlight == nil {
		p.Limits.MaxInFlight = Count(DefaultMaxInFlightCount)
	}
	if p.Windows.Label == "" {
		p.Windows.Label = DefaultWindowLabel
	}
	if p.Target.OnRefusal == "" {
		p.Target.OnRefusal = RefuseCreation
	}
	if p.Preflight == nil {
		p.Preflight = &Preflight{} // every rollout pre-flights its nodes unless it says onFail: ignore
	}
	if pf := p.Preflight; pf.OnFail == "" {
		pf.OnFail = PreflightBlock
	}
	if pf := p.Preflight; pf.Runs() {
		if pf.Timeout == 0 {
			pf.Timeout = DefaultPreflightTimeout
		}
		if pf.Unavailable == "" {
			pf.Unavailable = PreflightProceed
		}
	}
	g := &p.Gates
	if g.OnFail == "" {
		g.OnFail = DefaultOnBreach
	}
	if g.OnInterrupted == "" {
		g.OnInterrupted = InterruptRetry
	}
	if g.ProgressDeadline == 0 {
		g.ProgressDeadline = DefaultProgressDeadline
	}
	if g.Node.HealthyDeadline == 0 {
		g.Node.HealthyDeadline = DefaultHealthyDeadline
	}
	for i := range g.Node.Probes {
		defaultProbe(&g.Node.Probes[i])
	}
	for i := range g.Wave {
		defaultWaveGate(&g.Wave[i])
	}

	for i := range p.Waves {
		w := &p.Waves[i]
		if w.After == nil {
			w.After = []string{}
			if i > 0 {
				w.After = []string{p.Waves[i-1].Name}
			}
		}
	}
	expandRamps(p)
	for i := range p.Waves {
		w := &p.Waves[i]
		if c := w.Canary; c != nil {
			if c.Cover == "" {
				c.Cover = CoverStrata
				if w.Nodes != nil {
					c.Cover = CoverCount
				}
			}
			if c.Cover == CoverStrata && c.Max == nil {
				c.Max = DefaultCanaryMax()
			}
			if w.Spread == nil {
				w.Spread = DefaultSpread()
			}
		}
		if w.Budget == nil {
			w.Budget = &Budget{}
		}
		if w.Budget.Max == nil {
			w.Budget.Max = Count(DefaultWaveMaxFailures)
		}
		if w.Budget.Action == "" {
			w.Budget.Action = p.Budget.Action
		}
		if w.BakeTime == nil {
			bt := g.BakeTime
			w.BakeTime = &bt
		}
	}
}

func defaultAction(a *Action) {
	if pa := a.Package; pa != nil {
		if pa.Operation == "" {
			pa.Operation = PackageUpgrade
		}
		if pa.Rollback == "" {
			pa.Rollback = RollbackPreviousVersion
		}
	}
	if k := a.Kernel; k != nil {
		if k.Rollback == "" {
			k.Rollback = DefaultKernelRollback
		}
		if k.Fallback == "" {
			k.Fallback = KernelFallbackOneShot
		}
		if k.OnRollback == "" {
			k.OnRollback = KernelRemove
		}
	}
	if lp := a.LivePatch; lp != nil {
		if lp.Provider == "" {
			lp.Provider = DefaultLivePatchProvider
		}
		if lp.Rollback == "" {
			lp.Rollback = DefaultLivePatchRollback
		}
	}
	if kn := a.KubernetesNode; kn != nil && kn.Timeout == 0 {
		kn.Timeout = DefaultDrainTimeout
	}
}

func defaultProbe(pr *Probe) {
	if pr.Kind == ProbeHTTP && pr.Status == 0 {
		pr.Status = DefaultProbeStatus
	}
	if pr.Kind == ProbeClock && pr.MaxOffset == 0 {
		pr.MaxOffset = DefaultClockMaxOffset
	}
	if pr.Kind == ProbeTLS && pr.MinVersion == "" {
		pr.MinVersion = DefaultTLSMinVersion
	}
	if pr.Timeout == 0 {
		pr.Timeout = DefaultProbeTimeout
	}
	if pr.Interval == 0 {
		pr.Interval = DefaultProbeInterval
	}
}

// defaultWaveGate fills the evaluation defaults of every gate, the
// direction of gates that compare (all but threshold), and the
// statistical parameters of statistical gates only.
func defaultWaveGate(wg *WaveGate) {
	if wg.Interval == 0 {
		wg.Interval = DefaultGateInterval
	}
	if wg.Count == 0 {
		wg.Count = DefaultGateCount
	}
	if wg.FailureLimit == 0 {
		wg.FailureLimit = DefaultGateFailureLimit
	}
	if wg.Inconclusive == "" {
		wg.Inconclusive = DefaultGateOnNoData
	}
	if wg.Mode != ModeThreshold && wg.Direction == "" {
		wg.Direction = DefaultGateDirection
	}
	if wg.Mode == ModeStatistical {
		if wg.MinSamples == 0 {
			wg.MinSamples = DefaultGateMinSamples
		}
		if wg.Alpha == 0 {
			wg.Alpha = DefaultGateAlpha
		}
		if wg.MinEffect == "" {
			wg.MinEffect = DefaultGateMinEffect
		}
	}
}

// expandRamps replaces every wave with a ramp by its steps (see Defaults)
// and moves the recorded positions along, so that Where("waves[3].nodes")
// points at the ramp step that wave 3 came from.
func expandRamps(p *Plan) {
	hasRamp := false
	for _, w := range p.Waves {
		hasRamp = hasRamp || len(w.Ramp) > 0
	}
	if !hasRamp {
		return
	}
	last := map[string]string{} // ramp wave name -> its last step's name
	var out []Wave
	from := map[int][]int{} // old index -> new indexes
	for i, w := range p.Waves {
		if len(w.Ramp) == 0 {
			from[i] = []int{len(out)}
			out = append(out, w)
			continue
		}
		for k, q := range w.Ramp {
			s := w
			s.Name = w.Name + "-" + strconv.Itoa(k+1)
			s.RampOf = w.Name
			s.Ramp = nil
			q := q
			s.Nodes = &q
			if k == 0 {
				s.After = append([]string{}, w.After...)
			} else {
				s.After = []string{out[len(out)-1].Name}
				s.Approvals = 0
			}
			s.Spread = append([]string(nil), w.Spread...)
			if w.Spread != nil && len(w.Spread) == 0 {
				s.Spread = []string{}
			}
			if w.Budget != nil {
				b := *w.Budget
				s.Budget = &b
			}
			if w.BakeTime != nil {
				bt := *w.BakeTime
				s.BakeTime = &bt
			}
			if w.Canary != nil {
				c := *w.Canary
				s.Canary = &c
			}
			from[i] = append(from[i], len(out))
			out = append(out, s)
		}
		last[w.Name] = out[len(out)-1].Name
	}
	for i := range out {
		if out[i].RampOf != "" && out[i].Name != out[i].RampOf+"-1" {
			continue // inner steps already point at their predecessor
		}
		for j, a := range out[i].After {
			if l, ok := last[a]; ok {
				out[i].After[j] = l
			}
		}
	}
	if h := p.Limits.HoldBack; h != nil {
		for j, a := range h.Until {
			if l, ok := last[a]; ok {
				h.Until[j] = l
			}
		}
	}
	p.Waves = out
	if p.pos != nil {
		p.pos = movePositions(p.pos, from)
	}
}

// movePositions renames "waves[i]..." paths to the waves the old wave i
// became; a ramp step's nodes is located at its ramp entry.
func movePositions(old map[string]Pos, from map[int][]int) map[string]Pos {
	pos := make(map[string]Pos, len(old))
	for path, at := range old {
		rest, ok := strings.CutPrefix(path, "waves[")
		if !ok {
			pos[path] = at
			continue
		}
		num, tail, ok := strings.Cut(rest, "]")
		i, err := strconv.Atoi(num)
		if !ok || err != nil {
			pos[path] = at
			continue
		}
		for k, j := range from[i] {
			wp := "waves[" + strconv.Itoa(j) + "]"
			pos[wp+tail] = at
			if tail == ".ramp["+strconv.Itoa(k)+"]" {
				pos[wp+".nodes"] = at
			}
		}
	}
	return pos
}
