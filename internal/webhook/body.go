package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/store"
)

// Headers of a delivery.
const (
	HeaderEvent     = "X-Drover-Event"     // the event type
	HeaderDelivery  = "X-Drover-Delivery"  // the event ID (the same on every retry)
	HeaderTimestamp = "X-Drover-Timestamp" // Unix seconds when this attempt was signed
	HeaderSignature = "X-Drover-Signature" // "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body)
)

// Sign returns the X-Drover-Signature value of body sent at timestamp
// (Unix seconds): "sha256=" and the hex HMAC-SHA256, keyed by secret, of
// the timestamp in decimal, a dot, and the body's bytes.
func Sign(secret []byte, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature is Sign(secret, timestamp, body), in
// constant time. A receiver also refuses timestamps far from its clock
// (docs/webhooks.md: five minutes) so that a captured delivery cannot be
// replayed later.
func Verify(secret []byte, timestamp int64, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(signature))
}

// Event is the JSON body of ev for subscription sub.
func Event(sub string, ev store.OutboxEvent) api.WebhookEvent {
	e := ev.Entry
	d := e.Detail
	if len(d) == 0 {
		d = json.RawMessage("null")
	}
	return api.WebhookEvent{ID: e.Seq, Type: ev.Type, Rollout: ev.Stream, Sequence: ev.StreamSeq, At: e.At.UTC(),
		Actor: e.Actor, Object: e.Object, Summary: Summary(ev), Detail: d, Subscription: sub}
}

// Body encodes ev in format (json or slack).
func Body(format, sub string, ev store.OutboxEvent) ([]byte, error) {
	var v any = Event(sub, ev)
	if format == FormatSlack {
		v = api.SlackMessage{Text: "drover: " + Summary(ev)}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode event %d: %w", ev.ID(), err)
	}
	return b, nil
}

// Summary is one readable line about ev: what happened, to what, by
// whom, and why.
func Summary(ev store.OutboxEvent) string {
	var d struct {
		From   string `json:"from"`
		To     string `json:"to"`
		Reason string `json:"reason"`
		Wave   string `json:"wave"`
		Gate   string `json:"gate"`
		Node   string `json:"node"`
	}
	_ = json.Unmarshal(ev.Entry.Detail, &d)
	subject := "rollout " + ev.Stream
	var what string
	switch ev.Type {
	case api.WebhookRolloutHalted:
		what = "halted"
	case api.WebhookRolloutPaused:
		what = "paused"
	case api.WebhookRolloutEnded:
		what = "ended " + d.To
	case api.WebhookGateInconclusive:
		what = fmt.Sprintf("gate %s of wave %s is inconclusive", d.Gate, d.Wave)
	case api.WebhookApprovalRequested:
		what = "waits for approval"
	case api.WebhookApprovalGiven:
		what = "approved"
		if d.Wave != "" {
			what += " (wave " + d.Wave + ")"
		}
	case api.WebhookBudgetBreached:
		what = "breached its failure budget"
		if d.To != "" {
			what += ", now " + d.To
		}
	case api.WebhookLineStopped:
		subject, what = "the line", "stopped: nothing is dispatched fleet-wide"
	case api.WebhookLineLifted:
		subject, what = "the line", "stop lifted"
	case api.WebhookTest:
		subject, what = "webhook "+strings.TrimPrefix(ev.Entry.Object, "webhook/"), "test delivery (nothing happened)"
	case api.WebhookNodeDrift:
		subject, what = "node "+d.Node, "drifted from its baseline"
	default:
		what = ev.Type
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", subject, what)
	if ev.Entry.Actor != "" && ev.Entry.Actor != "scheduler" {
		fmt.Fprintf(&b, " by %s", ev.Entry.Actor)
	}
	if d.Reason != "" {
		fmt.Fprintf(&b, ": %s", d.Reason)
	}
	return b.String()
}
