package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/disruption"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
)

// BudgetRecord is a stored fleet disruption budget.
type BudgetRecord struct {
	disruption.Budget
	Version   int64
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// FreezeRecord is a stored fleet freeze. Source names the iCalendar file
// (and event UID) it was imported from, "" when created directly.
type FreezeRecord struct {
	disruption.Freeze
	Source    string
	Version   int64
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// FleetState is what the scheduler loads, in one snapshot, to tell each
// rollout what the rest of the fleet imposes: every node hold, every
// budget and freeze, and (when there are budgets) a stamp of the node
// table that changes when a node is added, removed or relabelled
// (budgets' domains are recomputed then).
type FleetState struct {
	Holds      []disruption.Hold // by node ID
	Budgets    []BudgetRecord    // by name
	Freezes    []FreezeRecord    // by name
	NodesStamp string
}

// RolloutOverlap is an active rollout sharing target nodes with another.
type RolloutOverlap struct {
	Rollout Rollout
	Shared  int      // target nodes in common
	Nodes   []string // the first few of them
}

// FleetSafety is the store of fleet-level safety objects: node holds
// (taken by ApplyCommit, released when a node leaves the in-flight
// phases or its rollout ends), fleet disruption budgets and fleet
// freezes. Every change of a budget or freeze is audited in its
// transaction (budget.create, budget.update, budget.delete, freeze.*).
// Both backends implement it (see AsFleetSafety).
type FleetSafety interface {
	// PutBudget creates the budget when ifVersion is 0 (ErrConflict if
	// one of that name exists) or replaces it when its Version is
	// ifVersion (ErrConflict otherwise, ErrNotFound if it is gone).
	PutBudget(ctx context.Context, b disruption.Budget, ifVersion int64, actor string, now time.Time) (BudgetRecord, error)
	ListBudgets(ctx context.Context) ([]BudgetRecord, error)
	GetBudget(ctx context.Context, name string) (BudgetRecord, error) // ErrNotFound
	DeleteBudget(ctx context.Context, name, actor string, now time.Time) error
	// PutFreezes creates freezes (ifVersion 0: ErrConflict if a name
	// exists) or replaces one (ifVersion its Version), all or none.
	PutFreezes(ctx context.Context, fs []FreezeRecord, ifVersion int64, actor string, now time.Time) ([]FreezeRecord, error)
	ListFreezes(ctx context.Context) ([]FreezeRecord, error)
	GetFreeze(ctx context.Context, name string) (FreezeRecord, error) // ErrNotFound
	DeleteFreeze(ctx context.Context, name, actor string, now time.Time) error
	// LoadFleetState reads holds, budgets, freezes and the node stamp
	// in one snapshot.
	LoadFleetState(ctx context.Context) (FleetState, error)
	// Overlaps lists the active rollouts (not terminal) whose target
	// shares nodes with nodes, oldest first.
	Overlaps(ctx context.Context, nodes []string) ([]RolloutOverlap, error)
}

// AsFleetSafety returns st's fleet safety store, or false when st keeps
// none.
func AsFleetSafety(st Store) (FleetSafety, bool) {
	f, ok := st.(FleetSafety)
	return f, ok
}

var _ FleetSafety = (*sqlStore)(nil)

// budgetIndex caches the disruption index of the stored budgets over the
// stored fleet, keyed by the budgets and the node stamp, so that a commit
// dispatching steps under budgets evaluates selectors only when the fleet
// or the budgets changed.
type budgetIndex struct {
	mu  sync.Mutex
	key string
	x   *disruption.Index
}

// takeHolds runs in ApplyCommit after the commit's steps are inserted:
// every dispatched node is held by the rollout, or the commit fails with
// ErrConflict when another holder holds it; then every fleet budget
// domain a newly held node falls in must stay within its limit, counted
// under a lock on the budget rows (PostgreSQL: two commits filling one
// domain serialize there, and the second sees the first's holds).
func (t *tx) takeHolds(s *sqlStore, c Commit) error {
	if len(c.Steps) == 0 {
		return nil
	}
	var name string
	if err := t.queryRow("SELECT name FROM rollouts WHERE id = ?", c.Rollout).Scan(&name); err != nil {
		return fmt.Errorf("read rollout name: %w", err)
	}
	// Hold nodes in ID order: two commits holding overlapping nodes wait
	// for each other in one order, never in a cycle.
	steps := slices.Clone(c.Steps)
	slices.SortFunc(steps, func(a, b Step) int { return strings.Compare(a.NodeID, b.NodeID) })
	var added []string
	for _, st := range steps {
		res, err := t.exec(`INSERT INTO node_holds (node_id, holder_kind, holder, holder_name, since) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (node_id) DO NOTHING`, st.NodeID, disruption.HolderRollout, c.Rollout, name, nanos(c.Now))
		if err != nil {
			return fmt.Errorf("hold node %s: %w", st.NodeID, err)
		}
		n, err := rowsAffected(res)
		if err != nil {
			return err
		}
		if n == 1 {
			added = append(added, st.NodeID)
			continue
		}
		var kind, holder, hname string
		if err := t.queryRow("SELECT holder_kind, holder, holder_name FROM node_holds WHERE node_id = ?", st.NodeID).Scan(&kind, &holder, &hname); err != nil {
			return fmt.Errorf("read hold of node %s: %w", st.NodeID, err)
		}
		if kind != disruption.HolderRollout || holder != c.Rollout {
			h := engine.Holder{Kind: kind, ID: holder, Name: hname}
			return fmt.Errorf("node %s is held by %s: %w", st.NodeID, h, ErrConflict)
		}
	}
	if len(added) == 0 {
		return nil
	}
	budgets, err := t.budgets(true)
	if err != nil || len(budgets) == 0 {
		return err
	}
	x, err := s.budgetIndex(t, budgets)
	if err != nil {
		return err
	}
	holds, err := t.holds()
	if err != nil {
		return err
	}
	if err := x.Check(holds, added); err != nil {
		return fmt.Errorf("%w: %w", err, ErrConflict)
	}
	return nil
}

// budgetIndex returns the index of budgets over the stored fleet, from
// the cache when neither changed.
func (s *sqlStore) budgetIndex(t *tx, budgets []BudgetRecord) (*disruption.Index, error) {
	stamp, err := t.nodesStamp()
	if err != nil {
		return nil, err
	}
	key := stamp + budgetsKey(budgets)
	bi := &s.budgets
	bi.mu.Lock()
	defer bi.mu.Unlock()
	if bi.x != nil && bi.key == key {
		return bi.x, nil
	}
	nodes, err := t.allNodes()
	if err != nil {
		return nil, err
	}
	bs := make([]disruption.Budget, len(budgets))
	for i, b := range budgets {
		bs[i] = b.Budget
	}
	x, err := disruption.NewIndex(bs, nodes)
	if err != nil {
		return nil, err
	}
	bi.key, bi.x = key, x
	return x, nil
}

func budgetsKey(bs []BudgetRecord) string {
	key := ""
	for _, b := range bs {
		key += "|" + b.Name + "@" + strconv.FormatInt(b.Version, 10) + "@" + strconv.FormatInt(nanos(b.CreatedAt), 10)
	}
	return key
}

// nodesStamp changes when a node is added, removed, or changes facts or
// labels (each bumps its version; registration times only grow).
func (t *tx) nodesStamp() (string, error) {
	var n, sum, reg int64
	if err := t.queryRow("SELECT COUNT(*), COALESCE(SUM(version), 0), COALESCE(MAX(registered_at), 0) FROM nodes").Scan(&n, &sum, &reg); err != nil {
		return "", fmt.Errorf("read node stamp: %w", err)
	}
	return fmt.Sprintf("%d/%d/%d", n, sum, reg), nil
}

func (t *tx) allNodes() ([]*fleet.Node, error) {
	rows, err := t.query("SELECT " + nodeColumns + " FROM nodes ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("read nodes: %w", err)
	}
	var out []*fleet.Node
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read nodes: %w", err)
		}
		out = append(out, n.Node())
	}
	return out, closeRows(rows)
}

func (t *tx) holds() ([]disruption.Hold, error) {
	rows, err := t.query("SELECT node_id, holder_kind, holder, holder_name, since FROM node_holds ORDER BY since, node_id")
	if err != nil {
		return nil, fmt.Errorf("read holds: %w", err)
	}
	var out []disruption.Hold
	for rows.Next() {
		var h disruption.Hold
		var since int64
		if err := rows.Scan(&h.Node, &h.Kind, &h.Holder, &h.Name, &since); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read holds: %w", err)
		}
		h.Since = fromNanos(since)
		out = append(out, h)
	}
	return out, closeRows(rows)
}

const budgetColumns = "name, selector, max_unavailable, per, version, created_by, created_at, updated_at"

// budgets reads every budget by name; lock locks their rows (the lock
// commits that count against them take, in name order).
func (t *tx) budgets(lock bool) ([]BudgetRecord, error) {
	q := "SELECT " + budgetColumns + " FROM fleet_budgets ORDER BY name"
	if lock {
		q += t.d.forUpdate
	}
	rows, err := t.query(q)
	if err != nil {
		return nil, fmt.Errorf("read budgets: %w", err)
	}
	var out []BudgetRecord
	for rows.Next() {
		b, err := scanBudget(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, b)
	}
	return out, closeRows(rows)
}

func scanBudget(r scanner) (BudgetRecord, error) {
	var b BudgetRecord
	var maxU string
	var created, updated int64
	if err := r.Scan(&b.Name, &b.Selector, &maxU, &b.Per, &b.Version, &b.CreatedBy, &created, &updated); err != nil {
		return b, fmt.Errorf("read budget: %w", err)
	}
	q, err := disruption.ParseMaxUnavailable(maxU)
	if err != nil {
		return b, fmt.Errorf("budget %s: stored maxUnavailable %q: %w", b.Name, maxU, err)
	}
	b.MaxUnavailable = q
	b.CreatedAt, b.UpdatedAt = fromNanos(created), fromNanos(updated)
	return b, nil
}

func (s *sqlStore) PutBudget(ctx context.Context, b disruption.Budget, ifVersion int64, actor string, now time.Time) (BudgetRecord, error) {
	if err := b.Validate(); err != nil {
		return BudgetRecord{}, err
	}
	var out BudgetRecord
	err := s.write(ctx, func(t *tx) error {
		cur, err := scanBudget(t.queryRow("SELECT "+budgetColumns+" FROM fleet_budgets WHERE name = ?"+t.d.forUpdate, b.Name))
		exists := err == nil
		if err != nil && !isNoRows(err) {
			return err
		}
		action := "budget.create"
		switch {
		case ifVersion == 0 && exists:
			return fmt.Errorf("budget %s exists: %w", b.Name, ErrConflict)
		case ifVersion != 0 && !exists:
			return notFound("budget", b.Name)
		case ifVersion != 0 && cur.Version != ifVersion:
			return fmt.Errorf("budget %s is at version %d, not %d: %w", b.Name, cur.Version, ifVersion, ErrConflict)
		}
		out = BudgetRecord{Budget: b, Version: 1, CreatedBy: actor, CreatedAt: now, UpdatedAt: now}
		if exists {
			action = "budget.update"
			out.Version, out.CreatedBy, out.CreatedAt = cur.Version+1, cur.CreatedBy, cur.CreatedAt
			_, err = t.exec("UPDATE fleet_budgets SET selector = ?, max_unavailable = ?, per = ?, version = ?, updated_at = ? WHERE name = ?",
				b.Selector, b.MaxUnavailable.String(), b.Per, out.Version, nanos(now), b.Name)
		} else {
			_, err = t.exec("INSERT INTO fleet_budgets ("+budgetColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
				b.Name, b.Selector, b.MaxUnavailable.String(), b.Per, out.Version, actor, nanos(now), nanos(now))
		}
		if err != nil {
			return t.conflictOnUnique(err, "store budget %s", b.Name)
		}
		d := map[string]any{"selector": b.Selector, "maxUnavailable": b.MaxUnavailable.String(), "per": b.Per, "version": out.Version}
		if exists {
			d["from"] = map[string]any{"selector": cur.Selector, "maxUnavailable": cur.MaxUnavailable.String(), "per": cur.Per, "version": cur.Version}
		}
		t.audit(AuditEntry{At: now, Actor: actor, Action: action, Object: "budget/" + b.Name, Detail: detail(d)})
		return nil
	})
	if err != nil {
		return BudgetRecord{}, fmt.Errorf("put budget %s: %w", b.Name, err)
	}
	return out, nil
}

func (s *sqlStore) ListBudgets(ctx context.Context) ([]BudgetRecord, error) {
	var out []BudgetRecord
	err := s.read(ctx, func(t *tx) error {
		var err error
		out, err = t.budgets(false)
		return err
	})
	return out, err
}

func (s *sqlStore) GetBudget(ctx context.Context, name string) (BudgetRecord, error) {
	var out BudgetRecord
	err := s.read(ctx, func(t *tx) error {
		var err error
		out, err = scanBudget(t.queryRow("SELECT "+budgetColumns+" FROM fleet_budgets WHERE name = ?", name))
		if isNoRows(err) {
			return notFound("budget", name)
		}
		return err
	})
	return out, err
}

func (s *sqlStore) DeleteBudget(ctx context.Context, name, actor string, now time.Time) error {
	return s.deleteObject(ctx, "fleet_budgets", "budget", name, actor, now)
}

func (s *sqlStore) DeleteFreeze(ctx context.Context, name, actor string, now time.Time) error {
	return s.deleteObject(ctx, "fleet_freezes", "freeze", name, actor, now)
}

func (s *sqlStore) deleteObject(ctx context.Context, table, kind, name, actor string, now time.Time) error {
	err := s.write(ctx, func(t *tx) error {
		res, err := t.exec("DELETE FROM "+table+" WHERE name = ?", name)
		if err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		if n, err := rowsAffected(res); err != nil || n == 0 {
			if err != nil {
				return err
			}
			return notFound(kind, name)
		}
		t.audit(AuditEntry{At: now, Actor: actor, Action: kind + ".delete", Object: kind + "/" + name, Detail: detail(map[string]any{})})
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", kind, name, err)
	}
	return nil
}

const freezeColumns = "name, calendar, selector, reason, source, version, created_by, created_at, updated_at"

func scanFreeze(r scanner) (FreezeRecord, error) {
	var f FreezeRecord
	var cal string
	var created, updated int64
	if err := r.Scan(&f.Name, &cal, &f.Selector, &f.Reason, &f.Source, &f.Version, &f.CreatedBy, &created, &updated); err != nil {
		return f, err
	}
	if err := json.Unmarshal([]byte(cal), &f.Calendar); err != nil {
		return f, fmt.Errorf("freeze %s: stored calendar: %w", f.Name, err)
	}
	f.CreatedAt, f.UpdatedAt = fromNanos(created), fromNanos(updated)
	return f, nil
}

func (t *tx) freezes() ([]FreezeRecord, error) {
	rows, err := t.query("SELECT " + freezeColumns + " FROM fleet_freezes ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("read freezes: %w", err)
	}
	var out []FreezeRecord
	for rows.Next() {
		f, err := scanFreeze(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read freezes: %w", err)
		}
		out = append(out, f)
	}
	return out, closeRows(rows)
}

func (s *sqlStore) PutFreezes(ctx context.Context, fs []FreezeRecord, ifVersion int64, actor string, now time.Time) ([]FreezeRecord, error) {
	if len(fs) == 0 {
		return nil, errors.New("put freezes: none given")
	}
	if ifVersion != 0 && len(fs) != 1 {
		return nil, errors.New("put freezes: a version check applies to one freeze")
	}
	seen := map[string]bool{}
	for _, f := range fs {
		if err := f.Validate(); err != nil {
			return nil, err
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("freeze %s given twice", f.Name)
		}
		seen[f.Name] = true
	}
	out := make([]FreezeRecord, 0, len(fs))
	err := s.write(ctx, func(t *tx) error {
		out = out[:0]
		for _, f := range fs {
			cur, err := scanFreeze(t.queryRow("SELECT "+freezeColumns+" FROM fleet_freezes WHERE name = ?"+t.d.forUpdate, f.Name))
			exists := err == nil
			if err != nil && !isNoRows(err) {
				return err
			}
			switch {
			case ifVersion == 0 && exists:
				return fmt.Errorf("freeze %s exists: %w", f.Name, ErrConflict)
			case ifVersion != 0 && !exists:
				return notFound("freeze", f.Name)
			case ifVersion != 0 && cur.Version != ifVersion:
				return fmt.Errorf("freeze %s is at version %d, not %d: %w", f.Name, cur.Version, ifVersion, ErrConflict)
			}
			cal, err := json.Marshal(f.Calendar)
			if err != nil {
				return err
			}
			rec := FreezeRecord{Freeze: f.Freeze, Source: f.Source, Version: 1, CreatedBy: actor, CreatedAt: now, UpdatedAt: now}
			action := "freeze.create"
			if exists {
				action = "freeze.update"
				rec.Version, rec.CreatedBy, rec.CreatedAt = cur.Version+1, cur.CreatedBy, cur.CreatedAt
				_, err = t.exec("UPDATE fleet_freezes SET calendar = ?, selector = ?, reason = ?, source = ?, version = ?, updated_at = ? WHERE name = ?",
					string(cal), f.Selector, f.Reason, f.Source, rec.Version, nanos(now), f.Name)
			} else {
				_, err = t.exec("INSERT INTO fleet_freezes ("+freezeColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
					f.Name, string(cal), f.Selector, f.Reason, f.Source, rec.Version, actor, nanos(now), nanos(now))
			}
			if err != nil {
				return t.conflictOnUnique(err, "store freeze %s", f.Name)
			}
			d := map[string]any{"calendar": f.Calendar, "selector": f.Selector, "reason": f.Reason, "version": rec.Version}
			if f.Source != "" {
				d["source"] = f.Source
			}
			if exists {
				d["from"] = map[string]any{"calendar": cur.Calendar, "selector": cur.Selector, "reason": cur.Reason, "version": cur.Version}
			}
			t.audit(AuditEntry{At: now, Actor: actor, Action: action, Object: "freeze/" + f.Name, Detail: detail(d)})
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("put freezes: %w", err)
	}
	return out, nil
}

func (s *sqlStore) ListFreezes(ctx context.Context) ([]FreezeRecord, error) {
	var out []FreezeRecord
	err := s.read(ctx, func(t *tx) error {
		var err error
		out, err = t.freezes()
		return err
	})
	return out, err
}

func (s *sqlStore) GetFreeze(ctx context.Context, name string) (FreezeRecord, error) {
	var out FreezeRecord
	err := s.read(ctx, func(t *tx) error {
		var err error
		out, err = scanFreeze(t.queryRow("SELECT "+freezeColumns+" FROM fleet_freezes WHERE name = ?", name))
		if isNoRows(err) {
			return notFound("freeze", name)
		}
		return err
	})
	return out, err
}

func (s *sqlStore) LoadFleetState(ctx context.Context) (FleetState, error) {
	var out FleetState
	err := s.read(ctx, func(t *tx) error {
		var err error
		if out.Holds, err = t.holds(); err != nil {
			return err
		}
		slices.SortFunc(out.Holds, func(a, b disruption.Hold) int { return a.Since.Compare(b.Since) })
		if out.Budgets, err = t.budgets(false); err != nil {
			return err
		}
		if out.Freezes, err = t.freezes(); err != nil {
			return err
		}
		if len(out.Budgets) > 0 { // the stamp is a scan of the nodes: only budgets need it
			out.NodesStamp, err = t.nodesStamp()
		}
		return err
	})
	if err != nil {
		return FleetState{}, fmt.Errorf("load fleet state: %w", err)
	}
	return out, nil
}

func (s *sqlStore) Overlaps(ctx context.Context, nodes []string) ([]RolloutOverlap, error) {
	want := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		want[n] = true
	}
	var out []RolloutOverlap
	err := s.read(ctx, func(t *tx) error {
		out = out[:0]
		rows, err := t.query("SELECT " + prefixed("r.", rolloutColumns) + " FROM rollouts r WHERE r.state NOT IN (" + terminalStates + ") ORDER BY r.created_at, r.id")
		if err != nil {
			return err
		}
		var active []Rollout
		for rows.Next() {
			ro, err := scanRollout(rows)
			if err != nil {
				rows.Close()
				return err
			}
			active = append(active, ro)
		}
		if err := closeRows(rows); err != nil {
			return err
		}
		for _, ro := range active {
			rows, err := t.query("SELECT node_id FROM rollout_nodes WHERE rollout_id = ? AND phase <> ? ORDER BY idx", ro.ID, string(engine.PhaseSkipped))
			if err != nil {
				return err
			}
			o := RolloutOverlap{Rollout: ro}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				if want[id] {
					o.Shared++
					if len(o.Nodes) < 5 {
						o.Nodes = append(o.Nodes, id)
					}
				}
			}
			if err := closeRows(rows); err != nil {
				return err
			}
			if o.Shared > 0 {
				out = append(out, o)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("overlapping rollouts: %w", err)
	}
	return out, nil
}

// overlapCounts counts, per other active rollout, the target nodes (not
// skipped) it shares with rollout id.
func (t *tx) overlapCounts(id string) (map[string]int, error) {
	rows, err := t.query(`SELECT o.rollout_id, COUNT(*) FROM rollout_nodes n
JOIN rollout_nodes o ON o.node_id = n.node_id AND o.rollout_id <> n.rollout_id AND o.phase <> ?
JOIN rollouts r ON r.id = o.rollout_id AND r.state NOT IN (`+terminalStates+`)
WHERE n.rollout_id = ? AND n.phase <> ? GROUP BY o.rollout_id`, string(engine.PhaseSkipped), id, string(engine.PhaseSkipped))
	if err != nil {
		return nil, fmt.Errorf("overlapping rollouts: %w", err)
	}
	out := map[string]int{}
	for rows.Next() {
		var ro string
		var n int
		if err := rows.Scan(&ro, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("overlapping rollouts: %w", err)
		}
		out[ro] = n
	}
	return out, closeRows(rows)
}
