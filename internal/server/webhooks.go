package server

import (
	"net/http"

	"github.com/drover-dev/drover/internal/api"
)

// webhookRoutes serves the webhook subscriptions' status (admin: it
// names the receivers).
func (s *Server) webhookRoutes(mux *http.ServeMux) {
	s.route(mux, "GET /v1/webhooks", RoleAdmin, s.listWebhooks)
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
