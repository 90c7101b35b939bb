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
	// Preflight (dry run only) asks every target node's agent for its
	// pre-flight of the change before simulating, waiting up to the
	// plan's preflight.timeout (at most DryRunPreflightWait): the
	// rehearsal then replays what each real node answered.
	Preflight bool `json:"preflight,omitempty"`
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

// DryRunResponse is the simulator run against the live inventory.
type DryRunResponse struct {
	Result json.RawMessage `json:"result"`
	Text   string          `json:"text"`
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
	// Asked, Passed, Failed and Waiting count the nodes; a node silent
	// past the deadline counts as failed.
	Asked   int             `json:"asked"`
	Passed  int             `json:"passed"`
	Failed  int             `json:"failed"`
	Waiting int             `json:"waiting"`
	Nodes   []NodePreflight `json:"nodes"`
}

// NodePreflight is one node's pre-flight.
type NodePreflight struct {
	Node string `json:"node"`
	// State is passed, failed, waiting (asked, before the deadline) or
	// no-answer (silent past the deadline).
	State      string    `json:"state"`
	Reason     string    `json:"reason,omitempty"`
	AnsweredAt time.Time `json:"answeredAt,omitzero"`
	// Report is the agent's answer: what each action would do; nil when
	// the server answered itself (an agent too old, an incompatible
	// node) or no answer came.
	Report *PreflightReport `json:"report,omitempty"`
}

// CreateRolloutRequest creates a rollout from a plan.
type CreateRolloutRequest struct {
	Plan string `json:"plan"`
	File string `json:"file,omitempty"`
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
	CreatedAt     time.Time           `json:"createdAt"`
	UpdatedAt     time.Time           `json:"updatedAt"`
	Counts        map[string]int      `json:"counts"` // nodes per phase
	Total         int                 `json:"total"`
	Waves         []Wave              `json:"waves,omitempty"`
	Gates         []Gate              `json:"gates,omitempty"`
	Approvals     []Approval          `json:"approvals,omitempty"`
	Waits         []engine.Wait       `json:"waits,omitempty"`
	Uncovered     []engine.Stratum    `json:"uncovered,omitempty"`
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
	By   string    `json:"by"`
	Wave string    `json:"wave,omitempty"`
	At   time.Time `json:"at"`
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
