package api

import (
	"encoding/json"
	"time"
)

// Webhook event types (WebhookEvent.Type). Each is derived from one
// audit entry (the store's WebhookEventOf says which) and written to the
// webhook outbox in the transaction that commits the change.
const (
	// WebhookRolloutHalted: the rollout halted (a rollback could not
	// recover it, or a human must look); terminal.
	WebhookRolloutHalted = "rollout.halted"
	// WebhookRolloutPaused: the rollout paused, by a person or by a
	// failure budget whose action is pause.
	WebhookRolloutPaused = "rollout.paused"
	// WebhookRolloutEnded: the rollout succeeded, failed or was aborted
	// (detail.to says which).
	WebhookRolloutEnded = "rollout.ended"
	// WebhookGateInconclusive: a wave gate's verdict became inconclusive
	// (no data, or too little to decide).
	WebhookGateInconclusive = "gate.inconclusive"
	// WebhookApprovalRequested: a rollout was created waiting for
	// approvals.
	WebhookApprovalRequested = "approval.requested"
	// WebhookApprovalGiven: an approver approved a rollout.
	WebhookApprovalGiven = "approval.given"
	// WebhookBudgetBreached: a wave's or the rollout's failure budget was
	// breached (detail.reason names it; the rollout pauses or rolls back).
	WebhookBudgetBreached = "budget.breached"
	// WebhookLineStopped and WebhookLineLifted: stop-the-line raised and
	// cleared (fleet-wide: rollout is "").
	WebhookLineStopped = "line.stopped"
	WebhookLineLifted  = "line.lifted"
	// WebhookNodeDrift: a node's facts show a package change no drover
	// step explains, or a baseline's pin broken (internal/baseline;
	// detail: node, package, from, to, kind, baseline, reason).
	WebhookNodeDrift = "node.drift"
)

// WebhookTest is the type of the event `drover webhooks test NAME`
// sends (POST /v1/webhooks/{name}/test): sent at once, whatever the
// subscription's events filter, outside the outbox and the order (its
// id and sequence are 0).
const WebhookTest = "webhook.test"

// WebhookEventTypes lists every event type, in documentation order.
var WebhookEventTypes = []string{WebhookRolloutHalted, WebhookRolloutPaused, WebhookRolloutEnded, WebhookGateInconclusive,
	WebhookApprovalRequested, WebhookApprovalGiven, WebhookBudgetBreached, WebhookLineStopped, WebhookLineLifted, WebhookNodeDrift}

// WebhookEvent is the JSON body of a webhook delivery (format json).
// Deliveries of one rollout arrive in Sequence order, each at least once:
// a receiver deduplicates by ID.
type WebhookEvent struct {
	// ID is unique across all events: the sequence number of the audit
	// entry the event comes from (GET /v1/audit?after=ID-1 shows it).
	ID   int64  `json:"id"`
	Type string `json:"type"`
	// Rollout is the rollout the event is about; "" for fleet-wide
	// events (line.stopped, line.lifted, node.drift).
	Rollout string `json:"rollout"`
	// Sequence is the event's position among the events of its rollout
	// (or of the fleet-wide stream), from 1, without gaps: a receiver
	// that saw N and then gets N+2 missed nothing it subscribed to only
	// if its events filter left N+1 out.
	Sequence int64     `json:"sequence"`
	At       time.Time `json:"at"`
	Actor    string    `json:"actor"`  // user, "scheduler", "agent:NODE"
	Object   string    `json:"object"` // rollout/ID, rollout/ID/wave/W, node/ID, line
	// Summary is one readable line (the text of the slack format).
	Summary string `json:"summary"`
	// Detail is the audit entry's detail (from, to, reason, wave, gate...).
	Detail json.RawMessage `json:"detail"`
	// Subscription is the name of the subscription delivering it.
	Subscription string `json:"subscription"`
}

// SlackMessage is the body of a delivery in format slack (a Slack
// incoming webhook, or anything that takes {"text": ...}).
type SlackMessage struct {
	Text string `json:"text"`
}

// Webhook is a configured subscription and its delivery status
// (GET /v1/webhooks). The URL is shown as scheme://host only: a
// webhook URL's path is often a secret (Slack's is).
type Webhook struct {
	Name   string   `json:"name"`
	Target string   `json:"target"`
	Format string   `json:"format"`
	Events []string `json:"events"`
	// Pending is how many events wait for delivery; OldestPending the
	// commit time of the oldest of them (null when none).
	Pending       int        `json:"pending"`
	OldestPending *time.Time `json:"oldestPending,omitempty"`
	// LastError is the error of this server's latest failed attempt,
	// shown while events are pending ("" after a success, or when none).
	LastError string `json:"lastError,omitempty"`
	// Sent and Failed count this server's delivery attempts since it started.
	Sent   int64 `json:"sent"`
	Failed int64 `json:"failed"`
}

// WebhookList is GET /v1/webhooks.
type WebhookList struct {
	Webhooks []Webhook `json:"webhooks"`
}

// WebhookTestResult is POST /v1/webhooks/{name}/test: whether the
// receiver answered 2xx to a webhook.test event, and if not, why.
type WebhookTestResult struct {
	Name      string `json:"name"`
	Target    string `json:"target"`
	Delivered bool   `json:"delivered"`
	Error     string `json:"error,omitempty"`
}
