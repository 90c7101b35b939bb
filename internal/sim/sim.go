package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/gate"
	"github.com/drover-dev/drover/internal/localize"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/preflight"
	"github.com/drover-dev/drover/internal/rehearsal"
)

// DefaultStart returns Mon 2026-01-05 00:00 UTC, the start of a simulation
// whose Config.Start is zero.
func DefaultStart() time.Time { return time.Date(2026, time.January, 5, 0, 0, 0, 0, time.UTC) }

// DefaultStepDuration is the step duration of a Config that sets none.
func DefaultStepDuration() Dist {
	return Dist{Kind: DistUniform, A: 3 * time.Minute, B: 7 * time.Minute}
}

// DefaultRollbackDuration is the rollback duration of a Config that sets none.
func DefaultRollbackDuration() Dist {
	return Dist{Kind: DistUniform, A: time.Minute, B: 3 * time.Minute}
}

// dispatchLatency is how long a queued node takes to report running.
func dispatchLatency() Dist { return Dist{Kind: DistUniform, A: time.Second, B: 2 * time.Second} }

// DefaultHorizon bounds the virtual time of a run: a rollout still going
// after it is reported stalled.
const DefaultHorizon = 90 * 24 * time.Hour

// maxStoredEvents bounds Result.Events; later events are counted only.
const maxStoredEvents = 5000

// maxStoredViolations bounds Result.Violations; later ones are counted only.
const maxStoredViolations = 200

// Config is one simulation.
type Config struct {
	// Plan is the effective plan (as plan.Parse returns it).
	Plan *plan.Plan
	// Nodes is the inventory; the plan's target selects from it.
	Nodes    []*fleet.Node
	Failures []Failure
	// StepDuration is how long a node's step takes; zero means
	// DefaultStepDuration.
	StepDuration Dist
	// RollbackDuration is how long a node's rollback takes; zero means
	// DefaultRollbackDuration.
	RollbackDuration Dist
	// Start is the virtual time of the start; zero means DefaultStart().
	Start time.Time
	// Seed fixes the assignment, jitter, durations and failure draws.
	Seed uint64
	// Tick is the time quantum; zero means AutoTick(len(Nodes)).
	Tick time.Duration
	// Horizon bounds virtual time; zero means DefaultHorizon.
	Horizon time.Duration
	// Progress, when not nil, is called on every wave transition, on
	// rollout state changes and every ProgressEvery percent of the target
	// settled. It runs on the simulation goroutine.
	Progress func(Progress)
	// ProgressEvery is the node-progress step in percent; zero means 10.
	ProgressEvery int
	// Author is the rollout's author; Approvers approve it. Empty
	// Approvers are named sim-approver-1, -2, ...
	Author    string
	Approvers []string
	// RolloutID names the rollout in the engine's input; "" uses the plan name.
	RolloutID string
	// BreakGlass, when set, overrides freezes (the plan's and, in
	// RunFleet, the fleet's) as an admin's break-glass does.
	BreakGlass string
	// Logger receives violations (at error level) and run statistics
	// (at debug level); nil discards.
	Logger *slog.Logger
	// Commands are operator commands (approve, pause, resume, abort,
	// rollback, resolve, stop), given one at a time whenever the rollout
	// would otherwise wait for ever (nothing in flight, nothing due):
	// e.g. approving a wave that waits for approvals, or rolling back once
	// the canary has run. They go through the engine's command rules as
	// on a server; a refused one is a note.
	Commands []engine.Command
	// ManualApprovals: no approval is granted by itself; only Commands
	// approve (the default grants every approval the plan asks for at
	// the start).
	ManualApprovals bool
	// Durations is the duration model; nil means PlanDurations of
	// StepDuration and RollbackDuration. When it is an Explainer, the
	// run notes per wave where its timings come from.
	Durations Durations
	// GateTiming evaluates each wave gate of the plan as a server's
	// gate.Tracker does, after its initial delay, every interval, until
	// count passes; off, a baking wave's gates reach their verdict at
	// once.
	GateTiming bool
	// From, when set, starts the run from a rollout's current state
	// (assigned nodes, their phases, waves, gates, approvals) at Start
	// instead of assigning the plan's target: nodes in flight finish
	// after the rest of a duration drawn longer than what has elapsed.
	// Nodes is then ignored.
	From *Snapshot
	// PreflightDuration is how long a node's pre-flight takes, from the
	// ask to the server receiving the answer; zero means
	// DefaultPreflightDuration.
	PreflightDuration Dist
	// Preflight holds real nodes' answers to a node pre-flight (a dry run
	// with --preflight on a live server), by node ID: the simulation
	// replays them instead of drawing an answer. Their At is ignored.
	Preflight map[string]engine.PreflightResult
}

// Snapshot is a rollout's state for a run that starts mid-rollout
// (Config.From). Nodes hold their wave assignment and state; the slice
// is copied.
type Snapshot struct {
	Nodes         []engine.Node
	Waves         map[string]engine.WaveStatus
	State         engine.RolloutState
	Reason        string
	RollbackScope string
	Gates         []engine.GateResult
	Approvals     []engine.Approval
}

// DefaultPreflightDuration is a node pre-flight's duration, ask to answer:
// a poll's wake-up plus the drivers' checks (apt-cache, df, apt-get -s
// take about a second on a Debian container; see README).
func DefaultPreflightDuration() Dist {
	return Dist{Kind: DistUniform, A: time.Second, B: 3 * time.Second}
}

// AutoTick is the tick used when Config.Tick is zero. Decide is O(nodes)
// (about 70 ns per node with the engine's index), so a 10 s tick keeps
// node soaks and bake times exact to within 10 s even at 100,000 nodes;
// only past that does the tick grow (measured: see BenchmarkRun and
// README.md).
func AutoTick(nodes int) time.Duration {
	if nodes <= 150_000 {
		return 10 * time.Second
	}
	return 30 * time.Second
}

// ProgressKind says what a Progress report is about.
type ProgressKind string

const (
	ProgressWave    ProgressKind = "wave"
	ProgressNodes   ProgressKind = "nodes"
	ProgressRollout ProgressKind = "rollout"
)

// Progress is one report during a run.
type Progress struct {
	Elapsed  time.Duration // virtual time since the start
	Kind     ProgressKind
	Wave     string           // ProgressWave
	From, To engine.WaveState // ProgressWave
	State    engine.RolloutState
	Reason   string
	Settled  int // nodes succeeded, failed, quarantined or rolled back
	Total    int // nodes assigned to a wave
	InFlight int
}

// String renders the report as one line for a terminal.
func (p Progress) String() string {
	at := fmt.Sprintf("[%8s]", FormatDuration(p.Elapsed))
	switch p.Kind {
	case ProgressWave:
		s := fmt.Sprintf("%s wave %s: %s -> %s (%d/%d settled, %d in flight)", at, p.Wave, p.From, p.To, p.Settled, p.Total, p.InFlight)
		if p.Reason != "" {
			s += ": " + p.Reason
		}
		return s
	case ProgressRollout:
		s := fmt.Sprintf("%s rollout %s", at, p.State)
		if p.Reason != "" {
			s += ": " + p.Reason
		}
		return s
	}
	pct := 0
	if p.Total > 0 {
		pct = p.Settled * 100 / p.Total
	}
	return fmt.Sprintf("%s %3d%% settled (%d/%d, %d in flight)", at, pct, p.Settled, p.Total, p.InFlight)
}

// Result is what a run did.
type Result struct {
	Rollout     string              `json:"rollout"`
	Seed        uint64              `json:"seed"`
	Start       time.Time           `json:"start"`
	TickSeconds float64             `json:"tickSeconds"`
	State       engine.RolloutState `json:"state"`
	Reason      string              `json:"reason,omitempty"`
	// Halted is true unless the rollout succeeded.
	Halted     bool   `json:"halted"`
	HaltReason string `json:"haltReason"`
	// Localisation names the attribute values the nodes that failed
	// share that the succeeded ones do not, at the end of the run (see
	// engine.Localise); none when no node failed or the evidence is weak.
	Localisation []localize.Finding `json:"localisation,omitempty"`
	// HaltedAtSeconds is when the first halt, pause, rollback or budget
	// breach was decided; nil if none.
	HaltedAtSeconds *float64 `json:"haltedAtSeconds"`
	MakespanSeconds float64  `json:"makespanSeconds"`
	Nodes           Counts   `json:"nodes"`
	// NodesTouchedBeforeHalt counts the nodes whose step was started before
	// the first halt or breach decision (all touched nodes when none).
	NodesTouchedBeforeHalt int `json:"nodesTouchedBeforeHalt"`
	// HurtTouchedBeforeHalt lists those of them an injected failure hit.
	HurtTouchedBeforeHalt []string     `json:"hurtTouchedBeforeHalt"`
	Waves                 []WaveResult `json:"waves"`
	PeakInFlight          int          `json:"peakInFlight"`
	// PeakInFlightByDomain maps each cap key (and os.family) to the peak
	// in flight per value of that key.
	PeakInFlightByDomain map[string]map[string]int `json:"peakInFlightByDomain"`
	BudgetBreaches       []Breach                  `json:"budgetBreaches"`
	InvariantViolations  int                       `json:"invariantViolations"`
	Violations           []Violation               `json:"violations"`
	UncoveredStrata      []Stratum                 `json:"uncoveredStrata"`
	Events               []Event                   `json:"events"`
	EventsDropped        int                       `json:"eventsDropped,omitempty"`
	Notes                []string                  `json:"notes"`
	// Delays are the maintenance-window and freeze waits the run met (at
	// most maxDelays, each once): what pushes its end out.
	Delays []string `json:"delays,omitempty"`
	Stats  Stats    `json:"stats"`

	// AssignmentSHA256 is the hash of the node-to-wave assignment the
	// run used (rehearsal.Hash): a live rollout with the same plan,
	// inventory and seed has the same.
	AssignmentSHA256 string `json:"assignmentSha256"`
}

// maxDelays bounds Result.Delays.
const maxDelays = 5

// Succeeded reports whether the rollout ended in the succeeded state.
func (r *Result) Succeeded() bool { return r.State == engine.RolloutSucceeded }

// Counts are final node counts over the target.
type Counts struct {
	Target      int `json:"target"`
	Skipped     int `json:"skipped"`
	Touched     int `json:"touched"` // nodes whose step was started at least once
	Succeeded   int `json:"succeeded"`
	Failed      int `json:"failed"`
	Quarantined int `json:"quarantined"`
	RolledBack  int `json:"rolledBack"`
	Untouched   int `json:"untouched"` // assigned, never started
	Other       int `json:"other"`     // still in flight or unknown at the end
	Hurt        int `json:"hurt"`      // touched nodes an injected failure hit
}

// WaveResult is one wave's timeline.
type WaveResult struct {
	Name             string           `json:"name"`
	Nodes            int              `json:"nodes"`
	State            engine.WaveState `json:"state"`
	Reason           string           `json:"reason,omitempty"`
	StartedAtSeconds *float64         `json:"startedAtSeconds"`
	EndedAtSeconds   *float64         `json:"endedAtSeconds"`
	Succeeded        int              `json:"succeeded"`
	// Failed counts the nodes whose step, gate or rollback failed at some
	// point, whether or not they were quarantined or rolled back since.
	Failed      int `json:"failed"`
	Quarantined int `json:"quarantined"`
	RolledBack  int `json:"rolledBack"`
	Untouched   int `json:"untouched"`
}

// Breach is a failure budget found exceeded.
type Breach struct {
	AtSeconds float64 `json:"atSeconds"`
	Wave      string  `json:"wave"` // "" for the overall budget
	Failures  int     `json:"failures"`
	Max       int     `json:"max"`
}

// Stratum is a canary stratum no canary node covers.
type Stratum struct {
	Wave   string            `json:"wave"`
	Values map[string]string `json:"values"`
	Reason string            `json:"reason"`
	// Blocking: the canary must cover its strata (canary.cover: strata
	// without allowUncovered), so a server does not create the rollout.
	Blocking bool `json:"blocking,omitempty"`
}

// Event is one line of the timeline: an engine event or a note of the
// simulator (gate verdicts, approvals).
type Event struct {
	AtSeconds float64 `json:"atSeconds"`
	Text      string  `json:"text"`
}

// Stats describe the run itself.
type Stats struct {
	Decisions    int `json:"decisions"`
	Ticks        int `json:"ticks"`
	AgentReports int `json:"agentReports"`
}

// Run simulates the rollout of cfg.Plan over cfg.Nodes. It returns an
// error only when the simulation cannot run (bad configuration, a plan
// that does not assign, cancellation); a rollout that halts is a Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	s, err := newSimulator(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	res := s.result()
	s.log.Debug("simulation finished", "rollout", res.Rollout, "state", res.State, "virtual_seconds", res.MakespanSeconds,
		"decisions", res.Stats.Decisions, "ticks", res.Stats.Ticks, "agent_reports", res.Stats.AgentReports)
	return res, nil
}

// phase codes index counters; they follow engine.Phase.
const (
	pcPending uint8 = iota
	pcQueued
	pcRunning
	pcVerifying
	pcSucceeded
	pcFailed
	pcQuarantined
	pcRollingBack
	pcRolledBack
	pcUnknown
	pcSkipped
	pcOther
	numPhases
)

func phaseCode(p engine.Phase) uint8 {
	switch p {
	case engine.PhasePending:
		return pcPending
	case engine.PhaseQueued:
		return pcQueued
	case engine.PhaseRunning:
		return pcRunning
	case engine.PhaseVerifying:
		return pcVerifying
	case engine.PhaseSucceeded:
		return pcSucceeded
	case engine.PhaseFailed:
		return pcFailed
	case engine.PhaseQuarantined:
		return pcQuarantined
	case engine.PhaseRollingBack:
		return pcRollingBack
	case engine.PhaseRolledBack:
		return pcRolledBack
	case engine.PhaseUnknown:
		return pcUnknown
	case engine.PhaseSkipped:
		return pcSkipped
	}
	return pcOther
}

// settled reports whether a phase code is an end of the node's story for
// progress purposes.
func settled(c uint8) bool {
	return c == pcSucceeded || c == pcFailed || c == pcQuarantined || c == pcRolledBack
}

// domain tracks in-flight counts per value of one topology key.
type domain struct {
	key      string
	values   []string
	of       []int32 // node index -> value index
	inFlight []int
	peak     []int
}

// failureSel is a Failure with its selector compiled.
type failureSel struct {
	Failure
	sel *fleet.Selector
}

// hurt flags, computed lazily the first time a node starts.
const (
	hurtKnown    uint8 = 1 << iota
	hurtHealth         // a health failure hits the node
	hurtRollback       // a rollback failure hits the node
)

type simulator struct {
	cfg   Config
	p     *plan.Plan
	log   *slog.Logger
	start time.Time
	tick  int64
	rng   *rand.Rand
	dur   Durations
	// gateTrack counts wave-gate evaluations (Config.GateTiming);
	// gateWake is the next instant one is due (zero: none).
	gateTrack gate.Tracker
	gateWake  time.Time

	nodes []engine.Node // the engine's Input.Nodes, reused for every call
	eidx  *engine.Index // the engine's static index, built once
	index map[string]int32
	code  []uint8  // phase code per node, mirrors nodes[i].State.Phase
	gen   []uint32 // bumped on every start and rollback
	hurt  []uint8
	// healthBy and applyBy name the failure hitting each node (-1 none).
	healthBy   []int16
	started    []bool
	everFailed []bool // failed or quarantined at some point
	// applied is how each node's apply ended, failed (as everFailed says)
	// or succeeded, for the engine's localisation of failures
	// (Input.Before); nil while none ended.
	applied    map[string]engine.Phase
	failures   []failureSel
	waveNodes  map[string][]int32
	waveOrder  []string
	domains    []*domain
	phaseCount [numPhases]int
	inFlight   int
	peak       int
	assigned   int
	touched    int

	state    engine.RolloutState
	reason   string
	scope    string
	waves    map[string]engine.WaveStatus
	gates    []engine.GateResult
	approves []engine.Approval
	nextAt   time.Time
	now      time.Time
	events   eventHeap
	seq      uint64

	checker  *Checker
	commands []engine.Command // Config.Commands not yet given

	// fleet is what other rollouts and fleet objects impose (RunFleet);
	// lastWaits are the waits of the last decision.
	fleet     *engine.Fleet
	lastWaits []engine.Wait
	// preflight is the node pre-flight asked (nil before): answers are
	// drawn when asked, each received at its own time.
	preflight *engine.PreflightStatus

	// first halt or breach
	haltAt      time.Time
	haltReason  string
	touchedHalt int
	hurtHalt    []string

	lastProgress int
	res          Result
	gateFailed   map[string]bool
	// before says, per wave and gate, whether a delta or statistical
	// gate compares the wave with itself before the change.
	before map[string]bool
}

func newSimulator(cfg Config) (*simulator, error) {
	if cfg.Plan == nil {
		return nil, errors.New("simulate: no plan")
	}
	if len(cfg.Nodes) == 0 && (cfg.From == nil || len(cfg.From.Nodes) == 0) {
		return nil, errors.New("simulate: no nodes")
	}
	if cfg.StepDuration.Kind == "" {
		cfg.StepDuration = DefaultStepDuration()
	}
	if cfg.RollbackDuration.Kind == "" {
		cfg.RollbackDuration = DefaultRollbackDuration()
	}
	if cfg.Start.IsZero() {
		cfg.Start = DefaultStart()
	}
	if cfg.Tick < 0 {
		return nil, fmt.Errorf("simulate: tick %s must be positive", cfg.Tick)
	}
	if cfg.Tick == 0 {
		cfg.Tick = AutoTick(max(len(cfg.Nodes), snapshotNodes(cfg.From)))
	}
	if cfg.Durations == nil {
		cfg.Durations = PlanDurations{StepDist: cfg.StepDuration, RollbackDist: cfg.RollbackDuration}
	}
	if cfg.Horizon <= 0 {
		cfg.Horizon = DefaultHorizon
	}
	if cfg.ProgressEvery <= 0 || cfg.ProgressEvery > 100 {
		cfg.ProgressEvery = 10
	}
	if cfg.Author == "" {
		cfg.Author = "sim-author"
	}
	if cfg.RolloutID == "" {
		cfg.RolloutID = cfg.Plan.Name
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &simulator{
		cfg:        cfg,
		p:          cfg.Plan,
		log:        log,
		start:      cfg.Start,
		now:        cfg.Start,
		tick:       int64(cfg.Tick),
		rng:        rand.New(rand.NewPCG(cfg.Seed, 0x73696d)), // "sim"
		gateFailed: map[string]bool{},
		before:     map[string]bool{},
		dur:        cfg.Durations,
	}
	for i, f := range cfg.Failures {
		if f.Kind == "" {
			f.Kind = FailHealth
		}
		sel, err := fleet.CompileSelector(f.Selector)
		if err != nil {
			return nil, fmt.Errorf("simulate: failure %d (%s): %w", i+1, f.Selector, err)
		}
		s.failures = append(s.failures, failureSel{Failure: f, sel: sel})
	}

	a := &engine.Assignment{}
	if cfg.From != nil {
		a.Nodes = slices.Clone(cfg.From.Nodes)
	} else {
		var err error
		if a, err = engine.Assign(cfg.Plan, cfg.Nodes, cfg.Seed); err != nil {
			return nil, fmt.Errorf("simulate: assign: %w", err)
		}
	}
	s.nodes = a.Nodes
	s.eidx = engine.NewIndex(s.p, s.nodes)
	n := len(s.nodes)
	s.index = make(map[string]int32, n)
	s.code = make([]uint8, n)
	s.gen = make([]uint32, n)
	s.hurt = make([]uint8, n)
	s.healthBy = make([]int16, n)
	s.started = make([]bool, n)
	s.everFailed = make([]bool, n)
	s.waveNodes = make(map[string][]int32, len(s.p.Waves))
	for i := range s.nodes {
		nd := &s.nodes[i]
		s.index[nd.ID] = int32(i)
		c := phaseCode(nd.State.Phase)
		s.code[i] = c
		s.phaseCount[c]++
		s.healthBy[i] = -1
		if nd.State.Wave != "" {
			s.waveNodes[nd.State.Wave] = append(s.waveNodes[nd.State.Wave], int32(i))
			s.assigned++
		}
	}
	s.waves = make(map[string]engine.WaveStatus, len(s.p.Waves))
	for _, w := range s.p.Waves {
		s.waves[w.Name] = engine.WaveStatus{State: engine.WavePending}
		s.waveOrder = append(s.waveOrder, w.Name)
	}
	s.initDomains()

	s.res = Result{
		Rollout:               s.p.Name,
		Seed:                  cfg.Seed,
		Start:                 s.start,
		TickSeconds:           cfg.Tick.Seconds(),
		PeakInFlightByDomain:  map[string]map[string]int{},
		HurtTouchedBeforeHalt: []string{},
		BudgetBreaches:        []Breach{},
		Violations:            []Violation{},
		UncoveredStrata:       []Stratum{},
		Events:                []Event{},
		Notes:                 []string{},
		AssignmentSHA256:      rehearsal.Hash(a),
	}
	s.explain()
	s.state = engine.RolloutRunning
	if s.p.Approvals.Start > 0 {
		s.state = engine.RolloutPendingApproval
	}
	if cfg.From != nil {
		s.resume(cfg.From)
	} else if !cfg.ManualApprovals {
		s.approve()
	}
	s.commands = cfg.Commands

	var err error
	s.checker, err = NewChecker(s.p, s.nodes)
	if err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	for _, st := range a.Uncovered {
		s.res.UncoveredStrata = append(s.res.UncoveredStrata, Stratum{Wave: st.Wave, Values: st.Values, Reason: st.Reason, Blocking: st.Blocking})
	}
	if cfg.From == nil {
		for _, v := range CheckAssignment(s.p, a) {
			s.violation(v)
		}
	}
	return s, nil
}

func snapshotNodes(f *Snapshot) int {
	if f == nil {
		return 0
	}
	return len(f.Nodes)
}

// explain notes, per wave, where the duration model takes its timings
// from (when it can say).
func (s *simulator) explain() {
	e, ok := s.dur.(Explainer)
	if !ok {
		return
	}
	for _, w := range s.waveOrder {
		var nodes []*fleet.Node
		for _, i := range s.waveNodes[w] {
			nodes = append(nodes, s.nodes[i].Node)
		}
		if len(nodes) > 0 {
			s.note(fmt.Sprintf("wave %s: %s", w, e.Explain(nodes)))
		}
	}
}

// resume takes over a rollout's state (Config.From): the rollout's and
// waves' states, gates and approvals, and the rest of every step in
// flight, as agents that report when their draw says.
func (s *simulator) resume(f *Snapshot) {
	s.state, s.reason, s.scope = f.State, f.Reason, f.RollbackScope
	for name, w := range f.Waves {
		if _, ok := s.waves[name]; ok {
			s.waves[name] = w
		}
	}
	s.gates = slices.Clone(f.Gates)
	s.approves = slices.Clone(f.Approvals)
	for i := range s.nodes {
		n := &s.nodes[i]
		st := n.State
		if !st.StartedAt.IsZero() && st.Phase != engine.PhasePending && st.Phase != engine.PhaseSkipped {
			s.started[i] = true
			s.touched++
		}
		if st.Phase == engine.PhaseFailed || st.Phase == engine.PhaseQuarantined {
			s.everFailed[i] = true
		}
		if st.Phase == engine.PhaseFailed || st.Phase == engine.PhaseQuarantined || st.Phase == engine.PhaseSucceeded {
			s.ended(int32(i))
		}
		s.hurt[i] = hurtKnown // what already happened is not drawn again
		since := s.now.Sub(st.Since)
		idx := int32(i)
		switch st.Phase {
		case engine.PhaseQueued:
			s.schedule(s.now.Add(residual(func() time.Duration { return s.dur.Dispatch(n.Node, s.rng) }, since)), idx, evDispatched)
		case engine.PhaseRunning:
			s.schedule(s.now.Add(residual(func() time.Duration { return s.dur.Step(n.Node, s.rng) }, since)), idx, evStepDone)
		case engine.PhaseVerifying:
			if st.Gate == "" { // probing: healthy soon
				s.schedule(s.now.Add(residual(func() time.Duration { return s.dur.Step(n.Node, s.rng) }, s.now.Sub(st.StartedAt))), idx, evStepDone)
			}
		case engine.PhaseRollingBack:
			s.schedule(s.now.Add(residual(func() time.Duration { return s.dur.Rollback(n.Node, s.rng) }, since)), idx, evRollbackDone)
		}
	}
}

// initDomains prepares in-flight tracking for every cap key and os.family.
func (s *simulator) initDomains() {
	keys := []string{"os.family"}
	for k := range s.p.Limits.Caps {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for _, k := range keys {
		d := &domain{key: k, of: make([]int32, len(s.nodes))}
		idx := map[string]int32{}
		for i := range s.nodes {
			v := s.nodes[i].Value(k)
			j, ok := idx[v]
			if !ok {
				j = int32(len(d.values))
				idx[v] = j
				d.values = append(d.values, v)
			}
			d.of[i] = j
		}
		d.inFlight = make([]int, len(d.values))
		d.peak = make([]int, len(d.values))
		s.domains = append(s.domains, d)
	}
}

// approve grants every approval the plan asks for, at the start, through
// the engine's command rules (engine.CommandInput.Apply) as the server
// does.
func (s *simulator) approve() {
	name := func(i int) string {
		if i < len(s.cfg.Approvers) {
			return s.cfg.Approvers[i]
		}
		return fmt.Sprintf("sim-approver-%d", i+1)
	}
	grant := func(by, wave string) {
		in := engine.CommandInput{Author: s.cfg.Author, State: s.state, Reason: s.reason, Approvals: s.approves, Now: s.start}
		res, err := in.Apply(engine.Command{Action: engine.ActApprove, Actor: by, Wave: wave})
		switch {
		case err != nil:
			s.note(fmt.Sprintf("approval by %s refused: %v", by, err))
		case res.Approval != nil:
			s.approves = append(s.approves, *res.Approval)
		}
	}
	if k := s.p.Approvals.Start; k > 0 {
		for i := range k {
			grant(name(i), "")
		}
		s.note(fmt.Sprintf("auto-approved the start (%d approval(s) required)", k))
	}
	for _, w := range s.p.Waves {
		for i := range w.Approvals {
			grant(name(i), w.Name)
		}
		if w.Approvals > 0 {
			s.note(fmt.Sprintf("auto-approved wave %s (%d approval(s) required)", w.Name, w.Approvals))
		}
	}
}

// command gives one operator command at s.now through the engine's
// command rules, applies its result, and decides again.
func (s *simulator) command(c engine.Command) {
	in := engine.CommandInput{Author: s.cfg.Author, State: s.state, Reason: s.reason, RollbackScope: s.scope,
		Waves: s.waveOrder, Approvals: s.approves, Now: s.now}
	if i, ok := s.index[c.Node]; ok {
		st := s.nodes[i].State
		in.Node = &st
	}
	res, err := in.Apply(c)
	if err != nil {
		s.note(fmt.Sprintf("%s by %s refused: %v", c.Action, c.Actor, err))
		return
	}
	s.addEvent(fmt.Sprintf("operator %s: %s %s", c.Actor, c.Action, orDash(res.Reason)))
	if res.Approval != nil {
		s.approves = append(s.approves, *res.Approval)
	}
	if st := res.Resolved; st != nil {
		i := s.index[c.Node]
		s.setPhase(i, st.Phase)
		s.nodes[i].State = *st
	}
	if res.State != s.state {
		s.progress(Progress{Kind: ProgressRollout, State: res.State, Reason: res.Reason})
	}
	s.state, s.reason, s.scope = res.State, res.Reason, res.RollbackScope
	s.decide()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (s *simulator) note(text string) {
	s.res.Notes = append(s.res.Notes, text)
	s.addEvent(text)
}

func (s *simulator) addEvent(text string) {
	if len(s.res.Events) >= maxStoredEvents {
		s.res.EventsDropped++
		return
	}
	s.res.Events = append(s.res.Events, Event{AtSeconds: s.now.Sub(s.start).Seconds(), Text: text})
}

func (s *simulator) violation(v Violation) {
	s.res.InvariantViolations++
	if len(s.res.Violations) < maxStoredViolations {
		s.res.Violations = append(s.res.Violations, v)
	}
	s.log.Error("invariant violated", "rule", v.Rule, "at", v.At, "msg", v.Msg)
}

// ended records in before how node i's apply ended: failed if it ever
// failed, else succeeded.
func (s *simulator) ended(i int32) {
	if s.applied == nil {
		s.applied = map[string]engine.Phase{}
	}
	ph := engine.PhaseSucceeded
	if s.everFailed[i] {
		ph = engine.PhaseFailed
	}
	s.applied[s.nodes[i].ID] = ph
}

// setPhase moves node i to phase p, keeping the counters in step. Every
// phase change of the simulation goes through it.
func (s *simulator) setPhase(i int32, p engine.Phase) {
	st := &s.nodes[i].State
	oldIn := st.Phase.InFlight()
	st.Phase = p
	c := phaseCode(p)
	s.phaseCount[s.code[i]]--
	s.phaseCount[c]++
	s.code[i] = c
	if c == pcFailed || c == pcQuarantined {
		s.everFailed[i] = true
	}
	if c == pcFailed || c == pcQuarantined || c == pcSucceeded {
		s.ended(i)
	}
	newIn := p.InFlight()
	switch {
	case newIn && !oldIn:
		s.inFlight++
		s.peak = max(s.peak, s.inFlight)
		for _, d := range s.domains {
			v := d.of[i]
			d.inFlight[v]++
			d.peak[v] = max(d.peak[v], d.inFlight[v])
		}
	case oldIn && !newIn:
		s.inFlight--
		for _, d := range s.domains {
			d.inFlight[d.of[i]]--
		}
	}
}

func (s *simulator) settledCount() int {
	return s.phaseCount[pcSucceeded] + s.phaseCount[pcFailed] + s.phaseCount[pcQuarantined] + s.phaseCount[pcRolledBack]
}

func (s *simulator) progress(p Progress) {
	if s.cfg.Progress == nil {
		return
	}
	p.Elapsed = s.now.Sub(s.start)
	p.Settled = s.settledCount()
	p.Total = s.assigned
	p.InFlight = s.inFlight
	if p.State == "" {
		p.State = s.state
	}
	s.cfg.Progress(p)
}

func (s *simulator) schedule(at time.Time, i int32, k eventKind) {
	s.seq++
	s.events.push(event{at: int64(at.Sub(s.start)), seq: s.seq, node: i, gen: s.gen[i], kind: k})
}

func (s *simulator) run(ctx context.Context) error {
	horizon := s.start.Add(s.cfg.Horizon)
	s.decide()
	for !s.state.Terminal() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
		next := int64(-1)
		if len(s.events) > 0 {
			next = s.events[0].at
		}
		if !s.nextAt.IsZero() {
			if at := int64(s.nextAt.Sub(s.start)); next < 0 || at < next {
				next = at
			}
		}
		if !s.gateWake.IsZero() {
			if at := int64(s.gateWake.Sub(s.start)); next < 0 || at < next {
				next = at
			}
		}
		if next < 0 {
			if len(s.commands) > 0 {
				s.command(s.commands[0])
				s.commands = s.commands[1:]
				continue
			}
			break // nothing can change any more
		}
		// Quantize: the decision runs at the end of the tick holding next.
		cur := int64(s.now.Sub(s.start))
		t := (next + s.tick - 1) / s.tick * s.tick
		if t <= cur {
			t = cur + s.tick
		}
		at := s.start.Add(time.Duration(t))
		if at.After(horizon) {
			s.note(fmt.Sprintf("stopped at the horizon of %s of virtual time", FormatDuration(s.cfg.Horizon)))
			break
		}
		for len(s.events) > 0 && s.events[0].at <= t {
			s.report(s.events.pop())
		}
		s.now = at
		s.res.Stats.Ticks++
		s.decide()
	}
	return nil
}

// report applies one agent report at its own virtual time, through the
// engine's report rules (engine.Accept), as the server's store does.
func (s *simulator) report(e event) {
	i := e.node
	if e.gen != s.gen[i] {
		return
	}
	s.res.Stats.AgentReports++
	at := s.start.Add(time.Duration(e.at))
	st := &s.nodes[i].State
	switch e.kind {
	case evPreflight:
		// The answer was drawn when asked and is in s.preflight with its
		// time: the event only makes the next decision look at it.
	case evDispatched:
		if st.Phase != engine.PhaseQueued {
			return
		}
		if s.accept(i, engine.Report{Phase: engine.PhaseRunning, At: at}, false) {
			s.schedule(at.Add(s.dur.Step(s.nodes[i].Node, s.rng)), i, evStepDone)
		}
	case evStepDone:
		if st.Phase != engine.PhaseRunning && (st.Phase != engine.PhaseVerifying || st.Gate != "") {
			return // the engine moved it meanwhile (progress deadline)
		}
		if f := s.applyFailure(i, FailInterrupt); f != nil {
			s.accept(i, engine.Report{Phase: engine.PhaseInterrupted, At: at,
				Reason: "interrupted while the change was being applied: " + failureText(f, "simulated agent crash") + "; rolled back"}, false)
			return
		}
		if f := s.applyFailure(i, FailApply); f != nil {
			s.accept(i, engine.Report{Phase: engine.PhaseFailed, Reason: "apply failed: " + failureText(f, "simulated apply error"), At: at}, false)
			return
		}
		if h := s.healthBy[i]; h >= 0 {
			s.accept(i, engine.Report{Phase: engine.PhaseVerifying, Gate: engine.Fail, At: at,
				Reason: failureText(&s.failures[h].Failure, "simulated: the change degrades this node")}, false)
		} else {
			s.accept(i, engine.Report{Phase: engine.PhaseVerifying, Gate: engine.Pass, HealthySince: at, At: at}, false)
		}
	case evRollbackDone:
		if st.Phase != engine.PhaseRollingBack {
			return
		}
		if s.hurt[i]&hurtRollback != 0 {
			s.accept(i, engine.Report{Phase: engine.PhaseFailed, Reason: "rollback failed: simulated rollback error", At: at}, true)
			return
		}
		s.accept(i, engine.Report{Phase: engine.PhaseRolledBack, Reason: "rolled back", At: at}, true)
	}
}

// accept applies one report of node i's current step through
// engine.Accept and reports whether it was accepted. A refusal is a
// violation: the simulator only reports current steps.
func (s *simulator) accept(i int32, r engine.Report, rollback bool) bool {
	res, err := engine.Accept(engine.ReportInput{State: s.state, OnInterrupted: s.p.Gates.OnInterrupted,
		MinHealthy: s.p.Gates.Node.MinHealthy.D(), Node: s.nodes[i].State,
		Step: engine.StepStatus{Current: true, Rollback: rollback}, Report: r})
	if err != nil {
		s.violation(Violation{At: r.At, Rule: RuleReport, Msg: fmt.Sprintf("report of node %s refused: %v", s.nodes[i].ID, err)})
		return false
	}
	if res.Changed {
		next := res.Node
		s.setPhase(i, next.Phase)
		s.nodes[i].State = next
	}
	return true
}

func failureText(f *Failure, def string) string {
	if f.Reason != "" {
		return f.Reason
	}
	return fmt.Sprintf("%s (injected: %s)", def, f.Selector)
}

// classify draws, once per node, which injected failures hit it.
func (s *simulator) classify(i int32) {
	if s.hurt[i]&hurtKnown != 0 {
		return
	}
	h := hurtKnown
	nd := s.nodes[i].Node
	for fi := range s.failures {
		f := &s.failures[fi]
		if f.Kind == FailApply || f.Kind == FailInterrupt {
			continue // drawn per attempt
		}
		if ok, err := f.sel.Match(nd); err != nil || !ok {
			continue
		}
		if draw(s.cfg.Seed, nd.ID, fi) >= f.Probability {
			continue
		}
		switch f.Kind {
		case FailHealth:
			if s.healthBy[i] < 0 {
				s.healthBy[i] = int16(fi)
				h |= hurtHealth
			}
		case FailRollback:
			h |= hurtRollback
		}
	}
	s.hurt[i] = h
}

// applyFailure returns the failure of kind (FailApply or FailInterrupt)
// hitting node i's current attempt, if any.
func (s *simulator) applyFailure(i int32, kind FailureKind) *Failure {
	nd := &s.nodes[i]
	for fi := range s.failures {
		f := &s.failures[fi]
		if f.Kind != kind {
			continue
		}
		if ok, err := f.sel.Match(nd.Node); err != nil || !ok {
			continue
		}
		if draw(s.cfg.Seed+uint64(nd.State.Attempt)*0x51ed27, nd.ID, fi) < f.Probability {
			return &f.Failure
		}
	}
	return nil
}

// isHurt reports whether an injected failure hit node i (as far as drawn).
func (s *simulator) isHurt(i int32) bool {
	return s.hurt[i]&hurtHealth != 0 || (s.nodes[i].State.Phase == engine.PhaseFailed && strings.HasPrefix(s.nodes[i].State.Reason, "apply failed"))
}

func (s *simulator) input() engine.Input {
	return engine.Input{
		RolloutID:     s.cfg.RolloutID,
		Author:        s.cfg.Author,
		Plan:          s.p,
		State:         s.state,
		Reason:        s.reason,
		RollbackScope: s.scope,
		Nodes:         s.nodes,
		Waves:         s.waves,
		Gates:         s.gates,
		Approvals:     s.approves,
		Now:           s.now,
		Seed:          s.cfg.Seed,
		Index:         s.eidx,
		Fleet:         s.fleet,
		BreakGlass:    s.cfg.BreakGlass,
		Preflight:     s.preflight,
		Before:        s.applied,
	}
}

// askPreflight draws every asked node's answer to the node pre-flight:
// a real node's answer when Config.Preflight has it, else a failure when
// the plan's compatibility matrix rejects the node or an injected
// preflight failure hits it, else a pass; each is received after a
// PreflightDuration sample.
func (s *simulator) askPreflight(nodes []string) {
	dur := s.cfg.PreflightDuration
	if dur == (Dist{}) {
		dur = DefaultPreflightDuration()
	}
	s.preflight = &engine.PreflightStatus{AskedAt: s.now, Results: make(map[string]engine.PreflightResult, len(nodes))}
	targets := make([]*fleet.Node, 0, len(nodes))
	for _, id := range nodes {
		if i, ok := s.index[id]; ok {
			targets = append(targets, s.nodes[i].Node)
		}
	}
	broken := map[string]string{}
	if bad, err := preflight.Compatibility(s.p, targets); err != nil {
		s.note("compatibility rules not evaluated: " + err.Error())
	} else {
		for _, b := range bad {
			broken[b.Node] = strings.Join(b.Reasons, "; ")
		}
	}
	for _, n := range targets {
		r := engine.PreflightResult{OK: true, At: s.now.Add(dur.Sample(s.rng))}
		if real, ok := s.cfg.Preflight[n.ID]; ok {
			r.OK, r.Reason = real.OK, real.Reason
		} else if why, ok := broken[n.ID]; ok {
			r.OK, r.Reason = false, why
		} else if f := s.applyFailure(s.index[n.ID], FailPreflight); f != nil {
			r.OK, r.Reason = false, orDefault(f.Reason, "pre-flight failed (simulated)")
		}
		s.preflight.Results[n.ID] = r
		i := s.index[n.ID]
		s.schedule(r.At, i, evPreflight)
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// maxRedecide bounds how often one tick decides again because the previous
// decision changed a wave or the rollout state.
const maxRedecide = 4

// decide runs Decide at s.now, checks and applies the decision, and decides
// again at the same instant while decisions move waves or the rollout.
func (s *simulator) decide() {
	s.gateWake = time.Time{}
	for range maxRedecide {
		in := s.input()
		d := engine.Decide(in)
		s.lastWaits = d.Waits
		s.delays(d.Waits)
		s.res.Stats.Decisions++
		for _, v := range s.checker.Check(in, d) {
			s.violation(v)
		}
		again := s.apply(d)
		if !again || s.state.Terminal() {
			return
		}
	}
}

// delays records the window and freeze waits of a decision.
func (s *simulator) delays(waits []engine.Wait) {
	for _, w := range waits {
		if len(s.res.Delays) >= maxDelays {
			return
		}
		r := w.Reason
		if !strings.HasPrefix(r, "window ") && !strings.HasPrefix(r, "freeze ") && !strings.HasPrefix(r, "fleet freeze ") {
			continue
		}
		if !slices.Contains(s.res.Delays, r) {
			s.res.Delays = append(s.res.Delays, r)
		}
	}
}

// apply carries out a decision in the order the shell contract sets, and
// reports whether it moved a wave or the rollout (worth deciding again).
func (s *simulator) apply(d engine.Decision) bool {
	now := s.now
	for _, ev := range d.Events {
		s.addEvent(ev)
	}
	if len(d.AskPreflight) > 0 {
		s.askPreflight(d.AskPreflight)
	}
	for _, t := range d.Nodes {
		i, ok := s.index[t.Node]
		if !ok {
			s.violation(Violation{At: now, Rule: RuleUnknownNode, Msg: fmt.Sprintf("transition of unknown node %q", t.Node)})
			continue
		}
		s.setPhase(i, t.To)
		st := &s.nodes[i].State
		st.Since = now
		st.Reason = t.Reason
	}
	for _, t := range d.Waves {
		w := s.waves[t.Wave]
		from := w.State
		w.State = t.To
		w.Reason = t.Reason
		switch t.To {
		case engine.WaveRunning:
			w.StartedAt = now
		case engine.WaveBaking:
			w.BakeFrom = now
		case engine.WaveSucceeded, engine.WaveFailed:
			w.EndedAt = now
		}
		s.waves[t.Wave] = w
		s.progress(Progress{Kind: ProgressWave, Wave: t.Wave, From: from, To: t.To, Reason: t.Reason})
	}
	moved := len(d.Waves) > 0
	if d.State != s.state || d.Reason != s.reason {
		moved = moved || d.State != s.state
		if d.State != s.state {
			s.progress(Progress{Kind: ProgressRollout, State: d.State, Reason: d.Reason})
		}
		s.state, s.reason = d.State, d.Reason
	}
	s.scope = d.RollbackScope
	s.nextAt = d.NextAt

	if s.haltAt.IsZero() && (stopped(s.state) || s.checker.Breached()) {
		s.markHalt(now)
	}
	for _, st := range d.Starts {
		i, ok := s.index[st.Node]
		if !ok {
			s.violation(Violation{At: now, Rule: RuleUnknownNode, Msg: fmt.Sprintf("start of unknown node %q", st.Node)})
			continue
		}
		s.classify(i)
		if !s.started[i] {
			s.started[i] = true
			s.touched++
		}
		s.gen[i]++
		s.setPhase(i, engine.PhaseQueued)
		ns := &s.nodes[i].State
		ns.Attempt = st.Attempt
		ns.StartedAt, ns.Since = now, now
		ns.Gate, ns.HealthySince, ns.Reason = "", time.Time{}, ""
		s.schedule(now.Add(s.dur.Dispatch(s.nodes[i].Node, s.rng)), i, evDispatched)
	}
	for _, rb := range d.Rollbacks {
		i, ok := s.index[rb.Node]
		if !ok {
			s.violation(Violation{At: now, Rule: RuleUnknownNode, Msg: fmt.Sprintf("rollback of unknown node %q", rb.Node)})
			continue
		}
		s.classify(i)
		s.gen[i]++
		s.setPhase(i, engine.PhaseRollingBack)
		s.nodes[i].State.Since = now
		s.schedule(now.Add(s.dur.Rollback(s.nodes[i].Node, s.rng)), i, evRollbackDone)
	}
	for _, w := range d.Evaluate {
		s.evaluate(w)
	}
	if len(d.Starts) > 0 || len(d.Nodes) > 0 {
		s.nodeProgress()
	}
	return moved
}

// stopped reports whether a rollout state means the rollout no longer
// goes forward by itself.
func stopped(st engine.RolloutState) bool {
	switch st {
	case engine.RolloutHalted, engine.RolloutPaused, engine.RolloutRollingBack, engine.RolloutFailed, engine.RolloutAborted:
		return true
	}
	return false
}

// markHalt records the first halt or breach: which nodes were touched by then.
func (s *simulator) markHalt(now time.Time) {
	s.haltAt = now
	s.haltReason = s.reason
	if s.haltReason == "" {
		if b := s.checker.Breaches(); len(b) > 0 {
			s.haltReason = b[0].String()
		}
	}
	s.touchedHalt = s.touched
	for i := range s.nodes {
		if s.started[i] && s.isHurt(int32(i)) {
			s.hurtHalt = append(s.hurtHalt, s.nodes[i].ID)
		}
	}
}

func (s *simulator) nodeProgress() {
	if s.assigned == 0 {
		return
	}
	pct := s.settledCount() * 100 / s.assigned
	step := pct / s.cfg.ProgressEvery * s.cfg.ProgressEvery
	if step > s.lastProgress {
		s.lastProgress = step
		s.progress(Progress{Kind: ProgressNodes})
	}
}

// evaluate produces the wave-gate results of a baking wave (see the
// package doc).
func (s *simulator) evaluate(wave string) {
	changed, hurt := 0, 0
	var hurtIdx []int32
	for _, i := range s.waveNodes[wave] {
		if !s.started[i] {
			continue
		}
		switch s.code[i] {
		case pcRolledBack, pcPending, pcSkipped:
			continue
		}
		changed++
		if s.hurt[i]&hurtHealth != 0 {
			hurt++
			hurtIdx = append(hurtIdx, i)
		}
	}
	verdict, reason := engine.Pass, fmt.Sprintf("simulated: %d of %d nodes healthy", changed, changed)
	if hurt > 0 {
		verdict = engine.Fail
		reason = fmt.Sprintf("simulated: %d of %d nodes degraded", hurt, changed)
		if common := s.commonTraits(wave, hurtIdx); common != "" {
			reason += " (" + common + ")"
		}
	}
	names := []string{"health"}
	if len(s.p.Gates.Wave) > 0 {
		names = names[:0]
		for _, g := range s.p.Gates.Wave {
			names = append(names, g.Name)
		}
	}
	for gi, g := range names {
		reason := reason
		if gi < len(s.p.Gates.Wave) && s.comparesBefore(wave, s.p.Gates.Wave[gi]) {
			reason += " (" + gate.NoUnchanged + ")"
		}
		verdict := verdict
		if s.cfg.GateTiming && gi < len(s.p.Gates.Wave) {
			var ok bool
			if verdict, reason, ok = s.timedGate(wave, s.p.Gates.Wave[gi], verdict, reason); !ok {
				continue
			}
		}
		r := engine.GateResult{Wave: wave, Gate: g, Verdict: verdict, Reason: reason, At: s.now}
		replaced := false
		for j := range s.gates {
			if s.gates[j].Wave == wave && s.gates[j].Gate == g {
				s.gates[j] = r
				replaced = true
				break
			}
		}
		if !replaced {
			s.gates = append(s.gates, r)
		}
		if verdict == engine.Fail && !s.gateFailed[wave+"\x00"+g] {
			s.gateFailed[wave+"\x00"+g] = true
			s.addEvent(fmt.Sprintf("wave gate %s of wave %s: fail: %s", g, wave, reason))
		}
	}
}

// timedGate passes one evaluation of wave gate g through the gate
// tracker, as a server does (Config.GateTiming): ok is false while the
// gate is not due or still counting, and the next check is due at
// s.gateWake.
func (s *simulator) timedGate(wave string, g plan.WaveGate, v engine.Verdict, reason string) (engine.Verdict, string, bool) {
	key := wave + "/" + g.Name
	bake := s.waves[wave].BakeFrom
	every := g.Interval.D()
	if every <= 0 {
		every = time.Duration(s.tick)
	}
	if !s.gateTrack.Due(key, g, bake, s.now) {
		next := s.now.Add(every)
		if first := bake.Add(g.InitialDelay.D()); first.After(s.now) {
			next = first
		}
		s.wake(next)
		return "", "", false
	}
	v, reason, ok := s.gateTrack.Observe(key, g, gate.Evaluation{Verdict: v, Reason: reason}, s.now)
	if ok {
		s.wake(s.now) // a new verdict: decide at the next tick, as a server kicks its scheduler
	} else {
		s.wake(s.now.Add(every))
	}
	return v, reason, ok
}

// wake asks for a decision at t at the latest.
func (s *simulator) wake(t time.Time) {
	if s.gateWake.IsZero() || t.Before(s.gateWake) {
		s.gateWake = t
	}
}

// comparesBefore reports whether delta or statistical gate g of wave
// has no unchanged nodes to compare with (see gate.Baseline), so that
// it compares the wave's nodes with themselves before the change, as on
// a server; it says so in an event at the wave's first evaluation.
func (s *simulator) comparesBefore(wave string, g plan.WaveGate) bool {
	if g.Mode != plan.ModeDelta && g.Mode != plan.ModeStatistical {
		return false
	}
	key := wave + "\x00" + g.Name
	before, ok := s.before[key]
	if !ok {
		_, base := gate.Baseline(s.nodes, wave, g.Baseline)
		before = len(base) == 0
		s.before[key] = before
		if before {
			s.addEvent(fmt.Sprintf("wave gate %s of wave %s: %s", g.Name, wave, gate.NoUnchanged))
		}
	}
	return before
}

// commonTraits names the key=value pairs all hurt nodes share and that set
// them apart from some healthy changed node of the wave, e.g.
// "hardware.class=gen3".
func (s *simulator) commonTraits(wave string, hurt []int32) string {
	var out []string
	for _, k := range []string{"hardware.class", "os.family", "os.version", "zone", "tier"} {
		v := s.nodes[hurt[0]].Value(k)
		if v == "" {
			continue
		}
		same := true
		for _, i := range hurt[1:] {
			if s.nodes[i].Value(k) != v {
				same = false
				break
			}
		}
		if !same {
			continue
		}
		distinct := false
		for _, i := range s.waveNodes[wave] {
			if s.started[i] && s.hurt[i]&hurtHealth == 0 && s.nodes[i].Value(k) != v {
				distinct = true
				break
			}
		}
		if distinct {
			out = append(out, k+"="+v)
		}
	}
	return strings.Join(out, ", ")
}

func (s *simulator) result() *Result {
	r := &s.res
	r.State = s.state
	r.Reason = s.reason
	r.MakespanSeconds = s.now.Sub(s.start).Seconds()
	r.PeakInFlight = s.peak
	for _, d := range s.domains {
		m := make(map[string]int, len(d.values))
		for j, v := range d.values {
			if v == "" {
				v = "(none)"
			}
			m[v] = d.peak[j]
		}
		r.PeakInFlightByDomain[d.key] = m
	}
	for _, b := range s.checker.Breaches() {
		r.BudgetBreaches = append(r.BudgetBreaches, Breach{AtSeconds: b.At.Sub(s.start).Seconds(), Wave: b.Wave, Failures: b.Failures, Max: b.Max})
	}
	r.Halted = s.state != engine.RolloutSucceeded
	if !s.haltAt.IsZero() {
		at := s.haltAt.Sub(s.start).Seconds()
		r.HaltedAtSeconds = &at
		r.HaltReason = s.haltReason
		r.NodesTouchedBeforeHalt = s.touchedHalt
		r.HurtTouchedBeforeHalt = append(r.HurtTouchedBeforeHalt, s.hurtHalt...)
	} else {
		r.NodesTouchedBeforeHalt = s.touched
		for i := range s.nodes {
			if s.started[i] && s.isHurt(int32(i)) {
				r.HurtTouchedBeforeHalt = append(r.HurtTouchedBeforeHalt, s.nodes[i].ID)
			}
		}
	}
	if slices.Contains(s.everFailed, true) {
		r.Localisation = engine.Localise(s.p, s.nodes, s.applied)
	}
	if r.Halted && r.HaltReason == "" {
		switch {
		case s.reason != "":
			r.HaltReason = s.reason
		case s.state == engine.RolloutRunning || s.state == engine.RolloutPendingApproval:
			r.HaltReason = "stalled: " + s.stallReason()
		default:
			r.HaltReason = string(s.state)
		}
	}
	c := &r.Nodes
	c.Target = len(s.nodes)
	c.Skipped = s.phaseCount[pcSkipped]
	c.Touched = s.touched
	c.Succeeded = s.phaseCount[pcSucceeded]
	c.Failed = s.phaseCount[pcFailed]
	c.Quarantined = s.phaseCount[pcQuarantined]
	c.RolledBack = s.phaseCount[pcRolledBack]
	c.Untouched = s.phaseCount[pcPending]
	c.Other = c.Target - c.Skipped - c.Succeeded - c.Failed - c.Quarantined - c.RolledBack - c.Untouched
	for i := range s.nodes {
		if s.started[i] && s.isHurt(int32(i)) {
			c.Hurt++
		}
	}
	for _, name := range s.waveOrder {
		w := s.waves[name]
		wr := WaveResult{Name: name, Nodes: len(s.waveNodes[name]), State: w.State, Reason: w.Reason}
		if !w.StartedAt.IsZero() {
			v := w.StartedAt.Sub(s.start).Seconds()
			wr.StartedAtSeconds = &v
		}
		if !w.EndedAt.IsZero() {
			v := w.EndedAt.Sub(s.start).Seconds()
			wr.EndedAtSeconds = &v
		}
		for _, i := range s.waveNodes[name] {
			if s.everFailed[i] {
				wr.Failed++
			}
			switch s.code[i] {
			case pcSucceeded:
				wr.Succeeded++
			case pcQuarantined:
				wr.Quarantined++
			case pcRolledBack:
				wr.RolledBack++
			case pcPending:
				wr.Untouched++
			}
		}
		r.Waves = append(r.Waves, wr)
	}
	slices.SortStableFunc(r.UncoveredStrata, func(a, b Stratum) int { return cmp.Compare(a.Wave, b.Wave) })
	return r
}

// stallReason explains why a running rollout stopped moving.
func (s *simulator) stallReason() string {
	d := engine.Decide(s.input())
	if len(d.Waits) > 0 {
		w := d.Waits[0]
		return fmt.Sprintf("%d node(s) wait: %s", w.Count, w.Reason)
	}
	return "no node can start and nothing is in flight"
}
