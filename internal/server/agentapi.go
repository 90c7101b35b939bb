package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store"
)

// agentHandler is an agent-channel handler; node is the caller's node,
// taken from its credentials.
type agentHandler func(w http.ResponseWriter, r *http.Request, node string) error

func (s *Server) agentRoute(mux *http.ServeMux, pattern string, h agentHandler) {
	s.handle(mux, pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderProtocol, strconv.Itoa(api.ProtocolVersion))
		id, err := s.authenticateLimited(w, r)
		if err == nil && id.agent == "" {
			err = &httpError{status: http.StatusForbidden, code: api.CodeForbidden, msg: "only agents use the agent channel"}
		}
		if err == nil {
			err = checkProtocol(r)
		}
		if err == nil {
			err = h(w, r, id.agent)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

// checkProtocol refuses agents whose protocol this server does not speak.
func checkProtocol(r *http.Request) error {
	v, err := strconv.Atoi(r.Header.Get(api.HeaderProtocol))
	if err != nil || v < api.MinProtocolVersion || v > api.ProtocolVersion {
		return &httpError{status: http.StatusUpgradeRequired, code: api.CodeProtocol,
			msg: fmt.Sprintf("agent protocol %q not supported; this server speaks %d..%d", r.Header.Get(api.HeaderProtocol),
				api.MinProtocolVersion, api.ProtocolVersion)}
	}
	return nil
}

func (s *Server) agentRoutes(mux *http.ServeMux) {
	s.agentRoute(mux, "POST "+api.PathRegister, s.register)
	s.agentRoute(mux, "POST "+api.PathPoll, s.poll)
	s.agentRoute(mux, "POST "+api.PathReport, s.report)
}

// sameNode refuses a body that names another node than the connection's.
func sameNode(conn, body string) error {
	if body != "" && body != conn {
		return &httpError{status: http.StatusForbidden, code: api.CodeForbidden,
			msg: fmt.Sprintf("node %s may not act for node %s", conn, body)}
	}
	return nil
}

func (s *Server) register(w http.ResponseWriter, r *http.Request, node string) error {
	var req api.RegisterRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := sameNode(node, req.NodeID); err != nil {
		return err
	}
	now := s.now()
	req.Labels = s.enrolledLabels(r.Context(), node, req.Labels)
	_, err := s.st.UpsertNode(r.Context(), store.NodeRecord{ID: node, Facts: req.Facts, Labels: req.Labels,
		AgentVersion: req.AgentVersion, Protocol: api.ProtocolVersion, RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(s.cfg.Lease)})
	if err != nil {
		return err
	}
	s.wake.broadcast()
	writeJSON(w, http.StatusOK, api.RegisterResponse{NodeID: node, LeaseSeconds: int(s.cfg.Lease / time.Second),
		PollWaitSeconds: int(s.cfg.PollWait / time.Second), Heartbeat: s.cfg.PollWait})
	return nil
}

// poll hands the node its pending steps, holding the request up to
// PollWait while there are none. Every poll renews the lease.
func (s *Server) poll(w http.ResponseWriter, r *http.Request, node string) error {
	var req api.PollRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := sameNode(node, req.NodeID); err != nil {
		return err
	}
	ctx := r.Context()
	s.m.agents.Inc()
	defer s.m.agents.Dec()
	touch := func() error {
		now := s.now()
		if req.Facts != nil {
			if _, err := s.st.UpsertNode(ctx, store.NodeRecord{ID: node, Facts: *req.Facts, LastSeen: now, LeaseUntil: now.Add(s.cfg.Lease)}); err != nil {
				return err
			}
			req.Facts = nil
		}
		if !s.beats.due(node, now) {
			return nil
		}
		if err := s.st.TouchNode(ctx, node, now, now.Add(s.cfg.Lease)); err != nil {
			return err
		}
		s.beats.wrote(node, now)
		return nil
	}
	if err := touch(); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &httpError{status: http.StatusNotFound, code: api.CodeNotFound, msg: "node " + node + " is not registered", err: err}
		}
		return err
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{}) // a long poll outlives the read timeout
	wake := s.wake.node(node)
	deadline := time.NewTimer(s.cfg.PollWait)
	defer deadline.Stop()
	// Agents connected to a server that does not lead learn of new steps
	// by re-reading the store; the leader wakes them at once when it
	// commits their steps, so it does not re-read: with thousands of
	// agents holding polls, a re-read a second each was the server's
	// main load.
	recheck := time.NewTicker(time.Second)
	defer recheck.Stop()
	for {
		all, err := s.st.PendingSteps(ctx, node, s.now())
		if err != nil {
			return err
		}
		// Steps the agent says it is executing are not handed out again.
		steps := all[:0]
		for _, st := range all {
			if !slices.Contains(req.Working, st.ID) {
				steps = append(steps, st)
			}
		}
		if len(steps) > 0 {
			out := api.PollResponse{LeaseSeconds: int(s.cfg.Lease / time.Second)}
			for _, st := range steps {
				var p api.StepPayload
				if err := json.Unmarshal(st.Payload, &p); err != nil {
					return fmt.Errorf("step %s: stored payload: %w", st.ID, err)
				}
				out.Steps = append(out.Steps, p)
			}
			s.fp.hit(fpDuringPoll)
			writeJSON(w, http.StatusOK, out)
			return nil
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-deadline.C:
				writeJSON(w, http.StatusOK, api.PollResponse{Steps: []api.StepPayload{}, LeaseSeconds: int(s.cfg.Lease / time.Second)})
				return nil
			case <-wake:
				break wait
			case <-recheck.C:
				if !s.sched.leading() {
					break wait
				}
			}
		}
	}
}

func (s *Server) report(w http.ResponseWriter, r *http.Request, node string) error {
	var req api.StepReport
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := sameNode(node, req.NodeID); err != nil {
		return err
	}
	switch req.Phase {
	case engine.PhaseRunning, engine.PhaseVerifying, engine.PhaseFailed, engine.PhaseRolledBack:
	default:
		return badRequest("report phase %q: agents report running, verifying, failed or rolled-back", req.Phase)
	}
	if req.Phase == engine.PhaseVerifying {
		switch req.Gate {
		case engine.Pass, engine.Fail, engine.Inconclusive, "":
		default:
			return badRequest("report gate %q: want pass, fail or inconclusive", req.Gate)
		}
	}
	var evidence json.RawMessage
	if req.Evidence != nil {
		raw, err := json.Marshal(req.Evidence)
		if err != nil {
			return badRequest("evidence: %v", err)
		}
		evidence = raw
	}
	at := req.At
	if at.IsZero() || at.After(s.now().Add(time.Minute)) {
		at = s.now() // an agent's clock is not trusted into the future
	}
	s.fp.hit(fpDuringReportBefore)
	now := s.now()
	err := s.st.ReportStep(r.Context(), store.Report{StepID: req.StepID, NodeID: node, Phase: req.Phase, Gate: req.Gate,
		HealthySince: req.HealthySince, Reason: req.Reason, Evidence: evidence, At: at, Seen: now, LeaseUntil: now.Add(s.cfg.Lease)})
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return &httpError{status: http.StatusConflict, code: api.CodeConflict,
				msg: fmt.Sprintf("step %s is not node %s's current step", req.StepID, node), err: err}
		}
		return err
	}
	s.beats.wrote(node, now)
	s.fp.hit(fpDuringReport)
	s.m.reports.WithLabelValues(string(req.Phase)).Inc()
	// Only a final phase or a gate verdict can change a decision: running
	// and verifying without a verdict keep the node in flight, and their
	// deadlines are checked every tick. A pass loads the whole rollout, so
	// the other reports do not ask for one.
	if req.Phase != engine.PhaseRunning && (req.Phase != engine.PhaseVerifying || req.Gate != "") {
		s.sched.kick()
	}
	s.wake.broadcast()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// heartbeats remembers when this server last wrote each node's lease, so
// that an agent polling again at once (after every step it finishes)
// does not write it again: a lease is rewritten at most once per window,
// which is short enough that the next poll, PollWait later, still comes
// well before the lease ends.
type heartbeats struct {
	window time.Duration
	mu     sync.Mutex
	last   map[string]time.Time
}

func newHeartbeats(lease, pollWait time.Duration) *heartbeats {
	return &heartbeats{window: min(lease/10, (lease-pollWait)/4), last: map[string]time.Time{}}
}

// due reports whether node's lease should be written at now.
func (h *heartbeats) due(node string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	last, ok := h.last[node]
	return !ok || now.Sub(last) >= h.window || now.Before(last)
}

// wrote records that node's lease was written at now.
func (h *heartbeats) wrote(node string, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last[node] = now
}

// forget drops a removed node.
func (h *heartbeats) forget(node string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.last, node)
}
