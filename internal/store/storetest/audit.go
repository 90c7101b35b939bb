package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/store"
)

// busy runs a sequence touching every kind of audited change and returns
// the number of audit entries.
func busy(t *testing.T, s store.Store) int {
	t.Helper()
	ctx := context.Background()
	term := fixture(t, s)
	get(s.ApplyCommit(ctx, startCommit(t, load(t, s, "r1"), term, at(time.Minute), "n1", "n2")))(t)
	ok(t, s.ReportStep(ctx, store.Report{StepID: stepID("n1", 1), NodeID: "n1", Phase: engine.PhaseRunning, At: at(2 * time.Minute)}))
	ok(t, s.ReportStep(ctx, store.Report{StepID: stepID("n1", 1), NodeID: "n1", Phase: engine.PhaseSucceeded, At: at(3 * time.Minute)}))
	get(s.SetNodeLabels(ctx, "n3", map[string]string{"zone": "b"}, 0, "bob"))(t)
	ok(t, s.AddGateResults(ctx, "r1", []engine.GateResult{{Wave: "canary", Gate: "p99", Verdict: engine.Pass, At: at(4 * time.Minute)}}))
	get(s.Command(ctx, "r1", 0, store.Command{Actor: "bob", Action: "pause", Reason: "lunch"}, at(5*time.Minute)))(t)
	get(s.Command(ctx, "r1", 0, store.Command{Actor: "bob", Action: "resume"}, at(6*time.Minute)))(t)
	get(s.ExpireLeases(ctx, at(2*time.Hour), term))(t)
	ok(t, s.DeleteNode(ctx, "n4", "carol"))
	n := auditCount(t, s)
	if n < 12 {
		t.Fatalf("busy sequence audited only %d entries", n)
	}
	return n
}

func testAuditChain(t *testing.T, s Backend) {
	ctx := context.Background()
	n := busy(t, s)
	v := verifyOK(t, s)
	entries := get(s.ListAudit(ctx, 0, 100000, ""))(t)
	if v.Entries != int64(n) || !bytes.Equal(v.Head, entries[n-1].Hash) {
		t.Fatalf("VerifyAudit = %+v; want %d entries, head %x", v, n, entries[n-1].Hash)
	}
	var prev []byte
	for i, e := range entries {
		if e.Seq != int64(i+1) {
			t.Fatalf("entry %d has seq %d: gap", i, e.Seq)
		}
		if !bytes.Equal(e.Prev, prev) || !bytes.Equal(store.AuditHash(prev, e), e.Hash) {
			t.Fatalf("entry %d: prev/hash do not chain", e.Seq)
		}
		if !json.Valid(e.Detail) || e.Actor == "" || e.Action == "" || e.Object == "" || e.At.IsZero() {
			t.Fatalf("entry %d is incomplete: %+v", e.Seq, e)
		}
		prev = e.Hash
	}
	page := get(s.ListAudit(ctx, 2, 3, ""))(t)
	if len(page) != 3 || page[0].Seq != 3 || page[2].Seq != 5 {
		t.Fatalf("ListAudit(after 2, limit 3) = seqs %v", seqs(page))
	}
	r1 := get(s.ListAudit(ctx, 2, 1000, "r1"))(t)
	if len(r1) == 0 {
		t.Fatal("no audit entries for r1")
	}
	for _, e := range r1 {
		if e.Rollout != "r1" || e.Seq <= 2 {
			t.Fatalf("ListAudit(r1) returned %+v", e)
		}
	}
	if head := get(s.AuditHead(ctx))(t); head != int64(n) {
		t.Fatalf("AuditHead = %d, want %d", head, n)
	}
	// Pages bounded in bytes: the first entry always, then as many as fit.
	two := len(entries[2].Detail) + len(entries[3].Detail)
	for _, c := range []struct {
		q    store.AuditQuery
		want []int64
		more bool
	}{
		{store.AuditQuery{After: 2, MaxBytes: two}, []int64{3, 4}, true},
		{store.AuditQuery{After: 2, MaxBytes: 1}, []int64{3}, true},
		{store.AuditQuery{After: 2, Limit: 2}, []int64{3, 4}, true},
		{store.AuditQuery{After: int64(n - 1), MaxBytes: 1 << 20}, []int64{int64(n)}, false},
		{store.AuditQuery{After: int64(n)}, nil, false},
		// Newest first: the newest page, the one before it, and a window.
		{store.AuditQuery{Newest: true, Limit: 2}, []int64{int64(n), int64(n - 1)}, true},
		{store.AuditQuery{Newest: true, Limit: 2, Before: int64(n - 1)}, []int64{int64(n - 2), int64(n - 3)}, true},
		{store.AuditQuery{Newest: true, After: int64(n - 2)}, []int64{int64(n), int64(n - 1)}, false},
		{store.AuditQuery{Before: 3}, []int64{1, 2}, false},
	} {
		page, more, err := s.AuditPage(ctx, c.q)
		ok(t, err)
		if fmt.Sprint(seqs(page)) != fmt.Sprint(c.want) || more != c.more {
			t.Fatalf("AuditPage(%+v) = %v, more %v; want %v, more %v", c.q, seqs(page), more, c.want, c.more)
		}
	}
}

// testReportAuditTime: a report's audit entry is dated by the server's
// receive time (Seen), not by the time the agent claims, which the
// detail keeps as agent_at.
func testReportAuditTime(t *testing.T, s Backend) {
	ctx := context.Background()
	term := fixture(t, s)
	get(s.ApplyCommit(ctx, startCommit(t, load(t, s, "r1"), term, at(time.Minute), "n1")))(t)
	claimed := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	ok(t, s.ReportStep(ctx, store.Report{StepID: stepID("n1", 1), NodeID: "n1", Phase: engine.PhaseRunning,
		At: at(90 * time.Second), ClaimedAt: claimed, Seen: at(2 * time.Minute), LeaseUntil: at(time.Hour)}))
	entries := get(s.ListAudit(ctx, 0, 1000, "r1"))(t)
	last := entries[len(entries)-1]
	var d struct {
		AgentAt string `json:"agent_at"`
	}
	ok(t, json.Unmarshal(last.Detail, &d))
	if last.Action != "node.phase" || !last.At.Equal(at(2*time.Minute)) || d.AgentAt != "2001-01-01T00:00:00Z" {
		t.Fatalf("report audited as %s at %s, detail %s; want node.phase at %s with agent_at 2001-01-01T00:00:00Z",
			last.Action, last.At, last.Detail, at(2*time.Minute))
	}
}

func seqs(es []store.AuditEntry) []int64 {
	var out []int64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func wantBad(t *testing.T, s store.Store, seq int64, words ...string) {
	t.Helper()
	v := get(s.VerifyAudit(context.Background()))(t)
	if v.OK || v.FirstBad != seq {
		t.Fatalf("VerifyAudit = %+v; want FirstBad %d", v, seq)
	}
	for _, w := range words {
		if !strings.Contains(v.Problem, w) {
			t.Fatalf("VerifyAudit problem %q does not say %q", v.Problem, w)
		}
	}
	if v.Entries != seq-1 {
		t.Fatalf("VerifyAudit counted %d good entries before the bad one, want %d", v.Entries, seq-1)
	}
}

func testAuditTamperEdit(t *testing.T, s Backend) {
	ctx := context.Background()
	busy(t, s)
	var orig store.AuditEntry
	for _, e := range get(s.ListAudit(ctx, 0, 1000, ""))(t) {
		if e.Seq == 5 {
			orig = e
		}
	}
	n, err := s.ExecRaw(ctx, `UPDATE audit SET detail = ? WHERE seq = ?`, `{"forged":true}`, 5)
	if err != nil || n != 1 {
		t.Fatalf("tamper: %d rows, %v", n, err)
	}
	wantBad(t, s, 5, "edited")

	// A smarter forger also recomputes the entry's hash: the Merkle
	// tree's leaf still names the edited entry (the next entry's link
	// breaks too).
	forged := orig
	forged.Detail = json.RawMessage(`{"forged":true}`)
	if _, err := s.ExecRaw(ctx, `UPDATE audit SET hash = ? WHERE seq = ?`, store.AuditHash(orig.Prev, forged), 5); err != nil {
		t.Fatal(err)
	}
	wantBad(t, s, 5, "edited", "Merkle tree")

	// Undo: the chain verifies again.
	if _, err := s.ExecRaw(ctx, `UPDATE audit SET detail = ?, hash = ? WHERE seq = ?`, string(orig.Detail), orig.Hash, 5); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s)

	// Editing the actor of the first entry.
	if _, err := s.ExecRaw(ctx, `UPDATE audit SET actor = ? WHERE seq = ?`, "mallory", 1); err != nil {
		t.Fatal(err)
	}
	wantBad(t, s, 1, "edited")
}

func testAuditTamperDelete(t *testing.T, s Backend) {
	ctx := context.Background()
	busy(t, s)
	if n, err := s.ExecRaw(ctx, `DELETE FROM audit WHERE seq = ?`, 7); err != nil || n != 1 {
		t.Fatalf("tamper: %d rows, %v", n, err)
	}
	wantBad(t, s, 7, "missing", "deleted")
}

func testAuditTamperSwap(t *testing.T, s Backend) {
	ctx := context.Background()
	busy(t, s)
	for _, q := range [][2]int64{{5, -5}, {6, 5}, {-5, 6}} {
		if n, err := s.ExecRaw(ctx, `UPDATE audit SET seq = ? WHERE seq = ?`, q[1], q[0]); err != nil || n != 1 {
			t.Fatalf("tamper: %d rows, %v", n, err)
		}
	}
	wantBad(t, s, 5, "reordered")
}

func testAuditTamperTruncate(t *testing.T, s Backend) {
	ctx := context.Background()
	n := int64(busy(t, s))
	if _, err := s.ExecRaw(ctx, `DELETE FROM audit WHERE seq >= ?`, n-1); err != nil {
		t.Fatal(err)
	}
	wantBad(t, s, n-1, "truncated")
}

// testAuditConcurrentServers: writers on two stores (two servers on one
// database) append concurrently; the chain stays gapless and valid.
func testAuditConcurrentServers(t *testing.T, s Backend) {
	ctx := context.Background()
	fixture(t, s)
	other := reopen(t, s)
	stores := []store.Store{s, other}
	before := auditCount(t, s)
	const workers, each = 6, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := stores[w%2]
			node := fmt.Sprintf("n%d", w%4+1)
			for i := 0; i < each; i++ {
				var err error
				switch i % 3 {
				case 0:
					_, err = st.SetNodeLabels(ctx, node, map[string]string{"w": fmt.Sprint(w), "i": fmt.Sprint(i)}, 0, fmt.Sprintf("user%d", w))
				case 1:
					err = st.AddGateResults(ctx, "r1", []engine.GateResult{{Wave: "canary", Gate: fmt.Sprintf("g%d-%d", w, i), Verdict: engine.Pass, At: at(time.Minute)}})
				case 2:
					_, err = st.UpsertNode(ctx, store.NodeRecord{ID: fmt.Sprintf("new-%d-%d", w, i), Facts: facts("rhel", "5.14"), LastSeen: at(0), LeaseUntil: at(time.Hour)})
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := before + workers*each
	for _, st := range stores {
		v := verifyOK(t, st)
		if v.Entries != int64(want) {
			t.Fatalf("chain has %d entries, want %d", v.Entries, want)
		}
	}
}

func testLeadership(t *testing.T, s Backend) {
	ctx := context.Background()
	term1 := fixture(t, s)
	if term, won, err := s.Campaign(ctx, "server-1"); err != nil || !won || term != term1 {
		t.Fatalf("re-campaign while leading = %d, %v, %v; want %d, true", term, won, err, term1)
	}
	if !s.Leading(ctx) {
		t.Fatal("the leader does not report Leading")
	}
	other := reopen(t, s)
	if other.Leading(ctx) {
		t.Fatal("a store that never campaigned reports Leading")
	}
	// fenced checks that the old leader's term can no longer write.
	fenced := func(old store.Store, term int64) {
		t.Helper()
		data := load(t, old, "r1")
		_, err := old.ApplyCommit(ctx, store.Commit{Rollout: "r1", Version: data.Rollout.Version, Term: term, Now: at(time.Hour), State: engine.RolloutRunning})
		wantErr(t, err, store.ErrFenced, "commit by a deposed leader")
		_, err = old.ExpireLeases(ctx, at(time.Hour), term)
		wantErr(t, err, store.ErrFenced, "ExpireLeases by a deposed leader")
		if old.Leading(ctx) {
			t.Fatal("a deposed leader reports Leading")
		}
	}
	canCommit := func(st store.Store, term int64) {
		t.Helper()
		data := load(t, st, "r1")
		get(st.ApplyCommit(ctx, store.Commit{Rollout: "r1", Version: data.Rollout.Version, Term: term, Now: at(time.Hour), State: engine.RolloutRunning}))(t)
	}
	canCommit(s, term1)

	switch s.Dialect() {
	case "sqlite":
		// One server owns the file: a second campaign always wins and fences the first.
		term2, won, err := other.Campaign(ctx, "server-2")
		if err != nil || !won || term2 <= term1 {
			t.Fatalf("second campaign = %d, %v, %v; want a win above %d", term2, won, err, term1)
		}
		fenced(s, term1)
		canCommit(other, term2)
	case "postgres":
		if term, won, err := other.Campaign(ctx, "server-2"); err != nil || won || term != 0 {
			t.Fatalf("campaign while another server leads = %d, %v, %v; want 0, false, nil", term, won, err)
		}
		ok(t, s.Resign(ctx))
		term2, won, err := other.Campaign(ctx, "server-2")
		if err != nil || !won || term2 <= term1 {
			t.Fatalf("campaign after the leader resigned = %d, %v, %v; want a win above %d", term2, won, err, term1)
		}
		fenced(s, term1)
		canCommit(other, term2)

		// The leader's connection dies: a third server wins, with a greater term.
		third := reopen(t, s)
		if _, won, err := third.Campaign(ctx, "server-3"); err != nil || won {
			t.Fatalf("campaign while server-2 leads = %v, %v", won, err)
		}
		n, err := s.ExecRaw(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND pid <> pg_backend_pid()`)
		if err != nil || n != 1 {
			t.Fatalf("terminating the leader's connection: %d rows, %v", n, err)
		}
		var term3 int64
		deadline := time.Now().Add(10 * time.Second)
		for {
			term3, won, err = third.Campaign(ctx, "server-3")
			ok(t, err)
			if won {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the lock of a dead connection was not released within 10s")
			}
			time.Sleep(20 * time.Millisecond) // waiting for the real server to reap the backend
		}
		if term3 <= term2 {
			t.Fatalf("new term %d is not above %d", term3, term2)
		}
		fenced(other, term2)
		canCommit(third, term3)
		ok(t, third.Resign(ctx))
	default:
		t.Fatalf("unknown dialect %q", s.Dialect())
	}
	var elections int
	for _, e := range get(s.ListAudit(ctx, 0, 1000, ""))(t) {
		if e.Action == "leader.elect" {
			elections++
		}
	}
	if elections < 2 {
		t.Fatalf("%d leader.elect audit entries, want one per win", elections)
	}
	verifyOK(t, s)
}

func testSchemaTooNew(t *testing.T, s Backend) {
	ctx := context.Background()
	versions, err := s.ExecRaw(ctx, "UPDATE schema_migrations SET name = name")
	ok(t, err)
	if versions < 1 {
		t.Fatal("no schema_migrations rows")
	}
	if _, err := s.ExecRaw(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", 999, "0999_future.sql", 0); err != nil {
		t.Fatal(err)
	}
	other, err := s.Reopen(ctx)
	if err == nil {
		other.Close()
		t.Fatal("opened a database migrated by a newer drover")
	}
	if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "999") ||
		!strings.Contains(err.Error(), fmt.Sprint(versions)) {
		t.Fatalf("error %q: want ErrSchemaTooNew naming versions 999 and %d", err, versions)
	}
	if n, err := s.ExecRaw(ctx, "UPDATE schema_migrations SET name = name"); err != nil || n != versions+1 {
		t.Fatalf("schema_migrations has %d rows after the refused open (%v), want %d", n, err, versions+1)
	}
}
