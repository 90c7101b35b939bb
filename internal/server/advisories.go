package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/store"
)

// maxAdvisoryBody bounds an import request: two documents of the
// largest size, or many smaller ones.
const maxAdvisoryBody = 2 * advisory.MaxDocument

// advisoryRoutes serves the advisory catalog. Importing changes what
// exposure reports but cannot change a node, so operators may; everyone
// may read it.
func (s *Server) advisoryRoutes(mux *http.ServeMux) {
	s.route(mux, "POST /v1/advisories", RoleOperator, s.importAdvisories)
	s.route(mux, "GET /v1/advisories", RoleViewer, s.listAdvisories)
	s.route(mux, "GET /v1/advisories/{id}", RoleViewer, s.getAdvisory)
	s.route(mux, "GET /v1/exposure", RoleViewer, s.exposure)
	s.route(mux, "GET /v1/exposure/summary", RoleViewer, s.exposureSummaryHandler)
}

func (s *Server) advisoryStore() (store.Advisories, error) {
	c, ok := store.AsAdvisories(s.st)
	if !ok {
		return nil, &httpError{status: http.StatusNotImplemented, code: api.CodeInternal, msg: "this store keeps no advisory catalog"}
	}
	return c, nil
}

// importAdvisories takes one document (OSV, CSAF, or an array of them)
// or an api.AdvisoryImportRequest of named documents; every document is
// parsed before anything is stored, and all are stored in one
// transaction, so a bad one refuses the whole request.
func (s *Server) importAdvisories(w http.ResponseWriter, r *http.Request, id identity) error {
	c, err := s.advisoryStore()
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdvisoryBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &httpError{status: http.StatusRequestEntityTooLarge, code: api.CodeTooLarge,
				msg: "advisory import of more than " + strconv.Itoa(maxAdvisoryBody) + " bytes; split it"}
		}
		return badRequest("read body: %v", err)
	}
	docs := []api.AdvisoryDocument{{Name: "request body", Content: body}}
	var probe struct {
		Documents json.RawMessage `json:"documents"`
	}
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' && json.Unmarshal(t, &probe) == nil && probe.Documents != nil {
		var req api.AdvisoryImportRequest
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return badRequest("import request: %v", err)
		}
		if len(req.Documents) == 0 {
			return badRequest("import request: no documents")
		}
		docs = req.Documents
	}
	h := sha256.New()
	var advs []advisory.Advisory
	var names []string
	for i, d := range docs {
		if d.Name == "" {
			d.Name = "documents[" + strconv.Itoa(i) + "]"
		}
		h.Write(d.Content)
		as, err := advisory.Parse(d.Name, d.Content)
		if err != nil {
			return badRequest("%v", err)
		}
		if len(advs)+len(as) > advisory.MaxAdvisories {
			return badRequest("more than %d advisories in one import; split it", advisory.MaxAdvisories)
		}
		advs = append(advs, as...)
		names = append(names, d.Name)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	res, err := c.ImportAdvisories(r.Context(), advs, store.AdvisoryImport{Actor: id.user, Sources: names, Hash: sum})
	if err != nil {
		return err
	}
	s.log.Info("advisories imported", "actor", id.user, "advisories", len(advs), "added", res.Added, "updated", res.Updated, "sha256", sum)
	writeJSON(w, http.StatusOK, api.AdvisoryImportResult{Advisories: len(advs), Added: res.Added, Updated: res.Updated,
		Unchanged: res.Unchanged, Older: res.Older, SHA256: sum})
	return nil
}

func (s *Server) listAdvisories(w http.ResponseWriter, r *http.Request, _ identity) error {
	c, err := s.advisoryStore()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	aq := store.AdvisoryQuery{ID: q.Get("id"), Ecosystem: q.Get("ecosystem"), MinSeverity: q.Get("severity"), After: q.Get("after"), Limit: 500}
	if aq.MinSeverity != "" && advisory.SeverityRank(aq.MinSeverity) < 0 {
		return badRequest("severity %q: want unknown, none, low, medium, high or critical", aq.MinSeverity)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5000 {
			return badRequest("limit %q: want 1 to 5000", v)
		}
		aq.Limit = n
	}
	as, err := c.ListAdvisories(r.Context(), aq)
	if err != nil {
		return err
	}
	out := api.AdvisoryList{Advisories: make([]api.Advisory, 0, len(as))}
	for _, a := range as {
		out.Advisories = append(out.Advisories, apiAdvisory(a))
	}
	if len(as) == aq.Limit {
		out.Next = as[len(as)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getAdvisory(w http.ResponseWriter, r *http.Request, _ identity) error {
	c, err := s.advisoryStore()
	if err != nil {
		return err
	}
	a, err := c.GetAdvisory(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apiAdvisory(a))
	return nil
}

func apiAdvisory(a advisory.Advisory) api.Advisory {
	out := api.Advisory{ID: a.ID, Aliases: a.Aliases, Summary: a.Summary, Severity: a.Severity, CVSSScore: a.CVSSScore, CVSSVector: a.CVSSVector,
		Published: a.Published, Modified: a.Modified, Source: a.Source, URL: a.URL, RebootRequired: a.RebootRequired, LivePatches: a.LivePatches,
		Affected: make([]api.AdvisoryFix, 0, len(a.Affected))}
	if out.Aliases == nil {
		out.Aliases = []string{}
	}
	if out.LivePatches == nil {
		out.LivePatches = []string{}
	}
	for _, f := range a.Affected {
		out.Affected = append(out.Affected, api.AdvisoryFix{Ecosystem: f.Ecosystem, Package: f.Package, Fixed: f.Fixed, KB: f.KB, Product: f.Product})
	}
	return out
}
