package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/disruption"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/window"
)

// fleetView is what the rest of the fleet imposes on every rollout, as
// of one load: the node holds, the budgets with their index over the
// fleet and the compiled freezes. The store is the arbiter (it refuses a
// dispatch that a stale view allowed); the view only lets the engine
// decide what the store will accept, and say why the rest waits.
type fleetView struct {
	state   store.FleetState
	index   *disruption.Index // nil without budgets
	freezes *disruption.Freezes
	byNode  map[string]disruption.Hold
}

// fleetCache keeps the latest fleetView and rebuilds the expensive parts
// (the budget index over every node, the compiled freezes) only when the
// budgets, the fleet or the freezes changed.
type fleetCache struct {
	s     *Server
	dirty atomic.Bool // a commit dispatched steps since the last load
	// several is whether the last pass had more than one active
	// rollout: only then can the holds of one bear on another's
	// decisions, and only then is the view reloaded on every pass and
	// after every dispatch (otherwise once a tick, for budget and freeze
	// changes, and after a change through this server's API).
	several atomic.Bool

	mu        sync.Mutex
	cur       *fleetView
	loadedAt  time.Time // of cur, by the server's clock
	indexKey  string
	index     *disruption.Index
	freezeKey string
	freezes   *disruption.Freezes
}

// load reads the fleet state and returns the view, reusing the index and
// compiled freezes when their inputs did not change. A store without
// fleet safety objects yields an empty view.
func (fc *fleetCache) load(ctx context.Context) (*fleetView, error) {
	fs, ok := store.AsFleetSafety(fc.s.st)
	if !ok {
		return &fleetView{}, nil
	}
	fc.dirty.Store(false)
	st, err := fs.LoadFleetState(ctx)
	if err != nil {
		return nil, err
	}
	fv := &fleetView{state: st, byNode: make(map[string]disruption.Hold, len(st.Holds))}
	for _, h := range st.Holds {
		fv.byNode[h.Node] = h
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if len(st.Budgets) > 0 {
		key := st.NodesStamp
		for _, b := range st.Budgets {
			key += fmt.Sprintf("|%s@%d@%d", b.Name, b.Version, b.CreatedAt.UnixNano())
		}
		if key != fc.indexKey || fc.index == nil {
			nodes, err := fc.s.inventory(ctx)
			if err != nil {
				return nil, err
			}
			bs := make([]disruption.Budget, len(st.Budgets))
			for i, b := range st.Budgets {
				bs[i] = b.Budget
			}
			if fc.index, err = disruption.NewIndex(bs, nodes); err != nil {
				return nil, err
			}
			fc.indexKey = key
		}
		fv.index = fc.index
	}
	key := ""
	for _, f := range st.Freezes {
		key += fmt.Sprintf("|%s@%d@%d", f.Name, f.Version, f.CreatedAt.UnixNano())
	}
	if key != fc.freezeKey || fc.freezes == nil {
		fz := make([]disruption.Freeze, len(st.Freezes))
		for i, f := range st.Freezes {
			fz[i] = f.Freeze
		}
		if fc.freezes, err = disruption.CompileFreezes(fz); err != nil {
			return nil, err
		}
		fc.freezeKey = key
	}
	fv.freezes = fc.freezes
	fc.cur, fc.loadedAt = fv, fc.s.now()
	return fv, nil
}

// pass tells the cache that a scheduling pass over active rollouts
// begins: with several, reports and commands since the last pass may
// have released holds another rollout waits for.
func (fc *fleetCache) pass(active int) {
	fc.several.Store(active > 1)
	if active > 1 {
		fc.dirty.Store(true)
	}
}

// dispatched tells the cache that a commit took holds.
func (fc *fleetCache) dispatched() {
	if fc.several.Load() {
		fc.dirty.Store(true)
	}
}

// view returns the latest view, loading it when there is none yet, when
// asked to refresh, when a commit dispatched steps since, or when it is a
// scheduler tick old (a server that does not lead sees the leader's
// holds within a tick).
func (fc *fleetCache) view(ctx context.Context, refresh bool) (*fleetView, error) {
	fc.mu.Lock()
	cur, at := fc.cur, fc.loadedAt
	fc.mu.Unlock()
	if cur != nil && !refresh && !fc.dirty.Load() && fc.s.now().Sub(at) < fc.s.cfg.Tick {
		return cur, nil
	}
	return fc.load(ctx)
}

// fleet builds the engine's Fleet for one rollout: the nodes of its
// target that others hold, the budgets covering its nodes and the fleet
// freezes in force now that cover them. nil when nothing applies.
func (fv *fleetView) fleet(id string, nodes []engine.Node, now time.Time) *engine.Fleet {
	f := &engine.Fleet{}
	for _, n := range nodes {
		if h, ok := fv.byNode[n.ID]; ok && !(h.Kind == disruption.HolderRollout && h.Holder == id) {
			if f.Held == nil {
				f.Held = map[string]engine.Holder{}
			}
			f.Held[n.ID] = h.EngineHolder()
		}
	}
	if fv.index != nil {
		f.Budgets = fv.index.ForRollout(id, nodes, fv.state.Holds)
	}
	if fv.freezes != nil {
		f.Freezes = fv.freezes.ForRollout(id, nodes, now)
	}
	if f.Held == nil && f.Budgets == nil && f.Freezes == nil {
		return nil
	}
	return f
}

// applyFleet sets in.Fleet for a rollout (refreshing the view first when
// asked, as after a conflict), and, when a fleet freeze covers its nodes,
// the rollout's break-glass reason: break-glass overrides fleet freezes
// for that one rollout as it does the plan's. A view that cannot be
// loaded blocks every start (a freeze or a hold may be unknown): the
// rollout waits, saying why.
func (s *Server) applyFleet(ctx context.Context, in *engine.Input, refresh bool) {
	fv, err := s.fleet.view(ctx, refresh)
	if err != nil {
		s.log.Warn("fleet state unavailable; no starts", "rollout", in.RolloutID, "err", err)
		cover := make([]bool, len(in.Nodes))
		for i := range cover {
			cover[i] = true
		}
		in.Fleet = &engine.Fleet{Freezes: []engine.FleetFreeze{{Name: "fleet-state-unavailable", Reason: err.Error(),
			Until: s.now().Add(s.cfg.Tick), Covers: cover}}}
		in.BreakGlass = ""
		return
	}
	in.Fleet = fv.fleet(in.RolloutID, in.Nodes, in.Now)
	if in.Fleet != nil && len(in.Fleet.Freezes) > 0 && in.BreakGlass == "" && s.sec.creds != nil {
		if b, err := s.sec.creds.BreakGlassOf(ctx, in.RolloutID); err == nil {
			in.BreakGlass = b.Reason
		} else if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("break-glass lookup failed; fleet freezes honoured", "rollout", in.RolloutID, "err", err)
		}
	}
}

// fleetRoutes serves fleet disruption budgets and fleet freezes.
// Creating either only restricts what rollouts may do, so operators may;
// changing or deleting one may loosen fleet-wide limits, so only admins
// may. Everyone may read them.
func (s *Server) fleetRoutes(mux *http.ServeMux) {
	s.route(mux, "GET /v1/budgets", RoleViewer, s.listBudgets)
	s.route(mux, "POST /v1/budgets", RoleOperator, s.createBudget)
	s.route(mux, "GET /v1/budgets/{name}", RoleViewer, s.getBudget)
	s.route(mux, "PUT /v1/budgets/{name}", RoleAdmin, s.updateBudget)
	s.route(mux, "DELETE /v1/budgets/{name}", RoleAdmin, s.deleteBudget)
	s.route(mux, "GET /v1/freezes", RoleViewer, s.listFreezes)
	s.route(mux, "POST /v1/freezes", RoleOperator, s.createFreezes)
	s.route(mux, "GET /v1/freezes/{name}", RoleViewer, s.getFreeze)
	s.route(mux, "PUT /v1/freezes/{name}", RoleAdmin, s.updateFreeze)
	s.route(mux, "DELETE /v1/freezes/{name}", RoleAdmin, s.deleteFreeze)
	s.route(mux, "POST /v1/nodes/{id}/fleetlock/release", RoleAdmin, s.releaseFleetLock)
}

func (s *Server) fleetStore() (store.FleetSafety, error) {
	fs, ok := store.AsFleetSafety(s.st)
	if !ok {
		return nil, &httpError{status: http.StatusNotImplemented, code: api.CodeInternal, msg: "this store keeps no fleet budgets or freezes"}
	}
	return fs, nil
}

// fleetChanged makes the scheduler see a budget or freeze change at once.
func (s *Server) fleetChanged() {
	s.fleet.dirty.Store(true)
	s.sched.kick()
	s.wake.broadcast()
}

func budgetFromRequest(req api.BudgetRequest) (disruption.Budget, error) {
	q, err := disruption.ParseMaxUnavailable(req.MaxUnavailable)
	if err != nil {
		return disruption.Budget{}, badRequest("budget %s: maxUnavailable %q: %v", req.Name, req.MaxUnavailable, err)
	}
	b := disruption.Budget{Name: req.Name, Selector: req.Selector, MaxUnavailable: q, Per: req.Per}
	if err := b.Validate(); err != nil {
		return b, badRequest("%v", err)
	}
	return b, nil
}

// budgetView shows a budget with its use in the fleet view fv.
func budgetView(fv *fleetView, b store.BudgetRecord) api.Budget {
	v := api.Budget{Name: b.Name, Selector: b.Selector, MaxUnavailable: b.MaxUnavailable.String(), Per: b.Per, Version: b.Version,
		CreatedBy: b.CreatedBy, CreatedAt: b.CreatedAt, UpdatedAt: b.UpdatedAt, Domains: []api.BudgetDomain{}}
	if fv.index == nil {
		return v
	}
	bi := slices.IndexFunc(fv.index.Budgets, func(x disruption.Budget) bool { return x.Name == b.Name })
	if bi < 0 {
		return v
	}
	use := fv.index.Use(bi, fv.state.Holds)
	for _, d := range fv.index.Domains(bi) {
		bd := api.BudgetDomain{Domain: d, Nodes: fv.index.Size(bi, d), Limit: fv.index.Limit(bi, d), InUse: len(use[d]), Holders: []api.Hold{}}
		for _, h := range use[d] {
			bd.Holders = append(bd.Holders, api.Hold{Node: h.Node, Kind: h.Kind, Holder: h.Holder, Name: h.Name, Since: h.Since})
		}
		v.Domains = append(v.Domains, bd)
	}
	return v
}

func (s *Server) listBudgets(w http.ResponseWriter, r *http.Request, _ identity) error {
	fs, err := s.fleetStore()
	if err != nil {
		return err
	}
	bs, err := fs.ListBudgets(r.Context())
	if err != nil {
		return err
	}
	fv, err := s.fleet.view(r.Context(), true)
	if err != nil {
		return err
	}
	out := api.BudgetList{Budgets: []api.Budget{}}
	for _, b := range bs {
		out.Budgets = append(out.Budgets, budgetView(fv, b))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getBudget(w http.ResponseWriter, r *http.Request, _ identity) error {
	fs, err := s.fleetStore()
	if err != nil {
		return err
	}
	b, err := fs.GetBudget(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	fv, err := s.fleet.view(r.Context(), true)
	if err != nil {
		return err
	}
	v := budgetView(fv, b)
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(b.Version, 10)))
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) createBudget(w http.ResponseWriter, r *http.Request, id identity) error {
	return s.putBudget(w, r, id, "", 0)
}

func (s *Server) updateBudget(w http.ResponseWriter, r *http.Request, id identity) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if v == 0 {
		return &httpError{status: http.StatusPreconditionRequired, code: api.CodePrecondReq,
			msg: "changing a budget needs If-Match with its version (GET it first)"}
	}
	return s.putBudget(w, r, id, r.PathValue("name"), v)
}

func (s *Server) putBudget(w http.ResponseWriter, r *http.Request, id identity, name string, version int64) error {
	fs, err := s.fleetStore()
	if err != nil {
		return err
	}
	var req api.BudgetRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if name != "" && req.Name != "" && req.Name != name {
		return badRequest("the body names budget %q, the path %q", req.Name, name)
	}
	if name != "" {
		req.Name = name
	}
	b, err := budgetFromRequest(req)
	if err != nil {
		return err
	}
	rec, err := fs.PutBudget(r.Context(), b, version, id.user, s.now())
	if err != nil {
		return err
	}
	s.log.Info("fleet budget stored", "budget", b.Name, "version", rec.Version, "by", id.user)
	s.fp.hit(fpAfterBudgetWrite)
	s.fleetChanged()
	fv, err := s.fleet.view(r.Context(), true)
	if err != nil {
		return err
	}
	view := budgetView(fv, rec)
	status := http.StatusOK
	if version == 0 {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/budgets/"+b.Name)
	}
	writeJSON(w, status, view)
	return nil
}

func (s *Server) deleteBudget(w http.ResponseWriter, r *http.Request, id identity) error {
	fs, err := s.fleetStore()
	if err != nil {
		return err
	}
	if err := fs.DeleteBudget(r.Context(), r.PathValue("name"), id.user, s.now()); err != nil {
		return err
	}
	s.log.Warn("fleet budget deleted", "budget", r.PathValue("name"), "by", id.user)
	s.fleetChanged()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func freezeRecord(f api.FreezeSpec) (store.FreezeRecord, error) {
	rec := store.FreezeRecord{Freeze: disruption.Freeze{Name: f.Name, Selector: f.Selector, Reason: f.Reason,
		Calendar: window.CalendarSpec{TimeZone: f.TimeZone, Start: f.Start, End: f.End, Rule: f.Rule, Except: f.Except}}, Source: f.Source}
	if err := rec.Validate(); err != nil {
		return rec, badRequest("%v", err)
	}
	return rec, nil
}

func (s *Server) freezeView(f store.FreezeRecord, st disruption.State) api.Freeze {
	v := api.Freeze{FreezeSpec: api.FreezeSpec{Name: f.Name, TimeZone: f.Calendar.TimeZone, Start: f.Calendar.Start, End: f.Calendar.End,
		Rule: f.Calendar.Rule, Except: f.Calendar.Except, Selector: f.Selector, Reason: f.Reason, Source: f.Source},
		Version: f.Version, CreatedBy: f.CreatedBy, CreatedAt: f.CreatedAt, UpdatedAt: f.UpdatedAt, Active: st.Active}
	if st.Active {
		v.Until = &st.Until
	}
	if !st.Next.IsZero() {
		v.NextStart, v.NextEnd = &st.Next, &st.NextEnd
	}
	return v
}

// freezeStates compiles freezes and says where each stands now.
func (s *Server) freezeStates(fs []store.FreezeRecord) ([]disruption.State, error) {
	specs := make([]disruption.Freeze, len(fs))
	for i, f := range fs {
		specs[i] = f.Freeze
	}
	c, err := disruption.CompileFreezes(specs)
	if err != nil {
		return nil, err
	}
	return c.At(s.now()), nil
}

func (s *Server) listFreezes(w http.ResponseWriter, r *http.Request, _ identity) error {
	fs, err := s.fleetStore()
	if err != nil {
		return err
	}
	list, err := fs.ListFreezes(r.Context())
	if err != nil {
		return err
	}
	states, err := s.freezeStates(list)
	if err != nil {
		return err
	}
	out := api.FreezeList{Freezes: []api.Freeze{}}
	for i, f := range list {
		out.Freezes = append(out.Freezes, s.freezeView(f, states[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getFreeze(w http.ResponseWriter, r *http.Request, _ identity) error {
	fs, err := s.fleetStore()
	if err != nil {
		return err
	}
	f, err := fs.GetFreeze(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	states, err := s.freezeStates([]store.FreezeRecord{f})
	if err != nil {
		return err
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(f.Version, 10)))
	writeJSON(w, http.StatusOK, s.freezeView(f, states[0]))
	return nil
}

func (s *Server) createFreezes(w http.ResponseWriter, r *http.Request, id identity) error {
	fs, err := s.fleetStore()
	if err != nil {
		return err
	}
	var req api.FreezesRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Freezes) == 0 {
		return badRequest("no freezes given")
	}
	recs := make([]store.FreezeRecord, 0, len(req.Freezes))
	for _, f := range req.Freezes {
		rec, err := freezeRecord(f)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
	}
	return s.storeFreezes(w, r, fs, recs, 0, id)
}

func (s *Server) updateFreeze(w http.ResponseWriter, r *http.Request, id identity) error {
	fs, err := s.fleetStore()
	if err != nil {
		return err
	}
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if v == 0 {
		return &httpError{status: http.StatusPreconditionRequired, code: api.CodePrecondReq,
			msg: "changing a freeze needs If-Match with its version (GET it first)"}
	}
	var req api.FreezeSpec
	if err := decode(w, r, &req); err != nil {
		return err
	}
	name := r.PathValue("name")
	if req.Name != "" && req.Name != name {
		return badRequest("the body names freeze %q, the path %q", req.Name, name)
	}
	req.Name = name
	rec, err := freezeRecord(req)
	if err != nil {
		return err
	}
	return s.storeFreezes(w, r, fs, []store.FreezeRecord{rec}, v, id)
}

func (s *Server) storeFreezes(w http.ResponseWriter, r *http.Request, fs store.FleetSafety, recs []store.FreezeRecord, version int64, id identity) error {
	stored, err := fs.PutFreezes(r.Context(), recs, version, id.user, s.now())
	if err != nil {
		return err
	}
	s.log.Info("fleet freezes stored", "freezes", len(stored), "by", id.user)
	s.fleetChanged()
	states, err := s.freezeStates(stored)
	if err != nil {
		return err
	}
	out := api.FreezeList{Freezes: []api.Freeze{}}
	for i, f := range stored {
		out.Freezes = append(out.Freezes, s.freezeView(f, states[i]))
	}
	if version != 0 {
		writeJSON(w, http.StatusOK, out.Freezes[0])
		return nil
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) deleteFreeze(w http.ResponseWriter, r *http.Request, id identity) error {
	fs, err := s.fleetStore()
	if err != nil {
		return err
	}
	if err := fs.DeleteFreeze(r.Context(), r.PathValue("name"), id.user, s.now()); err != nil {
		return err
	}
	s.log.Warn("fleet freeze deleted", "freeze", r.PathValue("name"), "by", id.user)
	s.fleetChanged()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// overlaps lists the active rollouts whose targets share nodes with a
// new plan's assignment; with overlap: refuse any is an error naming them.
func (s *Server) overlaps(ctx context.Context, p *plan.Plan, a *engine.Assignment) ([]api.Overlap, error) {
	fs, ok := store.AsFleetSafety(s.st)
	if !ok {
		return nil, nil
	}
	ids := make([]string, 0, len(a.Nodes))
	for _, n := range a.Nodes {
		if n.State.Phase != engine.PhaseSkipped {
			ids = append(ids, n.ID)
		}
	}
	os, err := fs.Overlaps(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []api.Overlap
	var parts []string
	for _, o := range os {
		out = append(out, api.Overlap{Rollout: o.Rollout.ID, Name: o.Rollout.Name, State: string(o.Rollout.State), Shared: o.Shared, Nodes: o.Nodes})
		noun := "target nodes"
		if o.Shared == 1 {
			noun = "target node"
		}
		parts = append(parts, fmt.Sprintf("rollout %s (%s, %s) shares %d %s (%s)", o.Rollout.ID, o.Rollout.Name, o.Rollout.State,
			o.Shared, noun, strings.Join(o.Nodes, ", ")))
	}
	if len(out) > 0 && p.Overlap == plan.OverlapRefuse {
		return out, &httpError{status: http.StatusConflict, code: api.CodeOverlap,
			msg: fmt.Sprintf("plan %s says overlap: refuse, and %s", p.Name, strings.Join(parts, "; "))}
	}
	return out, nil
}

// fleetCollector exports the fleet view a scrape finds (no I/O: the view
// the scheduler and the API keep fresh within a tick): each fleet budget
// domain's slots in use and limit, and whether each fleet freeze is in
// force.
type fleetCollector struct {
	fc                    *fleetCache
	inUse, limit, freezes *prometheus.Desc
}

func newFleetCollector(fc *fleetCache) *fleetCollector {
	return &fleetCollector{fc: fc,
		inUse: prometheus.NewDesc("drover_fleet_budget_in_use", "Nodes held in a fleet disruption budget domain (all rollouts and holders).",
			[]string{"budget", "domain"}, nil),
		limit: prometheus.NewDesc("drover_fleet_budget_limit", "A fleet disruption budget domain's max unavailable, resolved.",
			[]string{"budget", "domain"}, nil),
		freezes: prometheus.NewDesc("drover_fleet_freeze_active", "1 while a fleet freeze is in force.", []string{"freeze"}, nil)}
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.inUse
	ch <- c.limit
	ch <- c.freezes
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	c.fc.mu.Lock()
	fv := c.fc.cur
	c.fc.mu.Unlock()
	if fv == nil {
		return
	}
	if fv.index != nil {
		for b, bu := range fv.index.Budgets {
			use := fv.index.Use(b, fv.state.Holds)
			for _, d := range fv.index.Domains(b) {
				ch <- prometheus.MustNewConstMetric(c.inUse, prometheus.GaugeValue, float64(len(use[d])), bu.Name, d)
				ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(fv.index.Limit(b, d)), bu.Name, d)
			}
		}
	}
	if fv.freezes != nil {
		for _, st := range fv.freezes.At(c.fc.s.now()) {
			v := 0.0
			if st.Active {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.freezes, prometheus.GaugeValue, v, st.Freeze.Name)
		}
	}
}
