package api

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/drover-dev/drover/internal/evidence"
)

// EvidenceSummary describes one stored evidence bundle.
type EvidenceSummary struct {
	ID         string    `json:"id"`
	Node       string    `json:"node"`
	Rollout    string    `json:"rollout,omitempty"`
	Step       string    `json:"step,omitempty"`
	Reason     string    `json:"reason"` // failure | on-demand
	Request    string    `json:"request,omitempty"`
	CapturedAt time.Time `json:"capturedAt"`
	StoredAt   time.Time `json:"storedAt"`
	// SHA256 is the hex SHA-256 of the bundle's JSON as stored, also in
	// the audit entry (node.evidence) that records it; Size its length.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// EvidenceList is a node's bundles, newest first
// (GET /v1/nodes/{id}/evidence).
type EvidenceList struct {
	Node    string            `json:"node"`
	Bundles []EvidenceSummary `json:"bundles"`
}

// EvidenceBundle is one bundle with its sections (GET /v1/evidence/{id}).
type EvidenceBundle struct {
	EvidenceSummary
	Bundle *evidence.Bundle `json:"bundle"`
}

// EvidenceAsk asks a node for a bundle now (POST /v1/nodes/{id}/evidence);
// every field is optional and widens the capture.
type EvidenceAsk struct {
	Units []string `json:"units,omitempty"`
	// Binaries are absolute paths of binaries whose linkage to capture
	// (a service's binary on a host without systemd).
	Binaries  []string `json:"binaries,omitempty"`
	Names     []string `json:"names,omitempty"`
	Endpoints []string `json:"endpoints,omitempty"`
	// CAFiles maps an endpoint to a CA bundle on the node to verify its
	// chain with (default: the system's roots).
	CAFiles map[string]string `json:"caFiles,omitempty"`
}

// EvidenceRequestStatus is an on-demand request and, once the node
// answered, the bundle (GET /v1/evidence-requests/{id}).
type EvidenceRequestStatus struct {
	ID       string    `json:"id"`
	Node     string    `json:"node"`
	Actor    string    `json:"actor"`
	AskedAt  time.Time `json:"askedAt"`
	Deadline time.Time `json:"deadline"`
	Bundle   string    `json:"bundle,omitempty"` // "" while unanswered
}

// ListEvidence lists a node's evidence bundles (of rollout when not
// ""), newest first.
func (c *Client) ListEvidence(ctx context.Context, node, rollout string) (EvidenceList, error) {
	var out EvidenceList
	p := "/v1/nodes/" + url.PathEscape(node) + "/evidence"
	if rollout != "" {
		p += "?rollout=" + url.QueryEscape(rollout)
	}
	err := c.do(ctx, http.MethodGet, p, 0, nil, &out)
	return out, err
}

// GetEvidence returns one bundle.
func (c *Client) GetEvidence(ctx context.Context, id string) (EvidenceBundle, error) {
	var out EvidenceBundle
	err := c.do(ctx, http.MethodGet, "/v1/evidence/"+url.PathEscape(id), 0, nil, &out)
	return out, err
}

// AskEvidence asks a node for a bundle now.
func (c *Client) AskEvidence(ctx context.Context, node string, ask EvidenceAsk) (EvidenceRequestStatus, error) {
	var out EvidenceRequestStatus
	err := c.do(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(node)+"/evidence", 0, ask, &out)
	return out, err
}

// EvidenceRequest returns an on-demand request's status.
func (c *Client) EvidenceRequest(ctx context.Context, id string) (EvidenceRequestStatus, error) {
	var out EvidenceRequestStatus
	err := c.do(ctx, http.MethodGet, "/v1/evidence-requests/"+url.PathEscape(id), 0, nil, &out)
	return out, err
}
