package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/store/storetest"
)

// TestInventories runs the inventory contract on SQLite and on a real
// PostgreSQL.
func TestInventories(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testInventories(t, openSQLite(t)) })
	t.Run("postgres", func(t *testing.T) {
		s, err := store.Open(context.Background(), storetest.NewPostgres(t).CreateDB(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		testInventories(t, s)
	})
}

func testInventories(t *testing.T, st store.Store) {
	ctx := context.Background()
	inv, ok := store.AsInventories(st)
	if !ok {
		t.Fatal("store keeps no inventories")
	}
	now := time.Unix(1_800_000_000, 0).UTC()
	host := func(name string, labels map[string]string, groups ...string) store.ExpectedNode {
		return store.ExpectedNode{Host: name, Labels: labels, Groups: groups, Facts: fleet.Facts{OS: fleet.OS{Family: "debian"}}}
	}
	imp := store.InventoryImport{Name: "prod", Source: "hosts.ini", Format: fleet.FormatAnsibleINI, Actor: "root", Now: now,
		Hosts: []store.ExpectedNode{host("web1", map[string]string{"zone": "a"}, "web"), host("web2", map[string]string{"zone": "b"}, "web"),
			host("db1", nil, "db")}}

	// A dry run shows the additions and writes nothing.
	d, err := inv.ImportInventory(ctx, imp, true)
	if err != nil {
		t.Fatal(err)
	}
	if !d.New || d.Applied || !slices.Equal(d.Added, []string{"web1", "web2", "db1"}) {
		t.Fatalf("dry run: %+v", d)
	}
	if _, err := inv.ExpectedNodes(ctx, "prod"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after a dry run the inventory exists: %v", err)
	}
	if d, err = inv.ImportInventory(ctx, imp, false); err != nil || !d.Applied || len(d.Added) != 3 {
		t.Fatalf("import: %+v %v", d, err)
	}
	// Re-import: no change, nothing written.
	if d, err = inv.ImportInventory(ctx, imp, false); err != nil || !d.Empty() || d.Applied || d.Unchanged != 3 {
		t.Fatalf("re-import: %+v %v", d, err)
	}
	audits, err := st.ListAudit(ctx, 0, 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range audits {
		if a.Action == "inventory.import" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d audit entries of inventory.import, want 1 (a re-import writes none)", n)
	}

	// Change a label and a group, remove a host, add one.
	imp2 := imp
	imp2.Hosts = []store.ExpectedNode{host("web1", map[string]string{"zone": "c"}, "web", "canary"), host("db1", nil, "db"), host("db2", nil, "db")}
	d, err = inv.ImportInventory(ctx, imp2, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Added, []string{"db2"}) || !slices.Equal(d.Removed, []string{"web2"}) || len(d.Changed) != 1 || d.Unchanged != 1 {
		t.Fatalf("diff: %+v", d)
	}
	c := d.Changed[0]
	if c.Host != "web1" || c.Labels["zone"] != [2]string{"a", "c"} || !slices.Equal(c.GroupsAdded, []string{"canary"}) {
		t.Fatalf("change: %+v", c)
	}
	got, err := inv.ExpectedNodes(ctx, "prod")
	if err != nil || len(got) != 3 || got[2].Host != "web1" || got[2].Labels["zone"] != "c" || !slices.Equal(got[2].Groups, []string{"canary", "web"}) {
		t.Fatalf("expected nodes: %+v %v", got, err)
	}
	if n := got[2].Node(); n.Labels["group.canary"] != "true" || n.Facts.OS.Family != "debian" {
		t.Fatalf("node view: %+v", n)
	}

	// Coverage: db1 registered, and a node no inventory knows.
	for _, id := range []string{"db1", "stray"} {
		if _, err := st.UpsertNode(ctx, store.NodeRecord{ID: id, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	cov, err := inv.Coverage(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, m := range cov.Missing {
		missing = append(missing, m.Host)
	}
	if cov.Expected != 3 || cov.Covered != 1 || cov.Registered != 2 || !slices.Equal(missing, []string{"db2", "web1"}) ||
		!slices.Equal(cov.Unexpected, []string{"stray"}) {
		t.Fatalf("coverage: %+v", cov)
	}
	if _, err := inv.Coverage(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("coverage of an unknown inventory: %v", err)
	}
	list, err := inv.ListInventories(ctx)
	if err != nil || len(list) != 1 || list[0].Hosts != 3 || list[0].Format != fleet.FormatAnsibleINI {
		t.Fatalf("inventories: %+v %v", list, err)
	}

	// A bad host aborts the whole import: nothing half-applied.
	bad := imp2
	bad.Hosts = append([]store.ExpectedNode{host("new1", nil)}, host("bad host", nil))
	if _, err := inv.ImportInventory(ctx, bad, false); err == nil {
		t.Fatal("a host with a space was imported")
	}
	if got, _ := inv.ExpectedNodes(ctx, "prod"); len(got) != 3 {
		t.Fatalf("after a refused import: %d hosts", len(got))
	}

	// Tokens bound to a node enrol only that node.
	c2, _ := store.AsCredentials(st)
	if err := inv.CreateEnrollTokens(ctx, []store.EnrollToken{{Hash: "b1", NodeID: "web1", CreatedBy: "root", CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
		{Hash: "b2", NodeID: "db2", CreatedBy: "root", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.EnrollNode(ctx, "b1", store.NodeCert{NodeID: "db2", Serial: "x1"}, now); !errors.Is(err, store.ErrTokenInvalid) {
		t.Fatalf("token bound to web1 enrolled db2: %v", err)
	}
	if _, err := c2.EnrollNode(ctx, "b1", store.NodeCert{NodeID: "web1", Serial: "x2"}, now); err != nil {
		t.Fatalf("token bound to web1: %v", err)
	}
}
