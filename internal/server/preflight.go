package server

import (
	"fmt"
	"net/http"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/artifact"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/gate"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/preflight"
)

// preflight checks a plan, assigned as a to the live inventory, against
// this server before anything is touched: wave gates against its
// metrics source, windows against the target nodes' labels, and the
// plan's actions and probes against what the target nodes' agents
// report they run (under target.onRefusal). Problems are an
// invalid_plan error with FILE:LINE:COL positions.
func (s *Server) preflight(p *plan.Plan, a *engine.Assignment) error {
	es := preflight.Check(p, a, s.metrics())
	for _, r := range preflight.Blocking(p, preflight.Refusals(p, preflight.Targets(a))) {
		es = append(es, r.Error(p))
	}
	if len(es) == 0 {
		return nil
	}
	return planProblems(p.File(), es)
}

// planProblems is an invalid_plan error listing es.
func planProblems(file string, es plan.Errors) error {
	he := &httpError{status: http.StatusUnprocessableEntity, code: api.CodeInvalidPlan,
		msg: fmt.Sprintf("plan %s has %d problem(s) against this server", file, len(es))}
	for _, e := range es {
		he.problems = append(he.problems, api.Problem{File: e.File, Line: e.Line, Col: e.Col, Path: e.Path, Message: e.Msg})
	}
	return he
}

// metrics is what this server evaluates wave gates with.
func (s *Server) metrics() preflight.Metrics {
	m := preflight.Metrics{Known: true, Configured: true}
	if _, none := s.gates.(gate.Unconfigured); none {
		m.Configured = false
	}
	if ip, ok := s.gates.(interface{ InstanceOf(*fleet.Node) string }); ok {
		m.Instance = ip.InstanceOf
	}
	if wp, ok := s.gates.(interface{ Window(plan.WaveGate) string }); ok {
		m.Window = wp.Window
	}
	return m
}

// refusals are the target nodes whose agents would refuse part of the
// plan though creation goes on (target.onRefusal: fail-node).
func refusals(p *plan.Plan, a *engine.Assignment) []api.Refusal {
	var out []api.Refusal
	for _, r := range preflight.Refusals(p, preflight.Targets(a)) {
		out = append(out, api.Refusal{Path: r.Path, Reason: r.Reason, Nodes: r.Nodes})
	}
	return out
}

// commands lists what the rollout can cause to run on its nodes, for its
// creation audit entry; artifacts are named with the digest this
// server's repository publishes.
func (s *Server) commands(p *plan.Plan) []string {
	digests := map[string]string{}
	if s.cfg.ArtifactsDir != "" {
		if l, err := (&artifact.Repo{Dir: s.cfg.ArtifactsDir}).List(); err == nil {
			for _, t := range l.Targets {
				digests[t.Name] = t.SHA256
			}
		} else {
			s.log.Warn("artifact repository unreadable; the audit names artifacts without digests", "err", err)
		}
	}
	return preflight.Commands(p, func(name string) string { return digests[name] })
}
