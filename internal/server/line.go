package server

import (
	"context"
	"net/http"

	"github.com/drover-dev/drover/internal/api"
)

// lineRoutes are stop-the-line: an operator stops the line fleet-wide (an
// emergency brake anyone on call may pull); lifting it resumes dispatch
// for every rollout at once, so it needs an admin.
func (s *Server) lineRoutes(mux *http.ServeMux) {
	s.route(mux, "GET /v1/line", RoleViewer, s.getLine)
	s.route(mux, "POST /v1/line/stop", RoleOperator, s.stopLine)
	s.route(mux, "POST /v1/line/lift", RoleAdmin, s.liftLine)
}

func (s *Server) getLine(w http.ResponseWriter, r *http.Request, _ identity) error {
	out, err := s.lineStatus(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) stopLine(w http.ResponseWriter, r *http.Request, id identity) error {
	var req api.LineRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Reason == "" {
		return badRequest("stopping the line needs a reason")
	}
	stop, already, err := s.st.StopLine(r.Context(), id.user, req.Reason, s.now())
	if err != nil {
		return err
	}
	s.notifyCancels(r.Context())
	s.sched.kick()
	s.wake.broadcast()
	out, err := s.lineStatus(r.Context())
	if err != nil {
		return err
	}
	out.Already, out.Cancelled, out.CancelRequested = already, stop.Cancelled, stop.CancelRequested
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) liftLine(w http.ResponseWriter, r *http.Request, id identity) error {
	var req api.LineRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Reason == "" {
		return badRequest("lifting the line stop needs a reason")
	}
	if _, err := s.st.LiftLine(r.Context(), id.user, req.Reason, s.now()); err != nil {
		return err
	}
	s.sched.kick()
	s.wake.broadcast()
	out, err := s.lineStatus(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// lineStatus reads the stop in force and the nodes in flight.
func (s *Server) lineStatus(ctx context.Context) (api.LineStatus, error) {
	var out api.LineStatus
	l, stopped, err := s.st.GetLineStop(ctx)
	if err != nil {
		return out, err
	}
	if stopped {
		out.Stopped, out.Reason, out.By, out.At = true, l.Reason, l.By, l.At
	}
	flying, err := s.st.InFlight(ctx)
	if err != nil {
		return out, err
	}
	out.InFlight, out.Rollouts = len(flying), []api.LineRollout{}
	for _, f := range flying {
		if n := len(out.Rollouts); n == 0 || out.Rollouts[n-1].ID != f.Rollout {
			out.Rollouts = append(out.Rollouts, api.LineRollout{ID: f.Rollout})
		}
		ro := &out.Rollouts[len(out.Rollouts)-1]
		ro.Nodes = append(ro.Nodes, api.LineNode{ID: f.Node, Phase: f.Phase, CancelRequested: f.CancelRequested})
	}
	return out, nil
}

// lineStop is the stop in force as Decide's input names it ("" while the
// line runs).
func (s *Server) lineStop(ctx context.Context) (string, error) {
	l, stopped, err := s.st.GetLineStop(ctx)
	if err != nil || !stopped {
		return "", err
	}
	return l.Text(), nil
}

// notifyCancels wakes the polls of the agents with a cancel to
// acknowledge, so that they hear of it at once rather than at their next
// poll.
func (s *Server) notifyCancels(ctx context.Context) {
	flying, err := s.st.InFlight(ctx)
	if err != nil {
		s.log.Warn("agents not told of their cancels at once; they learn at their next poll", "err", err)
		return
	}
	for _, f := range flying {
		if f.CancelRequested {
			s.wake.notify(f.Node)
		}
	}
}
