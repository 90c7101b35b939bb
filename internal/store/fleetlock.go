package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/drover-dev/drover/internal/disruption"
	"github.com/drover-dev/drover/internal/fleet"
)

// FleetLockRequest is a FleetLock client's pre-reboot: node Node asks
// for a slot of group Group, which has MaxHolders slots and admits the
// nodes Selector matches (nil admits every node). Peer is the client's
// network address, for the audit.
type FleetLockRequest struct {
	Node, Group string
	MaxHolders  int
	Selector    *fleet.Selector
	Peer        string
	Now         time.Time
}

// FleetLock refusal kinds (the FleetLock error's "kind").
const (
	FleetLockUnknownNode = "unknown_node"
	FleetLockNotInGroup  = "not_in_group"
	FleetLockLineStopped = "line_stopped"
	FleetLockFrozen      = "fleet_frozen"
	FleetLockNodeHeld    = "node_held"
	FleetLockGroupFull   = "group_full"
	FleetLockBudget      = "budget_exceeded"
)

// FleetLockRefusal is a pre-reboot or steady-state refused by a rule of
// the fleet (not an error of the store): Kind is one of the FleetLock*
// refusal kinds, Reason says what refused it in words.
type FleetLockRefusal struct {
	Kind, Reason string
}

func (e *FleetLockRefusal) Error() string { return e.Reason }

// FleetLocks is the store of FleetLock slots: node holds of kind
// disruption.HolderFleetLock, counted against the fleet disruption
// budgets like the holds of rollouts' steps. Both backends implement it
// (see AsFleetLocks).
type FleetLocks interface {
	// FleetLockAcquire holds req.Node for group req.Group in one
	// transaction: refused (*FleetLockRefusal) when the node is not
	// enrolled or not in the group, while the line is stopped, while a
	// fleet freeze covers the node, while another holder (a rollout)
	// holds it, when the group has MaxHolders holders, or when the hold
	// would fill a fleet budget domain past its limit. Nothing is
	// written then. already is true when the node held a slot of the
	// group (then nothing changes). Audited as fleetlock.lock.
	FleetLockAcquire(ctx context.Context, req FleetLockRequest) (already bool, err error)
	// FleetLockRelease releases the node's slot of group; released is
	// false when it held none (then nothing changes). A node that is not
	// enrolled is refused (*FleetLockRefusal). Audited as
	// fleetlock.unlock.
	FleetLockRelease(ctx context.Context, node, group, peer string, now time.Time) (released bool, err error)
	// FleetLockBreak releases the FleetLock slot node holds, whatever its
	// group, for an operator (a node that never came back from its
	// reboot holds it until then), and returns the hold it released;
	// ErrNotFound when the node holds none. Audited as fleetlock.break
	// with the actor and reason.
	FleetLockBreak(ctx context.Context, node, actor, reason string, now time.Time) (disruption.Hold, error)
	// FleetLockRefused audits a refusal (fleetlock.refuse) with its kind
	// and reason.
	FleetLockRefused(ctx context.Context, req FleetLockRequest, endpoint string, r *FleetLockRefusal) error
	// FleetLockHolders lists the FleetLock holds, oldest first.
	FleetLockHolders(ctx context.Context) ([]disruption.Hold, error)
}

// AsFleetLocks returns st's FleetLock store, or false when st keeps
// none.
func AsFleetLocks(st Store) (FleetLocks, bool) {
	f, ok := st.(FleetLocks)
	return f, ok
}

var _ FleetLocks = (*sqlStore)(nil)

func refuse(kind, format string, args ...any) error {
	return &FleetLockRefusal{Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// FleetLockHoldName is the Name of a FleetLock hold, as waits show it
// ("fleetlock default (reboot)").
const FleetLockHoldName = "reboot"

func (s *sqlStore) FleetLockAcquire(ctx context.Context, req FleetLockRequest) (bool, error) {
	if req.Node == "" || req.Group == "" || req.MaxHolders < 1 {
		return false, errors.New("fleetlock acquire: node, group and a positive max holders are required")
	}
	now := req.Now
	if now.IsZero() {
		now = s.clock()
	}
	var already bool
	err := s.write(ctx, func(t *tx) error {
		already = false
		// Lock order (commit.go): leader row (shared) -> fleetlock_groups
		// row -> node_holds rows -> fleet_budgets rows -> audit_head. The
		// shared leader lock makes a concurrent StopLine wait for us.
		var term int64
		if err := t.queryRow("SELECT term FROM leader WHERE id = 1" + t.d.forShare).Scan(&term); err != nil {
			return fmt.Errorf("read leadership term: %w", err)
		}
		n, err := t.getNode(req.Node, false)
		if errors.Is(err, ErrNotFound) {
			return refuse(FleetLockUnknownNode, "node %s is not enrolled in drover", req.Node)
		}
		if err != nil {
			return err
		}
		if req.Selector != nil {
			if ok, err := req.Selector.Match(n.Node()); err != nil || !ok {
				return refuse(FleetLockNotInGroup, "node %s is not in FleetLock group %s (its selector does not match the node)", req.Node, req.Group)
			}
		}
		if _, err := t.exec("INSERT INTO fleetlock_groups (name) VALUES (?) ON CONFLICT (name) DO NOTHING", req.Group); err != nil {
			return fmt.Errorf("record group %s: %w", req.Group, err)
		}
		var g string
		if err := t.queryRow("SELECT name FROM fleetlock_groups WHERE name = ?"+t.d.forUpdate, req.Group).Scan(&g); err != nil {
			return fmt.Errorf("lock group %s: %w", req.Group, err)
		}
		var kind, holder, hname string
		err = t.queryRow("SELECT holder_kind, holder, holder_name FROM node_holds WHERE node_id = ?"+t.d.forUpdate, req.Node).Scan(&kind, &holder, &hname)
		switch {
		case err == nil && kind == disruption.HolderFleetLock && holder == req.Group:
			already = true
			return nil
		case err == nil:
			h := disruption.Hold{Kind: kind, Holder: holder, Name: hname}
			return refuse(FleetLockNodeHeld, "node %s is held by %s", req.Node, h.EngineHolder())
		case !isNoRows(err):
			return fmt.Errorf("read hold of node %s: %w", req.Node, err)
		}
		if l, stopped, err := t.lineStop(); err != nil {
			return err
		} else if stopped {
			return refuse(FleetLockLineStopped, "line %s: no node may reboot", l.Text())
		}
		freezes, err := t.freezes()
		if err != nil {
			return err
		}
		if len(freezes) > 0 {
			fs := make([]disruption.Freeze, len(freezes))
			for i, f := range freezes {
				fs[i] = f.Freeze
			}
			c, err := disruption.CompileFreezes(fs)
			if err != nil {
				return err
			}
			if f, ok := c.ForNode(n.Node(), now); ok {
				return refuse(FleetLockFrozen, "fleet freeze %s is in force until %s%s", f.Name, f.Until.UTC().Format(time.RFC3339), withReason(f.Reason))
			}
		}
		var holders int
		if err := t.queryRow("SELECT COUNT(*) FROM node_holds WHERE holder_kind = ? AND holder = ?", disruption.HolderFleetLock, req.Group).Scan(&holders); err != nil {
			return fmt.Errorf("count holders of group %s: %w", req.Group, err)
		}
		if holders >= req.MaxHolders {
			return refuse(FleetLockGroupFull, "FleetLock group %s has %d/%d holders", req.Group, holders, req.MaxHolders)
		}
		res, err := t.exec("INSERT INTO node_holds (node_id, holder_kind, holder, holder_name, since) VALUES (?, ?, ?, ?, ?) ON CONFLICT (node_id) DO NOTHING",
			req.Node, disruption.HolderFleetLock, req.Group, FleetLockHoldName, nanos(now))
		if err != nil {
			return fmt.Errorf("hold node %s: %w", req.Node, err)
		}
		if added, err := rowsAffected(res); err != nil {
			return err
		} else if added == 0 { // a rollout's commit took it since we looked
			return refuse(FleetLockNodeHeld, "node %s was taken by another holder meanwhile", req.Node)
		}
		budgets, err := t.budgets(true)
		if err != nil {
			return err
		}
		if len(budgets) > 0 {
			x, err := s.budgetIndex(t, budgets)
			if err != nil {
				return err
			}
			holds, err := t.holds()
			if err != nil {
				return err
			}
			if err := x.Check(holds, []string{req.Node}); err != nil {
				return refuse(FleetLockBudget, "%v", err)
			}
		}
		t.audit(AuditEntry{At: now, Actor: "fleetlock/" + req.Node, Action: "fleetlock.lock", Object: "node/" + req.Node,
			Detail: detail(map[string]any{"group": req.Group, "holders": holders + 1, "maxHolders": req.MaxHolders, "peer": req.Peer})})
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("fleetlock pre-reboot of node %s: %w", req.Node, err)
	}
	return already, nil
}

func (s *sqlStore) FleetLockRelease(ctx context.Context, node, group, peer string, now time.Time) (bool, error) {
	if now.IsZero() {
		now = s.clock()
	}
	var released bool
	err := s.write(ctx, func(t *tx) error {
		if _, err := t.getNode(node, false); errors.Is(err, ErrNotFound) {
			return refuse(FleetLockUnknownNode, "node %s is not enrolled in drover", node)
		} else if err != nil {
			return err
		}
		res, err := t.exec("DELETE FROM node_holds WHERE node_id = ? AND holder_kind = ? AND holder = ?", node, disruption.HolderFleetLock, group)
		if err != nil {
			return fmt.Errorf("release node %s: %w", node, err)
		}
		n, err := rowsAffected(res)
		if err != nil {
			return err
		}
		released = n == 1
		if released {
			t.audit(AuditEntry{At: now, Actor: "fleetlock/" + node, Action: "fleetlock.unlock", Object: "node/" + node,
				Detail: detail(map[string]any{"group": group, "peer": peer})})
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("fleetlock steady-state of node %s: %w", node, err)
	}
	return released, nil
}

func (s *sqlStore) FleetLockBreak(ctx context.Context, node, actor, reason string, now time.Time) (disruption.Hold, error) {
	if actor == "" || reason == "" {
		return disruption.Hold{}, errors.New("release a FleetLock slot: an actor and a reason are required")
	}
	if now.IsZero() {
		now = s.clock()
	}
	var out disruption.Hold
	err := s.write(ctx, func(t *tx) error {
		var since int64
		out = disruption.Hold{Node: node, Kind: disruption.HolderFleetLock}
		err := t.queryRow("SELECT holder, holder_name, since FROM node_holds WHERE node_id = ? AND holder_kind = ?"+t.d.forUpdate,
			node, disruption.HolderFleetLock).Scan(&out.Holder, &out.Name, &since)
		if isNoRows(err) {
			return fmt.Errorf("node %s holds no FleetLock slot: %w", node, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read hold of node %s: %w", node, err)
		}
		out.Since = fromNanos(since)
		if _, err := t.exec("DELETE FROM node_holds WHERE node_id = ? AND holder_kind = ?", node, disruption.HolderFleetLock); err != nil {
			return fmt.Errorf("release node %s: %w", node, err)
		}
		t.audit(AuditEntry{At: now, Actor: actor, Action: "fleetlock.break", Object: "node/" + node,
			Detail: detail(map[string]any{"group": out.Holder, "reason": reason, "since": out.Since.UTC().Format(time.RFC3339Nano)})})
		return nil
	})
	if err != nil {
		return disruption.Hold{}, fmt.Errorf("release the FleetLock slot of node %s: %w", node, err)
	}
	return out, nil
}

func (s *sqlStore) FleetLockRefused(ctx context.Context, req FleetLockRequest, endpoint string, r *FleetLockRefusal) error {
	now := req.Now
	if now.IsZero() {
		now = s.clock()
	}
	err := s.write(ctx, func(t *tx) error {
		t.audit(AuditEntry{At: now, Actor: "fleetlock/" + req.Node, Action: "fleetlock.refuse", Object: "node/" + req.Node,
			Detail: detail(map[string]any{"group": req.Group, "endpoint": endpoint, "kind": r.Kind, "reason": r.Reason, "peer": req.Peer})})
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit fleetlock refusal of node %s: %w", req.Node, err)
	}
	return nil
}

func (s *sqlStore) FleetLockHolders(ctx context.Context) ([]disruption.Hold, error) {
	var out []disruption.Hold
	err := s.read(ctx, func(t *tx) error {
		holds, err := t.holds()
		out = out[:0]
		for _, h := range holds {
			if h.Kind == disruption.HolderFleetLock {
				out = append(out, h)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fleetlock holders: %w", err)
	}
	return out, nil
}
