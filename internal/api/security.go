package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Enrolment and certificate renewal on the agent channel.
const (
	// PathEnroll is served over TLS without a client certificate: the
	// enrolment token is the credential.
	PathEnroll = "/v1/agent/enroll"
	// PathRenew needs the node's current, valid client certificate.
	PathRenew = "/v1/agent/renew"
)

// Codes of the security endpoints.
const (
	CodeTokenInvalid = "token_invalid" // enrolment token unknown, used, expired or not for this node
	CodeRateLimited  = "rate_limited"  // too many failed authentications from this address; see Retry-After
)

// EnrollRequest asks for a first client certificate for NodeID on the
// public key of CSR (PEM), generated on the node.
type EnrollRequest struct {
	Token  string `json:"token"`
	NodeID string `json:"nodeId"`
	CSR    string `json:"csr"`
}

// RenewRequest asks for a new certificate for the calling node.
type RenewRequest struct {
	CSR string `json:"csr"`
}

// CertificateResponse is a client certificate issued by the server's CA.
type CertificateResponse struct {
	NodeID      string            `json:"nodeId"`
	Certificate string            `json:"certificate"` // PEM
	CA          string            `json:"ca"`          // PEM of the CA to trust from now on
	NotAfter    time.Time         `json:"notAfter"`
	Labels      map[string]string `json:"labels,omitempty"` // the enrolment token's labels
}

// Token kinds of TokenRequest.
const (
	TokenEnroll = "enroll"
	TokenAPI    = "api"
)

// TokenRequest creates an enrolment token (Kind enroll: TTL, optional
// Labels) or an API token (Kind api: User, Role, optional TTL).
type TokenRequest struct {
	Kind   string            `json:"kind"`
	TTL    string            `json:"ttl,omitempty"` // Go duration; enroll default 1h, api default none
	Labels map[string]string `json:"labels,omitempty"`
	User   string            `json:"user,omitempty"`
	Role   string            `json:"role,omitempty"`
}

// TokenResponse holds the new token: shown once, stored only hashed.
type TokenResponse struct {
	Kind      string            `json:"kind"`
	Token     string            `json:"token"`
	ExpiresAt time.Time         `json:"expiresAt,omitzero"`
	Labels    map[string]string `json:"labels,omitempty"`
	User      string            `json:"user,omitempty"`
	Role      string            `json:"role,omitempty"`
	// CAHash pins the server's CA for `drover agent --ca-hash`.
	CAHash string `json:"caHash,omitempty"`
	// ID names an API token in GET /v1/tokens and DELETE /v1/tokens/{id}.
	ID string `json:"id,omitempty"`
}

// APIToken describes an API token, never the token or its hash: ID is
// the first 12 hex digits of the token's SHA-256, enough to name it.
type APIToken struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Role      string    `json:"role"`
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"` // absent: does not expire
	RevokedAt time.Time `json:"revokedAt,omitzero"` // absent: not revoked
	RevokedBy string    `json:"revokedBy,omitempty"`
}

// APITokenList is the answer of GET /v1/tokens: every API token, revoked
// and expired ones included, oldest first. The config's users are not
// tokens of the API and are not listed.
type APITokenList struct {
	Tokens []APIToken `json:"tokens"`
}

// SessionPrefix starts every session token: a dashboard takes nothing
// else from its cookie.
const SessionPrefix = "drs_"

// Session is a dashboard session (POST /v1/sessions): Token is its
// bearer credential, shown once and stored only hashed, valid until
// ExpiresAt or DELETE /v1/sessions/current, and only while the token that
// opened it is.
type Session struct {
	Token     string    `json:"token"`
	User      string    `json:"user"`
	Role      string    `json:"role"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// BreakGlassRequest overrides a rollout's freezes; Reason is required.
type BreakGlassRequest struct {
	Reason string `json:"reason"`
}

// CreateToken creates an enrolment or API token (admin only).
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (TokenResponse, error) {
	var out TokenResponse
	err := c.do(ctx, http.MethodPost, "/v1/tokens", 0, req, &out)
	return out, err
}

// ListTokens lists the API tokens (admin only).
func (c *Client) ListTokens(ctx context.Context) (APITokenList, error) {
	var out APITokenList
	err := c.do(ctx, http.MethodGet, "/v1/tokens", 0, nil, &out)
	return out, err
}

// RevokeToken revokes the API token with this ID (admin only): it stops
// working at once. Revoking a revoked token succeeds and changes nothing.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), 0, nil, nil)
}

// RemoveNode removes a node and revokes its certificate: it must enrol
// again with a new token.
func (c *Client) RemoveNode(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/nodes/"+url.PathEscape(id), 0, nil, nil)
}

// BreakGlass overrides a rollout's freezes (admin only, reason required).
func (c *Client) BreakGlass(ctx context.Context, id, reason string) (Rollout, error) {
	var out Rollout
	err := c.do(ctx, http.MethodPost, "/v1/rollouts/"+url.PathEscape(id)+"/break-glass", 0, BreakGlassRequest{Reason: reason}, &out)
	return out, err
}
