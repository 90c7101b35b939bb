// Package store owns drover's persistent state: nodes, rollouts with their
// per-node and per-wave state, dispatched steps, gate results, approvals,
// the audit log (hash-chained, and a Merkle tree with signed checkpoints)
// and leadership. One contract, two backends:
// SQLite (modernc.org/sqlite, the default, one server) and PostgreSQL (pgx,
// several servers sharing one database). The conformance suite in
// storetest runs against both.
//
// Every method that changes state appends its audit entries in the same
// transaction as the change. Methods return ErrNotFound, ErrConflict or
// ErrFenced (wrapped; match with errors.Is) as documented on Store.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/drover-dev/drover/internal/auditlog"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
)

var (
	// ErrNotFound: the node, rollout or step does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the record changed since it was read (version or
	// expected-state mismatch), or a unique key (rollout ID, step ID)
	// already exists. Nothing was written.
	ErrConflict = errors.New("conflict")
	// ErrFenced: the caller's leadership term is no longer current; a newer
	// leader exists. Nothing was written.
	ErrFenced = errors.New("fenced: leadership term is stale")
	// ErrSchemaTooNew: the database was migrated by a newer drover.
	ErrSchemaTooNew = errors.New("database schema is newer than this drover")
	// ErrForbidden: the actor may not do this (an author approving their
	// own rollout). Nothing was written.
	ErrForbidden = errors.New("forbidden")
	// ErrAuditTampered: a store holding an audit key refuses to append to
	// a log that its latest signed checkpoint does not cover exactly
	// (entries appended or deleted behind its back, tree hashes
	// rewritten, a checkpoint by another key): signing on would vouch for
	// them. Nothing was written; VerifyAudit says what is wrong.
	ErrAuditTampered = errors.New("audit log tampered with")
)

// NodeRecord is a managed node as stored.
type NodeRecord struct {
	ID           string
	Facts        fleet.Facts
	Labels       map[string]string
	Version      int64 // bumped on every change of facts or labels
	AgentVersion string
	Protocol     int
	RegisteredAt time.Time
	LastSeen     time.Time
	LeaseUntil   time.Time // agent silent past this: its in-flight nodes become unknown
}

// Node returns the fleet view of the record.
func (r NodeRecord) Node() *fleet.Node {
	return &fleet.Node{ID: r.ID, Facts: r.Facts, Labels: r.Labels}
}

// Rollout is a rollout's header. The plan is stored as the exact bytes the
// author submitted; PlanSHA256 binds approvals to them.
type Rollout struct {
	ID            string
	Name          string
	Author        string
	Plan          []byte
	PlanSHA256    string
	State         engine.RolloutState
	Reason        string
	RollbackScope string
	Seed          uint64
	Version       int64 // bumped by every human command and scheduler commit
	// NodeRev is the revision of the latest change to any of the
	// rollout's nodes (by the scheduler, an agent's report, a lease
	// expiry or a human command); 0 before any. LoadRolloutSince(NodeRev)
	// returns the nodes changed since.
	NodeRev   int64
	CreatedAt time.Time
	UpdatedAt time.Time
	// ApprovalsNeeded is how many distinct approvers other than the
	// author the start needs, fixed at creation (the larger of the plan's
	// and the server's approval floor; 0: the plan's). ApprovalFloor
	// says why the floor raised it ("" when it did not).
	ApprovalsNeeded int
	ApprovalFloor   string
	// Times are the moments the rollout metrics are measured between,
	// kept by the store (CreateRollout stores them as given).
	Times RolloutTimes
	// AssignmentSHA256 is the hash of the rollout's node-to-wave list
	// (rehearsal.Hash); approvals bind to it and to PlanSHA256, and
	// count only while both are the rollout's. "" for rollouts created
	// before assignments were hashed.
	AssignmentSHA256 string
	// DryRun is the ID of the dry run the rollout was created from ("":
	// none).
	DryRun string
	// Commands is everything the rollout can cause to run on its nodes
	// (preflight.Commands): CreateRollout records it in the creation's
	// audit entry; it is not stored with the rollout.
	Commands []string
	// PolicyApproval names the policy that approved the start
	// (remediation's "baseline NAME autoApprove.security"), "" none:
	// recorded in the creation's audit entry as approved_by_policy; not
	// stored with the rollout.
	PolicyApproval string
}

// RolloutNode is one target node's state in a rollout. Index is its
// position in assignment order (engine.Assignment order), which Decide's
// input preserves.
type RolloutNode struct {
	NodeID string
	Index  int
	State  engine.NodeState
	StepID string // current or last step, "" before any
}

// Wave is a wave's stored status.
type Wave struct {
	Name string
	engine.WaveStatus
}

// StepKind is apply or rollback.
type StepKind string

const (
	StepApply    StepKind = "apply"
	StepRollback StepKind = "rollback"
)

// Step is a dispatched unit of work for one agent. ID is the engine's
// step ID (the idempotency key); Term is the leadership term that
// dispatched it (the fencing number agents see).
type Step struct {
	ID          string
	Rollout     string
	NodeID      string
	Kind        StepKind
	Attempt     int
	Term        int64
	Payload     json.RawMessage // what the agent executes (api.StepPayload)
	CreatedAt   time.Time
	DeliveredAt time.Time // zero until first handed to the agent
	FinishedAt  time.Time // zero until a final report
	Result      string    // final phase reported: succeeded, failed, rolled-back...
	// CancelRequested is when a cancel was requested for the handed-out
	// step (zero if none): the agent must acknowledge it if it has not
	// begun the step, and never begin it.
	CancelRequested time.Time
}

// NodeUpdate changes one rollout node. The store applies it only if the
// stored phase and attempt still equal From's (compare-and-set); otherwise
// the whole commit fails with ErrConflict.
type NodeUpdate struct {
	NodeID string
	From   engine.NodeState
	To     engine.NodeState
	StepID string // new current step, "" to keep
}

// Commit is the scheduler's write for one decision: the new rollout state,
// node and wave changes, new steps to dispatch and their audit entries,
// applied in one transaction iff the rollout's Version and the leadership
// Term are still current. Granting a slot (the node's queued state),
// marking the node and recording the dispatch (the Step row) are thus one
// transaction.
type Commit struct {
	Rollout       string
	Version       int64 // expected current version
	Term          int64 // caller's leadership term
	Now           time.Time
	State         engine.RolloutState
	Reason        string
	RollbackScope string
	Nodes         []NodeUpdate
	Waves         []Wave
	Steps         []Step
	Audit         []AuditEntry // actor "scheduler"; Seq, Prev and Hash are set by the store
	// Timings are the apply steps this commit settles healthy, for the
	// step history: the store completes each from its step (the agent's
	// start and its timing split) and writes it with the commit.
	Timings []StepTiming
	// InTx, when set, is called inside the commit's transaction after
	// every write, just before the transaction commits (the server's
	// inside-commit failpoint; nil in production).
	InTx func()
}

// StepTiming is one apply step's observed times (see the step_timings
// table). The scheduler gives StepID, Rollout, NodeID, the keys,
// DispatchedAt, HealthyAt and SettledAt; the store fills StartedAt (the
// agent's first report, else DispatchedAt) and the split of
// StartedAt..HealthyAt (Execution, Reboot, Probe) from the agent's
// timing, all of it in Execution when the agent sent none.
type StepTiming struct {
	StepID, Rollout, NodeID                    string
	Action, OSFamily, OSVersion, HardwareClass string
	DispatchedAt, StartedAt, HealthyAt         time.Time
	SettledAt                                  time.Time
	Execution, Reboot, Probe                   time.Duration
}

// Report is an agent's report about one step. Reports are idempotent: a
// report repeating the stored state changes nothing; a report for a step
// that is not the node's current step is ignored (ErrConflict).
type Report struct {
	StepID       string
	NodeID       string
	Phase        engine.Phase // running, verifying, succeeded, failed, rolled-back, interrupted, cancelled
	Gate         engine.Verdict
	HealthySince time.Time
	Reason       string
	Evidence     json.RawMessage // driver snapshot and outcome, kept with the step
	// Timing is the agent's split of the step's time (JSON of
	// api.StepTiming), kept with the step; nil keeps what is stored.
	Timing json.RawMessage
	// At is when the step reached Phase, by the agent (the server clamps
	// it to its clock window); ClaimedAt, when set, is the agent's time as
	// it sent it, recorded in the audit detail as agent_at.
	At, ClaimedAt time.Time
	// LeaseUntil, when set, makes the report the agent's heartbeat too:
	// the node's last_seen becomes Seen and its lease LeaseUntil, in the
	// same transaction, unless the report is refused. Seen, when set, is
	// the server's receive time and the time of the report's audit
	// entries: the server's clock, not the agent's, dates the log.
	Seen, LeaseUntil time.Time
}

// Command is a human action on a rollout.
type Command struct {
	Actor  string
	Action string // approve, pause, resume, abort, rollback, resolve, stop
	Wave   string // approve: the wave ("" for the start); rollback: scope
	Reason string
	// Resolve: the node and what to do with it (retry, quarantine, skip).
	NodeID     string
	Resolution engine.Phase
}

// Approval is a stored approval, bound to the plan's hash and the
// assignment's (what the approver saw).
type Approval struct {
	By               string
	Wave             string
	PlanSHA256       string
	AssignmentSHA256 string
	At               time.Time
}

// DryRun is a dry run kept so that a rollout can be created from it:
// the exact plan, the seed it drew, and its assignment (Assignment is
// the server's encoding of a rehearsal.Record, opaque to the store;
// AssignmentSHA256 its hash). Dry runs are
// kept DryRunMaxAge, at most the DryRunsKept newest.
type DryRun struct {
	ID               string
	Name             string
	Author           string
	Plan             []byte
	PlanSHA256       string
	Seed             uint64
	Assignment       []byte
	AssignmentSHA256 string
	CreatedAt        time.Time
}

// Dry run retention: CreateDryRun deletes those older than DryRunMaxAge
// and all but the DryRunsKept newest.
const (
	DryRunsKept  = 500
	DryRunMaxAge = 30 * 24 * time.Hour
)

// GateResult is a stored wave-gate evaluation.
type GateResult struct {
	engine.GateResult
	Rollout string
}

// AuditEntry is one line of the append-only log. Hash is
// SHA-256(Prev || canonical encoding of the entry without Hash), so that
// editing, deleting or reordering any entry breaks the chain.
type AuditEntry struct {
	Seq     int64
	At      time.Time
	Actor   string // user, "scheduler", "agent:NODE"
	Action  string // rollout.create, rollout.pause, node.phase, wave.state, ...
	Object  string // rollout/ID, node/ID
	Rollout string // "" when not about a rollout
	Detail  json.RawMessage
	Prev    []byte
	Hash    []byte
}

// AuditQuery selects a page of the audit log, oldest first unless
// Newest.
type AuditQuery struct {
	After   int64  // entries with Seq > After
	Before  int64  // entries with Seq < Before, when positive
	Limit   int    // at most this many; 0 means 500
	Rollout string // only this rollout's entries, when set
	// Newest returns the newest Limit entries that match, newest first
	// (the next page is Before the last one returned).
	Newest bool
	// MaxBytes, when positive, ends the page before the entry that would
	// take the page's details past it; the first entry is returned
	// whatever its size. It bounds a page's memory, however large
	// entries are.
	MaxBytes int
}

// AuditVerification is the result of VerifyAudit.
type AuditVerification struct {
	OK      bool
	Entries int64
	Head    []byte
	// FirstBad is the Seq of the first entry whose hash or link is wrong,
	// or of the first gap, or of the first entry that no signed
	// checkpoint vouches for; 0 when OK.
	FirstBad int64
	Problem  string
	// Checkpoint is the size of the latest checkpoint whose signature was
	// checked with the store's audit key (0 without a key, or when the
	// log is empty); Root is the Merkle tree root recomputed from the
	// entries (the zero hash for an empty log).
	Checkpoint int64
	Root       tlog.Hash
}

// AuditCheckpoint is a signed head of the audit log's Merkle tree
// (golang.org/x/mod/sumdb/tlog; leaf i is entry Seq i+1, hashed as
// tlog.RecordHash(AuditRecord(e))). Note is a golang.org/x/mod/sumdb/note
// signed note whose text is tlog.FormatTree({Size, Root}).
type AuditCheckpoint struct {
	Size int64
	Root tlog.Hash
	Note []byte
	At   time.Time
}

// RolloutData is everything the scheduler loads to decide one rollout.
type RolloutData struct {
	Rollout   Rollout
	Nodes     []RolloutNode // in Index order
	Waves     []Wave
	Gates     []GateResult // latest per (wave, gate)
	Approvals []Approval   // only those bound to the current plan and assignment hashes
}

// Heartbeat is an agent's sign of life: last seen at Seen, its lease
// extended to LeaseUntil.
type Heartbeat struct {
	NodeID           string
	Seen, LeaseUntil time.Time
}

// NodeFilter pages through nodes in ID order.
type NodeFilter struct {
	After string // return IDs greater than this
	Limit int    // 0 means 500
}

// Store is the persistence contract. All methods are safe for concurrent
// use and honour ctx cancellation.
type Store interface {
	// UpsertNode registers or refreshes a node (facts, agent version,
	// protocol, lease). Labels given are merged over stored ones only on
	// first registration; later label changes go through SetNodeLabels.
	UpsertNode(ctx context.Context, n NodeRecord) (NodeRecord, error)
	GetNode(ctx context.Context, id string) (NodeRecord, error) // ErrNotFound
	ListNodes(ctx context.Context, f NodeFilter) ([]NodeRecord, error)
	// SetNodeLabels replaces a node's labels if its Version is ifVersion
	// (ErrConflict otherwise; ifVersion 0 skips the check).
	SetNodeLabels(ctx context.Context, id string, labels map[string]string, ifVersion int64, actor string) (NodeRecord, error)
	// TouchNode records an agent's heartbeat and extends its lease.
	TouchNode(ctx context.Context, id string, seen, leaseUntil time.Time) error
	// TouchNodes records many heartbeats in one transaction and returns
	// the IDs of the nodes that are not registered (they change nothing).
	TouchNodes(ctx context.Context, beats []Heartbeat) (missing []string, err error)
	// DeleteNode removes a node (an operator's decision); ErrNotFound.
	DeleteNode(ctx context.Context, id, actor string) error

	// AskPreflight records the asks of a rollout's (or dry run's) node
	// pre-flight; a node asked before keeps its first ask.
	AskPreflight(ctx context.Context, rollout string, asks []PreflightAsk, now, deadline time.Time) error
	// OpenPreflights returns the request payloads of node's unanswered
	// pre-flights still before their deadline, oldest first.
	OpenPreflights(ctx context.Context, node string, now time.Time) ([][]byte, error)
	// AnswerPreflight records a node's answer: ErrNotFound if it was not
	// asked, ErrConflict if it answered already.
	AnswerPreflight(ctx context.Context, rollout, node string, ok bool, reason string, report []byte, at time.Time) error
	// Preflights lists a rollout's (or dry run's) node pre-flights;
	// ErrNotFound when none was asked.
	Preflights(ctx context.Context, rollout string) ([]Preflight, error)
	// PreflightTimes returns how long the newest limit node pre-flights
	// that agents answered took, ask to answer, newest first (the
	// server's own answers, given at the ask, are left out).
	PreflightTimes(ctx context.Context, limit int) ([]time.Duration, error)

	// AddEvidence stores an evidence bundle (hashed, compressed, audited
	// with its hash), marks the on-demand request it answers (ErrNotFound,
	// ErrConflict) and prunes bundles past keep.
	AddEvidence(ctx context.Context, r EvidenceRecord, keep EvidenceRetention) (EvidenceRecord, error)
	// ListEvidence lists a node's bundles (of a rollout when not ""),
	// newest first, without bodies.
	ListEvidence(ctx context.Context, node, rollout string) ([]EvidenceRecord, error)
	// GetEvidence returns a bundle with its body; ErrNotFound.
	GetEvidence(ctx context.Context, id string) (EvidenceRecord, error)
	// AskEvidence records an on-demand evidence request (audited).
	AskEvidence(ctx context.Context, a EvidenceAsk) error
	// OpenEvidenceRequests returns the payloads of a node's unanswered
	// evidence requests before their deadline, oldest first.
	OpenEvidenceRequests(ctx context.Context, node string, now time.Time) ([][]byte, error)
	// GetEvidenceRequest returns a request; ErrNotFound.
	GetEvidenceRequest(ctx context.Context, id string) (EvidenceAsk, error)

	// CreateRollout stores a new rollout with its assignment (nodes in
	// assignment order, waves pending). ErrConflict if the ID exists.
	CreateRollout(ctx context.Context, r Rollout, nodes []RolloutNode, waves []Wave, actor string) (Rollout, error)
	GetRollout(ctx context.Context, id string) (Rollout, error) // ErrNotFound
	ListRollouts(ctx context.Context) ([]Rollout, error)        // newest first
	// ListRolloutTimes returns every rollout's state and times, oldest
	// first: what the server's rollout metrics are computed from.
	ListRolloutTimes(ctx context.Context) ([]RolloutTimeline, error)
	// ActiveNodePhases counts the nodes of each rollout not ended by
	// phase (rollout ID -> phase -> nodes).
	ActiveNodePhases(ctx context.Context) (map[string]map[engine.Phase]int, error)
	// ActiveRollouts lists IDs of rollouts not in a terminal state.
	ActiveRollouts(ctx context.Context) ([]string, error)
	LoadRollout(ctx context.Context, id string) (RolloutData, error) // ErrNotFound
	// LoadRolloutSince is LoadRollout with only the nodes whose latest
	// change came after node revision rev (Rollout.NodeRev of an earlier
	// load); every node when rev < 0. The header, waves, gates and
	// approvals are whole.
	LoadRolloutSince(ctx context.Context, id string, rev int64) (RolloutData, error)
	// ApplyCommit writes one decision atomically. ErrConflict if the
	// rollout version moved or a node's CAS failed or a step ID exists,
	// or if a step would dispatch to a node another rollout or holder
	// holds or fill a fleet disruption budget domain past its limit
	// (checked in the same transaction: see FleetSafety); ErrFenced if
	// Term is not the current leadership term.
	ApplyCommit(ctx context.Context, c Commit) (newVersion int64, err error)
	// Command applies a human action if the rollout's Version is ifVersion
	// (ErrConflict otherwise; 0 skips the check) and audits it.
	Command(ctx context.Context, id string, ifVersion int64, cmd Command, now time.Time) (Rollout, error)
	// CreateDryRun stores a dry run, audits it, and prunes old ones
	// (DryRunsKept, DryRunMaxAge). ErrConflict if the ID exists.
	CreateDryRun(ctx context.Context, d DryRun) error
	GetDryRun(ctx context.Context, id string) (DryRun, error) // ErrNotFound
	// AddGateResults stores wave-gate evaluations (audited when the
	// verdict of a gate changes).
	AddGateResults(ctx context.Context, rollout string, rs []engine.GateResult) error
	// UnchangedNodes lists the rollout's succeeded nodes whose apply step
	// changed nothing: in its evidence every action found nothing to
	// change at pre-flight or lists no change in its outcome (the node
	// was already up to date). Nodes without evidence are not listed.
	UnchangedNodes(ctx context.Context, rollout string) ([]string, error)
	// RolledBackFailed lists the rollout's rolled-back nodes whose apply
	// step failed: they count as failures in the reason that rolled them
	// back, though their phase is now rolled-back.
	RolledBackFailed(ctx context.Context, rollout string) ([]string, error)
	// RolledBackApplies says how the apply of each of the rollout's
	// rolled-back nodes ended: engine.PhaseFailed when an apply step of
	// the node failed, else engine.PhaseSucceeded when one succeeded; a
	// node rolled back before its apply ended is not listed
	// (engine.Input.Before).
	RolledBackApplies(ctx context.Context, rollout string) (map[string]engine.Phase, error)
	// LatestRolloutOf returns the newest rollout (by creation) that
	// dispatched a step to node; ErrNotFound when none did.
	LatestRolloutOf(ctx context.Context, node string) (string, error)
	// NodeSteps returns the steps rollout dispatched to node, oldest
	// first, with their results and evidence; none for a node or rollout
	// that does not exist.
	NodeSteps(ctx context.Context, rollout, node string) ([]StepEvidence, error)

	// PendingSteps returns the node's steps not yet finished, oldest first,
	// and marks them delivered.
	PendingSteps(ctx context.Context, nodeID string, now time.Time) ([]Step, error)
	// ReportStep applies an agent's report to the rollout node whose
	// current step it is, records the evidence, and audits the change.
	ReportStep(ctx context.Context, r Report) error
	// StepTimings returns the step history settled since since, newest
	// first, at most limit rows.
	StepTimings(ctx context.Context, since time.Time, limit int) ([]StepTiming, error)
	// SavePrediction stores the prediction made at a rollout's creation
	// (opaque JSON), replacing any; PredictionOf returns it (ErrNotFound
	// when none).
	SavePrediction(ctx context.Context, rollout string, prediction []byte, at time.Time) error
	PredictionOf(ctx context.Context, rollout string) ([]byte, error)
	// EndedPredictions returns the stored predictions of the rollouts
	// that ended, oldest rollout first: what the prediction error metric
	// is computed from.
	EndedPredictions(ctx context.Context) ([]EndedPrediction, error)
	// RestartLeases extends every lease ending before until to until:
	// a new leader calls it on its first tick (until = now + one lease
	// window) so that its predecessor's downtime is not counted against
	// the agents. ErrFenced if term is not current.
	RestartLeases(ctx context.Context, until time.Time, term int64) (int, error)
	// ExpireLeases marks in-flight nodes (queued, running, verifying,
	// rolling-back) of active rollouts whose agent's lease ended before
	// now as unknown, and returns their IDs. Only the leader calls it.
	ExpireLeases(ctx context.Context, now time.Time, term int64) ([]string, error)

	// StopLine stops the line fleet-wide (see LineStop): ApplyCommit
	// refuses every commit with steps while it is in force
	// (ErrLineStopped), and the steps not begun of every active rollout
	// are cancelled in the same transaction. Stopping a stopped line
	// changes nothing and reports already.
	StopLine(ctx context.Context, actor, reason string, now time.Time) (stop LineStop, already bool, err error)
	// LiftLine ends the stop; ErrConflict when the line runs.
	LiftLine(ctx context.Context, actor, reason string, now time.Time) (LineStop, error)
	// GetLineStop returns the stop in force; false while the line runs.
	GetLineStop(ctx context.Context) (LineStop, bool, error)
	// InFlight lists the nodes of active rollouts with a step out on
	// their agent, by rollout in assignment order.
	InFlight(ctx context.Context) ([]InFlight, error)

	// ListAudit returns entries with Seq > after, oldest first; rollout
	// filters by rollout ID when non-empty.
	ListAudit(ctx context.Context, after int64, limit int, rollout string) ([]AuditEntry, error)
	// AuditPage is ListAudit bounded in bytes as well (AuditQuery); more
	// reports that the page ended at a limit, so entries may follow.
	AuditPage(ctx context.Context, q AuditQuery) (entries []AuditEntry, more bool, err error)
	// AuditHead returns the Seq of the newest entry; 0 for an empty log.
	AuditHead(ctx context.Context) (int64, error)
	// VerifyAudit recomputes the hash chain and the Merkle tree from the
	// entries and checks them against the stored tree and the signed
	// checkpoints (signatures checked with the key given to SetAuditKey).
	// It reports the first bad entry; a failed check is not an error.
	VerifyAudit(ctx context.Context) (AuditVerification, error)
	// SetAuditKey makes every later transaction that appends audit
	// entries also store a checkpoint of the new tree signed by k, in the
	// same transaction, and VerifyAudit check checkpoints with k. A log
	// with entries but no checkpoint yet is adopted by the first signed
	// append (an "audit.adopt" entry records it). nil stops signing. It
	// does no I/O.
	SetAuditKey(k *auditlog.Key)
	// LatestAuditCheckpoint returns the newest signed checkpoint;
	// ErrNotFound when none was signed yet.
	LatestAuditCheckpoint(ctx context.Context) (AuditCheckpoint, error)
	// AuditTreeProof proves that the tree of size newSize extends the one
	// of size oldSize (1 <= oldSize <= newSize); AuditRecordProof proves
	// that entry seq is leaf seq-1 of the tree of size size. ErrNotFound
	// when a size exceeds the tree.
	AuditTreeProof(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error)
	AuditRecordProof(ctx context.Context, seq, size int64) (tlog.RecordProof, error)

	// OpenWebhook registers a webhook subscription the first time it is
	// seen: it is sent the events committed from then on.
	OpenWebhook(ctx context.Context, name string, now time.Time) error
	// NextWebhookEvents returns, for up to limit streams (rollouts, and
	// "" for fleet-wide events), the oldest outbox event the
	// subscription has not acknowledged and its filter (events; empty:
	// all) selects, oldest first. Every audit entry that is a webhook
	// event (WebhookEventOf) is in the outbox from the commit that
	// appended it.
	NextWebhookEvents(ctx context.Context, name string, events []string, limit int) ([]OutboxEvent, error)
	// AckWebhook moves the subscription's cursor of stream to event id
	// (never back); ErrFenced if term is not the current leadership term.
	AckWebhook(ctx context.Context, name, stream string, id, term int64, now time.Time) error
	// PendingWebhook counts the subscription's unacknowledged events.
	PendingWebhook(ctx context.Context, name string, events []string) (WebhookPending, error)
	// PruneWebhookOutbox deletes outbox rows committed before before,
	// except each stream's newest.
	PruneWebhookOutbox(ctx context.Context, before time.Time) (int64, error)

	// Campaign tries to become the leader. It returns the new term (> every
	// earlier term) and true on success; false while another live server
	// holds leadership. SQLite: the single server always wins. PostgreSQL:
	// a session advisory lock held on a dedicated connection; losing the
	// connection loses leadership (Leading reports it).
	Campaign(ctx context.Context, serverID string) (term int64, ok bool, err error)
	// Leading reports whether this store still holds leadership.
	Leading(ctx context.Context) bool
	// Resign releases leadership if held.
	Resign(ctx context.Context) error

	Close() error
}
