package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store"
)

func benchStore(b *testing.B) store.Store {
	b.Helper()
	s, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

var benchT0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// benchRollout creates rollout id over nodes (pending, wave "all").
func benchRollout(b *testing.B, s store.Store, id string, nodes []string) store.RolloutData {
	b.Helper()
	ctx := context.Background()
	rn := make([]store.RolloutNode, len(nodes))
	for i, n := range nodes {
		rn[i] = store.RolloutNode{NodeID: n, State: engine.NodeState{Phase: engine.PhasePending, Wave: "all"}}
	}
	if _, err := s.CreateRollout(ctx, store.Rollout{ID: id, Author: "alice", Plan: []byte("plan " + id), State: engine.RolloutRunning, CreatedAt: benchT0},
		rn, []store.Wave{{Name: "all", WaveStatus: engine.WaveStatus{State: engine.WavePending}}}, "alice"); err != nil {
		b.Fatal(err)
	}
	data, err := s.LoadRollout(ctx, id)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func startAll(data store.RolloutData, term int64, now time.Time) store.Commit {
	c := store.Commit{Rollout: data.Rollout.ID, Version: data.Rollout.Version, Term: term, Now: now, State: engine.RolloutRunning,
		Waves: []store.Wave{{Name: "all", WaveStatus: engine.WaveStatus{State: engine.WaveRunning, StartedAt: now}}}}
	for _, n := range data.Nodes {
		to := engine.NodeState{Phase: engine.PhaseQueued, Wave: "all", Attempt: n.State.Attempt + 1, Since: now, StartedAt: now}
		sid := fmt.Sprintf("%s/%s/%d", data.Rollout.ID, n.NodeID, to.Attempt)
		c.Nodes = append(c.Nodes, store.NodeUpdate{NodeID: n.NodeID, From: n.State, To: to, StepID: sid})
		c.Steps = append(c.Steps, store.Step{ID: sid, NodeID: n.NodeID, Attempt: to.Attempt, Payload: []byte(`{"kind":"apt","packages":["openssl"]}`)})
		c.Audit = append(c.Audit, store.AuditEntry{Action: "node.start", Object: "node/" + n.NodeID, Detail: []byte(`{"step":"` + sid + `"}`)})
	}
	return c
}

// BenchmarkApplyCommitStart10 measures one scheduler commit starting 10
// nodes (10 CAS updates, a wave, 10 steps, 10 audit entries) on SQLite.
func BenchmarkApplyCommitStart10(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	term, _, err := s.Campaign(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	nodes := make([]string, 10)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("n%02d", i)
	}
	commits := make([]store.Commit, b.N)
	for i := range commits {
		commits[i] = startAll(benchRollout(b, s, fmt.Sprintf("r%d", i), nodes), term, benchT0.Add(time.Minute))
	}
	b.ResetTimer()
	for i := range commits {
		if _, err := s.ApplyCommit(ctx, commits[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReportStep measures agent reports on SQLite: each one changes
// the node's phase (running <-> verifying), so each is a write with an
// audit entry; "repeat" measures idempotent duplicates.
func BenchmarkReportStep(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	term, _, err := s.Campaign(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	nodes := make([]string, 100)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("n%03d", i)
	}
	if _, err := s.ApplyCommit(ctx, startAll(benchRollout(b, s, "r", nodes), term, benchT0)); err != nil {
		b.Fatal(err)
	}
	phases := []engine.Phase{engine.PhaseRunning, engine.PhaseVerifying}
	b.Run("change", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			n := nodes[i%len(nodes)]
			r := store.Report{StepID: "r/" + n + "/1", NodeID: n, Phase: phases[(i/len(nodes))%2], At: benchT0.Add(time.Duration(i) * time.Millisecond)}
			if err := s.ReportStep(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("repeat", func(b *testing.B) {
		r := store.Report{StepID: "r/n000/1", NodeID: "n000", Phase: engine.PhaseRunning, At: benchT0}
		if err := s.ReportStep(ctx, r); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			if err := s.ReportStep(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
