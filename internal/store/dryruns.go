package store

import (
	"context"
	"fmt"
)

const dryRunColumns = "id, name, author, plan, plan_sha256, seed, assignment, assignment_sha256, created_at"

// CreateDryRun stores d, audits it ("dryrun.create", actor d.Author) and,
// in the same transaction, deletes the dry runs older than DryRunMaxAge
// before d.CreatedAt and all but the DryRunsKept newest.
func (s *sqlStore) CreateDryRun(ctx context.Context, d DryRun) error {
	if d.ID == "" {
		return fmt.Errorf("create dry run: empty ID")
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = s.clock()
	}
	err := s.write(ctx, func(t *tx) error {
		if _, err := t.exec("INSERT INTO dry_runs ("+dryRunColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			d.ID, d.Name, d.Author, d.Plan, d.PlanSHA256, int64(d.Seed), d.Assignment, d.AssignmentSHA256, nanos(d.CreatedAt)); err != nil {
			return t.conflictOnUnique(err, "dry run %s exists", d.ID)
		}
		if _, err := t.exec("DELETE FROM dry_runs WHERE created_at < ?", nanos(d.CreatedAt.Add(-DryRunMaxAge))); err != nil {
			return fmt.Errorf("prune dry runs: %w", err)
		}
		if _, err := t.exec(`DELETE FROM dry_runs WHERE id NOT IN
	(SELECT id FROM (SELECT id FROM dry_runs ORDER BY created_at DESC, id DESC LIMIT ?) AS kept)`, DryRunsKept); err != nil {
			return fmt.Errorf("prune dry runs: %w", err)
		}
		t.audit(AuditEntry{At: d.CreatedAt, Actor: d.Author, Action: "dryrun.create", Object: "dryrun/" + d.ID,
			Detail: detail(map[string]any{"name": d.Name, "plan_sha256": d.PlanSHA256, "seed": fmt.Sprint(d.Seed),
				"assignment_sha256": d.AssignmentSHA256})})
		return nil
	})
	if err != nil {
		return fmt.Errorf("create dry run %s: %w", d.ID, err)
	}
	return nil
}

func (s *sqlStore) GetDryRun(ctx context.Context, id string) (DryRun, error) {
	var d DryRun
	var seed, created int64
	err := s.db.QueryRowContext(ctx, s.d.rebind("SELECT "+dryRunColumns+" FROM dry_runs WHERE id = ?"), id).Scan(
		&d.ID, &d.Name, &d.Author, &d.Plan, &d.PlanSHA256, &seed, &d.Assignment, &d.AssignmentSHA256, &created)
	if isNoRows(err) {
		return DryRun{}, notFound("dry run", id)
	}
	if err != nil {
		return DryRun{}, fmt.Errorf("get dry run %s: %w", id, err)
	}
	d.Seed, d.CreatedAt = uint64(seed), fromNanos(created)
	return d, nil
}
