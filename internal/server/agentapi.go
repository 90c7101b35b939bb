package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
	s.agentRoute(mux, "POST "+api.PathPreflight, s.preflightReport)
	s.agentRoute(mux, "POST "+api.PathEvidence, s.agentEvidence)
}

// sameNode refuses a body that names another node than the connection's.
func sameNode(conn, body string) error {
	if body != "" && body != conn {
		return &httpError{status: http.StatusForbidden, code: api.CodeForbidden,
			msg: fmt.Sprintf("node %s may not act for node %s", conn, body)}
	}
	return nil
}

// decodeAgent decodes an agent's body of at most limit bytes, counting
// bodies over it.
func (s *Server) decodeAgent(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	err := decodeLimit(w, r, v, limit)
	var he *httpError
	if errors.As(err, &he) && he.status == http.StatusRequestEntityTooLarge {
		s.limits.limited.WithLabelValues("body", "too_large").Inc()
	}
	return err
}

func (s *Server) register(w http.ResponseWriter, r *http.Request, node string) error {
	var req api.RegisterRequest
	if err := s.decodeAgent(w, r, &req, s.limits.factsBodyBytes()); err != nil {
		return err
	}
	if err := sameNode(node, req.NodeID); err != nil {
		return err
	}
	now := s.now()
	if err := s.limits.checkFacts(w, node, req.Facts, now); err != nil {
		return err
	}
	req.Labels = s.enrolledLabels(r.Context(), node, req.Labels)
	proto, _ := strconv.Atoi(r.Header.Get(api.HeaderProtocol)) // checked by agentRoute
	if prev, err := s.st.GetNode(r.Context(), node); err == nil {
		s.detectDrift(r.Context(), prev, req.Facts, req.Labels) // a re-registration (an agent restarted)
	}
	_, err := s.st.UpsertNode(r.Context(), store.NodeRecord{ID: node, Facts: req.Facts, Labels: req.Labels,
		AgentVersion: req.AgentVersion, Protocol: proto, RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(s.cfg.Lease)})
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
	if err := s.decodeAgent(w, r, &req, s.limits.factsBodyBytes()); err != nil {
		return err
	}
	if err := sameNode(node, req.NodeID); err != nil {
		return err
	}
	if req.Facts != nil {
		if err := s.limits.checkFacts(w, node, *req.Facts, s.now()); err != nil {
			return err
		}
	}
	ctx := r.Context()
	proto, _ := strconv.Atoi(r.Header.Get(api.HeaderProtocol)) // checked by agentRoute
	s.m.agents.Inc()
	defer s.m.agents.Dec()
	touch := func() error {
		now := s.now()
		if req.Facts != nil {
			// UpsertNode replaces the agent's version and protocol too:
			// keep the version it registered with, the protocol it speaks.
			rec := store.NodeRecord{ID: node, Facts: *req.Facts, Protocol: proto, LastSeen: now, LeaseUntil: now.Add(s.cfg.Lease)}
			if old, err := s.st.GetNode(ctx, node); err == nil {
				rec.AgentVersion = old.AgentVersion
				s.detectDrift(ctx, old, *req.Facts, old.Labels)
			}
			if _, err := s.st.UpsertNode(ctx, rec); err != nil {
				return err
			}
			req.Facts = nil
		}
		if s.beats.queue(store.Heartbeat{NodeID: node, Seen: now, LeaseUntil: now.Add(s.cfg.Lease)}) {
			return nil
		}
		if err := s.st.TouchNode(ctx, node, now, now.Add(s.cfg.Lease)); err != nil {
			return err
		}
		s.beats.wrote(node)
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
		var all []store.Step
		var asks, evAsks [][]byte
		if leading := s.sched.leading(); !leading || !s.wake.isIdle(node, time.Now()) {
			mark := s.wake.stamp(node, time.Now())
			var err error
			if all, err = s.st.PendingSteps(ctx, node, s.now()); err != nil {
				return err
			}
			if proto >= api.PreflightProtocol {
				if asks, err = s.st.OpenPreflights(ctx, node, s.now()); err != nil {
					return err
				}
			}
			if proto >= api.EvidenceProtocol {
				if evAsks, err = s.st.OpenEvidenceRequests(ctx, node, s.now()); err != nil {
					return err
				}
			}
			if len(all) == 0 && len(asks) == 0 && len(evAsks) == 0 && leading {
				s.wake.markIdle(node, mark)
			}
		}
		// Steps the agent says it is executing are not handed out again;
		// cancelled ones are named in Cancel instead (protocol 2), for
		// the agent to acknowledge or to finish if it began them.
		steps := all[:0]
		var cancel []string
		for _, st := range all {
			switch {
			case !st.CancelRequested.IsZero():
				if proto >= 2 {
					cancel = append(cancel, st.ID)
				}
			case !slices.Contains(req.Working, st.ID):
				steps = append(steps, st)
			}
		}
		if len(steps) > 0 || len(cancel) > 0 || len(asks) > 0 || len(evAsks) > 0 {
			out := api.PollResponse{LeaseSeconds: int(s.cfg.Lease / time.Second), Cancel: cancel}
			for _, raw := range evAsks {
				var er api.EvidenceRequest
				if err := json.Unmarshal(raw, &er); err != nil {
					return fmt.Errorf("node %s: stored evidence request: %w", node, err)
				}
				out.Evidence = append(out.Evidence, er)
			}
			for _, raw := range asks {
				var pr api.PreflightRequest
				if err := json.Unmarshal(raw, &pr); err != nil {
					return fmt.Errorf("node %s: stored pre-flight request: %w", node, err)
				}
				out.Preflights = append(out.Preflights, pr)
			}
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

// report takes a step report. Over the node's report rate it is refused
// before its body is read; its reason and evidence are cut to the
// server's limits, never refused for their size; the times it claims are
// clamped to the server's clock window, and its audit entries carry the
// server's receive time.
func (s *Server) report(w http.ResponseWriter, r *http.Request, node string) error {
	received := s.now()
	if err := s.limits.checkReport(w, node, received); err != nil {
		return err
	}
	var req api.StepReport
	if err := s.decodeAgent(w, r, &req, api.MaxBodyBytes); err != nil {
		return err
	}
	if err := sameNode(node, req.NodeID); err != nil {
		return err
	}
	switch req.Phase {
	case engine.PhaseRunning, engine.PhaseVerifying, engine.PhaseFailed, engine.PhaseRolledBack, engine.PhaseInterrupted, engine.PhaseCancelled:
	default:
		return badRequest("report phase %q: agents report running, verifying, failed, rolled-back, interrupted or cancelled", req.Phase)
	}
	if req.Phase == engine.PhaseVerifying {
		switch req.Gate {
		case engine.Pass, engine.Fail, engine.Inconclusive, "":
		default:
			return badRequest("report gate %q: want pass, fail or inconclusive", req.Gate)
		}
	}
	evidence, err := s.limits.evidence(req.Evidence)
	if err != nil {
		return err
	}
	var timing []byte
	if req.Timing != nil && req.Phase == engine.PhaseVerifying && req.Gate == engine.Pass {
		timing, _ = json.Marshal(req.Timing)
	}
	at := s.limits.clock("at", req.At, received)
	if at.IsZero() {
		at = received
	}
	s.fp.hit(fpDuringReportBefore)
	now := s.now()
	err = s.st.ReportStep(r.Context(), store.Report{StepID: req.StepID, NodeID: node, Phase: req.Phase, Gate: req.Gate,
		HealthySince: s.limits.clock("healthySince", req.HealthySince, received), Reason: s.limits.reason(req.Reason),
		Evidence: evidence, Timing: timing, At: at, ClaimedAt: req.At, Seen: now, LeaseUntil: now.Add(s.cfg.Lease)})
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return &httpError{status: http.StatusConflict, code: api.CodeConflict,
				msg: fmt.Sprintf("step %s is not node %s's current step", req.StepID, node), err: err}
		}
		return err
	}
	s.beats.wrote(node)
	s.fp.hit(fpDuringReport)
	s.m.reports.WithLabelValues(string(req.Phase)).Inc()
	// Only a final phase or a gate verdict can change a decision: running
	// and verifying without a verdict keep the node in flight, and their
	// deadlines are checked every tick. A pass loads the whole rollout, so
	// the other reports do not ask for one.
	// A pass whose soak (minHealthy) has not ended cannot change one
	// either: the node becomes succeeded at the end of the soak, when its
	// agent's final report (or a tick) asks for the pass that matters.
	if req.Phase != engine.PhaseRunning && (req.Phase != engine.PhaseVerifying || req.Gate != "") &&
		!s.sched.soaking(req.StepID, req.Gate, req.HealthySince, at) {
		s.sched.kick()
	}
	s.wake.broadcast()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// heartbeats batches the agents' lease renewals. A node this server
// has written a lease for once is known to exist: its later heartbeats
// wait here, newest per node, and are written together in one
// transaction every flush interval (a second at most) instead of one
// transaction per poll, by far the most frequent write of a large fleet.
// The first heartbeat of a node, and every one while no flusher runs (a
// server used as a bare handler), is written at once, which is where an
// unregistered node learns it is unknown.
type heartbeats struct {
	mu      sync.Mutex
	known   map[string]bool
	pending map[string]store.Heartbeat
	running bool
}

func newHeartbeats() *heartbeats {
	return &heartbeats{known: map[string]bool{}, pending: map[string]store.Heartbeat{}}
}

// queue takes a heartbeat of a known node for the next flush; false
// means the caller must write it itself.
func (h *heartbeats) queue(b store.Heartbeat) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.running || !h.known[b.NodeID] {
		return false
	}
	h.pending[b.NodeID] = b
	return true
}

// wrote records that node's lease was written.
func (h *heartbeats) wrote(node string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.known[node] = true
}

// forget drops a removed node and its queued heartbeat.
func (h *heartbeats) forget(node string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.known, node)
	delete(h.pending, node)
}

// flushInterval is how long a heartbeat may wait: short against the
// lease, so that the batching never makes a live agent look silent.
func flushInterval(lease, pollWait time.Duration) time.Duration {
	return min(time.Second, (lease-pollWait)/4)
}

// run writes the queued heartbeats every interval until ctx ends, then
// once more.
func (h *heartbeats) run(ctx context.Context, st store.Store, interval time.Duration, log *slog.Logger) {
	h.mu.Lock()
	h.running = true
	h.mu.Unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.mu.Lock()
			h.running = false
			h.mu.Unlock()
			last, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			h.flush(last, st, log)
			cancel()
			return
		case <-t.C:
			h.flush(ctx, st, log)
		}
	}
}

func (h *heartbeats) flush(ctx context.Context, st store.Store, log *slog.Logger) {
	h.mu.Lock()
	if len(h.pending) == 0 {
		h.mu.Unlock()
		return
	}
	beats := make([]store.Heartbeat, 0, len(h.pending))
	for _, b := range h.pending {
		beats = append(beats, b)
	}
	clear(h.pending)
	h.mu.Unlock()
	slices.SortFunc(beats, func(a, b store.Heartbeat) int { return strings.Compare(a.NodeID, b.NodeID) })
	missing, err := st.TouchNodes(ctx, beats)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("heartbeats not written; the agents' next polls write them", "nodes", len(beats), "err", err)
		}
		h.mu.Lock()
		for _, b := range beats {
			h.known[b.NodeID] = false // written at once next time
		}
		h.mu.Unlock()
		return
	}
	for _, id := range missing {
		h.forget(id) // removed through another server: its next poll learns it
	}
}
