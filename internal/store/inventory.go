package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
)

// Inventories is the part of the store that keeps the inventories
// imported into the server: the hosts expected to run an agent, which the
// fleet's coverage compares with the nodes whose agents registered. Both
// backends implement it (see AsInventories).
type Inventories interface {
	// ImportInventory replaces the hosts of inventory imp.Name with
	// imp.Hosts in one transaction and returns what changed (hosts added,
	// hosts whose labels, groups or facts changed, hosts removed). With
	// dryRun nothing is written. An import that changes nothing writes
	// nothing either (re-importing a file is idempotent); one that
	// changes something is audited as inventory.import by imp.Actor.
	ImportInventory(ctx context.Context, imp InventoryImport, dryRun bool) (InventoryDiff, error)
	// ListInventories returns every inventory by name with its host count.
	ListInventories(ctx context.Context) ([]InventoryRecord, error)
	// ExpectedNodes returns the expected nodes of inventory (every
	// inventory's when ""), by host then inventory; ErrNotFound when the
	// named inventory does not exist.
	ExpectedNodes(ctx context.Context, inventory string) ([]ExpectedNode, error)
	// Coverage compares the expected nodes of inventory (all inventories'
	// when "") with the registered nodes: expected hosts no agent
	// registered as, and registered nodes no inventory expects (with ""
	// only; with a name, nodes outside that inventory are not its
	// concern and Unexpected is empty). ErrNotFound for an unknown name.
	Coverage(ctx context.Context, inventory string) (Coverage, error)
	// CreateEnrollTokens stores several enrolment tokens in one
	// transaction, each audited as token.create.
	CreateEnrollTokens(ctx context.Context, ts []EnrollToken) error
}

// AsInventories returns st's inventory store, or false when st keeps no
// inventories.
func AsInventories(st Store) (Inventories, bool) {
	i, ok := st.(Inventories)
	return i, ok
}

var _ Inventories = (*sqlStore)(nil)

// InventoryImport is one inventory file to import.
type InventoryImport struct {
	Name   string // the inventory's name; one server keeps several
	Source string // the file's name, as given
	Format string // fleet.FormatDrover, FormatAnsibleINI, FormatAnsibleYAML
	Hosts  []ExpectedNode
	Actor  string
	Now    time.Time
}

// ExpectedNode is a host an inventory expects to run an agent.
type ExpectedNode struct {
	Inventory  string            `json:"inventory"`
	Host       string            `json:"host"`
	Labels     map[string]string `json:"labels,omitempty"`
	Groups     []string          `json:"groups,omitempty"`
	Facts      fleet.Facts       `json:"facts"`
	ImportedAt time.Time         `json:"importedAt"`
}

// Node is the fleet view of the expected node (its groups as the labels
// "group.NAME"="true", as fleet.LoadInventory gives them).
func (e ExpectedNode) Node() *fleet.Node {
	l := make(map[string]string, len(e.Labels)+len(e.Groups))
	maps.Copy(l, e.Labels)
	for _, g := range e.Groups {
		l["group."+g] = "true"
	}
	return &fleet.Node{ID: e.Host, Facts: e.Facts, Labels: l}
}

// ExpectedFromNode splits an inventory node into labels and groups.
func ExpectedFromNode(inventory string, n *fleet.Node) ExpectedNode {
	e := ExpectedNode{Inventory: inventory, Host: n.ID, Facts: n.Facts, Labels: map[string]string{}}
	for k, v := range n.Labels {
		if g, ok := cutGroup(k); ok && v == "true" {
			e.Groups = append(e.Groups, g)
			continue
		}
		e.Labels[k] = v
	}
	slices.Sort(e.Groups)
	return e
}

func cutGroup(k string) (string, bool) {
	const p = "group."
	if len(k) > len(p) && k[:len(p)] == p {
		return k[len(p):], true
	}
	return "", false
}

// InventoryRecord is an imported inventory.
type InventoryRecord struct {
	Name       string    `json:"name"`
	Source     string    `json:"source"`
	Format     string    `json:"format"`
	Hosts      int       `json:"hosts"`
	ImportedAt time.Time `json:"importedAt"`
	ImportedBy string    `json:"importedBy"`
}

// InventoryDiff is what an import changes.
type InventoryDiff struct {
	Inventory string       `json:"inventory"`
	New       bool         `json:"new,omitempty"` // the inventory did not exist
	Added     []string     `json:"added"`
	Changed   []HostChange `json:"changed"`
	Removed   []string     `json:"removed"`
	Unchanged int          `json:"unchanged"`
	Applied   bool         `json:"applied"` // false for a dry run or when nothing changed
}

// Empty reports whether the import changes nothing.
func (d InventoryDiff) Empty() bool {
	return !d.New && len(d.Added) == 0 && len(d.Changed) == 0 && len(d.Removed) == 0
}

// HostChange is a host whose labels, groups or facts an import changes.
type HostChange struct {
	Host string `json:"host"`
	// Labels: key -> [old, new]; "" for a label absent on that side.
	Labels map[string][2]string `json:"labels,omitempty"`
	// GroupsAdded and GroupsRemoved: groups the host joins or leaves.
	GroupsAdded   []string `json:"groupsAdded,omitempty"`
	GroupsRemoved []string `json:"groupsRemoved,omitempty"`
	Facts         bool     `json:"facts,omitempty"` // the facts set by well-known variables changed
}

// Coverage compares expected and registered nodes.
type Coverage struct {
	Expected   int            `json:"expected"`   // distinct expected hosts
	Registered int            `json:"registered"` // registered nodes
	Covered    int            `json:"covered"`    // expected hosts with a registered node
	Missing    []ExpectedNode `json:"missing"`    // expected hosts without one, by host
	Unexpected []string       `json:"unexpected"` // registered nodes no inventory expects, sorted
}

func (s *sqlStore) ImportInventory(ctx context.Context, imp InventoryImport, dryRun bool) (InventoryDiff, error) {
	diff := InventoryDiff{Inventory: imp.Name, Added: []string{}, Changed: []HostChange{}, Removed: []string{}}
	if imp.Name == "" {
		return diff, fmt.Errorf("import inventory: empty name")
	}
	type enc struct{ labels, groups, facts string }
	encode := func(h ExpectedNode) (enc, error) {
		l, err := encodeLabels(h.Labels)
		if err != nil {
			return enc{}, err
		}
		g := h.Groups
		if g == nil {
			g = []string{}
		}
		gb, err := json.Marshal(g)
		if err != nil {
			return enc{}, err
		}
		fb, err := json.Marshal(h.Facts)
		if err != nil {
			return enc{}, err
		}
		return enc{string(l), string(gb), string(fb)}, nil
	}
	want := make(map[string]enc, len(imp.Hosts))
	hosts := make([]ExpectedNode, len(imp.Hosts))
	for i, h := range imp.Hosts {
		h.Groups = slices.Sorted(slices.Values(h.Groups))
		hosts[i] = h
		if err := fleet.ValidID(h.Host); err != nil {
			return diff, fmt.Errorf("import inventory %s: host %q: %w", imp.Name, h.Host, err)
		}
		if _, dup := want[h.Host]; dup {
			return diff, fmt.Errorf("import inventory %s: host %s listed twice", imp.Name, h.Host)
		}
		e, err := encode(h)
		if err != nil {
			return diff, fmt.Errorf("import inventory %s: host %s: %w", imp.Name, h.Host, err)
		}
		want[h.Host] = e
	}
	run := s.write
	if dryRun {
		run = s.read
	}
	err := run(ctx, func(t *tx) error {
		var n int
		if err := t.queryRow(`SELECT COUNT(*) FROM inventories WHERE name = ?`, imp.Name).Scan(&n); err != nil {
			return err
		}
		diff.New = n == 0
		cur, err := t.expectedNodes(imp.Name)
		if err != nil {
			return err
		}
		have := make(map[string]ExpectedNode, len(cur))
		for _, h := range cur {
			have[h.Host] = h
		}
		for _, h := range hosts {
			old, ok := have[h.Host]
			if !ok {
				diff.Added = append(diff.Added, h.Host)
				continue
			}
			if c, changed := hostChange(old, h); changed {
				diff.Changed = append(diff.Changed, c)
			} else {
				diff.Unchanged++
			}
		}
		for _, h := range cur {
			if _, ok := want[h.Host]; !ok {
				diff.Removed = append(diff.Removed, h.Host)
			}
		}
		if dryRun || diff.Empty() {
			return nil
		}
		at := nanos(imp.Now)
		if diff.New {
			if _, err := t.exec(`INSERT INTO inventories (name, source, format, imported_at, imported_by) VALUES (?, ?, ?, ?, ?)`,
				imp.Name, imp.Source, imp.Format, at, imp.Actor); err != nil {
				return err
			}
		} else if _, err := t.exec(`UPDATE inventories SET source = ?, format = ?, imported_at = ?, imported_by = ? WHERE name = ?`,
			imp.Source, imp.Format, at, imp.Actor, imp.Name); err != nil {
			return err
		}
		for _, h := range diff.Removed {
			if _, err := t.exec(`DELETE FROM expected_nodes WHERE inventory = ? AND host = ?`, imp.Name, h); err != nil {
				return err
			}
		}
		for _, h := range diff.Added {
			e := want[h]
			if _, err := t.exec(`INSERT INTO expected_nodes (inventory, host, labels, host_groups, facts, imported_at) VALUES (?, ?, ?, ?, ?, ?)`,
				imp.Name, h, e.labels, e.groups, e.facts, at); err != nil {
				return err
			}
		}
		for _, c := range diff.Changed {
			e := want[c.Host]
			if _, err := t.exec(`UPDATE expected_nodes SET labels = ?, host_groups = ?, facts = ?, imported_at = ? WHERE inventory = ? AND host = ?`,
				e.labels, e.groups, e.facts, at, imp.Name, c.Host); err != nil {
				return err
			}
		}
		changed := make([]string, 0, len(diff.Changed))
		for _, c := range diff.Changed {
			changed = append(changed, c.Host)
		}
		t.audit(AuditEntry{At: imp.Now, Actor: imp.Actor, Action: "inventory.import", Object: "inventory/" + imp.Name,
			Detail: detail(map[string]any{"source": imp.Source, "format": imp.Format, "hosts": len(imp.Hosts),
				"added": diff.Added, "changed": changed, "removed": diff.Removed})})
		diff.Applied = true
		return nil
	})
	if err != nil {
		return InventoryDiff{}, fmt.Errorf("import inventory %s: %w", imp.Name, err)
	}
	return diff, nil
}

// hostChange compares an expected node with its re-imported self.
func hostChange(old, cur ExpectedNode) (HostChange, bool) {
	c := HostChange{Host: cur.Host}
	for k, v := range cur.Labels {
		if ov, ok := old.Labels[k]; !ok || ov != v {
			if c.Labels == nil {
				c.Labels = map[string][2]string{}
			}
			c.Labels[k] = [2]string{ov, v}
		}
	}
	for k, ov := range old.Labels {
		if _, ok := cur.Labels[k]; !ok {
			if c.Labels == nil {
				c.Labels = map[string][2]string{}
			}
			c.Labels[k] = [2]string{ov, ""}
		}
	}
	for _, g := range cur.Groups {
		if !slices.Contains(old.Groups, g) {
			c.GroupsAdded = append(c.GroupsAdded, g)
		}
	}
	for _, g := range old.Groups {
		if !slices.Contains(cur.Groups, g) {
			c.GroupsRemoved = append(c.GroupsRemoved, g)
		}
	}
	of, _ := json.Marshal(old.Facts)
	nf, _ := json.Marshal(cur.Facts)
	c.Facts = string(of) != string(nf)
	return c, len(c.Labels) > 0 || len(c.GroupsAdded) > 0 || len(c.GroupsRemoved) > 0 || c.Facts
}

func (t *tx) expectedNodes(inventory string) ([]ExpectedNode, error) {
	q := `SELECT inventory, host, labels, host_groups, facts, imported_at FROM expected_nodes`
	var args []any
	if inventory != "" {
		q += ` WHERE inventory = ?`
		args = append(args, inventory)
	}
	rows, err := t.query(q+` ORDER BY host, inventory`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ExpectedNode
	for rows.Next() {
		var e ExpectedNode
		var labels, groups, facts string
		var at int64
		if err := rows.Scan(&e.Inventory, &e.Host, &labels, &groups, &facts, &at); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(labels), &e.Labels); err != nil {
			return nil, fmt.Errorf("expected node %s: labels: %w", e.Host, err)
		}
		if err := json.Unmarshal([]byte(groups), &e.Groups); err != nil {
			return nil, fmt.Errorf("expected node %s: groups: %w", e.Host, err)
		}
		if err := json.Unmarshal([]byte(facts), &e.Facts); err != nil {
			return nil, fmt.Errorf("expected node %s: facts: %w", e.Host, err)
		}
		e.ImportedAt = fromNanos(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (t *tx) inventoryExists(name string) error {
	var n int
	if err := t.queryRow(`SELECT COUNT(*) FROM inventories WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return notFound("inventory", name)
	}
	return nil
}

func (s *sqlStore) ListInventories(ctx context.Context) ([]InventoryRecord, error) {
	var out []InventoryRecord
	err := s.read(ctx, func(t *tx) error {
		out = nil
		rows, err := t.query(`SELECT i.name, i.source, i.format, i.imported_at, i.imported_by,
			(SELECT COUNT(*) FROM expected_nodes e WHERE e.inventory = i.name) FROM inventories i ORDER BY i.name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r InventoryRecord
			var at int64
			if err := rows.Scan(&r.Name, &r.Source, &r.Format, &at, &r.ImportedBy, &r.Hosts); err != nil {
				return err
			}
			r.ImportedAt = fromNanos(at)
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list inventories: %w", err)
	}
	return out, nil
}

func (s *sqlStore) ExpectedNodes(ctx context.Context, inventory string) ([]ExpectedNode, error) {
	var out []ExpectedNode
	err := s.read(ctx, func(t *tx) error {
		if inventory != "" {
			if err := t.inventoryExists(inventory); err != nil {
				return err
			}
		}
		var err error
		out, err = t.expectedNodes(inventory)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("expected nodes: %w", err)
	}
	return out, nil
}

func (s *sqlStore) Coverage(ctx context.Context, inventory string) (Coverage, error) {
	var c Coverage
	err := s.read(ctx, func(t *tx) error {
		c = Coverage{Missing: []ExpectedNode{}, Unexpected: []string{}}
		if inventory != "" {
			if err := t.inventoryExists(inventory); err != nil {
				return err
			}
		}
		exp, err := t.expectedNodes(inventory)
		if err != nil {
			return err
		}
		rows, err := t.query(`SELECT id FROM nodes ORDER BY id`)
		if err != nil {
			return err
		}
		registered := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			registered[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		c.Registered = len(registered)
		expected := map[string]bool{}
		for _, e := range exp {
			if expected[e.Host] {
				continue // in several inventories: counted and listed once
			}
			expected[e.Host] = true
			if registered[e.Host] {
				c.Covered++
			} else {
				c.Missing = append(c.Missing, e)
			}
		}
		c.Expected = len(expected)
		if inventory == "" {
			for _, id := range slices.Sorted(maps.Keys(registered)) {
				if !expected[id] {
					c.Unexpected = append(c.Unexpected, id)
				}
			}
		}
		return nil
	})
	if err != nil {
		return Coverage{}, fmt.Errorf("coverage: %w", err)
	}
	return c, nil
}

func (s *sqlStore) CreateEnrollTokens(ctx context.Context, ts []EnrollToken) error {
	err := s.write(ctx, func(t *tx) error {
		for _, et := range ts {
			labels, err := encodeLabels(et.Labels)
			if err != nil {
				return err
			}
			_, err = t.exec(`INSERT INTO enroll_tokens (hash, labels, created_by, created_at, expires_at, node_id) VALUES (?, ?, ?, ?, ?, ?)`,
				et.Hash, labels, et.CreatedBy, nanos(et.CreatedAt), nanos(et.ExpiresAt), et.NodeID)
			if err := t.conflictOnUnique(err, "insert enrolment token"); err != nil {
				return err
			}
			t.audit(AuditEntry{At: et.CreatedAt, Actor: et.CreatedBy, Action: "token.create", Object: "token/enroll",
				Detail: detail(map[string]any{"kind": "enroll", "node": et.NodeID, "labels": et.Labels, "expiresAt": et.ExpiresAt})})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create enrolment tokens: %w", err)
	}
	return nil
}
