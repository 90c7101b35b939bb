package engine

import (
	"time"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/localize"
	"github.com/drover-dev/drover/internal/plan"
)

// RolloutState is the lifecycle state of a rollout.
//
//	pending-approval -> running <-> paused -> halted | rolling-back -> succeeded | failed | aborted
type RolloutState string

const (
	RolloutPendingApproval RolloutState = "pending-approval"
	RolloutRunning         RolloutState = "running"
	RolloutPaused          RolloutState = "paused"
	RolloutRollingBack     RolloutState = "rolling-back"
	RolloutHalted          RolloutState = "halted"
	RolloutSucceeded       RolloutState = "succeeded"
	RolloutFailed          RolloutState = "failed"
	RolloutAborted         RolloutState = "aborted"
)

// Terminal reports whether no further decision can change the rollout.
func (s RolloutState) Terminal() bool {
	return s == RolloutSucceeded || s == RolloutFailed || s == RolloutAborted || s == RolloutHalted
}

// Phase is the state of one node within one rollout.
type Phase string

const (
	PhasePending     Phase = "pending"      // assigned to a wave, not started
	PhaseQueued      Phase = "queued"       // start decided and persisted, not yet acknowledged by the agent
	PhaseRunning     Phase = "running"      // the agent is executing the step
	PhaseVerifying   Phase = "verifying"    // step applied; node gates soaking
	PhaseSucceeded   Phase = "succeeded"    // applied and healthy
	PhaseFailed      Phase = "failed"       // step or node gate failed; holds its slot until resolved
	PhaseQuarantined Phase = "quarantined"  // failed, set aside within budget; frees its slot
	PhaseRollingBack Phase = "rolling-back" // rollback dispatched, not finished
	PhaseRolledBack  Phase = "rolled-back"  // rollback applied and verified
	// PhaseRollbackUnhealthy: the rollback restored every action but the
	// node's probes still fail; the node stays out of service (a
	// kubernetes node stays cordoned) until a human resolves it. It does
	// not count as recovered: a rollout with such a node ends failed.
	PhaseRollbackUnhealthy Phase = "rollback-unhealthy"
	PhaseUnknown           Phase = "unknown" // agent silent past its lease; holds its slot
	PhaseSkipped           Phase = "skipped" // in the target but never to be changed (no wave took it, or an operator skipped it)

	// Reported by agents, never a node's phase (see Accept):
	// PhaseInterrupted: the agent crashed or the node rebooted (not at the
	// step's request) while the step ran; the agent undid what the step
	// had begun and reports what its journal proves.
	// PhaseCancelled: the agent acknowledges a cancelled step it had not
	// begun; it never begins it.
	PhaseInterrupted Phase = "interrupted"
	PhaseCancelled   Phase = "cancelled"
)

// InFlight reports whether a node in this phase uses a concurrency slot.
// Failed and unknown nodes keep their slot until they are resolved: the
// change may still be acting on them.
func (p Phase) InFlight() bool {
	switch p {
	case PhaseQueued, PhaseRunning, PhaseVerifying, PhaseFailed, PhaseRollingBack, PhaseUnknown:
		return true
	}
	return false
}

// Verdict is the result of a health evaluation. The zero value is not a
// verdict: missing data must be reported as Fail or Inconclusive, never as
// a silent Pass.
type Verdict string

const (
	Pass         Verdict = "pass"
	Fail         Verdict = "fail"
	Inconclusive Verdict = "inconclusive"
)

// NodeState is one node's progress in one rollout. The shell persists it;
// the engine reads it and returns transitions.
type NodeState struct {
	Phase   Phase
	Wave    string // wave the node was assigned to; "" when skipped
	Attempt int    // 1 for the first apply; step IDs carry it
	// Since is when the node entered Phase.
	Since time.Time
	// StartedAt is when the current apply was decided (zero if never).
	StartedAt time.Time
	// HealthySince is when the node gates started passing without a break
	// since; zero while they are failing or not yet evaluated.
	HealthySince time.Time
	// Gate is the latest node-gate verdict while verifying ("" before any).
	Gate Verdict
	// Reason explains the phase (failure message, operator's note).
	Reason string
	// Rollback is true while the node's current step is a rollback, and
	// stays true after it: a node that is failed with Rollback set failed
	// its rollback and needs a human. The shell sets it with each
	// Decision.Rollbacks entry and clears it on the next apply.
	Rollback bool
	// Interruptions counts the node's steps in this rollout interrupted by
	// an agent crash or reboot (see Accept and plan gates.onInterrupted).
	Interruptions int
}

// Node is a node of the rollout's target with its state in the rollout.
type Node struct {
	*fleet.Node
	State NodeState
}

// WaveState is the lifecycle of a wave.
type WaveState string

const (
	WavePending   WaveState = "pending"
	WaveRunning   WaveState = "running"
	WaveBaking    WaveState = "baking"
	WaveSucceeded WaveState = "succeeded"
	WaveFailed    WaveState = "failed"
)

// WaveStatus is a wave's persisted progress.
type WaveStatus struct {
	State     WaveState
	StartedAt time.Time // when it became running
	BakeFrom  time.Time // when its last node finished; bake time runs from here
	EndedAt   time.Time
	Reason    string
}

// GateResult is one wave-gate evaluation, supplied by the gate evaluators.
type GateResult struct {
	Wave    string
	Gate    string
	Verdict Verdict
	Reason  string
	At      time.Time
}

// Approval is one recorded approval. Wave is "" for the start approval.
type Approval struct {
	By   string
	Wave string
	At   time.Time
}

// Stratum is one combination of canary spread-key values present in the
// target, with why no canary node covers it.
type Stratum struct {
	Wave   string
	Values map[string]string // spread key -> value
	Reason string
	// Blocking is true when the wave's canary must cover its strata
	// (canary.cover: strata without allowUncovered): the rollout may not
	// start. Strata left to held-back nodes never block.
	Blocking bool
}

// Assignment is the result of Assign: the target nodes in assignment order,
// each pending in its wave (or skipped, with a reason), and the canary
// strata that no canary node covers.
type Assignment struct {
	Nodes     []Node
	Uncovered []Stratum
}

// Input is everything Decide needs. Nothing in it is modified.
type Input struct {
	RolloutID string
	Author    string
	Plan      *plan.Plan // effective plan (plan.Defaults applied)
	State     RolloutState
	// Reason is the persisted reason of State (pause or halt reason).
	Reason string
	// RollbackScope is the wave being rolled back, or "" for all, while
	// State is rolling-back.
	RollbackScope string
	Nodes         []Node // the target, in assignment order
	Waves         map[string]WaveStatus
	Gates         []GateResult // latest wave-gate results, any order
	Approvals     []Approval
	// StartApprovals is how many distinct approvers other than the author
	// the start needs when the server requires more than the plan (its
	// approval floor, fixed when the rollout was created); the start
	// needs the larger of it and Plan.Approvals.Start.
	StartApprovals int
	// BlockingAlerts names alerts firing now that block new starts.
	BlockingAlerts []string
	// BreakGlass is the reason an admin recorded to override freezes,
	// the plan's and the fleet's: when set, freezes do not block starts
	// (windows, caps, budgets, holds and gates still do). "" honours
	// every freeze.
	BreakGlass string
	// LineStop is the reason of a fleet-wide stop-the-line ("" when the
	// line runs): while set, nothing is dispatched, neither starts nor
	// rollbacks; transitions and gate judgements go on.
	LineStop string
	// Fleet is what other rollouts and the server's fleet-level objects
	// impose (held nodes, fleet budgets, fleet freezes); nil is none.
	Fleet *Fleet
	// Preflight is the node pre-flight's progress when the plan runs
	// one (plan.Preflight.Runs); nil is not asked yet.
	Preflight *PreflightStatus
	// Before is how the apply of rolled-back nodes ended, PhaseFailed
	// or PhaseSucceeded (their phase no longer says so; failed when any
	// apply of the node failed); a rolled-back node missing was rolled
	// back before its apply ended. It only tells the localisation of
	// failures (Localise) how to count rolled-back nodes. The shell
	// fills it while the rollout rolls back; nil is none.
	Before map[string]Phase
	Now    time.Time
	Seed   uint64 // jitter source; fixed per rollout
	// Index caches what does not change between decisions of a rollout;
	// nil is allowed (see Index).
	Index *Index
}

// PreflightResult is one node's answer to the node pre-flight.
type PreflightResult struct {
	OK bool
	// Reason says why the node failed: the drivers' refusals and the
	// compatibility rules it breaks. When OK it is usually "", or says
	// why the node goes ahead unchecked (its agent cannot pre-flight).
	Reason string
	// At is when the server received the answer: one received after the
	// deadline (asked + plan.Preflight.Timeout) counts as no answer, one
	// after Input.Now is not received yet (the simulator draws answers
	// ahead).
	At time.Time
}

// PreflightStatus is the persisted progress of a rollout's node
// pre-flight.
type PreflightStatus struct {
	AskedAt time.Time                  // when the nodes were asked
	Results map[string]PreflightResult // by node ID; nodes that have not answered are absent
}

// Start orders one node step. StepID is stable: deciding again from the
// same persisted state yields the same ID, so agents and the store can use
// it as an idempotency key.
type Start struct {
	Node    string
	Wave    string
	StepID  string
	Attempt int
}

// NodeTransition moves a node to a new phase.
type NodeTransition struct {
	Node   string
	From   Phase
	To     Phase
	Reason string
}

// WaveTransition moves a wave to a new state.
type WaveTransition struct {
	Wave   string
	From   WaveState
	To     WaveState
	Reason string
}

// Wait groups the nodes that wait for the same reason. Count is exact;
// Nodes holds the first MaxWaitSample of them, in assignment order.
// Explain gives the reason of any one node.
type Wait struct {
	Reason string
	Count  int
	Nodes  []string
}

// MaxWaitSample bounds Wait.Nodes so that a decision over 100,000 waiting
// nodes stays small.
const MaxWaitSample = 50

// Decision is what the shell must do next, in order: persist the
// transitions and the new rollout state, persist the starts and rollbacks
// (marking nodes queued or rolling-back, with their step IDs), then
// dispatch them, then call Decide again at NextAt or on the next event.
type Decision struct {
	State         RolloutState
	Reason        string // why the rollout is in State ("" while running normally)
	RollbackScope string
	Starts        []Start
	Rollbacks     []Start
	Nodes         []NodeTransition
	Waves         []WaveTransition
	// Evaluate lists the baking waves whose gates the shell must evaluate.
	Evaluate []string
	Waits    []Wait
	// Breach says which failure budgets this decision found breached
	// (the reason it paused or rolled back for); "" when none.
	Breach string
	// Events are the human-readable decisions taken, for the audit log and
	// the timeline ("wave canary failed: ...; rolling back 3 nodes").
	Events []string
	// NextAt is when deciding again may change something even if no event
	// arrives; zero means only an event can.
	NextAt time.Time
	// AskPreflight lists the nodes whose agents the shell must ask for
	// their pre-flight, in assignment order: persist the asks (the time
	// asked is Input.Now), then wake the agents. Set once, when a
	// running rollout's plan asks for a pre-flight no node was asked for.
	AskPreflight []string
	// Localisation is what the failed nodes share, when this decision
	// gave Reason a localisation (a budget breach, a halt); nil otherwise.
	Localisation []localize.Finding
	// Limits are the slots in use, as tallied from the input before this
	// decision's starts and rollbacks, against max in flight and against
	// each cap's domains (caps by key, domains by name).
	Limits []Limit
}

// Limit is the use of one pool of slots: max in flight (Key
// "maxInFlight", no Domain) or one domain of a cap. Limit resolves a
// percent: over the target for max in flight, over the domain's nodes that
// are not skipped for a cap, rounded up and never below 1.
type Limit struct {
	Key    string
	Domain string
	InUse  int
	Limit  int
}
