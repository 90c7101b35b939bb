package server

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
)

// exposureSweepEvery is how often the leading server computes the whole
// fleet's exposure to the whole catalog to record its history; followers
// look every followerSweepCheck whether they lead, so a new leader sweeps
// within a second of taking over.
const (
	exposureSweepEvery = 5 * time.Minute
	followerSweepCheck = time.Second
)

// exposure reports the nodes' exposure to one advisory or to the whole
// catalog, judged from their stored facts at the time of the request,
// and records it in the exposure history.
func (s *Server) exposure(w http.ResponseWriter, r *http.Request, _ identity) error {
	q := r.URL.Query()
	var sel *fleet.Selector
	if expr := q.Get("selector"); expr != "" {
		var err error
		if sel, err = fleet.CompileSelector(expr); err != nil {
			return &httpError{status: http.StatusBadRequest, code: api.CodeInvalidCEL, msg: "invalid selector", err: err}
		}
	}
	out, err := s.computeExposure(r.Context(), q.Get("advisory"), sel)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// computeExposure judges the nodes sel chooses (nil: all) against the
// advisory id ("" the whole catalog) and records what it found in the
// exposure history, when the store keeps one.
func (s *Server) computeExposure(ctx context.Context, id string, sel *fleet.Selector) (api.ExposureReport, error) {
	out := api.ExposureReport{Counts: map[string]int{}, Nodes: []api.NodeExposure{}}
	c, err := s.advisoryStore()
	if err != nil {
		return out, err
	}
	var one *advisory.Advisory
	var cat *advisory.Catalog
	severity := map[string]string{}
	if id != "" {
		a, err := c.GetAdvisory(ctx, id)
		if err != nil {
			return out, err
		}
		one, out.Advisory = &a, a.ID
	} else {
		var all []advisory.Advisory
		aq := store.AdvisoryQuery{Limit: 10_000}
		for {
			page, err := c.ListAdvisories(ctx, aq)
			if err != nil {
				return out, err
			}
			all = append(all, page...)
			if len(page) < aq.Limit {
				break
			}
			aq.After = page[len(page)-1].ID
		}
		for _, a := range all {
			severity[a.ID] = a.Severity
		}
		cat = advisory.NewCatalog(all)
	}
	at := s.now()
	var obs []store.ExposureObservation
	after := ""
	for {
		page, err := s.st.ListNodes(ctx, store.NodeFilter{After: after, Limit: 1000})
		if err != nil {
			return out, err
		}
		for _, rec := range page {
			after = rec.ID
			n := rec.Node()
			if sel != nil {
				ok, err := sel.Match(n)
				if err != nil {
					return out, &httpError{status: http.StatusBadRequest, code: api.CodeInvalidCEL, msg: "selector failed on node " + n.ID, err: err}
				}
				if !ok {
					continue
				}
			}
			running, installed, behind := advisory.KernelBehind(n.Facts)
			o := store.ExposureObservation{Node: n.ID, Exposed: map[string]string{}, RebootDebt: n.Facts.RebootRequired || behind, Running: running}
			if behind {
				o.Installed = installed
			}
			ne := api.NodeExposure{Node: n.ID, OS: n.Facts.OS.Family + " " + n.Facts.OS.Version}
			if one != nil {
				f := advisory.Exposure(one, n)
				ne.Status, ne.Reason = string(f.Status), f.Reason
				for _, p := range f.Packages {
					ne.Packages = append(ne.Packages, api.ExposedPackage{Package: p.Package, Installed: p.Installed, Fixed: p.Fixed})
				}
				if f.Status != advisory.NotAffected {
					o.Exposed[one.ID] = string(f.Status)
				}
			} else {
				ne.Status = string(advisory.NotAffected)
				fs := cat.Node(n)
				if len(fs) > 0 {
					ne.Status = string(fs[0].Status) // worst first
				}
				for _, f := range fs {
					if f.Advisory == "" {
						ne.Reason = f.Reason
						o.Exposed = nil // the facts say too little: record nothing of this node
						continue
					}
					if o.Exposed != nil {
						o.Exposed[f.Advisory] = string(f.Status)
					}
					if len(ne.Advisories) == api.MaxNodeAdvisories {
						ne.More++
						continue
					}
					ne.Advisories = append(ne.Advisories, api.AdvisoryExposure{Advisory: f.Advisory, Severity: severity[f.Advisory], Status: string(f.Status), Reason: f.Reason})
				}
			}
			if o.Exposed != nil {
				obs = append(obs, o)
			}
			out.Counts[ne.Status]++
			out.Nodes = append(out.Nodes, ne)
		}
		if len(page) < 1000 {
			break
		}
	}
	if h, ok := store.AsExposureHistory(s.st); ok {
		if err := h.RecordExposure(ctx, at, out.Advisory, obs); err != nil {
			return out, err
		}
	}
	return out, nil
}

// sweepExposure computes the whole fleet's exposure to the whole catalog
// every exposureSweepEvery while this server leads, so that the history
// (and the metrics read from it) moves without anyone asking; servers
// sharing a database do not all repeat it (the records are idempotent,
// the work is not).
func (s *Server) sweepExposure(ctx context.Context) {
	if _, ok := store.AsExposureHistory(s.st); !ok {
		return
	}
	for {
		next := followerSweepCheck
		if s.sched.leading() {
			next = exposureSweepEvery
			if _, err := s.computeExposure(ctx, "", nil); err != nil && ctx.Err() == nil {
				s.log.Warn("exposure sweep failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

func (s *Server) exposureSummaryHandler(w http.ResponseWriter, r *http.Request, _ identity) error {
	sum, err := s.exposureSummary(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sum)
	return nil
}

// exposureSummary reads the exposure history.
func (s *Server) exposureSummary(ctx context.Context) (api.ExposureSummary, error) {
	h, ok := store.AsExposureHistory(s.st)
	if !ok {
		return api.ExposureSummary{}, &httpError{status: http.StatusNotImplemented, code: api.CodeInternal, msg: "this store keeps no exposure history"}
	}
	st, err := h.ExposureState(ctx)
	if err != nil {
		return api.ExposureSummary{}, err
	}
	return summarizeExposure(st, s.now()), nil
}

// summarizeExposure turns the history's state into the summary at now.
func summarizeExposure(st store.ExposureState, now time.Time) api.ExposureSummary {
	days := func(since time.Time) float64 { return max(now.Sub(since).Hours()/24, 0) }
	out := api.ExposureSummary{At: now, Advisories: []api.AdvisoryExposureCount{}, RebootDebt: []api.RebootDebt{}, Nodes: []api.NodeDaysExposed{},
		Remediated: st.Remediated, MeanTimeToRemediateSeconds: st.MeanToFix.Seconds()}
	byAdv := map[string]int{}
	type nodeState struct {
		since      time.Time
		n          int
		allPatched bool
	}
	nodes := map[string]*nodeState{}
	for _, o := range st.Open {
		i, ok := byAdv[o.Advisory]
		if !ok {
			i = len(out.Advisories)
			byAdv[o.Advisory] = i
			out.Advisories = append(out.Advisories, api.AdvisoryExposureCount{Advisory: o.Advisory, Severity: o.Severity, Counts: map[string]int{}, Since: o.Since})
		}
		a := &out.Advisories[i]
		a.Counts[o.Status]++
		if o.Since.Before(a.Since) {
			a.Since = o.Since
		}
		if o.Severity == advisory.SeverityCritical && (out.OldestOpenCritical == nil || o.Since.Before(out.OldestOpenCritical.Since)) {
			out.OldestOpenCritical = &api.OpenExposure{Advisory: o.Advisory, Severity: o.Severity, Node: o.Node, Status: o.Status, Since: o.Since,
				AgeSeconds: max(now.Sub(o.Since).Seconds(), 0)}
		}
		ns := nodes[o.Node]
		if ns == nil {
			ns = &nodeState{since: o.Since, allPatched: true}
			nodes[o.Node] = ns
		}
		ns.n++
		ns.allPatched = ns.allPatched && o.Status == string(advisory.LivePatched)
		if o.Since.Before(ns.since) {
			ns.since = o.Since
		}
	}
	out.ExposedNodes = len(nodes)
	for id, ns := range nodes {
		if ns.allPatched {
			out.LivePatchedNodes++
		}
		out.Nodes = append(out.Nodes, api.NodeDaysExposed{Node: id, Since: ns.since, Days: days(ns.since), Advisories: ns.n})
	}
	if out.ExposedNodes > 0 {
		out.LivePatchCoverage = float64(out.LivePatchedNodes) / float64(out.ExposedNodes)
	}
	slices.SortFunc(out.Nodes, func(a, b api.NodeDaysExposed) int {
		return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.Node, b.Node))
	})
	out.Nodes = out.Nodes[:min(len(out.Nodes), 100)]
	slices.SortFunc(out.Advisories, func(a, b api.AdvisoryExposureCount) int {
		return cmp.Or(advisory.SeverityRank(b.Severity)-advisory.SeverityRank(a.Severity), a.Since.Compare(b.Since), cmp.Compare(a.Advisory, b.Advisory))
	})
	for _, d := range st.RebootDebt {
		out.RebootDebt = append(out.RebootDebt, api.RebootDebt{Node: d.Node, Since: d.Since, Days: days(d.Since), Running: d.Running, Installed: d.Installed})
		out.RebootDebtDays += days(d.Since)
	}
	return out
}
