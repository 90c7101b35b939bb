package server

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/baseline"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/pkgversion"
	"github.com/drover-dev/drover/internal/remediate"
	"github.com/drover-dev/drover/internal/store"
)

// driftWindow is what drover_nodes_drifted counts: the nodes with a
// drift event in the last day.
const driftWindow = 24 * time.Hour

// baselineRoutes serves baselines, compliance and drift. Applying a
// baseline or exempting a node changes what compliance reports, not any
// node (a remediation rollout is created, and approved, as any other),
// so operators may, as they may import advisories; everyone may read.
func (s *Server) baselineRoutes(mux *http.ServeMux) {
	s.route(mux, "PUT /v1/baselines", RoleOperator, s.applyBaseline)
	s.route(mux, "POST /v1/baselines", RoleOperator, s.applyBaseline)
	s.route(mux, "GET /v1/baselines", RoleViewer, s.listBaselines)
	s.route(mux, "GET /v1/baselines/{name}", RoleViewer, s.getBaseline)
	s.route(mux, "GET /v1/baselines/{name}/compliance", RoleViewer, s.baselineCompliance)
	s.route(mux, "POST /v1/baselines/{name}/remediate", RoleOperator, s.remediate)
	s.route(mux, "POST /v1/baselines/{name}/exemptions", RoleOperator, s.exemptNode)
	s.route(mux, "GET /v1/baselines/{name}/exemptions", RoleViewer, s.listExemptions)
	s.route(mux, "GET /v1/drift", RoleViewer, s.listDrift)
}

func (s *Server) baselineStore() (store.Baselines, error) {
	b, ok := store.AsBaselines(s.st)
	if !ok {
		return nil, &httpError{status: http.StatusNotImplemented, code: api.CodeInternal, msg: "this store keeps no baselines"}
	}
	return b, nil
}

// driftMetrics: drover_drift_events_total counts the events this server
// detected; drover_nodes_drifted, read from the store at each scrape,
// the nodes with drift in the last driftWindow (every server's).
func (s *Server) driftMetrics() {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_drift_events_total",
		Help: "Drift events detected by this server, by kind (changed-out-of-band, pin-violated)."}, []string{"kind"})
	c.WithLabelValues(baseline.DriftChanged)
	c.WithLabelValues(baseline.DriftPinViolated)
	s.reg.MustRegister(c)
	if bs, ok := store.AsBaselines(s.st); ok {
		s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "drover_nodes_drifted",
			Help: "Nodes with a drift event in the last 24 hours."}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := bs.DriftedNodes(ctx, s.now().Add(-driftWindow))
			if err != nil {
				s.log.Warn("count drifted nodes", "err", err)
				return 0
			}
			return float64(n)
		}))
	}
	s.driftEvents = c
}

// detectDrift compares a node's stored facts with the ones it reports
// and records the package changes no drover step explains, the pins
// of the baselines selecting it that the new facts break, and the holds
// removed (baseline.DetectDrift). It runs before
// the new facts are stored; a failure is logged, never refuses the
// agent's report.
func (s *Server) detectDrift(ctx context.Context, old store.NodeRecord, newFacts fleet.Facts, labels map[string]string) {
	bs, ok := store.AsBaselines(s.st)
	if !ok || old.Facts.Packages == nil || newFacts.Packages == nil || (maps.Equal(old.Facts.Packages, newFacts.Packages) && slices.Equal(old.Facts.Holds, newFacts.Holds)) {
		return
	}
	now := s.now()
	var ex baseline.Explainer
	steps, err := bs.RecentSteps(ctx, old.ID, now.Add(-baseline.ExplainWindow))
	if err != nil {
		s.log.Warn("drift: read steps", "node", old.ID, "err", err)
		return
	}
	for _, st := range steps {
		var sp api.StepPayload
		if json.Unmarshal(st.Payload, &sp) == nil {
			// A succeeded apply step left its packages at their pins.
			ex.Add(sp.Actions, sp.Kind == string(store.StepApply) && st.Result == string(engine.PhaseSucceeded))
		}
	}
	pins := map[string][]baseline.Pin{}
	list, err := bs.ListBaselines(ctx)
	if err != nil {
		s.log.Warn("drift: read baselines", "node", old.ID, "err", err)
		return
	}
	n := &fleet.Node{ID: old.ID, Facts: newFacts, Labels: labels}
	for _, b := range list {
		if len(b.Rules.Pins) == 0 {
			continue
		}
		if b.Selector != "" {
			sel, err := fleet.CompileSelector(b.Selector)
			if err != nil {
				continue
			}
			if ok, err := sel.Match(n); err != nil || !ok {
				continue
			}
		}
		pins[b.Name] = b.Rules.Pins
	}
	ds := baseline.DetectDrift(old.ID, old.Facts, newFacts, &ex, pins)
	if len(ds) == 0 {
		return
	}
	if _, err := bs.RecordDrift(ctx, ds, now); err != nil {
		s.log.Warn("drift: record", "node", old.ID, "err", err)
		return
	}
	for _, d := range ds {
		s.driftEvents.WithLabelValues(d.Kind).Inc()
	}
	s.log.Info("drift detected", "node", old.ID, "events", len(ds), "first", ds[0].Reason)
}

func (s *Server) applyBaseline(w http.ResponseWriter, r *http.Request, id identity) error {
	bs, err := s.baselineStore()
	if err != nil {
		return err
	}
	var req api.BaselineApply
	if err := decodeLimit(w, r, &req, 2*baseline.MaxFile+64<<10); err != nil {
		return err
	}
	if req.File == "" {
		req.File = "request"
	}
	b, err := baseline.Parse(req.File, []byte(req.YAML))
	if err != nil {
		return badRequest("%v", err)
	}
	stored, changed, err := bs.PutBaseline(r.Context(), b, id.user, s.now())
	if err != nil {
		return err
	}
	s.log.Info("baseline applied", "actor", id.user, "baseline", stored.Name, "version", stored.Version, "changed", changed)
	writeJSON(w, http.StatusOK, api.BaselineApplied{Baseline: stored, Changed: changed})
	return nil
}

func (s *Server) listBaselines(w http.ResponseWriter, r *http.Request, _ identity) error {
	bs, err := s.baselineStore()
	if err != nil {
		return err
	}
	l, err := bs.ListBaselines(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.BaselineList{Baselines: l})
	return nil
}

func versionParam(r *http.Request) (int, error) {
	v := r.URL.Query().Get("version")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, badRequest("version %q: want a positive number", v)
	}
	return n, nil
}

func (s *Server) getBaseline(w http.ResponseWriter, r *http.Request, _ identity) error {
	bs, err := s.baselineStore()
	if err != nil {
		return err
	}
	v, err := versionParam(r)
	if err != nil {
		return err
	}
	b, err := bs.GetBaseline(r.Context(), r.PathValue("name"), v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// Compliance judges every node against the baseline's version
// (?version=, default the current) from the stored facts and the
// advisory catalog at the time of the request.
func (s *Server) baselineCompliance(w http.ResponseWriter, r *http.Request, _ identity) error {
	v, err := versionParam(r)
	if err != nil {
		return err
	}
	j, err := s.judgeBaseline(r.Context(), r.PathValue("name"), v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j.out)
	return nil
}

// judged is a baseline's compliance with what it was judged from.
type judged struct {
	b     baseline.Baseline
	advs  []advisory.Advisory
	nodes map[string]*fleet.Node // the selected nodes
	out   api.BaselineCompliance
}

// judgeBaseline judges every node against version v of baseline name
// (0 the current) at now.
func (s *Server) judgeBaseline(ctx context.Context, name string, v int) (judged, error) {
	bs, err := s.baselineStore()
	if err != nil {
		return judged{}, err
	}
	b, err := bs.GetBaseline(ctx, name, v)
	if err != nil {
		return judged{}, err
	}
	ex, err := bs.ListExemptions(ctx, b.Name)
	if err != nil {
		return judged{}, err
	}
	var advs []advisory.Advisory
	if b.Rules.Advisories != nil {
		c, err := s.advisoryStore()
		if err != nil {
			return judged{}, err
		}
		aq := store.AdvisoryQuery{MinSeverity: b.Rules.Advisories.MinSeverity, Limit: 10_000}
		for {
			page, err := c.ListAdvisories(ctx, aq)
			if err != nil {
				return judged{}, err
			}
			advs = append(advs, page...)
			if len(page) < aq.Limit {
				break
			}
			aq.After = page[len(page)-1].ID
		}
	}
	j, err := baseline.NewJudge(b, advs, ex)
	if err != nil {
		return judged{}, err
	}
	now := s.now()
	out := api.BaselineCompliance{Baseline: b.Name, Version: b.Version, At: now, Counts: map[string]int{}, Nodes: []baseline.NodeCompliance{}}
	kinds := map[string]pkgversion.Kind{}
	nodes := map[string]*fleet.Node{}
	after := ""
	for {
		page, err := s.st.ListNodes(ctx, store.NodeFilter{After: after, Limit: 1000})
		if err != nil {
			return judged{}, err
		}
		for _, rec := range page {
			after = rec.ID
			n := rec.Node()
			nc, err := j.Node(n, now)
			if err != nil {
				return judged{}, &httpError{status: http.StatusBadRequest, code: api.CodeInvalidCEL, msg: "baseline selector failed", err: err}
			}
			out.Counts[string(nc.Status)]++
			if nc.Status == baseline.NotSelected {
				continue
			}
			nodes[rec.ID] = n
			if k, ok := advisory.KindOf(rec.Facts.OS.Family); ok {
				kinds[rec.ID] = k
			}
			out.Nodes = append(out.Nodes, nc)
		}
		if len(page) < 1000 {
			break
		}
	}
	out.Needs = baseline.Needs(out.Nodes, func(node string) pkgversion.Kind {
		if k, ok := kinds[node]; ok {
			return k
		}
		return pkgversion.Dpkg
	})
	if out.Needs == nil {
		out.Needs = []baseline.Need{}
	}
	return judged{b: b, advs: advs, nodes: nodes, out: out}, nil
}

// remediate builds the remediation plan of a baseline's non-compliant
// nodes (internal/remediate), rehearses it on the live inventory and,
// unless dryRun, creates it from that dry run as POST /v1/rollouts
// does: approvals, the approval floor, audit and budgets apply. When
// the baseline's autoApprove policy approves (security advisories
// only, old enough), the plan asks for no start approval and the
// creation's audit entry says approved_by_policy; the server's approval
// floor still holds, and feature updates always wait for people.
func (s *Server) remediate(w http.ResponseWriter, r *http.Request, id identity) error {
	var req api.BaselineRemediate
	if err := decodeLimit(w, r, &req, 16<<10); err != nil {
		return err
	}
	ctx := r.Context()
	j, err := s.judgeBaseline(ctx, r.PathValue("name"), 0)
	if err != nil {
		return err
	}
	in := remediate.Input{Name: remediationName(j.b.Name), Baseline: j.b, Needs: j.out.Needs, Nodes: j.nodes, Advisories: j.advs}
	res, err := remediate.Build(in)
	if err != nil {
		return badRequest("%v", err)
	}
	out := api.BaselineRemediation{Baseline: j.b.Name, Version: j.b.Version, Nodes: orNoNodes(res.Nodes), Closes: res.Closes}
	for _, sk := range res.Skipped {
		out.Skipped = append(out.Skipped, api.RemediationSkip{Node: sk.Node, Reason: sk.Reason})
	}
	if res.Plan == nil {
		out.Policy = "no node to remediate"
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	ok, why := remediate.Policy(j.b, res, j.advs, s.now())
	if ok {
		in.WaiveStartApprovals = true
		if res, err = remediate.Build(in); err != nil {
			return badRequest("%v", err)
		}
	}
	out.Plan, out.AutoApproved, out.Policy = string(res.YAML), ok, why
	if res.Unheld != "" {
		out.Notes = append(out.Notes, res.Unheld)
	}
	if len(res.KernelLeft) > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("kernel left to a live patch on %s (livePatchPreferred): remediate again once this rollout is done", strings.Join(res.KernelLeft, ", ")))
	}
	if len(res.LivePatches) > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("live patch %s instead of kernel packages and a reboot (livePatchPreferred)", strings.Join(res.LivePatches, ", ")))
	}
	dr, err := s.rehearse(ctx, api.DryRunRequest{Plan: out.Plan, File: in.Name + ".yaml", Seed: req.Seed}, id)
	if err != nil {
		return err
	}
	if ok && dr.ApprovalFloor != "" {
		out.AutoApproved, out.Policy = false, why+"; but "+dr.ApprovalFloor+": left to people"
	}
	out.Waves = remediationWaves(res, dr.Members)
	out.DryRun = &dr
	if req.DryRun {
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	policy := ""
	if out.AutoApproved {
		policy = "baseline " + j.b.Name + " autoApprove.security"
	}
	view, err := s.create(ctx, api.CreateRolloutRequest{Plan: out.Plan, File: in.Name + ".yaml", FromDryRun: dr.ID}, id, policy)
	if err != nil {
		return err
	}
	if out.AutoApproved && view.ApprovalFloor != "" {
		out.AutoApproved, out.Policy = false, why+"; but "+view.ApprovalFloor+": left to people"
	}
	out.Rollout = &view
	s.log.Info("remediation rollout created", "actor", id.user, "baseline", j.b.Name, "rollout", view.ID, "nodes", len(res.Nodes), "autoApproved", out.AutoApproved)
	w.Header().Set("Location", "/v1/rollouts/"+view.ID)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func orNoNodes(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// remediationName is the plan name of a baseline's remediation.
func remediationName(b string) string {
	n := "remediate-" + b
	if len(n) > 63 {
		n = strings.TrimRight(n[:63], "-")
	}
	return n
}

// remediationWaves lists the dry run's waves in plan order, each with
// its nodes and the advisories they close.
func remediationWaves(res remediate.Result, members map[string][]string) []api.RemediationWave {
	var out []api.RemediationWave
	for _, w := range res.Plan.Waves {
		nodes := slices.Sorted(slices.Values(members[w.Name]))
		set := map[string]bool{}
		for _, n := range nodes {
			for _, a := range res.Closes[n] {
				set[a] = true
			}
		}
		out = append(out, api.RemediationWave{Name: w.Name, Nodes: orNoNodes(nodes), Advisories: orNoNodes(slices.Sorted(maps.Keys(set)))})
	}
	return out
}

func (s *Server) exemptNode(w http.ResponseWriter, r *http.Request, id identity) error {
	bs, err := s.baselineStore()
	if err != nil {
		return err
	}
	var req api.BaselineExempt
	if err := decodeLimit(w, r, &req, 16<<10); err != nil {
		return err
	}
	e := baseline.Exemption{Baseline: r.PathValue("name"), Node: req.Node, By: id.user, Reason: req.Reason, Expires: req.Until.UTC(), At: s.now()}
	if err := e.Validate(e.At); err != nil {
		return badRequest("%v", err)
	}
	if err := bs.PutExemption(r.Context(), e); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, e)
	return nil
}

func (s *Server) listExemptions(w http.ResponseWriter, r *http.Request, _ identity) error {
	bs, err := s.baselineStore()
	if err != nil {
		return err
	}
	if _, err := bs.GetBaseline(r.Context(), r.PathValue("name"), 0); err != nil {
		return err
	}
	l, err := bs.ListExemptions(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.BaselineExemptions{Exemptions: l})
	return nil
}

func (s *Server) listDrift(w http.ResponseWriter, r *http.Request, _ identity) error {
	bs, err := s.baselineStore()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	dq := store.DriftQuery{Node: q.Get("node"), Limit: 500}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("after %q: want an event id", v)
		}
		dq.After = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5000 {
			return badRequest("limit %q: want 1 to 5000", v)
		}
		dq.Limit = n
	}
	evs, err := bs.ListDrift(r.Context(), dq)
	if err != nil {
		return err
	}
	out := api.DriftList{Events: make([]api.DriftEvent, 0, len(evs))}
	for _, e := range evs {
		out.Events = append(out.Events, api.DriftEvent{ID: e.ID, Drift: e.Drift, DetectedAt: e.DetectedAt})
	}
	if len(evs) == dq.Limit {
		out.Next = strconv.FormatInt(evs[len(evs)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
