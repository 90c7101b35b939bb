package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// ExposureObservation is one node's exposure as a computation found it:
// the advisories it is exposed to (affected, fixed-not-running or
// live-patched) with their status, and its reboot debt.
type ExposureObservation struct {
	Node string
	// Exposed: advisory ID -> status. "unknown" (the facts cannot tell)
	// keeps an open period open and opens none.
	Exposed map[string]string
	// RebootDebt: the node needs a reboot (its facts say so, or its
	// running kernel is older than the newest installed).
	RebootDebt         bool
	Running, Installed string // kernels, when known
}

// OpenExposure is an open period of a node's exposure to an advisory.
type OpenExposure struct {
	Advisory, Severity, Node, Status string
	// Since: first found exposed; LastSeen: when the status last changed.
	Since, LastSeen time.Time
}

// RebootDebt is a node that has needed a reboot since Since.
type RebootDebt struct {
	Node               string
	Since, LastSeen    time.Time
	Running, Installed string
}

// ExposureState is what the history holds now: the open exposures and
// reboot debts, and the closed periods' count and mean length.
type ExposureState struct {
	Open       []OpenExposure
	RebootDebt []RebootDebt
	Remediated int           // closed periods
	MeanToFix  time.Duration // their mean length, first seen to remediated
}

// ExposureHistory records exposure as it is computed, so that its
// history (time to remediate, age of open exposures, reboot debt) can be
// told although exposure itself is computed on request.
type ExposureHistory interface {
	// RecordExposure records what a computation at `at` found for the
	// nodes of obs: against the advisory `advisory`, or every advisory
	// when it is "". Open periods of these nodes (and that advisory)
	// that obs no longer lists are closed: the node is remediated.
	// Nodes not in obs are left alone.
	RecordExposure(ctx context.Context, at time.Time, advisory string, obs []ExposureObservation) error
	// ExposureState reads the open exposures (with their advisories'
	// severity), the reboot debts and the remediation figures.
	ExposureState(ctx context.Context) (ExposureState, error)
}

// AsExposureHistory returns st's exposure history, or false.
func AsExposureHistory(st Store) (ExposureHistory, bool) {
	h, ok := st.(ExposureHistory)
	return h, ok
}

var _ ExposureHistory = (*sqlStore)(nil)

func (s *sqlStore) RecordExposure(ctx context.Context, at time.Time, adv string, obs []ExposureObservation) error {
	now := nanos(at)
	return s.write(ctx, func(t *tx) error {
		type key struct{ adv, node string }
		type openRow struct {
			first  int64
			status string
		}
		open := map[key]openRow{}
		type debtRow struct{ running, installed string }
		debt := map[string]*debtRow{}
		// Read what is open for these nodes, in chunks.
		for i := 0; i < len(obs); i += 500 {
			chunk := obs[i:min(i+500, len(obs))]
			args := make([]any, 0, len(chunk)+1)
			for _, o := range chunk {
				args = append(args, o.Node)
			}
			in := "(?" + strings.Repeat(", ?", len(chunk)-1) + ")"
			q := "SELECT advisory_id, node_id, first_seen, status FROM exposure_history WHERE remediated_at = 0 AND node_id IN " + in
			if adv != "" {
				q += " AND advisory_id = ?"
				args = append(args, adv)
			}
			rs, err := t.query(q, args...)
			if err != nil {
				return fmt.Errorf("read exposure history: %w", err)
			}
			for rs.Next() {
				var k key
				var r openRow
				if err := rs.Scan(&k.adv, &k.node, &r.first, &r.status); err != nil {
					rs.Close()
					return fmt.Errorf("read exposure history: %w", err)
				}
				open[k] = r
			}
			rs.Close()
			if err := rs.Err(); err != nil {
				return fmt.Errorf("read exposure history: %w", err)
			}
			rs, err = t.query("SELECT node_id, running, installed FROM reboot_debt WHERE node_id IN "+in, args[:len(chunk)]...)
			if err != nil {
				return fmt.Errorf("read reboot debt: %w", err)
			}
			for rs.Next() {
				var n string
				var d debtRow
				if err := rs.Scan(&n, &d.running, &d.installed); err != nil {
					rs.Close()
					return fmt.Errorf("read reboot debt: %w", err)
				}
				debt[n] = &d
			}
			rs.Close()
			if err := rs.Err(); err != nil {
				return fmt.Errorf("read reboot debt: %w", err)
			}
		}
		seen := map[key]bool{}
		for _, o := range obs {
			for a, st := range o.Exposed {
				if adv != "" && a != adv {
					continue
				}
				k := key{a, o.Node}
				seen[k] = true
				r, isOpen := open[k]
				if st == "unknown" {
					continue
				}
				if isOpen {
					if r.status == st {
						continue // unchanged: nothing to write
					}
					if _, err := t.exec("UPDATE exposure_history SET status = ?, last_seen = ? WHERE advisory_id = ? AND node_id = ? AND first_seen = ?",
						st, now, a, o.Node, r.first); err != nil {
						return fmt.Errorf("update exposure of %s to %s: %w", o.Node, a, err)
					}
					continue
				}
				if _, err := t.exec("INSERT INTO exposure_history (advisory_id, node_id, status, first_seen, last_seen) VALUES (?, ?, ?, ?, ?) "+
					"ON CONFLICT (advisory_id, node_id) WHERE remediated_at = 0 DO NOTHING",
					a, o.Node, st, now, now); err != nil {
					return fmt.Errorf("record exposure of %s to %s: %w", o.Node, a, err)
				}
			}
			switch {
			case o.RebootDebt && debt[o.Node] != nil && *debt[o.Node] == debtRow{o.Running, o.Installed}:
				// unchanged
			case o.RebootDebt && debt[o.Node] != nil:
				if _, err := t.exec("UPDATE reboot_debt SET last_seen = ?, running = ?, installed = ? WHERE node_id = ?", now, o.Running, o.Installed, o.Node); err != nil {
					return fmt.Errorf("update reboot debt of %s: %w", o.Node, err)
				}
			case o.RebootDebt:
				if _, err := t.exec("INSERT INTO reboot_debt (node_id, since, last_seen, running, installed) VALUES (?, ?, ?, ?, ?) ON CONFLICT (node_id) DO NOTHING", o.Node, now, now, o.Running, o.Installed); err != nil {
					return fmt.Errorf("record reboot debt of %s: %w", o.Node, err)
				}
			case debt[o.Node] != nil:
				if _, err := t.exec("DELETE FROM reboot_debt WHERE node_id = ?", o.Node); err != nil {
					return fmt.Errorf("clear reboot debt of %s: %w", o.Node, err)
				}
			}
		}
		for k, r := range open {
			if seen[k] {
				continue
			}
			if _, err := t.exec("UPDATE exposure_history SET remediated_at = ?, last_seen = ? WHERE advisory_id = ? AND node_id = ? AND first_seen = ?",
				max(now, r.first), now, k.adv, k.node, r.first); err != nil {
				return fmt.Errorf("close exposure of %s to %s: %w", k.node, k.adv, err)
			}
		}
		return nil
	})
}

func (s *sqlStore) ExposureState(ctx context.Context) (ExposureState, error) {
	var out ExposureState
	err := s.read(ctx, func(t *tx) error {
		out = ExposureState{}
		rs, err := t.query(`SELECT h.advisory_id, COALESCE(a.severity, 'unknown'), h.node_id, h.status, h.first_seen, h.last_seen
			FROM exposure_history h LEFT JOIN advisories a ON a.id = h.advisory_id
			WHERE h.remediated_at = 0 ORDER BY h.advisory_id, h.node_id`)
		if err != nil {
			return fmt.Errorf("read open exposures: %w", err)
		}
		for rs.Next() {
			var o OpenExposure
			var first, last int64
			if err := rs.Scan(&o.Advisory, &o.Severity, &o.Node, &o.Status, &first, &last); err != nil {
				rs.Close()
				return fmt.Errorf("read open exposures: %w", err)
			}
			o.Since, o.LastSeen = fromNanos(first), fromNanos(last)
			out.Open = append(out.Open, o)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return fmt.Errorf("read open exposures: %w", err)
		}
		rs, err = t.query("SELECT node_id, since, last_seen, running, installed FROM reboot_debt ORDER BY since, node_id")
		if err != nil {
			return fmt.Errorf("read reboot debt: %w", err)
		}
		for rs.Next() {
			var d RebootDebt
			var since, last int64
			if err := rs.Scan(&d.Node, &since, &last, &d.Running, &d.Installed); err != nil {
				rs.Close()
				return fmt.Errorf("read reboot debt: %w", err)
			}
			d.Since, d.LastSeen = fromNanos(since), fromNanos(last)
			out.RebootDebt = append(out.RebootDebt, d)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return fmt.Errorf("read reboot debt: %w", err)
		}
		var n int64
		var total float64
		if err := t.queryRow("SELECT COUNT(*), COALESCE(SUM(CAST(remediated_at - first_seen AS DOUBLE PRECISION)), 0) FROM exposure_history WHERE remediated_at > 0").Scan(&n, &total); err != nil {
			return fmt.Errorf("read remediation figures: %w", err)
		}
		out.Remediated = int(n)
		if n > 0 {
			out.MeanToFix = time.Duration(total / float64(n))
		}
		return nil
	})
	return out, err
}
