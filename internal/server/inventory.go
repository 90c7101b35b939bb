package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
)

// Inventories in the server (drover nodes import): an inventory file's
// hosts become expected nodes, which the fleet's coverage compares with
// the agents that registered; drover enroll tokens hands out one
// single-use enrolment token per expected host without an agent, bound
// to its name.
//
// Roles: importing is an operator's (it changes what the server expects,
// not what any node does); reading coverage a viewer's; enrolment tokens,
// as every token, an admin's.

func (s *Server) inventoryRoutes(mux *http.ServeMux) {
	s.route(mux, "POST "+api.PathInventory, RoleOperator, s.importInventory)
	s.route(mux, "GET "+api.PathInventory, RoleViewer, s.inventoryStatus)
	s.route(mux, "POST "+api.PathInventoryTokens, RoleAdmin, s.inventoryTokens)
}

func (s *Server) inventories() (store.Inventories, error) {
	inv, ok := store.AsInventories(s.st)
	if !ok {
		return nil, &httpError{status: http.StatusNotImplemented, code: api.CodeInternal, msg: "this store keeps no inventories"}
	}
	return inv, nil
}

// validInventoryName: letters, digits, '-', '_' and '.', 1 to 64.
func validInventoryName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, c := range n {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (s *Server) importInventory(w http.ResponseWriter, r *http.Request, id identity) error {
	inv, err := s.inventories()
	if err != nil {
		return err
	}
	var req api.InventoryImportRequest
	if err := decodeLimit(w, r, &req, 2*api.MaxInventoryBytes); err != nil {
		return err
	}
	if !validInventoryName(req.Name) {
		return badRequest("inventory name %q: want 1 to 64 letters, digits, '-', '_' or '.'", req.Name)
	}
	if len(req.Content) > api.MaxInventoryBytes {
		return &httpError{status: http.StatusRequestEntityTooLarge, code: api.CodeTooLarge,
			msg: fmt.Sprintf("inventory over %d bytes", api.MaxInventoryBytes)}
	}
	source := req.Source
	if source == "" {
		source = req.Name
	}
	nodes, err := fleet.LoadInventory(source, []byte(req.Content))
	if err != nil {
		var ie *fleet.InventoryError
		if errors.As(err, &ie) {
			return &httpError{status: http.StatusBadRequest, code: api.CodeBadRequest, msg: ie.Error()}
		}
		return badRequest("%v", err)
	}
	format := fleet.DetectFormat(source, []byte(req.Content))
	hosts := make([]store.ExpectedNode, len(nodes))
	for i, n := range nodes {
		hosts[i] = store.ExpectedFromNode(req.Name, n)
	}
	d, err := inv.ImportInventory(r.Context(), store.InventoryImport{Name: req.Name, Source: source, Format: format,
		Hosts: hosts, Actor: id.user, Now: s.now()}, req.DryRun)
	if err != nil {
		return err
	}
	if d.Applied {
		s.log.Info("inventory imported", "inventory", req.Name, "source", source, "hosts", len(hosts),
			"added", len(d.Added), "changed", len(d.Changed), "removed", len(d.Removed), "by", id.user)
	}
	out := api.InventoryDiff{Inventory: d.Inventory, Format: format, Hosts: len(hosts), New: d.New, Added: d.Added,
		Removed: d.Removed, Unchanged: d.Unchanged, Applied: d.Applied, Changed: make([]api.HostChange, 0, len(d.Changed))}
	for _, c := range d.Changed {
		out.Changed = append(out.Changed, api.HostChange{Host: c.Host, Labels: c.Labels, GroupsAdded: c.GroupsAdded,
			GroupsRemoved: c.GroupsRemoved, Facts: c.Facts})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) inventoryStatus(w http.ResponseWriter, r *http.Request, _ identity) error {
	inv, err := s.inventories()
	if err != nil {
		return err
	}
	name := r.URL.Query().Get("inventory")
	st, err := InventoryCoverage(r.Context(), inv, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// InventoryCoverage is GET /v1/inventory's answer, for the dashboard
// too.
func InventoryCoverage(ctx context.Context, inv store.Inventories, name string) (api.InventoryStatus, error) {
	list, err := inv.ListInventories(ctx)
	if err != nil {
		return api.InventoryStatus{}, err
	}
	cov, err := inv.Coverage(ctx, name)
	if err != nil {
		return api.InventoryStatus{}, err
	}
	out := api.InventoryStatus{Inventories: []api.Inventory{}, Expected: cov.Expected, Registered: cov.Registered,
		Covered: cov.Covered, Missing: make([]api.ExpectedNode, 0, len(cov.Missing)), Unexpected: cov.Unexpected}
	for _, i := range list {
		if name != "" && i.Name != name {
			continue
		}
		out.Inventories = append(out.Inventories, api.Inventory{Name: i.Name, Source: i.Source, Format: i.Format,
			Hosts: i.Hosts, ImportedAt: i.ImportedAt, ImportedBy: i.ImportedBy})
	}
	for _, m := range cov.Missing {
		out.Missing = append(out.Missing, api.ExpectedNode{Inventory: m.Inventory, Host: m.Host, Labels: m.Labels,
			Groups: m.Groups, Facts: m.Facts})
	}
	return out, nil
}

// tokenLabels are the labels an expected host's enrolment token gives
// its node: the inventory's labels but Ansible's connection variables
// (ansible_*), and its groups as "group.NAME"="true".
func tokenLabels(e store.ExpectedNode) map[string]string {
	out := map[string]string{}
	for k, v := range e.Node().Labels {
		if !strings.HasPrefix(k, "ansible_") {
			out[k] = v
		}
	}
	return out
}

func (s *Server) inventoryTokens(w http.ResponseWriter, r *http.Request, id identity) error {
	inv, err := s.inventories()
	if err != nil {
		return err
	}
	if s.sec.ca == nil {
		return badRequest("enrolment needs TLS: this server runs without it")
	}
	var req api.EnrollTokensRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Inventory == "" && req.Selector == "" {
		return badRequest("choose the hosts: an inventory, a selector or both")
	}
	ttl := DefaultEnrollTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return badRequest("ttl %q: want a positive duration like 1h", req.TTL)
		}
		ttl = d
	}
	var sel *fleet.Selector
	if req.Selector != "" {
		if sel, err = fleet.CompileSelector(req.Selector); err != nil {
			return &httpError{status: http.StatusBadRequest, code: api.CodeInvalidCEL, msg: "invalid selector", err: err}
		}
	}
	exp, err := inv.ExpectedNodes(r.Context(), req.Inventory)
	if err != nil {
		return err
	}
	cov, err := inv.Coverage(r.Context(), "")
	if err != nil {
		return err
	}
	missing := map[string]bool{}
	for _, m := range cov.Missing {
		missing[m.Host] = true
	}
	now := s.now()
	out := api.EnrollTokens{CAHash: s.CAHash(), Hosts: map[string]api.HostEnrollToken{}, Skipped: []string{}}
	var toks []store.EnrollToken
	for _, e := range exp {
		if _, done := out.Hosts[e.Host]; done || slices.Contains(out.Skipped, e.Host) {
			continue // in several inventories
		}
		if sel != nil {
			ok, err := sel.Match(e.Node())
			if err != nil {
				return badRequest("selector on %s: %v", e.Host, err)
			}
			if !ok {
				continue
			}
		}
		if !missing[e.Host] {
			out.Skipped = append(out.Skipped, e.Host)
			continue
		}
		// Enrolled but not registered yet: a new token could not enrol it.
		if _, err := s.sec.creds.NodeCert(r.Context(), e.Host); err == nil {
			out.Skipped = append(out.Skipped, e.Host)
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		tok, err := newToken(prefixEnroll)
		if err != nil {
			return err
		}
		labels := tokenLabels(e)
		toks = append(toks, store.EnrollToken{Hash: tokenHash(tok), NodeID: e.Host, Labels: labels, CreatedBy: id.user,
			CreatedAt: now, ExpiresAt: now.Add(ttl)})
		out.Hosts[e.Host] = api.HostEnrollToken{Token: tok, ExpiresAt: now.Add(ttl), Labels: labels}
	}
	if err := inv.CreateEnrollTokens(r.Context(), toks); err != nil {
		return err
	}
	s.log.Info("enrolment tokens created", "inventory", req.Inventory, "selector", req.Selector, "hosts", len(toks),
		"skipped", len(out.Skipped), "by", id.user, "expires_at", now.Add(ttl))
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// inventoryCollector exports the coverage: expected nodes and those
// without an agent, read from the store at each scrape.
type inventoryCollector struct {
	inv              store.Inventories
	log              *slog.Logger
	expected, absent *prometheus.Desc
}

func newInventoryCollector(st store.Store, log *slog.Logger) prometheus.Collector {
	inv, ok := store.AsInventories(st)
	if !ok {
		return nil
	}
	return &inventoryCollector{inv: inv, log: log,
		expected: prometheus.NewDesc("drover_inventory_expected_nodes", "Hosts the imported inventories expect to run an agent.", nil, nil),
		absent: prometheus.NewDesc("drover_inventory_missing_agents",
			"Expected hosts no agent registered as (drover nodes coverage lists them).", nil, nil)}
}

func (c *inventoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.expected
	ch <- c.absent
}

func (c *inventoryCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cov, err := c.inv.Coverage(ctx, "")
	if err != nil {
		c.log.Warn("inventory metrics: coverage", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.expected, prometheus.GaugeValue, float64(cov.Expected))
	ch <- prometheus.MustNewConstMetric(c.absent, prometheus.GaugeValue, float64(len(cov.Missing)))
}
