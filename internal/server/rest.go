package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/localize"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/preflight"
	"github.com/drover-dev/drover/internal/rehearsal"
	"github.com/drover-dev/drover/internal/sim"
	"github.com/drover-dev/drover/internal/store"
)

// httpError is an error with its HTTP status and API code. Handlers
// return errors; writeError is the one place that turns them into JSON.
type httpError struct {
	status   int
	code     string
	msg      string
	problems []api.Problem
	moves    []api.AssignmentMove
	err      error
}

func (e *httpError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *httpError) Unwrap() error { return e.err }

func badRequest(format string, args ...any) error {
	return &httpError{status: http.StatusBadRequest, code: api.CodeBadRequest, msg: fmt.Sprintf(format, args...)}
}

// writeError maps err to a status and API code. Store sentinels map to
// their statuses; anything unknown is a 500 whose detail is logged, not
// shown.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
	case errors.Is(err, store.ErrNotFound):
		he = &httpError{status: http.StatusNotFound, code: api.CodeNotFound, msg: err.Error()}
	case errors.Is(err, store.ErrConflict):
		he = &httpError{status: http.StatusConflict, code: api.CodeConflict, msg: err.Error()}
	case errors.Is(err, store.ErrForbidden):
		he = &httpError{status: http.StatusForbidden, code: api.CodeForbidden, msg: err.Error()}
	case errors.Is(err, engine.ErrInvalid):
		he = &httpError{status: http.StatusBadRequest, code: api.CodeBadRequest, msg: err.Error()}
	case errors.Is(err, context.Canceled):
		return
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		he = &httpError{status: http.StatusInternalServerError, code: api.CodeInternal, msg: "internal error; see the server log"}
	}
	writeJSON(w, he.status, api.Error{Error: he.Error(), Code: he.code, Problems: he.problems, Moves: he.moves})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors, and bodies over api.MaxBodyBytes get 413.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeLimit(w, r, v, api.MaxBodyBytes)
}

// decodeLimit is decode of a body of at most limit bytes.
func decodeLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	// The whole body is read at once: json.Decoder buffers a whole value
	// anyway, and a bufio.Reader per request to peek at its first byte
	// was 16% of the bytes a server of 50,000 polling agents allocated.
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &httpError{status: http.StatusRequestEntityTooLarge, code: api.CodeTooLarge,
				msg: fmt.Sprintf("request body over %d bytes", limit)}
		}
		return badRequest("invalid JSON body: %v", err)
	}
	body := bytes.TrimLeft(data, " \t\r\n")
	if len(body) == 0 {
		return badRequest("empty request body; want a JSON object")
	}
	if body[0] != '{' {
		return badRequest("invalid JSON body: want an object, got %q...", string(body[0]))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("invalid JSON body: data after the object")
	}
	return nil
}

// ifMatch reads an If-Match version: 0 when absent.
func ifMatch(r *http.Request) (int64, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(h, "W/"), `"`), 10, 64)
	if err != nil || v <= 0 {
		return 0, badRequest("If-Match %q: want a resource version like \"7\"", h)
	}
	return v, nil
}

type handler func(w http.ResponseWriter, r *http.Request, id identity) error

// handle registers h for pattern on mux and records the pattern: every
// route of the API and of the agent channel goes through here, so that
// the OpenAPI test sees them all.
func (s *Server) handle(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	s.m.routes = append(s.m.routes, pattern)
	mux.HandleFunc(pattern, h)
}

// route registers h for pattern, requiring role need.
func (s *Server) route(mux *http.ServeMux, pattern string, need Role, h handler) {
	s.handle(mux, pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		defer func() { s.m.apiLatency.WithLabelValues(pattern).Observe(time.Since(start).Seconds()) }()
		id, err := s.authenticateLimited(w, r)
		if err == nil && id.agent != "" {
			err = &httpError{status: http.StatusForbidden, code: api.CodeForbidden, msg: "agents may not use the REST API"}
		}
		if err == nil && !allowed(id.role, need) {
			err = &httpError{status: http.StatusForbidden, code: api.CodeForbidden,
				msg: fmt.Sprintf("%s (role %s) may not do this: it needs role %s", id.user, id.role, need)}
		}
		if err == nil {
			err = h(w, r, id)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) routes(mux *http.ServeMux) {
	s.route(mux, "GET /v1/nodes", RoleViewer, s.listNodes)
	s.route(mux, "GET /v1/nodes/{id}", RoleViewer, s.getNode)
	s.route(mux, "PUT /v1/nodes/{id}/labels", RoleOperator, s.setLabels)
	s.route(mux, "GET /v1/nodes/{id}/diff", RoleViewer, s.nodeDiff)
	s.route(mux, "GET /v1/nodes/{id}/evidence", RoleViewer, s.listEvidence)
	s.route(mux, "POST /v1/nodes/{id}/evidence", RoleOperator, s.askEvidence)
	s.route(mux, "GET /v1/evidence/{id}", RoleViewer, s.getEvidence)
	s.route(mux, "GET /v1/evidence-requests/{id}", RoleViewer, s.getEvidenceRequest)
	s.route(mux, "POST /v1/plans/validate", RoleViewer, s.validatePlan)
	s.route(mux, "POST /v1/plans/dry-run", RoleViewer, s.dryRun)
	s.route(mux, "POST /v1/rollouts", RoleOperator, s.createRollout)
	s.route(mux, "GET /v1/rollouts", RoleViewer, s.listRollouts)
	s.route(mux, "GET /v1/rollouts/{id}", RoleViewer, s.getRollout)
	s.route(mux, "GET /v1/history", RoleViewer, s.exportHistory)
	for _, c := range commands {
		s.route(mux, "POST /v1/rollouts/{id}/"+c.action, c.need, s.command(c.action))
	}
	s.lineRoutes(mux)
	s.route(mux, "GET /v1/whoami", RoleViewer, s.whoami)
	s.route(mux, "GET /v1/events", RoleViewer, s.events)
	s.route(mux, "GET /v1/rollouts/{id}/events", RoleViewer, s.events)
	s.route(mux, "GET /v1/rollouts/{id}/preflight", RoleViewer, s.getPreflight)
	s.route(mux, "GET /v1/audit", RoleViewer, s.listAudit)
	s.route(mux, "GET /v1/audit/verify", RoleViewer, s.verifyAudit)
	s.auditLogRoutes(mux)
	s.securityRoutes(mux)
	s.fleetRoutes(mux)
	s.inventoryRoutes(mux)
	s.advisoryRoutes(mux)
	s.baselineRoutes(mux)
	s.webhookRoutes(mux)
	s.handle(mux, "GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
	s.agentRoutes(mux)
}

// commands are the rollout commands and the role each needs.
var commands = []struct {
	action string
	need   Role
}{{"approve", RoleApprover}, {"pause", RoleOperator}, {"resume", RoleOperator}, {"abort", RoleOperator},
	{"rollback", RoleOperator}, {"resolve", RoleOperator}, {"stop", RoleOperator}}

// whoami names the caller, its role and the actions the role permits.
func (s *Server) whoami(w http.ResponseWriter, _ *http.Request, id identity) error {
	out := api.WhoAmI{Name: id.user, Role: string(id.role), Actions: []string{}}
	if allowed(id.role, RoleOperator) {
		out.Actions = append(out.Actions, "create", "label")
	}
	for _, c := range commands {
		if allowed(id.role, c.need) {
			out.Actions = append(out.Actions, c.action)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) online(n store.NodeRecord) bool { return s.now().Before(n.LeaseUntil) }

func (s *Server) nodeView(n store.NodeRecord) api.Node {
	labels := n.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return api.Node{ID: n.ID, Facts: n.Facts, Labels: labels, Version: n.Version, AgentVersion: n.AgentVersion,
		RegisteredAt: n.RegisteredAt, LastSeen: n.LastSeen, Online: s.online(n)}
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, _ identity) error {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit %q: want 1..1000", v)
		}
		limit = n
	}
	var sel *fleet.Selector
	if expr := q.Get("selector"); expr != "" {
		var err error
		if sel, err = fleet.CompileSelector(expr); err != nil {
			return &httpError{status: http.StatusBadRequest, code: api.CodeInvalidCEL, msg: "invalid selector", err: err}
		}
	}
	out := api.NodeList{Nodes: []api.Node{}}
	after := q.Get("after")
	// Without a selector every node read is returned: read one more than
	// the page to know whether there is a next one. A selector may drop
	// most of them: read in large pages.
	pageSize := limit + 1
	if sel != nil {
		pageSize = max(pageSize, 500)
	}
	for {
		page, err := s.st.ListNodes(r.Context(), store.NodeFilter{After: after, Limit: pageSize})
		if err != nil {
			return err
		}
		for _, n := range page {
			after = n.ID
			if sel != nil {
				ok, err := sel.Match(n.Node())
				if err != nil {
					return &httpError{status: http.StatusBadRequest, code: api.CodeInvalidCEL, msg: "selector failed on node " + n.ID, err: err}
				}
				if !ok {
					continue
				}
			}
			if len(out.Nodes) == limit {
				out.Next = out.Nodes[len(out.Nodes)-1].ID
				writeJSON(w, http.StatusOK, out)
				return nil
			}
			out.Nodes = append(out.Nodes, s.nodeView(n))
		}
		if len(page) < pageSize {
			break
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request, _ identity) error {
	n, err := s.st.GetNode(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	v := s.nodeView(n)
	fv, err := s.fleet.view(r.Context(), false)
	if err != nil {
		return err
	}
	if h, ok := fv.byNode[n.ID]; ok {
		v.HeldBy = &api.Hold{Node: h.Node, Kind: h.Kind, Holder: h.Holder, Name: h.Name, Since: h.Since}
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(n.Version, 10)))
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) setLabels(w http.ResponseWriter, r *http.Request, id identity) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if v == 0 {
		return &httpError{status: http.StatusPreconditionRequired, code: api.CodePrecondReq,
			msg: "changing labels needs If-Match with the node's version (GET it first)"}
	}
	var req api.LabelsRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	for k := range req.Labels {
		if err := fleet.ValidKey(k); err != nil {
			return badRequest("label %q: %v", k, err)
		}
	}
	n, err := s.st.SetNodeLabels(r.Context(), r.PathValue("id"), req.Labels, v, id.user)
	if err != nil {
		return err
	}
	s.wake.broadcast()
	writeJSON(w, http.StatusOK, s.nodeView(n))
	return nil
}

// parsePlan parses a plan from a request, turning plan errors into an
// invalid_plan answer with positions.
func parsePlan(file, text string) (*plan.Plan, error) {
	if file == "" {
		file = "plan.yaml"
	}
	p, err := plan.Parse(file, []byte(text))
	if err == nil {
		return p, nil
	}
	var perrs plan.Errors
	if errors.As(err, &perrs) {
		he := &httpError{status: http.StatusUnprocessableEntity, code: api.CodeInvalidPlan, msg: fmt.Sprintf("plan %s has %d problem(s)", file, len(perrs))}
		for _, e := range perrs {
			he.problems = append(he.problems, api.Problem{File: e.File, Line: e.Line, Col: e.Col, Path: e.Path, Message: e.Msg})
		}
		return nil, he
	}
	return nil, badRequest("plan: %v", err)
}

// inventory loads every node as the engine sees it.
func (s *Server) inventory(ctx context.Context) ([]*fleet.Node, error) {
	var out []*fleet.Node
	after := ""
	for {
		page, err := s.st.ListNodes(ctx, store.NodeFilter{After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, n := range page {
			out = append(out, n.Node())
			after = n.ID
		}
		if len(page) < 1000 {
			return out, nil
		}
	}
}

// assign parses and assigns a plan against the live inventory.
func (s *Server) assign(ctx context.Context, file, text string, seed uint64) (*plan.Plan, *engine.Assignment, []*fleet.Node, error) {
	p, err := parsePlan(file, text)
	if err != nil {
		return nil, nil, nil, err
	}
	nodes, err := s.inventory(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	a, err := engine.Assign(p, nodes, seed)
	if err != nil {
		var pe *engine.PlanError
		if errors.As(err, &pe) {
			pos, _ := p.Position(pe.Path)
			return nil, nil, nil, &httpError{status: http.StatusUnprocessableEntity, code: api.CodeInvalidPlan, msg: p.Where(pe.Path) + ": " + pe.Msg,
				problems: []api.Problem{{File: p.File(), Line: pos.Line, Col: pos.Col, Path: pe.Path, Message: pe.Msg}}}
		}
		return nil, nil, nil, err
	}
	if err := s.preflight(p, a); err != nil {
		return nil, nil, nil, err
	}
	return p, a, nodes, nil
}

func (s *Server) validatePlan(w http.ResponseWriter, r *http.Request, _ identity) error {
	var req api.PlanRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	p, a, _, err := s.assign(r.Context(), req.File, req.Plan, 1)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) && he.code == api.CodeInvalidPlan {
			writeJSON(w, http.StatusOK, api.ValidateResponse{Valid: false, Problems: he.problems})
			return nil
		}
		return err
	}
	n := 0
	for _, x := range a.Nodes {
		if x.State.Phase != engine.PhaseSkipped {
			n++
		}
	}
	writeJSON(w, http.StatusOK, api.ValidateResponse{Valid: true, Nodes: n, Refusals: refusals(p, a)})
	return nil
}

func (s *Server) createRollout(w http.ResponseWriter, r *http.Request, id identity) error {
	var req api.CreateRolloutRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	view, err := s.create(r.Context(), req, id, "")
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/rollouts/"+view.ID)
	writeJSON(w, http.StatusCreated, view)
	return nil
}

// create creates the rollout req asks for, as POST /v1/rollouts does.
// policy, when not "", names the policy that approved the start (the
// plan then asks for no start approval: the server's approval floor
// still applies); it is recorded in the audit entry of the creation.
func (s *Server) create(ctx context.Context, req api.CreateRolloutRequest, id identity, policy string) (api.Rollout, error) {
	seed, dr, err := s.fromDryRun(ctx, &req)
	if err != nil {
		return api.Rollout{}, err
	}
	p, a, inv, err := s.assign(ctx, req.File, req.Plan, seed)
	if err != nil {
		return api.Rollout{}, err
	}
	hash := rehearsal.Hash(a)
	moves, err := compareDryRun(dr, p, inv, a, hash, req.AcceptChanges)
	if err != nil {
		return api.Rollout{}, err
	}
	need := s.requiredApprovals(p, a, inv)
	warnings, err := s.approverWarnings(ctx, p, need.Needed, id.user)
	if err != nil {
		return api.Rollout{}, err
	}
	if need.Floor != "" {
		policy = "" // the server's approval floor is people's: no policy approves past it
	}
	overlaps, err := s.overlaps(ctx, p, a)
	if err != nil {
		return api.Rollout{}, err
	}
	sum := sha256.Sum256([]byte(req.Plan))
	now := s.now()
	ro := store.Rollout{
		ID: newRolloutID(p.Name, now), Name: p.Name, Author: id.user, Plan: []byte(req.Plan),
		PlanSHA256: hex.EncodeToString(sum[:]), State: engine.RolloutRunning, Seed: seed, CreatedAt: now, UpdatedAt: now,
		ApprovalsNeeded: need.Needed, ApprovalFloor: need.Floor,
		Commands: s.commands(p), AssignmentSHA256: hash, PolicyApproval: policy,
	}
	if dr != nil {
		ro.DryRun = dr.ID
	}
	if need.Needed > 0 {
		ro.State = engine.RolloutPendingApproval
		ro.Reason = fmt.Sprintf("waiting for approvals: 0/%d", need.Needed)
	}
	nodes := make([]store.RolloutNode, len(a.Nodes))
	for i, n := range a.Nodes {
		nodes[i] = store.RolloutNode{NodeID: n.ID, Index: i, State: n.State}
	}
	waves := make([]store.Wave, len(p.Waves))
	for i, wv := range p.Waves {
		waves[i] = store.Wave{Name: wv.Name, WaveStatus: engine.WaveStatus{State: engine.WavePending}}
	}
	ro, err = s.st.CreateRollout(ctx, ro, nodes, waves, id.user)
	if err != nil {
		return api.Rollout{}, err
	}
	s.fp.hit(fpAfterCreate)
	s.pred.predict(ctx, ro, p, inv)
	s.sched.remember(ro.ID, a.Uncovered)
	s.sched.kick()
	s.wake.broadcast()
	view, err := s.rolloutView(ctx, ro.ID, viewWaits)
	if err != nil {
		return api.Rollout{}, err
	}
	view.Uncovered = a.Uncovered
	view.Warnings = warnings
	for _, wn := range warnings {
		s.log.Warn("rollout created with a problem", "rollout", ro.ID, "warning", wn)
	}
	view.Refusals = refusals(p, a)
	view.Overlaps = overlaps
	view.Moves = moves
	return view, nil
}

func randomSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// newRolloutID is NAME-YYYYMMDD-HHMMSS-XXXX: sortable, readable, unique.
func newRolloutID(name string, now time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%s-%s", name, now.UTC().Format("20060102-150405"), hex.EncodeToString(b[:]))
}

func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request, _ identity) error {
	rs, err := s.st.ListRollouts(r.Context())
	if err != nil {
		return err
	}
	out := api.RolloutList{Rollouts: []api.Rollout{}}
	for _, ro := range rs {
		v, err := s.rolloutView(r.Context(), ro.ID, viewSummary)
		if err != nil {
			return err
		}
		out.Rollouts = append(out.Rollouts, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getRollout(w http.ResponseWriter, r *http.Request, _ identity) error {
	q := r.URL.Query()
	parts := viewWaits | viewETA
	if q.Get("nodes") == "true" {
		parts |= viewNodes
	}
	if q.Get("plan") == "true" {
		parts |= viewPlan
	}
	v, err := s.rolloutView(r.Context(), r.PathValue("id"), parts)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(v.Version, 10)))
	writeJSON(w, http.StatusOK, v)
	return nil
}

// viewParts are the optional parts of a rollout view.
type viewParts int

const (
	viewSummary viewParts = 0
	viewWaits   viewParts = 1 << iota // why nodes wait (a Decide over the rollout)
	viewNodes                         // every node's state
	viewPlan                          // the plan's text
	viewETA                           // the ETA of a running rollout (simulations, cached)
)

// rolloutView builds the API view of a rollout. Its waits are what Decide
// says now, so any server (leader or not) explains why nodes wait.
func (s *Server) rolloutView(ctx context.Context, id string, parts viewParts) (api.Rollout, error) {
	withNodes, withPlan := parts&viewNodes != 0, parts&viewPlan != 0
	data, rc, err := s.sched.load(ctx, id)
	if err != nil {
		return api.Rollout{}, err
	}
	ro := data.Rollout
	v := api.Rollout{ID: ro.ID, Name: ro.Name, Author: ro.Author, State: ro.State, Reason: ro.Reason,
		RollbackScope: ro.RollbackScope, Version: ro.Version, PlanSHA256: ro.PlanSHA256, CreatedAt: ro.CreatedAt,
		Seed: strconv.FormatUint(ro.Seed, 10), AssignmentSHA256: ro.AssignmentSHA256, DryRun: ro.DryRun,
		UpdatedAt: ro.UpdatedAt, Counts: map[string]int{}, Total: len(data.Nodes)}
	if withPlan {
		v.Plan = string(ro.Plan)
	}
	p := rc.plan
	v.ApprovalsNeeded, v.ApprovalFloor = max(p.Approvals.Start, ro.ApprovalsNeeded), ro.ApprovalFloor
	approvals := make([]engine.Approval, len(data.Approvals))
	for i, a := range data.Approvals {
		approvals[i] = engine.Approval{By: a.By, Wave: a.Wave, At: a.At}
	}
	v.ApprovalsGot = len(engine.Approvers(ro.Author, approvals, ""))
	waveCounts := map[string]map[string]int{}
	waveNodes := map[string]int{}
	for _, n := range data.Nodes {
		v.Counts[string(n.State.Phase)]++
		if waveCounts[n.State.Wave] == nil {
			waveCounts[n.State.Wave] = map[string]int{}
		}
		waveCounts[n.State.Wave][string(n.State.Phase)]++
		waveNodes[n.State.Wave]++
		if withNodes {
			fn := rc.nodes[n.NodeID]
			rn := api.RolloutNode{ID: n.NodeID, Wave: n.State.Wave, Phase: n.State.Phase, Attempt: n.State.Attempt,
				Since: n.State.Since, Reason: n.State.Reason, StepID: n.StepID}
			if fn != nil {
				rn.Zone, rn.Family, rn.Class = fn.Value("zone"), fn.Facts.OS.Family, fn.Facts.Hardware.Class
			}
			v.Nodes = append(v.Nodes, rn)
		}
	}
	stored := map[string]store.Wave{}
	for _, wv := range data.Waves {
		stored[wv.Name] = wv
	}
	for _, pw := range p.Waves {
		sw := stored[pw.Name]
		st := sw.State
		if st == "" {
			st = engine.WavePending
		}
		v.Waves = append(v.Waves, api.Wave{Name: pw.Name, State: st, Reason: sw.Reason, Nodes: waveNodes[pw.Name],
			Counts: orEmpty(waveCounts[pw.Name]), StartedAt: sw.StartedAt, EndedAt: sw.EndedAt, After: pw.After, Canary: pw.Canary != nil,
			ApprovalsNeeded: pw.Approvals, ApprovalsGot: len(engine.Approvers(ro.Author, approvals, pw.Name))})
	}
	for _, g := range data.Gates {
		v.Gates = append(v.Gates, api.Gate{Wave: g.Wave, Gate: g.Gate, Verdict: g.Verdict, Reason: g.Reason, At: g.At})
	}
	for _, a := range data.Approvals {
		v.Approvals = append(v.Approvals, api.Approval{By: a.By, Wave: a.Wave, AssignmentSHA256: a.AssignmentSHA256, At: a.At})
	}
	in := rc.input(data, s.now())
	if in.Preflight, err = s.preflightStatus(ctx, rc, ro.State, in.Now); err != nil {
		return api.Rollout{}, err
	}
	if !ro.State.Terminal() {
		in.BreakGlass = s.breakGlassReason(ctx, id, rc.plan)
		if in.LineStop, err = s.lineStop(ctx); err != nil {
			return api.Rollout{}, err
		}
		s.applyFleet(ctx, &in, false)
	}
	d := engine.Decide(in)
	for _, c := range engine.Clocks(in) {
		if i := slices.IndexFunc(v.Waves, func(w api.Wave) bool { return w.Name == c.Wave }); i >= 0 {
			v.Waves[i].BakeUntil, v.Waves[i].Soaking, v.Waves[i].SoakUntil = c.BakeUntil, c.Soaking, c.SoakUntil
		}
	}
	if parts&viewWaits != 0 {
		v.Waits = d.Waits
		if v.Localisation, err = s.localisation(ctx, ro.ID, rc.plan, v.Counts, in.Nodes); err != nil {
			return api.Rollout{}, err
		}
	}
	if parts&viewETA != 0 && ro.State == engine.RolloutRunning {
		if v.ETA, err = s.pred.eta(ctx, rc, data, in); err != nil {
			s.log.Warn("rollout ETA failed", "rollout", id, "err", err)
		}
	}
	if v.Prediction, err = s.pred.prediction(ctx, ro, data.Waves); err != nil {
		return api.Rollout{}, err
	}
	for _, l := range d.Limits {
		v.Limits = append(v.Limits, api.Limit{Key: l.Key, Domain: l.Domain, InUse: l.InUse, Limit: l.Limit})
	}
	v.Uncovered = rc.uncovered
	if withNodes || (parts&viewWaits != 0 && ro.State.Terminal()) {
		if err := s.addOutcomes(ctx, &v, data.Nodes); err != nil {
			return api.Rollout{}, err
		}
	}
	return v, nil
}

// localisation says what the rollout's failed nodes share (see
// engine.Localise); none, and no query, while no node failed.
func (s *Server) localisation(ctx context.Context, id string, p *plan.Plan, counts map[string]int, nodes []engine.Node) ([]api.Finding, error) {
	failures := counts[string(engine.PhaseFailed)] + counts[string(engine.PhaseQuarantined)] + counts[string(engine.PhaseRollbackUnhealthy)]
	var before map[string]engine.Phase
	if counts[string(engine.PhaseRolledBack)] > 0 {
		var err error
		if before, err = s.st.RolledBackApplies(ctx, id); err != nil {
			return nil, err
		}
		for _, ph := range before {
			if ph == engine.PhaseFailed {
				failures++
			}
		}
	}
	if failures == 0 {
		return nil, nil
	}
	return apiFindings(engine.Localise(p, nodes, before)), nil
}

func apiFindings(fs []localize.Finding) []api.Finding {
	var out []api.Finding
	for _, f := range fs {
		out = append(out, api.Finding{Attribute: f.Attribute, Value: f.Value, FailedWith: f.FailedWith, Failed: f.Failed,
			SucceededWith: f.SucceededWith, Succeeded: f.Succeeded, P: f.P, Tests: f.Tests, Text: f.String()})
	}
	return out
}

// addOutcomes counts what the phases do not say: the succeeded nodes
// whose step changed nothing and the rolled-back nodes whose step had
// failed, in the rollout, its waves and its nodes (when listed). It reads
// the steps' evidence and results, so views ask for it only for a
// rollout that ended or with its nodes.
func (s *Server) addOutcomes(ctx context.Context, v *api.Rollout, nodes []store.RolloutNode) error {
	unchanged, err := s.st.UnchangedNodes(ctx, v.ID)
	if err != nil {
		return err
	}
	failed, err := s.st.RolledBackFailed(ctx, v.ID)
	if err != nil {
		return err
	}
	if len(unchanged) == 0 && len(failed) == 0 {
		return nil
	}
	isUnchanged, isFailed := map[string]bool{}, map[string]bool{}
	for _, id := range unchanged {
		isUnchanged[id] = true
	}
	for _, id := range failed {
		isFailed[id] = true
	}
	v.Unchanged, v.RolledBackFailed = len(unchanged), len(failed)
	waveOf := map[string]int{}
	for i, w := range v.Waves {
		waveOf[w.Name] = i
	}
	for _, n := range nodes {
		i, ok := waveOf[n.State.Wave]
		switch {
		case !ok:
		case isUnchanged[n.NodeID]:
			v.Waves[i].Unchanged++
		case isFailed[n.NodeID]:
			v.Waves[i].RolledBackFailed++
		}
	}
	for i := range v.Nodes {
		v.Nodes[i].Unchanged = isUnchanged[v.Nodes[i].ID]
	}
	return nil
}

func orEmpty(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return m
}

func (s *Server) command(action string) handler {
	return func(w http.ResponseWriter, r *http.Request, id identity) error {
		v, err := ifMatch(r)
		if err != nil {
			return err
		}
		var req api.CommandRequest
		if r.ContentLength != 0 {
			if err := decode(w, r, &req); err != nil {
				return err
			}
		}
		cmd := store.Command{Actor: id.user, Action: action, Wave: req.Wave, Reason: req.Reason, NodeID: req.Node}
		if action == "approve" {
			if err := s.checkApproval(r.Context(), r.PathValue("id"), req.Wave); err != nil {
				return err
			}
		}
		if action == "resolve" {
			switch req.Resolution {
			case "retry":
				cmd.Resolution = engine.PhasePending
			case "quarantine":
				cmd.Resolution = engine.PhaseQuarantined
			case "skip":
				cmd.Resolution = engine.PhaseSkipped
			default:
				return badRequest("resolution %q: want retry, quarantine or skip", req.Resolution)
			}
			if req.Node == "" {
				return badRequest("resolve needs a node")
			}
		}
		if _, err := s.st.Command(r.Context(), r.PathValue("id"), v, cmd, s.now()); err != nil {
			return err
		}
		if action == "abort" || action == "stop" {
			s.notifyCancels(r.Context())
		}
		s.sched.kick()
		s.wake.broadcast()
		view, err := s.rolloutView(r.Context(), r.PathValue("id"), viewWaits)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, view)
		return nil
	}
}

// auditPageBytes bounds the details of one page of GET /v1/audit, so
// that a page's memory is bounded whatever its limit and the entries'
// size; Next says where the next page starts.
const auditPageBytes = 8 << 20

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, _ identity) error {
	q := r.URL.Query()
	after, limit := int64(0), 500
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("after %q: want a sequence number", v)
		}
		after = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5000 {
			return badRequest("limit %q: want 1..5000", v)
		}
		limit = n
	}
	before := int64(0)
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return badRequest("before %q: want a sequence number", v)
		}
		before = n
	}
	var newest bool
	switch v := q.Get("order"); v {
	case "", "oldest":
	case "newest":
		newest = true
	default:
		return badRequest("order %q: want oldest or newest", v)
	}
	es, more, err := s.st.AuditPage(r.Context(), store.AuditQuery{After: after, Before: before, Newest: newest, Limit: limit,
		Rollout: q.Get("rollout"), MaxBytes: auditPageBytes})
	if err != nil {
		return err
	}
	out := api.AuditList{Entries: make([]api.AuditEntry, 0, len(es))}
	for _, e := range es {
		out.Entries = append(out.Entries, auditView(e))
	}
	if more && len(es) > 0 {
		if newest {
			out.Before = es[len(es)-1].Seq
		} else {
			out.Next = es[len(es)-1].Seq
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func auditView(e store.AuditEntry) api.AuditEntry {
	var detail json.RawMessage
	if len(bytes.TrimSpace(e.Detail)) > 0 {
		detail = e.Detail
	}
	return api.AuditEntry{Seq: e.Seq, At: e.At, Actor: e.Actor, Action: e.Action, Object: e.Object, Rollout: e.Rollout,
		Detail: detail, Hash: hex.EncodeToString(e.Hash)}
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request, _ identity) error {
	v, err := s.st.VerifyAudit(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.AuditVerification{OK: v.OK, Entries: v.Entries, Head: hex.EncodeToString(v.Head),
		FirstBad: v.FirstBad, Problem: v.Problem, Checkpoint: v.Checkpoint, Root: v.Root.String()})
	return nil
}

// dryRun runs the simulator against the live inventory: the same engine,
// on a virtual clock, with no failures injected, under the request's seed
// or a random one. It keeps the dry run (plan, seed, assignment) so that
// a rollout created from it gets the same waves.
func (s *Server) dryRun(w http.ResponseWriter, r *http.Request, id identity) error {
	var req api.DryRunRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	out, err := s.rehearse(r.Context(), req, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// rehearse runs and keeps the dry run req asks for, as POST
// /v1/plans/dry-run does.
func (s *Server) rehearse(ctx context.Context, req api.DryRunRequest, id identity) (api.DryRunResponse, error) {
	seed, given, err := parseSeed(req.Seed)
	if err != nil {
		return api.DryRunResponse{}, err
	}
	if !given {
		seed = randomSeed()
	}
	p, a, nodes, err := s.assign(ctx, req.File, req.Plan, seed)
	if err != nil {
		return api.DryRunResponse{}, err
	}
	need := s.requiredApprovals(p, a, nodes)
	warnings, err := s.approverWarnings(ctx, p, need.Needed, id.user)
	if err != nil {
		return api.DryRunResponse{}, err
	}
	overlaps, err := s.overlaps(ctx, p, a)
	if err != nil {
		var he *httpError
		if !errors.As(err, &he) || he.code != api.CodeOverlap {
			return api.DryRunResponse{}, err
		}
	}
	var pf *api.PreflightView
	var answers map[string]engine.PreflightResult
	if req.Preflight {
		// Asking runs the drivers' pre-flight on every target node: as
		// creating a rollout does, it needs an operator.
		if !allowed(id.role, RoleOperator) {
			return api.DryRunResponse{}, &httpError{status: http.StatusForbidden, code: api.CodeForbidden,
				msg: fmt.Sprintf("%s (role %s) may not ask nodes for a pre-flight: it needs role %s", id.user, id.role, RoleOperator)}
		}
		if pf, answers, err = s.dryRunPreflight(ctx, p, a); err != nil {
			return api.DryRunResponse{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := s.pred.dryRun(ctx, p, nodes, seed, s.now().UTC().Truncate(time.Second), answers)
	if err != nil {
		return api.DryRunResponse{}, badRequest("dry run: %v", err)
	}
	dr, rec, err := s.keepDryRun(ctx, p, req.Plan, seed, nodes, a, id.user)
	if err != nil {
		return api.DryRunResponse{}, err
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return api.DryRunResponse{}, err
	}
	text := approvalsText(need, warnings) + sim.Summary(res)
	rs := refusals(p, a)
	for _, r := range rs {
		text += "agents would refuse, so these nodes would fail with nothing run: " + r.Text() + "\n"
	}
	for _, n := range preflight.NoWayBacks(p, preflight.Targets(a)) {
		text += "no way back: " + n.Text() + "\n"
	}
	if pf != nil {
		text += preflightText(pf)
	}
	return api.DryRunResponse{ID: dr.ID, Seed: strconv.FormatUint(seed, 10), AssignmentSHA256: dr.AssignmentSHA256,
		Members: rec.Waves(), Canary: rec.Canary(), Result: raw, Text: text, Refusals: rs, Overlaps: overlaps,
		ApprovalsNeeded: need.Needed, ApprovalFloor: need.Floor, Warnings: warnings, Preflight: pf}, nil
}
