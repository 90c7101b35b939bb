package server

import (
	"errors"
	"net/http"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/webhook"
)

// webhookRoutes serves the webhook subscriptions' status (admin: it
// names the receivers).
func (s *Server) webhookRoutes(mux *http.ServeMux) {
	s.route(mux, "GET /v1/webhooks", RoleAdmin, s.listWebhooks)
	s.route(mux, "POST /v1/webhooks/{name}/test", RoleAdmin, s.testWebhook)
}

// testWebhook sends a webhook.test event to one subscription now and
// says whether its receiver answered 2xx (200 either way: the request
// worked; the verdict is in the body).
func (s *Server) testWebhook(w http.ResponseWriter, r *http.Request, id identity) error {
	out, err := s.hooks.Test(r.Context(), r.PathValue("name"), id.user)
	if errors.Is(err, webhook.ErrUnknown) {
		return &httpError{status: http.StatusNotFound, code: api.CodeNotFound, msg: err.Error()}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// listWebhooks lists the configured subscriptions (URLs shown as
// scheme://host), the events waiting for each, and this server's
// delivery counts.
func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, _ identity) error {
	ws, err := s.hooks.Status(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.WebhookList{Webhooks: ws})
	return nil
}
