package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/store"
)

// Tokens (security.md): API tokens and enrolment tokens are 32 random
// bytes, shown once when created and stored only as their SHA-256. The
// config's users are the bootstrap: an admin among them creates the
// others with `drover token create`, lists them with `drover token list`
// (by ID: the first 12 hex digits of the hash) and revokes them with
// `drover token revoke ID`.
//
// API tokens are not cached: every request looks its token up in the
// store, so a revocation is refused at once by every server sharing the
// store (only node certificates are cached, for certCacheTTL).

// Token prefixes tell the kinds apart when one is pasted in the wrong place.
const (
	prefixAPI    = "drv_"
	prefixEnroll = "dre_"
)

// DefaultEnrollTTL is an enrolment token's lifetime when none is asked.
const DefaultEnrollTTL = time.Hour

// newToken returns prefix and 32 random bytes, base64url.
func newToken(prefix string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// tokenHash is the stored form of a token.
func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// authenticateAPIToken looks up a token created through the API by its
// hash, in the store on every request (a revoked token is not found).
func (s *Server) authenticateAPIToken(ctx context.Context, sum [32]byte) (identity, error) {
	if s.sec.creds == nil {
		return identity{}, errUnauthorized
	}
	t, err := s.sec.creds.APIToken(ctx, hex.EncodeToString(sum[:]))
	if errors.Is(err, store.ErrNotFound) {
		return identity{}, errUnauthorized
	}
	if err != nil {
		return identity{}, err
	}
	if !t.ExpiresAt.IsZero() && !s.now().Before(t.ExpiresAt) {
		return identity{}, &httpError{status: http.StatusUnauthorized, code: api.CodeUnauthorized, msg: "token expired"}
	}
	return identity{user: t.Name, role: Role(t.Role), source: "api:" + t.Hash}, nil
}

func (s *Server) securityRoutes(mux *http.ServeMux) {
	s.route(mux, "POST /v1/tokens", RoleAdmin, s.createToken)
	s.route(mux, "GET /v1/tokens", RoleAdmin, s.listTokens)
	s.route(mux, "DELETE /v1/tokens/{id}", RoleAdmin, s.revokeToken)
	s.route(mux, "DELETE /v1/nodes/{id}", RoleOperator, s.removeNode)
	s.route(mux, "POST /v1/rollouts/{id}/break-glass", RoleAdmin, s.breakGlass)
	s.sessionRoutes(mux)
	s.enrollRoutes(mux)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, id identity) error {
	if s.sec.creds == nil {
		return &httpError{status: http.StatusNotImplemented, code: api.CodeInternal, msg: "this store keeps no tokens"}
	}
	var req api.TokenRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return badRequest("ttl %q: want a positive duration like 1h", req.TTL)
		}
		ttl = d
	}
	now := s.now()
	out := api.TokenResponse{Kind: req.Kind}
	switch req.Kind {
	case api.TokenEnroll:
		if req.User != "" || req.Role != "" {
			return badRequest("an enrolment token has no user or role")
		}
		if ttl == 0 {
			ttl = DefaultEnrollTTL
		}
		for k := range req.Labels {
			if k == "" {
				return badRequest("labels: empty key")
			}
		}
		tok, err := newToken(prefixEnroll)
		if err != nil {
			return err
		}
		if err := s.sec.creds.CreateEnrollToken(r.Context(), store.EnrollToken{Hash: tokenHash(tok), Labels: req.Labels,
			CreatedBy: id.user, CreatedAt: now, ExpiresAt: now.Add(ttl)}); err != nil {
			return err
		}
		out.Token, out.ExpiresAt, out.Labels, out.CAHash = tok, now.Add(ttl), req.Labels, s.CAHash()
	case api.TokenAPI:
		switch Role(req.Role) {
		case RoleViewer, RoleOperator, RoleApprover, RoleAdmin:
		default:
			return badRequest("role %q: want viewer, operator, approver or admin", req.Role)
		}
		if req.User == "" || !validUserName(req.User) {
			return badRequest("user %q: want a user name (not agent:..., scheduler, nor with spaces or control characters)", req.User)
		}
		if u, ok := s.byName[req.User]; ok {
			return &httpError{status: http.StatusConflict, code: api.CodeConflict,
				msg: fmt.Sprintf("user %s is configured on the server (role %s): a configured user's identity cannot be given by a token; choose another name", req.User, u.Role)}
		}
		if len(req.Labels) > 0 {
			return badRequest("an API token has no labels")
		}
		tok, err := newToken(prefixAPI)
		if err != nil {
			return err
		}
		at := store.APIToken{Hash: tokenHash(tok), Name: req.User, Role: req.Role, CreatedBy: id.user, CreatedAt: now}
		if ttl > 0 {
			at.ExpiresAt = now.Add(ttl)
		}
		if err := s.sec.creds.CreateAPIToken(r.Context(), at); err != nil {
			return err
		}
		out.Token, out.ExpiresAt, out.User, out.Role, out.ID = tok, at.ExpiresAt, req.User, req.Role, store.APITokenID(at.Hash)
	default:
		return badRequest("kind %q: want enroll or api", req.Kind)
	}
	s.log.Info("token created", "kind", req.Kind, "id", out.ID, "by", id.user, "user", req.User, "role", req.Role, "expires_at", out.ExpiresAt)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// listTokens lists the API tokens by ID, never by token or hash.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, _ identity) error {
	if s.sec.creds == nil {
		return &httpError{status: http.StatusNotImplemented, code: api.CodeInternal, msg: "this store keeps no tokens"}
	}
	ts, err := s.sec.creds.ListAPITokens(r.Context())
	if err != nil {
		return err
	}
	out := api.APITokenList{Tokens: make([]api.APIToken, 0, len(ts))}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, api.APIToken{ID: t.ID, User: t.Name, Role: t.Role, CreatedBy: t.CreatedBy,
			CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, RevokedBy: t.RevokedBy})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// revokeToken revokes an API token by ID (or a longer prefix of its
// hash), audited as token.revoke: 204, also when it was revoked already;
// 404 for no such token, 409 for an ID naming several.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, who identity) error {
	if s.sec.creds == nil {
		return &httpError{status: http.StatusNotImplemented, code: api.CodeInternal, msg: "this store keeps no tokens"}
	}
	id := strings.ToLower(r.PathValue("id"))
	if !store.ValidAPITokenID(id) {
		return badRequest("token ID %q: want the %d hex digits `drover token list` shows (or more of the hash)", id, store.APITokenIDLen)
	}
	if err := s.sec.creds.RevokeAPIToken(r.Context(), id, who.user, s.now()); err != nil {
		return err
	}
	s.log.Warn("API token revoked", "id", id, "by", who.user)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// breakGlass lets a rollout start nodes during its plan's freezes: an
// admin's decision with a reason, audited (rollout.break-glass).
func (s *Server) breakGlass(w http.ResponseWriter, r *http.Request, id identity) error {
	if s.sec.creds == nil {
		return &httpError{status: http.StatusNotImplemented, code: api.CodeInternal, msg: "this store keeps no overrides"}
	}
	var req api.BreakGlassRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return badRequest("break-glass needs a reason")
	}
	ro := r.PathValue("id")
	if err := s.sec.creds.BreakGlass(r.Context(), ro, id.user, req.Reason, s.now()); err != nil {
		return err
	}
	s.log.Warn("break-glass: rollout may start nodes during freezes", "rollout", ro, "by", id.user, "reason", req.Reason)
	s.sched.kick()
	s.wake.broadcast()
	got, err := s.rolloutView(r.Context(), ro, viewWaits)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, got)
	return nil
}

// breakGlassReason is the recorded break-glass reason of a rollout whose
// plan has freezes, "" when there is none (freezes are honoured; a store
// error honours them too).
func (s *Server) breakGlassReason(ctx context.Context, rollout string, p *plan.Plan) string {
	if s.sec.creds == nil || p == nil || len(p.Windows.Freezes) == 0 {
		return ""
	}
	b, err := s.sec.creds.BreakGlassOf(ctx, rollout)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("break-glass lookup failed; freezes honoured", "rollout", rollout, "err", err)
		}
		return ""
	}
	return b.Reason
}
