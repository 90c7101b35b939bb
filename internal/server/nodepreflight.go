package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/preflight"
	"github.com/drover-dev/drover/internal/store"
)

// The node pre-flight, as the server runs it: the engine says which
// nodes to ask (Decision.AskPreflight); askPreflight persists the asks,
// answering at once itself for nodes whose agent is too old to run a
// pre-flight and for nodes the plan's compatibility matrix rejects (on
// their latest facts), then wakes the other agents, which find the asks
// in their polls (protocol 4) and answer on PathPreflight. Each decision
// of the rollout reads the answers back (preflightStatus) until the
// engine has judged them.

// askPreflight records the asks of rollout id's node pre-flight at now
// and wakes the asked agents. It is safe to repeat: a node keeps its
// first ask.
func (s *Server) askPreflight(ctx context.Context, id string, p *plan.Plan, nodes []string, now time.Time) error {
	timeout := preflightTimeout(p)
	payload, err := json.Marshal(api.PreflightRequest{Rollout: id, Actions: p.Change.Actions})
	if err != nil {
		return fmt.Errorf("encode the pre-flight request: %w", err)
	}
	asks := make([]store.PreflightAsk, 0, len(nodes))
	var facts []*fleet.Node
	proto := map[string]int{}
	for _, n := range nodes {
		rec, err := s.st.GetNode(ctx, n)
		switch {
		case errors.Is(err, store.ErrNotFound):
			asks = append(asks, store.PreflightAsk{Node: n, Answered: true, Reason: "node is not registered; no agent to ask"})
			continue
		case err != nil:
			return fmt.Errorf("pre-flight: load node %s: %w", n, err)
		}
		proto[n] = rec.Protocol
		facts = append(facts, rec.Node())
	}
	bad, err := preflight.Compatibility(p, facts)
	if err != nil {
		return fmt.Errorf("pre-flight: %w", err)
	}
	broken := map[string][]string{}
	for _, b := range bad {
		broken[b.Node] = b.Reasons
	}
	var wake []string
	for _, n := range facts {
		switch {
		case len(broken[n.ID]) > 0:
			asks = append(asks, store.PreflightAsk{Node: n.ID, Answered: true, Reason: strings.Join(broken[n.ID], "; ")})
		case proto[n.ID] < api.PreflightProtocol:
			// Unavailable: with proceed (the default) the node passes
			// unchecked and says why, so a fleet not yet upgraded still
			// rolls out; with fail it counts as a failed pre-flight.
			ok := p.Preflight == nil || p.Preflight.Unavailable != plan.PreflightFail
			asks = append(asks, store.PreflightAsk{Node: n.ID, Answered: true, OK: ok,
				Reason: fmt.Sprintf("%sagent speaks protocol %d; node pre-flight needs protocol %d (upgrade the agent)", unavailablePrefix, proto[n.ID], api.PreflightProtocol)})
		default:
			asks = append(asks, store.PreflightAsk{Node: n.ID, Payload: payload})
			wake = append(wake, n.ID)
		}
	}
	if err := s.st.AskPreflight(ctx, id, asks, now, now.Add(timeout)); err != nil {
		return err
	}
	for _, a := range asks { // the server's own answers
		switch {
		case a.Payload != nil:
		case a.OK:
			s.m.preflights.WithLabelValues("unavailable").Inc()
		default:
			s.m.preflights.WithLabelValues("failed").Inc()
		}
	}
	for _, n := range wake {
		s.wake.notify(n)
	}
	return nil
}

// unavailablePrefix starts the reason of a node whose agent cannot run a
// pre-flight; the view tells those nodes apart by it.
const unavailablePrefix = "pre-flight unavailable: "

// preflightTimeout is how long p's node pre-flight waits for answers
// (the default when p runs none: a dry run may still ask).
func preflightTimeout(p *plan.Plan) time.Duration {
	if p.Preflight.Runs() {
		return p.Preflight.Timeout.D()
	}
	return plan.DefaultPreflightTimeout.D()
}

// preflightStatus reads a rollout's node pre-flight for the engine: nil
// when its plan asks for none, or none was asked yet. Once final (every
// asked node answered, or now past the deadline) it is kept in the
// rollout's cache and not read again.
func (s *Server) preflightStatus(ctx context.Context, rc *rolloutCache, state engine.RolloutState, now time.Time) (*engine.PreflightStatus, error) {
	p := rc.plan
	if !p.Preflight.Runs() || state != engine.RolloutRunning {
		return nil, nil
	}
	rc.mu.Lock()
	cached := rc.preflight
	rc.mu.Unlock()
	if cached != nil {
		return cached, nil
	}
	rows, err := s.st.Preflights(ctx, rc.id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st := &engine.PreflightStatus{Results: make(map[string]engine.PreflightResult, len(rows))}
	for _, r := range rows {
		if st.AskedAt.IsZero() || r.AskedAt.Before(st.AskedAt) {
			st.AskedAt = r.AskedAt
		}
		if !r.AnsweredAt.IsZero() {
			st.Results[r.Node] = engine.PreflightResult{OK: r.OK, Reason: r.Reason, At: r.AnsweredAt}
		}
	}
	final := !now.Before(st.AskedAt.Add(p.Preflight.Timeout.D()))
	if len(st.Results) == len(rows) {
		final = true
		for _, r := range st.Results {
			final = final && !r.At.After(now)
		}
	}
	if final {
		rc.mu.Lock()
		rc.preflight = st
		rc.mu.Unlock()
	}
	return st, nil
}

// preflightReport takes an agent's answer to a node pre-flight
// (protocol 4). The reasons are cut to the server's limits; the answer's
// time is the server's receive time (the deadline is the server's).
func (s *Server) preflightReport(w http.ResponseWriter, r *http.Request, node string) error {
	received := s.now()
	if err := s.limits.checkReport(w, node, received); err != nil {
		return err
	}
	var req api.PreflightReport
	if err := s.decodeAgent(w, r, &req, api.MaxBodyBytes); err != nil {
		return err
	}
	if err := sameNode(node, req.NodeID); err != nil {
		return err
	}
	if req.Rollout == "" {
		return badRequest("pre-flight report names no rollout")
	}
	req.NodeID, req.At = node, received
	reason := ""
	if !req.OK {
		reason = s.limits.reason(orElse(strings.Join(req.Reasons, "; "), "pre-flight failed"))
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode the pre-flight report: %w", err)
	}
	if err := s.st.AnswerPreflight(r.Context(), req.Rollout, node, req.OK, reason, raw, received); err != nil {
		switch {
		case errors.Is(err, store.ErrNotFound):
			return &httpError{status: http.StatusNotFound, code: api.CodeNotFound, msg: fmt.Sprintf("node %s was not asked for a pre-flight of %s", node, req.Rollout), err: err}
		case errors.Is(err, store.ErrConflict):
			w.WriteHeader(http.StatusNoContent) // a repeat of an answer taken: the agent retried
			return nil
		}
		return err
	}
	s.m.preflights.WithLabelValues(map[bool]string{true: "passed", false: "failed"}[req.OK]).Inc()
	if req.Took > 0 {
		s.m.preflightTook.Observe(req.Took.Seconds())
	}
	s.sched.kick()
	s.wake.broadcast()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// getPreflight serves a rollout's (or dry run's) node pre-flight.
func (s *Server) getPreflight(w http.ResponseWriter, r *http.Request, _ identity) error {
	v, err := s.preflightView(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// preflightView reads a node pre-flight for people.
func (s *Server) preflightView(ctx context.Context, id string) (api.PreflightView, error) {
	rows, err := s.st.Preflights(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return api.PreflightView{}, &httpError{status: http.StatusNotFound, code: api.CodeNotFound,
			msg: "no node pre-flight for " + id + " (its plan has no preflight section, or no node was asked yet)", err: err}
	}
	if err != nil {
		return api.PreflightView{}, err
	}
	now := s.now()
	v := api.PreflightView{Rollout: id, Nodes: make([]api.NodePreflight, 0, len(rows))}
	for _, r := range rows {
		if v.AskedAt.IsZero() || r.AskedAt.Before(v.AskedAt) {
			v.AskedAt, v.Deadline = r.AskedAt, r.Deadline
		}
		n := api.NodePreflight{Node: r.Node, Reason: r.Reason, AnsweredAt: r.AnsweredAt}
		switch {
		case !r.AnsweredAt.IsZero() && r.AnsweredAt.After(r.Deadline):
			n.State, n.Reason = "no-answer", "answered after the deadline: "+orOK(r.OK, r.Reason)
		case !r.AnsweredAt.IsZero() && r.OK && strings.HasPrefix(r.Reason, unavailablePrefix):
			n.State = "unavailable"
		case !r.AnsweredAt.IsZero() && r.OK:
			n.State = "passed"
		case !r.AnsweredAt.IsZero():
			n.State = "failed"
		case now.Before(r.Deadline):
			n.State = "waiting"
		default:
			n.State, n.Reason = "no-answer", "no answer by "+r.Deadline.UTC().Format(time.RFC3339)
		}
		if r.Report != nil {
			var rep api.PreflightReport
			if err := json.Unmarshal(r.Report, &rep); err != nil {
				return api.PreflightView{}, fmt.Errorf("node %s: stored pre-flight report: %w", r.Node, err)
			}
			n.Report = &rep
		}
		v.Asked++
		switch n.State {
		case "passed":
			v.Passed++
		case "unavailable":
			v.Unavailable++
		case "waiting":
			v.Waiting++
		default:
			v.Failed++
		}
		v.Nodes = append(v.Nodes, n)
	}
	return v, nil
}

func orOK(ok bool, reason string) string {
	if ok {
		return "passed"
	}
	return reason
}

// dryRunPreflight asks the target nodes of a dry run for their
// pre-flight and waits for their answers, up to the plan's pre-flight
// timeout and at most api.DryRunPreflightWait. It returns what they
// answered, for people and for the simulation to replay; a node silent
// at the end is not in the answers (the simulation draws its answer).
func (s *Server) dryRunPreflight(ctx context.Context, p *plan.Plan, a *engine.Assignment) (*api.PreflightView, map[string]engine.PreflightResult, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := "dry-run-" + p.Name + "-" + hex.EncodeToString(b[:])
	var nodes []string
	for _, n := range a.Nodes {
		if n.State.Phase == engine.PhasePending {
			nodes = append(nodes, n.ID)
		}
	}
	if len(nodes) == 0 {
		return nil, nil, nil
	}
	now := s.now()
	if err := s.askPreflight(ctx, id, p, nodes, now); err != nil {
		return nil, nil, err
	}
	wait := preflightTimeout(p)
	ctx, cancel := context.WithTimeout(ctx, min(wait, api.DryRunPreflightWait))
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		rows, err := s.st.Preflights(ctx, id)
		if err != nil && ctx.Err() == nil {
			return nil, nil, err
		}
		open := 0
		for _, r := range rows {
			if r.AnsweredAt.IsZero() {
				open++
			}
		}
		if err == nil && open == 0 {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
			continue
		}
		break
	}
	v, err := s.preflightView(context.WithoutCancel(ctx), id)
	if err != nil {
		return nil, nil, err
	}
	answers := map[string]engine.PreflightResult{}
	for _, n := range v.Nodes {
		switch n.State {
		case "passed":
			answers[n.Node] = engine.PreflightResult{OK: true}
		case "unavailable":
			answers[n.Node] = engine.PreflightResult{OK: true, Reason: n.Reason}
		case "failed":
			answers[n.Node] = engine.PreflightResult{Reason: n.Reason}
		}
	}
	return &v, answers, nil
}

// preflightText is a dry run's account of its node pre-flight.
func preflightText(v *api.PreflightView) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node pre-flight (%s): %d asked, %d passed, %d failed, %d did not answer in time, %d unavailable (agent too old)\n",
		v.Rollout, v.Asked, v.Passed, v.Failed, v.Waiting, v.Unavailable)
	for _, n := range v.Nodes {
		if n.State != "passed" {
			fmt.Fprintf(&b, "  %s %s: %s\n", n.Node, n.State, n.Reason)
		}
	}
	return b.String()
}
