package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store"
)

// testNodeRevisions: every writer of a rollout node (a scheduler commit,
// an agent's report, a lease expiry, a human resolve) moves it past the
// revision a reader saw, and LoadRolloutSince returns exactly the nodes
// changed since, with the header, waves, gates and approvals whole.
func testNodeRevisions(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	full := load(t, s, "r1")
	if full.Rollout.NodeRev != 0 || len(full.Nodes) != 4 {
		t.Fatalf("new rollout: NodeRev %d, %d nodes; want 0, 4", full.Rollout.NodeRev, len(full.Nodes))
	}
	since := func(rev int64) (store.RolloutData, []string) {
		t.Helper()
		d := get(s.LoadRolloutSince(ctx, "r1", rev))(t)
		var ids []string
		for _, n := range d.Nodes {
			ids = append(ids, n.NodeID)
		}
		return d, ids
	}
	want := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: nodes %v, want %v", what, got, want)
		}
	}
	d, ids := since(-1)
	want("since -1", ids, []string{"n1", "n2", "n3", "n4"})
	_, ids = since(0)
	want("since 0 before any change", ids, nil)

	// A scheduler commit of three nodes takes one revision.
	get(s.ApplyCommit(ctx, startCommit(t, d, term, at(time.Minute), "n3", "n1", "n2")))(t)
	d, ids = since(0)
	want("after the commit", ids, []string{"n1", "n2", "n3"}) // in index order
	if d.Rollout.NodeRev != 1 || len(d.Waves) != 2 || d.Waves[0].State != engine.WaveRunning {
		t.Fatalf("after the commit: NodeRev %d, waves %+v", d.Rollout.NodeRev, d.Waves)
	}
	if n := nodeOf(t, d, "n1"); n.State.Phase != engine.PhaseQueued || n.StepID != stepID("n1", 1) || n.Index != 0 {
		t.Fatalf("n1 after the commit = %+v", n)
	}
	rev := d.Rollout.NodeRev

	// A report moves its node; a report that repeats the state does not.
	report := store.Report{StepID: stepID("n2", 1), NodeID: "n2", Phase: engine.PhaseRunning, At: at(2 * time.Minute)}
	ok(t, s.ReportStep(ctx, report))
	d, ids = since(rev)
	want("after a report", ids, []string{"n2"})
	rev = d.Rollout.NodeRev
	ok(t, s.ReportStep(ctx, report))
	d, ids = since(rev)
	want("after a repeated report", ids, nil)
	if d.Rollout.NodeRev != rev {
		t.Fatalf("a repeated report moved NodeRev from %d to %d", rev, d.Rollout.NodeRev)
	}

	// A gate result changes no node but is loaded whole.
	ok(t, s.AddGateResults(ctx, "r1", []engine.GateResult{{Wave: "canary", Gate: "errors", Verdict: engine.Pass, At: at(3 * time.Minute)}}))
	d, ids = since(rev)
	want("after a gate result", ids, nil)
	if len(d.Gates) != 1 {
		t.Fatalf("gates after a gate result = %+v", d.Gates)
	}

	// A lease expiry: n1 and n3 have no lease extension, n2 reported but
	// its lease (registration) ended too.
	ok(t, s.TouchNode(ctx, "n2", at(50*time.Minute), at(3*time.Hour)))
	get(s.ExpireLeases(ctx, at(2*time.Hour), term))(t)
	d, ids = since(rev)
	want("after lease expiry", ids, []string{"n1", "n3"})
	if n := nodeOf(t, d, "n3"); n.State.Phase != engine.PhaseUnknown {
		t.Fatalf("n3 after expiry = %+v", n.State)
	}
	rev = d.Rollout.NodeRev

	// A human resolve.
	get(s.Command(ctx, "r1", 0, store.Command{Actor: "bob", Action: "resolve", NodeID: "n3", Resolution: engine.PhaseSkipped}, at(3*time.Hour)))(t)
	d, ids = since(rev)
	want("after a resolve", ids, []string{"n3"})
	rev = d.Rollout.NodeRev

	// Applying every delta in turn to the first full load gives the same
	// nodes as a full load now.
	whole := load(t, s, "r1")
	if whole.Rollout.NodeRev != rev {
		t.Fatalf("full load NodeRev %d, delta %d", whole.Rollout.NodeRev, rev)
	}
	patched := slices.Clone(full.Nodes)
	for _, n := range get(s.LoadRolloutSince(ctx, "r1", 0))(t).Nodes {
		patched[n.Index] = n
	}
	for i := range whole.Nodes {
		a, b := whole.Nodes[i], patched[i]
		if a.NodeID != b.NodeID || a.StepID != b.StepID || a.State.Phase != b.State.Phase || a.State.Attempt != b.State.Attempt ||
			!a.State.Since.Equal(b.State.Since) || a.State.Reason != b.State.Reason {
			t.Fatalf("node %d: full load %+v, patched %+v", i, a, b)
		}
	}
	verifyOK(t, s)
}
