package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
)

// MaxBodyBytes is the largest request body the REST API accepts (plans
// included); larger bodies get 413 with code "too_large".
const MaxBodyBytes = 1 << 20

// Error is every API error body. Code is stable and machine-readable;
// Error is for people. Problems lists plan problems with positions.
type Error struct {
	Error    string    `json:"error"`
	Code     string    `json:"code"`
	Problems []Problem `json:"problems,omitempty"`
	// Moves, with code assignment_changed: the nodes whose wave on the
	// current inventory differs from the dry run's.
	Moves []AssignmentMove `json:"moves,omitempty"`
}

// Error codes.
const (
	CodeBadRequest   = "bad_request"      // invalid JSON, unknown fields, bad parameters
	CodeInvalidPlan  = "invalid_plan"     // the plan has problems (see Problems)
	CodeInvalidCEL   = "invalid_selector" // a CEL filter does not compile
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict" // state changed; If-Match version mismatch
	CodePrecondReq   = "precondition_required"
	CodeTooLarge     = "too_large"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeProtocol     = "protocol_unsupported"
	CodeUnavailable  = "unavailable" // not the leader, shutting down, store down
	CodeInternal     = "internal"
	CodeOverlap      = "overlap" // the plan says overlap: refuse and its target overlaps an active rollout's
	// CodeAssignmentChanged: a rollout created from a dry run would not
	// assign nodes to waves as the dry run did (see Moves); send
	// acceptChanges to create it anyway.
	CodeAssignmentChanged = "assignment_changed"
)

// Problem is one plan problem.
type Problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

// Node is a node as the API shows it.
type Node struct {
	ID           string            `json:"id"`
	Facts        fleet.Facts       `json:"facts"`
	Labels       map[string]string `json:"labels"`
	Version      int64             `json:"version"`
	AgentVersion string            `json:"agentVersion,omitempty"`
	RegisteredAt time.Time         `json:"registeredAt"`
	LastSeen     time.Time         `json:"lastSeen"`
	Online       bool              `json:"online"` // lease not expired
	// HeldBy is who holds the node now: a rollout's in-flight step or a
	// FleetLock client rebooting it (GET /v1/nodes/{id} only); nil when
	// free.
	HeldBy *Hold `json:"heldBy,omitempty"`
}

// NodeList is one page of nodes. Next is the cursor of the next page
// ("" on the last page).
type NodeList struct {
	Nodes []Node `json:"nodes"`
	Next  string `json:"next,omitempty"`
}

// LabelsRequest replaces a node's labels (send If-Match: its version).
type LabelsRequest struct {
	Labels map[string]string `json:"labels"`
}

// PlanRequest carries a plan's YAML text.
type PlanRequest struct {
	Plan string `json:"plan"`
	// File names the plan in problem positions (default "plan.yaml").
	File string `json:"file,omitempty"`
}

// DryRunPreflightWait bounds how long a dry run waits for the nodes'
// pre-flight answers.
const DryRunPreflightWait = 2 * time.Minute

// ValidateResponse is the result of validating a plan.
type ValidateResponse struct {
	Valid    bool      `json:"valid"`
	Problems []Problem `json:"problems,omitempty"`
	Nodes    int       `json:"nodes"` // target size on the live inventory
	// Refusals are what target nodes' agents would refuse, under
	// target.onRefusal: fail-node (otherwise they are Problems).
	Refusals []Refusal `json:"refusals,omitempty"`
}

// Refusal is a part of a plan (an action or a probe, at Path) that the
// agents of Nodes would refuse, as they report their policy, and why.
type Refusal struct {
	Path   string   `json:"path"`
	Reason string   `json:"reason"`
	Nodes  []string `json:"nodes"`
}

// Text is r in one line: "PATH: N nodes (a, b, ...): REASON".
func (r Refusal) Text() string {
	ids := r.Nodes[:min(len(r.Nodes), 5)]
	more := ""
	if len(r.Nodes) > len(ids) {
		more = fmt.Sprintf(" and %d more", len(r.Nodes)-len(ids))
	}
	return fmt.Sprintf("%s: %d node(s) (%s%s): %s", r.Path, len(r.Nodes), strings.Join(ids, ", "), more, r.Reason)
}

// Text is one line for people: "web-3: canary -> (none): gone from the
// inventory".
func (m AssignmentMove) Text() string {
	from, to := m.From, m.To
	if from == "" {
		from = "(none)"
	}
	if to == "" {
		to = "(none)"
	}
	return fmt.Sprintf("%s: %s -> %s: %s", m.Node, from, to, m.Why)
}

// DryRunRequest rehearses a plan against the live inventory.
type DryRunRequest struct {
	Plan string `json:"plan"`
	File string `json:"file,omitempty"`
	// Seed fixes the assignment of nodes to waves and the simulation's
	// draws: a decimal uint64, as a string (JSON numbers lose precision
	// past 2^53); "" draws a random one.
	Seed string `json:"seed,omitempty"`
	// Preflight asks every target node's agent for its
	// pre-flight of the change before simulating, waiting up to the
	// plan's preflight.timeout (at most DryRunPreflightWait): the
	// rehearsal then replays what each real node answered.
	Preflight bool `json:"preflight,omitempty"`
}

// DryRunResponse is the simulator run against the live inventory.
type DryRunResponse struct {
	// ID names the stored dry run: a rollout created with fromDryRun ID
	// runs its plan with its seed. Seed is that seed (decimal).
	ID   string `json:"id"`
	Seed string `json:"seed"`
	// AssignmentSHA256 is the hash of the dry run's node-to-wave list
	// (approvals bind to it); Members lists each wave's nodes and Canary
	// the canary waves' members, in node ID order.
	AssignmentSHA256 string              `json:"assignmentSha256"`
	Members          map[string][]string `json:"members"`
	Canary           []string            `json:"canary,omitempty"`
	Result           json.RawMessage     `json:"result"`
	Text             string              `json:"text"`
	// ApprovalsNeeded is how many distinct approvers other than the
	// author the rollout would need before it starts: the maximum of the
	// plan's approvals.start and the server's approval floor.
	ApprovalsNeeded int `json:"approvalsNeeded"`
	// ApprovalFloor says which floor rules raised it ("" when none did).
	ApprovalFloor string `json:"approvalFloor,omitempty"`
	// Warnings are problems the plan would meet on this server (e.g.
	// more approvals than it has approvers).
	Warnings []string `json:"warnings,omitempty"`
	// Refusals: as in ValidateResponse; those nodes would fail their
	// step without anything run, which the simulation does not model.
	Refusals []Refusal `json:"refusals,omitempty"`
	// Overlaps are the active rollouts sharing target nodes with the plan.
	Overlaps []Overlap `json:"overlaps,omitempty"`
	// Preflight is the real nodes' pre-flight, when asked for
	// (PlanRequest.Preflight); readable later under its Rollout ID at
	// GET /v1/rollouts/{id}/preflight.
	Preflight *PreflightView `json:"preflight,omitempty"`
}

// PreflightView is a rollout's (or dry run's) node pre-flight: every node
// asked, with its answer.
type PreflightView struct {
	Rollout  string    `json:"rollout"`
	AskedAt  time.Time `json:"askedAt"`
	Deadline time.Time `json:"deadline"`
	// Asked, Passed, Failed, Waiting and Unavailable count the nodes; a
	// node silent past the deadline counts as failed.
	Asked   int `json:"asked"`
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Waiting int `json:"waiting"`
	// Unavailable counts the nodes whose agent is too old to run a
	// pre-flight and that go ahead unchecked (preflight.unavailable:
	// proceed, the default).
	Unavailable int             `json:"unavailable"`
	Nodes       []NodePreflight `json:"nodes"`
}

// NodePreflight is one node's pre-flight.
type NodePreflight struct {
	Node string `json:"node"`
	// State is passed, failed, waiting (asked, before the deadline),
	// no-answer (silent past the deadline) or unavailable (the agent is
	// too old to run one; the node goes ahead unchecked).
	State      string    `json:"state"`
	Reason     string    `json:"reason,omitempty"`
	AnsweredAt time.Time `json:"answeredAt,omitzero"`
	// Report is the agent's answer: what each action would do; nil when
	// the server answered itself (an agent too old, an incompatible
	// node) or no answer came.
	Report *PreflightReport `json:"report,omitempty"`
}

// CreateRolloutRequest creates a rollout from a plan, or from a dry run.
type CreateRolloutRequest struct {
	// Plan may be empty with FromDryRun (the dry run's plan is used); if
	// given, it must be the text the dry run rehearsed.
	Plan string `json:"plan"`
	File string `json:"file,omitempty"`
	// FromDryRun creates the rollout a stored dry run rehearsed: its plan
	// and its seed. The assignment is recomputed on the current
	// inventory; if it differs from the dry run's, creation is refused
	// (code assignment_changed, with the moves) unless AcceptChanges.
	FromDryRun    string `json:"fromDryRun,omitempty"`
	AcceptChanges bool   `json:"acceptChanges,omitempty"`
	// Seed fixes the assignment (decimal uint64); "" draws a random one,
	// or takes the dry run's. With FromDryRun it must be the dry run's.
	Seed string `json:"seed,omitempty"`
}

// AssignmentMove is a node whose wave differs between a dry run and the
// current inventory. From and To are waves, "" meaning none (outside the
// target, skipped, or not in the inventory); Why says what changed.
type AssignmentMove struct {
	Node string `json:"node"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	Why  string `json:"why"`
}

// Rollout is a rollout as the API shows it.
type Rollout struct {
	ID            string              `json:"id"`
	Name          string              `json:"name"`
	Author        string              `json:"author"`
	State         engine.RolloutState `json:"state"`
	Reason        string              `json:"reason,omitempty"`
	RollbackScope string              `json:"rollbackScope,omitempty"`
	Version       int64               `json:"version"`
	PlanSHA256    string              `json:"planSha256"`
	// Seed is the seed of the rollout's assignment (decimal).
	// AssignmentSHA256 hashes its node-to-wave list: approvals bind to
	// it and to PlanSHA256. DryRun is the dry run it was created from.
	Seed             string           `json:"seed"`
	AssignmentSHA256 string           `json:"assignmentSha256,omitempty"`
	DryRun           string           `json:"dryRun,omitempty"`
	CreatedAt        time.Time        `json:"createdAt"`
	UpdatedAt        time.Time        `json:"updatedAt"`
	Counts           map[string]int   `json:"counts"` // nodes per phase
	Total            int              `json:"total"`
	Waves            []Wave           `json:"waves,omitempty"`
	Gates            []Gate           `json:"gates,omitempty"`
	Approvals        []Approval       `json:"approvals,omitempty"`
	Waits            []engine.Wait    `json:"waits,omitempty"`
	Uncovered        []engine.Stratum `json:"uncovered,omitempty"`
	// Refusals, on creation only: as in ValidateResponse.
	Refusals []Refusal     `json:"refusals,omitempty"`
	Nodes    []RolloutNode `json:"nodes,omitempty"` // with ?nodes=true
	Plan     string        `json:"plan,omitempty"`  // with ?plan=true
	// ApprovalsNeeded is how many distinct approvers other than the
	// author the start needs: the maximum of the plan's approvals.start
	// and the server's approval floor, fixed when the rollout was
	// created. ApprovalsGot counts those who approved the start.
	ApprovalsNeeded int `json:"approvalsNeeded"`
	ApprovalsGot    int `json:"approvalsGot"`
	// ApprovalFloor says which server floor rules raised ApprovalsNeeded
	// above the plan's ("" when none did).
	ApprovalFloor string `json:"approvalFloor,omitempty"`
	// Warnings are problems found at creation (e.g. more approvals
	// needed than the server has approvers); only in the create answer.
	Warnings []string `json:"warnings,omitempty"`
	// Limits are the concurrency limits with the slots in use now:
	// maxInFlight over the target, then each cap per domain, then each
	// fleet disruption budget covering the target per domain (key
	// "budget:NAME", in use counting every rollout's and holder's slots).
	Limits []Limit `json:"limits,omitempty"`
	// Overlaps, on creation, are the active rollouts sharing target
	// nodes with this one: they hold those nodes first.
	Overlaps []Overlap `json:"overlaps,omitempty"`
	// Moves, on creation from a dry run with acceptChanges: the nodes
	// whose wave differs from the dry run's (none: identical).
	Moves []AssignmentMove `json:"moves,omitempty"`
	// Unchanged counts the succeeded nodes whose step changed nothing
	// (already up to date, as their agents' evidence says); reported for
	// a rollout that ended, and with ?nodes=true.
	Unchanged int `json:"unchanged,omitempty"`
	// RolledBackFailed counts the rolled-back nodes whose step had
	// failed (the failures a budget breach counted); reported as
	// Unchanged is.
	RolledBackFailed int `json:"rolledBackFailed,omitempty"`
	// Localisation names the attribute values the failed nodes share
	// that the succeeded ones do not (one-sided Fisher exact test,
	// corrected for the values tested), best first; none while no node
	// failed or when the evidence is weak. In a single view.
	Localisation []Finding `json:"localisation,omitempty"`
	// Prediction is the simulation run at creation (learned durations,
	// the rollout's own seed) beside what happened; nil when none was
	// stored.
	Prediction *Prediction `json:"prediction,omitempty"`
	// ETA is when the rest of a running rollout should end, simulated
	// from its current state; only while it runs, in a single view.
	ETA *ETA `json:"eta,omitempty"`
}

// Finding is one attribute value over-represented among a rollout's
// failed nodes: FailedWith of Failed failed nodes have it, SucceededWith
// of Succeeded succeeded nodes do. P is the one-sided Fisher exact
// p-value, Bonferroni-corrected over the Tests values that could have
// reached significance (Tarone). Text says it in one sentence.
type Finding struct {
	Attribute     string  `json:"attribute"` // hardware.class, os.version, labels.zone, packages.openssl, ...
	Value         string  `json:"value"`
	FailedWith    int     `json:"failedWith"`
	Failed        int     `json:"failed"`
	SucceededWith int     `json:"succeededWith"`
	Succeeded     int     `json:"succeeded"`
	P             float64 `json:"p"`
	Tests         int     `json:"tests"`
	Text          string  `json:"text"`
}

// Prediction is what the simulation said at a rollout's creation, in
// seconds from the creation, and what happened. ErrorPercent is
// (actual - predicted) / predicted × 100: positive when the rollout took
// longer than predicted.
type Prediction struct {
	CreatedAt time.Time `json:"createdAt"`
	// Model says per wave where the durations came from (learned from
	// the fleet's step history, or a default model).
	Model                 []string         `json:"model,omitempty"`
	State                 string           `json:"state"` // the simulated end state
	MakespanSeconds       float64          `json:"makespanSeconds"`
	ActualMakespanSeconds *float64         `json:"actualMakespanSeconds,omitempty"`
	ErrorPercent          *float64         `json:"errorPercent,omitempty"`
	Waves                 []WavePrediction `json:"waves"`
}

// WavePrediction is one wave's predicted and actual times, in seconds
// from the rollout's creation.
type WavePrediction struct {
	Name             string   `json:"name"`
	StartSeconds     *float64 `json:"startSeconds"`
	EndSeconds       *float64 `json:"endSeconds"`
	ActualEndSeconds *float64 `json:"actualEndSeconds,omitempty"`
	ErrorPercent     *float64 `json:"errorPercent,omitempty"`
}

// ETA is when a running rollout should end, simulated from its current
// state with the durations learned from the fleet: End is the median of
// runs with sampled durations (different seeds); EndP10..EndP90 is the
// range, from the earliest to the latest of those runs' 10th and 90th
// percentile and of two runs with every learned duration at its 10th
// and its 90th percentile. Delays name the maintenance windows and
// freezes ahead that push the end out.
type ETA struct {
	ComputedAt time.Time `json:"computedAt"`
	Runs       int       `json:"runs"`
	End        time.Time `json:"end"`
	EndP10     time.Time `json:"endP10"`
	EndP90     time.Time `json:"endP90"`
	Waves      []WaveETA `json:"waves"`
	Delays     []string  `json:"delays,omitempty"`
	// Stalled says why the simulation did not reach an end (a rollout
	// waiting for approvals, beyond the horizon), or why none was run
	// (the line is stopped: End is then zero).
	Stalled string `json:"stalled,omitempty"`
}

// WaveETA is one wave's expected end (its real end once ended).
type WaveETA struct {
	Name   string    `json:"name"`
	Ended  bool      `json:"ended"`
	End    time.Time `json:"end,omitzero"`
	EndP10 time.Time `json:"endP10,omitzero"`
	EndP90 time.Time `json:"endP90,omitzero"`
}

// Limit is one concurrency limit and the slots in use against it. Key is
// "maxInFlight", a cap's key (zone, tier, hardware.class, ...) or
// "budget:NAME" for a fleet disruption budget; Domain is the cap's domain
// value ("" for maxInFlight), or PER=VALUE for a budget split per label. Nodes in flight (queued,
// running, verifying, failed, rolling back, unknown) hold a slot.
type Limit struct {
	Key    string `json:"key"`
	Domain string `json:"domain,omitempty"`
	InUse  int    `json:"inUse"`
	Limit  int    `json:"limit"`
}

// WhoAmI is the caller as the server authenticated it: its name, role
// and the actions its role permits (create, label, approve, pause,
// resume, abort, rollback, resolve). The dashboard hides what the caller
// may not do; the API enforces it regardless.
type WhoAmI struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"`
	Actions []string `json:"actions"`
}

// Wave is a wave's progress.
type Wave struct {
	Name      string           `json:"name"`
	State     engine.WaveState `json:"state"`
	Reason    string           `json:"reason,omitempty"`
	Nodes     int              `json:"nodes"`
	Counts    map[string]int   `json:"counts"`
	StartedAt time.Time        `json:"startedAt,omitzero"`
	EndedAt   time.Time        `json:"endedAt,omitzero"`
	After     []string         `json:"after,omitempty"`
	Canary    bool             `json:"canary,omitempty"`
	// ApprovalsNeeded is how many distinct approvers other than the
	// author the wave needs before it starts (0: none); ApprovalsGot
	// counts those who approved it.
	ApprovalsNeeded int `json:"approvalsNeeded,omitempty"`
	ApprovalsGot    int `json:"approvalsGot,omitempty"`
	// BakeUntil is when a baking wave's bake time ends (its gates must
	// pass as well); absent when the wave is not baking.
	BakeUntil time.Time `json:"bakeUntil,omitzero"`
	// Soaking counts the wave's nodes verifying (node gates soaking);
	// SoakUntil is when the last of those whose gates already pass has
	// passed for gates.node.minHealthy (absent when none passes yet).
	Soaking   int       `json:"soaking,omitempty"`
	SoakUntil time.Time `json:"soakUntil,omitzero"`
	// Unchanged and RolledBackFailed: as the Rollout's, the wave's.
	Unchanged        int `json:"unchanged,omitempty"`
	RolledBackFailed int `json:"rolledBackFailed,omitempty"`
}

// Gate is a wave-gate result.
type Gate struct {
	Wave    string         `json:"wave"`
	Gate    string         `json:"gate"`
	Verdict engine.Verdict `json:"verdict"`
	Reason  string         `json:"reason"`
	At      time.Time      `json:"at"`
}

// Approval is a recorded approval.
type Approval struct {
	By   string `json:"by"`
	Wave string `json:"wave,omitempty"`
	// AssignmentSHA256 is the assignment approved (with the plan hash).
	AssignmentSHA256 string    `json:"assignmentSha256,omitempty"`
	At               time.Time `json:"at"`
}

// RolloutNode is one node's state in a rollout.
type RolloutNode struct {
	ID      string       `json:"id"`
	Wave    string       `json:"wave"`
	Phase   engine.Phase `json:"phase"`
	Attempt int          `json:"attempt"`
	Since   time.Time    `json:"since,omitzero"`
	Reason  string       `json:"reason,omitempty"`
	StepID  string       `json:"stepId,omitempty"`
	Zone    string       `json:"zone,omitempty"`
	Family  string       `json:"family,omitempty"`
	Class   string       `json:"hardwareClass,omitempty"`
	// Unchanged: the node succeeded and its step changed nothing.
	Unchanged bool `json:"unchanged,omitempty"`
}

// Tally is the rollout's engine.Tally, unchanged and rolled-back failed
// nodes included.
func (r Rollout) Tally() engine.Tally {
	t := engine.TallyPhases(r.Counts)
	t.Unchanged, t.RolledBackFailed = r.Unchanged, r.RolledBackFailed
	return t
}

// Tally is the wave's engine.Tally, unchanged and rolled-back failed
// nodes included.
func (w Wave) Tally() engine.Tally {
	t := engine.TallyPhases(w.Counts)
	t.Unchanged, t.RolledBackFailed = w.Unchanged, w.RolledBackFailed
	return t
}

// RolloutList lists rollouts, newest first.
type RolloutList struct {
	Rollouts []Rollout `json:"rollouts"`
}

// CommandRequest is the body of approve, pause, resume, abort, rollback
// and resolve. Send If-Match with the rollout's version.
type CommandRequest struct {
	Reason string `json:"reason,omitempty"`
	// Wave: approve a named wave; rollback only that wave.
	Wave string `json:"wave,omitempty"`
	// Node and Resolution (retry, quarantine, skip): resolve one node.
	Node       string `json:"node,omitempty"`
	Resolution string `json:"resolution,omitempty"`
}

// AuditEntry is one audit log entry.
type AuditEntry struct {
	Seq     int64           `json:"seq"`
	At      time.Time       `json:"at"`
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Object  string          `json:"object"`
	Rollout string          `json:"rollout,omitempty"`
	Detail  json.RawMessage `json:"detail,omitempty"`
	Hash    string          `json:"hash"`
}

// AuditList is a page of audit entries.
type AuditList struct {
	Entries []AuditEntry `json:"entries"`
	Next    int64        `json:"next,omitempty"` // pass as ?after= for the next page
	// Before, with ?order=newest, is what to pass as ?before= for the
	// next (older) page.
	Before int64 `json:"before,omitempty"`
}

// AuditVerification is the result of verifying the audit chain.
type AuditVerification struct {
	OK       bool   `json:"ok"`
	Entries  int64  `json:"entries"`
	Head     string `json:"head"`
	FirstBad int64  `json:"firstBad,omitempty"`
	Problem  string `json:"problem,omitempty"`
	// Checkpoint is the size of the latest signed checkpoint the server
	// checked with its audit key; Root the Merkle tree root recomputed
	// from the entries (base64).
	Checkpoint int64  `json:"checkpoint,omitempty"`
	Root       string `json:"root,omitempty"`
}

// Event is one Server-Sent Event payload: an audit entry as it is
// appended (event type = its Action).
type Event = AuditEntry

// LineRequest stops the line fleet-wide or lifts the stop; Reason is
// recorded in the audit log.
type LineRequest struct {
	Reason string `json:"reason"`
}

// LineStatus is the state of the fleet-wide stop-the-line and what is
// still in flight: the nodes of active rollouts with a step out on their
// agent. "Nothing in flight" (InFlight 0) is the confirmation that a stop
// took: nothing runs and nothing will start.
type LineStatus struct {
	Stopped bool      `json:"stopped"`
	Reason  string    `json:"reason,omitempty"`
	By      string    `json:"by,omitempty"`
	At      time.Time `json:"at,omitzero"`
	// Already: a stop was already in force (the answer to a stop only).
	Already bool `json:"already,omitempty"`
	// Cancelled and CancelRequested count the steps not begun that the
	// stop cancelled: at once (never handed out) or by asking their
	// agents (the answer to a stop only).
	Cancelled       int           `json:"cancelled,omitempty"`
	CancelRequested int           `json:"cancelRequested,omitempty"`
	InFlight        int           `json:"inFlight"`
	Rollouts        []LineRollout `json:"rollouts"`
}

// LineRollout lists one rollout's nodes in flight.
type LineRollout struct {
	ID    string     `json:"id"`
	Nodes []LineNode `json:"nodes"`
}

// LineNode is a node in flight; CancelRequested says its agent has yet
// to acknowledge a cancel of a step it had not begun.
type LineNode struct {
	ID              string       `json:"id"`
	Phase           engine.Phase `json:"phase"`
	CancelRequested bool         `json:"cancelRequested,omitempty"`
}
