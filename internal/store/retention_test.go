package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/store/storetest"
)

// TestCheckpointRetention: with a span of 10 entries and a recent window
// of 30, a log of many small transactions keeps every checkpoint of its
// last 30 entries and, before them, exactly the first checkpoint of each
// span; the log still verifies against them, and appending goes on.
func TestCheckpointRetention(t *testing.T) {
	ctx := context.Background()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var dsn string
			if backend == "sqlite" {
				dsn = "sqlite://" + filepath.Join(t.TempDir(), "drover.db")
			} else {
				dsn = storetest.NewPostgres(t).CreateDB(t)
			}
			s, err := store.Open(ctx, dsn, nil, store.WithCheckpointRetention(10, 30))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.SetAuditKey(storetest.NewAuditKey(t))
			now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
			if _, err := s.UpsertNode(ctx, store.NodeRecord{ID: "n1", Facts: fleet.Facts{Arch: "amd64"}, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			// One audited entry per transaction: a checkpoint per entry.
			for i := range 120 {
				if _, err := s.SetNodeLabels(ctx, "n1", map[string]string{"i": fmt.Sprint(i)}, 0, "bob"); err != nil {
					t.Fatal(err)
				}
			}
			v, err := s.VerifyAudit(ctx)
			if err != nil || !v.OK || v.Checkpoint != v.Entries {
				t.Fatalf("VerifyAudit = %+v, %v", v, err)
			}
			sizes := checkpointSizes(t, backend, dsn)
			t.Logf("%d entries, checkpoints kept: %v", v.Entries, sizes)
			head := v.Entries
			var recent, old []int64
			for _, n := range sizes {
				if n >= head-30 {
					recent = append(recent, n)
				} else {
					old = append(old, n)
				}
			}
			if sizes[len(sizes)-1] != head {
				t.Fatalf("newest checkpoint %d, log %d", sizes[len(sizes)-1], head)
			}
			// Pruning runs when a span is crossed: at most a span of
			// checkpoints beyond the window is still whole.
			if int64(len(recent)) < 31 || len(sizes) > 31+10+int(head/10) {
				t.Fatalf("%d checkpoints for %d entries (%d recent): %v", len(sizes), head, len(recent), sizes)
			}
			spans := map[int64]int64{}
			for _, n := range old {
				if first, ok := spans[n/10]; ok && n < head-40 {
					t.Errorf("span %d keeps %d and %d", n/10, first, n)
				}
				if _, ok := spans[n/10]; !ok {
					spans[n/10] = n
				}
			}
			if len(spans) < int((head-40)/10) {
				t.Errorf("older spans kept: %d, want one for each of the %d before the window: %v", len(spans), (head-40)/10, old)
			}
		})
	}
}

func checkpointSizes(t *testing.T, backend, dsn string) []int64 {
	t.Helper()
	driver, src := "pgx", dsn
	if backend == "sqlite" {
		driver, src = "sqlite", dsn[len("sqlite://"):]
	}
	db, err := sql.Open(driver, src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT size FROM audit_checkpoints ORDER BY size")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}
