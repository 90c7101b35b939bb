package server

import (
	"net/http"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
)

// exposure reports the nodes' exposure to one advisory or to the whole
// catalog, judged from their stored facts at the time of the request.
func (s *Server) exposure(w http.ResponseWriter, r *http.Request, _ identity) error {
	c, err := s.advisoryStore()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var sel *fleet.Selector
	if expr := q.Get("selector"); expr != "" {
		if sel, err = fleet.CompileSelector(expr); err != nil {
			return &httpError{status: http.StatusBadRequest, code: api.CodeInvalidCEL, msg: "invalid selector", err: err}
		}
	}
	out := api.ExposureReport{Counts: map[string]int{}, Nodes: []api.NodeExposure{}}
	var one *advisory.Advisory
	var cat *advisory.Catalog
	severity := map[string]string{}
	if id := q.Get("advisory"); id != "" {
		a, err := c.GetAdvisory(r.Context(), id)
		if err != nil {
			return err
		}
		one, out.Advisory = &a, a.ID
	} else {
		var all []advisory.Advisory
		aq := store.AdvisoryQuery{Limit: 10_000}
		for {
			page, err := c.ListAdvisories(r.Context(), aq)
			if err != nil {
				return err
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
	after := ""
	for {
		page, err := s.st.ListNodes(r.Context(), store.NodeFilter{After: after, Limit: 1000})
		if err != nil {
			return err
		}
		for _, rec := range page {
			after = rec.ID
			n := rec.Node()
			if sel != nil {
				ok, err := sel.Match(n)
				if err != nil {
					return &httpError{status: http.StatusBadRequest, code: api.CodeInvalidCEL, msg: "selector failed on node " + n.ID, err: err}
				}
				if !ok {
					continue
				}
			}
			var ne api.NodeExposure
			if one != nil {
				f := advisory.Exposure(one, n)
				ne = api.NodeExposure{Node: n.ID, Status: string(f.Status), Reason: f.Reason}
				for _, p := range f.Packages {
					ne.Packages = append(ne.Packages, api.ExposedPackage{Package: p.Package, Installed: p.Installed, Fixed: p.Fixed})
				}
			} else {
				ne = api.NodeExposure{Node: n.ID, Status: string(advisory.NotAffected)}
				fs := cat.Node(n)
				if len(fs) > 0 {
					ne.Status = string(fs[0].Status) // worst first
				}
				for _, f := range fs {
					if f.Advisory == "" {
						ne.Reason = f.Reason
						continue
					}
					if len(ne.Advisories) == api.MaxNodeAdvisories {
						ne.More++
						continue
					}
					ne.Advisories = append(ne.Advisories, api.AdvisoryExposure{Advisory: f.Advisory, Severity: severity[f.Advisory], Status: string(f.Status), Reason: f.Reason})
				}
			}
			out.Counts[ne.Status]++
			out.Nodes = append(out.Nodes, ne)
		}
		if len(page) < 1000 {
			break
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
