package server

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/store"
)

// Dashboard sessions (security.md): signing in to the dashboard trades
// the user's token for a session token (POST /v1/sessions), which the
// browser keeps in its cookie instead of the token. A session is 256
// random bits, stored only hashed in the store (every server of an HA
// group knows it), expires after Config.SessionTTL, ends at sign-out
// (DELETE /v1/sessions/current) and is refused as soon as the token it
// was opened with is revoked or expires. A session cannot open another.

const prefixSession = api.SessionPrefix

func (s *Server) sessionRoutes(mux *http.ServeMux) {
	s.route(mux, "POST /v1/sessions", RoleViewer, s.openSession)
	s.route(mux, "DELETE /v1/sessions/current", RoleViewer, s.closeSession)
}

// openSession opens a dashboard session for the caller's token.
func (s *Server) openSession(w http.ResponseWriter, r *http.Request, id identity) error {
	if s.sec.creds == nil {
		return &httpError{status: http.StatusNotImplemented, code: api.CodeInternal, msg: "this store keeps no sessions"}
	}
	if id.session != "" {
		return &httpError{status: http.StatusForbidden, code: api.CodeForbidden, msg: "a session cannot open another; sign in with your token"}
	}
	tok, err := newToken(prefixSession)
	if err != nil {
		return err
	}
	ttl := s.cfg.SessionTTL
	if ttl == 0 {
		ttl = DefaultSessionTTL
	}
	now := s.now()
	sess := store.Session{Hash: tokenHash(tok), Name: id.user, Role: string(id.role), Source: id.source, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.sec.creds.CreateSession(r.Context(), sess); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.Session{Token: tok, User: id.user, Role: string(id.role), ExpiresAt: sess.ExpiresAt})
	return nil
}

// closeSession ends the session the request was made with (sign-out).
func (s *Server) closeSession(w http.ResponseWriter, r *http.Request, id identity) error {
	if id.session == "" {
		return badRequest("not signed in with a session: DELETE /v1/sessions/current ends the session it is sent with")
	}
	if err := s.sec.creds.RevokeSession(r.Context(), id.session, s.now()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

var errSessionEnded = &httpError{status: http.StatusUnauthorized, code: api.CodeUnauthorized, msg: "session expired or ended; sign in again"}

// authenticateSession looks a session up in the store (not cached: a
// sign-out is refused at once by every server) and checks that the
// credential it was opened with still authenticates with the same role.
func (s *Server) authenticateSession(ctx context.Context, sum [32]byte) (identity, error) {
	if s.sec.creds == nil {
		return identity{}, errUnauthorized
	}
	hash := hex.EncodeToString(sum[:])
	sess, err := s.sec.creds.Session(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return identity{}, errSessionEnded
	}
	if err != nil {
		return identity{}, err
	}
	if !s.now().Before(sess.ExpiresAt) {
		return identity{}, errSessionEnded
	}
	id := identity{user: sess.Name, role: Role(sess.Role), source: sess.Source, session: hash}
	switch kind, ref, _ := strings.Cut(sess.Source, ":"); kind {
	case "config":
		if u, ok := s.byName[ref]; !ok || u.Role != id.role {
			return identity{}, errSessionEnded
		}
	case "api":
		t, err := s.sec.creds.APIToken(ctx, ref)
		if errors.Is(err, store.ErrNotFound) {
			return identity{}, errSessionEnded
		}
		if err != nil {
			return identity{}, err
		}
		if (!t.ExpiresAt.IsZero() && !s.now().Before(t.ExpiresAt)) || Role(t.Role) != id.role || t.Name != id.user {
			return identity{}, errSessionEnded
		}
	default:
		return identity{}, errSessionEnded
	}
	return id, nil
}
