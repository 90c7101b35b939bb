// Package api owns drover's wire formats: the agent protocol between
// `drover agent` and the server, and the REST API v1 types with the Go
// client the CLI uses. Both sides import these types; nothing else
// crosses the wire.
package api

import (
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/evidence"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// ProtocolVersion is the agent protocol version. It only increases; a
// server serves agents of versions [MinProtocolVersion, ProtocolVersion].
//
// History:
//
//	1 — register, long-poll for steps, report progress and results.
//	2 — the agent reports its policy in its facts (facts.agent: accepted
//	    action kinds, command probes, probe output, artifact
//	    verification) and refuses apply steps with command probes it
//	    does not allow; probes may name a signed artifact (probe.artifact,
//	    probe.args) and ask for output (probe.includeOutput). A server
//	    treats a protocol 1 node as one that would run any command probe
//	    without its node's consent, and refuses to create such a rollout.
//	    Cancellation and interruption: a poll answer lists in Cancel the
//	    handed-out steps the server cancelled (abort, stop, stop-the-line);
//	    the agent acknowledges each it has not begun with a cancelled
//	    report and never begins it, and reports the real outcome of one
//	    it began. A step the agent's journal shows begun and unfinished at
//	    start (a crash or a reboot the step did not request) is reported
//	    interrupted, with what the journal proves, after undoing what it
//	    had begun. Agents of protocol 1 are still served for actions: they
//	    never see a cancel (their node stays queued with the cancel
//	    requested until the progress deadline or an operator resolves it).
//	3 — a healthy verifying report of an apply step may carry Timing (its
//	    actions, reboot and probes apart), which a server of protocol 2
//	    refuses as an unknown field; step timings of older agents are
//	    taken from the report times alone.
//	4 — node pre-flight: a poll answer lists in Preflights the
//	    pre-flights asked of the node (a rollout's, before its first
//	    wave, or a dry run's); the agent runs each through its drivers
//	    (Preflight, then Simulate where the package manager can), changes
//	    nothing, and posts a PreflightReport to PathPreflight. Agents of
//	    protocols 1 to 3 are never asked: the server fails their node's
//	    pre-flight at once, naming the protocol. Everything else is as in
//	    protocol 3.
//	5 — evidence: when a step's actions or its node probes fail, the
//	    agent captures an evidence bundle (internal/evidence) before
//	    anything is rolled back and posts it to PathEvidence; a poll
//	    answer lists in Evidence the captures asked of the node on demand,
//	    each answered once with a bundle. Agents of protocols 1 to 4 are
//	    never asked: an on-demand request for their node is refused,
//	    naming the protocol. Everything else is as in protocol 4.
const (
	ProtocolVersion    = 5
	MinProtocolVersion = 1
	// PreflightProtocol is the first protocol whose agents run node
	// pre-flights.
	PreflightProtocol = 4
	// EvidenceProtocol is the first protocol whose agents capture
	// evidence bundles.
	EvidenceProtocol = 5
)

// Agent channel paths, under the server's agent listener.
const (
	PathRegister = "/v1/agent/register"
	PathPoll     = "/v1/agent/poll"
	PathReport   = "/v1/agent/report"
	// PathPreflight takes a node pre-flight's report (protocol 4).
	PathPreflight = "/v1/agent/preflight"
	// PathEvidence takes an evidence bundle (protocol 5).
	PathEvidence = "/v1/agent/evidence"
)

// HeaderProtocol carries the sender's protocol version on every agent
// request and response.
const HeaderProtocol = "Drover-Protocol"

// RegisterRequest announces an agent and its node's facts. The node's
// identity comes from the connection (its client certificate, or its
// token until enrolment lands), never from this body; NodeID must match it.
type RegisterRequest struct {
	NodeID       string            `json:"nodeId"`
	Facts        fleet.Facts       `json:"facts"`
	Labels       map[string]string `json:"labels,omitempty"` // initial labels, used only on first registration
	AgentVersion string            `json:"agentVersion"`
	Accepts      []plan.ActionKind `json:"accepts"` // action kinds this agent's allow-list permits
}

// RegisterResponse tells the agent its lease and polling parameters.
type RegisterResponse struct {
	NodeID          string        `json:"nodeId"`
	LeaseSeconds    int           `json:"leaseSeconds"`
	PollWaitSeconds int           `json:"pollWaitSeconds"` // the server holds a poll this long when idle
	Heartbeat       time.Duration `json:"heartbeat"`
}

// PollRequest is a long poll for work; it is also the heartbeat. Facts is
// set only when they changed since the last accepted poll.
type PollRequest struct {
	NodeID string       `json:"nodeId"`
	BootID string       `json:"bootId,omitempty"`
	Facts  *fleet.Facts `json:"facts,omitempty"`
	// Working lists the step IDs the agent is executing now and, from
	// protocol 2, those it holds queued: the server does not hand them out
	// again.
	Working []string `json:"working,omitempty"`
}

// PollResponse carries the steps to execute, oldest first. A step already
// in the agent's journal must not be executed again (see agent).
type PollResponse struct {
	Steps        []StepPayload `json:"steps"`
	LeaseSeconds int           `json:"leaseSeconds"`
	// Cancel lists step IDs the server cancelled (protocol 2): the agent
	// reports each it has not begun as cancelled and never begins it; one
	// it began runs to its real outcome.
	Cancel []string `json:"cancel,omitempty"`
	// Preflights lists the node pre-flights asked of the node and not
	// answered yet (protocol 3). They are listed again on every poll
	// until answered.
	Preflights []PreflightRequest `json:"preflights,omitempty"`
	// Evidence lists the on-demand evidence captures asked of the node
	// and not answered yet (protocol 5), listed again on every poll until
	// answered.
	Evidence []EvidenceRequest `json:"evidence,omitempty"`
}

// EvidenceRequest asks a node for an evidence bundle now (on demand).
// Units, Names and Endpoints widen the capture (the units whose logs and
// linkage to take, the names to resolve, the host:port to handshake
// with).
type EvidenceRequest struct {
	ID        string   `json:"id"`
	Units     []string `json:"units,omitempty"`
	Binaries  []string `json:"binaries,omitempty"`
	Names     []string `json:"names,omitempty"`
	Endpoints []string `json:"endpoints,omitempty"`
	// CAFiles: endpoint -> CA bundle on the node (EvidenceAsk.CAFiles).
	CAFiles map[string]string `json:"caFiles,omitempty"`
}

// EvidenceReport carries one bundle to the server: Request names the
// on-demand request it answers ("" for a failure's bundle, which names
// its Step and Rollout in the bundle).
type EvidenceReport struct {
	NodeID  string           `json:"nodeId"`
	Request string           `json:"request,omitempty"`
	Bundle  *evidence.Bundle `json:"bundle"`
}

// PreflightRequest asks a node what a change would do, changing nothing.
// Rollout names the rollout (or dry run) asking; a node answers each at
// most once.
type PreflightRequest struct {
	Rollout string        `json:"rollout"`
	Actions []plan.Action `json:"actions"`
}

// PreflightReport is a node's answer to a PreflightRequest: OK when every
// action's pre-flight passed; Reasons say why not.
type PreflightReport struct {
	Rollout string            `json:"rollout"`
	NodeID  string            `json:"nodeId"`
	OK      bool              `json:"ok"`
	Reasons []string          `json:"reasons,omitempty"`
	Actions []PreflightAction `json:"actions"`
	// Reboot: the change would need a reboot on this node.
	Reboot bool `json:"reboot,omitempty"`
	// BytesNeeded totals the actions' downloads, BytesFree is the least
	// free space measured (0 when not measured).
	BytesNeeded int64 `json:"bytesNeeded,omitempty"`
	BytesFree   int64 `json:"bytesFree,omitempty"`
	// Took is how long the pre-flight ran on the node.
	Took time.Duration `json:"took"`
	At   time.Time     `json:"at"`
}

// PreflightAction is one action's pre-flight on one node.
type PreflightAction struct {
	Action string `json:"action"` // as the agent describes it
	Driver string `json:"driver,omitempty"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"` // the driver's refusal
	// Summary says what would change; None: nothing (already in place).
	Summary string `json:"summary,omitempty"`
	None    bool   `json:"none,omitempty"`
	// Planned is what the package manager would do (apt-get -s): every
	// package installed, upgraded, downgraded or removed.
	Planned     []PlannedChange `json:"planned,omitempty"`
	Held        []string        `json:"held,omitempty"`
	BytesNeeded int64           `json:"bytesNeeded,omitempty"`
	BytesFree   int64           `json:"bytesFree,omitempty"`
	Reboot      bool            `json:"reboot,omitempty"`
}

// PlannedChange is one package operation a package manager would do.
type PlannedChange struct {
	Op   string `json:"op"` // install | upgrade | downgrade | remove
	Name string `json:"name"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// StepPayload is one step for one node.
type StepPayload struct {
	ID      string            `json:"id"` // idempotency key
	Rollout string            `json:"rollout"`
	Kind    string            `json:"kind"` // apply | rollback
	Attempt int               `json:"attempt"`
	Term    int64             `json:"term"` // fencing: leadership term that dispatched it
	Actions []plan.Action     `json:"actions"`
	Reboot  plan.RebootPolicy `json:"reboot"`
	Probes  []plan.Probe      `json:"probes,omitempty"`
	// MinHealthy is how long probes must keep passing after the step;
	// the agent keeps probing that long and reports a failure if one fails.
	MinHealthy      plan.Duration `json:"minHealthy"`
	HealthyDeadline plan.Duration `json:"healthyDeadline"`
	// Timeout bounds the step's driver work (and its rollback's): the
	// plan's change.timeout. Absent (an older server) means
	// plan.DefaultChangeTimeout.
	Timeout plan.Duration `json:"timeout,omitempty"`
}

// StepReport reports progress or the result of a step. Phases: running
// (started), verifying (applied; Gate and HealthySince describe the
// probes), failed (Reason says why), rolled-back (rollback applied; Gate
// is the node probes' verdict after it: pass, fail for a node still
// unhealthy, which the server keeps as rollback-unhealthy, or empty when
// nothing was probed; older agents send none);
// protocol 2: interrupted (a crash or reboot the step did not request
// stopped it; what began was undone; Reason says what the journal
// proves) and cancelled (a cancelled step the agent had not begun).
type StepReport struct {
	StepID       string         `json:"stepId"`
	NodeID       string         `json:"nodeId"`
	Phase        engine.Phase   `json:"phase"`
	Gate         engine.Verdict `json:"gate,omitempty"`
	HealthySince time.Time      `json:"healthySince,omitzero"`
	Reason       string         `json:"reason,omitempty"`
	BootID       string         `json:"bootId,omitempty"`
	// Evidence is the driver's snapshot (what was there before) and
	// outcome (what changed), kept with the step.
	Evidence map[string]any `json:"evidence,omitempty"`
	At       time.Time      `json:"at"`
	// Timing, on a healthy verifying report of an apply step, splits the
	// time from the agent's start to HealthySince (nil: not measured).
	Timing *StepTiming `json:"timing,omitempty"`
}

// StepTiming is where an apply step's time went on the agent, in
// seconds: its actions (preflight, snapshot, apply, verify), the reboot
// (from its request to the probes' start; 0 without one) and the probes
// until the node was healthy.
type StepTiming struct {
	ExecutionSeconds float64 `json:"executionSeconds"`
	RebootSeconds    float64 `json:"rebootSeconds"`
	ProbeSeconds     float64 `json:"probeSeconds"`
}
