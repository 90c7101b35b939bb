package server

import (
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/store"
)

// TestNewestPerKey: each key learns from the newest rollout that ran
// it, keys the newest rollout did not run keep their older steps.
func TestNewestPerKey(t *testing.T) {
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	row := func(ro, node, family string, settled int) store.StepTiming {
		return store.StepTiming{StepID: ro + "/" + node, Rollout: ro, NodeID: node, Action: "package", OSFamily: family,
			OSVersion: "12", SettledAt: t0.Add(time.Duration(settled) * time.Minute)}
	}
	rows := []store.StepTiming{ // newest first
		row("r2", "d1", "debian", 9), row("r2", "d2", "debian", 8),
		row("r1", "d1", "debian", 5), row("r1", "d2", "debian", 4), row("r1", "h1", "rhel", 3),
	}
	got := newestPerKey(rows)
	var ids []string
	for _, r := range got {
		ids = append(ids, r.StepID)
	}
	want := []string{"r2/d1", "r2/d2", "r1/h1"}
	if len(ids) != len(want) {
		t.Fatalf("kept %v, want %v", ids, want)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("kept %v, want %v", ids, want)
		}
	}
}
