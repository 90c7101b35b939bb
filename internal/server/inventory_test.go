package server

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/api"
)

const testInventoryINI = `[web]
web[01:02] zone=a ansible_connection=docker

[db]
db01 zone=b

[prod:children]
web
db

[prod:vars]
env=prod
`

// TestInventoryImportAndTokens: an Ansible INI inventory imported over
// the REST API (dry run first, then applied, then re-imported without a
// change), its coverage before and after agents enrol with the bound
// tokens drover enroll tokens hands out, and the metrics.
func TestInventoryImportAndTokens(t *testing.T) {
	e := newTLSEnv(t)
	imp := func(token string, req api.InventoryImportRequest) (int, api.Error, api.InventoryDiff) {
		t.Helper()
		status, ae, body := call(t, e.h, "POST", api.PathInventory, token, req)
		var d api.InventoryDiff
		_ = json.Unmarshal(body, &d)
		return status, ae, d
	}
	req := api.InventoryImportRequest{Name: "prod", Source: "hosts.ini", Content: testInventoryINI, DryRun: true}
	if status, _, _ := imp(vera, req); status != 403 {
		t.Fatalf("a viewer imported: %d", status)
	}
	status, ae, d := imp(alice, req)
	if status != 200 || d.Applied || !d.New || !slices.Equal(d.Added, []string{"web01", "web02", "db01"}) || d.Format != "ansible-ini" {
		t.Fatalf("dry run: %d %v %+v", status, ae, d)
	}
	req.DryRun = false
	if status, ae, d = imp(alice, req); status != 200 || !d.Applied || len(d.Added) != 3 {
		t.Fatalf("import: %d %v %+v", status, ae, d)
	}
	if status, ae, d = imp(alice, req); status != 200 || d.Applied || d.Unchanged != 3 || len(d.Added)+len(d.Changed)+len(d.Removed) != 0 {
		t.Fatalf("re-import: %d %v %+v", status, ae, d)
	}
	bad := req
	bad.Content = "[web]\nweb01\n[web:children]\nweb\n"
	if status, ae, _ = imp(alice, bad); status != 400 || !strings.HasPrefix(ae.Error, "hosts.ini:4:") {
		t.Fatalf("bad inventory: %d %+v (want the file and line)", status, ae)
	}

	status, ae, body := call(t, e.h, "GET", api.PathInventory, vera, nil)
	var st api.InventoryStatus
	_ = json.Unmarshal(body, &st)
	if status != 200 || st.Expected != 3 || st.Covered != 0 || len(st.Missing) != 3 || len(st.Inventories) != 1 || st.Inventories[0].Hosts != 3 {
		t.Fatalf("coverage: %d %v %+v", status, ae, st)
	}

	// Tokens for the web group, by selector; a viewer or operator may not.
	treq := api.EnrollTokensRequest{Inventory: "prod", Selector: `node.labels["group.web"] == "true"`, TTL: "10m"}
	if status, _, _ = call(t, e.h, "POST", api.PathInventoryTokens, alice, treq); status != 403 {
		t.Fatalf("an operator created enrolment tokens: %d", status)
	}
	status, ae, body = call(t, e.h, "POST", api.PathInventoryTokens, root, treq)
	var toks api.EnrollTokens
	_ = json.Unmarshal(body, &toks)
	if status != 201 || len(toks.Hosts) != 2 || toks.CAHash != e.s.CAHash() {
		t.Fatalf("tokens: %d %v %+v", status, ae, toks)
	}
	w1 := toks.Hosts["web01"]
	if w1.Labels["zone"] != "a" || w1.Labels["env"] != "prod" || w1.Labels["group.web"] != "true" || w1.Labels["ansible_connection"] != "" {
		t.Fatalf("web01's token labels: %v", w1.Labels)
	}
	// web01's token does not enrol web02.
	if _, err := e.enrol(t, "web02", w1.Token, toks.CAHash, t.TempDir()); err == nil {
		t.Fatal("web01's token enrolled web02")
	}
	for _, h := range []string{"web01", "web02"} {
		id, err := e.enrol(t, h, toks.Hosts[h].Token, toks.CAHash, t.TempDir())
		if err != nil {
			t.Fatalf("enrol %s: %v", h, err)
		}
		if status, ae := e.agentCall(t, id, api.PathRegister, register(h)); status != 200 {
			t.Fatalf("register %s: %d %v", h, status, ae)
		}
	}
	n, err := e.s.st.GetNode(t.Context(), "web01")
	if err != nil || n.Labels["zone"] != "a" || n.Labels["group.prod"] != "true" {
		t.Fatalf("web01 registered with labels %v (%v), want its inventory's", n.Labels, err)
	}
	// A stray node enrolled with a plain token is not in the inventory.
	if id, err := e.enrol(t, "stray", e.token(t, "", nil), e.s.CAHash(), t.TempDir()); err != nil {
		t.Fatal(err)
	} else if status, ae := e.agentCall(t, id, api.PathRegister, register("stray")); status != 200 {
		t.Fatalf("register stray: %d %v", status, ae)
	}

	_, _, body = call(t, e.h, "GET", api.PathInventory, vera, nil)
	st = api.InventoryStatus{}
	_ = json.Unmarshal(body, &st)
	if st.Covered != 2 || len(st.Missing) != 1 || st.Missing[0].Host != "db01" || !slices.Equal(st.Unexpected, []string{"stray"}) {
		t.Fatalf("coverage after enrolment: %+v", st)
	}
	// Registered hosts get no token again.
	_, _, body = call(t, e.h, "POST", api.PathInventoryTokens, root, api.EnrollTokensRequest{Inventory: "prod"})
	toks = api.EnrollTokens{}
	_ = json.Unmarshal(body, &toks)
	if len(toks.Hosts) != 1 || toks.Hosts["db01"].Token == "" || !slices.Equal(toks.Skipped, []string{"web01", "web02"}) {
		t.Fatalf("second tokens: %+v", toks)
	}

	// Enrolled but not registered yet: no new token either.
	if _, err := e.enrol(t, "db01", toks.Hosts["db01"].Token, toks.CAHash, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	_, _, body = call(t, e.h, "POST", api.PathInventoryTokens, root, api.EnrollTokensRequest{Selector: `node.id == "db01"`})
	toks = api.EnrollTokens{}
	_ = json.Unmarshal(body, &toks)
	if len(toks.Hosts) != 0 || !slices.Equal(toks.Skipped, []string{"db01"}) {
		t.Fatalf("tokens for an enrolled, unregistered host: %+v", toks)
	}

	_, _, metrics := call(t, e.h, "GET", "/metrics", root, nil)
	for _, want := range []string{"drover_inventory_expected_nodes 3", "drover_inventory_missing_agents 1"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	audits, err := e.s.st.ListAudit(t.Context(), 0, 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	if !hasAudit(audits, "inventory.import", "inventory/prod", "alice") {
		t.Error("no audit entry inventory.import by alice")
	}
}
