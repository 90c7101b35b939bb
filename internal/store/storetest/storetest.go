// Package storetest is the conformance suite of store.Store: every
// backend runs Run, so SQLite and PostgreSQL are held to one contract.
//
// Besides store.Store, the suite needs three hooks that the stores
// returned by store.Open provide (see Backend): the dialect's name, a
// second independent store on the same database (another server), and a
// raw statement to tamper with the database as an attacker would.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
)

// Backend is what the suite needs from a store beyond store.Store.
type Backend interface {
	store.Store
	// Dialect is "sqlite" or "postgres".
	Dialect() string
	// Reopen opens another store on the same database, as a second
	// server process would.
	Reopen(ctx context.Context) (store.Store, error)
	// ExecRaw runs one statement with '?' placeholders, bypassing the
	// store's rules, and returns the rows affected.
	ExecRaw(ctx context.Context, query string, args ...any) (int64, error)
}

// Run runs the conformance suite. open returns a new, empty store for
// the test (a fresh database) and arranges for its cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	h := func(f func(t *testing.T, s Backend)) func(t *testing.T) {
		return func(t *testing.T) {
			s := open(t)
			b, ok := s.(Backend)
			if !ok {
				t.Fatalf("store %T does not implement storetest.Backend (Dialect, Reopen, ExecRaw)", s)
			}
			f(t, b)
		}
	}
	t.Run("Nodes", h(testNodes))
	t.Run("ListNodesPaging", h(testListNodesPaging))
	t.Run("FactsAuditBounded", h(testFactsAuditBounded))
	t.Run("ConcurrentRegistration", h(testConcurrentRegistration))
	t.Run("Rollouts", h(testRollouts))
	t.Run("CommitStart", h(testCommitStart))
	t.Run("CommitConflicts", h(testCommitConflicts))
	t.Run("ConcurrentCommits", h(testConcurrentCommits))
	t.Run("ReportStep", h(testReportStep))
	t.Run("UnchangedNodes", h(testUnchangedNodes))
	t.Run("NodeSteps", h(testNodeSteps))
	t.Run("PendingSteps", h(testPendingSteps))
	t.Run("Approve", h(testApprove))
	t.Run("ApprovalBindsAssignment", h(testApprovalBindsAssignment))
	t.Run("DryRuns", h(testDryRuns))
	t.Run("Commands", h(testCommands))
	t.Run("Resolve", h(testResolve))
	t.Run("GateResults", h(testGateResults))
	t.Run("RolloutTimes", h(testRolloutTimes))
	t.Run("ExpireLeases", h(testExpireLeases))
	t.Run("NodeRevisions", h(testNodeRevisions))
	t.Run("AuditChain", h(testAuditChain))
	t.Run("ReportAuditTime", h(testReportAuditTime))
	t.Run("AuditTamperEdit", h(testAuditTamperEdit))
	t.Run("AuditTamperDelete", h(testAuditTamperDelete))
	t.Run("AuditTamperSwap", h(testAuditTamperSwap))
	t.Run("AuditTamperTruncate", h(testAuditTamperTruncate))
	t.Run("AuditConcurrentServers", h(testAuditConcurrentServers))
	runAuditTree(t, h)
	runFleet(t, h)
	runAdvisories(t, h)
	runBaselines(t, h)
	t.Run("Leadership", h(testLeadership))
	t.Run("SchemaTooNew", h(testSchemaTooNew))
	t.Run("WebhookOutbox", h(testWebhookOutbox))
	t.Run("Cancelled", h(testCancelled))
	t.Run("LineStop", h(testLineStop))
	t.Run("Preflight", h(testPreflight))
	t.Run("Evidence", h(testEvidence))
	t.Run("Interrupted", h(testInterrupted))
	t.Run("RestartLeases", h(testRestartLeases))
	t.Run("StepHistory", h(testStepHistory))
}

// t0 is the suite's epoch; every time is an offset from it.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// get turns a (value, error) result into a function of the test that
// fails it on error: v := get(s.GetNode(ctx, id))(t).
func get[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr fails unless err matches target.
func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func facts(family, kernel string) fleet.Facts {
	return fleet.Facts{OS: fleet.OS{Family: family, Name: family, Version: "12"}, Kernel: kernel, Arch: "amd64",
		Hardware: fleet.Hardware{Class: "r650"}, Packages: map[string]string{"openssl": "3.0.11"}}
}

func addNode(t *testing.T, s store.Store, id string, lease time.Time) store.NodeRecord {
	t.Helper()
	return get(s.UpsertNode(context.Background(), store.NodeRecord{
		ID: id, Facts: facts("debian", "6.1.0"), Labels: map[string]string{"zone": "a"},
		AgentVersion: "1.0.0", Protocol: 1, LastSeen: at(0), LeaseUntil: lease,
	}))(t)
}

const plan = "version: 1\nname: openssl\nwaves:\n  - name: canary\n  - name: rest\n"

// fixture registers n1..n4 (leases until t0+1h), creates rollout r1 by
// alice, running, with n1 in wave canary and n2..n4 in wave rest, and
// makes s the leader. It returns the term.
func fixture(t *testing.T, s store.Store) int64 {
	t.Helper()
	ctx := context.Background()
	var nodes []store.RolloutNode
	for i, id := range []string{"n1", "n2", "n3", "n4"} {
		addNode(t, s, id, at(time.Hour))
		wave := "rest"
		if i == 0 {
			wave = "canary"
		}
		nodes = append(nodes, store.RolloutNode{NodeID: id, State: engine.NodeState{Phase: engine.PhasePending, Wave: wave, Since: at(0)}})
	}
	waves := []store.Wave{
		{Name: "canary", WaveStatus: engine.WaveStatus{State: engine.WavePending}},
		{Name: "rest", WaveStatus: engine.WaveStatus{State: engine.WavePending}},
	}
	get(s.CreateRollout(ctx, store.Rollout{ID: "r1", Name: "openssl", Author: "alice", Plan: []byte(plan),
		State: engine.RolloutRunning, Seed: 1<<63 + 5, CreatedAt: at(0)}, nodes, waves, "alice"))(t)
	term, won, err := s.Campaign(ctx, "server-1")
	ok(t, err)
	if !won || term <= 0 {
		t.Fatalf("Campaign = %d, %v; want a win with a positive term", term, won)
	}
	return term
}

func stepID(node string, attempt int) string { return fmt.Sprintf("r1/%s/%d", node, attempt) }

// startCommit starts the given pending nodes (attempt 1) from data.
func startCommit(t *testing.T, data store.RolloutData, term int64, now time.Time, ids ...string) store.Commit {
	t.Helper()
	c := store.Commit{Rollout: data.Rollout.ID, Version: data.Rollout.Version, Term: term, Now: now,
		State: engine.RolloutRunning}
	for _, id := range ids {
		n := nodeOf(t, data, id)
		to := engine.NodeState{Phase: engine.PhaseQueued, Wave: n.State.Wave, Attempt: n.State.Attempt + 1, Since: now, StartedAt: now,
			Interruptions: n.State.Interruptions}
		sid := stepID(id, to.Attempt)
		c.Nodes = append(c.Nodes, store.NodeUpdate{NodeID: id, From: n.State, To: to, StepID: sid})
		c.Steps = append(c.Steps, store.Step{ID: sid, NodeID: id, Kind: store.StepApply, Attempt: to.Attempt,
			Payload: json.RawMessage(`{"actions": [{"kind": "apt", "packages": ["openssl"]}]}`)})
		c.Audit = append(c.Audit, store.AuditEntry{Action: "node.start", Object: "node/" + id, Detail: json.RawMessage(`{"step":"` + sid + `"}`)})
	}
	c.Waves = []store.Wave{{Name: "canary", WaveStatus: engine.WaveStatus{State: engine.WaveRunning, StartedAt: now}}}
	return c
}

func nodeOf(t *testing.T, data store.RolloutData, id string) store.RolloutNode {
	t.Helper()
	for _, n := range data.Nodes {
		if n.NodeID == id {
			return n
		}
	}
	t.Fatalf("node %s not in rollout %s", id, data.Rollout.ID)
	return store.RolloutNode{}
}

func load(t *testing.T, s store.Store, id string) store.RolloutData {
	t.Helper()
	return get(s.LoadRollout(context.Background(), id))(t)
}

func auditCount(t *testing.T, s store.Store) int {
	t.Helper()
	return len(get(s.ListAudit(context.Background(), 0, 100000, ""))(t))
}

func verifyOK(t *testing.T, s store.Store) store.AuditVerification {
	t.Helper()
	v := get(s.VerifyAudit(context.Background()))(t)
	if !v.OK || v.FirstBad != 0 {
		t.Fatalf("VerifyAudit = %+v, want OK", v)
	}
	return v
}

func reopen(t *testing.T, s Backend) store.Store {
	t.Helper()
	other, err := s.Reopen(context.Background())
	ok(t, err)
	t.Cleanup(func() { other.Close() })
	return other
}
