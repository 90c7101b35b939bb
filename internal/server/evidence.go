package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/evidence"
	"github.com/drover-dev/drover/internal/store"
)

// EvidenceConfig is the retention of evidence bundles: none older than
// MaxAge (default 30 days), at most PerNode per node (default 20).
type EvidenceConfig struct {
	MaxAge  time.Duration `yaml:"maxAge"`
	PerNode int           `yaml:"perNode"`
	// RequestTimeout is how long an on-demand request is handed out to
	// its node (default 5m).
	RequestTimeout time.Duration `yaml:"requestTimeout"`
}

// Evidence retention defaults.
const (
	DefaultEvidenceMaxAge         = 30 * 24 * time.Hour
	DefaultEvidencePerNode        = 20
	DefaultEvidenceRequestTimeout = 5 * time.Minute
)

func (c EvidenceConfig) retention() store.EvidenceRetention {
	return store.EvidenceRetention{MaxAge: orZero(c.MaxAge, DefaultEvidenceMaxAge), PerNode: orZero(c.PerNode, DefaultEvidencePerNode)}
}

func orZero[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (c EvidenceConfig) validate() error {
	var errs []error
	if c.MaxAge < 0 || (c.MaxAge > 0 && c.MaxAge < time.Hour) {
		errs = append(errs, fmt.Errorf("evidence.maxAge %s: must be at least 1h", c.MaxAge))
	}
	if c.PerNode < 0 {
		errs = append(errs, fmt.Errorf("evidence.perNode %d: must not be negative", c.PerNode))
	}
	if c.RequestTimeout < 0 || (c.RequestTimeout > 0 && c.RequestTimeout < 10*time.Second) {
		errs = append(errs, fmt.Errorf("evidence.requestTimeout %s: must be at least 10s", c.RequestTimeout))
	}
	return errors.Join(errs...)
}

// maxEvidenceBody bounds the body of an agent's evidence post: a bundle
// within evidence.MaxBundleBytes and the report around it.
const maxEvidenceBody = evidence.MaxBundleBytes + 16<<10

func newEvidenceID(prefix string, now time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// agentEvidence takes an evidence bundle from a node's agent (protocol 5):
// a failing step's, or the answer to an on-demand request. The bundle is
// bounded (evidence.MaxBundleBytes), hashed, stored compressed and
// recorded in the audit log with its hash. A repeat (the agent retried
// after the answer was lost) is taken without storing it twice.
func (s *Server) agentEvidence(w http.ResponseWriter, r *http.Request, node string) error {
	received := s.now()
	if err := s.limits.checkReport(w, node, received); err != nil {
		return err
	}
	var req api.EvidenceReport
	if err := s.decodeAgent(w, r, &req, maxEvidenceBody); err != nil {
		return err
	}
	if err := sameNode(node, req.NodeID); err != nil {
		return err
	}
	b := req.Bundle
	switch {
	case b == nil:
		return badRequest("evidence report carries no bundle")
	case b.Reason != evidence.ReasonFailure && b.Reason != evidence.ReasonOnDemand:
		return badRequest("evidence bundle reason %q: want %s or %s", b.Reason, evidence.ReasonFailure, evidence.ReasonOnDemand)
	case b.Reason == evidence.ReasonOnDemand && req.Request == "":
		return badRequest("on-demand evidence bundle names no request")
	case b.Reason == evidence.ReasonFailure && b.Step == "":
		return badRequest("failure evidence bundle names no step")
	}
	b.Node = node
	body, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encode the evidence bundle: %w", err)
	}
	if len(body) > evidence.MaxBundleBytes {
		return &httpError{status: http.StatusRequestEntityTooLarge, code: api.CodeTooLarge,
			msg: fmt.Sprintf("evidence bundle of %d bytes is over the %d-byte bound", len(body), evidence.MaxBundleBytes)}
	}
	ctx := r.Context()
	if b.Reason == evidence.ReasonFailure {
		have, err := s.st.ListEvidence(ctx, node, b.Rollout)
		if err != nil {
			return err
		}
		for _, e := range have {
			if e.Step == b.Step && e.Reason == evidence.ReasonFailure {
				w.WriteHeader(http.StatusNoContent) // a repeat: the agent retried
				return nil
			}
		}
	}
	captured := b.CapturedAt
	if captured.IsZero() || captured.After(received) || received.Sub(captured) > s.cfg.AgentLimits.ClockWindow {
		captured = received
	}
	rec, err := s.st.AddEvidence(ctx, store.EvidenceRecord{ID: newEvidenceID("ev-", received), Node: node, Rollout: b.Rollout, Step: b.Step,
		Reason: b.Reason, Request: req.Request, CapturedAt: captured, StoredAt: received, Body: body}, s.cfg.Evidence.retention())
	switch {
	case errors.Is(err, store.ErrConflict):
		w.WriteHeader(http.StatusNoContent) // the request was answered: a repeat
		return nil
	case errors.Is(err, store.ErrNotFound):
		return &httpError{status: http.StatusNotFound, code: api.CodeNotFound, msg: fmt.Sprintf("node %s was not asked for evidence by request %s", node, req.Request), err: err}
	case err != nil:
		return err
	}
	s.log.Info("evidence bundle stored", "node", node, "rollout", rec.Rollout, "step", rec.Step, "reason", rec.Reason, "bytes", rec.Size, "sha256", rec.SHA256, "took", b.Took)
	s.wake.broadcast()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func evidenceSummary(r store.EvidenceRecord) api.EvidenceSummary {
	return api.EvidenceSummary{ID: r.ID, Node: r.Node, Rollout: r.Rollout, Step: r.Step, Reason: r.Reason, Request: r.Request,
		CapturedAt: r.CapturedAt, StoredAt: r.StoredAt, SHA256: r.SHA256, Size: r.Size}
}

// listEvidence serves GET /v1/nodes/{id}/evidence[?rollout=R].
func (s *Server) listEvidence(w http.ResponseWriter, r *http.Request, _ identity) error {
	ctx := r.Context()
	node := r.PathValue("id")
	if _, err := s.st.GetNode(ctx, node); err != nil {
		return err
	}
	recs, err := s.st.ListEvidence(ctx, node, r.URL.Query().Get("rollout"))
	if err != nil {
		return err
	}
	out := api.EvidenceList{Node: node, Bundles: []api.EvidenceSummary{}}
	for _, rec := range recs {
		out.Bundles = append(out.Bundles, evidenceSummary(rec))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getEvidence serves GET /v1/evidence/{id}.
func (s *Server) getEvidence(w http.ResponseWriter, r *http.Request, _ identity) error {
	rec, err := s.st.GetEvidence(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	var b evidence.Bundle
	if err := json.Unmarshal(rec.Body, &b); err != nil {
		return fmt.Errorf("evidence %s: stored bundle: %w", rec.ID, err)
	}
	writeJSON(w, http.StatusOK, api.EvidenceBundle{EvidenceSummary: evidenceSummary(rec), Bundle: &b})
	return nil
}

// askEvidence serves POST /v1/nodes/{id}/evidence: the node's agent is
// asked (on its next poll, woken now) for a bundle. 409 for an agent
// older than protocol 5.
func (s *Server) askEvidence(w http.ResponseWriter, r *http.Request, id identity) error {
	ctx := r.Context()
	node, err := s.st.GetNode(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	var ask api.EvidenceAsk
	if r.ContentLength != 0 {
		if err := decodeLimit(w, r, &ask, 64<<10); err != nil {
			return err
		}
	}
	if len(ask.Units)+len(ask.Binaries)+len(ask.Names)+len(ask.Endpoints) > 32 {
		return badRequest("evidence request: at most 32 units, binaries, names and endpoints together")
	}
	for _, b := range ask.Binaries {
		if !strings.HasPrefix(b, "/") {
			return badRequest("evidence request: binaries: expected an absolute path on the node, got %q", b)
		}
	}
	for ep, ca := range ask.CAFiles {
		if !slices.Contains(ask.Endpoints, ep) {
			return badRequest("evidence request: caFiles names %q, which is not one of the endpoints", ep)
		}
		if !strings.HasPrefix(ca, "/") && !(len(ca) > 2 && ca[1] == ':') {
			return badRequest("evidence request: caFiles[%q]: expected an absolute path on the node, got %q", ep, ca)
		}
	}
	if node.Protocol < api.EvidenceProtocol {
		return &httpError{status: http.StatusConflict, code: api.CodeConflict,
			msg: fmt.Sprintf("node %s runs an agent of protocol %d; evidence capture needs protocol %d", node.ID, node.Protocol, api.EvidenceProtocol)}
	}
	now := s.now()
	req := api.EvidenceRequest{ID: newEvidenceID("evreq-", now), Units: ask.Units, Binaries: ask.Binaries, Names: ask.Names, Endpoints: ask.Endpoints, CAFiles: ask.CAFiles}
	payload, err := json.Marshal(req)
	if err != nil {
		return err
	}
	deadline := now.Add(orZero(s.cfg.Evidence.RequestTimeout, DefaultEvidenceRequestTimeout))
	if err := s.st.AskEvidence(ctx, store.EvidenceAsk{ID: req.ID, Node: node.ID, Actor: id.user, AskedAt: now, Deadline: deadline, Payload: payload}); err != nil {
		return err
	}
	s.wake.notify(node.ID)
	w.Header().Set("Location", "/v1/evidence-requests/"+req.ID)
	writeJSON(w, http.StatusAccepted, api.EvidenceRequestStatus{ID: req.ID, Node: node.ID, Actor: id.user, AskedAt: now, Deadline: deadline})
	return nil
}

// getEvidenceRequest serves GET /v1/evidence-requests/{id}.
func (s *Server) getEvidenceRequest(w http.ResponseWriter, r *http.Request, _ identity) error {
	a, err := s.st.GetEvidenceRequest(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.EvidenceRequestStatus{ID: a.ID, Node: a.Node, Actor: a.Actor, AskedAt: a.AskedAt, Deadline: a.Deadline, Bundle: a.Bundle})
	return nil
}
